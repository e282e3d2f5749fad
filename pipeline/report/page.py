"""The report page: one self-contained HTML file (inline CSS and script, no network requests).

Static parts (the run in words, dead letters, corpus views) are rendered here with every value
escaped (``iso`` / ``lit`` for corpus and model text: isolated, hidden characters revealed); the
document views are built in the browser from JSON embedded with
``embed_json`` (escaped so that no string can close the script element). A strict
Content-Security-Policy allows the one inline script by its hash and nothing else to load.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass

from normxlogit.display import LEVELS, PALETTE, hex_color
from normxlogit.pipeline.report.assets import BASE_CSS, SCRIPT, palette_css
from normxlogit.pipeline.report.compare_input import ComparisonInput
from normxlogit.pipeline.report.compare_views import COMPARE_CSS, comparison_section
from normxlogit.pipeline.report.corpus_views import corpus_section
from normxlogit.pipeline.report.escaping import embed_json, esc, iso, lit
from normxlogit.pipeline.report.faithfulness_views import (
    FAITHFULNESS_CSS,
    FaithfulnessInput,
    faithfulness_section,
)
from normxlogit.pipeline.report.findings_input import FindingsInput
from normxlogit.pipeline.report.findings_views import RANKING_CSS, findings_section
from normxlogit.pipeline.report.intervals import WHISKER_CSS
from normxlogit.pipeline.report.response_views import RESPONSE_CSS
from normxlogit.pipeline.report.run_reader import RESPONSE_MODES, DeadLetters, RunScan
from normxlogit.response_spec import ResponseKind
from normxlogit.transforms.layout import AnnotateOptionsSection, Manifest, TargetSection


@dataclass
class ReportInput:
    """Everything the page shows."""

    output: str
    manifest: Manifest
    dead: DeadLetters
    scan: RunScan
    summaries: list[dict]
    summaries_source: str
    findings: FindingsInput
    comparison: ComparisonInput | None = None
    faithfulness: FaithfulnessInput | None = None
    include_template: bool = False  # the documents' top tokens list chat-template tokens too


def script_hash(script: str) -> str:
    """The CSP source expression (``'sha256-...'``) that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def content_security_policy() -> str:
    """Nothing loads and nothing runs but the page's own script; inline styles are allowed."""
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src {script_hash(SCRIPT)}; "
        "base-uri 'none'; form-action 'none'"
    )


def _response_in_words(target: TargetSection) -> str:
    kind = ResponseKind(target.mode)
    if kind is ResponseKind.CHAT:
        source = f"the last assistant message of the chat in field {lit(target.messages_field)}"
    elif kind is ResponseKind.GENERATE:
        source = f"the model's own greedy answer (at most {esc(target.max_new_tokens)} new tokens)"
    else:
        source = f"the response in field {lit(target.response_field)}"
    steps = (
        " Per-step scores were kept: click a response token to see its own attribution."
        if target.step_scores
        else ""
    )
    contrast = (
        ", each step's target minus the model's own most likely other token there (--foil top)"
        if target.foil is not None
        else ""
    )
    return (
        f"each document is a prompt and {source}; a token's score sums its NormXLogit over every response "
        f"token it is context for{contrast} (response tokens are underlined){steps}"
    )


def _target_in_words(target: TargetSection) -> str:
    mode = target.mode
    if mode in RESPONSE_MODES:
        return _response_in_words(target)
    if mode == "prediction":
        words = "each document's tokens are scored for the model's own prediction"
    elif mode == "field":
        words = f"each document's tokens are scored for the target in its field {lit(target.target_field)}"
    else:
        words = f"every document's tokens are scored for the fixed target {lit(target.target)}"
    if target.foil is not None:
        words += f", contrasted with the foil {lit(target.foil)}"
    return words


def _when(time: datetime.datetime | None) -> str | None:
    return None if time is None else time.isoformat()


def layers_in_words(options: AnnotateOptionsSection) -> str:
    """Which layers the ``logat_layers`` / ``score_layers`` lists hold, in order ("" without ``--layers``)."""
    layers = options.layers
    if not layers:
        return ""
    held = ", ".join(esc(layer) for layer in layers)
    return (
        f'<p id="layers">Layer-wise columns: <code>score_layers</code> and <code>logat_layers</code> hold '
        f"layers <b>{held}</b>, in that order (numbered 1..L, L = the model's number of layers).</p>"
    )


def run_section(data: ReportInput) -> str:
    """The manifest in plain words: model, target mode, counts and where the run came from."""
    header, counts = data.manifest.header, data.manifest.counts
    model = header.model
    started, finished = _when(header.start_time), _when(data.manifest.end_time)
    return f"""<section id="run"><h2>The run</h2>
<p>Model <b>{iso(model.get("architecture"))}</b> ({iso(model.get("task"))}, head adapter
{iso(model.get("adapter"))}, {esc(model.get("num_layers"))} layers)
from <code>{iso(model.get("path"))}</code>;
{_target_in_words(data.manifest.sections.target)}.</p>
{layers_in_words(data.manifest.sections.options)}
<p><b id="records-read">{counts.records_read:,}</b> records read:
<b id="docs-annotated">{counts.docs_annotated:,}</b> annotated,
{counts.skipped_empty:,} skipped as empty, <b>{counts.errors:,}</b> dead letters;
{counts.tokens:,} token rows.
{data.scan.truncated:,} documents were truncated at the maximum length.</p>
<p class="muted">Inputs: {", ".join(f"<code>{iso(i)}</code>" for i in header.inputs)};
runner {iso(header.runner)}; started {esc(started)}, finished {esc(finished)};
output <code>{iso(data.output)}</code>. Corpus summaries: {esc(data.summaries_source)}.</p></section>"""


