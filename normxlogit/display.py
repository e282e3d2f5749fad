"""Scores as colours: one diverging palette for HTML (Jupyter, the report) and the terminal.

Scores are scaled per text by the largest absolute score, so each text uses the whole scale:
blue for tokens that speak against the target, white for none, red for support. The palette has
``2 * LEVELS + 1`` colours; ``color_levels`` maps scores to palette indices, and every renderer
(``to_html``, ``response_to_html``, the report page, ``normxlogit show``) draws from the same
``PALETTE``; the two Jupyter renderers share ``tokens_html``.

Every renderer also shows corpus text the same way:

- ``REVEALED`` characters (controls, bidi controls, zero-width and other invisible format
  characters) draw nothing or move the text around them, so they are shown as escapes
  (``\\u202e``, ``\\x1b``; ``escape_code_point``) instead of being drawn.
- The text of a document is its own characters taken by span (``span_text``): byte-level BPE
  tokenizers give two tokens the same span when a character is split across them, and
  concatenating token strings would show that character twice.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the report and ``show`` draw with this module without loading torch
    from normxlogit.response_result import ResponseAttribution
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


# Inclusive code-point ranges shown as escapes wherever corpus or model text is displayed.
# Tab and newline are layout and stay; every other C0/C1 control could drive a terminal.
CONTROL_RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F))
# Characters that draw nothing, or reorder the text around them (bidi embeddings, overrides,
# isolates and marks): every Cf, Zl and Zp character except the prepended concatenation marks
# (U+0600.., which draw a visible sign) and Egyptian hieroglyph format controls, plus invisible
# letters and marks (combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
# variation selectors). Emoji variation selectors (U+FE0E/U+FE0F) are kept: they pick a glyph.
FORMAT_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # arabic letter mark (bidi)
    (0x115F, 0x1160),  # Hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; LRM, RLM
    (0x2028, 0x202E),  # line and paragraph separators; LRE, RLE, PDF, LRO, RLO
    (0x2060, 0x206F),  # word joiner, invisible operators; LRI, RLI, FSI, PDI; deprecated format
    (0x3164, 0x3164),  # Hangul filler
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF9, 0xFFFB),  # interlinear annotation controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE007F),  # tag characters
)
REVEALED: tuple[tuple[int, int], ...] = CONTROL_RANGES + FORMAT_RANGES


def char_class(ranges: Sequence[tuple[int, int]]) -> str:
    """A Python regular-expression character class of inclusive code-point ranges."""
    return (
        "["
        + "".join(re.escape(chr(a)) + ("" if a == b else "-" + re.escape(chr(b))) for a, b in ranges)
        + "]"
    )


_REVEAL = re.compile(char_class(REVEALED))
_REVEAL_LINE = re.compile(char_class(((0x09, 0x0A), *REVEALED)))  # one-line labels: tab, newline too


def escape_code_point(char: str) -> str:
    """``\\xNN`` below U+0100, ``\\uNNNN`` in the BMP, ``\\UNNNNNNNN`` above (Python's own escapes)."""
    cp = ord(char)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def reveal(text: str, one_line: bool = False) -> str:
    """``text`` with every ``REVEALED`` character written as its escape (``escape_code_point``).

    Args:
        one_line: also escape tab and newline (ids, labels, file names).
    """
    return (_REVEAL_LINE if one_line else _REVEAL).sub(lambda m: escape_code_point(m.group()), text)


VISIBLE_SPACE = "\u2423"  # ␣, OPEN BOX
_LAYOUT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_EDGE_SPACES = re.compile(r"^ +| +$")


def visible_token(token: str) -> str:
    """A token's string as it is listed apart from its text (top tokens, a step's target).

    Leading and trailing spaces (the whole token when it is only spaces) show as ``␣``, so ``' Juliet'``
    lists as ``␣Juliet`` and a space token is not an empty cell; newline, tab and carriage return show
    as ``\\n``, ``\\t``, ``\\r``; other ``REVEALED`` characters as their escapes; the empty string as
    ``''``. Spaces inside a token stay spaces.
    """
    if not token:
        return "''"
    shown = _EDGE_SPACES.sub(lambda m: VISIBLE_SPACE * len(m.group()), token)
    for char, escape in _LAYOUT_ESCAPES.items():
        shown = shown.replace(char, escape)
    return reveal(shown)


def reveal_html(text: str, one_line: bool = False) -> str:
    """HTML-escaped ``text``; each ``REVEALED`` character becomes a ``<span class="esc">`` with its escape."""
    pattern = _REVEAL_LINE if one_line else _REVEAL
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(html.escape(text[last : m.start()]))
        out.append(f'<span class="esc" title="U+{ord(m.group()):04X}">{escape_code_point(m.group())}</span>')
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def span_text(
    tokens: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    text: str | None = None,
    max_gap: int = 3,
) -> tuple[list[str], list[str]]:
    """What each token shows, taking every character of the text once, by span.

    A token shows the part of its span that no earlier token showed: ``text[max(start, shown
    end):end]``, so tokens that share a character (byte-level BPE splits a character across
    tokens, each with the character's whole span) show it once, on the first of them; the others
    show ``""``. Token strings are the text under their spans, so no text is needed for that.

    Args:
        tokens: the non-special tokens' strings, in position order.
        starts, ends: (n,) their character spans.
        text: the document's text; gaps between spans then show its own characters (spaces,
            newlines, characters the tokenizer dropped). Without it a gap shows as up to
            ``max_gap`` spaces.

    Returns:
        ``(gaps, shown)``: the text before each token, and the text each token shows.
    """
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    shown_end = np.maximum.accumulate(np.r_[0, ends])[:-1]  # end of the text shown before each token
    cut = np.clip(shown_end - starts, 0, None)
    shown = [tok[c:] if c < len(tok) else "" for tok, c in zip(tokens, cut.tolist())]
    if text is None:
        gaps = [" " * n for n in np.clip(starts - shown_end, 0, max_gap).tolist()]
    else:
        gaps = [text[a:b] if b > a else "" for a, b in zip(shown_end.tolist(), starts.tolist())]
    return gaps, shown


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


def token_style(level: int) -> str:
    """The inline style of a token drawn in palette colour ``level``."""
    return f"background:{hex_color(PALETTE[level])};color:{text_color(level)};border-radius:3px"


def tokens_html(
    text: str,
    tokens: Sequence[str],
    offsets: np.ndarray,
    special: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    styles: Sequence[str],
    index: np.ndarray,
    titles: Sequence[str] | None = None,
) -> str:
    """The HTML spans of the tokens at positions ``index`` over their text (``to_html``'s body).

    Text is taken by span (``span_text``); a token whose characters an earlier token already shows
    draws nothing, and its numbers join the hover text of the token that shows them. Special tokens
    show their own name and take no characters of the text. Everything is escaped.

    Args:
        text: the document's text, which ``offsets`` (n, 2) point into.
        tokens, special: (n,) every token's string and special flag.
        scores: (norm, logat, score), (n,) each: the hover text's numbers.
        styles: (n,) each token's inline style (``token_style`` of its colour level, or any other).
        index: the positions to draw, increasing.
        titles: (n,) text put before each token's numbers in its hover text; None: nothing.
    """
    norm, logat, score = scores
    kept_special = special[index]
    starts = np.where(kept_special, 0, offsets[index, 0])
    ends = np.where(kept_special, 0, offsets[index, 1])
    gaps, shown = span_text([tokens[i] for i in index], starts, ends, text)
    spans: list[list[str]] = []  # [gap, style, titles, text] per drawn token
    for i, is_special, gap, piece in zip(index, kept_special, gaps, shown):
        title = token_title(float(norm[i]), float(logat[i]), float(score[i]))
        if titles is not None:
            title = titles[i] + title
        if not piece and not is_special and spans:
            spans[-1][2] += "\n" + title
            continue
        spans.append([gap, styles[i], title, tokens[i] if is_special else piece])
    return "".join(
        f'{reveal_html(gap)}<span title="{html.escape(title)}" style="{style}">{reveal_html(piece)}</span>'
        for gap, style, title, piece in spans
    )


def text_block_html(body_html: str) -> str:
    """The block the token spans of one text are drawn in."""
    return f'<div dir="auto" style="font:14px/1.9 sans-serif;white-space:pre-wrap">{body_html}</div>'


def label_html(label: str | None) -> str:
    """A bold, bidi-isolated, escaped label (its ``repr``: quotes show leading spaces)."""
    return f'<b style="unicode-bidi:isolate">{reveal_html(repr(label), one_line=True)}</b>'


def to_html(result: TextAttribution, include_special: bool = False) -> str:
    """HTML for one scored text: tokens coloured by score, norm/logat/score on hover.

    All text is escaped, so any input (markup, entities, right-to-left text) renders as text;
    ``REVEALED`` characters show as escapes, labels are bidi-isolated, and the text is shown from
    its own characters by span (``span_text``). A token whose characters an earlier token already
    shows draws nothing; its numbers join the hover text of the token that shows them. The HTML
    has no script and loads nothing.
    """
    enc, att = result.encoded, result.attribution
    keep = np.ones(len(enc), dtype=bool) if include_special else ~enc.special
    scale = color_scale(att.score[keep])
    styles = [token_style(level) for level in color_levels(att.score, scale).tolist()]
    body_html = tokens_html(
        result.text,
        enc.tokens,
        enc.offsets,
        enc.special,
        (att.norm, att.logat, att.score),
        styles,
        np.flatnonzero(keep),
    )
    header = (
        f'<div style="font:12px sans-serif;margin-bottom:6px">target {label_html(result.target)}, '
        f"prediction {label_html(result.prediction)}</div>"
    )
    return f"<div>{header}{text_block_html(body_html)}{legend_html(scale)}</div>"


# Response tokens are underlined and the chat template's tokens grey, as in the report.
_UNDERLINE = ";text-decoration:underline;text-decoration-thickness:2px;text-underline-offset:4px"
_TEMPLATE_STYLE = "color:#9a9a9a;border-radius:3px"


def response_to_html(result: ResponseAttribution, include_special: bool = False) -> str:
    """HTML for one scored response: prompt and response tokens coloured by their summed score,
    the response underlined (hover: its step and log-probability), the tokens a chat template wrote
    grey and left out of the colour scale (hover: their segment and numbers).

    Escaped and drawn by span as ``to_html``; special tokens (chat markers) only with
    ``include_special``.
    """
    special, template, score = result.special, result.is_template, result.scores
    keep = np.ones(len(special), dtype=bool) if include_special else ~special
    scale = color_scale(score[keep & ~template])
    levels = color_levels(score, scale).tolist()
    steps, logprob = result.response_steps.tolist(), result.target_logprobs.tolist()
    styles, titles = [], []
    for level, segment, step, lp, is_template in zip(levels, result.segments, steps, logprob, template):
        if is_template:
            styles.append(_TEMPLATE_STYLE)
        else:
            styles.append(token_style(level) + (_UNDERLINE if step > 0 else ""))
        titles.append(f"response token {step} | log p {lp:.4g} | " if step > 0 else f"{segment} | ")
    body_html = tokens_html(
        result.text,
        result.tokens,
        result.char_spans,
        special,
        (result.norms, result.logats, score),
        styles,
        np.flatnonzero(keep),
        titles,
    )
    prob = "" if result.prediction_prob is None else f" (p={result.prediction_prob:.3g})"
    header = (
        f'<div style="font:12px sans-serif;margin-bottom:6px">response: <b>{result.n_response_tokens} '
        f"tokens</b>, mean log p {result.response_logprob:.4g}; first response token "
        f"{label_html(result.target)}, the model's own first token {label_html(result.prediction)}{prob}"
        + ("; truncated at max length" if result.truncated else "")
        + "</div>"
    )
    note = (
        '<div style="font:12px sans-serif;color:#444">underlined: the response'
        + ("; grey: written by the chat template, outside the colour scale" if template[keep].any() else "")
        + "</div>"
    )
    return f"<div>{header}{text_block_html(body_html)}{legend_html(scale)}{note}</div>"
