"""The RunInference ModelHandler of ``annotate``: one model per worker, batches scored by the batch engine.

The handler is thin: ``load_model`` returns a ``normxlogit.engine.BatchEngine`` (encode, plan length
buckets, one forward pass per bucket, split and retry on failure), ``run_inference`` hands it the
batch's texts and targets (or, in a response run, prompts and responses, chats, or prompts to
answer) and turns its columnar results into one ``AnnotatedBatch``: an Arrow record batch of token
rows, one of document rows, and the dead letters of the records that could not be scored. With
``large_model`` / ``model_copies`` the engine lives in one shared process per copy on each worker
machine and the handler holds a proxy to it. Progress lines (``transforms.progress``) count each
bucket as the engine finishes it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from normxlogit.engine import MODEL_ERROR, BatchEngine, EngineOptions, OnBucket, ScoredResponses
from normxlogit.loading import load_model
from normxlogit.schema import document_rows, response_document_rows, response_token_rows, token_rows
from normxlogit.transforms.counters import DOCS_ANNOTATED, NAMESPACE, PADDED_TOKENS, TOKENS
from normxlogit.transforms.progress import BatchProgress, Progress
from normxlogit.transforms.records import AnnotatedBatch, DeadLetter, SourceRecord
from normxlogit.transforms.response_records import CHAT, GENERATE, response_problem
from normxlogit.transforms.sources import MISSING

OutT = TypeVar("OutT")
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
        input_bytes: total size of the input files, when every one is uncompressed text or JSON
            Lines (progress lines then give the share scored); None otherwise.
        responses: a response run (causal LMs): ``response`` (the record's text is the prompt,
            ``SourceRecord.response`` its answer), ``chat`` (``SourceRecord.messages``, the last
            assistant message is the answer) or ``generate`` (the model answers the text); None:
            one next-token or class target per record.
        max_new_tokens: with ``generate``, the most tokens an answer may have.
        step_scores: response runs keep each token's score at every step (``step_scores`` column).
    """

    max_length: int | None = None
    target: str | None = None
    foil: str | None = None
    layers: tuple[int, ...] = ()
    batch_tokens: int = 8192
    docs_per_batch: int = 2048
    targets_from_records: bool = False
    keep_fields: tuple[str, ...] = ()
    input_bytes: int | None = None
    responses: str | None = None
    max_new_tokens: int | None = None
    step_scores: bool = False

    def engine_options(self) -> EngineOptions:
        """The batch engine's options (everything but the RunInference batch size)."""
        return EngineOptions(self.max_length, self.target, self.foil, self.layers, self.batch_tokens)


def settle_heap() -> None:
    """Collect garbage, then freeze every object alive (``gc.freeze``): the collector's full passes
    skip them from now on.

    A worker holds a few hundred thousand objects that live as long as it does (torch,
    transformers, Beam, the model's modules and tokenizer). Each full pass of the collector walks
    all of them, about 0.3 s during which every thread of the worker waits (it holds the GIL): the
    host's threads stop tokenizing and the device gets no new batch. Scoring allocates fast enough
    to start such a pass every few seconds; once frozen, a full pass walks only the objects made
    since (a few milliseconds). Garbage made before the freeze is collected first; a frozen object
    that later becomes part of a reference cycle no longer used stays until the worker ends (a
    local run unfreezes when it ends), which the model and libraries, alive for the worker's life,
    do not.
    """
    gc.collect()
    gc.freeze()


class EngineHandler(ModelHandler[SourceRecord, OutT, BatchEngine]):
    """What every normxlogit ModelHandler shares: the model, loaded once per worker into a
    ``BatchEngine`` (an object, also when Beam shares it across processes), and Beam's bookkeeping.

    Subclasses implement ``run_inference``.
    """

    def __init__(self, spec: ModelSpec, engine: EngineOptions, **kwargs):
        super().__init__(**kwargs)
        self._spec = spec
        self._engine = engine

    def load_model(self) -> BatchEngine:
        """The batch engine around the model ``spec`` names, loaded offline on this worker.

        Once loaded, the worker's heap is frozen (``settle_heap``): the model stays for the
        worker's life, so the garbage collector need not walk it again.
        """
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
        settle_heap()
        return BatchEngine(model, self._engine)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    @staticmethod
    def bucket_counter(
        model: BatchEngine, progress: BatchProgress, records: Sequence[SourceRecord]
    ) -> OnBucket | None:
        """The engine's ``on_bucket`` for a call given ``records``: progress counted per bucket.

        None when ``model`` is a proxy to an engine in a shared process (``large_model``,
        ``model_copies``): a callback would run, and print, in that process; the batch is then
        counted when it ends.
        """
        return progress.on_bucket(records) if isinstance(model, BatchEngine) else None

    def get_num_bytes(self, batch: Sequence[SourceRecord]) -> int:
        """Text bytes of the batch (Beam's default pickles the whole batch just to measure it)."""
        return sum(len(r.text) if isinstance(r.text, str) else len(r.raw) for r in batch)  # chats: raw


