"""``normxlogit report`` and ``normxlogit show``, and the summaries ``annotate`` writes for them."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from normxlogit.pipeline.cli import main
from normxlogit.pipeline.report.escaping import embed_json, esc, lit
from normxlogit.pipeline.report.page import SCRIPT, script_hash
from normxlogit.pipeline.report.run_reader import iter_doc_chunks, scan_run
from normxlogit.pipeline.report.terminal import terminal_safe
from normxlogit.transforms.layout import ATTRIBUTIONS, GROUPS

REPO = Path(__file__).resolve().parents[2]
HOSTILE_TEXT = "<script>document.title='x'</script> &amp; </script><!-- \u2028 \u202eevil 😀"
REVIEWS = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting."},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early."},
    {"id": "r3", "text": HOSTILE_TEXT},
    {"id": "r4", "text": "Not bad at all, not bad at all."},
]


def synthetic():
    spec = importlib.util.spec_from_file_location("synthetic_run", REPO / "benchmarks" / "synthetic_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def embedded_docs(html: str) -> list[dict]:
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))["docs"]


@pytest.fixture(scope="module")
def annotated_run(tmp_path_factory, tiny_classifier) -> Path:
    """A real annotate run of four reviews (one hostile) plus one dead letter."""
    folder = tmp_path_factory.mktemp("report-run")
    src = folder / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS) + "{not json\n")
    out = folder / "out"
    assert (
        main(
            ["annotate", str(src), "--output", str(out), "--model", str(tiny_classifier), "--id-field", "id"]
        )
        == 0
    )
    return out


def test_embedded_json_cannot_close_its_script_and_reads_back():
    value = {"t": [HOSTILE_TEXT, "a\u2029b", "&lt;"]}
    text = embed_json(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == value


def test_html_escaping_of_labels_and_attributes():
    assert esc("<a href=\"x\" onclick='y'>&") == "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;"
    assert lit(" Paris") == '<code class="lit">&quot; Paris&quot;</code>'
    assert "\u202e" not in lit("\u202eevil") and "\\u202e" in lit("\u202eevil")


def test_terminal_text_cannot_drive_the_terminal():
    assert terminal_safe("a\x1b[2Jb\x07\u202ec\tok") == "a\\x1b[2Jb\\x07\\u202ec\tok"


@pytest.mark.slow
def test_annotate_writes_summaries_that_reconcile(annotated_run, run_files):
    manifest = run_files.manifest(annotated_run)
    assert manifest["files"]["summaries"] == [GROUPS.name] == ["summaries/groups.jsonl"]
    groups = [json.loads(line) for line in GROUPS.path(annotated_run).read_text().splitlines()]
    by_kind = {}
    for g in groups:
        by_kind.setdefault(g["kind"], []).append(g)
    rows = run_files.rows(annotated_run)
    (corpus,) = by_kind["corpus"]
    assert corpus["docs"] == manifest["counts"]["docs_annotated"] == 4
    assert corpus["tokens"] == sum(not s for s in rows["special"].to_pylist())
    assert sum(b["count"] for b in corpus["histogram"]) == corpus["tokens"]
    assert sum(g["docs"] for g in by_kind["prediction"]) == 4
    assert {g["group"] for g in by_kind["source"]} == set(rows["source"].to_pylist())
    doc_words = {
        (d, w) for d, w in zip(rows["doc_id"].to_pylist(), rows["word_index"].to_pylist()) if w is not None
    }
    assert corpus["words"] == len(doc_words)
    # The pipeline's summaries (words from the text) equal the report's fallback computed from the
    # token rows alone (words from their tokens): same words, counts, sums and histograms.
    fallback = {(g["kind"], g["group"]): g for g in scan_run(annotated_run, 0, with_summaries=True).summaries}
    assert fallback == {(g["kind"], g["group"]): g for g in groups}
    assert any(e["text"] == "heartfelt" for e in corpus["top_words_by_total"] + corpus["top_words_by_mean"])


@pytest.mark.slow
def test_report_of_a_real_run(annotated_run, tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["report", str(annotated_run), "--out", str(page)]) == 0
    assert "wrote" in capsys.readouterr().out
    html = page.read_text(encoding="utf-8")
    docs = embedded_docs(html)
    assert sorted(d["id"] for d in docs) == ["r1", "r2", "r3", "r4"]
    assert "<script>document" not in html and "</script><!--" not in html
    assert html.count("<script") == 2
    assert "malformed_json" in html and "from the pipeline" in html
    hostile = next(d for d in docs if d["id"] == "r3")
    assert "".join(hostile["t"]).replace(" ", "") == re.sub(r"[\s\u202e]", "", HOSTILE_TEXT)


def test_page_policy_allows_only_its_own_script(tmp_path):
    run = tmp_path / "run"
    synthetic().write_synthetic_run(run, 40, hostile=True)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert csp.startswith("default-src &#x27;none&#x27;; style-src &#x27;unsafe-inline&#x27;; script-src")
    assert script_hash(SCRIPT).replace("'", "&#x27;") in csp
    assert f"<script>{SCRIPT}</script>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html.split("<script")[0])
    assert len(embedded_docs(html)) == 40


def test_sample_is_deterministic_and_bounded(tmp_path):
    run = tmp_path / "run"
    synthetic().write_synthetic_run(run, 700, docs_per_group=64)
    small, large = scan_run(run, 50, False), scan_run(run, 200, False)
    assert (small.docs, small.tokens) == (
        700,
        pq.read_metadata(run / ATTRIBUTIONS.name(0, 1)).num_rows,
    )
    assert len(small.sample) == 50 and len(large.sample) == 200
    assert {d["id"] for d in small.sample} <= {d["id"] for d in large.sample}
    assert [d["id"] for d in scan_run(run, 50, False).sample] == [d["id"] for d in small.sample]
    assert sum(small.by_prediction.values()) == 700


def test_documents_split_across_row_groups_are_read_whole(tmp_path):
    run = tmp_path / "run"
    synthetic().write_synthetic_run(run, 30)
    path = run / ATTRIBUTIONS.name(0, 1)
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=7)  # cuts most documents in two or more
    chunks = list(iter_doc_chunks(run))
    ids = [i for c in chunks for i in c.docs["doc_id"]]
    assert len(ids) == len(set(ids)) == 30
    assert sum(int(c.bounds[-1]) for c in chunks) == table.num_rows
    assert pa.concat_tables([c.tokens for c in chunks])["token"].equals(table["token"])


def test_report_of_a_folder_without_a_run_says_what_to_do(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "not a finished normxlogit run" in capsys.readouterr().err


def test_show_colours_tokens_and_lists_top_tokens(tmp_path, capsys):
    run = tmp_path / "run"
    synthetic().write_synthetic_run(run, 20)
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[48;2;" in out and "legend:" in out and "top 3 tokens:" in out
    assert out.count("score ") == 3
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L2", "--no-color"]) == 0
    plain = capsys.readouterr().out
    assert "\x1b" not in plain and "prediction: '" in plain


def test_show_unknown_id_lists_near_ids(tmp_path, capsys):
    run = tmp_path / "run"
    synthetic().write_synthetic_run(run, 20)
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L3"]) == 2
    err = capsys.readouterr().err
    assert "no document with id 'corpus/part-1.jsonl#L3'" in err
    assert "near ids: 'corpus/part-1.jsonl#L" in err
