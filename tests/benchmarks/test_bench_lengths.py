"""``benchmarks/bench_lengths.py``: the batch search, the exact-length texts, and a quick CPU run.

No timing is asserted; what is checked is that the search finds the right batch without a GPU
(a simulated out-of-memory error), that every method runs at the batch it reports, and that the
JSON holds every method at every length.
"""

from __future__ import annotations

import json

import pytest
import torch

import normxlogit


@pytest.fixture(scope="module")
def bl(benchmark_module):
    """``benchmarks/bench_lengths.py``."""
    return benchmark_module("bench_lengths")


def test_largest_batch_doubles_to_the_last_size_that_fits(bl):
    tried = []

    def fits(size):
        tried.append(size)
        return size * 512 <= 40_000  # 78 instances would fit: the search finds 64

    assert bl.largest_batch(fits, cap=1024) == 64
    assert tried == [1, 2, 4, 8, 16, 32, 64, 128]  # stops at the first size that does not fit


def test_largest_batch_respects_the_cap_and_reports_nothing_fits(bl):
    assert bl.largest_batch(lambda _: True, cap=100) == 64
    assert bl.largest_batch(lambda _: True, cap=64) == 64
    assert bl.largest_batch(lambda _: True, cap=1) == 1
    assert bl.largest_batch(lambda _: False, cap=1024) == 0


def test_plan_cap_bounds_batch_times_length(bl):
    plan = bl.MethodPlan(max_batch=64, max_batch_tokens=2048, repeats=1, warm_up=False)
    assert [plan.cap(n) for n in (16, 40, 512, 4096)] == [64, 51, 4, 1]
    assert bl.MethodPlan(1024, None, 1, False).cap(512) == 1024


def test_gpu_probe_stops_at_a_simulated_out_of_memory(bl, monkeypatch):
    calls = []

    def fake_run(sm, method, pool, size, plan):
        def run():
            calls.append(size)
            if size > 8:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return run

    monkeypatch.setattr(bl, "method_run", fake_run)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    pool = bl.Pool(512, [], [])
    probe = bl.GpuFit(None, "gradient_x_input", pool, bl.MethodPlan(1024, None, 1, True))
    assert bl.largest_batch(probe, cap=1024) == 8
    assert probe.stop == "out of memory at batch 16"
    assert calls == [1, 2, 4, 8, 16]


@pytest.fixture(scope="module")
def tiny_lm(tiny_causal_lm):
    return normxlogit.load_model(tiny_causal_lm, hash_weights=False)


def test_texts_of_length_keeps_only_texts_that_reach_it(bl, tiny_lm):
    articles = ["a short one", "word " * 200, "other words here " * 50, "tiny"]
    pool = bl.texts_of_length(tiny_lm, articles, 24, count=5)
    assert [len(e) for e in pool.texts] == [24, 24]
    assert all(e.truncated for e in pool.texts) and len(pool.targets) == 2
    texts, targets = pool.batch(5)
    assert [t is pool.texts[i % 2] for i, t in enumerate(texts)] == [True] * 5
    assert targets == [pool.targets[i % 2] for i in range(5)]


@pytest.mark.parametrize("method", ["floor", "normxlogit", "gradient_x_input", "integrated_gradients"])
def test_every_method_runs_at_the_cap_on_cpu(bl, tiny_lm, method):
    pool = bl.texts_of_length(tiny_lm, ["word " * 200, "more words " * 100], 20, count=2)
    plan = bl.MethodPlan(max_batch=8, max_batch_tokens=100, repeats=2, warm_up=True)
    fig = bl.measure_method(tiny_lm, method, pool, plan)
    assert (fig.method, fig.length, fig.largest_batch, fig.search_stop) == (method, 20, 4, "cap 5")
    assert len(fig.batch1_runs) == len(fig.largest_runs) == 2
    assert fig.batch1_s > 0 and fig.largest_s > 0 and fig.peak_memory_gib is None


@pytest.mark.slow
def test_quick_cpu_run_reports_every_method_at_every_length(bl, tmp_path, capsys):
    out = tmp_path / "bench_lengths.json"
    assert bl.main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())

    assert payload["lengths"] == [16] and payload["methods"] == list(bl.METHODS)
    assert [r["key"] for r in payload["results"]] == ["smollm2", "minilm"]
    for result in payload["results"]:
        figures = {(f["method"], f["length"]): f for f in result["figures"]}
        assert set(figures) == {(m, 16) for m in bl.METHODS}
        assert result["distinct_texts"] == {"16": 2}
        for (method, _), f in figures.items():
            expected = 1 if method == "integrated_gradients" else 2
            assert (f["largest_batch"], f["search_stop"]) == (expected, f"cap {expected}"), method
            assert f["batch1_s"] > 0 and f["largest_s"] > 0, method
            assert len(f["batch1_runs"]) == len(f["largest_runs"]) == 1
    assert "speed-up of normxlogit" in printed and "integrated_gradients, largest" in printed
    assert payload["table"] in printed
