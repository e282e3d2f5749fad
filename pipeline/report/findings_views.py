"""The Findings section: per slice, the top words by mean score (with intervals) or by lift, and the
lexicon shares, from ``normxlogit stats`` or computed by the report for its sample.

The ranking is chosen with two radio buttons and CSS alone (``RANKING_CSS``): the page's one script
is not involved, and both rankings are in the page source.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.slices import CORPUS
from normxlogit.pipeline.report.escaping import esc, iso, lit
from normxlogit.pipeline.report.findings_input import FindingsInput
from normxlogit.pipeline.report.intervals import Axis, number, whisker, with_interval

MAX_SLICES = 12  # the corpus, then the largest slices
TOP_WORDS = 10
MAX_DIFFERENCES = 40
RANKING_CSS = """
input.rank{margin-left:12px}
#findings-rank-mean:checked ~ .rankings .by-lift,
#findings-rank-lift:checked ~ .rankings .by-mean{display:none}
"""


def shown_slices(summary: dict, limit: int = MAX_SLICES) -> list[tuple[str, str | None, int]]:
    """``(slice_field, slice, n_docs)`` of the corpus, then the largest slices, ``limit`` in all."""
    rows = [(r["slice_field"], r["slice"], r["n_docs"]) for r in summary["slices"]]
    corpus = [r for r in rows if r[0] == CORPUS]
    rest = sorted((r for r in rows if r[0] != CORPUS), key=lambda r: (-r[2], r[0], str(r[1])))
    return (corpus + rest)[:limit]


def slice_rows(words: pa.Table, field: str, label: str | None) -> pa.Table:
    """The rows of one slice of a words table (``stats`` or ``compare``)."""
    same_label = pc.is_null(words["slice"]) if label is None else pc.equal(words["slice"], label)
    return words.filter(pc.and_(pc.equal(words["slice_field"], field), same_label))


def _top(rows: pa.Table, present: str, key: str, limit: int) -> list[dict]:
    kept = rows.filter(pc.is_valid(rows[present]))
    return kept.sort_by([(key, "descending"), ("word", "ascending")]).slice(0, limit).to_pylist()


def mean_table(rows: pa.Table, limit: int = TOP_WORDS) -> str:
    """The words of a slice with an interval, highest mean score first, with whiskers."""
    top = _top(rows, "mean_ci_low", "mean_score", limit)
    if not top:
        return '<p class="muted by-mean">No word is in enough documents of this slice for an interval.</p>'
    axis = Axis.of((r["mean_ci_low"] for r in top), (r["mean_ci_high"] for r in top))
    body = "".join(
        f'<tr><td class="label">{lit(r["word"])}</td><td class="num">{r["n_docs"]:,}</td>'
        f'<td class="num">{r["n_occurrences"]:,}</td>'
        f'<td class="num">{esc(with_interval(r["mean_score"], r["mean_ci_low"], r["mean_ci_high"]))}</td>'
        f"<td>{whisker(axis, r['mean_score'], r['mean_ci_low'], r['mean_ci_high'])}</td>"
        f'<td class="num">{esc(number(r["share"]))}</td><td class="num">{esc(number(r["q_value"]))}</td></tr>'
        for r in top
    )
    return (
        '<table class="by-mean"><tr><th>word</th><th class="num">docs</th><th class="num">occurrences</th>'
        f'<th class="num">mean [95% CI]</th><th>{esc(_axis_note(axis))}</th><th class="num">share</th>'
        f'<th class="num">q</th></tr>{body}</table>'
    )


def lift_table(rows: pa.Table, corpus: bool, limit: int = TOP_WORDS) -> str:
    """The tested words of a slice with a positive mean inside and outside it, highest lift first, with
    their mean's whisker."""
    if corpus:
        return (
            '<p class="muted by-lift">Lift compares a slice with the rest of its field: the whole corpus has '
            "none.</p>"
        )
    # A ratio of means ranks only where both means are positive: with signed scores a word more
    # negative inside the slice (-2 / -0.1) would lead, and one that turns positive would trail.
    tested = rows.filter(pc.is_valid(rows["p_value"]))
    top = _top(
        tested.filter(pc.and_(pc.greater(tested["mean_score"], 0), pc.greater(tested["lift"], 0))),
        "lift",
        "lift",
        limit,
    )
    if not top:
        return (
            '<p class="muted by-lift">No word is in enough documents inside and outside this slice with a '
            "positive mean score in both.</p>"
        )
    axis = Axis.of((r["mean_ci_low"] for r in top), (r["mean_ci_high"] for r in top))
    body = "".join(
        f'<tr><td class="label">{lit(r["word"])}</td><td class="num">{r["n_docs"]:,}</td>'
        f'<td class="num">{esc(number(r["lift"]))}</td>'
        f'<td class="num">{esc(with_interval(r["mean_score"], r["mean_ci_low"], r["mean_ci_high"]))}</td>'
        f"<td>{whisker(axis, r['mean_score'], r['mean_ci_low'], r['mean_ci_high'])}</td>"
        f'<td class="num">{esc(number(r["p_value"]))}</td>'
        f'<td class="num">{esc(number(r["q_value"]))}</td></tr>'
        for r in top
    )
    return (
        '<table class="by-lift"><tr><th>word</th><th class="num">docs</th><th class="num">lift</th>'
        f'<th class="num">mean [95% CI]</th><th>{esc(_axis_note(axis))}</th><th class="num">p</th>'
        f'<th class="num">q</th></tr>{body}</table>'
    )


