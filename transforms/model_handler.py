"""The RunInference ModelHandler: one model per worker process, batches scored with normxlogit.

The handler is thin. Each RunInference batch of records is tokenized (per-record problems become
dead letters), sorted by token length and cut into sub-batches that fit a padded-token budget
(length bucketing, so padding stays small), and each sub-batch is scored with one forward pass by
``normxlogit.score_batch``. A sub-batch that fails in the model (out of memory, say) is split in
half and retried; a single text that still fails becomes a ``model_error`` dead letter. With
``large_model`` / ``model_copies`` the model and that batch logic (``BatchScorer``) live in one
shared process per copy on each worker machine, and batches are sent to it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from normxlogit import RecordError, ScoringModel, encode_batch, load_model, score_batch
from normxlogit.result import TextAttribution, describe
from normxlogit.scoring import plan_batches
from normxlogit.transforms.records import DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

NAMESPACE = "normxlogit"
MODEL_ERROR = "model_error"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """How workers load the model: plain values, so the handler pickles to any runner."""

    path: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    padding_side: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False


@dataclass(frozen=True)
class ScoringOptions:
    """What to attribute and how to batch.

    Attributes:
        max_length: truncate longer texts to this many tokens (None: the model's limit).
        target: one target for every record (class name/id or token); None: the prediction.
        foil: a contrastive foil for every record.
        layers: layer numbers for layer-wise scores.
        batch_tokens: padded tokens per forward pass.
        docs_per_batch: records per RunInference batch; larger batches bucket lengths better.
    """

    max_length: int | None = None
    target: str | None = None
    foil: str | None = None
    layers: tuple[int, ...] = ()
    batch_tokens: int = 8192
    docs_per_batch: int = 256


@dataclass
class ScoredDoc:
    """RunInference's output for one record: its attribution, or its dead letter.

    ``padded_length`` is the width of the padded row the record was scored in (the longest text
    of its forward pass); summed over records it is the positions the model ran, padding included.
    """

    record: SourceRecord
    result: TextAttribution | None = None
    error: DeadLetter | None = None
    padded_length: int = 0


@dataclass
class _Progress:
    """Rate-limited progress lines on stderr for local runs."""

    every_s: float = 10.0
    docs: int = 0
    tokens: int = 0
    started: float | None = None
    last: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        """Start the clock at the first batch, so model loading does not count."""
        if self.started is None:
            self.started = time.monotonic()

    def add(self, docs: int, tokens: int) -> None:
        self.docs += docs
        self.tokens += tokens
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.tokens / max(now - self.started, 1e-9)
            print(
                f"normxlogit: {self.docs:,} docs, {self.tokens:,} tokens scored "
                f"({rate:,.0f} tokens/s in this worker)",
                file=sys.stderr,
                flush=True,
            )


class BatchScorer:
    """A loaded model with the batch logic around it: encode, bucket by length, score, split on failure.

    With ``--large-model`` / ``--model-copies`` Beam keeps the loaded model in a separate process
    and hands ``run_inference`` a proxy that forwards public method calls, not attributes. So
    everything that touches the model happens inside one call, ``score``, and only records and
    results (plain picklable values) cross the process boundary.
    """

    def __init__(self, model: ScoringModel, options: ScoringOptions):
        self._model = model
        self._options = options

    def score(self, batch: list[SourceRecord]) -> list[ScoredDoc]:
        """Score one RunInference batch; returns one ``ScoredDoc`` per record, in order."""
        model, opts = self._model, self._options
        limit = min(opts.max_length or model.max_length, model.max_length)
        out = [ScoredDoc(record) for record in batch]
        results = encode_batch(
            [record.text for record in batch],
            model.tokenizer,
            model.model,
            model.adapter,
            max_length=limit,
            targets=[_target_of(record, opts) for record in batch],
            foil=opts.foil,
        )
        encoded = {}
        for i, (record, result) in enumerate(zip(batch, results)):
            if isinstance(result, RecordError):
                out[i].error = DeadLetter.of(record, result.reason, str(result))
            else:
                encoded[i] = result
        keys = list(encoded)
        for group in plan_batches([len(encoded[k]) for k in keys], opts.batch_tokens):
            self._score_group([keys[g] for g in group], encoded, out)
        return out

    def _score_group(self, idx: list[int], encoded, out: list[ScoredDoc]) -> None:
        """Score a sub-batch; on failure split it and retry, down to single texts."""
        model = self._model
        try:
            atts = score_batch(model, [encoded[i] for i in idx], self._options.layers)
        except Exception as err:  # noqa: BLE001 - any model failure must not lose records
            if len(idx) > 1:
                half = len(idx) // 2
                self._score_group(idx[:half], encoded, out)
                self._score_group(idx[half:], encoded, out)
                return
            _log.warning("model failed on %s: %r", out[idx[0]].record.doc_id, err)
            out[idx[0]].error = DeadLetter.of(out[idx[0]].record, MODEL_ERROR, f"{type(err).__name__}: {err}")
            return
        width = max(len(encoded[i]) for i in idx)
        for i, att in zip(idx, atts):
            out[i].result = describe(model, out[i].record.text, encoded[i], att, self._options.layers)
            out[i].padded_length = width


class NormXLogitModelHandler(ModelHandler[SourceRecord, ScoredDoc, ScoringModel]):
    """Loads a Hugging Face model once per worker and scores batches with NormXLogit."""

    def __init__(
        self,
        spec: ModelSpec,
        options: ScoringOptions,
        *,
        model_copies: int | None = None,
        large_model: bool = False,
    ):
        super().__init__(
            # Fixed-size batches: Beam's adaptive sizing would start at one document, and
            # length bucketing inside a batch needs many documents to sort.
            min_batch_size=options.docs_per_batch,
            max_batch_size=options.docs_per_batch,
            model_copies=model_copies,
            large_model=large_model,
        )
        self._spec = spec
        self._options = options
        self._docs = Metrics.counter(NAMESPACE, "docs_annotated")
        self._tokens = Metrics.counter(NAMESPACE, "tokens")
        self._padded = Metrics.counter(NAMESPACE, "padded_tokens")
        self._failed = Metrics.counter(NAMESPACE, "model_errors")
        self._progress = _Progress()

    def load_model(self) -> ScoringModel | BatchScorer:
        """The model; wrapped in a ``BatchScorer`` when Beam shares it across processes."""
        s = self._spec
        model = load_model(
            s.path,
            device=s.device,
            dtype=s.dtype,
            padding_side=s.padding_side,
            trust_remote_code=s.trust_remote_code,
            allow_pickle=s.allow_pickle,
            hash_weights=False,
        )
        return BatchScorer(model, self._options) if self.share_model_across_processes() else model

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def run_inference(
        self,
        batch: Sequence[SourceRecord],
        model: ScoringModel | BatchScorer,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[ScoredDoc]:
        """Score one RunInference batch; returns one ``ScoredDoc`` per record, in order.

        ``model`` is this process's ``ScoringModel``, or a proxy of a shared ``BatchScorer``.
        """
        self._progress.start()
        scorer = BatchScorer(model, self._options) if isinstance(model, ScoringModel) else model
        out = scorer.score(list(batch))
        done = [d for d in out if d.result is not None]
        tokens = sum(len(d.result.encoded) for d in done)
        self._docs.inc(len(done))
        self._tokens.inc(tokens)
        self._padded.inc(sum(d.padded_length for d in done))
        self._failed.inc(sum(1 for d in out if d.error is not None and d.error.reason == MODEL_ERROR))
        self._progress.add(len(done), tokens)
        return out


def _target_of(record: SourceRecord, opts: ScoringOptions) -> Any:
    """A record's own target (``--target-field``) wins over the run-wide ``--target``."""
    if record.target is None or record.target is MISSING:
        return opts.target
    return record.target
