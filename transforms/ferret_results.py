"""Aggregate ``evaluate``'s ferret metrics and diagnosticity with a Beam combine; their part of the
result files.

``SumScalars`` is a CombineFn over the same ``KeyedFaithfulness`` as ``SumCurves``: its accumulator
(``normxlogit.scalar_intervals.ScalarReplicates``) holds per (method, metric) sums and counts, as they
are and in each document-bootstrap replicate. ``add_scalars`` puts into ``summary.json``:

- ``"ferret"``: what the metrics are (thresholds, removal, the leave-one-out cap and the documents it
  skipped) and ``"methods"``: per method each metric of ferret's set under its ferret name
  (``aopc_compr``, ``aopc_suff``, ``taucorr_loo``) and Carton et al.'s (``norm_compr``,
  ``norm_suff``): ``{"mean", "ci", "documents", "differences": {baseline: {"difference", "ci",
  "p"}}}``; response runs have ``aopc_compr`` and ``aopc_suff`` only (on the response's mean
  log-probability). (Beside, not inside, the summary's ``"methods"``, whose keys are the
  mask-token metrics as before.)
- ``"diagnosticity"``: per metric the share of (document, random ranking) pairs in which it prefers a
  method's ranking, pooled over the methods and per method, with intervals (Chan et al. 2022);

and ``scalars_table`` renders them for ``results.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from normxlogit.bootstrap import Resampling, document_keys
from normxlogit.faithfulness import RANDOM
from normxlogit.ferret_faithfulness import (
    DIAGNOSTIC_METRICS,
    DIRECTION,
    FERRET_THRESHOLDS,
    RESPONSE_SCALAR_METRICS,
    SCALAR_METRICS,
)
from normxlogit.scalar_intervals import ScalarReplicates

FERRET = "ferret"
DIAGNOSTICITY = "diagnosticity"
RESPONSE_DIAGNOSTIC_METRICS = ("comprehensiveness", "sufficiency", *RESPONSE_SCALAR_METRICS)


@dataclass(frozen=True)
class MeasuredScalars:
    """The combined per-document metrics of a run and how they were measured.

    Attributes:
        sums: the combine's final state.
        loo_max_tokens: the leave-one-out cap (None: a response run, no taucorr_loo).
        response: a response run (AOPC on the response's mean log-probability).
    """

    sums: ScalarReplicates
    loo_max_tokens: int | None
    response: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        return RESPONSE_SCALAR_METRICS if self.response else SCALAR_METRICS

    @property
    def diagnostic_metrics(self) -> tuple[str, ...]:
        return RESPONSE_DIAGNOSTIC_METRICS if self.response else DIAGNOSTIC_METRICS


class SumScalars(beam.CombineFn):
    """KeyedFaithfulness -> MeasuredScalars: per-document metric sums per method, as they are and in
    every bootstrap replicate."""

    def __init__(self, methods: int, resampling: Resampling, loo_max_tokens: int | None, response: bool):
        self._methods = methods
        self._resampling = resampling
        self._loo = loo_max_tokens
        self._response = response

    def create_accumulator(self) -> ScalarReplicates:
        return ScalarReplicates(self._methods, self._resampling)

    def add_input(self, acc: ScalarReplicates, doc) -> ScalarReplicates:
        return acc.add(doc.faithfulness, int(document_keys([doc.doc_id])[0]))

    def merge_accumulators(self, accs) -> ScalarReplicates:
        merged = self.create_accumulator()
        for acc in accs:
            merged.merge(acc)
        return merged

    def compact(self, acc: ScalarReplicates) -> ScalarReplicates:
        return acc.compact()

    def extract_output(self, acc: ScalarReplicates) -> MeasuredScalars:
        return MeasuredScalars(acc.compact(), self._loo, self._response)


def ferret_section(measured: MeasuredScalars) -> dict:
    """The summary's ``"ferret"`` section: what the per-document metrics are and what was skipped."""
    sums = measured.sums
    value = "the response's mean per-token log-probability" if measured.response else "p(y_hat | x)"
    section = {
        "metrics": list(measured.metrics),
        "thresholds": [round(float(t), 1) for t in FERRET_THRESHOLDS],
        "removal": "tokens removed from the token ids (not masked); special tokens"
        + (
            " and chat-template tokens never removed; the response untouched"
            if measured.response
            else " never removed"
        ),
        "rationale": "at each threshold t the top int(t * n) rankable tokens with a score > 0; a rationale "
        "equal to the previous one is skipped (ferret's defaults)",
        "value": value,
        "documents": sums.samples,
    }
    if not measured.response:
        section["loo_max_tokens"] = measured.loo_max_tokens
        section["loo_skipped"] = sums.loo_skipped
        section["loo_skipped_reason"] = (
            f"more than {measured.loo_max_tokens} rankable tokens (--loo-max-tokens): taucorr_loo costs one "
            "forward pass per token"
        )
        section["normalised"] = (
            "Carton et al. 2020: NormComp = max(0, d_comp) / null, NormSuff = 1 - max(0, d_suff) / null, "
            "null = p(y|x) - p(y|every ranked token masked), each clipped to [0, 1], mean over k = 10%..90% "
            "of the mask-token variant; no value where null <= 0"
        )
    return section


def add_scalars(
    summary: dict, measured: MeasuredScalars, methods: tuple[str, ...], baselines: tuple[str, ...]
) -> dict:
    """Add the ``ferret`` section (with each method's figures) and ``diagnosticity`` to ``summary``."""
    summary[FERRET] = {
        **ferret_section(measured),
        "methods": measured.sums.method_summary(methods, baselines, measured.metrics),
    }
    summary[DIAGNOSTICITY] = {
        "metrics": measured.sums.diagnosticity(methods, RANDOM, measured.diagnostic_metrics),
        "description": "Chan et al. 2022: the share of (document, random ranking) pairs in which the metric "
        "strictly prefers the method's ranking (comprehensiveness, sufficiency: the mean drop over k); "
        "'mean' pools the methods (per document the mean over them). Near 0.5 or below: the metric "
        "cannot tell an explanation from a random one on this model and data"
        + ("" if RANDOM in methods else ". Needs the random method: none measured"),
    }
    return summary


def estimate_cell(figure: dict) -> str:
    """A results.md cell: ``mean [low, high]`` of a ``{"mean", "ci"}`` figure, '-' without one."""
    mean, (low, high) = figure["mean"], figure["ci"]
    if mean is None:
        return "-"
    return f"{mean:.3f}" if low is None or high is None else f"{mean:.3f} [{low:.2f}, {high:.2f}]"


def difference_cell(figure: dict) -> str:
    """A results.md cell: ``+d [low, high] p=...`` of a paired difference, '-' without one."""
    value, (low, high), p = figure["difference"], figure["ci"], figure["p"]
    if value is None or low is None or high is None or p is None:
        return "-"
    shown = f"p={p:.3f}" if p >= 0.001 else "p<0.001"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}] {shown}"


