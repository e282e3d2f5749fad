"""``normxlogit stats``: per-slice word statistics of a finished run, with document-bootstrap intervals.

Two kinds of pass over the run's word rows (``words.read_words``), one chunk of whole documents at a
time: the first counts exactly (``tally.Tally``); then one pass per block of words sums the bootstrap
replicates (``replicates``), only for (slice, word) pairs seen in at least ``min_docs`` documents.

Figures per (slice, word), the slice being the corpus (``*``) or one value of a ``--by`` field:
- ``mean_score``: the mean over the word's occurrences of its score (sum of its tokens' scores).
- ``share``: its share of the slice's absolute score, ``sum |word score|`` over its occurrences
  divided by that sum over all words of the slice.
- ``lift``: ``mean_score`` in the slice divided by the mean of the same word's occurrences outside it
  (in the other slices of the field); null for the corpus, for a word never seen outside the slice
  and where the outside mean is 0. A ratio of means: read it with care where the two differ in sign.
- ``p_value``: two-sided document-bootstrap p-value that the mean in the slice equals the mean
  outside it (the difference, not the lift, is tested); for the corpus slice, that the mean is 0.
  Tested: words in at least ``min_docs`` documents of the slice and of the outside.
- ``q_value``: Benjamini-Hochberg over the tested words of the slice.
Words in fewer than ``min_docs`` documents of the slice get no interval and no test. Intervals of
words in few documents are too narrow (``COVERAGE_NOTE``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from normxlogit.pipeline.findings.bootstrap import Resampling, nan_as_null, q_values, ratio_replicates
from normxlogit.pipeline.findings.lexicon import Lexicon
from normxlogit.pipeline.findings.lexicon_shares import MAX_COMPARED_SLICES, lexicon_table
from normxlogit.pipeline.findings.observations import Observations, category_entries, chunks, observe
from normxlogit.pipeline.findings.replicates import (
    BlockSums,
    MassSums,
    WordBlock,
    WordIntervals,
    word_blocks,
    word_intervals,
)
from normxlogit.pipeline.findings.slices import CORPUS, DocumentIndex, Slices, check_fields, index_documents
from normxlogit.pipeline.findings.tally import Tally
from normxlogit.pipeline.findings.words import read_annotate_run, read_words

WORDS_FILE, LEXICON_FILE, SUMMARY_FILE = "words.parquet", "lexicon.parquet", "summary.json"
DEFAULT_MIN_DOCS = 5
# Coverage of the nominal 95% mean_score intervals by a word's documents, on simulated corpora with a
# known mean (tests/pipeline/findings/test_bootstrap.py checks each figure): percentile intervals of
# few documents are too narrow. Said in summary.json and in the help of --min-docs.
SIMULATED_COVERAGE = {5: 0.88, 10: 0.91, 20: 0.93, 100: 0.94}


def _coverage_note(coverage: dict[int, float]) -> str:
    (n, c), *rest = coverage.items()
    more = "".join(f", {c:.0%} at {n}" for n, c in rest)
    return (
        "percentile intervals undercover with few documents: nominal 95% intervals covered the true mean "
        f"about {c:.0%} of the time at {n} documents{more} (simulation)"
    )


COVERAGE_NOTE = _coverage_note(SIMULATED_COVERAGE)

_F, _I, _S = pa.float64(), pa.int64(), pa.string()
WORDS_SCHEMA = pa.schema(
    [("slice_field", _S), ("slice", _S), ("word", _S), ("n_docs", _I), ("n_occurrences", _I)]
    + [
        (n, _F)
        for n in ("mean_score", "mean_ci_low", "mean_ci_high", "share", "share_ci_low", "share_ci_high")
    ]
    + [(n, _F) for n in ("lift", "p_value", "q_value")]
)
DEFINITIONS = {
    "mean_score": "mean over the word's occurrences in the slice of its score (sum of its tokens' scores)",
    "share": "the word's absolute score over the slice's absolute score (sums over words' occurrences)",
    "lift": "mean_score in the slice / mean score of the same word outside it (other slices of the "
    "field); null for the corpus slice '*', for words not seen outside the slice, and for an outside "
    "mean of 0",
    "p_value": "two-sided document-bootstrap p-value: slices, mean in the slice == mean outside it; the "
    "corpus slice '*', mean == 0; only for words in >= min_docs documents inside (and outside) the "
    "slice; twice the smaller share of replicates on either side of the null, so no smaller than "
    "2/(B+1)",
    "q_value": "Benjamini-Hochberg adjusted p_value over the tested words of the slice",
    "lexicon": "share: the absolute score of the category's words over the slice's absolute score; "
    "difference: share in slice - share in versus (every two slices of a field of at most "
    f"{MAX_COMPARED_SLICES} slices); p_value tests difference == 0; intervals where the slices hold "
    ">= min_docs documents",
}


@dataclass(frozen=True)
class StatsOptions:
    """What ``stats`` computes: slices, bootstrap, minimum support, word folding, lexicon."""

    by: tuple[str, ...]
    resampling: Resampling = field(default_factory=Resampling)
    min_docs: int = DEFAULT_MIN_DOCS
    casefold: bool = False
    lexicon: Lexicon | None = None
    # Count the words a chat template wrote (``segment`` ``template``); left out by default.
    include_template: bool = False


@dataclass(frozen=True)
class Findings:
    """The tables and summary ``stats`` writes."""

    words: pa.Table
    lexicon: pa.Table | None
    summary: dict


class _Run:
    """A run's word chunks as observations, with its document index and slices."""

    def __init__(self, run: Path, options: StatsOptions):
        manifest = read_annotate_run(run)
        self.path, self.options = Path(run), options
        self.by = check_fields(options.by, manifest)
        self.slices = Slices((CORPUS, *self.by))
        self.index: DocumentIndex = index_documents(run, self.by, self.slices)

    def observations(self) -> Iterator[Observations]:
        for table in chunks(
            read_words(
                self.path,
                casefold=self.options.casefold,
                include_special_segments=self.options.include_template,
            )
        ):
            yield observe(table, self.index, self.slices)


