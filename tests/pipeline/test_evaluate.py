"""End-to-end tests of ``normxlogit evaluate`` through the console entry point (DirectRunner)."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

METHODS = (
    "normxlogit",
    "logat",
    "norm",
    "random",
    "gradient_norm",
    "gradient_x_input",
    "integrated_gradients",
)
BASELINES = ("random", "gradient_norm", "gradient_x_input", "integrated_gradients")
GOOD = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting.", "label": "positive"},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early.", "label": "negative"},
    {"id": "r3", "text": "Not bad at all.", "label": 1},
]
BAD = [
    ({"id": "r4", "text": "No label here."}, "no_label"),
    ({"id": "r5", "text": "An unknown label.", "label": "neutral"}, "unknown_label"),
    ({"id": "r6", "text": "Blank label.", "label": " "}, "no_label"),
    ({"id": "r1", "text": "A repeated id.", "label": "positive"}, "duplicate_id"),
    ({"id": "r7", "text": None, "label": "positive"}, "null_text"),
]


def _write_corpus(path, good, bad, empty: int = 1, malformed: int = 1) -> None:
    lines = [json.dumps(r) for r in good] + [json.dumps(r) for r, _ in bad]
    lines += [json.dumps({"id": f"e{i}", "text": "  ", "label": "positive"}) for i in range(empty)]
    lines += ["{not json"] * malformed
    path.write_text("\n".join(lines) + "\n")


def _summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_evaluate_classifier_end_to_end(tmp_path, tiny_classifier, run_files, cli):
    src = tmp_path / "reviews.jsonl"
    _write_corpus(src, GOOD, BAD)
    out = tmp_path / "out"
    args = (src, "--model", tiny_classifier, "--label-field", "label", "--id-field", "id", "--ig-steps", 5)
    args += ("--bootstrap", 200)
    assert cli.evaluate(*args, "--output", out) == 0

    manifest = run_files.manifest(out)
    assert manifest["counts"] == {"records_read": 10, "docs_evaluated": 3, "skipped_empty": 1, "errors": 6}
    reasons = Counter(d["reason"] for d in run_files.dead_letters(out))
    assert reasons == Counter([r for _, r in BAD] + ["malformed_json"])
    assert manifest["faithfulness"]["replacement_token"] == "mask"
    assert manifest["faithfulness"]["methods"] == list(METHODS)
    assert manifest["faithfulness"]["random_seeds"] == 3 and manifest["faithfulness"]["bootstrap"] == 200
    assert manifest["files"]["results"] == ["curves.parquet", "curves.png", "results.md", "summary.json"]

    summary = _summary(out)
    assert list(summary) == ["samples", "methods", "interval", "random_seeds", "ferret", "diagnosticity"]
    assert summary["samples"] == 3
    assert summary["random_seeds"] == 3
    interval = summary["interval"]
    assert (interval["kind"], interval["level"], interval["replicates"], interval["seed"]) == (
        "percentile document bootstrap",
        0.95,
        200,
        0,
    )
    assert interval["baselines"] == list(BASELINES)
    assert list(summary["methods"]) == list(METHODS)
    for method, figures in summary["methods"].items():
        assert set(figures) == {"comprehensiveness", "sufficiency"}
        for name, metric in figures.items():
            assert list(metric) == ["drop", "accuracy", "drop_ci", "accuracy_ci", "differences"]
            assert -1 <= metric["drop"] <= 1 and 0 <= metric["accuracy"] <= 1
            for key in ("drop", "accuracy"):
                low, high = metric[f"{key}_ci"]
                assert low <= metric[key] + 1e-12 and metric[key] <= high + 1e-12
            assert list(metric["differences"]) == [b for b in BASELINES if b != method]
            for base, diff in metric["differences"].items():
                for key in ("drop", "accuracy"):
                    assert 0 <= diff[f"{key}_p"] <= 1
                    assert diff[key] == pytest.approx(metric[key] - summary["methods"][base][name][key])

    curves = pq.read_table(out / "curves.parquet").to_pylist()
    assert len(curves) == len(METHODS) * 2 * 9 and {c["samples"] for c in curves} == {3}
    per_k = [c["drop"] for c in curves if c["method"] == "normxlogit" and c["metric"] == "sufficiency"]
    assert sum(per_k) / 9 == pytest.approx(summary["methods"]["normxlogit"]["sufficiency"]["drop"])
    table = (out / "results.md").read_text()
    assert "| integrated_gradients |" in table
    assert re.search(r"\| normxlogit \| -?\d\.\d{3} \[-?\d\.\d{2}, -?\d\.\d{2}\] \|", table)
    for base in BASELINES:
        assert f"Paired differences to {base}:" in table
    assert re.search(r"\| normxlogit \| [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] p[=<]", table)
    assert set(pq.read_schema(out / "curves.parquet").names) >= {"drop_low", "drop_high", "accuracy_low"}
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"

    # Same input, seed and options: the same figures (the random baseline is seeded per document).
    again = tmp_path / "again"
    assert cli.evaluate(*args, "--output", again, "--methods", "random,normxlogit") == 0
    # (the differences are to the baselines of each run: here none but random)
    keep = ("drop", "accuracy", "drop_ci", "accuracy_ci")
    for metric, figures in _summary(again)["methods"]["random"].items():
        assert {k: figures[k] for k in keep} == {k: summary["methods"]["random"][metric][k] for k in keep}


def test_evaluate_causal_lm_uses_the_gold_next_token(tmp_path, tiny_causal_lm, run_files, cli):
    src = tmp_path / "prompts.jsonl"
    rows = [
        {"text": "The capital of France is", "label": "paris"},
        {"text": "Two plus two is", "label": "four"},
        {"text": "A multi-token label", "label": "unbelievably wonderful"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert (
        cli.evaluate(
            src,
            "--model",
            tiny_causal_lm,
            "--label-field",
            "label",
            "--output",
            out,
            "--methods",
            "normxlogit,random",
        )
        == 0
    )
    assert run_files.manifest(out)["counts"] == {
        "records_read": 3,
        "docs_evaluated": 2,
        "skipped_empty": 0,
        "errors": 1,
    }
    assert [d["reason"] for d in run_files.dead_letters(out)] == ["multi_token_label"]
    assert _summary(out)["samples"] == 2


def test_user_errors_exit_2_with_a_message(tmp_path, tiny_classifier, capsys, monkeypatch, cli):
    src = tmp_path / "r.jsonl"
    src.write_text(json.dumps(GOOD[0]) + "\n")
    base = (src, "--model", tiny_classifier, "--label-field", "label", "--output", tmp_path / "out")
    assert cli.evaluate(*base, "--methods", "normxlogit,lime") == 2
    assert "give distinct names from normxlogit" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert cli.evaluate(*base, "--methods", "normxlogit,gradient_norm") == 2
    assert 'pip install "normxlogit[eval]"' in capsys.readouterr().err
    assert cli.evaluate(*base, "--methods", "normxlogit", "--large-model") == 2
    assert "--large-model and --model-copies are not supported" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--bootstrap", "0", "argument --bootstrap: expected a positive integer, got 0"),
        ("--random-seeds", "0", "argument --random-seeds: expected a positive integer, got 0"),
        ("--seed", "-1", "argument --seed: expected an integer >= 0, got -1"),
    ],
)
def test_interval_flags_are_checked_in_one_line(tmp_path, capsys, cli, flag, value, message):
    src = tmp_path / "r.jsonl"
    src.write_text(json.dumps(GOOD[0]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:  # argparse: the usage, then the one-line error
        cli.evaluate(src, "--label-field", "label", "--output", out, flag, value)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"normxlogit evaluate: error: {message}"
    assert "Traceback" not in err and not out.exists()


def test_cli_defaults_are_the_librarys():
    from normxlogit.baselines import DEFAULT_IG_STEPS
    from normxlogit.bootstrap import DEFAULT_REPLICATES
    from normxlogit.faithfulness import DEFAULT_RANDOM_SEEDS
    from normxlogit.pipeline.commands import evaluate

    assert (evaluate.DEFAULT_BOOTSTRAP, evaluate.DEFAULT_RANDOM_SEEDS, evaluate.DEFAULT_IG_STEPS) == (
        DEFAULT_REPLICATES,
        DEFAULT_RANDOM_SEEDS,
        DEFAULT_IG_STEPS,
    )


@pytest.mark.slow
def test_evaluate_1000_documents_reconciles(tmp_path, tiny_classifier, run_files, cli):
    """1,000 documents with bad records mixed in: every record is counted once, in one place."""
    words = "good bad plot acting film music ending dull great wooden heartfelt long".split()
    good = [
        {
            "id": f"d{i}",
            "text": " ".join(words[(i * 7 + j) % len(words)] for j in range(5 + i % 40)),
            "label": i % 2,
        }
        for i in range(1000)
    ]
    bad = [({"id": f"x{i}", "text": "no label"}, "no_label") for i in range(20)]
    bad += [({"id": f"d{i}", "text": "repeat", "label": 0}, "duplicate_id") for i in range(10)]
    bad += [({"id": f"u{i}", "text": "unknown", "label": "neutral"}, "unknown_label") for i in range(5)]
    src = tmp_path / "big.jsonl"
    _write_corpus(src, good, bad, empty=7, malformed=3)
    out = tmp_path / "out"
    assert (
        cli.evaluate(
            src,
            "--model",
            tiny_classifier,
            "--label-field",
            "label",
            "--id-field",
            "id",
            "--output",
            out,
            "--methods",
            "normxlogit,random,gradient_norm",
            "--docs-per-batch",
            256,
        )
        == 0
    )
    counts = run_files.manifest(out)["counts"]
    assert counts == {"records_read": 1045, "docs_evaluated": 1000, "skipped_empty": 7, "errors": 38}
    letters = run_files.dead_letters(out)
    assert len(letters) == counts["errors"]
    assert Counter(d["reason"] for d in letters) == Counter(
        {"no_label": 20, "duplicate_id": 10, "unknown_label": 5, "malformed_json": 3}
    )
    assert _summary(out)["samples"] == 1000
