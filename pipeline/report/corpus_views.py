"""Corpus views of the report: prediction distribution, score histogram, top words per group."""

from __future__ import annotations

from collections import Counter

from normxlogit.pipeline.report.escaping import esc, lit
from normxlogit.pipeline.report.response_views import logprob_view, lowest_tokens_view
from normxlogit.pipeline.report.run_reader import RESPONSE_MODES, RunScan
from normxlogit.transforms.summary_stats import CORPUS, PREDICTION, SOURCE, TARGET

MAX_BARS = 30
MAX_GROUPS = 12
TOP_ROWS = 10


def bar_rows(counts: Counter, limit: int = MAX_BARS) -> str:
    """A table of horizontal bars, largest count first; the rest summed in one line."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    top = ranked[0][1] if ranked else 1
    rows = "".join(
        f'<tr><td class="label wide">{lit(name)}</td><td class="num">{n:,}</td>'
        f'<td><span class="bar" style="width:{160 * n / top:.1f}px"></span></td></tr>'
        for name, n in ranked[:limit]
    )
    rest = sum(n for _, n in ranked[limit:])
    if rest:
        others = len(ranked) - limit
        rows += f'<tr><td class="muted">{others:,} others</td><td class="num">{rest:,}</td><td></td></tr>'
    return f"<table>{rows}</table>"


def _edge(value: float | None, default: str) -> str:
    return default if value is None else f"{value:.3g}"


def histogram_bars(bins: list[dict]) -> str:
    """Vertical bars of a fixed-bin score histogram (bins on a symmetric log scale)."""
    if not bins:
        return '<p class="muted">No scores.</p>'
    top = max(b["count"] for b in bins) or 1
    bars = "".join(
        f'<div class="{"neg" if (b["high"] or 0) <= 0 else "pos"}" '
        f'style="height:{100 * b["count"] / top:.1f}%" title="{esc(_edge(b["low"], "-inf"))} .. '
        f'{esc(_edge(b["high"], "inf"))}: {b["count"]:,} tokens"></div>'
        for b in bins
    )
    return (
        f'<div class="hist" id="score-histogram">{bars}</div><div class="axis">'
        f"<span>{_edge(bins[0]['low'], '-inf')}</span><span>{_edge(bins[-1]['high'], 'inf')}</span></div>"
        '<p class="muted">Bins grow with |score| (20 per power of ten, each side of 0); '
        "hover a bar for its range and count.</p>"
    )


def top_table(title: str, entries: list[dict], limit: int = TOP_ROWS) -> str:
    """A ranked table of words or tokens with count, mean and total score."""
    rows = "".join(
        f'<tr><td class="label">{lit(e["text"])}</td><td class="num">{e["count"]:,}</td>'
        f'<td class="num">{e["mean"]:.4g}</td><td class="num">{e["total"]:.4g}</td></tr>'
        for e in entries[:limit]
    )
    return (
        f"<div><h3>{esc(title)}</h3><table><tr><th></th><th class=num>count</th><th class=num>mean</th>"
        f"<th class=num>total</th></tr>{rows}</table></div>"
    )


def group_tables(group: dict, limit: int = TOP_ROWS) -> str:
    """Top words and tokens of one group by mean score; by total score (which ranks frequent words
    such as ``the`` and ``.`` first) only in a collapsed block."""
    by_mean = "".join(
        top_table(title, group[key], limit)
        for title, key in (
            ("words by mean score", "top_words_by_mean"),
            ("tokens by mean score", "top_tokens_by_mean"),
        )
    )
    by_total = "".join(
        top_table(title, group[key], limit)
        for title, key in (
            ("words by total score", "top_words_by_total"),
            ("tokens by total score", "top_tokens_by_total"),
        )
    )
    return (
        f'<div class="grid">{by_mean}</div><details class="totals"><summary>by total score '
        f'<span class="muted">(count &times; mean: frequent words first)</span></summary>'
        f'<div class="grid">{by_total}</div></details>'
    )


def groups_of_kind(summaries: list[dict], kind: str, title: str) -> str:
    """The largest groups of one kind (prediction, target, source), each in a collapsible block."""
    groups = sorted((g for g in summaries if g["kind"] == kind), key=lambda g: (-g["docs"], str(g["group"])))
    if not groups:
        return ""
    blocks = "".join(
        f"<details><summary>{lit(g['group'])} <span class=muted>{g['docs']:,} documents, "
        f"{g['words']:,} words</span></summary>{group_tables(g)}</details>"
        for g in groups[:MAX_GROUPS]
    )
    more = (
        f'<p class="muted">{len(groups) - MAX_GROUPS:,} smaller groups not shown.</p>'
        if len(groups) > MAX_GROUPS
        else ""
    )
    return f'<h3 id="by-{esc(kind)}">{esc(title)}</h3>{blocks}{more}'


def grouped_fields(target_mode: str | None) -> tuple[str, ...]:
    """The document fields the corpus views (and the report's own findings) group by.

    With the prediction as target the target groups repeat the prediction groups; in response runs
    the prediction is the model's own first token, which says nothing of a whole answer: sources only.
    """
    if target_mode in RESPONSE_MODES:
        return (SOURCE,)
    if target_mode == "prediction":
        return (PREDICTION, SOURCE)
    return (PREDICTION, TARGET, SOURCE)


def corpus_section(summaries: list[dict], scan: RunScan, target_mode: str | None) -> str:
    """The corpus views: predictions (in response runs: the least likely responses and response
    tokens), score histogram, top words overall and per group."""
    corpus = next((g for g in summaries if g["kind"] == CORPUS), None)
    overall = "" if corpus is None else group_tables(corpus)
    histogram = histogram_bars(corpus["histogram"] if corpus else [])
    titles = {
        PREDICTION: "Top words per prediction",
        TARGET: "Top words per target",
        SOURCE: "Top words per source",
    }
    per_group = "".join(groups_of_kind(summaries, kind, titles[kind]) for kind in grouped_fields(target_mode))
    if target_mode in RESPONSE_MODES:  # the model's own first token says little about a whole answer
        sampled = {d["id"] for d in scan.sample}
        first = logprob_view(scan.responses, sampled)
        wide = lowest_tokens_view(scan.responses, sampled)
    else:
        first, wide = f"<div><h3>Predictions</h3>{bar_rows(scan.by_prediction)}</div>", ""
    return f"""<section id="corpus"><h2>Corpus</h2>
<div class="pair">{first}
<div><h3>Sources</h3>{bar_rows(scan.by_source)}</div></div>{wide}
<h3>Token scores</h3>{histogram}
<h3>Whole corpus</h3><p class="muted">A word's score is the sum of its tokens' scores; "mean" ranks
words seen at least 3 times. Means with 95% intervals, and lift per slice: see
Findings below.</p>{overall}
{per_group}</section>"""
