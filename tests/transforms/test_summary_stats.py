"""Corpus summary statistics: columnar batch statistics, fixed-bin histograms, bounded merges."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from normxlogit.transforms.summary_stats import (
    N_BINS,
    VOCAB_SCHEMA,
    SummaryStats,
    batch_stats,
    bin_edges,
    empty_stats,
    histogram_bins,
    merge_stats,
    summarize_groups,
    top_entries,
)


@dataclass
class Doc:
    """One hand-written document: its token rows (word None outside words) and its groups."""

    text: str
    tokens: list[tuple[str, int, int, int | None, bool, float]]  # token, start, end, word, special, score
    prediction: str = "pos"
    target: str = "pos"
    source: str = "a.txt"


def batch(docs: list[Doc], with_text: bool = True) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """(rows, documents) of a batch of documents, as RunInference emits them."""
    rows = [t for d in docs for t in d.tokens]
    token, start, end, word, special, score = (list(c) for c in zip(*rows)) if rows else ([],) * 6
    rows = pa.record_batch(
        {
            "token": pa.array(token, pa.string()),
            "char_start": pa.array(start, pa.int32()),
            "char_end": pa.array(end, pa.int32()),
            "word_index": pa.array(word, pa.int32()),
            "special": pa.array(special, pa.bool_()),
            "score": pa.array(score, pa.float32()),
        }
    )
    columns = {
        "n_tokens": pa.array([len(d.tokens) for d in docs], pa.int32()),
        "prediction": pa.array([d.prediction for d in docs], pa.string()),
        "target": pa.array([d.target for d in docs], pa.string()),
        "source": pa.array([d.source for d in docs], pa.string()),
    }
    if with_text:
        columns["text"] = pa.array([d.text for d in docs], pa.string())
    return rows, pa.record_batch(columns)


def vocab(
    stats: SummaryStats, unit: str, kind: str = "corpus", group: str = ""
) -> dict[str, tuple[float, int]]:
    """text -> (total, count) of one group's words or tokens."""
    rows = stats.vocab.to_pylist()
    return {
        r["text"]: (r["total"], r["count"])
        for r in rows
        if (r["kind"], r["group"], r["unit"]) == (kind, group, unit)
    }


def counts(stats: SummaryStats) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {(r["kind"], r["group"]): (r["docs"], r["tokens"], r["words"]) for r in stats.counts.to_pylist()}


# [CLS] The Eif ##fel - tower rocks ! [SEP]
EIFFEL = Doc(
    "The Eiffel-tower rocks!",
    [
        ("[CLS]", 0, 0, None, True, 9.0),
        ("The", 0, 3, 0, False, 1.0),
        ("Eif", 4, 7, 1, False, 2.0),
        ("fel", 7, 10, 1, False, 0.5),
        ("-", 10, 11, 2, False, -1.0),
        ("tower", 11, 16, 3, False, 3.0),
        ("rocks", 17, 22, 4, False, -2.0),
        ("!", 22, 23, 5, False, 0.25),
        ("[SEP]", 0, 0, None, True, 9.0),
    ],
)
# Byte-level BPE: "é" split into two tokens with the same span; " " a whitespace-only token.
CAFE = Doc(
    "café ! Paris",
    [
        ("<s>", 0, 0, None, True, 5.0),
        ("caf", 0, 3, 0, False, 1.0),
        ("é", 3, 4, 0, False, 0.5),
        ("é", 3, 4, 0, False, 0.25),
        (" ", 4, 5, None, False, 7.0),
        ("!", 5, 6, 1, False, -0.5),
        (" Paris", 6, 12, 2, False, 2.0),
    ],
    prediction="neg",
    target="pos",
    source="b.txt",
)


def test_words_are_text_spans_with_summed_scores():
    stats = batch_stats(*batch([EIFFEL]))
    assert vocab(stats, "word") == {
        "The": (1.0, 1),
        "Eiffel": (2.5, 1),
        "-": (-1.0, 1),
        "tower": (3.0, 1),
        "rocks": (-2.0, 1),
        "!": (0.25, 1),
    }
    tokens = vocab(stats, "token")
    assert set(tokens) == {"The", "Eif", "fel", "-", "tower", "rocks", "!"}  # specials left out
    assert counts(stats)[("corpus", "")] == (1, 7, 6)


def test_overlapping_spans_do_not_repeat_characters():
    for with_text in (True, False):
        stats = batch_stats(*batch([CAFE], with_text=with_text))
        assert vocab(stats, "word") == {"café": (1.75, 1), "!": (-0.5, 1), "Paris": (2.0, 1)}
        # Tokens keep their own text; the whitespace-only token and the special are left out.
        assert vocab(stats, "token") == {"caf": (1.0, 1), "é": (0.75, 2), "!": (-0.5, 1), "Paris": (2.0, 1)}
        assert counts(stats)[("corpus", "")] == (1, 5, 3)
        assert stats.histogram["count"].to_numpy().sum() == 4 * 5  # four groups, five tokens each


