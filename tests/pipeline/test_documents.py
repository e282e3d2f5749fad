"""The documents table, kept record fields, and targets that are never silently replaced."""

from __future__ import annotations

import json

import duckdb
import polars
import pyarrow.dataset as ds
import pytest

from normxlogit.schema import document_schema
from normxlogit.transforms.layout import ATTRIBUTIONS, DOCUMENTS

RECORDS = [
    {"id": "a", "text": "A wonderful film.", "label": "positive", "lang": "en", "rater": 3},
    {"id": "b", "text": "Dull and long.", "label": None, "lang": "en"},
    {"id": "c", "text": "Rien à dire.", "lang": "fr", "rater": [1, 2]},
    {"id": "d", "text": "Quite good, really.", "label": "  ", "lang": None},
    {"id": "e", "text": "Bad acting, bad plot.", "label": "negative", "lang": "de", "rater": True},
    {"id": "f", "text": "Fine.", "label": 1, "lang": "en"},
]


@pytest.fixture
def reviews(tmp_path):
    src = tmp_path / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return src


def documents(out):
    return ds.dataset(out / DOCUMENTS.folder, format="parquet").to_table()


def test_missing_targets_are_dead_letters_never_the_prediction(
    tmp_path, reviews, tiny_classifier, run_files, cli
):
    out = tmp_path / "out"
    rc = cli.annotate(
        reviews, "--output", out, "--model", tiny_classifier, "--id-field", "id", "--target-field", "label"
    )
    assert rc == 0
    dead = {d["doc_id"]: d for d in run_files.dead_letters(out)}
    assert sorted(dead) == ["b", "c", "d"]  # null, absent, blank
    assert {d["reason"] for d in dead.values()} == {"missing_target"}
    assert "never used in its place" in dead["b"]["message"] and dead["c"]["locator"] == "line 3"
    docs = documents(out).to_pydict()
    assert sorted(zip(docs["doc_id"], docs["target"])) == [
        ("a", "positive"),
        ("e", "negative"),
        ("f", "positive"),
    ]
    rows = run_files.rows(out).to_pydict()
    assert {(d, t) for d, t in zip(rows["doc_id"], rows["target"])} == {
        ("a", "positive"),
        ("e", "negative"),
        ("f", "positive"),
    }
    counts = run_files.manifest(out)["counts"]
    assert (
        counts["records_read"] == 6 == counts["docs_annotated"] + counts["errors"] + counts["skipped_empty"]
    )
    assert counts["docs_annotated"] == 3 and counts["errors"] == 3


def test_documents_table_with_kept_fields_joins_the_token_rows(
    tmp_path, reviews, tiny_classifier, run_files, cli
):
    out = tmp_path / "out"
    rc = cli.annotate(
        reviews,
        "--output",
        out,
        "--model",
        tiny_classifier,
        "--id-field",
        "id",
        "--keep-fields",
        "lang,rater",
    )
    assert rc == 0
    manifest = run_files.manifest(out)
    assert manifest["options"]["keep_fields"] == ["lang", "rater"]
    assert manifest["files"]["documents"] == [p.relative_to(out).as_posix() for p in DOCUMENTS.paths(out)]
    table = documents(out)
    assert table.schema == document_schema(["lang", "rater"])
    docs = {d["doc_id"]: d for d in table.to_pylist()}
    assert len(docs) == manifest["counts"]["docs_annotated"] == 6
    assert [docs[k]["lang"] for k in "abcdef"] == ["en", "en", "fr", None, "de", "en"]
    assert [docs[k]["rater"] for k in "abcdef"] == ["3", None, "[1, 2]", None, "true", None]
    assert docs["c"]["text"] == "Rien à dire." and docs["a"]["source"] == str(reviews)
    rows = run_files.rows(out)
    assert sum(d["n_tokens"] for d in docs.values()) == rows.num_rows == manifest["counts"]["tokens"]
    for d in docs.values():
        assert d["prediction"] in ("negative", "positive") and d["target"] == d["prediction"]
        assert 0.0 < d["prediction_prob"] <= 1.0 and d["truncated"] is False

    # The tables as an auditor reads them: DuckDB joins token rows with documents by doc_id.
    tokens_glob, docs_glob = (
        out / ATTRIBUTIONS.folder / ATTRIBUTIONS.pattern,
        out / DOCUMENTS.folder / DOCUMENTS.pattern,
    )
    per_lang = duckdb.sql(
        f"""
        SELECT d.lang, count(*) AS tokens, count(DISTINCT t.doc_id) AS docs, sum(t.score) AS total
        FROM read_parquet('{tokens_glob}') t JOIN read_parquet('{docs_glob}') d USING (doc_id)
        GROUP BY d.lang ORDER BY d.lang NULLS LAST
        """
    ).fetchall()
    by_doc = {}
    for doc_id, score in zip(rows.column("doc_id").to_pylist(), rows.column("score").to_pylist()):
        by_doc.setdefault(doc_id, []).append(score)
    want = {}
    for doc_id, scores in by_doc.items():
        lang = docs[doc_id]["lang"]
        tokens, n, total = want.get(lang, (0, 0, 0.0))
        want[lang] = (tokens + len(scores), n + 1, total + sum(scores))
    assert [(lang, t, n) for lang, t, n, _ in per_lang] == [
        ("de", *want["de"][:2]),
        ("en", *want["en"][:2]),
        ("fr", *want["fr"][:2]),
        (None, *want[None][:2]),
    ]
    for lang, _, _, total in per_lang:
        assert total == pytest.approx(want[lang][2], rel=1e-5)

    # pandas, polars and `datasets` read the folders as they are.
    assert len(table.to_pandas()) == 6
    assert polars.read_parquet(str(docs_glob)).height == 6
    from datasets import load_dataset

    loaded = load_dataset("parquet", data_files=str(docs_glob), split="train")
    assert sorted(loaded["doc_id"]) == list("abcdef")


