"""Bootstrap replicates of the word and lexicon statistics, summed over a corpus chunk by chunk.

A (slice, word) pair with enough documents is one accumulator row of three sums per replicate
(its score, occurrences and absolute score). Rows are grouped into blocks of whole words that fit
``ACCUMULATOR_BYTES``; each block is one pass over the run, so memory does not grow with the
corpus or its vocabulary, only the number of passes does. A word's corpus row is in the same block
as its slice rows: the documents outside a slice are the corpus less the slice, in every replicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.bootstrap import (
    ReplicateSums,
    Resampling,
    p_values,
    percentile_interval,
    ratio_replicates,
)
from normxlogit.pipeline.findings.observations import CategoryEntries, Observations

ACCUMULATOR_BYTES = 256 << 20
SUMS_PER_ROW = 3  # score, occurrences, absolute score
# Rows turned into intervals at once: bounds the (rows x B) temporaries of the ratios.
ROWS_PER_INTERVAL = 512


@dataclass(frozen=True)
class WordBlock:
    """Accumulator rows of whole words.

    Attributes:
        words: (block words,) their texts.
        slice_id, word: (rows,) each row's slice and position in ``words``.
        source_row: (rows,) the row of the tally's word table each row stands for.
        corpus_row: (rows,) the row of the same word's corpus slice in this block.
        n_slices: slice ids are below this.
    """

    words: pa.Array
    slice_id: np.ndarray
    word: np.ndarray
    source_row: np.ndarray
    corpus_row: np.ndarray
    n_slices: int

    def __len__(self) -> int:
        return len(self.slice_id)

    def rows_of(self, obs: Observations) -> tuple[np.ndarray, np.ndarray]:
        """(entries, rows): the chunk's entries that belong to this block and their row."""
        position = pc.fill_null(pc.index_in(obs.words, value_set=self.words), -1).to_numpy(
            zero_copy_only=False
        )
        word = position[obs.word] if len(obs.word) else np.zeros(0, np.int64)
        inside = np.flatnonzero(word >= 0)
        key = word[inside] * self.n_slices + obs.slice_id[inside]
        own = self.word * self.n_slices + self.slice_id  # sorted: rows are by word, then slice
        at = np.minimum(np.searchsorted(own, key), len(own) - 1)
        found = own[at] == key
        return inside[found], at[found]


