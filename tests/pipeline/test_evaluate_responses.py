"""``normxlogit evaluate`` in response mode, end to end through the console entry point (DirectRunner):
prompt/response records, chat records, the model's own greedy answers; counts reconcile, the
summary's shape, dead letters with the core's reasons, and run-wide refusals before the run."""

from __future__ import annotations

import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from normxlogit.response_evaluation import DEFAULT_RESPONSE_METHODS

FIGURES = ("drop", "accuracy", "drop_ci", "accuracy_ci")


def test_response_field_end_to_end(tmp_path, tiny_causal_lm, run_files, cli, write_jsonl):
    good = [
        {"id": "a", "text": "The capital of France is", "answer": " Paris, a large city."},
        {"id": "b", "text": "Two plus two equals", "answer": " four, of course."},
        {"id": "c", "text": "Write a word about the sea:", "answer": " waves"},
    ]
    bad = [
        ({"id": "d", "text": "No answer field"}, "missing_response"),
        ({"id": "e", "text": "A number as answer", "answer": 4}, "non_string_response"),
        ({"id": "n", "text": "A null answer", "answer": None}, "null_response"),
        ({"id": "f", "text": "An empty answer", "answer": ""}, "empty_response"),
        ({"id": "a", "text": "A repeated id", "answer": " x"}, "duplicate_id"),
        ({"id": "g", "text": None, "answer": " x"}, "null_text"),
    ]
    src = tmp_path / "pairs.jsonl"
    write_jsonl(src, good + [r for r, _ in bad] + [{"id": "h", "text": " ", "answer": " x"}], ("{not json",))
    out = tmp_path / "out"
    assert (
        cli.evaluate(
            src, "--model", tiny_causal_lm, "--response-field", "answer", "--id-field", "id", "--output", out
        )
        == 0
    )

    manifest = run_files.manifest(out)
    assert manifest["counts"] == {"records_read": 11, "docs_evaluated": 3, "skipped_empty": 1, "errors": 7}
    reasons = Counter(d["reason"] for d in run_files.dead_letters(out))
    assert reasons == Counter([r for _, r in bad] + ["malformed_json"])
    faith = manifest["faithfulness"]
    assert faith["mode"] == "response" and faith["response_source"] == "response"
    assert faith["methods"] == list(DEFAULT_RESPONSE_METHODS) and faith["replacement_token"] == "mask"
    assert (faith["random_seeds"], faith["bootstrap"]) == (3, 1000)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "response" and summary["samples"] == 3 and summary["response"]["pairs"] == 3
    assert list(summary["methods"]) == list(DEFAULT_RESPONSE_METHODS)
    baselines = ["random", "gradient_x_input", "gradient_x_input_l2_steps"]
    assert summary["interval"]["baselines"] == baselines and summary["interval"]["replicates"] == 1000
    for method, figures in summary["methods"].items():
        assert figures["pairs"] == 3
        for metric in ("comprehensiveness", "sufficiency"):
            assert (
                list(figures[metric]) == [*FIGURES, "differences"] and 0 <= figures[metric]["accuracy"] <= 1
            )
            low, high = figures[metric]["drop_ci"]
            assert low <= figures[metric]["drop"] + 1e-12 and figures[metric]["drop"] <= high + 1e-12
            differences = figures[metric]["differences"]
            assert list(differences) == [b for b in baselines if b != method]
            assert all(0 <= d[f"{key}_p"] <= 1 for d in differences.values() for key in ("drop", "accuracy"))
    curves = pq.read_table(out / "curves.parquet").to_pylist()
    assert len(curves) == len(DEFAULT_RESPONSE_METHODS) * 2 * 9 and {c["samples"] for c in curves} == {3}
    table = (out / "results.md").read_text()
    assert (
        "3 prompt/response pairs" in table and "| normxlogit_logprob |" in table and "log-prob drop" in table
    )
    assert re.search(r"\| normxlogit \| -?\d\.\d{3} \[-?\d\.\d{2}, -?\d\.\d{2}\] \|", table)
    assert "Paired differences to gradient_x_input_l2_steps:" in table

    assert "ig_steps" not in faith  # written only for a run with integrated_gradients

    again = tmp_path / "again"
    methods = "random,normxlogit,integrated_gradients"
    args = ("--response-field", "answer", "--id-field", "id", "--methods", methods, "--ig-steps", 4)
    assert cli.evaluate(src, "--model", tiny_causal_lm, *args, "--output", again) == 0
    assert run_files.manifest(again)["faithfulness"]["ig_steps"] == 4
    second_summary = json.loads((again / "summary.json").read_text())
    second = second_summary["methods"]
    assert second_summary["interval"]["baselines"] == ["random", "integrated_gradients"]
    differences = second["normxlogit"]["comprehensiveness"]["differences"]
    assert list(differences) == ["random", "integrated_gradients"]
    assert "Paired differences to integrated_gradients:" in (again / "results.md").read_text()
    for metric in ("comprehensiveness", "sufficiency"):  # seeded per document
        first = summary["methods"]["random"][metric]
        assert {k: second["random"][metric][k] for k in FIGURES} == {k: first[k] for k in FIGURES}
    mine, theirs = (
        second["normxlogit"]["comprehensiveness"],
        summary["methods"]["normxlogit"]["comprehensiveness"],
    )
    assert [mine["drop"], mine["accuracy"]] == pytest.approx([theirs["drop"], theirs["accuracy"]])


