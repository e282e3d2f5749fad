"""``benchmarks/bench_host.py``: the floor writes the rows annotate writes, and a quick run's figures
come from runs that annotated every text.

No timing is asserted (on a shared machine figures at this size are noise); what is checked is that
the floor's token rows are annotate's, and that every figure is computed from real runs whose token
counts reconcile with each other and with the files they wrote.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from normxlogit.transforms.layout import ATTRIBUTIONS

SHARED = ["doc_id", "position", "token_id", "token", "char_start", "char_end", "special"]


@pytest.fixture(scope="module")
def bench_host(benchmark_module):
    """``benchmarks/bench_host.py``."""
    return benchmark_module("bench_host")


@pytest.fixture(scope="module")
def tiny_model(bench_host, tmp_path_factory):
    """The negligible model's folder (tiny BERT beside MiniLM-L6's tokenizer)."""
    return bench_host.tiny_model_dir(tmp_path_factory.mktemp("tiny"), seed=0)


def test_tiny_model_is_the_issue_config_with_minilm_tokenizer(bench_host, tiny_model):
    import normxlogit

    sm = normxlogit.load_model(str(tiny_model), hash_weights=False)
    config = sm.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 1, 2)
    assert (config.intermediate_size, config.num_labels) == (64, 2)
    assert (tiny_model / "model.safetensors").exists()
    from bench_corpus import minilm_folder
    from transformers import AutoTokenizer

    minilm = AutoTokenizer.from_pretrained(minilm_folder())
    assert sm.tokenizer.get_vocab() == minilm.get_vocab() and config.vocab_size == len(minilm)
    text = "Driverless cars_Ñ_.no thank you"
    assert sm.tokenizer(text)["input_ids"] == minilm(text)["input_ids"]


def test_floor_rows_are_the_api_rows(bench_host, tiny_model, tmp_path):
    import normxlogit

    sm = normxlogit.load_model(str(tiny_model), hash_weights=False)
    # Punctuation, accents and an emoji (offsets in characters), a text past the 512-token limit.
    texts = ["Self-driving cars?  No thanks!", "é café ☕ #driverless", "x " * 600]
    ids = ["a", "b", "c"]
    path = tmp_path / "floor.parquet"
    rows = bench_host.run_floor(sm.tokenizer, texts, ids, "src", path, max_length=sm.max_length)
    floor = pq.read_table(path)
    results = normxlogit.score(sm, texts)
    api = pa.Table.from_batches([normxlogit.to_record_batch(r, d, "src") for r, d in zip(results, ids)])
    assert rows == floor.num_rows == api.num_rows > 512
    assert floor.schema == bench_host.floor_schema()
    assert floor.select(SHARED).equals(api.select(SHARED))
    assert set(floor.column("source").to_pylist()) == {"src"}
    assert bench_host.run_api(sm, texts, ids, "src") == rows
    assert bench_host.run_columnar(sm, texts, ids, "src") == rows


@pytest.mark.slow
def test_quick_run_reports_every_figure_from_reconciled_runs(bench_host, tmp_path, capsys):
    out, work = tmp_path / "bench_host.json", tmp_path / "runs"
    argv = ["--quick", "--docs", "40", "--small-docs", "4", "--out", str(out), "--work-dir", str(work)]
    assert bench_host.main(argv) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    fig = payload["figures"]

    assert set(bench_host.GOALS) <= set(fig) and set(payload["goals_met"]) == set(bench_host.GOALS)
    assert (fig["docs"], fig["small_docs"]) == (40, 4)
    # Floor, API and every pipeline run wrote the same tokens, and each run annotated every text.
    [rep] = payload["figures"]["repeats"]
    tokens = fig["tokens"]
    assert tokens == fig["api_tokens"] == fig["columnar_tokens"]
    assert tokens == pq.ParquetFile(work / "floor.parquet").metadata.num_rows
    larges = [rep["one_large"], rep["two_large"], rep["thread_large"], fig["overlap"]["large"]]
    smalls = [rep["one_small"], rep["two_small"], rep["thread_small"], fig["overlap"]["small"]]
    for large, small in zip(larges, smalls):
        assert (large["docs"], large["docs_annotated"], large["tokens"]) == (40, 40, tokens)
        assert (small["docs"], small["docs_annotated"]) == (4, 4) and 0 < small["tokens"] < tokens
    assert fig["steady_tokens"] == tokens - rep["one_small"]["tokens"]
    parts = ATTRIBUTIONS.paths(work / "out-one-large")
    assert parts and sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == tokens
    # Ratios are what their runs say.
    from bench_pipeline import PipelineRun, steady_tokens_per_s

    steady = {}
    for key, name in (
        ("pipeline_tokens_per_s", "one"),
        ("pipeline_2w_tokens_per_s", "two"),
        ("pipeline_1t_tokens_per_s", "thread"),
    ):
        small, large = (PipelineRun(**rep[f"{name}_{size}"]) for size in ("small", "large"))
        steady[name] = steady_tokens_per_s(small, large)
        assert fig[key] == pytest.approx(steady[name])
    assert fig["two_workers_vs_one"] == pytest.approx(steady["two"] / steady["thread"])
    assert fig["two_workers_vs_two_threads"] == pytest.approx(steady["two"] / steady["one"])
    assert fig["api_vs_floor"] == pytest.approx(rep["seconds"]["floor"] / rep["seconds"]["api"])
    # The sleeping forward slept in every pass the manifest counts, for the calibrated time.
    over = fig["overlap"]
    for run in (over["small"], over["large"]):
        assert run["sleep_calls"] > 0 and run["slept_padded_tokens"] == run["padded_tokens"]
        assert run["slept_s"] >= 0.999 * over["seconds_per_padded_token"] * run["padded_tokens"]
        assert run["forward_s"] > run["slept_s"]  # the model's time: the sleep and the real pass
    assert over["model_s"] == pytest.approx(over["large"]["forward_s"] - over["small"]["forward_s"])
    assert over["slept_s"] == pytest.approx(over["large"]["slept_s"] - over["small"]["slept_s"])
    assert over["overlap_vs_max"] == pytest.approx(over["pipeline_s"] / max(over["host_s"], over["model_s"]))
    assert over["model_alone_s"] == pytest.approx(over["slept_s"] + over["host_forward_s"])
    assert over == rep["overlap"] and fig["overlaps_vs_max"] == [over["overlap_vs_max"]]
    assert over["host_s"] == pytest.approx(rep["one_large"]["seconds"] - rep["one_small"]["seconds"])
    # The one-process runs time their forward passes without sleeping (the host's model part);
    # the 2-process runs' workers are not patched.
    for run in (rep["one_large"], rep["one_small"]):
        assert run["slept_s"] < 0.05 and run["forward_s"] > 0
    assert over["host_forward_s"] == pytest.approx(
        rep["one_large"]["forward_s"] - rep["one_small"]["forward_s"]
    )
    for run in (rep["two_large"], rep["two_small"], rep["thread_large"], rep["thread_small"]):
        assert run["slept_s"] is None
    assert "goals (issue 12):" in printed and "pipeline, 2 worker processes" in printed
