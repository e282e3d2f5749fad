"""``normxlogit show --token``: the step that predicts a named response token, its top context tokens
with their segment and position, and tokens whose spaces and newlines show.

The run is a tiny random Llama with a byte-level BPE tokenizer (``bpe_run.byte_level_bpe``), so
tokens carry their leading spaces (``' the'``), some are a lone space or a newline, and ``' the'``
occurs in the prompt and twice in the response.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from normxlogit.pipeline.cli import main
from normxlogit.pipeline.report.token_step import TokenError, find_response_token
from normxlogit.transforms.layout import ATTRIBUTIONS

PROMPT = "The cat sat on the mat.\n"
RESPONSE = " the mat, the cat.\n"
DOC = "r"
# A top-list line of a response run: rank, visible token, segment, position, score.
TOP_LINE = re.compile(r"^\s+(\d+)\. (\S+)\s+(\w+)\s+pos\s+(\d+)\s+score\s+(\S+)\s+norm")


@pytest.fixture(scope="module")
def bpe_lm(bpe, tmp_path_factory) -> Path:
    """A tiny random Llama causal LM with the byte-level BPE tokenizer."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("bpe-lm")
    tokenizer = bpe.byte_level_bpe()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def step_run(bpe_lm, tmp_path_factory, cli) -> Path:
    """A response run with per-step scores of one prompt and a response that repeats ``' the'``."""
    folder = tmp_path_factory.mktemp("token-run")
    src = folder / "r.jsonl"
    src.write_text(json.dumps({"id": DOC, "prompt": PROMPT, "answer": RESPONSE}) + "\n")
    out = folder / "out"
    args = ["--output", out, "--model", bpe_lm, "--id-field", "id", "--text-field", "prompt"]
    assert cli.annotate(src, *args, "--response-field", "answer", "--step-scores") == 0
    return out


def doc_rows(out: Path) -> pa.Table:
    rows = pq.read_table(out / ATTRIBUTIONS.folder)
    return rows.filter(pc.equal(rows["doc_id"], DOC)).sort_by("position")


