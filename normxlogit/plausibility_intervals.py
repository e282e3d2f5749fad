"""Document-bootstrap intervals of ``evaluate``'s plausibility figures (numpy: no torch, no Beam).

``PlausibilityReplicates`` is the state of a mergeable mean, like
``faithfulness_intervals.CurveReplicates``: per (method, metric) the sum of the scored documents'
values, as they are and in each of B Poisson-bootstrap replicates (``normxlogit.bootstrap``, weights
keyed by seed, document id and replicate: the same weights as the faithfulness figures, so every
difference is paired), and how many documents had no rationale (``missing``) or one that marks no
word the model read (``empty``). Nothing per document is kept.

``method_summary`` gives, per method and metric of ``plausibility.PLAUSIBILITY_METRICS``, the mean
over scored documents, its 95% percentile interval and the paired difference to each baseline (interval
and two-sided bootstrap p-value); ``section`` says what was measured and on how many documents.
"""

from __future__ import annotations

import math

import numpy as np

from normxlogit.bootstrap import (
    Resampling,
    StreamingReplicates,
    json_number,
    paired_difference,
    percentile_interval,
)
from normxlogit.plausibility import EMPTY, MISSING, PLAUSIBILITY_METRICS, SCORED, DocPlausibility

UNIT = "word"


class PlausibilityReplicates:
    """Sums of per-document plausibility, as they are and in every bootstrap replicate; mergeable.

    Attributes:
        sums: (M, 3) summed values of the scored documents.
        counts: documents per status (``scored``, ``missing``, ``empty``).
        replicates: (M * 3) weighted sums per replicate; its weights: the weighted numbers of scored
            documents.
    """

    def __init__(self, methods: int, resampling: Resampling):
        self.sums = np.zeros((methods, len(PLAUSIBILITY_METRICS)))
        self.counts = {SCORED: 0, MISSING: 0, EMPTY: 0}
        self.replicates = StreamingReplicates(self.sums.size, resampling)

    def add(self, doc: DocPlausibility, key: int) -> PlausibilityReplicates:
        """Add one document under its key (``bootstrap.document_keys`` of its id); returns self."""
        self.counts[doc.status] += 1
        if doc.values is not None:
            self.sums += doc.values
            self.replicates.add(key, doc.values.ravel())
        return self

    def merge(self, other: PlausibilityReplicates) -> PlausibilityReplicates:
        """Add another partial state in place (``other`` is left as it is); returns self."""
        self.sums += other.sums
        for status, n in other.counts.items():
            self.counts[status] += n
        self.replicates.merge(other.replicates)
        return self

    def compact(self) -> PlausibilityReplicates:
        """Weigh the documents still buffered; returns self."""
        self.replicates.flush()
        return self

    def method_summary(self, methods: tuple[str, ...], baselines: tuple[str, ...]) -> dict[str, dict]:
        """``{method: {metric: {"mean", "ci": [low, high], "differences": {baseline: {"difference",
        "ci", "p"}}}}}``; means and intervals null (None) without a scored document."""
        n = self.counts[SCORED]
        level = self.replicates.resampling.level
        means = self.replicates.means().reshape(*self.sums.shape, -1)  # (M, 3, B)
        low, high = (
            b.reshape(self.sums.shape) for b in percentile_interval(means.reshape(-1, means.shape[-1]), level)
        )
        present = [b for b in baselines if b in methods]
        out: dict[str, dict] = {}
        for i, method in enumerate(methods):
            out[method] = {}
            for j, metric in enumerate(PLAUSIBILITY_METRICS):
                figure = {
                    "mean": float(self.sums[i, j] / n) if n else None,
                    "ci": [json_number(low[i, j]), json_number(high[i, j])],
                    "differences": {},
                }
                for base in present:
                    if base == method:
                        continue
                    b = methods.index(base)
                    value = (self.sums[i, j] - self.sums[b, j]) / n if n else math.nan
                    figure["differences"][base] = paired_difference(means[i, j] - means[b, j], value, level)
                out[method][metric] = figure
        return out

    def section(self, field: str, k: int | None) -> dict:
        """The summary's ``"plausibility"`` section: the field, the unit, k, and the document counts."""
        return {
            "rationale_field": field,
            "unit": UNIT,
            "metrics": list(PLAUSIBILITY_METRICS),
            "k": "each record's rationale length" if k is None else k,
            "documents": self.counts[SCORED],
            "missing_rationale": self.counts[MISSING],
            "empty_rationale": self.counts[EMPTY],
            "definitions": "ferret 0.4.2's (only_pos): auprc_plau = trapezoidal area under the precision-"
            "recall curve of the word scores (negatives set to 0); token_f1_plau and token_iou_plau of the "
            "top-k positive-scored words against the rationale; a word's score is the sum of its tokens'",
        }
