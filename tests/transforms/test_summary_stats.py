"""Corpus summary statistics: word extraction, fixed-bin histograms, bounded mergeable accumulators."""

from __future__ import annotations

import numpy as np
import pytest

from normxlogit.transforms.summary_stats import (
    N_BINS,
    GroupStats,
    add_doc,
    bin_edges,
    doc_contribution,
    histogram_bins,
    merge_stats,
    summarize_group,
    top_entries,
)

TEXT = "The Eiffel-tower rocks!"
# [CLS] The Eif ##fel - tower rocks ! [SEP]
TOKENS = ["[CLS]", "The", "Eif", "fel", "-", "tower", "rocks", "!", "[SEP]"]
STARTS = np.array([0, 0, 4, 7, 10, 11, 17, 22, 0])
ENDS = np.array([0, 3, 7, 10, 11, 16, 22, 23, 0])
WORDS = np.array([-1, 0, 1, 1, 2, 3, 4, 5, -1])
SPECIAL = np.array([True, False, False, False, False, False, False, False, True])
SCORES = np.array([9.0, 1.0, 2.0, 0.5, -1.0, 3.0, -2.0, 0.25, 9.0], dtype=np.float32)


def contribution(text=TEXT):
    return doc_contribution(TOKENS, STARTS, ENDS, WORDS, SPECIAL, SCORES, text=text)


def test_words_are_text_spans_with_summed_scores():
    doc = contribution()
    assert doc.words == ["The", "Eiffel", "-", "tower", "rocks", "!"]
    np.testing.assert_allclose(doc.word_scores, [1.0, 2.5, -1.0, 3.0, -2.0, 0.25])
    assert doc.tokens == TOKENS[1:-1]  # specials left out
    np.testing.assert_allclose(doc.token_scores, SCORES[1:-1])


def test_words_without_text_join_their_tokens():
    assert contribution(text=None).words == contribution().words


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


def test_merging_partial_accumulators_equals_adding_all_docs():
    docs = [contribution(), contribution(text=None), doc_contribution(["a", " b"], *(np.array(v) for v in (
        [0, 1], [1, 3], [0, 1], [False, False], [4.0, -4.0])))]  # fmt: skip
    whole = GroupStats()
    for doc in docs:
        add_doc(whole, doc)
    parts = [add_doc(GroupStats(), docs[0]), add_doc(add_doc(GroupStats(), docs[1]), docs[2])]
    merged = merge_stats(parts)
    assert (merged.docs, merged.tokens, merged.words) == (3, 16, 14)
    np.testing.assert_array_equal(merged.histogram, whole.histogram)
    assert merged.histogram.sum() == merged.tokens
    assert merged.word_totals == whole.word_totals
    assert merged.word_totals["Eiffel"] == [5.0, 2]


def test_vocabulary_is_capped_to_the_most_frequent_entries():
    stats = GroupStats()
    frequent = doc_contribution(["x", " y"], np.array([0, 1]), np.array([1, 3]), np.array([0, 1]),
                                np.array([False, False]), np.array([1.0, 1.0]))  # fmt: skip
    for _ in range(3):
        add_doc(stats, frequent, capacity=2)
    for word in ("p", "q"):
        add_doc(stats, doc_contribution([word], np.array([0]), np.array([1]), np.array([0]),
                                        np.array([False]), np.array([100.0])), capacity=2)  # fmt: skip
    assert set(stats.word_totals) == {"x", "y"}  # pruned at 2 * capacity = 4 entries
    assert stats.word_totals["x"] == [3.0, 3]
    assert stats.docs == 5 and stats.histogram.sum() == 8  # counts and histogram stay exact


def test_top_entries_rank_by_total_and_by_mean_of_frequent_words():
    totals = {"rare": [50.0, 1], "often": [30.0, 10], "mid": [12.0, 3], "neg": [-5.0, 5]}
    assert [e["text"] for e in top_entries(totals, 2, "total")] == ["rare", "often"]
    by_mean = top_entries(totals, 10, "mean", min_count=3)
    assert [e["text"] for e in by_mean] == ["mid", "often", "neg"]
    assert by_mean[0] == {"text": "mid", "count": 3, "total": 12.0, "mean": 4.0}


def test_summary_is_json_ready_with_a_contiguous_histogram():
    import json

    stats = add_doc(GroupStats(), contribution())
    summary = json.loads(json.dumps(summarize_group("corpus", "", stats, k=3), allow_nan=False))
    assert summary["docs"] == 1 and summary["tokens"] == 7 and summary["words"] == 6
    assert sum(b["count"] for b in summary["histogram"]) == 7
    assert summary["histogram"][0]["low"] < -1.9 and summary["histogram"][-1]["high"] > 2.9
    assert [e["text"] for e in summary["top_words_by_total"]] == ["tower", "Eiffel", "The"]
