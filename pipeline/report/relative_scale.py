"""The report's per-document colour scale relative to the document's median score.

NormXLogit scores of a classifier are often all of one sign (15 to 45 for every token), so on the
absolute scale (white at 0, the ends at the largest absolute score) nearly every token is the same
red. The relative scale is diverging around the document's median: tokens above it take one hue,
tokens below it the other, with intensity by the distance to the median over a high quantile of
those distances, so one outlier does not wash out the rest (it is clipped to the scale's end).
The page's script computes the same scale for a step's scores (``relativeScale`` in ``assets``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normxlogit.display import color_levels

SPREAD_QUANTILE = 0.95  # the distance to the median that maps to the palette's ends


@dataclass(frozen=True)
class RelativeScale:
    """Where a document's colours are centred and how far the ends are.

    Attributes:
        center: the median of the scores (white).
        spread: the ``SPREAD_QUANTILE`` quantile of |score - center|, the palette's ends; the largest
            distance where that quantile is 0, and 1.0 where every score is the median.
    """

    center: float
    spread: float

    def levels(self, scores: np.ndarray) -> np.ndarray:
        """Palette index of each score (``display.color_levels`` of its distance to the median)."""
        return color_levels(np.asarray(scores, dtype=np.float64) - self.center, self.spread)


def relative_scale(scores: np.ndarray) -> RelativeScale:
    """The relative scale of ``scores`` (the tokens that count: no special or template tokens).

    Quantiles are numpy's default (linear interpolation), as in the page's script.
    """
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return RelativeScale(0.0, 1.0)
    center = float(np.median(finite))
    distance = np.abs(finite - center)
    spread = float(np.quantile(distance, SPREAD_QUANTILE))
    if spread <= 0:
        spread = float(distance.max())
    return RelativeScale(center, spread if spread > 0 else 1.0)