def show(capsys, out: Path, *args: object) -> tuple[int, str, str]:
    code = main(["show", str(out), "--doc", DOC, "--no-color", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def top_list(page: str) -> list[tuple[str, str, int, float]]:
    """(visible token, segment, position, score) of each line of the page's top list."""
    found = (TOP_LINE.match(line) for line in page.split("top ", 1)[1].splitlines()[1:])
    return [(m[2], m[3], int(m[4]), float(m[5])) for m in found if m]


def expected_top(rows: pa.Table, step: int, top: int) -> list[tuple[int, float]]:
    """(position, score) of step ``step``'s ``top`` context tokens, from ``step_scores`` directly."""
    matrix = np.array(
        [[np.nan if v is None else v for v in row] for row in rows["step_scores"].to_pylist()],
        dtype=np.float64,
    )
    column = matrix[:, step - 1]
    context = np.flatnonzero(~rows["special"].to_numpy(zero_copy_only=False) & np.isfinite(column))
    ranked = context[np.argsort(-column[context], kind="stable")][:top]
    positions = rows["position"].to_numpy()
    return [(int(positions[i]), float(column[i])) for i in ranked]


def the_tokens(rows: pa.Table) -> pa.Table:
    """The response rows whose token is ``' the'``, in position order."""
    response = rows.filter(pc.is_valid(rows["response_step"]))
    return response.filter(pc.equal(response["token"], " the"))


def test_token_selects_the_step_that_predicts_each_occurrence(step_run, capsys):
    rows = doc_rows(step_run)
    the = the_tokens(rows)
    assert the.num_rows == 2  # ' the' twice in the response (and once in the prompt)
    for occurrence in (1, 2):
        step = the["response_step"][occurrence - 1].as_py()
        position = the["position"][occurrence - 1].as_py()
        extra = [] if occurrence == 1 else ["--occurrence", occurrence]
        code, page, _ = show(capsys, step_run, "--token", " the", "--top", 6, *extra)
        assert code == 0
        logprob = the["target_logprob"][occurrence - 1].as_py()
        assert (
            f"step {step}: the attribution of response token ␣the at position {position}, log p {logprob:.4g}"
            in page
        )
        assert f"--token ␣the: ␣the, occurrence {occurrence} of 2 in the response" in page
        assert f"top 6 context tokens at step {step}:" in page
        listed = top_list(page)
        expected = expected_top(rows, step, 6)
        assert [p for _, _, p, _ in listed] == [p for p, _ in expected]
        np.testing.assert_allclose([s for *_, s in listed], [s for _, s in expected], rtol=1e-3)
        # each listed token is the row at its position, with that row's segment; none is after y_t
        by_position = {r["position"]: r for r in rows.select(["position", "token", "segment"]).to_pylist()}
        for token, segment, pos, _ in listed:
            assert segment == by_position[pos]["segment"] and pos < position
            assert token == by_position[pos]["token"].replace(" ", "␣").replace("\n", "\\n")
    # the second occurrence's step has the first one in its context
    _, page, _ = show(capsys, step_run, "--token", " the", "--occurrence", 2, "--top", 100)
    assert ("␣the", "response", the["position"][0].as_py()) in [t[:3] for t in top_list(page)]


def test_token_as_listed_or_without_its_space_finds_the_same_step(step_run, capsys):
    _, stored, _ = show(capsys, step_run, "--token", " the", "--occurrence", 2)
    _, listed, _ = show(capsys, step_run, "--token", "␣the", "--occurrence", 2)
    assert listed == stored  # the visible form, as show prints it, reads back as the token
    _, loose, _ = show(capsys, step_run, "--token", "the", "--occurrence", 2)
    note = "--token the: no response token is exactly the; matched ␣the, occurrence 2 of 2 in the response"
    assert note in loose.splitlines()
    assert [line for line in loose.splitlines() if line != note] == [
        line for line in stored.splitlines() if not line.startswith("--token ")
    ]
    newline = doc_rows(step_run).filter(pc.equal(doc_rows(step_run)["token"], "\n"))
    last = newline.filter(pc.is_valid(newline["response_step"]))["response_step"][0].as_py()
    _, page, _ = show(capsys, step_run, "--token", "\\n")
    assert f"step {last}: the attribution of response token \\n at position" in page


def test_top_tokens_carry_segment_position_and_visible_spaces(step_run, capsys):
    rows = doc_rows(step_run)
    code, page, _ = show(capsys, step_run, "--top", 100)
    assert code == 0 and "top 100 tokens:" in page
    listed = top_list(page)
    shown = [r for r in rows.to_pylist() if not r["special"]]
    assert len(listed) == len(shown)  # a response run with no template: every shown token is ranked
    the = {(seg, pos) for tok, seg, pos, _ in listed if tok == "␣the"}
    assert {seg for seg, _ in the} == {"prompt", "response"} and len(the) == 3
    tokens = {tok for tok, *_ in listed}
    assert "␣" in tokens and "\\n" in tokens and "''" not in tokens  # a lone space, a newline
    body = page.split("\n\n")[1]
    assert body == PROMPT + RESPONSE.rstrip("\n")  # the running text keeps real spaces and newlines


def test_token_errors_are_one_line(step_run, tmp_path, capsys, synthetic):
    code, _, err = show(capsys, step_run, "--token", "mats")
    assert code == 2
    assert err.splitlines() == [  # nearest first (case and word-start markers ignored), then by step
        "normxlogit show: error: no response token is mats; nearest: mat (step 3), at (step 7), "
        "␣the (step 1), ␣ (step 2), , (step 4)"
    ]
    code, _, err = show(capsys, step_run, "--token", " the", "--occurrence", 3)
    assert code == 2
    assert (
        err == "normxlogit show: error: --occurrence 3: response token ␣the occurs 2 times in this response\n"
    )
    code, _, err = show(capsys, step_run, "--token", " the", "--step", 1)
    assert code == 2 and "give --step or --token, not both" in err
    code, _, err = show(capsys, step_run, "--occurrence", 2)
    assert code == 2 and "--occurrence N picks one of the response tokens --token TEXT matches" in err

    # the same run without its per-step scores: the token's step and position, and what to do
    no_steps = tmp_path / "no-steps"
    shutil.copytree(step_run, no_steps)
    for path in ATTRIBUTIONS.paths(no_steps):
        pq.write_table(pq.read_table(path).drop_columns(["step_scores"]), path)
    the = the_tokens(doc_rows(step_run))
    code, out, err = show(capsys, no_steps, "--token", " the", "--occurrence", 2)
    assert code == 2 and out == ""
    step, position = the["response_step"][1].as_py(), the["position"][1].as_py()
    assert err.startswith(
        f"normxlogit show: error: --token ␣the: ␣the, occurrence 2 of 2 in the response, predicted at step "
        f"{step} (position {position}, log p "
    )
    assert err.endswith("has no per-step scores: annotate with --step-scores for the step's view\n")
    assert err.count("\n") == 1

    plain = tmp_path / "plain"
    synthetic.write_synthetic_run(plain, 3)
    doc = pq.read_table(next(iter(ATTRIBUTIONS.paths(plain))), columns=["doc_id"])["doc_id"][0].as_py()
    assert main(["show", str(plain), "--doc", doc, "--token", "x"]) == 2
    assert capsys.readouterr().err == (
        "normxlogit show: error: --token applies to response runs (annotate with --response-field, "
        "--messages-field or --generate); this document has no response\n"
    )


def test_find_response_token_prefers_the_exact_string():
    rows = pa.table(
        {
            "position": [0, 1, 2, 3],
            "token": ["Paris", " Paris", "Paris", " Paris"],
            "response_step": pa.array([None, 1, 2, 3], pa.int32()),
            "target_logprob": pa.array([None, -1.0, -2.0, None], pa.float32()),
        }
    )
    exact = find_response_token(rows, "Paris")  # the prompt's 'Paris' is not a response token
    assert (exact.step, exact.position, exact.occurrences, exact.exact) == (2, 2, 1, True)
    assert find_response_token(rows, " Paris", 2).logprob is None
    assert find_response_token(rows, "\u0120Paris").exact is False  # a byte-level marker typed by hand
    with pytest.raises(TokenError, match="occurs 2 times"):
        find_response_token(rows, " Paris", 3)
    with pytest.raises(TokenError, match=r"no response token is ␣; nearest: "):
        find_response_token(rows, " ")  # only spaces: no loose form to compare
