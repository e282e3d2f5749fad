"""``normxlogit compare``: two runs over the same documents, word by word, whatever their tokenizers.

Writes under ``out``:

    documents.parquet  one row per document compared: the agreement of the two runs' word scores
    words.parquet      per (slice, word): each run's mean, their paired difference and interval, ranks
    flips.parquet      per (slice, word): the documents where its sign or top-k membership flips
    summary.json       documents in both runs or one, median agreement with intervals, the options

A document is compared when both runs hold its ``doc_id`` with the same text; its words are aligned
by character span (``align``), never by either tokenizer's symbols. Three passes keep memory at
about one partition of documents and one block of words, whatever the size of the runs:

1. both runs' word rows (``words.read_words``) and document rows are spilled to a temporary folder
   in partitions by document key (``partitions``);
2. per partition: the documents are joined, aligned, their agreement (``agreement``) written, and
   their words tallied and spilled as per-document sums (``paired``);
3. per block of words with at least ``min_docs`` documents (``word_deltas``): the paired
   document bootstrap of their difference, over the spilled sums.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from normxlogit.pipeline.findings import agreement, paired
from normxlogit.pipeline.findings.align import TextBatch, WordRows, align
from normxlogit.pipeline.findings.bootstrap import Resampling, document_keys
from normxlogit.pipeline.findings.compare_summary import compare_summary
from normxlogit.pipeline.findings.partitions import KEY, DocumentPartitions
from normxlogit.pipeline.findings.slices import (
    CORPUS,
    DocumentIndex,
    SliceError,
    Slices,
    check_fields,
    index_documents,
)
from normxlogit.pipeline.findings.word_deltas import word_tables
from normxlogit.pipeline.findings.words import SEGMENT, read_annotate_run, read_words
from normxlogit.transforms.layout import DOCUMENTS, Manifest

DOCUMENTS_FILE, WORDS_FILE, FLIPS_FILE, SUMMARY_FILE = (
    "documents.parquet",
    "words.parquet",
    "flips.parquet",
    "summary.json",
)
DOCUMENTS_SCHEMA = pa.schema(
    [pa.field("doc_id", pa.string()), pa.field("n_words", pa.int32())]
    + [
        pa.field(name, pa.float64())
        for name in ("spearman", "kendall", "topk_jaccard", "sign_agreement", "char_coverage")
    ]
    + [pa.field("prediction_a", pa.string()), pa.field("prediction_b", pa.string())]
)
# Token rows (both runs) per partition: bounds what one partition holds in memory.
TOKENS_PER_PARTITION = 1 << 18
_WORD_COLUMNS = ["word_index", "score", "char_start", "char_end"]
_WORD_SCHEMA = pa.schema(
    [
        ("word_index", pa.int32()),
        ("score", pa.float64()),
        ("char_start", pa.int32()),
        ("char_end", pa.int32()),
    ]
)
_DOC_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("prediction", pa.string())])


class CompareError(ValueError):
    """Two runs that cannot be compared (no documents in common, or none with the same text)."""


@dataclass(frozen=True)
class CompareOptions:
    """What ``compare`` computes.

    Attributes:
        by: ``--by`` fields: slices of words.parquet and flips.parquet (values from run A).
        top_k: k of ``topk_jaccard`` and of the top-k flips.
        standardise: z-score word scores within each document, per run, before the means.
        casefold: lower-case words (Unicode) before they are grouped.
        min_docs: words in fewer documents get no interval, p-value or rank.
    """

    by: tuple[str, ...] = ()
    top_k: int = 5
    standardise: bool = True
    casefold: bool = False
    min_docs: int = 5
    resampling: Resampling = field(default_factory=Resampling)


@dataclass
class DocumentCounts:
    """Documents of each run, in both (by doc_id), compared (same text), and in one run only."""

    run_a: int = 0
    run_b: int = 0
    in_both: int = 0
    compared: int = 0
    texts_differ: int = 0
    only_a: int = 0
    only_b: int = 0


@dataclass
class PerDocument:
    """What the summary needs of each compared document (arrays grow with the corpus: 24 bytes each)."""

    keys: list[np.ndarray] = field(default_factory=list)
    coverage: list[np.ndarray] = field(default_factory=list)
    spearman: list[np.ndarray] = field(default_factory=list)


def n_partitions(manifests: list[Manifest]) -> int:
    """Partitions for two runs: about ``TOKENS_PER_PARTITION`` token rows each."""
    return max(1, math.ceil(sum(m.counts.tokens for m in manifests) / TOKENS_PER_PARTITION))


def compare_runs(run_a: Path, run_b: Path, out: Path, options: CompareOptions) -> dict:
    """Compare two finished annotate runs and write ``out``'s four files; the summary.

    Raises:
        RunNotFoundError: either is not a finished annotate run with a documents table.
        SliceError: a ``--by`` field that either run lacks.
        CompareError: no document in both runs with the same text.
    """
    run_a, run_b, out = Path(run_a), Path(run_b), Path(out)
    manifests = [read_annotate_run(run_a), read_annotate_run(run_b)]
    by = tuple(dict.fromkeys(options.by))
    for run, manifest in zip((run_a, run_b), manifests):
        try:
            check_fields(by, manifest)
        except SliceError as err:
            raise SliceError(f"{run}: {err}") from err
    slices = Slices(fields=(CORPUS, *by))
    document_fields = [f for f in by if f != SEGMENT]
    index = index_documents(run_a, document_fields, slices) if document_fields else None
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".compare-") as tmp:
        parts = DocumentPartitions(Path(tmp) / "parts", n_partitions(manifests))
        for side, run in (("a", run_a), ("b", run_b)):
            _spill_run(run, side, parts, with_segment=side == "a" and SEGMENT in by)
        parts.flush()
        second = _SecondPass(parts, slices, index, options)
        with pq.ParquetWriter(Path(tmp) / DOCUMENTS_FILE, DOCUMENTS_SCHEMA) as writer:
            for p in range(parts.n):
                writer.write_table(second.partition(p))
        parts.flush()
        if second.counts.compared == 0:
            raise CompareError(_nothing_compared(run_a, run_b, second.counts))
        words, flips = word_tables(
            second.tally.table(),
            lambda: (parts.read("entries", p, paired.ENTRY_SCHEMA) for p in range(parts.n)),
            slices,
            options.min_docs,
            options.resampling,
        )
        pq.write_table(words, Path(tmp) / WORDS_FILE)
        pq.write_table(flips, Path(tmp) / FLIPS_FILE)
        summary = compare_summary(
            (run_a, run_b), manifests, second.counts, second.per_doc, second.options, by
        )
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        (Path(tmp) / SUMMARY_FILE).write_text(text, encoding="utf-8")
        # all four at the end (summary.json last): a failed comparison leaves the folder as it was
        for name in (DOCUMENTS_FILE, WORDS_FILE, FLIPS_FILE, SUMMARY_FILE):
            (Path(tmp) / name).replace(out / name)
    return summary


def _row_keys(doc_id: pa.ChunkedArray) -> np.ndarray:
    """The document key of each row (hashing each distinct doc_id once)."""
    encoded = pc.dictionary_encode(doc_id.combine_chunks())
    return document_keys(encoded.dictionary)[encoded.indices.to_numpy()]


def _document_tables(run: Path, columns: list[str]):
    """The run's documents table, ``columns`` only, a batch of rows at a time."""
    for path in DOCUMENTS.paths(run):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 14, columns=columns):
            yield pa.Table.from_batches([batch])