def test_chat_records_end_to_end(tmp_path, cls_sep_chat_lm, run_files, cli, write_jsonl):
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of Italy?"},
                {"role": "assistant", "content": "Rome"},
            ]
        },
        {"messages": [{"role": "user", "content": "No answer yet."}]},
        {"messages": "not a list"},
        {"text": "no messages field at all"},
    ]
    src = tmp_path / "chats.jsonl"
    write_jsonl(src, rows)
    out = tmp_path / "out"
    args = ("--messages-field", "messages", "--methods", "normxlogit,random,gradient_x_input")
    assert cli.evaluate(src, "--model", cls_sep_chat_lm, *args, "--output", out) == 0
    counts = run_files.manifest(out)["counts"]
    assert counts == {"records_read": 5, "docs_evaluated": 2, "skipped_empty": 0, "errors": 3}
    assert Counter(d["reason"] for d in run_files.dead_letters(out)) == Counter(
        ["no_assistant_response", "malformed_messages", "missing_messages"]
    )
    assert json.loads((out / "summary.json").read_text())["response"]["source"] == "messages"


def test_chat_records_with_ids_are_checked_and_deduplicated(
    tmp_path, cls_sep_chat_lm, run_files, cli, write_jsonl
):
    """Chat records go through the same batched front as every run: an id that is not valid Unicode
    is a dead letter, a repeated id keeps its first occurrence; counts reconcile."""
    chat = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    rows = [
        {"id": "a", "messages": chat},
        {"id": "\ud800", "messages": chat},  # a lone surrogate: no Beam key, no Parquet value
        {"id": "a", "messages": chat},
        {"id": "b", "messages": chat},
    ]
    src = tmp_path / "chats.jsonl"
    write_jsonl(src, rows)
    out = tmp_path / "out"
    args = ("--messages-field", "messages", "--id-field", "id", "--methods", "normxlogit,random")
    assert cli.evaluate(src, "--model", cls_sep_chat_lm, *args, "--docs-per-batch", 2, "--output", out) == 0
    counts = run_files.manifest(out)["counts"]
    assert counts == {"records_read": 4, "docs_evaluated": 2, "skipped_empty": 0, "errors": 2}
    dead = run_files.dead_letters(out)
    assert sorted((d["reason"], d["locator"]) for d in dead) == [
        ("duplicate_id", "line 3"),
        ("invalid_unicode", "line 2"),
    ]


def test_generated_answers_end_to_end(tmp_path, tiny_causal_lm, run_files, cli, write_jsonl):
    src = tmp_path / "prompts.jsonl"
    write_jsonl(src, [{"text": "The capital of France is"}, {"text": "Once upon a time"}])
    out = tmp_path / "out"
    args = ("--generate", 3, "--methods", "normxlogit,random")
    assert cli.evaluate(src, "--model", tiny_causal_lm, *args, "--output", out) == 0
    assert run_files.manifest(out)["counts"]["docs_evaluated"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["response"]["generate"] == 3
    # The model's own greedy answer: before any replacement every response token is the argmax.
    curves = pq.read_table(out / "curves.parquet").to_pylist()
    first = [c for c in curves if c["metric"] == "comprehensiveness" and c["k"] == pytest.approx(0.1)]
    assert all(c["accuracy"] == 1.0 for c in first)  # floor(10% of a few tokens) = 0 replaced


def test_run_wide_problems_fail_before_the_run(
    tmp_path, tiny_classifier, tiny_causal_lm, capsys, cli, write_jsonl
):
    src = tmp_path / "p.jsonl"
    write_jsonl(src, [{"text": "a prompt", "answer": " a response", "label": "positive"}])
    out = tmp_path / "out"
    assert cli.evaluate(src, "--model", tiny_classifier, "--response-field", "answer", "--output", out) == 2
    assert "needs a causal language model" in capsys.readouterr().err
    assert cli.evaluate(src, "--model", tiny_causal_lm, "--messages-field", "m", "--output", out) == 2
    assert "no chat template" in capsys.readouterr().err
    assert (
        cli.evaluate(
            src, "--model", tiny_causal_lm, "--response-field", "answer", "--methods", "lime", "--output", out
        )
        == 2
    )
    assert "in response mode give distinct names from normxlogit" in capsys.readouterr().err
    both = ("--response-field", "answer", "--label-field", "label")
    assert cli.evaluate(src, "--model", tiny_causal_lm, *both, "--output", out) == 2
    assert "not both" in capsys.readouterr().err
    assert cli.evaluate(src, "--model", tiny_causal_lm, "--output", out) == 2
    assert "--label-field is required" in capsys.readouterr().err
    assert not (out / "manifest.json").exists()
