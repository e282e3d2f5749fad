"""The findings the report shows: read from a ``normxlogit stats`` folder, or computed for the sample.

``--stats DIR`` reads ``DIR/words.parquet``, ``DIR/lexicon.parquet`` (when there) and
``DIR/summary.json`` as ``stats`` wrote them. Without it the report computes the same figures
(``findings.stats.compute_stats``) over the documents it samples, with fewer bootstrap replicates
(``SAMPLE_REPLICATES``): the sampled documents' token and document rows are copied into a temporary
run folder, so the figures are exactly those ``stats`` gives for a run of those documents.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from normxlogit.pipeline.findings.bootstrap import Resampling
from normxlogit.pipeline.findings.slices import SliceError
from normxlogit.pipeline.findings.stats import (
    LEXICON_FILE,
    SUMMARY_FILE,
    WORDS_FILE,
    Findings,
    StatsOptions,
    compute_stats,
)
from normxlogit.pipeline.findings.words import SEGMENT, TOKEN_COLUMNS, read_annotate_run
from normxlogit.transforms.layout import ATTRIBUTIONS, DOCUMENTS, MANIFEST_FILE, RunNotFoundError

SAMPLE_REPLICATES = 200
SAMPLE_SEED = 0


class FindingsDirError(ValueError):
    """A ``--stats`` or ``--compare`` folder that lacks a file its command writes."""


@dataclass(frozen=True)
class FindingsInput:
    """The findings the page shows and where they come from, or why there are none.

    Attributes:
        findings: the words (and lexicon) tables and summary, as ``stats`` writes them; None when
            they could not be computed.
        origin: where they come from, in words (or why there are none).
        sampled: computed on the fly for the report's sample (not read from a ``stats`` folder).
    """

    findings: Findings | None
    origin: str
    sampled: bool


def required_file(folder: Path, name: str, command: str) -> Path:
    """``folder/name``, which ``command`` writes.

    Raises:
        FindingsDirError: it is not there; the message says which command writes it.
    """
    path = Path(folder) / name
    if not path.is_file():
        raise FindingsDirError(
            f"{folder} has no {name}; pass the --out folder of a finished `normxlogit {command}`"
        )
    return path


def read_stats_dir(folder: Path) -> FindingsInput:
    """The findings ``normxlogit stats`` wrote into ``folder``.

    Raises:
        FindingsDirError: no words.parquet or summary.json.
    """
    words = pq.read_table(required_file(folder, WORDS_FILE, "stats"))
    summary = json.loads(required_file(folder, SUMMARY_FILE, "stats").read_text(encoding="utf-8"))
    lexicon = folder / LEXICON_FILE
    by = ", ".join(summary["options"]["by"])
    origin = f"read from {folder} (`normxlogit stats {summary['run']} --by {by}`)"
    return FindingsInput(
        Findings(words, pq.read_table(lexicon) if lexicon.is_file() else None, summary), origin, False
    )


def sample_findings(
    run: Path, doc_ids: list[str], total: int, by: tuple[str, ...], include_template: bool = False
) -> FindingsInput:
    """The findings of the documents ``doc_ids`` of ``run`` (all ``total`` of them, or a sample), by
    ``by``, with ``SAMPLE_REPLICATES`` replicates (the chat template's words only with
    ``include_template``); ``findings`` None (and ``origin`` says why) for a run without a documents
    table."""
    options = StatsOptions(
        by=by, resampling=Resampling(SAMPLE_REPLICATES, SAMPLE_SEED), include_template=include_template
    )
    try:
        read_annotate_run(run)  # refuses a run without a documents table in one line
        if len(doc_ids) == total:
            findings = compute_stats(run, options)
        else:
            with tempfile.TemporaryDirectory(prefix="normxlogit-report-") as folder:
                findings = compute_stats(sample_run(run, doc_ids, Path(folder), by), options)
    except (RunNotFoundError, SliceError) as err:
        return FindingsInput(None, f"not computed: {err}", True)
    what = "all" if len(doc_ids) == total else "the sampled"
    origin = (
        f"computed by the report for {what} {len(doc_ids):,} documents (B={SAMPLE_REPLICATES}, fewer "
        f"replicates than `normxlogit stats` uses by default; run it with --by and pass --stats DIR for "
        f"the whole run)"
    )
    return FindingsInput(findings, origin, True)


def sample_run(run: Path, doc_ids: list[str], folder: Path, by: tuple[str, ...]) -> Path:
    """``folder`` made a run holding only the token and document rows of ``doc_ids`` (the document
    rows with ``by``'s fields) and ``run``'s manifest."""
    wanted = pc.field("doc_id").isin(doc_ids)
    tokens = ds.dataset([str(p) for p in ATTRIBUTIONS.paths(run)], format="parquet")
    columns = [c for c in (*TOKEN_COLUMNS, SEGMENT, "position") if c in tokens.schema.names]
    rows = tokens.to_table(columns=columns, filter=wanted).sort_by(
        [("doc_id", "ascending"), ("position", "ascending")]
    )
    documents = ds.dataset([str(p) for p in DOCUMENTS.paths(run)], format="parquet")
    fields = [c for c in ("doc_id", *by) if c in documents.schema.names]
    shutil.copyfile(run / MANIFEST_FILE, folder / MANIFEST_FILE)
    for part, table in ((ATTRIBUTIONS, rows), (DOCUMENTS, documents.to_table(columns=fields, filter=wanted))):
        (folder / part.folder).mkdir()
        pq.write_table(table, folder / part.name(0, 1))
    return folder