def test_plain_text_inputs_have_null_kept_fields(tmp_path, tiny_classifier, cli):
    src = tmp_path / "lines.txt"
    src.write_text("one line\nanother line\n")
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--keep-fields", "lang") == 0
    assert documents(out).column("lang").to_pylist() == [None, None]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--target", "neutral"],
            "normxlogit annotate: error: --target 'neutral' cannot be attributed with this model: target "
            "'neutral' is neither a class name (negative, positive) nor an id in 0..1",
        ),
        (
            ["--target", "5"],
            "normxlogit annotate: error: --target '5' cannot be attributed with this model: target '5' is "
            "neither a class name (negative, positive) nor an id in 0..1",
        ),
        (
            ["--target", "positive", "--foil", "maybe"],
            "normxlogit annotate: error: --foil 'maybe' cannot be attributed with this model: target 'maybe' "
            "is neither a class name (negative, positive) nor an id in 0..1",
        ),
    ],
)
def test_a_run_wide_target_the_model_cannot_have_fails_before_the_run(
    tmp_path, reviews, tiny_classifier, capsys, flags, message, cli
):
    out = tmp_path / "out"
    assert cli.annotate(reviews, "--output", out, "--model", tiny_classifier, *flags) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
    assert not out.exists()


def test_a_token_target_must_be_one_token(tmp_path, reviews, tiny_causal_lm, capsys, cli):
    out = tmp_path / "out"
    assert (
        cli.annotate(reviews, "--output", out, "--model", tiny_causal_lm, "--target", "wonderful film") == 2
    )
    err = capsys.readouterr().err
    assert "--target 'wonderful film' cannot be attributed with this model" in err and "2 tokens" in err
    assert not out.exists()


def test_kept_fields_cannot_shadow_the_tables_columns(tmp_path, reviews, tiny_classifier, capsys, cli):
    with pytest.raises(SystemExit) as exit_info:
        cli.annotate(
            reviews, "--output", tmp_path / "out", "--model", tiny_classifier, "--keep-fields", "lang,text"
        )
    assert exit_info.value.code == 2
    assert (
        "--keep-fields: kept fields must be distinct and differ from the documents table's own columns"
        in (capsys.readouterr().err)
    )


def test_a_kept_field_with_a_lone_surrogate_is_a_dead_letter(tmp_path, tiny_classifier, run_files, cli):
    src = tmp_path / "r.jsonl"
    src.write_text(
        '{"id": "ok", "text": "fine", "lang": "en"}\n'
        '{"id": "bad", "text": "fine too", "lang": "e\\ud800n"}\n'
        '{"id": "nested", "text": "also fine", "lang": ["x", {"k": "\\udfff"}]}\n'
    )
    out = tmp_path / "out"
    assert (
        cli.annotate(
            src, "--output", out, "--model", tiny_classifier, "--id-field", "id", "--keep-fields", "lang"
        )
        == 0
    )
    dead = {d["doc_id"]: d for d in run_files.dead_letters(out)}
    assert sorted(dead) == ["bad", "nested"] and {d["reason"] for d in dead.values()} == {"invalid_unicode"}
    assert "kept field" in dead["bad"]["message"] and "\\ud800" in dead["bad"]["excerpt"]
    assert documents(out).column("doc_id").to_pylist() == ["ok"]
