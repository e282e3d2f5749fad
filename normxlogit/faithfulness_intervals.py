"""Document-bootstrap intervals of ``evaluate``'s faithfulness figures (numpy: no torch, no Beam).

``CurveReplicates`` holds the plain sums of ``faithfulness.CurveSums`` (which give every mean, as
before) and the same sums in each of B Poisson-bootstrap replicates (``normxlogit.bootstrap``): per
(figure, method, metric, k) the weighted sum of the documents' values, and the weighted number of
documents. A document's weights depend only on (seed, its id, replicate), so the state adds one
document at a time and merges in any split (a Beam combine) without keeping anything per document,
and replicate b weighs the same documents for every method: the difference of two methods in
replicate b is a paired difference.

What ``summary`` adds to ``CurveSums.summary`` (whose keys and values it keeps):

- per method, metric and figure (drop, accuracy): the 95% percentile interval of the mean over k of
  the per-k means, ``"drop_ci": [low, high]``; replicate b's value is the mean over k of
  (weighted sum / weighted number of documents);
- per method and metric, ``"differences"``: the paired difference to each baseline (random, the
  gradient methods) other than itself, method minus baseline, with its interval (the replicates'
  differences) and the two-sided bootstrap p-value of difference == 0 (``bootstrap.p_values``);
- ``interval_description``: what the intervals are (kind, level, replicates, seed, the baselines), the
  summary's ``"interval"``.

``curve_rows`` adds the interval of every per-k mean (``drop_low``, ``drop_high``, ``accuracy_low``,
``accuracy_high``): the bands of ``curves.png``.
"""

from __future__ import annotations

import numpy as np

from normxlogit.bootstrap import Resampling, StreamingReplicates, json_number, p_values, percentile_interval
from normxlogit.faithfulness import METRICS, PERCENTS, CurveSums, DocFaithfulness

FIGURES: tuple[str, ...] = ("drop", "accuracy")
INTERVAL_KIND = "percentile document bootstrap"


class CurveReplicates:
    """``CurveSums`` and its document-bootstrap replicates: the state of ``evaluate``'s combine.

    Attributes:
        sums: the plain sums and counts (every document weight 1).
        replicates: per (figure, method, metric, k), flattened in that order, the weighted sums of
            each replicate; its ``weights`` are the weighted numbers of documents.
    """

    def __init__(self, methods: int, resampling: Resampling, ks: int = len(PERCENTS)):
        self.sums = CurveSums.empty(methods, ks)
        self.replicates = StreamingReplicates(len(FIGURES) * self.sums.drop.size, resampling)

    @property
    def resampling(self) -> Resampling:
        """Replicates, seed and level of the intervals."""
        return self.replicates.resampling

    def add(self, doc: DocFaithfulness, key: int) -> CurveReplicates:
        """Add one document under its key (``bootstrap.document_keys`` of its id); returns self."""
        self.sums.add(doc)
        values = np.concatenate([doc.drop.ravel(), np.asarray(doc.correct, dtype=np.float64).ravel()])
        self.replicates.add(key, values)
        return self

    def merge(self, other: CurveReplicates) -> CurveReplicates:
        """Add another partial state in place (``other`` is left as it is); returns self."""
        self.sums.merge(other.sums)
        self.replicates.merge(other.replicates)
        return self

    def compact(self) -> CurveReplicates:
        """Weigh the documents still buffered (smaller to ship between workers); returns self."""
        self.replicates.flush()
        return self

    def replicate_means(self) -> np.ndarray:
        """(figures, M, metrics, K, B) per-k means in every replicate; nan where none drew a document."""
        return self.replicates.means().reshape(len(FIGURES), *self.sums.drop.shape, -1)

    def curve_rows(self, methods: tuple[str, ...], percents: tuple[int, ...] = PERCENTS) -> list[dict]:
        """``CurveSums.curve_rows`` with the interval of each per-k mean: ``drop_low``, ``drop_high``,
        ``accuracy_low``, ``accuracy_high`` (None where no replicate has a value)."""
        rows = self.sums.curve_rows(methods, percents)
        means = self.replicate_means()
        low, high = percentile_interval(means.reshape(-1, means.shape[-1]), self.resampling.level)
        low, high = low.reshape(len(FIGURES), -1), high.reshape(len(FIGURES), -1)
        for n, row in enumerate(rows):  # rows and the flattened (M, metrics, K) share one order
            for f, figure in enumerate(FIGURES):
                row[f"{figure}_low"], row[f"{figure}_high"] = json_number(low[f, n]), json_number(high[f, n])
        return rows

    def interval_description(self, baselines: tuple[str, ...]) -> dict:
        """The summary's ``"interval"`` section: what every interval and difference is."""
        r = self.resampling
        return {
            "kind": INTERVAL_KIND,
            "level": r.level,
            "replicates": r.replicates,
            "seed": r.seed,
            "unit": "document",
            "weights": "Poisson(1) per document and replicate, a function of (seed, doc id, replicate)",
            "statistic": "mean over k of the per-k means over documents",
            "differences": "method minus baseline on the same resampled documents (paired); p: two-sided "
            "bootstrap p-value of difference = 0",
            "baselines": list(baselines),
        }

    def summary(self, methods: tuple[str, ...], baselines: tuple[str, ...]) -> dict:
        """``CurveSums.summary`` with intervals and paired differences to ``baselines`` (what they are:
        ``interval_description``).

        Args:
            methods: the method of each row, in order.
            baselines: the methods every other one is compared with; those not in ``methods`` are
                left out.
        """
        summary = self.sums.summary(methods)
        present = tuple(b for b in baselines if b in methods)
        level = self.resampling.level
        per_metric = self.replicate_means().mean(axis=3)  # (figures, M, metrics, B)
        low, high = percentile_interval(per_metric.reshape(-1, per_metric.shape[-1]), level)
        low, high = low.reshape(per_metric.shape[:3]), high.reshape(per_metric.shape[:3])
        for i, method in enumerate(methods):
            for j, metric in enumerate(METRICS):
                figures = summary["methods"][method][metric]
                for f, figure in enumerate(FIGURES):
                    figures[f"{figure}_ci"] = [json_number(low[f, i, j]), json_number(high[f, i, j])]
                figures["differences"] = {
                    base: self._difference(summary, per_metric, methods, method, base, metric)
                    for base in present
                    if base != method
                }
        return summary

    def _difference(
        self,
        summary: dict,
        per_metric: np.ndarray,
        methods: tuple[str, ...],
        method: str,
        base: str,
        metric: str,
    ) -> dict:
        """One method's paired difference to one baseline on one metric, every figure."""
        i, b, j = methods.index(method), methods.index(base), METRICS.index(metric)
        diffs = per_metric[:, i, j] - per_metric[:, b, j]  # (figures, B)
        low, high = percentile_interval(diffs, self.resampling.level)
        p = p_values(diffs)
        out = {}
        for f, figure in enumerate(FIGURES):
            value, other = (
                summary["methods"][method][metric][figure],
                summary["methods"][base][metric][figure],
            )
            out[figure] = None if value is None or other is None else value - other
            out[f"{figure}_ci"] = [json_number(low[f]), json_number(high[f])]
            out[f"{figure}_p"] = json_number(p[f])
        return out
