"""The Comparison section (``report --compare DIR``): how far two runs agree, the words whose scores
differ most (paired intervals), and one document coloured by each run side by side."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.display import color_levels, color_scale, reveal_html
from normxlogit.pipeline.findings.slices import CORPUS
from normxlogit.pipeline.report.compare_input import ComparisonInput, SideBySide, finite
from normxlogit.pipeline.report.escaping import esc, iso, lit
from normxlogit.pipeline.report.findings_views import slice_rows
from normxlogit.pipeline.report.intervals import Axis, number, whisker, with_interval

HISTOGRAM_BINS = 20
TOP_DELTAS = 10
MAX_SIDE_CHARS = 4000  # characters of the side-by-side document shown
COMPARE_CSS = """
.side .text{font-size:14px;line-height:1.8}
#largest-deltas td.num,#findings td.num{white-space:nowrap}
"""


def histogram(values: np.ndarray, low: float, high: float, name: str, bins: int = HISTOGRAM_BINS) -> str:
    """Vertical bars of ``values`` in ``bins`` equal bins from ``low`` to ``high``."""
    if values.size == 0:
        return '<p class="muted">No document has a value.</p>'
    counts, edges = np.histogram(np.clip(values, low, high), bins=bins, range=(low, high))
    top = counts.max() or 1
    bars = "".join(
        f'<div style="height:{100 * n / top:.1f}%" title="{a:.2f} .. {b:.2f}: {n:,} documents"></div>'
        for n, a, b in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist())
    )
    return (
        f'<div class="hist" id="{esc(name)}-histogram">{bars}</div><div class="axis"><span>{low:g}</span>'
        f"<span>{high:g}</span></div>"
    )


def _median(figure: dict) -> str:
    return esc(with_interval(figure["median"], figure["ci_low"], figure["ci_high"]))


def summary_table(comparison: ComparisonInput) -> str:
    """The runs, the documents in both and in one, and the median agreement with intervals."""
    s = comparison.summary
    docs, rho, cov = s["documents"], s["spearman"], s["char_coverage"]
    runs = "".join(
        f"<tr><td>run {name}</td><td><code>{iso(s[key]['path'])}</code></td><td>{iso(s[key]['model'])}</td>"
        f"<td>{iso(s[key]['architecture'])}</td></tr>"
        for name, key in (("A", "run_a"), ("B", "run_b"))
    )
    counts = "".join(
        f'<tr><td>{esc(label)}</td><td class="num" id="compare-{esc(key)}">{docs[key]:,}</td></tr>'
        for label, key in (
            ("documents in both runs", "in_both"),
            ("compared (same text)", "compared"),
            ("same id, texts differ", "texts_differ"),
            ("only in A", "only_a"),
            ("only in B", "only_b"),
        )
    )
    o = s["options"]
    return f"""<table>{runs}</table>
