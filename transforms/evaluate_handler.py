"""The RunInference ModelHandler of ``evaluate``: one model per worker, faithfulness per record.

Thin, like the annotate handler: the batch engine tokenizes each RunInference batch, gold labels
are resolved (per-record problems become dead letters), and ``normxlogit.evaluation.evaluate_encoded``
runs ``evaluate_batch`` (every method, every masked variant) over length buckets with the engine's
split-and-retry, so a text the model fails on alone becomes a ``model_error`` dead letter. In
response mode ``normxlogit.response_evaluation`` encodes (or generates) each record's response and
measures it the same way, with the core's reasons for records it cannot take. Progress lines
(``transforms.progress``, "docs evaluated") count each bucket as it is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.metrics import Metrics

from normxlogit.encoding import RecordError, resolve_target
from normxlogit.engine import MODEL_ERROR, BatchEngine, EngineOptions
from normxlogit.evaluation import EvaluationOptions, evaluate_encoded
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.loading import ScoringModel
from normxlogit.response_evaluation import ResponseEvaluationOptions, encode_pairs, evaluate_response_items
from normxlogit.transforms.counters import DOCS_EVALUATED, NAMESPACE
from normxlogit.transforms.model_handler import EngineHandler, ModelSpec
from normxlogit.transforms.progress import Progress
from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

# resolve_target's reasons, renamed for a gold label.
_LABEL_REASONS = {"unknown_target": "unknown_label", "multi_token_target": "multi_token_label"}


@dataclass(frozen=True)
class EvaluateHandlerOptions:
    """Per-record options of the handler.

    Attributes:
        evaluation: methods, seed, Integrated Gradients steps, token budget.
        max_length: truncate longer texts to this many tokens (None: the model's limit).
        docs_per_batch: records per RunInference batch (the pipeline reads records in batches of it).
        responses: response mode (a prompt and its response per record, no label); None: the
            paper's metrics on a labelled corpus.
        input_bytes: total size of the input files, when every one is uncompressed text or JSON
            Lines (progress lines then give the share evaluated); None otherwise.
    """

    evaluation: EvaluationOptions
    max_length: int | None = None
    docs_per_batch: int = 32
    responses: ResponseEvaluationOptions | None = None
    input_bytes: int | None = None


@dataclass
class EvaluatedDoc:
    """RunInference's output for one record: its faithfulness, or its dead letter."""

    record: SourceRecord
    result: DocFaithfulness | None = None
    error: DeadLetter | None = None


def gold_label(record: SourceRecord, sm: ScoringModel) -> int:
    """The record's gold label as a class id (classifiers) or a single token id (causal LMs).

    Raises:
        RecordError: ``no_label`` (missing, null or blank), ``unknown_label``, ``multi_token_label``.
    """
    value = record.target
    if value is MISSING or value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError("no_label", "the record has no gold label (missing, null or blank label field)")
    try:
        return int(resolve_target(value, sm.model, sm.tokenizer, sm.adapter))
    except RecordError as err:
        raise RecordError(_LABEL_REASONS.get(err.reason, err.reason), f"gold label: {err}") from err


class FaithfulnessModelHandler(EngineHandler[EvaluatedDoc]):
    """Loads a Hugging Face model once per worker and measures attribution faithfulness.

    Its input is pre-batched (``with_no_batching``), as the annotate handler's: each
    ``run_inference`` call gets one batch of ``docs_per_batch`` records and returns one
    ``EvaluatedDoc`` per record."""

    def __init__(self, spec: ModelSpec, options: EvaluateHandlerOptions):
        super().__init__(spec, EngineOptions(max_length=options.max_length))
        self._options = options
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
        on_bucket = self.bucket_counter(model, progress, batch)
        opts, ids = self._options, [r.doc_id for r in batch]
        if opts.responses is None:
            items, golds = self._encode_labelled(batch, model)
            results = evaluate_encoded(model, items, golds, ids, opts.evaluation, on_bucket)
        else:
            items = self._encode_responses(batch, model, opts.responses)
            results = evaluate_response_items(model, items, ids, opts.responses, on_bucket)
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

    @staticmethod
    def _encode_labelled(batch: Sequence[SourceRecord], model: BatchEngine) -> tuple[list, list[int | None]]:
        """The records' encodings (or the ``RecordError`` of their text or gold label) and gold labels."""
        items = model.encode([r.text for r in batch])
        golds: list[int | None] = [None] * len(batch)
        for i, record in enumerate(batch):
            if not isinstance(items[i], RecordError):
                try:
                    golds[i] = gold_label(record, model.model)
                except RecordError as err:
                    items[i] = err
        return items, golds

    @staticmethod
    def _encode_responses(
        batch: Sequence[SourceRecord], model: BatchEngine, opts: ResponseEvaluationOptions
    ) -> list:
        responses = [r.messages if opts.source == "messages" else r.response for r in batch]
        return encode_pairs(model, [r.text for r in batch], responses, opts)
