"""What the Comparison section shows, read from a ``normxlogit compare`` folder and the two runs.

The folder gives the per-document agreement, the words' paired differences and the summary; one
document, the one with the median Spearman, is read from both runs (``findings.words``: the same
word split of its text, whatever the tokenizers) to be shown side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from normxlogit.pipeline.findings.compare import DOCUMENTS_FILE, SUMMARY_FILE, WORDS_FILE
from normxlogit.pipeline.findings.words import SEGMENT, TOKEN_COLUMNS, WORD_SCHEMA, words_of_rows
from normxlogit.pipeline.report.findings_input import FindingsDirError, required_file
from normxlogit.pipeline.report.run_reader import read_document_texts
from normxlogit.transforms.layout import ATTRIBUTIONS


@dataclass(frozen=True)
class SideBySide:
    """One compared document: its text and each run's words (``WORD_SCHEMA``), or why a run's are missing.

    Attributes:
        doc_id: the document.
        spearman: its Spearman correlation of the two runs' word scores (the median document's).
        text: its text from run A's documents table (None: not there).
        words_a, words_b: each run's words of the document; None where the run could not be read.
        note: why a run's words are missing ("" when both are there).
    """

    doc_id: str
    spearman: float
    text: str | None
    words_a: pa.Table | None
    words_b: pa.Table | None
    note: str


@dataclass(frozen=True)
class ComparisonInput:
    """``compare``'s tables and summary, and the median document side by side."""

    folder: Path
    documents: pa.Table
    words: pa.Table
    summary: dict
    side_by_side: SideBySide | None


def median_document(documents: pa.Table) -> tuple[str, float] | None:
    """``(doc_id, spearman)`` of the document with the median Spearman (the lower middle one; ties by
    doc_id), or None when no document has one."""
    defined = documents.filter(pc.is_valid(documents["spearman"]))
    if defined.num_rows == 0:
        return None
    ranked = defined.sort_by([("spearman", "ascending"), ("doc_id", "ascending")])
    row = ranked.slice((defined.num_rows - 1) // 2, 1).to_pylist()[0]
    return row["doc_id"], row["spearman"]


def document_words(run: Path, doc_id: str) -> pa.Table:
    """The words (``WORD_SCHEMA``) of one document of a finished run, in text order."""
    dataset = ds.dataset([str(p) for p in ATTRIBUTIONS.paths(run)], format="parquet")
    present = set(dataset.schema.names)
    columns = [c for c in (*TOKEN_COLUMNS, SEGMENT, "position") if c in present]
    rows = dataset.to_table(columns=columns, filter=pc.field("doc_id") == doc_id).sort_by("position")
    if SEGMENT not in present:
        rows = rows.append_column(SEGMENT, pa.nulls(rows.num_rows, WORD_SCHEMA.field(SEGMENT).type))
    return words_of_rows(rows.select([*TOKEN_COLUMNS, SEGMENT]))


def _words_or_note(run: Path, doc_id: str, name: str) -> tuple[pa.Table | None, str]:
    if not ATTRIBUTIONS.paths(run):
        return None, f"run {name} ({run}) has no token rows here"
    words = document_words(run, doc_id)
    if words.num_rows == 0:
        return None, f"run {name} ({run}) holds no words of this document"
    return words, ""


def side_by_side(documents: pa.Table, run_a: Path, run_b: Path) -> SideBySide | None:
    """The median-Spearman document with both runs' words (None when no document has a Spearman)."""
    median = median_document(documents)
    if median is None:
        return None
    doc_id, spearman = median
    words_a, note_a = _words_or_note(run_a, doc_id, "A")
    words_b, note_b = _words_or_note(run_b, doc_id, "B")
    text = read_document_texts(run_a, [doc_id]).get(doc_id)
    return SideBySide(doc_id, spearman, text, words_a, words_b, "; ".join(n for n in (note_a, note_b) if n))


def read_compare_dir(folder: Path, run_a: Path) -> ComparisonInput:
    """What ``normxlogit compare`` wrote into ``folder``; the side-by-side document is read from
    ``run_a`` (the report's run) and the run B that summary.json names.

    Raises:
        FindingsDirError: no documents.parquet, words.parquet or summary.json, or a comparison whose run
            A is not the report's run.
    """
    documents = pq.read_table(required_file(folder, DOCUMENTS_FILE, "compare"))
    words = pq.read_table(required_file(folder, WORDS_FILE, "compare"))
    summary = json.loads(required_file(folder, SUMMARY_FILE, "compare").read_text(encoding="utf-8"))
    compared_a = Path(summary["run_a"]["path"])
    if compared_a.resolve() != Path(run_a).resolve():
        raise FindingsDirError(
            f"{folder} compares {compared_a} with another run, not {run_a}: pass it to the report of "
            f"{compared_a}, or run `normxlogit compare {run_a} RUN_B --out DIR`"
        )
    run_b = Path(summary["run_b"]["path"])
    return ComparisonInput(folder, documents, words, summary, side_by_side(documents, run_a, run_b))


def finite(values: pa.ChunkedArray) -> np.ndarray:
    """The non-null, finite values of a float column."""
    array = values.to_numpy(zero_copy_only=False).astype(np.float64)
    return array[np.isfinite(array)]