def compute_stats(run: Path, options: StatsOptions) -> Findings:
    """Read a finished run and compute its word (and lexicon) statistics per slice.

    Raises:
        RunNotFoundError: not a finished annotate run with a documents table.
        SliceError: a ``--by`` field the run lacks, or one with too many values.
    """
    source = _Run(run, options)
    lexicon, resampling = options.lexicon, options.resampling
    tally = Tally(len(lexicon.categories) if lexicon else 0)
    for obs in source.observations():
        categories = category_entries(obs, lexicon) if lexicon else None
        tally.add(obs, np.asarray(source.slices.field_of), categories)
    words, slices = tally.words(), source.slices
    n_slices = len(slices)
    counts = _word_counts(words, options.min_docs)
    blocks = word_blocks(words, counts.eligible, n_slices, resampling)
    mass = MassSums(n_slices, len(lexicon.categories) if lexicon else 0, resampling)
    intervals = {n: np.full(words.num_rows, np.nan) for n in WordIntervals.__dataclass_fields__}
    # One pass per block; without words to bootstrap, one pass for the lexicon alone.
    passes: list[WordBlock | None] = list(blocks) or ([None] if lexicon else [])
    for i, block in enumerate(passes):
        sums = BlockSums(block, resampling) if block is not None else None
        for obs in source.observations():
            if sums is not None:
                sums.add(obs)
            if i == 0:
                mass.add(obs, category_entries(obs, lexicon) if lexicon else None)
        if sums is not None:
            found = word_intervals(sums, mass.slices, counts.testable[block.source_row])
            for name in intervals:
                intervals[name][block.source_row] = getattr(found, name)
    slice_table = tally.slices()
    slice_mass = np.zeros(n_slices)
    slice_mass[slice_table["slice_id"].to_numpy()] = slice_table["mass"].to_numpy()
    word_table = _words_table(words, counts, intervals, slice_mass, slices)
    shares = (
        lexicon_table(tally.categories(), slice_table, mass, slices, options.min_docs, lexicon)
        if lexicon
        else None
    )
    return Findings(word_table, shares, _summary(run, options, source.by, slice_table, word_table, slices))


@dataclass(frozen=True)
class _WordCounts:
    """Per row of the tally's word table: support, the corpus row of its word, and what is tested."""

    eligible: np.ndarray
    testable: np.ndarray
    corpus_row: np.ndarray


def _word_counts(words: pa.Table, min_docs: int) -> _WordCounts:
    slice_id = words["slice_id"].to_numpy()
    n_docs = words["n_docs"].to_numpy()
    corpus = words.filter(pc.equal(words["slice_id"], 0))  # the first rows: sorted by slice id
    corpus_row = pc.index_in(words["word"], value_set=corpus["word"]).to_numpy(zero_copy_only=False)
    outside_docs = n_docs[corpus_row] - words["n_docs_only"].to_numpy()
    eligible = n_docs >= min_docs
    testable = eligible & ((slice_id == 0) | (outside_docs >= min_docs))
    return _WordCounts(eligible, testable, corpus_row.astype(np.int64))


