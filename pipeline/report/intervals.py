"""Figures with intervals on the report page: ``0.715 [0.68, 0.75]`` and CI whiskers in HTML/CSS.

A whisker is a line from the interval's low to its high end with a dot at the estimate, drawn on an
axis shared by the rows of one table (``Axis``), so whiskers of one table compare by eye; the axis
always holds 0, drawn as a thin vertical line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from normxlogit.pipeline.report.escaping import esc

WHISKER_CSS = """
.ci{position:relative;display:inline-block;width:180px;height:14px;vertical-align:middle}
.ci .zero{position:absolute;top:0;bottom:0;width:1px;background:#bbb}
.ci .span{position:absolute;top:6px;height:2px;background:#555;border-left:1px solid #555;
border-right:1px solid #555;box-sizing:content-box}
.ci .est{position:absolute;top:3px;width:8px;height:8px;margin-left:-4px;border-radius:50%;background:#b2182b}
.ci .est.neg{background:#2166ac}
"""


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


@dataclass(frozen=True)
class Axis:
    """The value range of one table's whiskers; it always holds 0."""

    low: float
    high: float

    @classmethod
    def of(cls, *columns: Iterable[float | None]) -> Axis:
        """The smallest range, 0 included, that holds every finite value of ``columns``."""
        values = _finite(v for column in columns for v in column)
        low, high = min([0.0, *values]), max([0.0, *values])
        return cls(low, high if high > low else low + 1.0)

    def at(self, value: float) -> float:
        """Where ``value`` lies on the axis, in percent of its width (clipped to 0..100)."""
        return min(100.0, max(0.0, 100.0 * (value - self.low) / (self.high - self.low)))


def whisker(axis: Axis, estimate: float | None, low: float | None, high: float | None) -> str:
    """A whisker from ``low`` to ``high`` with a dot at ``estimate``; without an interval, the dot only."""
    parts = [f'<span class="zero" style="left:{axis.at(0.0):.2f}%"></span>']
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        a, b = axis.at(low), axis.at(high)
        parts.append(f'<span class="span" style="left:{a:.2f}%;width:{max(b - a, 0.3):.2f}%"></span>')
    if estimate is not None and math.isfinite(estimate):
        sign = " neg" if estimate < 0 else ""
        parts.append(f'<span class="est{sign}" style="left:{axis.at(estimate):.2f}%"></span>')
    title = esc(with_interval(estimate, low, high))
    return f'<span class="ci" title="{title}">{"".join(parts)}</span>'


def number(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, or ``n/a``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def with_interval(estimate: float | None, low: float | None, high: float | None) -> str:
    """``0.715 [0.68, 0.75]``; the estimate alone without an interval."""
    if low is None or high is None:
        return number(estimate)
    return f"{number(estimate)} [{number(low)}, {number(high)}]"
