"""``evaluate``'s combine and result files: document-bootstrap intervals that are deterministic for a
seed, cover a known truth about 95% of the time on simulated corpora (means and paired differences),
merge in any split, and read ``0.715 [0.68, 0.75]`` in the table."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from normxlogit.bootstrap import Resampling
from normxlogit.faithfulness import METRICS, DocFaithfulness
from normxlogit.transforms.evaluate_results import (
    CURVE_SCHEMA,
    KeyedFaithfulness,
    SumCurves,
    results_table,
    write_results,
)

METHODS = ("normxlogit", "random")
BASELINES = ("random",)
K = 9
# Per (metric, k) means of the simulated random method; normxlogit's are these plus PLANTED.
RANDOM_MEANS = np.linspace(0.1, 0.5, 2 * K).reshape(2, K)
PLANTED = 0.05
P_CORRECT = 0.7


def simulated_docs(n_docs: int, rng: np.random.Generator, corpus: int = 0) -> list[KeyedFaithfulness]:
    """Documents whose per-(metric, k) drops are the method's mean + a document effect u_d ~ N(0, 0.3)
    shared by both methods, metrics and every k (so the methods are paired) + N(0, 0.1) noise per
    value; accuracy hits are Bernoulli(P_CORRECT). Truths: the random method's per-metric mean is
    ``RANDOM_MEANS.mean(axis=1)``, normxlogit minus random is ``PLANTED``, accuracy ``P_CORRECT``."""
    u = rng.normal(0, 0.3, n_docs)[:, None, None, None]
    means = np.stack([RANDOM_MEANS + PLANTED, RANDOM_MEANS])  # (M, 2, K)
    drop = means[None] + u + rng.normal(0, 0.1, (n_docs, 2, 2, K))
    correct = rng.random((n_docs, 2, 2, K)) < P_CORRECT
    return [KeyedFaithfulness(f"c{corpus}-d{d}", DocFaithfulness(drop[d], correct[d])) for d in range(n_docs)]


def combined(docs: list[KeyedFaithfulness], resampling: Resampling, methods=METHODS):
    """The combine as Beam runs it on one worker: one accumulator, every input added, extracted."""
    fn = SumCurves(len(methods), resampling)
    acc = fn.create_accumulator()
    for doc in docs:
        acc = fn.add_input(acc, doc)
    return fn.extract_output(acc)


def test_intervals_are_deterministic_for_a_seed_and_change_with_it():
    docs = simulated_docs(60, np.random.default_rng(0))
    first = combined(docs, Resampling(200, seed=1)).summary(METHODS, BASELINES)
    again = combined(list(reversed(docs)), Resampling(200, seed=1)).summary(METHODS, BASELINES)
    other = combined(docs, Resampling(200, seed=2)).summary(METHODS, BASELINES)
    figures = first["methods"]["normxlogit"]["comprehensiveness"]
    np.testing.assert_allclose(
        figures["drop_ci"], again["methods"]["normxlogit"]["comprehensiveness"]["drop_ci"]
    )
    diff, diff_again = (
        s["methods"]["normxlogit"]["comprehensiveness"]["differences"]["random"] for s in (first, again)
    )
    assert diff["drop_p"] == diff_again["drop_p"]
    np.testing.assert_allclose(diff["drop_ci"], diff_again["drop_ci"])
    moved = other["methods"]["normxlogit"]["comprehensiveness"]
    assert moved["drop"] == figures["drop"]  # the means do not depend on the seed
    assert moved["drop_ci"] != figures["drop_ci"]
    assert moved["differences"]["random"]["drop_ci"] != figures["differences"]["random"]["drop_ci"]


def test_intervals_cover_the_truth_about_95_percent_of_the_time():
    """1,000 simulated corpora of 150 documents through the combine: the 95% intervals of a mean, of an
    accuracy and of a paired difference each cover the true value 93-97% of the time."""
    rng = np.random.default_rng(2024)
    resampling = Resampling(1000, seed=7)
    truth_mean = RANDOM_MEANS[0].mean()
    hits = {"mean": 0, "accuracy": 0, "difference": 0}
    widths = {"mean": [], "difference": []}
    corpora = 1000
    for c in range(corpora):
        summary = combined(simulated_docs(150, rng, c), resampling).summary(METHODS, BASELINES)
        rand = summary["methods"]["random"]["comprehensiveness"]
        diff = summary["methods"]["normxlogit"]["comprehensiveness"]["differences"]["random"]
        hits["mean"] += rand["drop_ci"][0] <= truth_mean <= rand["drop_ci"][1]
        hits["accuracy"] += rand["accuracy_ci"][0] <= P_CORRECT <= rand["accuracy_ci"][1]
        hits["difference"] += diff["drop_ci"][0] <= PLANTED <= diff["drop_ci"][1]
        widths["mean"].append(rand["drop_ci"][1] - rand["drop_ci"][0])
        widths["difference"].append(diff["drop_ci"][1] - diff["drop_ci"][0])
    coverage = {name: n / corpora for name, n in hits.items()}
    assert all(0.93 <= share <= 0.97 for share in coverage.values()), coverage
    # paired: the shared document effect cancels, so the difference's interval is far narrower than
    # the mean's (an unpaired interval of the difference would be about sqrt(2) times the mean's)
    assert np.median(widths["difference"]) < 0.25 * np.median(widths["mean"])


def test_a_planted_difference_is_significant_and_no_difference_is_not():
    docs = simulated_docs(150, np.random.default_rng(3))
    summary = combined(docs, Resampling(1000, seed=0)).summary(METHODS, BASELINES)
    diff = summary["methods"]["normxlogit"]["sufficiency"]["differences"]["random"]
    assert diff["drop"] == pytest.approx(PLANTED, abs=0.02) and diff["drop_p"] < 0.01
    assert 0 <= diff["accuracy_p"] <= 1 and diff["accuracy_p"] > 0.01  # same hit rate for both
    # a method against itself under another name: difference 0 in every replicate, p = 1
    same = [
        KeyedFaithfulness(d.doc_id, DocFaithfulness(d.faithfulness.drop[[1, 1]], d.faithfulness.correct))
        for d in docs
    ]
    twin = combined(same, Resampling(200, seed=0)).summary(METHODS, BASELINES)
    nothing = twin["methods"]["normxlogit"]["comprehensiveness"]["differences"]["random"]
    assert nothing["drop"] == 0 and nothing["drop_ci"] == [0, 0] and nothing["drop_p"] == 1
    assert "random" not in twin["methods"]["random"]["comprehensiveness"]["differences"]


@pytest.mark.parametrize("split_seed", [0, 1, 2])
def test_merging_accumulators_in_any_split_equals_one_accumulator(split_seed):
    rng = np.random.default_rng(split_seed)
    docs = simulated_docs(700, np.random.default_rng(9))  # more than a buffer of documents
    resampling = Resampling(300, seed=4)
    fn = SumCurves(len(METHODS), resampling)
    whole = combined(docs, resampling)
    order = rng.permutation(len(docs))
    cuts = np.sort(rng.choice(np.arange(1, len(docs)), size=rng.integers(1, 6), replace=False))
    parts = []
    for part in np.split(order, cuts):
        acc = fn.create_accumulator()
        for i in part:
            acc = fn.add_input(acc, docs[i])
        if rng.random() < 0.5:
            acc = fn.compact(acc)
        parts.append(acc)
    rng.shuffle(parts)
    merged = fn.extract_output(fn.merge_accumulators([fn.merge_accumulators(parts[:1]), *parts[1:]]))
    assert merged.sums.samples == whole.sums.samples == 700
    np.testing.assert_array_equal(merged.replicates.weights, whole.replicates.weights)  # integer counts
    np.testing.assert_allclose(merged.replicates.sums, whole.replicates.sums, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(merged.sums.drop, whole.sums.drop, rtol=1e-12)
    a, b = merged.summary(METHODS, BASELINES), whole.summary(METHODS, BASELINES)
    for method in METHODS:
        for metric in METRICS:
            assert a["methods"][method][metric]["drop_ci"] == pytest.approx(
                b["methods"][method][metric]["drop_ci"]
            )
    rows, expected = merged.curve_rows(METHODS), whole.curve_rows(METHODS)
    assert len(rows) == len(expected) == 2 * 2 * K
    for row, want in zip(rows, expected):
        assert row.keys() == want.keys()
        assert all(row[key] == pytest.approx(want[key]) for key in row), (row, want)


def test_result_files_hold_intervals_differences_and_bands(tmp_path):
    docs = simulated_docs(80, np.random.default_rng(5))
    acc = combined(docs, Resampling(500, seed=3))
    written = write_results(acc, str(tmp_path), METHODS, BASELINES, random_seeds=3)
    assert written[:3] == ["curves.parquet", "summary.json", "results.md"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["samples", "methods", "interval", "random_seeds"]
    assert summary["interval"] == {
        "kind": "percentile document bootstrap",
        "level": 0.95,
        "replicates": 500,
        "seed": 3,
        "unit": "document",
        "weights": "Poisson(1) per document and replicate, a function of (seed, doc id, replicate)",
        "statistic": "mean over k of the per-k means over documents",
        "differences": "method minus baseline on the same resampled documents (paired); p: two-sided "
        "bootstrap p-value of difference = 0",
        "baselines": ["random"],
    }
    figures = summary["methods"]["normxlogit"]["comprehensiveness"]
    assert list(figures) == ["drop", "accuracy", "drop_ci", "accuracy_ci", "differences"]
    assert figures["drop_ci"][0] < figures["drop"] < figures["drop_ci"][1]
    assert list(figures["differences"]["random"]) == [
        "drop", "drop_ci", "drop_p", "accuracy", "accuracy_ci", "accuracy_p",
    ]  # fmt: skip
    curves = pq.read_table(tmp_path / "curves.parquet")
    assert curves.schema == CURVE_SCHEMA and curves.num_rows == 2 * 2 * K
    for row in curves.to_pylist():
        assert row["drop_low"] <= row["drop"] <= row["drop_high"]
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    table = (tmp_path / "results.md").read_text()
    assert "B=500, seed 3; random: mean of 3 seeded rankings per sample" in table
    assert re.search(r"\| normxlogit \| \d\.\d{3} \[\d\.\d{2}, \d\.\d{2}\] \|", table)
    assert "Paired differences to random" in table
    assert re.search(r"\| normxlogit \| \+0\.0\d{2} \[\+0\.\d{3}, \+0\.\d{3}\] p=0\.\d{3} \|", table)


def test_a_run_without_documents_writes_empty_figures(tmp_path):
    acc = combined([], Resampling(50, seed=0))
    write_results(acc, str(tmp_path), METHODS, BASELINES)
    summary = json.loads((tmp_path / "summary.json").read_text())
    figures = summary["methods"]["normxlogit"]["sufficiency"]
    assert figures["drop"] is None and figures["drop_ci"] == [None, None]
    assert figures["differences"]["random"]["drop_p"] is None
    assert "| normxlogit | - | - | - | - |" in results_table(summary)
    assert pq.read_table(tmp_path / "curves.parquet").num_rows == 0