def test_a_gap_inside_a_word_takes_the_text_under_it():
    gap = Doc("abcd", [("ab", 0, 2, 0, False, 1.0), ("d", 3, 4, 0, False, 1.0)])
    assert vocab(batch_stats(*batch([gap])), "word") == {"abcd": (2.0, 1)}
    assert vocab(batch_stats(*batch([gap], with_text=False)), "word") == {"abd": (2.0, 1)}


def test_words_end_at_document_boundaries():
    first = Doc("x", [("x", 0, 1, 0, False, 1.0)])
    second = Doc("y", [("y", 0, 1, 0, False, 2.0)])  # the same word_index 0 in the next document
    stats = batch_stats(*batch([first, second]))
    assert vocab(stats, "word") == {"x": (1.0, 1), "y": (2.0, 1)}


def test_each_document_counts_in_its_four_groups():
    stats = batch_stats(*batch([EIFFEL, CAFE, EIFFEL]))
    assert counts(stats) == {
        ("corpus", ""): (3, 19, 15),
        ("prediction", "pos"): (2, 14, 12),
        ("prediction", "neg"): (1, 5, 3),
        ("target", "pos"): (3, 19, 15),
        ("source", "a.txt"): (2, 14, 12),
        ("source", "b.txt"): (1, 5, 3),
    }
    assert vocab(stats, "word", "prediction", "pos")["Eiffel"] == (5.0, 2)
    assert vocab(stats, "word", "prediction", "neg") == vocab(batch_stats(*batch([CAFE])), "word")


def reference_summaries(docs: list[Doc], k: int = 20) -> list[dict]:
    """A per-document, per-token reference: the definition, written out plainly."""
    groups: dict[tuple[str, str], dict] = {}
    for d in docs:
        tokens = [(t[0].strip(), t[5]) for t in d.tokens if not t[4] and t[0].strip()]
        words: list[list] = []  # [first start, last end, score]
        previous = None
        for _, start, end, word, special, score in d.tokens:
            if special or word is None:
                continue
            if word == previous:
                words[-1][1:] = [end, words[-1][2] + score]
            else:
                words.append([start, end, score])
            previous = word
        for key in [("corpus", ""), ("prediction", d.prediction), ("target", d.target), ("source", d.source)]:
            g = groups.setdefault(
                key, {"docs": 0, "tokens": 0, "words": 0, "bins": [], "word": {}, "token": {}}
            )
            g["docs"] += 1
            g["tokens"] += len(tokens)
            g["words"] += len(words)
            g["bins"] += [int(histogram_bins(np.array([s]))[0]) for _, s in tokens]
            for unit, entries in (
                ("token", tokens),
                ("word", [(d.text[a:b].strip(), s) for a, b, s in words]),
            ):
                for text, score in entries:
                    total, count = g[unit].get(text, (0.0, 0))
                    g[unit][text] = (total + score, count + 1)
    out = []
    for (kind, name), g in sorted(groups.items()):
        lo, hi = min(g["bins"]), max(g["bins"])
        histogram = [
            {
                "low": None if np.isinf(a) else a,
                "high": None if np.isinf(b) else b,
                "count": g["bins"].count(i),
            }
            for i in range(lo, hi + 1)
            for a, b in [bin_edges(i)]
        ]
        summary = {"kind": kind, "group": name, "docs": g["docs"], "tokens": g["tokens"], "words": g["words"]}
        summary["histogram"] = histogram
        for unit in ("word", "token"):
            entries = [{"text": t, "count": c, "total": s, "mean": s / c} for t, (s, c) in g[unit].items()]
            frequent = [e for e in entries if e["count"] >= 3] or entries
            summary[f"top_{unit}s_by_total"] = sorted(entries, key=lambda e: (-e["total"], e["text"]))[:k]
            summary[f"top_{unit}s_by_mean"] = sorted(frequent, key=lambda e: (-e["mean"], e["text"]))[:k]
        out.append(summary)
    return out


# Scores are multiples of 1/4, so every sum is exact whatever the order of additions.
DOCS = [
    EIFFEL,
    CAFE,
    Doc(
        "a b a", [("a", 0, 1, 0, False, 1.0), ("b", 2, 3, 1, False, -4.0), ("a", 4, 5, 2, False, 3.0)], "neg"
    ),
    Doc("b!", [("b", 0, 1, 0, False, 0.75), ("!", 1, 2, 1, False, 0.25)], "neg", "neg", "c.txt"),
    Doc("The a", [("The", 0, 3, 0, False, 2.0), ("a", 4, 5, 1, False, 1.0)]),
    EIFFEL,
]


def test_batch_summaries_equal_the_per_document_reference():
    assert summarize_groups(batch_stats(*batch(DOCS)), k=4) == reference_summaries(DOCS, k=4)


def test_merging_partials_in_any_order_gives_the_same_summaries():
    whole = summarize_groups(batch_stats(*batch(DOCS)))
    parts = [batch_stats(*batch(DOCS[i : i + 2])) for i in range(0, len(DOCS), 2)]
    parts.append(batch_stats(*batch([])))
    for order in itertools.permutations(parts):
        assert summarize_groups(merge_stats(list(order))) == whole
    nested = merge_stats([parts[2], merge_stats([parts[1], parts[0]])])
    assert summarize_groups(nested) == whole


