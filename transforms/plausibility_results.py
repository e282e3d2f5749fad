"""Aggregate ``evaluate``'s plausibility with a Beam combine, and its part of the result files.

``SumPlausibility`` is a CombineFn over the same ``KeyedFaithfulness`` as ``SumCurves``: its
accumulator (``normxlogit.plausibility_intervals.PlausibilityReplicates``) holds per (method, metric)
sums, as they are and in each document-bootstrap replicate, and the counts of documents without a
usable rationale. ``add_plausibility`` puts the figures into ``summary.json``:

- ``"plausibility"``: what was measured (``rationale_field``, ``unit``, ``k``, ``definitions``) and
  on how many documents (``documents``, ``missing_rationale``, ``empty_rationale``);
- per method, ``"plausibility": {metric: {"mean", "ci", "differences": {baseline: {...}}}}``, the
  metrics named as ferret names them (``auprc_plau``, ``token_f1_plau``, ``token_iou_plau``);

and ``plausibility_table`` renders them for ``results.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from normxlogit.bootstrap import Resampling, document_keys
from normxlogit.plausibility import PLAUSIBILITY_METRICS
from normxlogit.plausibility_intervals import PlausibilityReplicates
from normxlogit.transforms.ferret_results import difference_cell, estimate_cell

PLAUSIBILITY = "plausibility"


@dataclass(frozen=True)
class MeasuredPlausibility:
    """The combined plausibility of a run and what it was measured against.

    Attributes:
        sums: the combine's final state.
        rationale_field: the record field holding the rationales.
        k: words chosen for token F1 and IoU; None: each rationale's length.
    """

    sums: PlausibilityReplicates
    rationale_field: str
    k: int | None = None


class SumPlausibility(beam.CombineFn):
    """KeyedFaithfulness -> MeasuredPlausibility: plausibility sums per method and metric, as they are
    and in every bootstrap replicate (a document without plausibility counts as without a rationale)."""

    def __init__(self, methods: int, resampling: Resampling, rationale_field: str, k: int | None = None):
        self._methods = methods
        self._resampling = resampling
        self._field = rationale_field
        self._k = k

    def create_accumulator(self) -> PlausibilityReplicates:
        return PlausibilityReplicates(self._methods, self._resampling)

    def add_input(self, acc: PlausibilityReplicates, doc) -> PlausibilityReplicates:
        return acc.add(doc.faithfulness.plausibility, int(document_keys([doc.doc_id])[0]))

    def merge_accumulators(self, accs) -> PlausibilityReplicates:
        merged = self.create_accumulator()
        for acc in accs:
            merged.merge(acc)
        return merged

    def compact(self, acc: PlausibilityReplicates) -> PlausibilityReplicates:
        return acc.compact()

    def extract_output(self, acc: PlausibilityReplicates) -> MeasuredPlausibility:
        return MeasuredPlausibility(acc.compact(), self._field, self._k)


def add_plausibility(
    summary: dict, measured: MeasuredPlausibility, methods: tuple[str, ...], baselines: tuple[str, ...]
) -> dict:
    """Add the ``plausibility`` section and each method's figures to ``summary``; returns it."""
    per_method = measured.sums.method_summary(methods, baselines)
    for method in methods:
        summary["methods"][method][PLAUSIBILITY] = per_method[method]
    summary[PLAUSIBILITY] = measured.sums.section(measured.rationale_field, measured.k)
    return summary


def plausibility_table(summary: dict) -> str:
    """The plausibility part of ``results.md``: means with intervals, then paired differences per
    baseline; "" when the summary has none."""
    section = summary.get(PLAUSIBILITY)
    if section is None:
        return ""
    level = summary["interval"]["level"]
    k = section["k"] if isinstance(section["k"], int) else "the record's rationale length"
    lines = [
        "",
        f"Plausibility against the rationales in field `{section['rationale_field']}` over "
        f"{section['documents']:,} documents ({section['missing_rationale']:,} without a rationale, "
        f"{section['empty_rationale']:,} whose rationale marks no word the model read: left out), on "
        f"words (a word's score: the sum of its tokens'), ferret's definitions; k = {k}; "
        f"[low, high]: {level:.0%} document-bootstrap interval. Higher is better.",
        "",
        "| method | " + " | ".join(PLAUSIBILITY_METRICS) + " |",
        "|---|---|---|---|",
    ]
    methods = summary["methods"]
    for method, figures in methods.items():
        cells = [estimate_cell(figures[PLAUSIBILITY][metric]) for metric in PLAUSIBILITY_METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for base in summary["interval"]["baselines"]:
        if base not in methods or section["documents"] == 0:
            continue
        lines += [
            "",
            f"Plausibility, paired differences to {base} (method minus {base}, same resampled documents, "
            f"{level:.0%} interval, two-sided bootstrap p-value).",
            "",
            "| method | " + " | ".join(PLAUSIBILITY_METRICS) + " |",
            "|---|---|---|---|",
        ]
        for method, figures in methods.items():
            if method != base:
                cells = [
                    difference_cell(figures[PLAUSIBILITY][metric]["differences"][base])
                    for metric in PLAUSIBILITY_METRICS
                ]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
