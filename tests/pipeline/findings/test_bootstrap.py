"""The document bootstrap: seeded per-document weights, coverage on simulated corpora with a known
truth, chunked sums, p- and q-values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import false_discovery_control

from normxlogit.pipeline.findings import bootstrap
from normxlogit.pipeline.findings.bootstrap import (
    ReplicateSums,
    Resampling,
    document_keys,
    median_interval,
    p_values,
    percentile_interval,
    poisson_weights,
    q_values,
)
from normxlogit.pipeline.findings.observations import Observations
from normxlogit.pipeline.findings.replicates import BlockSums, MassSums, WordBlock, word_intervals
from normxlogit.pipeline.findings.stats import SIMULATED_COVERAGE
from normxlogit.pipeline.findings.word_deltas import PairedSums
from normxlogit.pipeline.report.run_reader import doc_hash

TRUE_MEAN = 2.0


def simulated_corpora(n_corpora: int, n_docs: int, rng: np.random.Generator):
    """Per-document sums of corpora whose words have mean score ``TRUE_MEAN``.

    A document holds 1 + Poisson(3) occurrences; each scores TRUE_MEAN + u_d + e with a document
    effect u_d ~ N(0, 1) shared by its occurrences and noise e ~ N(0, 1): occurrences of one
    document are correlated (intra-document correlation 0.5).

    Returns:
        (corpora, docs) sums of scores and occurrence counts, and (corpora, docs) effects u_d.
    """
    count = rng.poisson(3.0, (n_corpora, n_docs)) + 1
    effect = rng.normal(0.0, 1.0, (n_corpora, n_docs))
    score = count * (TRUE_MEAN + effect) + rng.normal(0.0, 1.0, (n_corpora, n_docs)) * np.sqrt(count)
    return score, count.astype(np.float64), effect


def covered(corpus: np.ndarray, score: np.ndarray, count: np.ndarray, resampling: Resampling) -> np.ndarray:
    """Whether the ``mean_score`` interval of each corpus, computed as ``stats`` computes it, covers
    ``TRUE_MEAN``.

    Each corpus is one word of the corpus slice, and each unit is one of its documents to ``stats``
    (``BlockSums`` sums the units' weighted sums, ``word_intervals`` turns them into intervals): many
    corpora in one pass, each with its own units.

    Args:
        corpus: (units,) the corpus of each unit, 0 .. corpora - 1, every corpus with a unit.
        score, count: (units,) the unit's sum of scores and its occurrences.

    Returns:
        (corpora,) bool.
    """
    n = int(corpus.max()) + 1
    words = pa.array([f"w{c}" for c in range(n)])
    rows, units = np.arange(n), np.arange(len(corpus))
    block = WordBlock(words, np.zeros(n, np.int64), rows, rows, rows, n_slices=1)
    obs = Observations(
        words=words,
        keys=units.astype(np.uint64),
        slice_id=np.zeros(len(units), np.int64),
        word=corpus,
        doc=units,
        score=score,
        count=count,
        mass=np.abs(score),
    )
    sums, mass = BlockSums(block, resampling), MassSums(1, 0, resampling)
    sums.add(obs)
    mass.add(obs, None)
    found = word_intervals(sums, mass.slices, np.ones(n, bool))
    return (found.mean_low <= TRUE_MEAN) & (TRUE_MEAN <= found.mean_high)


def document_coverage(n_corpora: int, n_docs: int, resampling: Resampling, seed: int) -> float:
    """Coverage of ``stats``'s nominal intervals of the mean over ``n_corpora`` simulated corpora."""
    score, count, _ = simulated_corpora(n_corpora, n_docs, np.random.default_rng(seed))
    corpus = np.repeat(np.arange(n_corpora), n_docs)
    return float(covered(corpus, score.ravel(), count.ravel(), resampling).mean())


def test_document_bootstrap_covers_the_true_mean_and_a_token_bootstrap_does_not():
    resampling = Resampling(replicates=400, seed=0)
    # 4000 corpora: the coverage to within about 0.004 (one standard error)
    n_docs = 100
    doc_coverage = document_coverage(4000, n_docs, resampling, seed=20240601)
    # the token bootstrap on data of the same kind: 200 corpora, each occurrence a unit of its own
    rng = np.random.default_rng(20240602)
    _, count, effect = simulated_corpora(200, n_docs, rng)
    per_doc = count.astype(int).ravel()
    occurrence = TRUE_MEAN + np.repeat(effect.ravel(), per_doc) + rng.normal(0, 1, per_doc.sum())
    corpus = np.repeat(np.repeat(np.arange(200), n_docs), per_doc)
    tokens = covered(corpus, occurrence, np.ones(len(occurrence)), resampling)
    token_coverage = tokens.mean()
    assert len(tokens) == 200
    print(f"coverage of nominal 95% intervals: documents {doc_coverage:.3f}, tokens {token_coverage:.3f}")
    assert 0.93 <= doc_coverage <= 0.97, doc_coverage
    assert abs(doc_coverage - SIMULATED_COVERAGE[100]) < 0.015, doc_coverage  # as summary.json says
    # Occurrences of a document share its effect: resampling them as if independent gives intervals
    # too narrow by about sqrt(1 + (m - 1) * 0.5), far below the nominal 95%.
    assert token_coverage < 0.85, token_coverage


@pytest.mark.parametrize("n_docs", [n for n in SIMULATED_COVERAGE if n < 100])
def test_intervals_of_few_documents_undercover_as_summary_json_says(n_docs):
    """Percentile intervals of few documents are too narrow; ``stats`` says by how much, and this is
    the simulation behind the figures (the default B; 6000 corpora: about 0.004 standard error)."""
    coverage = document_coverage(6000, n_docs, Resampling(), seed=n_docs)
    print(f"coverage of nominal 95% intervals with {n_docs} documents: {coverage:.3f}")
    assert abs(coverage - SIMULATED_COVERAGE[n_docs]) < 0.015, coverage
    assert coverage < 0.94


def test_weights_are_poisson_one_and_a_function_of_seed_document_and_replicate():
    resampling = Resampling(replicates=1000, seed=7)
    keys = document_keys([f"doc-{i}" for i in range(3000)])
    weights = poisson_weights(keys, resampling)
    assert weights.shape == (3000, 1000) and weights.min() == 0 and (weights == np.round(weights)).all()
    assert abs(weights.mean() - 1) < 0.01 and abs(weights.var() - 1) < 0.02
    assert abs((weights == 0).mean() - np.exp(-1)) < 0.005
    # a document's weights do not depend on the other documents, their order or the replicates asked
    np.testing.assert_array_equal(poisson_weights(keys[[17, 3]], resampling), weights[[17, 3]])
    np.testing.assert_array_equal(poisson_weights(keys, resampling, 100, 130), weights[:, 100:130])
    assert not np.array_equal(poisson_weights(keys, Resampling(1000, seed=8)), weights)
    assert abs(np.corrcoef(weights[0], weights[1])[0, 1]) < 0.1


def test_document_keys_are_the_reports_doc_hash():
    ids = ["a", "corpus/part-1.jsonl#L2", "\u202eevil 😀"]
    assert document_keys(ids).tolist() == [doc_hash(i) for i in ids]
    import pyarrow as pa

    assert document_keys(pa.array(ids)).tolist() == document_keys(ids).tolist()


def test_sums_added_chunk_by_chunk_equal_the_sums_of_all_documents_at_once():
    resampling = Resampling(replicates=50, seed=3)
    rng = np.random.default_rng(0)
    keys = document_keys([f"d{i}" for i in range(40)])
    values = rng.normal(size=(40, 3)) * (rng.random((40, 3)) < 0.6)
    whole = values.T @ poisson_weights(keys, resampling)
    sums = ReplicateSums(3, resampling)
    for a in range(0, 40, 7):
        doc, row = np.nonzero(values[a : a + 7])
        # each entry split in two halves: repeated (row, document) entries add
        half = values[a : a + 7][doc, row] / 2
        sums.add(np.r_[row, row], np.r_[doc, doc], np.r_[half, half], keys[a : a + 7])
    np.testing.assert_allclose(sums.replicates, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums.totals, values.sum(axis=0), rtol=1e-12)


def test_sums_weigh_at_most_docs_per_chunk_documents_at_once(monkeypatch):
    """A chunk of many short documents: the weights in memory are bounded by ``DOCS_PER_CHUNK``
    documents, whatever the chunk holds, and the sums are those of all documents at once."""
    resampling = Resampling(replicates=50, seed=4)
    rng = np.random.default_rng(1)
    keys = document_keys([f"d{i}" for i in range(60)])
    values = rng.normal(size=(60, 4)) * (rng.random((60, 4)) < 0.5)
    values[17] = 0  # a document without entries (so are a few others, by chance)
    whole = values.T @ poisson_weights(keys, resampling)
    doc, row = np.nonzero(values)
    shuffled = rng.permutation(len(doc))  # entries in no order of documents
    weighted = []

    def recorded(keys, resampling, *args):
        weighted.append(len(keys))
        return poisson_weights(keys, resampling, *args)

    monkeypatch.setattr(bootstrap, "DOCS_PER_CHUNK", 7)
    monkeypatch.setattr(bootstrap, "poisson_weights", recorded)
    sums = ReplicateSums(4, resampling)
    sums.add(row[shuffled], doc[shuffled], values[doc, row][shuffled], keys)
    np.testing.assert_allclose(sums.replicates, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums.totals, values.sum(axis=0), rtol=1e-12)
    # each document with entries weighed once, 7 at most at a time
    assert max(weighted) == 7 and sum(weighted) == (values != 0).any(axis=1).sum() < 60


def one_word_block() -> WordBlock:
    """A block of one word, ``w``, in the corpus slice."""
    zero = np.zeros(1, np.int64)
    return WordBlock(pa.array(["w"]), zero, zero, zero, zero, n_slices=1)


def test_a_paired_difference_is_the_interval_of_the_differences():
    """``compare``'s delta of two runs on the same documents (one count of occurrences): in every
    replicate the difference of the two means is the mean of the per-document differences."""
    resampling = Resampling(replicates=300, seed=1)
    rng = np.random.default_rng(5)
    count = rng.integers(1, 6, 200).astype(float)
    a = rng.normal(1.0, 1.0, 200) * count
    b = a + rng.normal(0.3, 0.2, 200) * count  # b = a + 0.3 per occurrence, strongly paired
    keys = document_keys([f"d{i}" for i in range(200)])
    sums = PairedSums(one_word_block(), resampling)
    entries = {
        "word": ["w"] * 200,
        "slice_id": np.zeros(200, np.int64),
        "sum_a": a,
        "sum_b": b,
        "count": count,
    }
    sums.add(pa.table(entries), np.arange(200), keys)
    low, high, p = sums.delta_intervals()
    weights = poisson_weights(keys, resampling)
    direct = ((b - a) @ weights) / (count @ weights)
    np.testing.assert_allclose([low[0], high[0]], np.quantile(direct, [0.025, 0.975]), rtol=1e-12)
    assert low[0] > 0.25 and high[0] < 0.35 and p[0] < 0.01
    # the same means as independent groups (no document in both) give a far wider interval
    split = np.arange(200) < 100
    unpaired = (b * ~split) @ weights / ((count * ~split) @ weights) - (a * split) @ weights / (
        (count * split) @ weights
    )
    assert np.subtract(*np.quantile(unpaired, [0.975, 0.025])) > 5 * (high[0] - low[0])


def test_shares_means_and_medians_have_their_point_estimates_inside_their_intervals():
    """A word's share and mean as ``stats`` draws them (``BlockSums``, ``MassSums``, ``word_intervals``),
    a median as ``compare`` draws it (``median_interval``)."""
    resampling = Resampling(replicates=400, seed=2)
    rng = np.random.default_rng(9)
    keys = document_keys([f"d{i}" for i in range(300)])
    total = rng.gamma(2.0, 1.0, 300) + 1
    part = total * rng.beta(2, 8, 300)  # the absolute score of the word w, of all words: total
    count = rng.integers(1, 4, 300).astype(float)
    score = part * np.where(rng.random(300) < 0.8, 1.0, -1.0)
    doc = np.r_[np.arange(300), np.arange(300)]  # w, then the other words of each document
    obs = Observations(
        words=pa.array(["w", "other"]),
        keys=keys,
        slice_id=np.zeros(600, np.int64),
        word=np.repeat([0, 1], 300),
        doc=doc,
        score=np.r_[score, total - part],
        count=np.r_[count, np.full(300, 9.0)],
        mass=np.r_[part, total - part],
    )
    sums, mass = BlockSums(one_word_block(), resampling), MassSums(1, 0, resampling)
    sums.add(obs)
    mass.add(obs, None)
    word = word_intervals(sums, mass.slices, np.ones(1, bool))
    share, mean = part.sum() / total.sum(), score.sum() / count.sum()
    assert 0 < word.share_low[0] < share < word.share_high[0] < 1
    assert word.mean_low[0] < mean < word.mean_high[0] and word.p_value[0] < 0.01
    values = rng.normal(0.4, 1.0, 300)
    median = median_interval(values, keys, resampling)
    assert median.estimate[0] == np.median(values)
    assert median.low[0] < median.estimate[0] < median.high[0] and median.p_value[0] < 0.01


def test_p_values_are_twice_the_smaller_tail_and_skip_missing_replicates():
    replicates = np.array([[-1.0, 1.0, 2.0, 3.0, np.nan], [1.0, 2.0, 3.0, 4.0, 5.0], [np.nan] * 5])
    p = p_values(replicates)
    assert p[0] == pytest.approx(2 * (1 + 1) / 5) and p[1] == pytest.approx(2 / 6) and np.isnan(p[2])
    low, high = percentile_interval(replicates, 0.5)
    assert (low[1], high[1]) == (2.0, 4.0) and np.isnan(low[2])


def test_q_values_are_benjamini_hochberg():
    rng = np.random.default_rng(11)
    p = np.r_[rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)]
    np.testing.assert_allclose(q_values(p), false_discovery_control(p, method="bh"), rtol=1e-12)
    with_missing = np.r_[p[:50], np.nan, p[50:]]
    q = q_values(with_missing)
    assert np.isnan(q[50])
    np.testing.assert_allclose(np.delete(q, 50), false_discovery_control(p, method="bh"), rtol=1e-12)
    assert np.isnan(q_values(np.array([np.nan]))).all() and q_values(np.array([])).size == 0


def test_resampling_refuses_what_cannot_be_drawn_and_says_what_it_draws():
    assert Resampling().describe() == (
        "95% percentile interval, document bootstrap (Poisson(1) weight per document), B=1000, seed 0"
    )
    for bad in ({"replicates": 0}, {"seed": -1}, {"level": 1.0}):
        with pytest.raises(ValueError):
            Resampling(**bad)
