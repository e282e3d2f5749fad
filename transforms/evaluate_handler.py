"""The RunInference ModelHandler of ``evaluate``: one model per worker, faithfulness per record.

Thin, like the annotate handler: each RunInference batch goes to the run's task
(``normxlogit.tasks``). The text task tokenizes the texts and resolves their gold labels, then
``normxlogit.evaluation.evaluate_encoded`` runs ``evaluate_batch`` (every method, every masked
variant) over length buckets with the engine's split-and-retry; the response task checks each
record's response, encodes (or generates) the pairs and measures them
(``normxlogit.response_evaluation``). A record either cannot take becomes a dead letter with the
task's reason (``model_error`` for a text the model fails on alone). Progress lines
(``transforms.progress``, "docs evaluated") count each bucket as it is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.metrics import Metrics

from normxlogit.engine import MODEL_ERROR, BatchEngine, EngineOptions
from normxlogit.errors import RecordError
from normxlogit.evaluation import EvaluationOptions
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.response_evaluation import ResponseEvaluationOptions
from normxlogit.response_spec import ResponseSpec
from normxlogit.tasks import Task, make_task
from normxlogit.transforms.counters import DOCS_EVALUATED, NAMESPACE
from normxlogit.transforms.model_handler import EngineHandler, ModelSpec
from normxlogit.transforms.progress import Progress
from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING


@dataclass(frozen=True)
class EvaluateHandlerOptions:
    """Per-record options of the handler.

    Attributes:
        evaluation: methods, seed, Integrated Gradients steps, token budget.
        max_length: truncate longer texts to this many tokens (None: the model's limit).
        docs_per_batch: records per RunInference batch (the pipeline reads records in batches of it).
        response: response mode (a prompt and its response per record, no label): where each
            record's response comes from; None: the paper's metrics on a labelled corpus.
        response_evaluation: what response mode compares (methods, seed, token budget).
        input_bytes: total size of the input files, when every one is uncompressed text or JSON
            Lines (progress lines then give the share evaluated); None otherwise.
    """

    evaluation: EvaluationOptions
    max_length: int | None = None
    docs_per_batch: int = 32
    response: ResponseSpec | None = None
    response_evaluation: ResponseEvaluationOptions | None = None
    input_bytes: int | None = None

    def task(self) -> Task:
        """What the run does with each record (``normxlogit.tasks``)."""
        return make_task(
            self.response,
            MISSING,
            evaluation=self.evaluation,
            response_evaluation=self.response_evaluation,
        )


@dataclass
class EvaluatedDoc:
    """RunInference's output for one record: its faithfulness, or its dead letter."""

    record: SourceRecord
    result: DocFaithfulness | None = None
    error: DeadLetter | None = None


class FaithfulnessModelHandler(EngineHandler[EvaluatedDoc]):
    """Loads a Hugging Face model once per worker and measures attribution faithfulness.

    Its input is pre-batched (``with_no_batching``), as the annotate handler's: each
    ``run_inference`` call gets one batch of ``docs_per_batch`` records and returns one
    ``EvaluatedDoc`` per record."""

    def __init__(self, spec: ModelSpec, options: EvaluateHandlerOptions):
        super().__init__(spec, EngineOptions(max_length=options.max_length))
        self._options = options
        self._task = options.task()
        self._docs = Metrics.counter(NAMESPACE, DOCS_EVALUATED)
        self._failed = Metrics.counter(NAMESPACE, "model_errors")
        self._progress = Progress(options.input_bytes, verb="evaluated")

    def run_inference(
        self,
        batch: Sequence[SourceRecord],
        model: BatchEngine,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[EvaluatedDoc]:
        """Evaluate one RunInference batch; returns one ``EvaluatedDoc`` per record, in order."""
        self._progress.start()
        progress = self._progress.batch(batch)
        items, results = self._task.evaluate(model, batch, self.bucket_counter(model, progress, batch))
        out = []
        tokens = 0
        for record, item, result in zip(batch, items, results):
            if isinstance(result, RecordError):
                out.append(EvaluatedDoc(record, error=DeadLetter.of(record, result.reason, str(result))))
            else:
                out.append(EvaluatedDoc(record, result=result))
                tokens += len(item)
        evaluated = sum(1 for d in out if d.result is not None)
        self._docs.inc(evaluated)
        self._failed.inc(sum(1 for d in out if d.error is not None and d.error.reason == MODEL_ERROR))
        progress.finish(evaluated, tokens)
        return out