def test_vocabulary_is_pruned_to_the_most_frequent_entries():
    often = [Doc("x y", [("x", 0, 1, 0, False, 1.0), ("y", 2, 3, 1, False, 1.0)]) for _ in range(3)]
    rare = [Doc(w, [(w, 0, 1, 0, False, 100.0)]) for w in ("p", "q")]
    stats = merge_stats(
        [batch_stats(*batch(often), capacity=2), batch_stats(*batch(rare), capacity=2)], capacity=2
    )
    assert vocab(stats, "word") == {"x": (3.0, 3), "y": (3.0, 3)}  # pruned at 2 * capacity = 4 entries
    assert counts(stats)[("corpus", "")] == (5, 8, 8)  # counts and histogram stay exact
    assert sum(b["count"] for b in summarize_groups(stats)[0]["histogram"]) == 8
    # Below 2 * capacity entries nothing is pruned.
    assert len(vocab(batch_stats(*batch(often + rare[:1]), capacity=2), "word")) == 3


def test_pruning_ties_go_to_the_larger_total_then_the_text():
    docs = [Doc(w, [(w, 0, 1, 0, False, s)]) for w, s in (("c", 1.0), ("b", 2.0), ("a", 2.0), ("d", 0.5))]
    assert vocab(batch_stats(*batch(docs), capacity=2), "word") == {"a": (2.0, 1), "b": (2.0, 1)}
    assert vocab(batch_stats(*batch(docs[:2]), capacity=1), "word") == {"b": (2.0, 1)}
    assert vocab(batch_stats(*batch(docs[1:3]), capacity=1), "word") == {"a": (2.0, 1)}


def test_an_empty_batch_adds_nothing():
    rows, documents = batch([])
    assert documents.num_rows == 0 and rows.num_rows == 0
    empty = batch_stats(rows, documents)
    assert empty.counts.num_rows == empty.histogram.num_rows == empty.vocab.num_rows == 0
    assert summarize_groups(empty) == []
    one = batch_stats(*batch([EIFFEL]))
    assert summarize_groups(merge_stats([empty, one, empty_stats()])) == summarize_groups(one)


def test_a_batch_of_only_specials_counts_its_documents():
    stats = batch_stats(*batch([Doc("", [("[CLS]", 0, 0, None, True, 1.0)])]))
    assert counts(stats)[("corpus", "")] == (1, 0, 0)
    (corpus, *_) = summarize_groups(stats)
    assert corpus["histogram"] == [] and corpus["top_words_by_total"] == []


def test_rows_that_do_not_match_n_tokens_are_an_error():
    rows, documents = batch([EIFFEL])
    with pytest.raises(ValueError, match="n_tokens add up to 9, but there are 8 rows"):
        batch_stats(rows.slice(1), documents)


@pytest.mark.parametrize("score", [0.0, 1e-5, 0.002, 0.5, 1.0, 7.3, 45.2, 999.0, 3e5])
def test_every_score_lands_in_the_bin_that_contains_it(score):
    for value in (score, -score):
        (index,) = histogram_bins(np.array([value]))
        low, high = bin_edges(int(index))
        assert 0 <= index < N_BINS
        assert low <= value <= high


def test_out_of_range_scores_go_to_open_ended_bins():
    low_bin, high_bin = histogram_bins(np.array([-1e12, 1e12]))
    assert (low_bin, high_bin) == (0, N_BINS - 1)
    assert bin_edges(0)[0] == -np.inf and bin_edges(N_BINS - 1)[1] == np.inf


def test_top_entries_rank_by_total_and_by_mean_of_frequent_words():
    totals = {"rare": (50.0, 1), "often": (30.0, 10), "mid": (12.0, 3), "neg": (-5.0, 5)}
    table = pa.table(
        {
            "text": list(totals),
            "total": [t for t, _ in totals.values()],
            "count": [c for _, c in totals.values()],
        },
        schema=VOCAB_SCHEMA.remove(0).remove(0).remove(0),
    )
    assert [e["text"] for e in top_entries(table, 2, "total")] == ["rare", "often"]
    by_mean = top_entries(table, 10, "mean", min_count=3)
    assert [e["text"] for e in by_mean] == ["mid", "often", "neg"]
    assert by_mean[0] == {"text": "mid", "count": 3, "total": 12.0, "mean": 4.0}
    assert [e["text"] for e in top_entries(table, 10, "mean", min_count=20)][0] == "rare"  # none frequent


def test_summary_is_json_ready_with_a_contiguous_histogram():
    (corpus, *_) = summarize_groups(batch_stats(*batch([EIFFEL])), k=3)
    summary = json.loads(json.dumps(corpus, allow_nan=False))
    assert summary["docs"] == 1 and summary["tokens"] == 7 and summary["words"] == 6
    assert sum(b["count"] for b in summary["histogram"]) == 7
    assert summary["histogram"][0]["low"] < -1.9 and summary["histogram"][-1]["high"] > 2.9
    assert [e["text"] for e in summary["top_words_by_total"]] == ["tower", "Eiffel", "The"]
