"""Corpus summaries as a Beam combine: ``OUT/summaries/groups.jsonl``, one JSON line per group.

scored docs -> (group, DocContribution) for the corpus, the doc's prediction, target and source
            -> CombinePerKey(GroupStatsCombineFn) (bounded, see ``summary_stats``)
            -> one summary per group -> summaries/groups.jsonl

Each line holds a group's counts, a fixed-bin histogram of token scores and its top words and
tokens by total and by mean score (``summary_stats.summarize_group``). A run that scored no
document writes no file (as for dead letters: object stores reject empty uploads).
"""

from __future__ import annotations

import json

import apache_beam as beam

from normxlogit.transforms.model_handler import ScoredDoc
from normxlogit.transforms.summary_stats import (
    DEFAULT_CAPACITY,
    DocContribution,
    GroupStats,
    add_doc,
    doc_contribution,
    group_keys,
    merge_stats,
    summarize_group,
)
from normxlogit.transforms.writers import join

SUMMARIES_DIR = "summaries"
GROUPS_FILE = "groups"


def keyed_contributions(doc: ScoredDoc):
    """Yield ``((kind, group), DocContribution)`` for every group of a scored document."""
    if doc.result is None:
        return
    res, enc = doc.result, doc.result.encoded
    contribution = doc_contribution(
        enc.tokens,
        enc.offsets[:, 0],
        enc.offsets[:, 1],
        enc.word_index,
        enc.special,
        res.attribution.score,
        text=doc.record.text,
    )
    for key in group_keys(res.prediction, res.target, doc.record.source):
        yield key, contribution


class GroupStatsCombineFn(beam.CombineFn):
    """Combine ``DocContribution``s into one bounded ``GroupStats`` per key."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        super().__init__()
        self._capacity = capacity

    def create_accumulator(self) -> GroupStats:
        return GroupStats()

    def add_input(self, accumulator: GroupStats, element: DocContribution) -> GroupStats:
        return add_doc(accumulator, element, self._capacity)

    def merge_accumulators(self, accumulators) -> GroupStats:
        return merge_stats(list(accumulators), self._capacity)

    def extract_output(self, accumulator: GroupStats) -> GroupStats:
        return accumulator


class WriteSummaries(beam.PTransform):
    """Scored docs -> ``OUT/summaries/groups.jsonl``; returns the finalised file name.

    Args:
        output: the run's output folder.
        top_k: entries per top-words/top-tokens list.
        capacity: vocabulary entries kept per group (see ``summary_stats``).
    """

    def __init__(self, output: str, top_k: int = 20, capacity: int = DEFAULT_CAPACITY):
        super().__init__()
        self._prefix = join(output, SUMMARIES_DIR, GROUPS_FILE)
        self._top_k = top_k
        self._capacity = capacity

    def expand(self, scored):
        k = self._top_k
        return (
            scored
            | "Contributions" >> beam.FlatMap(keyed_contributions)
            | "CombineGroups" >> beam.CombinePerKey(GroupStatsCombineFn(self._capacity))
            | "Summarize" >> beam.MapTuple(lambda key, stats: summarize_group(key[0], key[1], stats, k))
            | "ToJson" >> beam.Map(lambda s: json.dumps(s, ensure_ascii=False, sort_keys=True))
            | "WriteJsonl"
            >> beam.io.WriteToText(
                self._prefix, file_name_suffix=".jsonl", shard_name_template="", skip_if_empty=True
            )
        )