def _words_table(
    words: pa.Table, counts: _WordCounts, intervals: dict, slice_mass: np.ndarray, slices: Slices
) -> pa.Table:
    slice_id = words["slice_id"].to_numpy()
    occurrences = words["n_occurrences"].to_numpy()
    score = words["score"].to_numpy()
    mean = score / occurrences
    outside_score = score[counts.corpus_row] - score
    outside_count = occurrences[counts.corpus_row] - occurrences
    outside = ratio_replicates(outside_score, outside_count)
    lift = np.where((slice_id > 0) & (outside != 0), ratio_replicates(mean, outside), np.nan)
    q = np.full(len(slice_id), np.nan)
    bounds = np.r_[np.flatnonzero(np.r_[True, slice_id[1:] != slice_id[:-1]]), len(slice_id)]
    for a, b in zip(bounds[:-1], bounds[1:]):  # the tally's rows are sorted by slice
        q[a:b] = q_values(intervals["p_value"][a:b])
    columns = {
        **slices.columns(slice_id),
        "word": words["word"],
        "n_docs": words["n_docs"],
        "n_occurrences": words["n_occurrences"],
        "mean_score": mean,
        "mean_ci_low": intervals["mean_low"],
        "mean_ci_high": intervals["mean_high"],
        "share": ratio_replicates(words["mass"].to_numpy(), slice_mass[slice_id]),
        "share_ci_low": intervals["share_low"],
        "share_ci_high": intervals["share_high"],
        "lift": lift,
        "p_value": intervals["p_value"],
        "q_value": q,
    }
    table = pa.table({k: nan_as_null(v) for k, v in columns.items()}, schema=WORDS_SCHEMA)
    return _sorted(table, slice_id, slices, ["word"])


def _sorted(table: pa.Table, slice_id: np.ndarray, slices: Slices, then: list[str]) -> pa.Table:
    """Rows by field (corpus first, then the ``--by`` order), slice label (null last), then ``then``."""
    keys = table.select(["slice", *then]).append_column(
        "field_position", pa.array(np.asarray(slices.field_of, np.int64)[slice_id])
    )
    order = pc.sort_indices(
        keys,
        [("field_position", "ascending"), ("slice", "ascending"), *((c, "ascending") for c in then)],
    )  # nulls sort last
    return table.take(order)


def _summary(
    run: Path,
    options: StatsOptions,
    by: tuple[str, ...],
    slice_table: pa.Table,
    words: pa.Table,
    slices: Slices,
) -> dict:
    per_slice = words.group_by(["slice_field", "slice"], use_threads=False).aggregate(
        [("word", "count"), ("mean_ci_low", "count")]
    )
    distinct = {
        (f, s): (n, c)
        for f, s, n, c in zip(
            *(per_slice[c].to_pylist() for c in ("slice_field", "slice", "word_count", "mean_ci_low_count"))
        )
    }
    rows = []
    for sid, n_docs, n_occ, total in zip(
        *(slice_table[c].to_pylist() for c in ("slice_id", "n_docs", "n_occurrences", "mass"))
    ):
        key = (slices.fields[slices.field_of[sid]], slices.labels[sid])
        n_words, with_ci = distinct.get(key, (0, 0))
        rows.append(
            {"slice_field": key[0], "slice": key[1], "n_docs": n_docs, "n_words": n_words,
             "n_occurrences": n_occ, "abs_score": total, "n_words_with_ci": with_ci}
        )  # fmt: skip
    rows.sort(key=lambda r: (slices.fields.index(r["slice_field"]), r["slice"] is None, r["slice"] or ""))
    r = options.resampling
    return {
        "command": "stats",
        "run": str(run),
        "options": {
            "by": list(by),
            "bootstrap": r.replicates,
            "seed": r.seed,
            "min_docs": options.min_docs,
            "casefold": options.casefold,
            "lexicon": options.lexicon.path if options.lexicon else None,
            "include_template": options.include_template,
        },
        "intervals": f"{r.describe()}; {COVERAGE_NOTE}",
        "definitions": DEFINITIONS,
        "slices": rows,
    }


def write_findings(findings: Findings, out: Path) -> list[Path]:
    """Write ``words.parquet``, ``lexicon.parquet`` (with a lexicon; a stale one is removed) and
    ``summary.json`` into ``out``, each whole or not at all (written aside, then renamed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [_write_parquet(findings.words, out / WORDS_FILE)]
    if findings.lexicon is not None:
        written.append(_write_parquet(findings.lexicon, out / LEXICON_FILE))
    else:
        (out / LEXICON_FILE).unlink(missing_ok=True)
    summary = out / SUMMARY_FILE
    temp = summary.with_name(f".{summary.name}.tmp")
    temp.write_text(json.dumps(findings.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, summary)
    return [*written, summary]


def _write_parquet(table: pa.Table, path: Path) -> Path:
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp, compression="zstd")
    os.replace(temp, path)
    return path
