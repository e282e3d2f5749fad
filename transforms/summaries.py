"""Corpus summaries as a Beam combine: ``OUT/summaries/groups.jsonl``, one JSON line per group.

AnnotatedBatch -> SummaryStats of the batch (Arrow group-bys) for every group its documents are
                  in: the corpus and each prediction, target and source
               -> CombineGlobally(SummaryStatsCombineFn) (bounded, see ``summary_stats``)
               -> one summary per group -> summaries/groups.jsonl

Each line holds a group's counts, a fixed-bin histogram of token scores and its top words and
tokens by total and by mean score (``summary_stats.summarize_groups``), without special tokens and,
unless ``--include-template``, without the tokens a chat template wrote. A run that annotated no
document writes no file (as for dead letters: object stores reject empty uploads).
"""

from __future__ import annotations

import json

import apache_beam as beam

from normxlogit.transforms.layout import GROUPS
from normxlogit.transforms.summary_stats import (
    DEFAULT_CAPACITY,
    SummaryStats,
    batch_stats,
    merge_stats,
    summarize_groups,
)
from normxlogit.transforms.writers import join

SUMMARIES_DIR = GROUPS.folder
GROUPS_FILE = GROUPS.stem


class SummaryStatsCombineFn(beam.CombineFn):
    """Combine partial ``SummaryStats`` (of any groups) into one bounded ``SummaryStats``.

    The accumulator is a list of partials, merged (one concat and group-by for all of them) once
    the partials added since the last merge hold as many vocabulary rows as the merged one (at
    least ``2 * capacity``), and always before it leaves the worker (``compact``): merging each
    small batch partial into the large accumulator would redo the group-by of the whole
    vocabulary once per batch.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        super().__init__()
        self._capacity = capacity

    def create_accumulator(self) -> list[SummaryStats]:
        return []

    def add_input(self, accumulator: list[SummaryStats], element: SummaryStats) -> list[SummaryStats]:
        accumulator.append(element)
        pending = sum(part.vocab.num_rows for part in accumulator[1:])
        if pending >= max(accumulator[0].vocab.num_rows, 2 * self._capacity):
            accumulator[:] = [merge_stats(accumulator, self._capacity)]
        return accumulator

    def merge_accumulators(self, accumulators) -> list[SummaryStats]:
        return [merge_stats([part for acc in accumulators for part in acc], self._capacity)]

    def compact(self, accumulator: list[SummaryStats]) -> list[SummaryStats]:
        return [merge_stats(accumulator, self._capacity)]

    def extract_output(self, accumulator: list[SummaryStats]) -> SummaryStats:
        return merge_stats(accumulator, self._capacity)


class WriteSummaries(beam.PTransform):
    """AnnotatedBatches -> ``OUT/summaries/groups.jsonl``; returns the finalised file name.

    Args:
        output: the run's output folder.
        top_k: entries per top-words/top-tokens list.
        capacity: vocabulary entries kept per group (see ``summary_stats``).
        include_template: count the tokens a chat template wrote (left out by default, as special
            tokens are).
    """

    def __init__(
        self, output: str, top_k: int = 20, capacity: int = DEFAULT_CAPACITY, include_template: bool = False
    ):
        super().__init__()
        self._prefix = join(output, SUMMARIES_DIR, GROUPS_FILE)
        self._top_k = top_k
        self._capacity = capacity
        self._include_template = include_template

    def expand(self, batches):
        k = self._top_k
        return (
            batches
            | "BatchStats"
            >> beam.Map(
                lambda b, c=self._capacity, t=self._include_template: batch_stats(b.rows, b.documents, c, t)
            )
            # Every group in one accumulator: a batch's statistics stay one set of Arrow tables
            # (merged with one group-by) instead of a partial per group.
            | "CombineGroups" >> beam.CombineGlobally(SummaryStatsCombineFn(self._capacity))
            | "Summarize" >> beam.FlatMap(summarize_groups, k)
            | "ToJson" >> beam.Map(lambda s: json.dumps(s, ensure_ascii=False, sort_keys=True))
            | "WriteJsonl"
            >> beam.io.WriteToText(
                self._prefix, file_name_suffix=".jsonl", shard_name_template="", skip_if_empty=True
            )
        )