def word_blocks(
    words: pa.Table, eligible: np.ndarray, n_slices: int, resampling: Resampling
) -> list[WordBlock]:
    """Blocks of the ``eligible`` rows of the tally's word table (``slice_id``, ``word``), whole words
    in each, each block's accumulator within ``ACCUMULATOR_BYTES`` (unless one word needs more).

    Every eligible word must have its corpus row (slice 0) eligible too.
    """
    rows = np.flatnonzero(eligible)
    table = words.select(["word", "slice_id"]).take(pa.array(rows))
    order = pc.sort_indices(table, [("word", "ascending"), ("slice_id", "ascending")]).to_numpy()
    rows, table = rows[order], table.take(pa.array(order))
    text = table["word"].combine_chunks()
    if len(text) == 0:
        return []
    new_word = np.r_[
        True, pc.not_equal(text.slice(1), text.slice(0, len(text) - 1)).to_numpy(zero_copy_only=False)
    ]
    word_of_row = np.cumsum(new_word) - 1
    firsts = np.flatnonzero(new_word)
    budget = max(1, ACCUMULATOR_BYTES // (SUMS_PER_ROW * 8 * resampling.replicates))
    ends = np.r_[firsts[1:], len(rows)]
    slice_ids = table["slice_id"].to_numpy()
    blocks, start = [], 0
    while start < len(firsts):
        # the words whose rows fit in the budget, and at least one
        stop = max(start + 1, int(np.searchsorted(ends, firsts[start] + budget, "right")))
        a, b = firsts[start], ends[stop - 1]
        local = word_of_row[a:b] - word_of_row[a]
        blocks.append(
            WordBlock(
                words=text.take(pa.array(firsts[start:stop])),
                slice_id=slice_ids[a:b],
                word=local,
                source_row=rows[a:b],
                corpus_row=(firsts[start:stop] - a)[local],
                n_slices=n_slices,
            )
        )
        start = stop
    return blocks


class BlockSums:
    """The replicate sums of one block's rows."""

    def __init__(self, block: WordBlock, resampling: Resampling):
        self.block = block
        self.sums = ReplicateSums(SUMS_PER_ROW * len(block), resampling)

    def add(self, obs: Observations) -> None:
        """Add a chunk's entries that belong to the block."""
        entries, rows = self.block.rows_of(obs)
        stacked = np.concatenate([rows * SUMS_PER_ROW + k for k in range(SUMS_PER_ROW)])
        values = np.concatenate([obs.score[entries], obs.count[entries], obs.mass[entries]])
        self.sums.add(stacked, np.tile(obs.doc[entries], SUMS_PER_ROW), values, obs.keys)

    def part(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, occurrences, mass) replicates (len(rows), B) of ``rows``."""
        r = self.sums.replicates
        return tuple(r[rows * SUMS_PER_ROW + k] for k in range(SUMS_PER_ROW))


class MassSums:
    """Replicates of each slice's absolute score and of each (slice, category)'s.

    Rows: slice ids, then ``n_slices + slice_id * n_categories + category``.
    """

    def __init__(self, n_slices: int, n_categories: int, resampling: Resampling):
        self.n_slices, self.n_categories = n_slices, n_categories
        self.sums = ReplicateSums(n_slices * (1 + n_categories), resampling)

    def add(self, obs: Observations, categories: CategoryEntries | None) -> None:
        """Add a chunk's absolute scores (and its lexicon entries)."""
        row, doc, mass = obs.slice_id, obs.doc, obs.mass
        if categories is not None:
            row = np.concatenate([row, self.n_slices + categories.row])
            doc = np.concatenate([doc, categories.doc])
            mass = np.concatenate([mass, categories.mass])
        self.sums.add(row, doc, mass, obs.keys)

    @property
    def slices(self) -> np.ndarray:
        """(slices, B) each slice's absolute score per replicate."""
        return self.sums.replicates[: self.n_slices]

    @property
    def categories(self) -> np.ndarray:
        """(slices, categories, B) the absolute score of each category's words per replicate."""
        return self.sums.replicates[self.n_slices :].reshape(self.n_slices, self.n_categories, -1)


@dataclass(frozen=True)
class WordIntervals:
    """Intervals and p-values of a block's rows (arrays of len(block), nan where not computed)."""

    mean_low: np.ndarray
    mean_high: np.ndarray
    share_low: np.ndarray
    share_high: np.ndarray
    p_value: np.ndarray


def word_intervals(sums: BlockSums, slice_mass: np.ndarray, testable: np.ndarray) -> WordIntervals:
    """The percentile intervals of each row's mean score and share, and its p-value.

    The p-value of a corpus row tests mean == 0; of a slice row, that its mean equals the mean of
    the same word outside the slice (the corpus less the slice, in each replicate). Rows not
    ``testable`` get no p-value.

    Args:
        slice_mass: (slices, B) each slice's absolute score per replicate (``MassSums.slices``).
        testable: (rows,) bool.
    """
    block, level = sums.block, sums.sums.resampling.level
    n = len(block)
    out = {name: np.full(n, np.nan) for name in WordIntervals.__dataclass_fields__}
    for a in range(0, n, ROWS_PER_INTERVAL):
        rows = np.arange(a, min(a + ROWS_PER_INTERVAL, n))
        score, count, mass = sums.part(rows)
        mean = ratio_replicates(score, count)
        out["mean_low"][rows], out["mean_high"][rows] = percentile_interval(mean, level)
        share = ratio_replicates(mass, slice_mass[block.slice_id[rows]])
        out["share_low"][rows], out["share_high"][rows] = percentile_interval(share, level)
        corpus_score, corpus_count, _ = sums.part(block.corpus_row[rows])
        is_corpus = (block.slice_id[rows] == 0)[:, None]
        outside = ratio_replicates(corpus_score - score, corpus_count - count)
        tested = np.where(is_corpus, mean, mean - outside)
        out["p_value"][rows] = np.where(testable[rows], p_values(tested), np.nan)
    return WordIntervals(**out)
