"""Document-bootstrap intervals of ``evaluate``'s per-document metrics and their diagnosticity (numpy).

``ScalarReplicates`` is the state of a mergeable mean, like ``faithfulness_intervals.CurveReplicates``:
per (method, metric of ``ferret_faithfulness.SCALAR_METRICS``) the sum of the documents' values and
the number of documents that have one (a text above ``--loo-max-tokens`` has no ``taucorr_loo``, a
text whose empty input does not lower the prediction no ``norm_*``), and per (method, metric of
``DIAGNOSTIC_METRICS``) the same of the diagnosticity hits, plus an ``all`` row: per document the mean
over the methods. Each sum is kept as it is and in each of B Poisson-bootstrap replicates
(``normxlogit.bootstrap``: weights keyed by seed, document id and replicate, the same weights as every
other figure of the run, so differences are paired). A mean per replicate is (weighted sum of values)
/ (weighted number of documents with a value). Nothing per document is kept.
"""

from __future__ import annotations

import numpy as np

from normxlogit.bootstrap import (
    Resampling,
    StreamingReplicates,
    json_number,
    paired_difference,
    percentile_interval,
    ratio_replicates,
)
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.ferret_faithfulness import DIAGNOSTIC_METRICS, SCALAR_METRICS

ALL_METHODS = "all"


class ScalarReplicates:
    """Sums and counts of per-document scalar metrics and diagnosticity hits, as they are and in every
    bootstrap replicate; mergeable.

    Attributes:
        methods: methods (rows of each document's ``scalars`` and ``diagnostic``).
        plain: (2, rows) summed values and counts of documents with a value (every weight 1).
        replicates: the same (values, then counts) in every replicate.
        samples: documents added.
        loo_skipped: documents above the leave-one-out cap.
    """

    def __init__(self, methods: int, resampling: Resampling):
        self.methods = methods
        self._scalar_rows = methods * len(SCALAR_METRICS)
        rows = self._scalar_rows + (methods + 1) * len(DIAGNOSTIC_METRICS)
        self.plain = np.zeros((2, rows))
        self.replicates = StreamingReplicates(2 * rows, resampling)
        self.samples = 0
        self.loo_skipped = 0

    def _values(self, doc: DocFaithfulness) -> np.ndarray:
        """(rows,) one document's values, nan where none."""
        scalars = (
            doc.scalars if doc.scalars is not None else np.full((self.methods, len(SCALAR_METRICS)), np.nan)
        )
        hits = doc.diagnostic
        if hits is None:
            hits = np.full((self.methods, len(DIAGNOSTIC_METRICS)), np.nan)
        present = ~np.isnan(hits)
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = np.where(present.any(0), np.where(present, hits, 0).sum(0) / present.sum(0), np.nan)
        return np.concatenate([scalars.ravel(), hits.ravel(), pooled])

    def add(self, doc: DocFaithfulness, key: int) -> ScalarReplicates:
        """Add one document under its key (``bootstrap.document_keys`` of its id); returns self."""
        values = self._values(doc)
        present = ~np.isnan(values)
        both = np.stack([np.where(present, values, 0.0), present.astype(np.float64)])
        self.plain += both
        self.replicates.add(key, both.ravel())
        self.samples += 1
        self.loo_skipped += int(doc.loo_skipped)
        return self

    def merge(self, other: ScalarReplicates) -> ScalarReplicates:
        """Add another partial state in place (``other`` is left as it is); returns self."""
        self.plain += other.plain
        self.replicates.merge(other.replicates)
        self.samples += other.samples
        self.loo_skipped += other.loo_skipped
        return self

    def compact(self) -> ScalarReplicates:
        """Weigh the documents still buffered; returns self."""
        self.replicates.flush()
        return self

    def _means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows,) means, (rows, B) replicate means (nan: no document with a value), (rows,) counts."""
        self.replicates.flush()
        rows = self.plain.shape[1]
        weighted = self.replicates.sums.reshape(2, rows, -1)
        return (
            ratio_replicates(self.plain[0], self.plain[1]),
            ratio_replicates(weighted[0], weighted[1]),
            self.plain[1],
        )

    def method_summary(
        self, methods: tuple[str, ...], baselines: tuple[str, ...], metrics: tuple[str, ...] = SCALAR_METRICS
    ) -> dict[str, dict]:
        """``{method: {metric: {"mean", "ci": [low, high], "documents", "differences": {baseline:
        {"difference", "ci", "p"}}}}}`` for ``metrics`` (of ``SCALAR_METRICS``); the difference is
        the method's mean minus the baseline's in each replicate (paired)."""
        mean, reps, counts = self._means()
        shape = (self.methods, len(SCALAR_METRICS))
        mean, counts = mean[: self._scalar_rows].reshape(shape), counts[: self._scalar_rows].reshape(shape)
        reps = reps[: self._scalar_rows].reshape(*shape, -1)
        level = self.replicates.resampling.level
        low, high = (b.reshape(shape) for b in percentile_interval(reps.reshape(-1, reps.shape[-1]), level))
        present = [b for b in baselines if b in methods]
        out: dict[str, dict] = {}
        for i, method in enumerate(methods):
            out[method] = {}
            for metric in metrics:
                j = SCALAR_METRICS.index(metric)
                figures = {
                    "mean": json_number(mean[i, j]),
                    "ci": [json_number(low[i, j]), json_number(high[i, j])],
                    "documents": int(counts[i, j]),
                    "differences": {},
                }
                for base in present:
                    if base == method:
                        continue
                    b = methods.index(base)
                    diffs = reps[i, j] - reps[b, j]
                    figures["differences"][base] = paired_difference(diffs, mean[i, j] - mean[b, j], level)
                out[method][metric] = figures
        return out

    def diagnosticity(
        self, methods: tuple[str, ...], random: str, metrics: tuple[str, ...] = DIAGNOSTIC_METRICS
    ) -> dict[str, dict]:
        """``{metric: {"mean", "ci", "documents", "methods": {method: {"mean", "ci", "documents"}}}}``:
        the share of (document, random ranking) pairs where the metric prefers the method's ranking,
        pooled over the methods (each document: the mean over its methods) and per method; empty
        without the random method."""
        if random not in methods:
            return {}
        mean, reps, counts = self._means()
        d = len(DIAGNOSTIC_METRICS)
        shape = (self.methods + 1, d)
        mean, counts = mean[self._scalar_rows :].reshape(shape), counts[self._scalar_rows :].reshape(shape)
        reps = reps[self._scalar_rows :].reshape(*shape, -1)
        level = self.replicates.resampling.level
        low, high = (b.reshape(shape) for b in percentile_interval(reps.reshape(-1, reps.shape[-1]), level))

        def figure(i: int, j: int) -> dict:
            return {
                "mean": json_number(mean[i, j]),
                "ci": [json_number(low[i, j]), json_number(high[i, j])],
                "documents": int(counts[i, j]),
            }

        return {
            metric: {
                **figure(self.methods, DIAGNOSTIC_METRICS.index(metric)),
                "methods": {
                    m: figure(i, DIAGNOSTIC_METRICS.index(metric))
                    for i, m in enumerate(methods)
                    if m != random
                },
            }
            for metric in metrics
        }
