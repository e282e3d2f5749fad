"""Scores as colours: one diverging palette for HTML (Jupyter, the report) and the terminal.

Scores are scaled per text by the largest absolute score, so each text uses the whole scale:
blue for tokens that speak against the target, white for none, red for support. The palette has
``2 * LEVELS + 1`` colours; ``color_levels`` maps scores to palette indices, and every renderer
(``to_html``, the report page, ``normxlogit show``) draws from the same ``PALETTE``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the report and ``show`` draw with this module without loading torch
    from normxlogit.result import TextAttribution

LEVELS = 10
_NEGATIVE, _NEUTRAL, _POSITIVE = (33, 102, 172), (247, 247, 247), (178, 24, 43)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    _mix(_NEUTRAL, _NEGATIVE, (LEVELS - i) / LEVELS)
    if i < LEVELS
    else _mix(_NEUTRAL, _POSITIVE, (i - LEVELS) / LEVELS)
    for i in range(2 * LEVELS + 1)
)


def hex_color(rgb: tuple[int, int, int]) -> str:
    """``#rrggbb`` for an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def text_color(level: int) -> str:
    """Black or white text, whichever reads on palette colour ``level``."""
    return "#ffffff" if abs(level - LEVELS) > 0.6 * LEVELS else "#111111"


def color_scale(scores: np.ndarray) -> float:
    """The largest absolute score (1.0 when there is none), which maps to the palette's ends."""
    finite = np.abs(scores[np.isfinite(scores)])
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def color_levels(scores: np.ndarray, scale: float) -> np.ndarray:
    """Palette index (0..2*LEVELS) of each score; ``LEVELS`` is zero, the ends are +-``scale``."""
    scaled = np.nan_to_num(np.asarray(scores, dtype=np.float64) / scale, nan=0.0)
    return (np.clip(np.rint(scaled * LEVELS), -LEVELS, LEVELS) + LEVELS).astype(np.int64)


def token_title(norm: float, logat: float, score: float) -> str:
    """The hover text of a token."""
    return f"norm {norm:.4g} | logat {logat:.4g} | score {score:.4g}"


def legend_html(scale: float) -> str:
    """A small HTML legend: the palette from -scale to +scale."""
    cells = "".join(
        f'<span style="background:{hex_color(c)};display:inline-block;width:12px;height:12px"></span>'
        for c in PALETTE
    )
    return (
        f'<div style="font:12px sans-serif;margin-top:6px">{-scale:.3g} (against) {cells} '
        f"{scale:.3g} (supports the target)</div>"
    )


def to_html(result: TextAttribution, include_special: bool = False) -> str:
    """HTML for one scored text: tokens coloured by score, norm/logat/score on hover.

    All text is escaped, so any input (markup, entities, right-to-left text) renders as text.
    The HTML has no script and loads nothing.
    """
    enc, att = result.encoded, result.attribution
    keep = np.ones(len(enc), dtype=bool) if include_special else ~enc.special
    scale = color_scale(att.score[keep])
    levels = color_levels(att.score, scale)
    spans, previous_end = [], 0
    for i in np.flatnonzero(keep):
        start, end = int(enc.offsets[i, 0]), int(enc.offsets[i, 1])
        gap = result.text[previous_end:start] if start > previous_end else ""
        previous_end = max(previous_end, end)
        level = int(levels[i])
        title = html.escape(token_title(float(att.norm[i]), float(att.logat[i]), float(att.score[i])))
        spans.append(
            f'{html.escape(gap)}<span title="{title}" style="background:{hex_color(PALETTE[level])};'
            f'color:{text_color(level)};border-radius:3px">{html.escape(enc.tokens[i])}</span>'
        )
    header = (
        f'<div style="font:12px sans-serif;margin-bottom:6px">target <b>{html.escape(repr(result.target))}'
        f"</b>, prediction <b>{html.escape(repr(result.prediction))}</b></div>"
    )
    body = f'<div dir="auto" style="font:14px/1.9 sans-serif;white-space:pre-wrap">{"".join(spans)}</div>'
    return f"<div>{header}{body}{legend_html(scale)}</div>"
