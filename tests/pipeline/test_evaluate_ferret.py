"""``normxlogit evaluate``'s ferret metrics, normalised metrics and diagnosticity, end to end: summary
keys and intervals, the leave-one-out cap and its count, the same figures for the same seed, and the
response run's AOPC on the response log-probability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normxlogit.bootstrap import Resampling
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.ferret_faithfulness import DEFAULT_LOO_MAX_TOKENS, DIAGNOSTIC_METRICS, SCALAR_METRICS
from normxlogit.scalar_intervals import ScalarReplicates

TEXTS = [
    "A wonderful, heartfelt film with great acting.",
    "Dull plot and wooden dialogue; I left early.",
    "Not bad at all.",
    "The best film of the year, full of warmth and wit.",
    "Boring.",
    "I would not watch it again, though the music was fine.",
]


def _corpus(path) -> None:
    rows = [{"id": f"r{i}", "text": t, "label": i % 2} for i, t in enumerate(TEXTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_classifier, cli):
    """The same corpus three times: seed 0 twice, seed 1 once; --loo-max-tokens 6."""
    tmp = tmp_path_factory.mktemp("ferret")
    src = tmp / "reviews.jsonl"
    _corpus(src)
    base = (src, "--model", tiny_classifier, "--label-field", "label", "--id-field", "id")
    base += ("--methods", "normxlogit,random,gradient_x_input", "--bootstrap", 200, "--loo-max-tokens", 6)
    outs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        outs[name] = tmp / name
        assert cli.evaluate(*base, "--seed", seed, "--output", outs[name]) == 0
    return outs


def test_summary_has_ferrets_metrics_with_intervals_and_paired_differences(runs):
    summary = _summary(runs["a"])
    ferret = summary["ferret"]
    assert ferret["metrics"] == list(SCALAR_METRICS)
    assert ferret["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert ferret["documents"] == 6 and ferret["loo_max_tokens"] == 6
    assert list(ferret["methods"]) == ["normxlogit", "random", "gradient_x_input"]
    for method, figures in ferret["methods"].items():
        assert list(figures) == list(SCALAR_METRICS)
        for metric in ("aopc_compr", "aopc_suff"):
            fig = figures[metric]
            assert fig["documents"] == 6
            low, high = fig["ci"]
            assert low <= fig["mean"] + 1e-12 <= high + 2e-12
            assert list(fig["differences"]) == [b for b in ("random", "gradient_x_input") if b != method]
            for base, diff in fig["differences"].items():
                other = ferret["methods"][base][metric]["mean"]
                assert diff["difference"] == pytest.approx(fig["mean"] - other)
                assert 0 <= diff["p"] <= 1 and diff["ci"][0] <= diff["ci"][1]
    # The mask-token metrics keep their place: the summary's methods hold only them.
    assert set(summary["methods"]["normxlogit"]) == {"comprehensiveness", "sufficiency"}


def test_texts_above_the_loo_cap_are_counted_and_said(runs):
    summary = _summary(runs["a"])
    ferret = summary["ferret"]
    # Rankable (non-special) tokens of the six texts with MiniLM's WordPiece: 10, 11, 5, 13, 2, 14.
    assert ferret["loo_skipped"] == 4
    for figures in ferret["methods"].values():
        assert figures["taucorr_loo"]["documents"] <= 2
    table = (runs["a"] / "results.md").read_text()
    assert "4 documents skipped (more than 6 rankable tokens (--loo-max-tokens)" in table
    assert (
        "| method | aopc_compr (higher better) | aopc_suff (lower better) | taucorr_loo (higher better)"
        in table
    )


def test_diagnosticity_per_metric_with_intervals(runs):
    diag = _summary(runs["a"])["diagnosticity"]
    assert list(diag["metrics"]) == list(DIAGNOSTIC_METRICS)
    for fig in diag["metrics"].values():
        assert list(fig["methods"]) == ["normxlogit", "gradient_x_input"]
        for one in [fig, *fig["methods"].values()]:
            if one["mean"] is not None:
                assert 0 <= one["ci"][0] <= one["mean"] + 1e-12 <= one["ci"][1] + 2e-12 <= 1 + 2e-12
    table = (runs["a"] / "results.md").read_text()
    assert "| metric | all methods | normxlogit | gradient_x_input |" in table
    assert "| aopc_compr |" in table


def test_same_seed_same_figures_other_seed_other_intervals(runs):
    a, b, c = (_summary(runs[k]) for k in "abc")
    assert a["ferret"] == b["ferret"] and a["diagnosticity"] == b["diagnosticity"]
    assert (runs["a"] / "results.md").read_text() == (runs["b"] / "results.md").read_text()
    # normxlogit's own figures do not depend on the seed; their intervals do.
    fig_a, fig_c = (s["ferret"]["methods"]["normxlogit"]["aopc_compr"] for s in (a, c))
    assert fig_a["mean"] == pytest.approx(fig_c["mean"]) and fig_a["ci"] != fig_c["ci"]


def _leaves(tree, path: str = "") -> dict:
    """Every number of a nested summary by its path (None as nan)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _leaves(sub, f"{path}/{i}").items()}
    return {path: float("nan") if tree is None else tree}


