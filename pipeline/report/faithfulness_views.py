"""The Faithfulness section (``report --evaluate DIR``): ``normxlogit evaluate``'s figures with intervals.

``read_evaluate_dir`` reads ``DIR/manifest.json`` (it must be an ``evaluate`` run) and
``DIR/summary.json``; ``faithfulness_section`` shows every method and metric as ``mean [low, high]``
(the mask-token comprehensiveness and sufficiency of the paper's Experiment 1, ferret's metrics and
diagnosticity when the summary has them, and plausibility against human rationales when the run had
``--rationale-field``), and the paired differences to ``random``. The section says when the evaluate
run used other model weights than the annotate run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from normxlogit.pipeline.report.escaping import esc, iso
from normxlogit.pipeline.report.findings_input import FindingsDirError, required_file
from normxlogit.pipeline.report.intervals import number, with_interval
from normxlogit.transforms.layout import MANIFEST_FILE, SUMMARY, EvaluateCounts, Manifest, read_manifest

FAITHFULNESS_METRICS = ("comprehensiveness", "sufficiency")
# (figure, better direction of comprehensiveness, of sufficiency)
FIGURES = (("drop", "higher", "lower"), ("accuracy", "lower", "higher"))
RANDOM = "random"
PLAUSIBILITY = "plausibility"
FERRET = "ferret"
DIAGNOSTICITY = "diagnosticity"
# ferret's metrics where lower is better (ferret's LOWER_IS_BETTER); the others: higher.
LOWER_BETTER = frozenset({"aopc_suff"})
FAITHFULNESS_CSS = "#faithfulness td.num{white-space:nowrap}\n"


@dataclass(frozen=True)
class FaithfulnessInput:
    """An ``evaluate`` run's results, as the report shows them.

    Attributes:
        folder: the ``--evaluate`` folder.
        manifest: its manifest (model, counts).
        summary: its ``summary.json``.
    """

    folder: str
    manifest: Manifest
    summary: dict


def read_evaluate_dir(folder: Path) -> FaithfulnessInput:
    """The results ``normxlogit evaluate`` wrote into ``folder``.

    Raises:
        FindingsDirError: no manifest or summary.json, or the folder holds another command's run.
    """
    required_file(folder, MANIFEST_FILE, "evaluate")
    manifest = read_manifest(folder)
    if not isinstance(manifest.counts, EvaluateCounts):
        raise FindingsDirError(
            f"{folder} holds a `normxlogit {manifest.header.command}` run; pass the --output folder of a "
            "finished `normxlogit evaluate`"
        )
    summary = json.loads(required_file(folder, SUMMARY, "evaluate").read_text(encoding="utf-8"))
    return FaithfulnessInput(str(folder), manifest, summary)


def _cell(figure: dict | None, key: str = "mean", ci: str = "ci") -> str:
    if not figure or figure.get(key) is None:
        return '<td class="num">n/a</td>'
    low, high = figure.get(ci) or (None, None)
    return f'<td class="num">{esc(with_interval(figure[key], low, high))}</td>'


def _signed(value: float, low: float | None, high: float | None) -> str:
    """A difference with its sign: ``+0.206 [+0.151, +0.263]``."""
    shown = f"{value:+.3g}"
    return shown if low is None or high is None else f"{shown} [{low:+.3g}, {high:+.3g}]"


def _difference_cell(figure: dict | None, key: str, ci: str, p: str) -> str:
    if not figure or figure.get(key) is None:
        return '<td class="num">n/a</td>'
    low, high = figure.get(ci) or (None, None)
    shown = "n/a" if figure.get(p) is None else ("&lt;0.001" if figure[p] < 0.001 else f"{figure[p]:.3f}")
    return f'<td class="num">{esc(_signed(figure[key], low, high))} p={shown}</td>'


def _mask_table(summary: dict, response: bool) -> str:
    names = {"drop": "log-prob drop", "accuracy": "token accuracy"} if response else {}
    head = "".join(
        f'<th class="num">{metric} {names.get(figure, figure)} '
        f"({up if metric == 'comprehensiveness' else down} better)</th>"
        for metric in FAITHFULNESS_METRICS
        for figure, up, down in FIGURES
    )
    rows = "".join(
        f"<tr><td>{iso(method)}</td>"
        + "".join(
            _cell(figures.get(metric), figure, f"{figure}_ci")
            for metric in FAITHFULNESS_METRICS
            for figure, _, _ in FIGURES
        )
        + "</tr>"
        for method, figures in summary["methods"].items()
    )
    diffs = "".join(
        f"<tr><td>{iso(method)}</td>"
        + "".join(
            _difference_cell(
                figures.get(metric, {}).get("differences", {}).get(RANDOM),
                figure,
                f"{figure}_ci",
                f"{figure}_p",
            )
            for metric in FAITHFULNESS_METRICS
            for figure, _, _ in FIGURES
        )
        + "</tr>"
        for method, figures in summary["methods"].items()
        if method != RANDOM
    )
    table = f'<table id="faithfulness-table"><tr><th>method</th>{head}</tr>{rows}</table>'
    if RANDOM in summary["methods"] and diffs:
        table += (
            "<p>Paired differences to random (method minus random on the same resampled documents; "
            f'two-sided bootstrap p-value):</p><table id="faithfulness-differences"><tr><th>method</th>{head}'
            f"</tr>{diffs}</table>"
        )
    return table


def _scalar_table(table_id: str, per_method: dict[str, dict], metrics: list[str]) -> str:
    """Metrics whose figures are ``{"mean", "ci", "differences": {baseline: {"difference", "ci", "p"}}}``."""
    head = "".join(
        f'<th class="num">{esc(m)} ({"lower" if m in LOWER_BETTER else "higher"} better)</th>'
        for m in metrics
    )
    rows = "".join(
        f"<tr><td>{iso(method)}</td>" + "".join(_cell(figures.get(m)) for m in metrics) + "</tr>"
        for method, figures in per_method.items()
    )
    diffs = "".join(
        f"<tr><td>{iso(method)}</td>"
        + "".join(
            _difference_cell(
                (figures.get(m) or {}).get("differences", {}).get(RANDOM), "difference", "ci", "p"
            )
            for m in metrics
        )
        + "</tr>"
        for method, figures in per_method.items()
        if method != RANDOM
    )
    out = f'<table id="{table_id}"><tr><th>method</th>{head}</tr>{rows}</table>'
    if RANDOM in per_method and diffs:
        out += (
            f'<p>Paired differences to random:</p><table id="{table_id}-differences"><tr><th>method</th>'
            f"{head}</tr>{diffs}</table>"
        )
    return out


def _ferret_part(summary: dict) -> str:
    section = summary.get(FERRET)
    per_method = (section or {}).get("methods") if isinstance(section, dict) else None
    if not per_method:
        return ""
    metrics = list(dict.fromkeys(m for figures in per_method.values() for m in figures))
    return "<h3>ferret's metrics</h3>" + _scalar_table("ferret-table", per_method, metrics)


def _diagnosticity_part(summary: dict) -> str:
    metrics = (summary.get(DIAGNOSTICITY) or {}).get("metrics")
    if not metrics:
        return ""
    methods = list(dict.fromkeys(m for figure in metrics.values() for m in figure.get("methods", {})))
    head = '<th class="num">all methods</th>' + "".join(f'<th class="num">{iso(m)}</th>' for m in methods)
    rows = "".join(
        f"<tr><td>{esc(metric)}</td>{_cell(figure)}"
        + "".join(_cell(figure.get("methods", {}).get(m)) for m in methods)
        + "</tr>"
        for metric, figure in metrics.items()
    )
    return (
        "<h3>Diagnosticity</h3><p>The share of (document, random ranking) pairs in which each metric prefers "
        "the method's ranking (Chan et al. 2022): near 0.5 or below, the metric cannot tell an explanation "
        "from a random one on this model and data.</p>"
        f'<table id="diagnosticity-table"><tr><th>metric</th>{head}</tr>{rows}</table>'
    )


def _plausibility_part(summary: dict) -> str:
    section = summary.get(PLAUSIBILITY)
    if section is None:
        return ""
    per_method = {m: f.get(PLAUSIBILITY, {}) for m, f in summary["methods"].items()}
    k = section["k"] if isinstance(section["k"], int) else "each record's rationale length"
    about = (
        '<p id="plausibility-about">Agreement with the human rationales in field '
        f"<code>{iso(section['rationale_field'])}</code> over <b>{section['documents']:,}</b> documents "
        f"({section['missing_rationale']:,} without a rationale and {section['empty_rationale']:,} whose "
        "rationale marks no word the model read are left out), on words (a word's score is the sum of its "
        f"tokens'), ferret's definitions; k = {esc(k)}. Higher is better.</p>"
    )
    return (
        "<h3>Plausibility</h3>" + about + _scalar_table("plausibility-table", per_method, section["metrics"])
    )


def faithfulness_section(data: FaithfulnessInput, run_manifest: Manifest) -> str:
    """The section: what was evaluated, then every method and metric with its interval."""
    summary, manifest = data.summary, data.manifest
    response = summary.get("mode") == "response"
    interval = summary.get("interval", {})
    model = manifest.header.model
    same = model.get("weights_sha256") == run_manifest.header.model.get("weights_sha256")
    warning = (
        ""
        if same
        else '<p class="warn" id="faithfulness-model-differs">The evaluate run used other model weights '
        f"({iso(model.get('path'))}) than this run ({iso(run_manifest.header.model.get('path'))}).</p>"
    )
    what = "prompt/response pairs" if response else "documents"
    level = interval.get("level")
    about = (
        f"<p>From <code>{iso(data.folder)}</code> (<code>normxlogit evaluate</code>, model "
        f'{iso(model.get("architecture"))}): <b id="faithfulness-samples">{summary["samples"]:,}</b> {what}. '
        "Means over k = 10%..90% and documents; tokens ranked by each method are replaced by the mask "
        "token (comprehensiveness: the top k%; sufficiency: all but the top k%). "
        + (
            f"[low, high]: {number(100 * level, 3)}% {esc(interval.get('kind', ''))} interval, "
            f"B={interval.get('replicates', 0):,}, seed {esc(interval.get('seed'))}."
            if level
            else "(a run without intervals)"
        )
        + "</p>"
    )
    return (
        f'<section id="faithfulness"><h2>Faithfulness</h2>{about}{warning}'
        f"{_mask_table(summary, response)}{_ferret_part(summary)}{_diagnosticity_part(summary)}"
        f"{_plausibility_part(summary)}</section>"
    )
