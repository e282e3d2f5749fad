"""``normxlogit report`` and ``normxlogit show``, and the summaries ``annotate`` writes for them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from normxlogit.display import REVEALED, char_class
from normxlogit.pipeline.cli import main
from normxlogit.pipeline.report.escaping import embed_json, esc, iso, lit
from normxlogit.pipeline.report.page import SCRIPT, script_hash
from normxlogit.pipeline.report.run_reader import iter_doc_chunks, scan_run
from normxlogit.pipeline.report.terminal import render_document, terminal_safe
from normxlogit.transforms.layout import ATTRIBUTIONS, DOCUMENTS, GROUPS

HOSTILE_TEXT = "<script>document.title='x'</script> &amp; </script><!-- \u2028 \u202eevil 😀"
REVIEWS = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting."},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early."},
    {"id": "r3", "text": HOSTILE_TEXT},
    {"id": "r4", "text": "Not bad at all, not bad at all."},
]


HIDDEN = re.compile(char_class(REVEALED))  # characters that must never reach the page or terminal raw


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory, tiny_classifier, cli) -> Path:
    """A real annotate run of four reviews (one hostile) plus one dead letter."""
    folder = tmp_path_factory.mktemp("report-run")
    src = folder / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS) + "{not json\n")
    out = folder / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--id-field", "id") == 0
    return out


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, bpe, cli) -> Path:
    """A real annotate run with a byte-level BPE tokenizer over a hostile corpus (``bpe_run.py``)."""
    return bpe.annotate_bpe_run(cli, tmp_path_factory.mktemp("bpe-run"))


def test_embedded_json_cannot_close_its_script_and_reads_back():
    value = {"t": [HOSTILE_TEXT, "a\u2029b", "&lt;", "zwj-\u200d-id \u2067x\u2069 \ufeff\U000e0041\x85"]}
    text = embed_json(value)
    assert not set(text) & {"<", ">", "&"} and not HIDDEN.search(text)
    # Bidi and zero-width characters are \u escapes in the page source too (tags as surrogate pairs).
    assert "\\u202e" in text and "\\u200d" in text and "\\u2067" in text and "\\udb40\\udc41" in text
    assert json.loads(text) == value


def test_html_escaping_of_labels_and_attributes():
    assert esc("<a href=\"x\" onclick='y'>&") == "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;"
    assert lit(" Paris") == '<code class="lit">&quot; Paris&quot;</code>'
    assert (
        lit("\u202eevil")
        == '<code class="lit">&quot;<span class="esc" title="U+202E">\\u202e</span>evil&quot;</code>'
    )
    assert iso("zwj-\u200d-id\n") == (
        '<span class="iso">zwj-<span class="esc" title="U+200D">\\u200d</span>-id'
        '<span class="esc" title="U+000A">\\x0a</span></span>'
    )


def test_terminal_text_cannot_drive_the_terminal():
    assert terminal_safe("a\x1b[2Jb\x07\u202ec\tok") == "a\\x1b[2Jb\\x07\\u202ec\tok"
    assert (
        terminal_safe("zwj-\u200d-id \u2066x\u2069\u200e\ufeff")
        == "zwj-\\u200d-id \\u2066x\\u2069\\u200e\\ufeff"
    )
    assert terminal_safe("a\tb\nc", one_line=True) == "a\\x09b\\x0ac"


def _rows(tokens: list[str], spans: list[tuple[int, int]]) -> pa.Table:
    """Token rows of one document (no special tokens) for ``render_document``."""
    n = len(tokens)
    starts, ends = (list(c) for c in zip(*spans))
    return pa.table(
        {"doc_id": ["d"] * n, "source": ["s"] * n, "position": list(range(n)), "token": tokens,
         "char_start": starts, "char_end": ends, "special": [False] * n,
         "norm": np.ones(n, np.float32), "logat": np.arange(n, dtype=np.float32),
         "score": np.arange(n, dtype=np.float32), "target": ["a"] * n, "prediction": ["a"] * n,
         "prediction_prob": [0.5] * n, "truncated": [False] * n}
    )  # fmt: skip


def test_show_takes_gaps_from_the_documents_text_and_never_repeats_a_character():
    text = "שלום\u200b\n\n  😀 ok"
    rows = _rows(["ש", "ש", "לום", "😀", "😀", "ok"], [(0, 1), (0, 1), (1, 4), (9, 10), (9, 10), (11, 13)])
    body = render_document(rows, color=False, text=text).split("\n\n", 1)[1]
    assert body.startswith("שלום\\u200b\n\n  😀 ok\n")  # the gap is the text's own characters, revealed
    no_text = render_document(rows, color=False).split("\n\n", 1)[1]
    assert no_text.startswith("שלום   😀 ok\n")  # without the text: up to 3 spaces per gap
    # A text the spans were not cut from (another record's) is not used.
    assert render_document(rows, color=False, text="x" * 20).split("\n\n", 1)[1] == no_text
    assert "top 5 tokens:" in body and body.count(". 😀 ") == 2  # the top tokens list every token


@pytest.mark.slow
def test_annotate_writes_summaries_that_reconcile(reviews_run, run_files):
    manifest = run_files.manifest(reviews_run)
    assert manifest["files"]["summaries"] == [GROUPS.name] == ["summaries/groups.jsonl"]
    groups = [json.loads(line) for line in GROUPS.path(reviews_run).read_text().splitlines()]
    by_kind = {}
    for g in groups:
        by_kind.setdefault(g["kind"], []).append(g)
    rows = run_files.rows(reviews_run)
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
    fallback = {(g["kind"], g["group"]): g for g in scan_run(reviews_run, 0, with_summaries=True).summaries}
    assert fallback == {(g["kind"], g["group"]): g for g in groups}
    assert any(e["text"] == "heartfelt" for e in corpus["top_words_by_total"] + corpus["top_words_by_mean"])


@pytest.mark.slow
def test_report_of_a_real_run(reviews_run, tmp_path, capsys, report_docs):
    page = tmp_path / "report.html"
    assert main(["report", str(reviews_run), "--out", str(page)]) == 0
    assert "wrote" in capsys.readouterr().out
    html = page.read_text(encoding="utf-8")
    docs = report_docs(html)
    assert sorted(d["id"] for d in docs) == ["r1", "r2", "r3", "r4"]
    assert "<script>document" not in html and "</script><!--" not in html
    assert html.count("<script") == 2
    assert "malformed_json" in html and "from the pipeline" in html
    hostile = next(d for d in docs if d["id"] == "r3")
    assert "".join(hostile["t"]).replace(" ", "") == re.sub(r"[\s\u202e]", "", HOSTILE_TEXT)


def test_page_policy_allows_only_its_own_script(tmp_path, synthetic, report_docs):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 40, hostile=True)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert csp.startswith("default-src &#x27;none&#x27;; style-src &#x27;unsafe-inline&#x27;; script-src")
    assert script_hash(SCRIPT).replace("'", "&#x27;") in csp
    assert f"<script>{SCRIPT}</script>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html.split("<script")[0])
    assert len(report_docs(html)) == 40


def test_sample_is_deterministic_and_bounded(tmp_path, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 700, docs_per_group=64)
    small, large = scan_run(run, 50, False), scan_run(run, 200, False)
    assert (small.docs, small.tokens) == (
        700,
        pq.read_metadata(run / ATTRIBUTIONS.name(0, 1)).num_rows,
    )
    assert len(small.sample) == 50 and len(large.sample) == 200
    assert {d["id"] for d in small.sample} <= {d["id"] for d in large.sample}
    assert [d["id"] for d in scan_run(run, 50, False).sample] == [d["id"] for d in small.sample]
    assert sum(small.by_prediction.values()) == 700


def test_documents_split_across_row_groups_are_read_whole(tmp_path, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 30)
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


def test_show_colours_tokens_and_lists_top_tokens(tmp_path, capsys, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 20)
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[48;2;" in out and "legend:" in out and "top 3 tokens:" in out
    assert out.count("score ") == 3
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L2", "--no-color"]) == 0
    plain = capsys.readouterr().out
    assert "\x1b" not in plain and "prediction: '" in plain


def test_page_lists_layers_and_misclassified_documents(tmp_path, synthetic, report_docs):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 60, misclassified=0.3, layers=(2, 5))
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    wrong = sum(d["target"] != d["prediction"] for d in report_docs(html))
    assert 0 < wrong < 60
    assert f'<b id="misclassified-count">{wrong}</b>' in html
    assert '<p id="layers">' in html and "layers <b>2, 5</b>, in that order" in html
    plain = tmp_path / "plain"
    synthetic.write_synthetic_run(plain, 10)
    assert main(["report", str(plain), "--out", str(tmp_path / "p.html")]) == 0
    html = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert 'id="layers"' not in html and 'type="checkbox" disabled' in html  # nothing to filter


def test_hostile_page_holds_no_raw_hidden_character(tmp_path, synthetic, report_docs):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 40, hostile=True, documents=True)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert not HIDDEN.search(html)  # not in labels, file names, dead letters nor the embedded JSON
    assert html.count('title="U+202E">\\u202e</span>') >= 3  # dead-letter file, labels, words
    docs = report_docs(html)
    table = pq.read_table(run / DOCUMENTS.name(0, 1), columns=["doc_id", "text"])
    texts = dict(zip(table["doc_id"].to_pylist(), table["text"].to_pylist()))
    assert all("".join(g + t for g, t in zip(d["g"], d["t"])) == texts[d["id"]] for d in docs)


@pytest.mark.slow
def test_byte_level_bpe_characters_show_once_in_show_and_report(
    bpe_run, tmp_path, capsys, run_files, bpe, report_docs
):
    texts = bpe.TEXTS
    rows = run_files.rows(bpe_run)
    columns = (rows[c].to_pylist() for c in ("doc_id", "char_start", "char_end", "special"))
    spans = [(d, s, e) for d, s, e, special in zip(*columns) if not special]
    assert len(set(spans)) < len(spans)  # the tokenizer split characters: tokens share spans
    for doc_id, text in texts.items():
        assert main(["show", str(bpe_run), "--doc", doc_id, "--no-color"]) == 0
        out = capsys.readouterr().out
        header, body = out.split("\n\n", 2)[:2]
        assert body == terminal_safe(text)  # each character once, hidden ones revealed
        assert not HIDDEN.search(out)
        assert f"doc_id: {terminal_safe(doc_id)}" in header and "\\u202eviews\\u200b.jsonl" in header
    assert main(["show", str(bpe_run), "--doc", "he"]) == 0
    coloured = capsys.readouterr().out.split("\n\n", 2)[1]
    assert re.sub("\x1b\\[[0-9;]*m", "", coloured) == texts["he"]
    page = tmp_path / "r.html"
    assert main(["report", str(bpe_run), "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert not HIDDEN.search(html)
    docs = {d["id"]: d for d in report_docs(html)}
    assert {i: "".join(g + t for g, t in zip(d["g"], d["t"])) for i, d in docs.items()} == texts
    he = docs["he"]
    # Each Hebrew letter is two byte tokens with the letter's span: the first shows it, the second
    # shows nothing and keeps its own string for the hover text and the top tokens.
    assert he["t"].count("") == 8 == len(he["k"])
    assert all(he["k"][str(i)] == he["t"][i - 1] for i, t in enumerate(he["t"]) if t == "")
    assert "layers <b>1, 2</b>" in html


def test_show_unknown_id_lists_near_ids(tmp_path, capsys, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 20)
    assert main(["show", str(run), "--doc", "corpus/part-1.jsonl#L3"]) == 2
    err = capsys.readouterr().err
    assert "no document with id 'corpus/part-1.jsonl#L3'" in err
    assert "near ids: 'corpus/part-1.jsonl#L" in err


def test_show_unknown_id_lists_ids_it_begins_or_is_part_of(tmp_path, capsys, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 20)
    path = run / ATTRIBUTIONS.name(0, 1)
    table = pq.read_table(path)
    rename = dict(
        zip(dict.fromkeys(table["doc_id"].to_pylist()), ["c7-wrong-author", "c70", "doc-c7", "C7x"])
    )
    ids = pa.array([rename.get(i, i) for i in table["doc_id"].to_pylist()], pa.string())
    pq.write_table(table.set_column(0, table.schema.field(0), ids), path)

    assert main(["show", str(run), "--doc", "c7"]) == 2
    # Those starting with it (case ignored, shortest first), then those containing it: difflib's ratio
    # (0.5 and up) finds none of them for so short an id.
    assert capsys.readouterr().err.splitlines() == [
        f"normxlogit show: error: no document with id 'c7' in {run} (20 documents); near ids: 'C7x', "
        "'c70', 'c7-wrong-author', 'doc-c7'"
    ]
    assert main(["show", str(run), "--doc", "c7-wrong-autor"]) == 2
    assert "(20 documents); near ids: 'c7-wrong-author'" in capsys.readouterr().err


def section(html: str, name: str) -> str:
    """The HTML of one ``<section id=name>`` of the page."""
    return re.search(rf'<section id="{name}">(.*?)</section>', html, re.S).group(1)


@pytest.fixture(scope="module")
def findings_dirs(tmp_path_factory, synthetic) -> tuple[Path, Path, Path]:
    """A synthetic run A, ``stats A --by prediction`` and ``compare A B`` (B: A's documents rescored)."""
    folder = tmp_path_factory.mktemp("report-findings")
    run_a = folder / "a"
    synthetic.write_synthetic_run(run_a, 240, documents=True, misclassified=0.3)
    run_b = synthetic.write_rescored_copy(run_a, folder / "b")
    stats, compared = folder / "stats", folder / "compare"
    lexicon = folder / "lexicon.json"
    lexicon.write_text(json.dumps({"short": ["an", "el"], "long": ["ananan", "anananan"]}))
    argv = ["stats", str(run_a), "--by", "prediction", "--out", str(stats), "--bootstrap", "50"]
    assert main([*argv, "--lexicon", str(lexicon)]) == 0
    assert main(["compare", str(run_a), str(run_b), "--out", str(compared), "--bootstrap", "50"]) == 0
    return run_a, stats, compared


def test_report_computes_findings_for_its_sample(findings_dirs, tmp_path, report_docs):
    run = findings_dirs[0]
    page = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(page), "--max-docs", "60"]) == 0
    html = page.read_text(encoding="utf-8")
    findings = section(html, "findings")
    assert "computed by the report for the sampled 60 documents (B=200" in findings
    assert "95% percentile interval, document bootstrap (Poisson(1) weight per document), B=200, seed 0" in (
        findings
    )
    # The target is not always the prediction (30% misclassified): sliced as the corpus views group.
    assert "target = " in findings and "prediction = " in findings and "source = " in findings
    # The corpus slice's means are those of the sampled documents' words, recounted from the token rows.
    sampled = pa.array([d["id"] for d in report_docs(html)])
    rows = pq.read_table(run / ATTRIBUTIONS.name(0, 1))
    rows = rows.filter(
        pa.compute.and_(pa.compute.is_in(rows["doc_id"], sampled), pa.compute.invert(rows["special"]))
    )
    words = pa.table(
        {"word": pa.compute.utf8_trim_whitespace(rows["token"]), "score": rows["score"].cast(pa.float64())}
    )
    means = {
        w: m for w, m in zip(*words.group_by("word").aggregate([("score", "mean")]).to_pydict().values())
    }
    corpus = findings.split("</details>")[0]
    label = r'<td class="label"><code class="lit">&quot;(\w+)&quot;</code></td>'
    shown = re.findall(label + r'<td class="num">\d+</td>' * 2 + r'<td class="num">(-?[\d.e+-]+) \[', corpus)
    assert len(shown) == 10
    assert [float(m) for _, m in shown] == sorted((float(m) for _, m in shown), reverse=True)
    assert [float(m) for _, m in shown] == [float(f"{means[w]:.3g}") for w, _ in shown]