<div class="pair"><div><table>{counts}</table></div><div><table>
<tr><td>median Spearman of word scores</td><td class="num" id="compare-spearman">{_median(rho)}</td>
<td class="muted">{rho["n_docs"]:,} documents</td></tr>
<tr><td>median char_coverage</td><td class="num" id="compare-coverage">{_median(cov)}</td>
<td class="muted">{cov["n_docs"]:,} documents</td></tr></table>
<p class="muted">Intervals: {esc(rho["interval"])}. Options: top-k {o["top_k"]}, standardise
{esc(o["standardise"])}, casefold {esc(o["casefold"])}, min docs {o["min_docs"]}.</p></div></div>"""


def delta_table(rows: list[dict], title: str) -> str:
    """Words with their two means and the paired difference, as text and as a whisker."""
    if not rows:
        return ""
    axis = Axis.of((r["delta_ci_low"] for r in rows), (r["delta_ci_high"] for r in rows))
    body = "".join(
        f'<tr><td class="label">{lit(r["word"])}</td><td class="num">{r["n_docs"]:,}</td>'
        f'<td class="num">{esc(number(r["mean_a"]))}</td><td class="num">{esc(number(r["mean_b"]))}</td>'
        f'<td class="num">{esc(with_interval(r["delta"], r["delta_ci_low"], r["delta_ci_high"]))}</td>'
        f"<td>{whisker(axis, r['delta'], r['delta_ci_low'], r['delta_ci_high'])}</td>"
        f'<td class="num">{esc(number(r["q_value"]))}</td>'
        f'<td class="num">{esc(number(r["rank_a"]))} &rarr; {esc(number(r["rank_b"]))}</td></tr>'
        for r in rows
    )
    return (
        f"<div><h3>{esc(title)}</h3><table><tr><th>word</th><th class=num>docs</th><th class=num>mean A</th>"
        "<th class=num>mean B</th><th class=num>delta [95% CI]</th>"
        f"<th>{esc(number(axis.low))} .. {esc(number(axis.high))}</th><th class=num>q</th>"
        f"<th class=num>rank A &rarr; B</th></tr>{body}</table></div>"
    )


def largest_deltas(words: pa.Table, limit: int = TOP_DELTAS) -> str:
    """The corpus words with an interval whose mean rose most in B, and those that fell most."""
    rows = slice_rows(words, CORPUS, CORPUS)
    rows = rows.filter(pc.is_valid(rows["delta_ci_low"]))
    if rows.num_rows == 0:
        return '<p class="muted">No word is in enough documents for an interval.</p>'
    up = rows.filter(pc.greater(rows["delta"], 0)).sort_by([("delta", "descending"), ("word", "ascending")])
    down = rows.filter(pc.less(rows["delta"], 0)).sort_by([("delta", "ascending"), ("word", "ascending")])
    return (
        '<div id="largest-deltas">'
        + delta_table(up.slice(0, limit).to_pylist(), "higher in B (delta > 0)")
        + delta_table(down.slice(0, limit).to_pylist(), "higher in A (delta < 0)")
        + "</div>"
    )


def coloured_text(text: str | None, words: pa.Table) -> str:
    """The document's text with each word coloured by its score (scaled by the run's largest absolute
    word score in the document); without the text, the words joined by spaces."""
    ordered = words.sort_by("char_start")
    scores = ordered["score"].to_numpy().astype(np.float64)
    scale = color_scale(scores)
    levels = color_levels(scores, scale).tolist()
    starts, ends = ordered["char_start"].to_pylist(), ordered["char_end"].to_pylist()
    pieces, at = [], 0
    for word, start, end, score, level in zip(ordered["word"].to_pylist(), starts, ends, scores, levels):
        if text is not None and (start < at or end > MAX_SIDE_CHARS):
            continue  # overlaps the word before it, or beyond what is shown
        shown = word if text is None else text[start:end]
        gap = " " if text is None else text[at:start]
        title = f"score {score:.4g}"
        pieces.append(
            f'{reveal_html(gap)}<span class="tok c{level}" title="{title}">{reveal_html(shown)}</span>'
        )
        at = end
    cut = " &hellip;" if text is not None and len(text) > MAX_SIDE_CHARS else ""
    return (
        f'<div class="text" dir="auto">{"".join(pieces)}{cut}</div>'
        f'<p class="muted">colour scale &plusmn;{scale:.4g}</p>'
    )


def side_by_side_view(side: SideBySide, summary: dict) -> str:
    """The document with the median Spearman, coloured by each run's word scores."""
    columns = "".join(
        f"<div><h3>run {name}: {iso(summary[key]['model'])}</h3>"
        + (coloured_text(side.text, words) if words is not None else '<p class="muted">not available</p>')
        + "</div>"
        for name, key, words in (("A", "run_a", side.words_a), ("B", "run_b", side.words_b))
    )
    note = f'<p class="warn">{esc(side.note)}</p>' if side.note else ""
    return (
        f'<h3>One document side by side</h3><p class="muted">{iso(side.doc_id)}, the document with the '
        f"median Spearman ({number(side.spearman)}): each word coloured by its score in that run, on that "
        "run's own scale (blue against the target, red for it).</p>"
        f'{note}<div class="pair side" id="side-by-side">{columns}</div>'
    )


def comparison_section(comparison: ComparisonInput) -> str:
    """The Comparison section: summary, agreement histograms, largest deltas, a document side by side."""
    docs = comparison.documents
    s = comparison.summary
    standardised = "z-scored within each document, per run" if s["options"]["standardise"] else "raw scores"
    side = "" if comparison.side_by_side is None else side_by_side_view(comparison.side_by_side, s)
    rho = histogram(finite(docs["spearman"]), -1.0, 1.0, "spearman")
    coverage = histogram(finite(docs["char_coverage"]), 0.0, 1.0, "coverage")
    paired = s["intervals"].get("words.parquet delta_ci_low, delta_ci_high", "")
    return f"""<section id="comparison"><h2>Comparison</h2>
<p class="muted">From <code>{iso(comparison.folder)}</code> (`normxlogit compare`): words aligned on one word
split of the text, whatever the two tokenizers; rank-based figures come first, as two models' scores
have different scales.</p>
{summary_table(comparison)}
<div class="pair"><div><h3>Spearman per document</h3>{rho}</div>
<div><h3>char_coverage per document</h3>{coverage}</div></div>
<h3>Largest differences</h3><p class="muted">Per word: its mean score in each run ({standardised}),
delta = mean B &minus; mean A with {esc(paired)};
words in at least {s["options"]["min_docs"]} documents.</p>
{largest_deltas(comparison.words)}
{side}</section>"""
