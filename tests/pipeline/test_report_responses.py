"""``normxlogit report`` and ``show`` of LLM response runs: response tokens marked, template tokens
greyed, and one response token's own attribution from ``--step-scores`` (page data, terminal, and the
page in headless Chromium)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from normxlogit.display import color_levels
from normxlogit.pipeline.cli import main
from normxlogit.pipeline.report.build import write_report
from normxlogit.pipeline.report.relative_scale import relative_scale

CHATS = [
    {
        "id": "c1",
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris, of course."},
        ],
    },
    {
        "id": "c2",
        "messages": [
            {"role": "user", "content": "Two plus two?"},
            {"role": "assistant", "content": "Four."},
        ],
    },
]
ANSI = re.compile("\x1b\\[[0-9;]*m")


@pytest.fixture(scope="module")
def chat_run(chatml_lm, tmp_path_factory, cli) -> Path:
    """A chat response run with per-step scores on the tiny chat model."""
    folder = tmp_path_factory.mktemp("chat-run")
    src = folder / "chats.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in CHATS))
    out = folder / "out"
    args = [src, "--output", out, "--model", chatml_lm, "--id-field", "id", "--messages-field", "messages"]
    assert cli.annotate(*args, "--step-scores") == 0
    return out


def test_report_embeds_segments_log_probabilities_and_steps(chat_run, run_files, tmp_path, report_docs):
    page = write_report(chat_run, tmp_path / "r.html")
    html = page.read_text(encoding="utf-8")
    assert "last assistant message of the chat" in html and 'id="hide-template"' in html
    docs = {d["id"]: d for d in report_docs(page)}
    rows = run_files.rows(chat_run)
    for doc_id, d in docs.items():
        doc = rows.filter(pc.equal(rows["doc_id"], doc_id)).sort_by("position")
        keep = np.flatnonzero(~doc["special"].to_numpy(zero_copy_only=False))
        assert d["seg"] == [doc["segment"][int(i)].as_py() for i in keep]
        assert "template" in d["seg"] and "response" in d["seg"]
        steps = doc["response_step"].to_pylist()
        assert d["rs"] == [steps[int(i)] for i in keep]
        assert d["rn"] == sum(s is not None for s in steps)
        # st[t-1][k]: step t's score of shown token k, as in the step_scores column (null: not context)
        matrix = doc["step_scores"].to_pylist()
        assert len(d["st"]) == d["rn"]
        for t, column in enumerate(d["st"]):
            expected = [matrix[int(i)][t] for i in keep]
            assert [v is None for v in column] == [v is None for v in expected]
            np.testing.assert_allclose(
                [v for v in column if v is not None], [v for v in expected if v is not None], atol=1e-4
            )
        # the colour scales leave the template's tokens out
        content = [s for s, g in zip(d["s"], d["seg"]) if g != "template"]
        assert d["scale"] == pytest.approx(max(abs(v) for v in content), abs=1e-4)
        relative = relative_scale(np.array(content))
        assert (d["med"], d["spread"]) == pytest.approx((relative.center, relative.spread), abs=1e-3)
        with_template = relative_scale(np.array(d["s"]))
        assert (with_template.center, with_template.spread) != pytest.approx(
            (relative.center, relative.spread)
        )


def test_report_of_a_response_run_groups_by_source_not_first_token_and_honours_include_template(chat_run):
    from normxlogit.pipeline.report.build import build_report

    def data(html: str) -> dict:
        block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
        return json.loads(block.group(1))

    plain = build_report(chat_run)
    # the model's own first token says nothing of a whole answer: no "Top words per prediction"
    assert 'id="by-prediction"' not in plain and 'id="by-source"' in plain
    assert data(plain)["include_template"] is False
    # with the flag, the documents' top tokens (the page script) may list chat-template tokens
    assert data(build_report(chat_run, include_template=True))["include_template"] is True


def test_show_marks_the_response_and_shows_one_step(chat_run, capsys):
    assert main(["show", str(chat_run), "--doc", "c1", "--no-color"]) == 0
    plain = capsys.readouterr().out
    assert "response: " in plain and "first response token:" in plain
    assert "What is the capital of France?" in plain and "Paris, of course." in plain
    assert main(["show", str(chat_run), "--doc", "c1", "--step", "2"]) == 0
    coloured = capsys.readouterr().out
    assert "step 2: the attribution of response token" in coloured
    assert "\x1b[7m\x1b[4m" in coloured  # y_2 boxed, underlined
    assert "\x1b[2m" in coloured  # template tokens dim
    assert main(["show", str(chat_run), "--doc", "c1", "--step", "99"]) == 2
    assert "--step 99: this document's response has steps 1.." in capsys.readouterr().err


def test_show_step_needs_step_scores(tiny_causal_lm, tmp_path, capsys):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"text": "The capital of France is", "answer": " Paris"}) + "\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "annotate",
                str(src),
                "--output",
                str(out),
                "--model",
                str(tiny_causal_lm),
                "--response-field",
                "answer",
            ]
        )
        == 0
    )
    doc = f"{src}#L1"
    assert main(["show", str(out), "--doc", doc, "--step", "1"]) == 2
    assert "has no per-step scores; annotate with --step-scores" in capsys.readouterr().err
    assert main(["show", str(out), "--doc", doc, "--no-color"]) == 0
    assert ANSI.search(capsys.readouterr().out) is None


# Each token's palette level on the page (null: grey, a template token or no score at the step).
PALETTE_LEVELS = (
    "[...{card}.querySelectorAll('.tok')].map(t => (t.className.match(/ c(\\d+)/) || [0, null])[1])"
)


def step_levels(doc: dict, levels: np.ndarray) -> list[str | None]:
    """The palette levels a step should show: none on template tokens and tokens without a score."""
    return [
        None if v is None or seg == "template" else str(level)
        for v, seg, level in zip(doc["st"][1], doc["seg"], levels.tolist())
    ]


def choose_scale(tools, scale: str) -> None:
    tools.evaluate(f"document.getElementById('colour-scale').value = '{scale}'")
    tools.evaluate("document.getElementById('colour-scale').dispatchEvent(new Event('change'))")


@pytest.mark.slow
def test_report_page_of_a_response_run_in_chromium(chat_run, tmp_path, browser):
    page = write_report(chat_run, tmp_path / "responses.html")
    tools = browser(page)
    card = "[...document.querySelectorAll('article.doc')].find(a => a.doc.id === 'c1')"
    assert tools.evaluate(f"{card}.querySelectorAll('.tok.resp').length") > 0
    assert tools.evaluate(f"{card}.querySelectorAll('.tok.tmpl').length") > 0
    title = tools.evaluate(f"{card}.querySelector('.tok.resp').title")
    assert title.startswith("response token 1 | log p ")
    grey = tools.evaluate(f"getComputedStyle({card}.querySelector('.tok.tmpl')).color")
    assert grey == "rgb(154, 154, 154)"
    classes = f"[...{card}.querySelectorAll('.tok')].map(t => t.className)"
    before = tools.evaluate(classes)
    tools.evaluate(f"{card}.querySelectorAll('.tok.resp')[1].click()")
    after = tools.evaluate(classes)
    assert after != before and sum(" sel" in c for c in after) == 1
    assert tools.evaluate(f"{card}.querySelector('.step-note').textContent").startswith("step 2: ")
    tools.save_documents_screenshot("report-responses-step.png")
    # The step's colours, on the scale chosen on the page; the template's tokens are out of both.
    d = tools.evaluate(f"{card}.doc")
    values = np.array([np.nan if v is None else v for v in d["st"][1]])
    counted = values[np.isfinite(values) & (np.array(d["seg"]) != "template")]
    relative = step_levels(d, relative_scale(counted).levels(values))
    assert tools.evaluate(PALETTE_LEVELS.format(card=card)) == relative
    choose_scale(tools, "absolute")
    absolute = step_levels(d, color_levels(values, np.abs(counted).max()))
    assert tools.evaluate(PALETTE_LEVELS.format(card=card)) == absolute != relative
    choose_scale(tools, "relative")
    tools.evaluate(f"{card}.querySelector('.tok.sel').click()")  # back to the summed scores
    assert tools.evaluate(classes) == before
    tools.evaluate("document.getElementById('hide-template').click()")
    assert tools.evaluate(f"getComputedStyle({card}.querySelector('.tok.tmpl')).display") == "none"
    assert tools.script_errors() == []
