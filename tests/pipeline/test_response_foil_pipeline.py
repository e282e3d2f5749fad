"""``normxlogit annotate --foil top`` in response runs, end to end (DirectRunner): rows equal the
method core, each response token's row names its step's foil, the manifest says ``foil: top``; other
foils in response runs, and ``top`` in text runs, are refused in one line before the run."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

import normxlogit
from normxlogit.pipeline.report.build import write_report
from normxlogit.response_scoring import score_responses
from normxlogit.response_spec import ResponseFoil
from normxlogit.responses import encode_response_batch

PAIRS = [
    {"id": "a", "prompt": "The capital of France is", "answer": " Paris, a large city."},
    {"id": "b", "prompt": "Two plus two equals", "answer": " four"},
]


def test_foil_top_rows_and_manifest(tmp_path, tiny_causal_lm, run_files, cli, write_jsonl):
    src = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "out"
    args = [src, "--output", out, "--model", tiny_causal_lm, "--id-field", "id", "--text-field", "prompt"]
    assert cli.annotate(*args, "--response-field", "answer", "--foil", "top", "--step-scores") == 0

    target = run_files.manifest(out)["target"]
    assert target["mode"] == "response" and target["foil"] == "top" and target["contrastive"] is True
    assert run_files.typed_manifest(out).sections.target.foil == ResponseFoil.TOP.value

    sm = normxlogit.load_model(tiny_causal_lm)
    encoded = encode_response_batch(
        [p["prompt"] for p in PAIRS], [p["answer"] for p in PAIRS], sm.tokenizer, sm.adapter, max_length=128
    )
    core = score_responses(sm, encoded, step_scores=True, foil=ResponseFoil.TOP)
    rows = run_files.rows(out)
    for d, (pair, enc) in enumerate(zip(PAIRS, encoded)):
        doc = rows.filter(pc.equal(rows["doc_id"], pair["id"])).sort_by("position")
        sl = core.document(d)
        np.testing.assert_allclose(doc["score"].to_numpy(), core.score[sl], rtol=1e-5, atol=1e-6)
        steps = np.array(doc["step_scores"].to_pylist(), dtype=np.float64)
        np.testing.assert_allclose(steps, core.step_matrix(d), rtol=1e-5, atol=1e-6, equal_nan=True)
        r = enc.response_start
        foils = core.foil_id[sl][r:].tolist()
        assert doc["foil_id"].to_pylist() == [None] * r + foils
        assert doc["foil"].to_pylist() == [None] * r + [sm.token_label(i) for i in foils]
    page = write_report(out, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "most likely other token there (--foil top)" in page


def test_foil_top_refusals(tmp_path, tiny_causal_lm, capsys, cli, write_jsonl):
    src = write_jsonl(tmp_path / "p.jsonl", PAIRS)
    out = tmp_path / "out"
    base = [src, "--output", out, "--text-field", "prompt", "--model", tiny_causal_lm]
    refusals = [
        (
            ["--response-field", "answer", "--foil", " Paris"],
            "normxlogit annotate: error: --foil  Paris cannot be used with --response-field: a response run "
            "takes only --foil top (each step against the model's own most likely other token)",
        ),
        (
            ["--foil", "top"],
            "normxlogit annotate: error: --foil top (each step's most likely other token) needs a response "
            "run: add --response-field, --messages-field or --generate, or give a class or token as --foil",
        ),
    ]
    for flags, message in refusals:
        assert cli.annotate(*base, *flags) == 2
        assert capsys.readouterr().err.strip() == message
    assert not (out / "manifest.json").exists()