def test_scalar_intervals_do_not_depend_on_order_or_split():
    rng = np.random.default_rng(1)
    docs = []
    for _ in range(40):
        scalars = rng.normal(size=(2, len(SCALAR_METRICS)))
        scalars[:, 2] = np.nan if rng.random() < 0.3 else scalars[:, 2]
        hits = np.vstack([rng.random(len(DIAGNOSTIC_METRICS)), np.full(len(DIAGNOSTIC_METRICS), np.nan)])
        docs.append(
            DocFaithfulness(np.zeros((2, 2, 9)), np.zeros((2, 2, 9)), scalars=scalars, diagnostic=hits)
        )
    keys = rng.integers(0, 2**63, 40)
    resampling = Resampling(replicates=300, seed=7)
    whole = ScalarReplicates(2, resampling)
    for d, k in zip(docs, keys):
        whole.add(d, int(k))
    halves = [ScalarReplicates(2, resampling), ScalarReplicates(2, resampling)]
    for i in np.random.default_rng(2).permutation(40):
        halves[i % 2].add(docs[i], int(keys[i]))
    merged = halves[1].merge(halves[0])
    methods, baselines = ("m", "random"), ("random",)
    # The same figures up to the order of floating-point sums.
    assert _leaves(merged.method_summary(methods, baselines)) == pytest.approx(
        _leaves(whole.method_summary(methods, baselines)), rel=1e-12, abs=1e-15
    )
    assert _leaves(merged.diagnosticity(methods, "random")) == pytest.approx(
        _leaves(whole.diagnosticity(methods, "random")), rel=1e-12, abs=1e-15
    )
    summary = whole.method_summary(methods, baselines)["m"]
    want = [d.scalars[0, 2] for d in docs if not np.isnan(d.scalars[0, 2])]
    assert summary["taucorr_loo"]["documents"] == len(want)
    assert summary["taucorr_loo"]["mean"] == pytest.approx(np.mean(want))


def test_cli_default_is_the_librarys():
    from normxlogit.pipeline.commands import evaluate

    assert evaluate.DEFAULT_LOO_MAX_TOKENS == DEFAULT_LOO_MAX_TOKENS


def test_response_runs_get_aopc_on_the_response_log_probability(tmp_path, tiny_causal_lm, cli, write_jsonl):
    src = tmp_path / "pairs.jsonl"
    pairs = [
        {"id": "a", "text": "The capital of France is", "answer": " Paris, a large city."},
        {"id": "b", "text": "Two plus two equals", "answer": " four, of course."},
        {"id": "c", "text": "Write a word about the sea:", "answer": " waves"},
    ]
    write_jsonl(src, pairs)
    out = tmp_path / "out"
    args = (src, "--model", tiny_causal_lm, "--response-field", "answer", "--id-field", "id")
    assert cli.evaluate(*args, "--methods", "normxlogit,random", "--bootstrap", 100, "--output", out) == 0
    summary = _summary(out)
    ferret = summary["ferret"]
    assert ferret["metrics"] == ["aopc_compr", "aopc_suff"] and "loo_max_tokens" not in ferret
    assert "mean per-token log-probability" in ferret["value"]
    for figures in ferret["methods"].values():
        assert list(figures) == ["aopc_compr", "aopc_suff"]
        assert figures["aopc_compr"]["documents"] >= 1
    assert list(summary["diagnosticity"]["metrics"]) == [
        "comprehensiveness",
        "sufficiency",
        "aopc_compr",
        "aopc_suff",
    ]