def _better(metric: str) -> str:
    return "higher better" if DIRECTION[metric] > 0 else "lower better"


def scalars_table(summary: dict) -> str:
    """The ferret-metric and diagnosticity part of ``results.md``; "" when the summary has none."""
    section = summary.get(FERRET)
    if section is None:
        return ""
    metrics = section["metrics"]
    level = summary["interval"]["level"]
    what = "prompt/response pairs" if summary.get("mode") == "response" else "documents"
    loo = ""
    if "loo_max_tokens" in section:
        loo = (
            f"; taucorr_loo: Kendall tau-b of the scores and the leave-one-out drops, "
            f"{section['loo_skipped']:,} {what} skipped ({section['loo_skipped_reason']}); norm_compr, "
            "norm_suff: Carton et al. 2020, normalised by the drop to the empty input"
        )
    lines = [
        "",
        f"ferret's metrics over {section['documents']:,} {what} (thresholds 10%..100%, tokens removed, only "
        f"tokens with a positive score, on {section['value']}{loo}; [low, high]: {level:.0%} "
        "document-bootstrap interval; documents with a value in `summary.json`).",
        "",
        "| method | " + " | ".join(f"{m} ({_better(m)})" for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    methods = section["methods"]
    for method, figures in methods.items():
        lines.append(f"| {method} | " + " | ".join(estimate_cell(figures[m]) for m in metrics) + " |")
    for base in summary["interval"]["baselines"]:
        lines += [
            "",
            f"Paired differences to {base} (method minus {base}, {level:.0%} interval, two-sided bootstrap "
            "p-value):",
            "",
            "| method | " + " | ".join(metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for method, figures in methods.items():
            if method != base:
                cells = [difference_cell(figures[m]["differences"][base]) for m in metrics]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    diag = summary[DIAGNOSTICITY]
    lines += ["", f"Diagnosticity: {diag['description']}.", ""]
    if diag["metrics"]:
        shown = list(next(iter(diag["metrics"].values()))["methods"])
        lines += [
            "| metric | all methods | " + " | ".join(shown) + " |",
            "|---|---|" + "---|" * len(shown),
        ]
        for metric, figures in diag["metrics"].items():
            cells = [estimate_cell(figures)] + [estimate_cell(figures["methods"][m]) for m in shown]
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
