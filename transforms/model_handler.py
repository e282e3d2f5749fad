"""The RunInference ModelHandler of ``annotate``: one model per worker, batches scored by the batch engine.

The handler is thin: ``load_model`` returns a ``normxlogit.engine.BatchEngine`` (encode, plan length
buckets, one forward pass per bucket, split and retry on failure), ``run_inference`` hands the batch
to the run's task (``normxlogit.tasks``: a text task, or a response task for answers of causal LMs),
which checks each record, scores the rest on the engine and turns the results into rows: one
``AnnotatedBatch``, an Arrow record batch of token rows, one of document rows, and the dead letters
of the records that could not be scored. With
``large_model`` / ``model_copies`` the engine lives in one shared process per copy on each worker
machine and the handler holds a proxy to it. Progress lines (``transforms.progress``) count each
bucket as the engine finishes it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from normxlogit.engine import MODEL_ERROR, BatchEngine, EngineOptions, OnBucket
from normxlogit.loading import ModelInfo, ScoringModel, inspect_model, load_model, load_skeleton
from normxlogit.response_spec import ResponseSpec
from normxlogit.tasks import Task, make_task
from normxlogit.transforms.counters import DOCS_ANNOTATED, NAMESPACE, PADDED_TOKENS, TOKENS
from normxlogit.transforms.progress import BatchProgress, Progress
from normxlogit.transforms.records import AnnotatedBatch, DeadLetter, SourceRecord
from normxlogit.transforms.sources import MISSING

OutT = TypeVar("OutT")
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

    def _access(self) -> dict[str, bool]:
        return {"trust_remote_code": self.trust_remote_code, "allow_pickle": self.allow_pickle}

    def inspect(self) -> ModelInfo:
        """The model described without loading its weights (``loading.inspect_model``), in ``dtype``."""
        return inspect_model(self.path, dtype=self.dtype, **self._access())

    def skeleton(self) -> ScoringModel:
        """The model's config, tokenizer and head, no weights (``loading.load_skeleton``)."""
        return load_skeleton(self.path, **self._access())

    def load(self) -> ScoringModel:
        """The model as a worker scores with it: on ``device``, in ``dtype``, tokenizer padded on
        ``padding_side``; its weights not hashed (the launcher's ``inspect`` did that)."""
        return load_model(
            self.path,
            device=self.device,
            dtype=self.dtype,
            padding_side=self.padding_side,
            hash_weights=False,
            **self._access(),
        )

    def load_for_checks(self) -> ScoringModel:
        """The model as the launcher checks it: in ``dtype`` on the CPU, the tokenizer's own padding
        side, weights not hashed."""
        return load_model(self.path, dtype=self.dtype, hash_weights=False, **self._access())


@dataclass(frozen=True)
class ScoringOptions:
    """What to attribute and how to batch.

    Attributes:
        engine: what the batch engine attributes and how it batches (length limit, run-wide target
            and foil, layers, padded tokens per forward pass).
        docs_per_batch: records per RunInference batch; larger batches bucket lengths better.
        targets_from_records: each record names its own target (``--target-field``); a record
            whose target is missing, null or blank is a ``missing_target`` dead letter, never
            given the prediction instead.
        keep_fields: record fields copied into the documents table.
        input_bytes: total size of the input files, when every one is uncompressed text or JSON
            Lines (progress lines then give the share scored); None otherwise.
        response: a response run (causal LMs): where each record's response comes from; None:
            one next-token or class target per record.
        step_scores: response runs keep each token's score at every step (``step_scores`` column).
    """

    engine: EngineOptions = field(default_factory=EngineOptions)
    docs_per_batch: int = 2048
    targets_from_records: bool = False
    keep_fields: tuple[str, ...] = ()
    input_bytes: int | None = None
    response: ResponseSpec | None = None
    step_scores: bool = False

    def task(self) -> Task:
        """What the run does with each record (``normxlogit.tasks``)."""
        return make_task(
            self.response,
            MISSING,
            targets_from_records=self.targets_from_records,
            with_layers=bool(self.engine.layers),
            step_scores=self.step_scores,
        )


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
        model = self._spec.load()
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
        super().__init__(spec, options.engine, model_copies=model_copies, large_model=large_model)
        self._options = options
        self._task = options.task()
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
        task = self._task
        problems = [task.problem(r) for r in batch]
        ready = [r for r, p in zip(batch, problems) if p is None]
        scored = task.score(model, ready, self.bucket_counter(model, progress, ready))
        done = [ready[i] for i in scored.index.tolist()]
        dead = [DeadLetter.of(r, p.reason, str(p)) for r, p in zip(batch, problems) if p is not None]
        dead += [DeadLetter.of(ready[i], err.reason, str(err)) for i, err in sorted(scored.errors.items())]
        rows = task.token_rows(scored, done)
        documents = task.document_rows(scored, done, self._kept(done))
        failed = sum(1 for d in dead if d.reason == MODEL_ERROR)
        if failed:
            _log.warning("the model failed on %d record(s) of a batch: %s", failed, dead[0].message)
        self._docs.inc(len(done))
        self._tokens.inc(rows.num_rows)
        self._padded.inc(scored.padded_tokens)
        self._failed.inc(failed)
        progress.finish(len(done), rows.num_rows)
        return [AnnotatedBatch(rows=rows, documents=documents, dead=dead, padded_tokens=scored.padded_tokens)]

    def _kept(self, done: Sequence[SourceRecord]) -> dict[str, list]:
        """The ``--keep-fields`` values of the annotated records, by field."""
        return {
            name: [r.kept[j] if j < len(r.kept) else None for r in done]
            for j, name in enumerate(self._options.keep_fields)
        }