def _spill_run(run: Path, side: str, parts: DocumentPartitions, with_segment: bool) -> None:
    columns = _WORD_COLUMNS + ([SEGMENT] if with_segment else [])
    for table in read_words(run):
        parts.add(f"{side}_words", table.select(columns), _row_keys(table["doc_id"]))
    for table in _document_tables(run, _DOC_SCHEMA.names):
        parts.add(f"{side}_documents", table.cast(_DOC_SCHEMA), _row_keys(table["doc_id"]))


def _rows_of(words: pa.Table, keys: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The word rows of documents ``keys`` (sorted) and each one's position in ``keys``."""
    row_keys = words[KEY].to_numpy()
    at = np.minimum(np.searchsorted(keys, row_keys), max(len(keys) - 1, 0))
    found = (keys[at] == row_keys) if len(keys) else np.zeros(len(row_keys), bool)
    return words.filter(pa.array(found)), at[found]


def _check_unique(docs: pa.Table, keys: np.ndarray) -> None:
    distinct, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if len(distinct) < len(keys):
        doc_id = docs["doc_id"][int(first[np.argmax(counts > 1)])].as_py()
        raise CompareError(
            f"a documents table holds {doc_id!r} more than once; compare needs one row per document "
            "(annotate with distinct --id-field values)"
        )


@dataclass
class _SecondPass:
    """Per partition: join both runs' documents, align their words, compare; the corpus-wide figures
    each partition adds to."""

    parts: DocumentPartitions
    slices: Slices
    index: DocumentIndex | None
    options: CompareOptions
    counts: DocumentCounts = field(default_factory=DocumentCounts)
    per_doc: PerDocument = field(default_factory=PerDocument)
    tally: paired.PairTally = field(default_factory=paired.PairTally)

    def partition(self, p: int) -> pa.Table:
        """Compare partition ``p``'s documents; their documents.parquet rows."""
        docs_a, docs_b, keys, ia, ib = self._join(p)
        texts = TextBatch(docs_a["text"].take(ia).to_pylist())
        segment = SEGMENT in self.slices.fields
        schema_a = _WORD_SCHEMA.append(pa.field(SEGMENT, pa.string())) if segment else _WORD_SCHEMA
        words_a, at_a = _rows_of(self.parts.read("a_words", p, schema_a), keys)
        words_b, at_b = _rows_of(self.parts.read("b_words", p, _WORD_SCHEMA), keys)
        alignment = align(texts, WordRows.from_table(words_a, at_a), WordRows.from_table(words_b, at_b))
        units, n, k = alignment.units, len(keys), self.options.top_k
        x, y, doc = units.score_a, units.score_b, units.doc
        ranks_a, ranks_b = agreement.document_ranks(doc, n, x), agreement.document_ranks(doc, n, y)
        spearman = agreement.spearman(doc, n, ranks_a, ranks_b)
        self.per_doc.keys.append(keys)
        self.per_doc.coverage.append(alignment.coverage)
        self.per_doc.spearman.append(spearman)
        doc_ids = docs_a["doc_id"].take(ia)
        obs = paired.unit_observations(
            texts,
            units,
            words_a[SEGMENT].combine_chunks() if segment else None,
            doc_ids,
            keys,
            self.index,
            self.slices,
            casefold=self.options.casefold,
            standardise=self.options.standardise,
            top=(ranks_a.top_k(k), ranks_b.top_k(k)),
        )
        entries = paired.entries(obs, n)
        self.tally.add(entries)
        self.parts.add("entries", paired.entry_table(entries), keys[entries.doc[entries.valid]])
        return pa.table(
            {
                "doc_id": doc_ids,
                "n_words": np.bincount(doc, minlength=n).astype(np.int32),
                "spearman": pa.array(spearman, from_pandas=True),
                "kendall": pa.array(agreement.kendall_tau_b(doc, n, ranks_a, ranks_b), from_pandas=True),
                "topk_jaccard": pa.array(
                    agreement.topk_jaccard(doc, n, ranks_a, ranks_b, k), from_pandas=True
                ),
                "sign_agreement": pa.array(agreement.sign_agreement(doc, n, x, y), from_pandas=True),
                "char_coverage": pa.array(alignment.coverage, from_pandas=True),
                "prediction_a": docs_a["prediction"].take(ia),
                "prediction_b": docs_b["prediction"].take(ib),
            },
            schema=DOCUMENTS_SCHEMA,
        )

    def _join(self, p: int):
        """Partition ``p``'s documents of each run, counted; the keys of those in both with the same
        text (sorted) and their rows in each."""
        docs_a = self.parts.read("a_documents", p, _DOC_SCHEMA)
        docs_b = self.parts.read("b_documents", p, _DOC_SCHEMA)
        keys_a, keys_b = docs_a[KEY].to_numpy(), docs_b[KEY].to_numpy()
        for docs, keys in ((docs_a, keys_a), (docs_b, keys_b)):
            _check_unique(docs, keys)
        common, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
        same = pc.equal(docs_a["text"].take(ia), docs_b["text"].take(ib)).to_numpy(zero_copy_only=False)
        c = self.counts
        c.run_a, c.run_b, c.in_both = c.run_a + len(keys_a), c.run_b + len(keys_b), c.in_both + len(common)
        c.texts_differ += int((~same).sum())
        c.only_a += len(keys_a) - len(common)
        c.only_b += len(keys_b) - len(common)
        c.compared += int(same.sum())
        return docs_a, docs_b, common[same], ia[same], ib[same]


def _nothing_compared(run_a: Path, run_b: Path, counts: DocumentCounts) -> str:
    if counts.in_both == 0:
        return (
            f"{run_a} ({counts.run_a:,} documents) and {run_b} ({counts.run_b:,}) have no doc_id in common; "
            "compare two runs of the same records (the same inputs and --id-field)"
        )
    return (
        f"the {counts.in_both:,} documents {run_a} and {run_b} have in common have different texts; "
        "compare two runs of the same text (the same --text-field, or chats rendered by the same template)"
    )
