"""``normxlogit evaluate --rationale-field``: plausibility against human rationales, end to end."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from normxlogit.api import score
from normxlogit.plausibility import PLAUSIBILITY_METRICS, plausibility_row, rationale_words, word_scores

REPO = Path(__file__).resolve().parents[2]


def _corpus_module():
    spec = importlib.util.spec_from_file_location(
        "rationale_corpus", Path(__file__).with_name("rationale_corpus.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_corpus_marks_exactly_its_sentiment_words():
    corpus = _corpus_module()
    records = corpus.sentiment_records(40, seed=3)
    assert {type(r["rationale"][0]) for r in records} == {int, list}  # both formats
    for r in records:
        words = [m.group() for m in corpus.WORD.finditer(r["text"])]
        marked = [w for w, flag in zip(words, rationale_words(r["rationale"], r["text"])) if flag]
        cues = corpus.POSITIVE if r["label"] == "positive" else corpus.NEGATIVE
        assert marked and set(marked) <= set(cues)
        assert [w for w in words if w in corpus.POSITIVE + corpus.NEGATIVE] == marked


def _evaluate(cli, src, model, out, *extra) -> int:
    args = (src, "--model", model, "--label-field", "label", "--id-field", "id", "--output", out)
    return cli.evaluate(*args, "--methods", "normxlogit,random", "--bootstrap", 200, *extra)


def test_evaluate_rationale_field_end_to_end(tmp_path, tiny_classifier, run_files, cli, write_jsonl, capsys):
    good = _corpus_module().sentiment_records(12, seed=1)
    no_rationale = [
        {"id": "m1", "text": "Nothing marked here.", "label": "positive"},
        {"id": "m2", "text": "A null rationale.", "label": "negative", "rationale": None},
        {"id": "m3", "text": "An empty one.", "label": "negative", "rationale": []},
        {"id": "m4", "text": "A blank cell.", "label": "negative", "rationale": " "},
    ]
    bad = [
        (
            {"id": "b1", "text": "Three words here", "label": "positive", "rationale": [1, 0]},
            "rationale_length_mismatch",
        ),
        (
            {"id": "b2", "text": "A span too far.", "label": "positive", "rationale": [[2, 99]]},
            "malformed_rationale",
        ),
        ({"id": "b3", "text": "Not a list.", "label": "positive", "rationale": "yes"}, "malformed_rationale"),
        (
            {"id": "b4", "text": "Mixed entries.", "label": "positive", "rationale": [1, [0, 2]]},
            "malformed_rationale",
        ),
    ]
    src = write_jsonl(tmp_path / "rated.jsonl", good + no_rationale + [r for r, _ in bad])
    out = tmp_path / "out"
    assert _evaluate(cli, src, tiny_classifier, out, "--rationale-field", "rationale") == 0
    printed = capsys.readouterr().out

    counts = run_files.manifest(out)["counts"]
    assert counts == {"records_read": 20, "docs_evaluated": 16, "skipped_empty": 0, "errors": 4}
    reasons = Counter(d["reason"] for d in run_files.dead_letters(out))
    assert reasons == Counter(r for _, r in bad)
    assert all(d["message"] for d in run_files.dead_letters(out))

    summary = json.loads((out / "summary.json").read_text())
    section = summary["plausibility"]
    assert section["rationale_field"] == "rationale" and section["unit"] == "word"
    assert (section["documents"], section["missing_rationale"], section["empty_rationale"]) == (12, 3, 1)
    assert summary["samples"] == 16  # faithfulness still measured the records without a rationale

    # The figures equal the pure functions applied to the library's own NormXLogit scores.
    attributions = score(str(tiny_classifier), [r["text"] for r in good])
    expected = []
    for r, att in zip(good, attributions):
        truth = rationale_words(r["rationale"], r["text"])
        words, reached = word_scores(att.attribution.score[None], att.encoded.word_index, truth.size)
        assert reached.all()
        expected.append(plausibility_row(words[0], truth))
    means = np.mean(expected, axis=0)
    for j, metric in enumerate(PLAUSIBILITY_METRICS):
        figure = summary["methods"]["normxlogit"]["plausibility"][metric]
        assert figure["mean"] == pytest.approx(means[j], abs=1e-6)
        low, high = figure["ci"]
        assert 0 <= low <= figure["mean"] + 1e-12 and figure["mean"] <= high + 1e-12 <= 1 + 1e-12
        diff = figure["differences"]["random"]
        random_mean = summary["methods"]["random"]["plausibility"][metric]["mean"]
        assert diff["difference"] == pytest.approx(figure["mean"] - random_mean)
        assert 0 < diff["p"] <= 1 and diff["ci"][0] <= diff["ci"][1]

    table = (out / "results.md").read_text()
    assert "Plausibility against the rationales in field `rationale` over 12 documents" in table
    assert "3 without a rationale, 1 whose rationale marks no word" in table
    assert "| method | auprc_plau | token_f1_plau | token_iou_plau |" in table
    assert "Plausibility, paired differences to random" in table
    assert table in printed  # the terminal prints results.md

    # Same seed, same figures; a fixed k changes F1 and IoU only.
    again = tmp_path / "again"
    assert _evaluate(cli, src, tiny_classifier, again, "--rationale-field", "rationale") == 0
    assert json.loads((again / "summary.json").read_text())["methods"] == summary["methods"]
    fixed = tmp_path / "fixed"
    assert (
        _evaluate(cli, src, tiny_classifier, fixed, "--rationale-field", "rationale", "--rationale-k", 1) == 0
    )
    figures = json.loads((fixed / "summary.json").read_text())
    assert figures["plausibility"]["k"] == 1
    ours = figures["methods"]["normxlogit"]["plausibility"]
    assert ours["auprc_plau"] == summary["methods"]["normxlogit"]["plausibility"]["auprc_plau"]


def test_without_the_flag_the_summary_has_no_plausibility(tmp_path, tiny_classifier, cli, write_jsonl):
    src = write_jsonl(tmp_path / "rated.jsonl", _corpus_module().sentiment_records(3))
    out = tmp_path / "out"
    assert _evaluate(cli, src, tiny_classifier, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "plausibility" not in summary and "plausibility" not in summary["methods"]["normxlogit"]
    assert "Plausibility" not in (out / "results.md").read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--rationale-k", "3"), "--rationale-k needs --rationale-field"),
        (("--rationale-field", "r", "--response-field", "answer"), "not in response mode"),
    ],
)
def test_rationale_flags_are_checked_in_one_line(tmp_path, capsys, cli, flags, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x", "label": "positive"}\n')
    label = () if "--response-field" in flags else ("--label-field", "label")
    assert cli.evaluate(src, *label, *flags, "--output", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_hand_annotated_demo_slice_reads_cleanly():
    path = REPO / "data" / "demo" / "news_rationales.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 20
    for r in records:
        flags = rationale_words(r["rationale"], r["text"])
        words = [m.group() for m in _corpus_module().WORD.finditer(r["text"])]
        marked = [w for w, flag in zip(words, flags) if flag]
        assert marked, r["id"]
        assert {w.lower() for w in marked} <= {w.lower() for w in " ".join(r["rationale_words"]).split()}
