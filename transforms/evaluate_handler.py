"""The RunInference ModelHandler of ``evaluate``: one model per worker, faithfulness per record.

Thin, like the annotate handler: each RunInference batch of records is tokenized and its gold
labels resolved (per-record problems become dead letters), cut by length into sub-batches that fit
a padded-token budget, and each sub-batch goes to ``normxlogit.evaluation.evaluate_batch``, which
scores every method and every masked variant. A sub-batch that fails in the model is split in
half and retried; a single text that still fails becomes a ``model_error`` dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from normxlogit import RecordError, ScoringModel, encode_text, load_model
from normxlogit.encoding import resolve_target
from normxlogit.evaluation import EvaluationOptions, evaluate_batch
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.scoring import plan_batches
from normxlogit.transforms.model_handler import MODEL_ERROR, NAMESPACE, ModelSpec
from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

# resolve_target's reasons, renamed for a gold label.
_LABEL_REASONS = {"unknown_target": "unknown_label", "multi_token_target": "multi_token_label"}
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateHandlerOptions:
    """Per-record options of the handler.

    Attributes:
        evaluation: methods, seed, Integrated Gradients steps, token budget.
        max_length: truncate longer texts to this many tokens (None: the model's limit).
        docs_per_batch: records per RunInference batch.
    """

    evaluation: EvaluationOptions
    max_length: int | None = None
    docs_per_batch: int = 32


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


class FaithfulnessModelHandler(ModelHandler[SourceRecord, EvaluatedDoc, ScoringModel]):
    """Loads a Hugging Face model once per worker and measures attribution faithfulness."""

    def __init__(self, spec: ModelSpec, options: EvaluateHandlerOptions):
        super().__init__(min_batch_size=options.docs_per_batch, max_batch_size=options.docs_per_batch)
        self._spec = spec
        self._options = options
        self._docs = Metrics.counter(NAMESPACE, "docs_evaluated")
        self._failed = Metrics.counter(NAMESPACE, "model_errors")

    def load_model(self) -> ScoringModel:
        """The model, loaded offline on this worker."""
        s = self._spec
        return load_model(
            s.path,
            device=s.device,
            dtype=s.dtype,
            padding_side=s.padding_side,
            trust_remote_code=s.trust_remote_code,
            allow_pickle=s.allow_pickle,
            hash_weights=False,
        )

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def run_inference(
        self,
        batch: Sequence[SourceRecord],
        model: ScoringModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[EvaluatedDoc]:
        """Evaluate one RunInference batch; returns one ``EvaluatedDoc`` per record, in order."""
        limit = min(self._options.max_length or model.max_length, model.max_length)
        out = [EvaluatedDoc(record) for record in batch]
        encoded, golds = {}, {}
        for i, record in enumerate(batch):
            try:
                encoded[i] = encode_text(
                    record.text, model.tokenizer, model.model, model.adapter, max_length=limit
                )
                golds[i] = gold_label(record, model)
            except RecordError as err:
                encoded.pop(i, None)
                out[i].error = DeadLetter.of(record, err.reason, str(err))
        keys = list(encoded)
        budget = self._options.evaluation.batch_tokens
        for group in plan_batches([len(encoded[k]) for k in keys], budget):
            self._evaluate_group(model, [keys[g] for g in group], encoded, golds, out)
        self._docs.inc(sum(1 for d in out if d.result is not None))
        return out

    def _evaluate_group(self, model: ScoringModel, idx: list[int], encoded, golds, out) -> None:
        """Evaluate a sub-batch; on failure split it and retry, down to single texts."""
        try:
            results = evaluate_batch(
                model,
                [encoded[i] for i in idx],
                [golds[i] for i in idx],
                [out[i].record.doc_id for i in idx],
                self._options.evaluation,
            )
        except Exception as err:  # noqa: BLE001 - any model failure must not lose records
            if len(idx) > 1:
                half = len(idx) // 2
                self._evaluate_group(model, idx[:half], encoded, golds, out)
                self._evaluate_group(model, idx[half:], encoded, golds, out)
                return
            _log.warning("model failed on %s: %r", out[idx[0]].record.doc_id, err)
            self._failed.inc()
            out[idx[0]].error = DeadLetter.of(out[idx[0]].record, MODEL_ERROR, f"{type(err).__name__}: {err}")
            return
        for i, result in zip(idx, results):
            out[i].result = result