def _axis_note(axis: Axis) -> str:
    return f"{number(axis.low)} .. {number(axis.high)}"


def word_blocks(words: pa.Table, summary: dict) -> str:
    """One collapsible block per shown slice (the corpus open), each with both rankings."""
    blocks = []
    for field, label, n_docs in shown_slices(summary):
        rows = slice_rows(words, field, label)
        name = "whole corpus" if field == CORPUS else f"{esc(field)} = {lit(label)}"
        blocks.append(
            f'<details{" open" if field == CORPUS else ""}><summary>{name} <span class="muted">'
            f"{n_docs:,} documents</span></summary>{mean_table(rows)}{lift_table(rows, field == CORPUS)}"
            "</details>"
        )
    hidden = len(summary["slices"]) - MAX_SLICES
    more = f'<p class="muted">{hidden:,} smaller slices not shown.</p>' if hidden > 0 else ""
    return "".join(blocks) + more


def lexicon_tables(lexicon: pa.Table) -> str:
    """Per slice field: each slice's share per category, and the differences between slices."""
    parts = []
    for field in dict.fromkeys(lexicon["slice_field"].to_pylist()):
        rows = lexicon.filter(pc.equal(lexicon["slice_field"], field)).to_pylist()
        shares = [r for r in rows if r["versus"] is None]
        differences = [r for r in rows if r["versus"] is not None]
        parts.append(f"<h3>Lexicon shares: {'whole corpus' if field == CORPUS else esc(field)}</h3>")
        parts.append(_figure_table(shares, "share", ("slice", "category"), "share [95% CI]"))
        if differences:
            shown = differences[:MAX_DIFFERENCES]
            cut = len(differences) - len(shown)
            parts.append(
                '<p class="muted">Differences of shares between slices (slice &minus; versus), with '
                "paired intervals and p-values of difference = 0"
                + (f"; the first {len(shown)} of {len(differences):,}" if cut else "")
                + ".</p>"
            )
            parts.append(
                _figure_table(
                    shown, "difference", ("slice", "versus", "category"), "difference [95% CI]", "p_value"
                )
            )
    return "".join(parts)


def _figure_table(rows: list[dict], figure: str, labels: tuple[str, ...], title: str, extra: str = "") -> str:
    """Rows labelled by ``labels``, each with ``figure`` and its interval as text and as a whisker."""
    low, high = f"{figure}_ci_low", f"{figure}_ci_high"
    axis = Axis.of((r[low] for r in rows), (r[high] for r in rows), (r[figure] for r in rows))
    head = "".join(f"<th>{esc(name)}</th>" for name in labels)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="label">{lit(r[name])}</td>' for name in labels)
        + f'<td class="num">{r["n_docs"]:,}</td>'
        + f'<td class="num">{esc(with_interval(r[figure], r[low], r[high]))}</td>'
        + f"<td>{whisker(axis, r[figure], r[low], r[high])}</td>"
        + (f'<td class="num">{esc(number(r[extra]))}</td>' if extra else "")
        + "</tr>"
        for r in rows
    )
    extra_head = f'<th class="num">{esc(extra.replace("_value", ""))}</th>' if extra else ""
    return (
        f'<table>{"<tr>" + head}<th class="num">docs</th><th class="num">{esc(title)}</th>'
        f"<th>{esc(_axis_note(axis))}</th>{extra_head}</tr>{body}</table>"
    )


def findings_section(data: FindingsInput) -> str:
    """The Findings section, or a note of why the run has none."""
    if data.findings is None:
        return f'<section id="findings"><h2>Findings</h2><p class="muted">{iso(data.origin)}</p></section>'
    words, lexicon, summary = data.findings.words, data.findings.lexicon, data.findings.summary
    options = summary["options"]
    about = (
        f"Intervals: {esc(summary['intervals'])}; words in fewer than {options['min_docs']:,} documents of a "
        f"slice get none and are not ranked by mean. A word's score is the sum of its tokens' scores; "
        "share: its part of the slice's absolute score; lift: its mean in the slice over its mean outside "
        "the slice (other slices of the field); p and q: the mean in the slice equals the mean outside it "
        "(the corpus: the mean is 0), q Benjamini-Hochberg per slice. Whiskers: the 95% interval, the dot "
        "the estimate, the grey line 0; each table has its own axis (in its header)."
    )
    lexicon_part = "" if lexicon is None or lexicon.num_rows == 0 else lexicon_tables(lexicon)
    return f"""<section id="findings"><h2>Findings</h2>
<p class="muted" id="findings-origin">Figures {iso(data.origin)}.</p>
<p class="muted" id="findings-intervals">{about}</p>
<span>rank words by</span>
<input class="rank" type="radio" name="findings-rank" id="findings-rank-mean" checked>
<label for="findings-rank-mean">mean score</label>
<input class="rank" type="radio" name="findings-rank" id="findings-rank-lift">
<label for="findings-rank-lift">lift</label>
<div class="rankings">{word_blocks(words, summary)}</div>{lexicon_part}</section>"""
