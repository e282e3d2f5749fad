"""A chunk of word rows summed per (slice, word, document): what the counts and the bootstrap add up.

Every statistic of ``stats`` is a ratio of sums over documents, so a document's words enter only
through their per-(slice, word) sums in that document: the sum of their scores, their number and
the sum of their absolute scores. A word counts in the corpus slice and in one slice per ``--by``
field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.bootstrap import document_keys
from normxlogit.pipeline.findings.lexicon import Lexicon
from normxlogit.pipeline.findings.slices import DocumentIndex, Slices
from normxlogit.pipeline.findings.words import SEGMENT

# Word rows observed at once: row groups of a few documents are joined to amortise the per-chunk work.
# However many documents a chunk holds, the bootstrap weights them ``bootstrap.DOCS_PER_CHUNK`` at a time.
CHUNK_WORDS = 1 << 17


@dataclass(frozen=True)
class Observations:
    """Per (slice, word, document) sums of one chunk of whole documents.

    Attributes:
        words: (distinct words,) the chunk's word texts.
        keys: (documents,) the chunk's document keys (``bootstrap.document_keys``).
        slice_id, word, doc: (entries,) the slice, the position in ``words`` and in ``keys``.
        score: (entries,) the sum of the word's scores in the document and slice.
        count: (entries,) its occurrences there.
        mass: (entries,) the sum of their absolute scores.
    """

    words: pa.Array
    keys: np.ndarray
    slice_id: np.ndarray
    word: np.ndarray
    doc: np.ndarray
    score: np.ndarray
    count: np.ndarray
    mass: np.ndarray


def chunks(tables: Iterable[pa.Table], min_rows: int = CHUNK_WORDS) -> Iterator[pa.Table]:
    """Consecutive tables joined until each holds at least ``min_rows`` rows (the last may hold fewer)."""
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        pending.append(table)
        rows += table.num_rows
        if rows >= min_rows:
            yield pa.concat_tables(pending)
            pending, rows = [], 0
    if rows:
        yield pa.concat_tables(pending)


def observe(words: pa.Table, index: DocumentIndex, slices: Slices) -> Observations:
    """Sum a chunk's word rows (``words.WORD_SCHEMA``, whole documents) per (slice, word, document).

    Raises:
        slices.SliceError: a document missing from the documents table, or too many slice values.
    """
    doc_ids = pc.dictionary_encode(words["doc_id"].combine_chunks())
    keys = document_keys(doc_ids.dictionary)
    doc = doc_ids.indices.to_numpy().astype(np.int64)
    rows = index.rows(doc_ids.dictionary, keys)[doc]
    texts = pc.dictionary_encode(words["word"].combine_chunks())
    word = texts.indices.to_numpy().astype(np.int64)
    per_field = [np.zeros(len(word), np.int64)]
    for name in slices.fields[1:]:
        if name == SEGMENT:
            per_field.append(slices.ids(SEGMENT, words[SEGMENT].combine_chunks()))
        else:
            per_field.append(index.slice_ids[name][rows])
    slice_id = np.concatenate(per_field)
    n_fields, n_words, n_docs = len(per_field), max(len(texts.dictionary), 1), max(len(keys), 1)
    word, doc = np.tile(word, n_fields), np.tile(doc, n_fields)
    score = np.tile(words["score"].to_numpy(), n_fields)
    entry, at = np.unique((slice_id * n_words + word) * n_docs + doc, return_inverse=True)
    return Observations(
        words=texts.dictionary,
        keys=keys,
        slice_id=entry // (n_words * n_docs),
        word=entry // n_docs % n_words,
        doc=entry % n_docs,
        score=np.bincount(at, weights=score, minlength=len(entry)),
        count=np.bincount(at, minlength=len(entry)).astype(np.float64),
        mass=np.bincount(at, weights=np.abs(score), minlength=len(entry)),
    )


@dataclass(frozen=True)
class CategoryEntries:
    """Per (slice, category, document) sums of the lexicon's words in one chunk.

    Attributes:
        row: (entries,) ``slice_id * n_categories + category``.
        doc: (entries,) position in the chunk's document keys.
        count, mass: (entries,) occurrences of the category's words and their absolute score.
    """

    row: np.ndarray
    doc: np.ndarray
    count: np.ndarray
    mass: np.ndarray


def category_entries(obs: Observations, lexicon: Lexicon) -> CategoryEntries:
    """The lexicon's categories in a chunk: each (slice, word, document) entry once per category of
    its word."""
    position, category = lexicon.matches(obs.words)
    order = np.argsort(obs.word, kind="stable")
    sorted_words = obs.word[order]
    low, high = (
        np.searchsorted(sorted_words, position, "left"),
        np.searchsorted(sorted_words, position, "right"),
    )
    counts = high - low
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    picked = order[np.repeat(low, counts) + offsets]
    n_categories, n_docs = len(lexicon.categories), max(len(obs.keys), 1)
    row = obs.slice_id[picked] * n_categories + np.repeat(category, counts)
    entry, at = np.unique(row * n_docs + obs.doc[picked], return_inverse=True)
    return CategoryEntries(
        row=entry // n_docs,
        doc=entry % n_docs,
        count=np.bincount(at, weights=obs.count[picked], minlength=len(entry)),
        mass=np.bincount(at, weights=obs.mass[picked], minlength=len(entry)),
    )