def dead_letter_section(dead: DeadLetters) -> str:
    """Dead letters by reason, and the first few with their messages."""
    if not dead.by_reason:
        return '<section id="dead-letters"><h2>Dead letters</h2><p>None.</p></section>'
    reasons = "".join(
        f'<tr><td><code>{iso(r)}</code></td><td class="num">{n:,}</td></tr>'
        for r, n in sorted(dead.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    examples = "".join(
        f"<tr><td><code>{iso(e.get('reason'))}</code></td>"
        f'<td class="where">{iso(e.get("source"))} {iso(e.get("locator"))}</td>'
        f"<td>{lit(e.get('doc_id'))}</td><td>{iso(e.get('message'))}</td><td>{lit(e.get('excerpt'))}</td></tr>"
        for e in dead.examples
    )
    return f"""<section id="dead-letters"><h2>Dead letters</h2>
<table><tr><th>reason</th><th class="num">records</th></tr>{reasons}</table>
<details><summary>First {len(dead.examples)} dead letters</summary><table>
<tr><th>reason</th><th>where</th><th>doc id</th><th>message</th><th>excerpt</th></tr>
{examples}</table></details>
</section>"""


def documents_section(data: ReportInput) -> str:
    """The filter controls, legend and (empty) list that the script fills from the embedded JSON."""
    n, total = len(data.scan.sample), data.scan.docs
    note = (
        f"all {total:,} documents"
        if n == total
        else f"a deterministic sample of {n:,} of the {total:,} documents (smallest hash of doc_id)"
    )
    legend = "".join(f'<span style="background:{hex_color(c)}"></span>' for c in PALETTE)
    wrong = sum(d["target"] != d["prediction"] for d in data.scan.sample)
    responses = data.manifest.sections.target.mode in RESPONSE_MODES
    wrong_words = (
        "the model would begin otherwise only (its own first token &ne; the response's"
        if responses
        else "misclassified only\n(target &ne; prediction"
    )
    template = (
        '<label><input id="hide-template" type="checkbox"> hide chat-template tokens</label>'
        if any("template" in (d.get("seg") or ()) for d in data.scan.sample)
        else ""
    )
    about = (
        " In response runs, response tokens are underlined (hover for their log-probability) and tokens "
        "the chat template wrote are grey, left out of the colour scale."
        if responses
        else ""
    )
    return f"""<section id="documents"><h2>Documents</h2>
<p class="muted">Showing {note}. Each token is coloured by its score relative to its document's median
score: red above the median, blue below, deeper with the distance, the ends at the 95th percentile of
the document's distances to its median (the few tokens beyond it take the end colour). "Absolute"
colours by the score itself instead (white: 0, the ends: the document's largest absolute score).
Hover a token for its norm, logat and score. Special tokens are left out. The text is
the document's own characters by span: a character split across tokens (byte-level BPE) shows once, in
the colour of the first token that covers it, and its hover text lists every token that covers it.
Invisible and direction-changing characters (zero-width, bidi controls) show as escapes such as
<span class="esc">\\u202e</span>.{about}</p>
<p class="legend when-relative">below the document's median {legend} above it
(middle colour: the median; {LEVELS} steps each side)</p>
<p class="legend when-absolute">against the target {legend} supports the target
(middle colour: 0; {LEVELS} steps each side)</p>
<div class="controls"><input id="search" type="search" placeholder="search id or text" aria-label="search">
<label>prediction <select id="filter-prediction"><option value="">all</option></select></label>
<label>source <select id="filter-source"><option value="">all</option></select></label>
<label><input id="filter-misclassified" type="checkbox"{"" if wrong else " disabled"}> {wrong_words}:
<b id="misclassified-count">{wrong:,}</b>)</label>{template}
<label>colours <select id="colour-scale"><option value="relative">relative to each document's median</option>
<option value="absolute">absolute (0 is white)</option></select></label>
<label>order <select id="sort-order"><option value="sample">sample (hash of doc_id)</option>
<option value="prob-asc">confidence, lowest first</option>
<option value="prob-desc">confidence, highest first</option></select></label>
<span><b id="shown-count">{n}</b> of <b id="sample-count">{n}</b> shown</span></div>
<div id="docs"></div></section>"""


def render_page(data: ReportInput) -> str:
    """The whole report page as one HTML string."""
    payload = embed_json({"docs": data.scan.sample, "include_template": data.include_template})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(content_security_policy())}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>normxlogit report</title>
<style>{BASE_CSS}{WHISKER_CSS}{RANKING_CSS}{COMPARE_CSS}{RESPONSE_CSS}{FAITHFULNESS_CSS}{palette_css()}</style></head>
<body><header class="top"><h1>normxlogit report</h1>
<div>{iso(data.output)}</div></header><main>
{run_section(data)}
{dead_letter_section(data.dead)}
{corpus_section(data.summaries, data.scan, data.manifest.sections.target.mode)}
{findings_section(data.findings)}
{"" if data.comparison is None else comparison_section(data.comparison)}
{"" if data.faithfulness is None else faithfulness_section(data.faithfulness, data.manifest)}
{documents_section(data)}
</main>
<script type="application/json" id="report-data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""
