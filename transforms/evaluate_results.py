"""Aggregate faithfulness with a Beam combine and write the result files of ``evaluate``.

``SumCurves`` is a CombineFn over per-document ``DocFaithfulness``: its accumulator holds only
sums and counts per (method, metric, k), so workers pre-aggregate and nothing is collected to the
driver. ``write_results`` turns the final sums into:

- ``curves.parquet``: one row per (method, metric, k): drop, accuracy, samples;
- ``summary.json``: ``{"samples": N, "methods": {method: {metric: {"drop", "accuracy"}}}}``;
- ``results.md``: the same as a Markdown table;
- ``curves.png``: drop and accuracy against k per method (matplotlib, if installed).

In response mode (``normxlogit.response_faithfulness``) the drop is that of the response's mean
per-token log-probability and the accuracy the share of response tokens still the argmax; the
summary then also holds ``"mode": "response"``, a ``"response"`` section (what was measured, how
many pairs) and each method's ``"pairs"``.
"""

from __future__ import annotations

import io
import json
import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from normxlogit.faithfulness import METRICS, CurveSums, DocFaithfulness
from normxlogit.response_spec import ResponseSpec
from normxlogit.transforms.layout import CURVES, PLOT, SUMMARY, TABLE
from normxlogit.transforms.writers import join

CURVE_SCHEMA = pa.schema(
    [
        ("method", pa.string()),
        ("metric", pa.string()),
        ("k", pa.float64()),
        ("drop", pa.float64()),
        ("accuracy", pa.float64()),
        ("samples", pa.int64()),
    ]
)
_log = logging.getLogger(__name__)


class SumCurves(beam.CombineFn):
    """DocFaithfulness -> CurveSums: sums and counts per method, metric and k."""

    def __init__(self, methods: int):
        self._methods = methods

    def create_accumulator(self) -> CurveSums:
        return CurveSums.empty(self._methods)

    def add_input(self, acc: CurveSums, doc: DocFaithfulness) -> CurveSums:
        return acc.add(doc)

    def merge_accumulators(self, accs) -> CurveSums:
        merged = self.create_accumulator()
        for acc in accs:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: CurveSums) -> CurveSums:
        return acc


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
    """``summary.json`` as a Markdown table, with the better direction of each figure."""
    response = summary.get("mode") == RESPONSE_MODE
    drop, acc = ("log-prob drop", "token accuracy") if response else ("drop", "accuracy")
    what = "prompt/response pairs" if response else "samples"
    lines = [
        f"Faithfulness over {summary['samples']:,} {what} (means over k = 10%..90% and {what}).",
        "",
        f"| method | comprehensiveness {drop} (higher better) | comprehensiveness {acc} (lower better) "
        f"| sufficiency {drop} (lower better) | sufficiency {acc} (higher better) |"
        + (" pairs |" if response else ""),
        "|---|---|---|---|---|" + ("---|" if response else ""),
    ]
    for method, figures in summary["methods"].items():
        cells = [_cell(figures[metric][key]) for metric in METRICS for key in ("drop", "accuracy")]
        if response:
            cells.append(f"{figures['pairs']:,}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if response:
        section = summary["response"]
        lines += ["", f"Drop: {section['drop']}. Token accuracy: {section['accuracy']}."]
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def curves_plot(rows: list[dict], methods: tuple[str, ...], response: bool = False) -> bytes | None:
    """PNG of drop and accuracy against k, one line per method; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log.warning('matplotlib is not installed, no %s (pip install "normxlogit[eval]")', PLOT)
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for row, metric in enumerate(METRICS):
        for col, key in enumerate(("drop", "accuracy")):
            ax = axes[row, col]
            for method in methods:
                points = [r for r in rows if r["method"] == method and r["metric"] == metric]
                ax.plot([r["k"] * 100 for r in points], [r[key] for r in points], marker="o", label=method)
            names = ("mean log-prob drop", "token accuracy") if response else ("confidence drop", "accuracy")
            ax.set_title(f"{metric}: {names[col]}")
            ax.set_xlabel("k: % of tokens")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _write(path: str, data: bytes, mime: str) -> None:
    with FileSystems.create(path, mime_type=mime) as fh:
        fh.write(data)


def write_results(
    sums: CurveSums, output: str, methods: tuple[str, ...], response: dict | None = None
) -> list[str]:
    """Write the result files under ``output``; returns their names (relative to it).

    Args:
        response: the ``response_section`` of a response-mode run; None for the paper's metrics.
    """
    rows = sums.curve_rows(methods) if sums.samples else []
    summary = sums.summary(methods)
    if response is not None:
        summary["mode"] = RESPONSE_MODE
        summary["response"] = {**response, "pairs": sums.samples}
        for figures in summary["methods"].values():
            figures["pairs"] = sums.samples
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CURVE_SCHEMA), buf)
    _write(join(output, CURVES), buf.getvalue(), "application/octet-stream")
    _write(join(output, SUMMARY), json.dumps(summary, indent=2).encode(), "application/json")
    _write(join(output, TABLE), results_table(summary).encode(), "text/markdown")
    written = [CURVES, SUMMARY, TABLE]
    png = curves_plot(rows, methods, response is not None) if rows else None
    if png is not None:
        _write(join(output, PLOT), png, "image/png")
        written.append(PLOT)
    return written
