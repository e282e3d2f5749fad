"""Exact counts and sums of a corpus per (slice, word), per slice and per (slice, category).

Chunks hold whole documents, so a document is counted in one chunk and document counts add across
chunks. Partial tables are merged by group-by sums when they outgrow the merged one (amortised:
each row is merged O(log chunks) times); memory is the number of distinct (slice, word) pairs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from normxlogit.pipeline.findings.observations import CategoryEntries, Observations

WORD_KEYS = ("slice_id", "word")
# n_docs_only: documents where the word lies in this slice and no other slice of its field (all of
# them for a document-level field); the documents outside the slice are the corpus's n_docs less these.
WORD_SUMS = ("n_docs", "n_docs_only", "n_occurrences", "score", "mass")
SLICE_SUMS = ("n_docs", "n_occurrences", "mass")
CATEGORY_KEYS = ("slice_id", "category")


class KeyedSums:
    """A table of sums by keys, merged from partial tables."""

    def __init__(self, schema: pa.Schema, keys: tuple[str, ...]):
        self.schema, self.keys = schema, keys
        self.sums = tuple(n for n in schema.names if n not in keys)
        self.merged: pa.Table | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table.select(self.schema.names).cast(self.schema))
        self.pending_rows += table.num_rows
        if self.pending_rows >= max(self.merged.num_rows if self.merged is not None else 0, 1 << 16):
            self._merge()

    def _merge(self) -> None:
        tables = ([self.merged] if self.merged is not None else []) + self.pending
        if tables:
            summed = (
                pa.concat_tables(tables)
                .group_by(list(self.keys), use_threads=False)
                .aggregate([(s, "sum") for s in self.sums])
            )
            self.merged = pa.table(
                [summed[k] for k in self.keys] + [summed[f"{s}_sum"] for s in self.sums], schema=self.schema
            )
        self.pending, self.pending_rows = [], 0

    def table(self) -> pa.Table:
        """The merged sums, sorted by the keys."""
        self._merge()
        if self.merged is None:
            return self.schema.empty_table()
        return self.merged.sort_by([(k, "ascending") for k in self.keys])


def _schema(keys: dict[str, pa.DataType], sums: tuple[str, ...], floats: tuple[str, ...]) -> pa.Schema:
    return pa.schema(
        [pa.field(k, t) for k, t in keys.items()]
        + [pa.field(s, pa.float64() if s in floats else pa.int64()) for s in sums]
    )


WORDS_SCHEMA = _schema({"slice_id": pa.int64(), "word": pa.string()}, WORD_SUMS, ("score", "mass"))
SLICES_SCHEMA = _schema({"slice_id": pa.int64()}, SLICE_SUMS, ("mass",))
CATEGORIES_SCHEMA = _schema({"slice_id": pa.int64(), "category": pa.int64()}, SLICE_SUMS, ("mass",))


class Tally:
    """Exact figures of a corpus, added chunk by chunk (``Observations``)."""

    def __init__(self, n_categories: int = 0):
        self.n_categories = n_categories
        self._words = KeyedSums(WORDS_SCHEMA, WORD_KEYS)
        self._slices = KeyedSums(SLICES_SCHEMA, ("slice_id",))
        self._categories = KeyedSums(CATEGORIES_SCHEMA, CATEGORY_KEYS)

    def add(self, obs: Observations, field_of: np.ndarray, categories: CategoryEntries | None = None) -> None:
        """Add a chunk.

        Args:
            obs: the chunk's sums per (slice, word, document).
            field_of: the field position of each slice id (``Slices.field_of``).
            categories: the chunk's lexicon entries, if there is a lexicon.
        """
        n_words, n_docs = max(len(obs.words), 1), max(len(obs.keys), 1)
        field = field_of[obs.slice_id]
        _, at, in_fields = np.unique(
            (field * n_words + obs.word) * n_docs + obs.doc, return_inverse=True, return_counts=True
        )
        pair, pair_at = np.unique(obs.slice_id * n_words + obs.word, return_inverse=True)
        self._words.add(
            pa.table(
                {
                    "slice_id": pair // n_words,
                    "word": obs.words.take(pa.array(pair % n_words)),
                    "n_docs": np.bincount(pair_at, minlength=len(pair)),
                    "n_docs_only": np.bincount(pair_at, weights=in_fields[at] == 1, minlength=len(pair)),
                    **{
                        name: np.bincount(pair_at, weights=values, minlength=len(pair))
                        for name, values in (
                            ("n_occurrences", obs.count),
                            ("score", obs.score),
                            ("mass", obs.mass),
                        )
                    },
                }
            )
        )
        self._slices.add(_per_row(obs.slice_id, obs.doc, obs.count, obs.mass, "slice_id"))
        if categories is not None and self.n_categories:
            table = _per_row(categories.row, categories.doc, categories.count, categories.mass, "row")
            row = table["row"].to_numpy()
            self._categories.add(
                pa.table(
                    {
                        "slice_id": row // self.n_categories,
                        "category": row % self.n_categories,
                        **{name: table[name] for name in SLICE_SUMS},
                    }
                )
            )

    def words(self) -> pa.Table:
        """One row per (slice, word): ``WORDS_SCHEMA``, sorted by slice id and word."""
        return self._words.table()

    def slices(self) -> pa.Table:
        """One row per slice with words: documents, occurrences, absolute score (``SLICES_SCHEMA``)."""
        return self._slices.table()

    def categories(self) -> pa.Table:
        """One row per (slice, category) seen (``CATEGORIES_SCHEMA``)."""
        return self._categories.table()


def _per_row(row: np.ndarray, doc: np.ndarray, count: np.ndarray, mass: np.ndarray, name: str) -> pa.Table:
    """Documents (distinct), occurrences and mass per ``row`` of a chunk's entries."""
    rows, at = np.unique(row, return_inverse=True)
    n_docs = int(doc.max(initial=0)) + 1
    docs_per_row = np.bincount(np.unique(at * n_docs + doc) // n_docs, minlength=len(rows))
    return pa.table(
        {
            name: rows,
            "n_docs": docs_per_row,
            "n_occurrences": np.bincount(at, weights=count, minlength=len(rows)),
            "mass": np.bincount(at, weights=mass, minlength=len(rows)),
        }
    )
