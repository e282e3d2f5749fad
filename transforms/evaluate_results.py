"""Aggregate faithfulness with a Beam combine and write the result files of ``evaluate``.

``SumCurves`` is a CombineFn over per-document ``KeyedFaithfulness``: its accumulator
(``normxlogit.faithfulness_intervals.CurveReplicates``) holds only sums and counts per (method,
metric, k), as they are and in each of B document-bootstrap replicates (weights keyed by the
document id), so workers pre-aggregate and nothing per document is collected to the driver.
``write_results`` turns the final sums into:

- ``curves.parquet``: one row per (method, metric, k): drop, accuracy, samples, and the 95%
  interval of each per-k mean (``drop_low``, ``drop_high``, ``accuracy_low``, ``accuracy_high``);
- ``summary.json``: ``{"samples": N, "methods": {method: {metric: {"drop", "accuracy", "drop_ci",
  "accuracy_ci", "differences": {baseline: {...}}}}}, "interval": {...}, "random_seeds": R}``;
- ``results.md``: the same as Markdown tables, ``0.715 [0.68, 0.75]``, and the paired differences;
- ``curves.png``: drop and accuracy against k per method with their interval bands (matplotlib, if
  installed);
- with ``SumScalars``' output (``transforms.ferret_results``): summary.json's ``"ferret"`` (ferret's
  metrics and Carton et al.'s per method) and ``"diagnosticity"``, and their tables in results.md.

In response mode (``normxlogit.response_faithfulness``) the drop is that of the response's mean
per-token log-probability and the accuracy the share of response tokens still the argmax; the
summary then also holds ``"mode": "response"``, a ``"response"`` section (what was measured, how
many pairs) and each method's ``"pairs"``.

With ``--rationale-field`` the summary also holds a ``"plausibility"`` section and each method its
``"plausibility"`` figures, and ``results.md`` their tables (``transforms.plausibility_results``).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from normxlogit.bootstrap import Resampling, document_keys
from normxlogit.faithfulness import METRICS, DocFaithfulness
from normxlogit.faithfulness_intervals import FIGURES, CurveReplicates
from normxlogit.response_spec import ResponseSpec
from normxlogit.transforms.ferret_results import MeasuredScalars, add_scalars, scalars_table
from normxlogit.transforms.layout import CURVES, PLOT, SUMMARY, TABLE
from normxlogit.transforms.plausibility_results import (
    MeasuredPlausibility,
    add_plausibility,
    plausibility_table,
)
from normxlogit.transforms.writers import join

CURVE_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("metric", pa.string()),
        ("k", pa.float64()),
        ("drop", pa.float64()),
        ("accuracy", pa.float64()),
        ("samples", pa.int64()),
        *((f"{figure}_{end}", pa.float64()) for figure in FIGURES for end in ("low", "high")),
    ]
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyedFaithfulness:
    """One document's faithfulness and its id (which keys its bootstrap weights)."""

    doc_id: str
    faithfulness: DocFaithfulness


class SumCurves(beam.CombineFn):
    """KeyedFaithfulness -> CurveReplicates: sums and counts per method, metric and k, as they are and
    in every bootstrap replicate."""

    def __init__(self, methods: int, resampling: Resampling):
        self._methods = methods
        self._resampling = resampling

    def create_accumulator(self) -> CurveReplicates:
        return CurveReplicates(self._methods, self._resampling)

    def add_input(self, acc: CurveReplicates, doc: KeyedFaithfulness) -> CurveReplicates:
        return acc.add(doc.faithfulness, int(document_keys([doc.doc_id])[0]))

    def merge_accumulators(self, accs) -> CurveReplicates:
        merged = self.create_accumulator()
        for acc in accs:
            merged.merge(acc)
        return merged

    def compact(self, acc: CurveReplicates) -> CurveReplicates:
        return acc.compact()

    def extract_output(self, acc: CurveReplicates) -> CurveReplicates:
        return acc.compact()


RESPONSE_MODE = "response"


def response_section(response: ResponseSpec, replacement: str) -> dict:
    """The ``"response"`` section of a response-mode summary (the pair count is added on writing)."""
    return {
        "source": response.kind.source_name,
        "generate": response.max_new_tokens,
        "drop": "mean per-token log-probability of the response (teacher forced), original minus perturbed",
        "accuracy": "share of response tokens that stay the argmax of their step",
        "ranked": "context tokens before the response, less special and chat-template tokens; "
        "m = floor(k * ranked)",
        "replacement_token": replacement,
    }


