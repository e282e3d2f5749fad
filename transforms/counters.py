"""The Beam counters a run keeps, and the totals a runner reports of them.

Each counter is updated by the step where records change hands: a reader as it finishes a file
(``files_read``) and parses records (``records_read``, and ``dead_letter_<reason>`` for the records
it cannot parse), the validators (``skipped_empty``), the model step (``docs_annotated`` or
``docs_evaluated``, ``tokens``, ``padded_tokens``) and the dead-letter writer (``dead_letters``,
every dead letter handed to it). Counters travel beside the data, not in it: a runner that drops
elements still reports what the steps before the loss counted, which is how the launcher
(``pipeline/reconcile.py``) finds records that never reached a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "normxlogit"
FILES_READ = "files_read"
RECORDS_READ = "records_read"
READ_DEAD_LETTER = "dead_letter_"  # prefix: the readers' counters per dead-letter reason
SKIPPED_EMPTY = "skipped_empty"
DOCS_ANNOTATED = "docs_annotated"
DOCS_EVALUATED = "docs_evaluated"
TOKENS = "tokens"
PADDED_TOKENS = "padded_tokens"
DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True)
class RunnerCounts:
    """The runner's totals of the ``normxlogit`` counters, summed over the steps that kept them.

    Attributes:
        totals: counter name -> total; a counter no step updated is absent (read as 0).
        committed: the totals are committed values (each bundle counted once, however often it was
            retried); False when the runner keeps attempted values only.
    """

    totals: dict[str, int]
    committed: bool = True

    def __getitem__(self, name: str) -> int:
        return self.totals.get(name, 0)

    @property
    def records_read(self) -> int:
        """Records the readers met: parsed ones and those they could not parse."""
        unparsed = sum(n for name, n in self.totals.items() if name.startswith(READ_DEAD_LETTER))
        return self[RECORDS_READ] + unparsed

    @classmethod
    def from_result(cls, result: Any) -> RunnerCounts | None:
        """The counters of a finished ``PipelineResult``; None when the runner reports none.

        Committed values are used where the runner keeps them (they count each bundle once, however
        often it was retried), attempted ones elsewhere.
        """
        from apache_beam.metrics.metric import MetricsFilter

        try:
            counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
        except Exception:  # noqa: BLE001  (no metrics API, or a job server without metrics: none)
            return None
        totals: dict[str, int] = {}
        committed = True
        for counter in counters:
            try:
                value = counter.committed
            except Exception:  # noqa: BLE001  (runners that keep no committed values raise here)
                value = None
            if value is None:
                committed, value = False, counter.attempted
            name = counter.key.metric.name
            totals[name] = totals.get(name, 0) + int(value or 0)
        return cls(totals, committed) if totals else None