def test_corpus_views_rank_words_by_mean_and_keep_totals_folded(findings_dirs, tmp_path):
    """Issue 23 changed this view: words by total score (frequency first) are no longer shown first."""
    page = tmp_path / "r.html"
    assert main(["report", str(findings_dirs[0]), "--out", str(page)]) == 0
    corpus = section(page.read_text(encoding="utf-8"), "corpus")
    whole = corpus.split('<h3 id="by-prediction">')[0]
    assert whole.index("words by mean score") < whole.index('<details class="totals">')
    assert whole.index('<details class="totals">') < whole.index("words by total score")


def test_report_shows_stats_and_compare_folders(findings_dirs, tmp_path):
    run, stats, compared = findings_dirs
    page = tmp_path / "r.html"
    argv = ["report", str(run), "--out", str(page), "--stats", str(stats), "--compare", str(compared)]
    assert main(argv) == 0
    html = page.read_text(encoding="utf-8")
    findings = section(html, "findings")
    assert f"read from {stats}" in findings and "B=50, seed 0" in findings
    words = pq.read_table(stats / "words.parquet").to_pylist()
    corpus = [w for w in words if w["slice_field"] == "*" and w["mean_ci_low"] is not None]
    top = sorted(corpus, key=lambda w: (-w["mean_score"], w["word"]))[:10]
    first_table = findings.split("</table>")[0]
    assert re.findall(r"&quot;(\w+)&quot;", first_table) == [w["word"] for w in top]
    assert first_table.count('class="ci"') == 10 and first_table.count('class="span"') == 10
    assert findings.count("<details") == 4  # the corpus and the three predictions
    shares = pq.read_table(stats / "lexicon.parquet").to_pylist()
    corpus_short = next(r for r in shares if r["slice"] == "*" and r["category"] == "short")
    low, high = corpus_short["share_ci_low"], corpus_short["share_ci_high"]
    assert f"{corpus_short['share']:.3g} [{low:.3g}, {high:.3g}]" in findings.split("Lexicon shares")[1]
    differences = [r for r in shares if r["versus"] is not None]
    assert len(differences) == 6 and findings.count("difference [95% CI]") == 1  # 3 pairs x 2 categories

    comparison = section(html, "comparison")
    summary = json.loads((compared / "summary.json").read_text())
    documents = pq.read_table(compared / "documents.parquet")
    assert f'<td class="num" id="compare-compared">{documents.num_rows:,}</td>' in comparison
    rho = summary["spearman"]
    assert f"{rho['median']:.3g} [{rho['ci_low']:.3g}, {rho['ci_high']:.3g}]" in comparison
    bars = re.search(r'id="spearman-histogram">(.*?)</div><div class="axis">', comparison).group(1)
    assert (
        sum(int(n.replace(",", "")) for n in re.findall(r": ([\d,]+) documents", bars)) == documents.num_rows
    )
    deltas = pq.read_table(compared / "words.parquet").to_pylist()
    rose = max((w for w in deltas if w["delta_ci_low"] is not None), key=lambda w: w["delta"])
    higher_b = comparison.split('id="largest-deltas">')[1].split("</table>")[0]
    assert re.search(r"&quot;(\w+)&quot;", higher_b).group(1) == rose["word"]
    # The side-by-side document is the median-Spearman one; each run colours every one of its words.
    ranked = sorted(
        (r for r in documents.to_pylist() if r["spearman"] is not None), key=lambda r: r["spearman"]
    )
    middle = ranked[(len(ranked) - 1) // 2]
    side = comparison.split('id="side-by-side">')[1]
    assert f"{middle['doc_id']}</span>, the document with the median Spearman" in comparison
    n_words = sum(1 for d in rows_of(run, middle["doc_id"]) if not d)
    assert side.count('<span class="tok c') == 2 * n_words


def rows_of(run: Path, doc_id: str) -> list[bool]:
    """The ``special`` flag of each token row of one document."""
    rows = pq.read_table(run / ATTRIBUTIONS.name(0, 1), columns=["doc_id", "special"])
    return [s for d, s in zip(rows["doc_id"].to_pylist(), rows["special"].to_pylist()) if d == doc_id]


def test_report_without_a_documents_table_says_why_it_has_no_findings(tmp_path, synthetic):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 20)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    findings = section((tmp_path / "r.html").read_text(encoding="utf-8"), "findings")
    assert "not computed:" in findings and "has no documents table" in findings


def test_report_refuses_a_folder_that_is_not_a_stats_or_compare_output(findings_dirs, tmp_path, capsys):
    run = findings_dirs[0]
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--stats", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"normxlogit report: error: {tmp_path} has no words.parquet; pass the --out folder of a finished "
        "`normxlogit stats`"
    )
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--compare", str(tmp_path)]) == 2
    assert (
        "no documents.parquet; pass the --out folder of a finished `normxlogit compare`"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_a_comparison_of_another_run(findings_dirs, tmp_path, capsys, synthetic):
    run_a, _, compared = findings_dirs
    other = tmp_path / "other"
    synthetic.write_synthetic_run(other, 20, documents=True)
    assert main(["report", str(other), "--out", str(tmp_path / "r.html"), "--compare", str(compared)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"normxlogit report: error: {compared} compares {run_a} with another run, not {other}: pass it to "
        f"the report of {run_a}, or run `normxlogit compare {other} RUN_B --out DIR`"
    )
