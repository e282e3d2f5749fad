"""Word-level scores of a finished run: read back exactly, in bounded chunks, without specials or
template tokens."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from normxlogit.pipeline.findings.words import (
    WORD_SCHEMA,
    DocumentsMissingError,
    read_annotate_run,
    read_documents,
    read_words,
    words_of_rows,
)
from normxlogit.responses import SEGMENTS
from normxlogit.transforms.layout import DOCUMENTS, RunNotFoundError


def recount(run_files, run) -> pd.DataFrame:
    """Words from the token rows with pandas: non-special rows grouped by (doc_id, word_index)."""
    rows = run_files.rows(run).to_pandas()
    rows = rows[~rows["special"] & rows["word_index"].notna()]
    rows = rows.assign(score=rows["score"].astype("float64"), word_index=rows["word_index"].astype("int64"))
    return (
        rows.groupby(["doc_id", "word_index"], sort=False)
        .agg(
            score=("score", "sum"),
            n_tokens=("token", "size"),
            char_start=("char_start", "min"),
            char_end=("char_end", "max"),
        )  # fmt: skip
        .reset_index()
    )


def all_words(run, **options) -> pd.DataFrame:
    return pa.concat_tables(list(read_words(run, **options))).to_pandas()


def test_words_of_a_real_run_equal_a_recount_from_the_token_rows(annotated_run, run_files):
    words = all_words(annotated_run)
    want = recount(run_files, annotated_run)
    got = words.set_index(["doc_id", "word_index"]).sort_index()
    want = want.set_index(["doc_id", "word_index"]).sort_index()
    assert got.index.equals(want.index)
    assert (got["score"] == want["score"]).all()  # float64 sums of the same float32 scores
    for column in ("n_tokens", "char_start", "char_end"):
        assert (got[column] == want[column]).all(), column
    texts = read_documents(annotated_run, ["text"]).to_pandas().set_index("doc_id")["text"]
    spans = [texts[d][a:b].strip() for (d, _), a, b in zip(got.index, got["char_start"], got["char_end"])]
    assert got["word"].tolist() == spans
    assert "great" in set(got["word"]) and "," in set(got["word"])  # punctuation is a word
    assert got["segment"].isna().all()


def test_casefold_lower_cases_words(annotated_run):
    plain, folded = all_words(annotated_run), all_words(annotated_run, casefold=True)
    assert "THE" in set(plain["word"]) and "THE" not in set(folded["word"])
    assert folded["word"].tolist() == [w.lower() for w in plain["word"]]


def test_template_tokens_are_left_out_unless_asked(runs, tmp_path):
    assert "template" in SEGMENTS  # the chat template's segment name in the token schema
    doc = runs.Doc(
        "chat",
        ["<|im_start|>", "user", "hi", "there", "<|im_end|>", "Hello"],
        [5.0, 4.0, 1.0, 2.0, 3.0, 6.0],
        segments=["template", "template", "user", "user", "template", "response"],
    )
    rows = runs.tokens([doc])
    kept = words_of_rows(rows).to_pydict()
    assert kept["word"] == ["hi", "there", "Hello"] and kept["segment"] == ["user", "user", "response"]
    everything = words_of_rows(rows, include_special_segments=True).to_pydict()
    assert len(everything["word"]) == 6 and everything["score"] == [5.0, 4.0, 1.0, 2.0, 3.0, 6.0]


def test_a_document_split_across_row_groups_is_read_whole(runs, tmp_path):
    docs = [runs.Doc(f"d{i}", ["a", "b", "c", "b"], [1.0, 2.0, 3.0, 4.0 + i]) for i in range(9)]
    run = runs.write(tmp_path / "run", docs, row_group_size=7)  # 5 rows per document: most are cut
    tables = list(read_words(run))
    assert len(tables) > 1
    ids = [set(t["doc_id"].to_pylist()) for t in tables]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1 :])  # no document in two tables
    words = pa.concat_tables(tables)
    assert words.schema == WORD_SCHEMA and words.num_rows == 36
    assert words.filter(pa.compute.equal(words["doc_id"], "d8"))["score"].to_pylist() == [1.0, 2.0, 3.0, 12.0]


def test_read_documents_gives_the_asked_columns_or_names_those_it_has(annotated_run):
    table = read_documents(annotated_run, ["prediction", "group"])
    assert table.column_names == ["doc_id", "prediction", "group"] and table.num_rows == 12
    with pytest.raises(DocumentsMissingError, match="no column lang; it has doc_id, source, text"):
        read_documents(annotated_run, ["lang"])


def test_a_run_without_documents_table_or_manifest_is_refused(synthetic, tmp_path):
    old = tmp_path / "old"
    synthetic.write_synthetic_run(old, 3)  # as runs of older versions: no documents/
    with pytest.raises(DocumentsMissingError, match=f"has no documents table \\({DOCUMENTS.folder}/\\)"):
        read_annotate_run(old)
    with pytest.raises(RunNotFoundError, match="is not a finished normxlogit run"):
        read_annotate_run(tmp_path)