def results_table(summary: dict) -> str:
    """``summary.json`` as Markdown: each mean with its interval (``0.715 [0.68, 0.75]``) and the better
    direction of each figure, then one table of paired differences per baseline."""
    response = summary.get("mode") == RESPONSE_MODE
    drop, acc = ("log-prob drop", "token accuracy") if response else ("drop", "accuracy")
    what = "prompt/response pairs" if response else "samples"
    interval = summary["interval"]
    seeds = summary.get("random_seeds", 1)
    random_note = f"; random: mean of {seeds} seeded rankings per {what[:-1]}" if seeds > 1 else ""
    header = (
        f"| method | comprehensiveness {drop} (higher better) | comprehensiveness {acc} (lower better) "
        f"| sufficiency {drop} (lower better) | sufficiency {acc} (higher better) |"
    )
    lines = [
        f"Faithfulness over {summary['samples']:,} {what} (means over k = 10%..90% and {what}; "
        f"[low, high]: {interval['level']:.0%} {interval['kind']} interval, B={interval['replicates']:,}, "
        f"seed {interval['seed']}{random_note}).",
        "",
        header + (" pairs |" if response else ""),
        "|---|---|---|---|---|" + ("---|" if response else ""),
    ]
    for method, figures in summary["methods"].items():
        cells = [_estimate(figures[metric], key) for metric in METRICS for key in FIGURES]
        if response:
            cells.append(f"{figures['pairs']:,}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for base in interval["baselines"]:
        lines += [
            "",
            f"Paired differences to {base}: method minus {base} on the same resampled {what}, "
            f"{interval['level']:.0%} interval, two-sided bootstrap p-value of no difference.",
            "",
            header,
            "|---|---|---|---|---|",
        ]
        for method, figures in summary["methods"].items():
            if method != base:
                cells = [
                    _difference(figures[metric]["differences"][base], key)
                    for metric in METRICS
                    for key in FIGURES
                ]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if response:
        section = summary["response"]
        lines += ["", f"Drop: {section['drop']}. Token accuracy: {section['accuracy']}."]
    return "\n".join(lines) + "\n"


def _estimate(figures: dict, key: str) -> str:
    """``0.715 [0.68, 0.75]``; ``-`` without a value, the bare mean without an interval."""
    value, (low, high) = figures[key], figures[f"{key}_ci"]
    if value is None:
        return "-"
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.2f}, {high:.2f}]"


def _difference(figures: dict, key: str) -> str:
    """``+0.024 [+0.011, +0.037] p=0.002``; ``-`` without a value."""
    value, (low, high), p = figures[key], figures[f"{key}_ci"], figures[f"{key}_p"]
    if value is None or low is None or high is None or p is None:
        return "-"
    shown = f"p={p:.3f}" if p >= 0.001 else "p<0.001"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}] {shown}"


def curves_plot(rows: list[dict], methods: tuple[str, ...], response: bool = False) -> bytes | None:
    """PNG of drop and accuracy against k, one line per method with its interval band; None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log.warning('matplotlib is not installed, no %s (pip install "normxlogit[eval]")', PLOT)
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for row, metric in enumerate(METRICS):
        for col, key in enumerate(FIGURES):
            ax = axes[row, col]
            for method in methods:
                points = [r for r in rows if r["method"] == method and r["metric"] == metric]
                ks = [r["k"] * 100 for r in points]
                (line,) = ax.plot(ks, [r[key] for r in points], marker="o", label=method)
                low, high = ([r[f"{key}_{end}"] for r in points] for end in ("low", "high"))
                if None not in low and None not in high:
                    ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
            names = ("mean log-prob drop", "token accuracy") if response else ("confidence drop", "accuracy")
            ax.set_title(f"{metric}: {names[col]}")
            ax.set_xlabel("k: % of tokens")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, title="bands: 95% document-bootstrap interval", title_fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _write(path: str, data: bytes, mime: str) -> None:
    with FileSystems.create(path, mime_type=mime) as fh:
        fh.write(data)


def write_results(
    sums: CurveReplicates,
    output: str,
    methods: tuple[str, ...],
    baselines: tuple[str, ...] = (),
    random_seeds: int = 1,
    response: dict | None = None,
    plausibility: MeasuredPlausibility | None = None,
    scalars: MeasuredScalars | None = None,
) -> list[str]:
    """Write the result files under ``output``; returns their names (relative to it).

    Args:
        methods: the method of each row of the sums, in order.
        baselines: the methods every other one is compared with (those in ``methods``).
        random_seeds: rankings the random baseline averaged per document (recorded in the summary).
        response: the ``response_section`` of a response-mode run; None for the paper's metrics.
        plausibility: the combined plausibility with ``--rationale-field`` (``plausibility_results``).
        scalars: the combined ferret metrics and diagnosticity (``ferret_results``).
    """
    rows = sums.curve_rows(methods) if sums.sums.samples else []
    summary = sums.summary(methods, baselines)
    if response is not None:
        summary["mode"] = RESPONSE_MODE
        summary["response"] = {**response, "pairs": sums.sums.samples}
        for figures in summary["methods"].values():
            figures["pairs"] = sums.sums.samples
    # Added after the keys of earlier versions, which keep their order.
    summary["interval"] = sums.interval_description(tuple(b for b in baselines if b in methods))
    summary["random_seeds"] = random_seeds
    if scalars is not None:
        add_scalars(summary, scalars, methods, tuple(summary["interval"]["baselines"]))
    if plausibility is not None:
        add_plausibility(summary, plausibility, methods, tuple(summary["interval"]["baselines"]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CURVE_SCHEMA), buf)
    _write(join(output, CURVES), buf.getvalue(), "application/octet-stream")
    _write(join(output, SUMMARY), json.dumps(summary, indent=2).encode(), "application/json")
    table = results_table(summary) + scalars_table(summary) + plausibility_table(summary)
    _write(join(output, TABLE), table.encode(), "text/markdown")
    written = [CURVES, SUMMARY, TABLE]
    png = curves_plot(rows, methods, response is not None) if rows else None
    if png is not None:
        _write(join(output, PLOT), png, "image/png")
        written.append(PLOT)
    return written
