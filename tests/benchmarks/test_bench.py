"""``benchmarks/bench.py``: it runs end to end and its figures are computed from what they claim.

No timing is asserted (figures on a shared machine are noise at this size); what is checked is
that every figure exists, comes from real runs of the right sizes, and is consistent with the
files those runs wrote.
"""

from __future__ import annotations

import json

import pytest

from normxlogit.transforms.layout import read_manifest


@pytest.fixture(scope="module")
def bench(benchmark_module):
    """``benchmarks/bench.py``."""
    return benchmark_module("bench")


def test_spread_by_length_covers_shortest_to_longest(bench):
    lengths = [5, 40, 7, 512, 100, 12, 300]
    picks = bench.spread_by_length(lengths, 3)
    assert [lengths[i] for i in picks] == [5, 40, 512]
    assert bench.spread_by_length(lengths, 50) == list(range(len(lengths)))


def test_steady_state_subtracts_the_small_run(bench):
    from bench_pipeline import PipelineRun, steady_tokens_per_s

    small = PipelineRun(
        docs=2, seconds=10.0, peak_rss_mb=1.0, tokens=100, padded_tokens=110, docs_annotated=2
    )
    large = PipelineRun(
        docs=20, seconds=28.0, peak_rss_mb=1.0, tokens=1000, padded_tokens=1100, docs_annotated=20
    )
    assert steady_tokens_per_s(small, large) == pytest.approx(900 / 18)


def test_write_jsonl_repeats_texts_under_distinct_ids(bench, tmp_path):
    from bench_pipeline import write_jsonl

    path = write_jsonl(tmp_path / "c.jsonl", ["a", "b é"], copies=3)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["a", "b é"] * 3
    assert len({r["id"] for r in rows}) == 6


@pytest.mark.slow
def test_quick_run_reports_every_figure_from_real_runs(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "--quick",
        *("--docs", "10", "--gxi-docs", "2", "--ig-docs", "1", "--memory-docs", "2", "--max-length", "32"),
        *("--out", str(out), "--work-dir", str(tmp_path / "runs")),
    ]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())

    assert set(payload["figures"]) == {"smollm2", "minilm"}
    for key, fig in payload["figures"].items():
        assert set(bench.GOALS) <= set(fig), key
        detail = fig["detail"]
        assert detail["docs"] == 10 and detail["real_tokens"] > 10
        # The pipeline runs annotated every document and wrote every token the API scored.
        large, small = detail["pipeline_large"], detail["pipeline_small"]
        assert (large["docs"], large["docs_annotated"], small["docs"]) == (10, 10, 1)
        assert large["tokens"] == detail["real_tokens"] > small["tokens"]
        manifest = read_manifest(tmp_path / "runs" / key / "out-large")
        assert fig["padding_ratio"] == pytest.approx(manifest.batching.padding_ratio, abs=1e-4)
        assert fig["padding_ratio"] >= 1.0
        # Memory: N and 10N documents, the process's own peak (a model's worth, not the launcher's).
        memory = detail["memory"]
        assert (memory["n_docs"], memory["10n_docs"]) == (2, 20)
        assert 100 < memory["n_peak_rss_mb"] < 8000
        assert fig["memory_10n_over_n"] == pytest.approx(memory["10n_peak_rss_mb"] / memory["n_peak_rss_mb"])
        # Peers ran on the subsets and took time.
        assert detail["peers"]["gxi"]["docs"] == 2 and detail["peers"]["ig"]["docs"] == 1
        assert fig["speedup_gradient_x_input"] > 0 and fig["speedup_integrated_gradients"] > 0
    llm = payload["figures"]["smollm2"]["detail"]["peers"]["ig"]
    assert llm["captum_llm_gradient_x_input_s"] > 0 and llm["captum_llm_integrated_gradients_s"] > 0
    assert "speedup_llm_" not in json.dumps(payload["figures"]["minilm"]["detail"]["peers"])
    assert "goals (issue #6, default model):" in printed and "pipe/floor" in printed