class NormXLogitModelHandler(EngineHandler[AnnotatedBatch]):
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
        super().__init__(spec, options.engine_options(), model_copies=model_copies, large_model=large_model)
        self._options = options
        self._docs = Metrics.counter(NAMESPACE, DOCS_ANNOTATED)
        self._tokens = Metrics.counter(NAMESPACE, TOKENS)
        self._padded = Metrics.counter(NAMESPACE, PADDED_TOKENS)
        self._failed = Metrics.counter(NAMESPACE, "model_errors")
        self._progress = Progress(options.input_bytes, verb="scored")

    def run_inference(
        self,
        batch: Sequence[SourceRecord],
        model: BatchEngine,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[AnnotatedBatch]:
        """Score one batch of records; returns a one-element list: its ``AnnotatedBatch``."""
        self._progress.start()
        progress = self._progress.batch(batch)
        if self._options.responses:
            return [self._responses(batch, model, progress)]
        opts = self._options
        untargeted = [opts.targets_from_records and _no_target(r.target) for r in batch]
        ready = [r for r, skip in zip(batch, untargeted) if not skip]
        scored = model.score(
            [r.text for r in ready],
            [None if r.target is MISSING else r.target for r in ready],
            on_bucket=self.bucket_counter(model, progress, ready),
        )
        done = [ready[i] for i in scored.index.tolist()]
        ids, sources = [r.doc_id for r in done], [r.source for r in done]
        dead = [
            DeadLetter.of(r, MISSING_TARGET, _MISSING_TARGET_MESSAGE)
            for r, skip in zip(batch, untargeted)
            if skip
        ]
        dead += [DeadLetter.of(ready[i], err.reason, str(err)) for i, err in sorted(scored.errors.items())]
        annotated = self._annotated(
            progress,
            done,
            dead,
            token_rows(scored, ids, sources, with_layers=bool(opts.layers)),
            document_rows(scored, ids, sources, [r.text for r in done], self._kept(done)),
            scored.padded_tokens,
        )
        return [annotated]

    def _responses(
        self, batch: Sequence[SourceRecord], model: BatchEngine, progress: BatchProgress
    ) -> AnnotatedBatch:
        """A response run's batch: check each record's response (or chat), encode (or generate),
        score every answer in one teacher-forced pass per bucket."""
        opts = self._options
        problems = [response_problem(r, opts.responses) for r in batch]
        ready = [r for r, p in zip(batch, problems) if p is None]
        if opts.responses == CHAT:
            items = model.encode_chats([r.messages for r in ready])
        elif opts.responses == GENERATE:
            items = model.generate([r.text for r in ready], opts.max_new_tokens)
        else:
            items = model.encode_responses([r.text for r in ready], [r.response for r in ready])
        scored: ScoredResponses = model.score_responses(
            items, opts.step_scores, on_bucket=self.bucket_counter(model, progress, ready)
        )
        done = [ready[i] for i in scored.index.tolist()]
        ids, sources = [r.doc_id for r in done], [r.source for r in done]
        dead = [DeadLetter.of(r, p.reason, str(p)) for r, p in zip(batch, problems) if p is not None]
        dead += [DeadLetter.of(ready[i], err.reason, str(err)) for i, err in sorted(scored.errors.items())]
        return self._annotated(
            progress,
            done,
            dead,
            response_token_rows(scored, ids, sources, opts.step_scores),
            response_document_rows(scored, ids, sources, self._kept(done)),
            scored.padded_tokens,
        )

    def _kept(self, done: Sequence[SourceRecord]) -> dict[str, list]:
        """The ``--keep-fields`` values of the annotated records, by field."""
        return {
            name: [r.kept[j] if j < len(r.kept) else None for r in done]
            for j, name in enumerate(self._options.keep_fields)
        }

    def _annotated(
        self,
        progress: BatchProgress,
        done: Sequence[SourceRecord],
        dead: list[DeadLetter],
        rows,
        documents,
        padded_tokens: int,
    ) -> AnnotatedBatch:
        """Count the batch (metrics, progress) and wrap its outputs."""
        failed = sum(1 for d in dead if d.reason == MODEL_ERROR)
        if failed:
            _log.warning("the model failed on %d record(s) of a batch: %s", failed, dead[0].message)
        self._docs.inc(len(done))
        self._tokens.inc(rows.num_rows)
        self._padded.inc(padded_tokens)
        self._failed.inc(failed)
        progress.finish(len(done), rows.num_rows)
        return AnnotatedBatch(rows=rows, documents=documents, dead=dead, padded_tokens=padded_tokens)


def _no_target(value: Any) -> bool:
    """A record's own target is missing, null or blank."""
    return value is MISSING or value is None or (isinstance(value, str) and not value.strip())
