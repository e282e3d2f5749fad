"""Word-level scores of a finished annotate run, streamed with bounded memory.

Words are the run's ``word_index`` words: runs of word characters or single other non-space
characters of the text, found from character offsets (``normxlogit.words``), so two runs of the
same texts with different tokenizers have the same words. A word's score is the sum of its tokens'
scores (``summary_stats.token_words`` groups the rows).

Left out: special tokens, tokens outside words (``word_index`` null) and, by default, tokens a chat
template wrote (``segment`` ``template``): they are not the content of a document. Every other
segment (``prompt``, ``response``, a message's role) and plain runs (``segment`` null) are kept.

Memory: one row group of token rows at a time (a batch of documents), plus the rows of a document
that continues into the next row group, so every table holds whole documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    DOCUMENTS,
    TEMPLATE,
    Manifest,
    RunNotFoundError,
    read_annotate_manifest,
)
from normxlogit.transforms.summary_stats import token_words

# Token columns a word is built from; ``segment`` is null in plain runs and missing in older ones.
TOKEN_COLUMNS = ("doc_id", "token", "char_start", "char_end", "word_index", "special", "score")
SEGMENT = "segment"
WORD_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("word_index", pa.int32()),
        pa.field("word", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("n_tokens", pa.int32()),
        pa.field("char_start", pa.int32()),
        pa.field("char_end", pa.int32()),
        pa.field(SEGMENT, pa.string()),
    ]
)
# Document columns that name a slice of the corpus in every run; ``--keep-fields`` add their own.
DOCUMENT_LABELS = ("prediction", "target", "source")


class DocumentsMissingError(RunNotFoundError):
    """The run has no documents table, or it lacks a column that was asked for."""


def read_annotate_run(run: Path) -> Manifest:
    """The manifest of a finished ``annotate`` run that has a documents table.

    Raises:
        RunNotFoundError: not a finished run, or another command's run (one line, what to pass).
        DocumentsMissingError: a run written before the documents table existed.
    """
    manifest = read_annotate_manifest(Path(run))
    if not DOCUMENTS.paths(run):
        raise DocumentsMissingError(
            f"{run} has no documents table ({DOCUMENTS.folder}/), which runs of older versions lack; "
            "re-run `normxlogit annotate` into a new --output"
        )
    return manifest


def document_row_groups(run: Path, columns: Sequence[str]) -> Iterator[pa.Table]:
    """The run's token rows, ``columns`` only, one row group at a time, each of whole documents.

    Rows of a document are contiguous and lie in one part file; a document that continues into the
    next row group is carried over, so no table cuts a document. Columns a run lacks (``segment``
    in older runs) come as nulls of the token schema's type.
    """
    carry: pa.Table | None = None
    for path in ATTRIBUTIONS.paths(run):
        reader = pq.ParquetFile(path)
        present = [c for c in columns if c in reader.schema_arrow.names]
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group, columns=present)
            for name in columns:
                if name not in present:
                    table = table.append_column(name, pa.nulls(table.num_rows, WORD_SCHEMA.field(name).type))
            table = table.select(list(columns))
            table = table if carry is None else pa.concat_tables([carry, table])
            if table.num_rows == 0:
                continue
            last = _document_starts(table["doc_id"])[-1]
            carry = table.slice(last)
            if last > 0:
                yield table.slice(0, last)
        if carry is not None and carry.num_rows:  # a document never spans two part files
            yield carry
        carry = None


def _document_starts(doc_id: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """First row of each run of equal doc ids."""
    ids = doc_id.combine_chunks() if isinstance(doc_id, pa.ChunkedArray) else doc_id
    n = len(ids)
    changes = pc.not_equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return np.r_[0, np.flatnonzero(changes) + 1]


def words_of_rows(
    rows: pa.Table, *, casefold: bool = False, include_special_segments: bool = False
) -> pa.Table:
    """The words (``WORD_SCHEMA``) of token rows of whole documents, in row order.

    Args:
        rows: token rows with ``TOKEN_COLUMNS`` and ``segment``; a document's rows contiguous.
        casefold: lower-case the word texts (Unicode, ``utf8_lower``).
        include_special_segments: keep the tokens a chat template wrote (``segment`` ``template``).
    """
    if rows.num_rows == 0:
        return WORD_SCHEMA.empty_table()
    starts = _document_starts(rows["doc_id"])
    doc = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, rows.num_rows]))
    keep = ~rows["special"].to_numpy(zero_copy_only=False).astype(bool)
    segment = rows[SEGMENT].combine_chunks()
    if not include_special_segments:
        keep &= ~pc.fill_null(pc.equal(segment, TEMPLATE), False).to_numpy(zero_copy_only=False)
    words = token_words(rows, doc, keep)
    first = pa.array(words.first_row)
    text = pc.utf8_lower(words.text) if casefold else words.text
    return pa.table(
        [
            rows["doc_id"].take(first),
            rows["word_index"].take(first),
            text,
            pa.array(words.score, pa.float64()),
            pa.array(words.n_tokens.astype(np.int32)),
            pa.array(words.char_start.astype(np.int32)),
            pa.array(words.char_end.astype(np.int32)),
            segment.take(first),
        ],
        schema=WORD_SCHEMA,
    )


def read_words(
    run: Path, *, casefold: bool = False, include_special_segments: bool = False
) -> Iterator[pa.Table]:
    """Word-level scores of a finished annotate run: one ``WORD_SCHEMA`` table per row group.

    Columns: ``doc_id``, ``word_index``, ``word`` (its text, stripped; lower-cased with
    ``casefold``), ``score`` (float64 sum of its tokens' scores), ``n_tokens``, ``char_start`` and
    ``char_end`` (the span of its tokens) and ``segment`` (its first token's; null in plain runs).
    A document's words are all in one table. The word text is rebuilt from the token strings (the
    text under each span, overlaps removed), which is the text's span unless a tokenizer left a gap
    inside a word.

    Args:
        run: the run folder (call ``read_annotate_run`` first for a one-line refusal).
        casefold: lower-case the word texts.
        include_special_segments: keep the tokens a chat template wrote (``segment`` ``template``).
    """
    for rows in document_row_groups(run, TOKEN_COLUMNS + (SEGMENT,)):
        yield words_of_rows(rows, casefold=casefold, include_special_segments=include_special_segments)


def read_documents(run: Path, columns: Sequence[str] = DOCUMENT_LABELS) -> pa.Table:
    """The run's documents table: ``doc_id`` and ``columns`` (e.g. ``prediction``, a ``--keep-fields``
    field, ``text``), in the order of its part files.

    Raises:
        DocumentsMissingError: no documents table, or a column it does not have (the message lists
            the columns it has).
    """
    paths = DOCUMENTS.paths(run)
    if not paths:
        raise DocumentsMissingError(f"{run} has no documents table ({DOCUMENTS.folder}/)")
    names = pq.read_schema(paths[0]).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise DocumentsMissingError(
            f"the documents table of {run} has no column {', '.join(missing)}; it has {', '.join(names)}"
        )
    wanted = ["doc_id", *(c for c in columns if c != "doc_id")]
    return pa.concat_tables([pq.read_table(p, columns=wanted) for p in paths])
