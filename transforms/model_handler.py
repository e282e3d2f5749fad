"""The RunInference ModelHandler of ``annotate``: one model per worker, batches scored by the batch engine.

The handler is thin: ``load_model`` returns a ``normxlogit.engine.BatchEngine`` (encode, plan length
buckets, one forward pass per bucket, split and retry on failure), ``run_inference`` hands it the
batch's texts and targets and turns its columnar results into one ``AnnotatedBatch``: an Arrow
record batch of token rows, one of document rows, and the dead letters of the records that could
not be scored. With ``large_model`` / ``model_copies`` the engine lives in one shared process per
copy on each worker machine and the handler holds a proxy to it.
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

from normxlogit.engine import MODEL_ERROR, BatchEngine, EngineOptions
from normxlogit.loading import load_model
from normxlogit.schema import document_rows, token_rows
from normxlogit.transforms.records import AnnotatedBatch, DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

NAMESPACE = "normxlogit"
MISSING_TARGET = "missing_target"
_MISSING_TARGET_MESSAGE = (
    "the record's target field is missing, null or blank; --target-field needs a target for every "
    "record (the prediction is never used in its place)"
)
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
        targets_from_records: each record names its own target (``--target-field``); a record
            whose target is missing, null or blank is a ``missing_target`` dead letter, never
            given the prediction instead.
        keep_fields: record fields copied into the documents table.
    """

    max_length: int | None = None
    target: str | None = None
    foil: str | None = None
    layers: tuple[int, ...] = ()
    batch_tokens: int = 8192
    docs_per_batch: int = 256
    targets_from_records: bool = False
    keep_fields: tuple[str, ...] = ()

    def engine_options(self) -> EngineOptions:
        """The batch engine's options (everything but the RunInference batch size)."""
        return EngineOptions(self.max_length, self.target, self.foil, self.layers, self.batch_tokens)


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


def load_engine(spec: ModelSpec, options: EngineOptions) -> BatchEngine:
    """The batch engine around the model ``spec`` names, loaded offline on this worker."""
    model = load_model(
        spec.path,
        device=spec.device,
        dtype=spec.dtype,
        padding_side=spec.padding_side,
        trust_remote_code=spec.trust_remote_code,
        allow_pickle=spec.allow_pickle,
        hash_weights=False,
    )
    return BatchEngine(model, options)


class NormXLogitModelHandler(ModelHandler[SourceRecord, AnnotatedBatch, BatchEngine]):
    """Loads a Hugging Face model once per worker and scores batches with NormXLogit.

    Its input is pre-batched (``with_no_batching``): the pipeline batches records before spreading
    the batches over workers, so each ``run_inference`` call gets one batch and returns one
    ``AnnotatedBatch``.
    """

    def __init__(
        self,
        spec: ModelSpec,
        options: ScoringOptions,
        *,
        model_copies: int | None = None,
        large_model: bool = False,
    ):
        super().__init__(model_copies=model_copies, large_model=large_model)
        self._spec = spec
        self._options = options
        self._docs = Metrics.counter(NAMESPACE, "docs_annotated")
        self._tokens = Metrics.counter(NAMESPACE, "tokens")
        self._padded = Metrics.counter(NAMESPACE, "padded_tokens")
        self._failed = Metrics.counter(NAMESPACE, "model_errors")
        self._progress = _Progress()

    def load_model(self) -> BatchEngine:
        """The batch engine (an object, also when Beam shares it across processes)."""
        return load_engine(self._spec, self._options.engine_options())

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def get_num_bytes(self, batch: Sequence[SourceRecord]) -> int:
        """Text bytes of the batch (Beam's default pickles the whole batch just to measure it)."""
        return sum(len(r.text) for r in batch)

    def run_inference(
        self,
        batch: Sequence[SourceRecord],
        model: BatchEngine,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[AnnotatedBatch]:
        """Score one batch of records; returns a one-element list: its ``AnnotatedBatch``."""
        self._progress.start()
        opts = self._options
        untargeted = [opts.targets_from_records and _no_target(r.target) for r in batch]
        ready = [r for r, skip in zip(batch, untargeted) if not skip]
        scored = model.score(
            [r.text for r in ready], [None if r.target is MISSING else r.target for r in ready]
        )
        done = [ready[i] for i in scored.index.tolist()]
        ids, sources = [r.doc_id for r in done], [r.source for r in done]
        dead = [
            DeadLetter.of(r, MISSING_TARGET, _MISSING_TARGET_MESSAGE)
            for r, skip in zip(batch, untargeted)
            if skip
        ]
        dead += [DeadLetter.of(ready[i], err.reason, str(err)) for i, err in sorted(scored.errors.items())]
        failed = sum(1 for d in dead if d.reason == MODEL_ERROR)
        if failed:
            _log.warning("the model failed on %d record(s) of a batch: %s", failed, dead[0].message)
        kept = {
            name: [r.kept[j] if j < len(r.kept) else None for r in done]
            for j, name in enumerate(opts.keep_fields)
        }
        self._docs.inc(len(done))
        self._tokens.inc(scored.tokens)
        self._padded.inc(scored.padded_tokens)
        self._failed.inc(failed)
        self._progress.add(len(done), scored.tokens)
        return [
            AnnotatedBatch(
                rows=token_rows(scored, ids, sources, with_layers=bool(opts.layers)),
                documents=document_rows(scored, ids, sources, [r.text for r in done], kept),
                dead=dead,
                padded_tokens=scored.padded_tokens,
            )
        ]



def _no_target(value: Any) -> bool:
    """A record's own target is missing, null or blank."""
    return value is MISSING or value is None or (isinstance(value, str) and not value.strip())
