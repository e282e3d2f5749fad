"""The batch engine: every caller (the Python API, the annotate and evaluate ModelHandlers) goes through it.

A batch of texts is encoded in one fast-tokenizer call (``encode_batch``; per-text problems become
``RecordError`` values, not exceptions), planned into length buckets under a padded-token budget
(``plan_batches``), and each bucket runs one forward pass. A bucket whose forward pass fails (out of
memory, say) is split in half and retried, down to a single text, whose error is then kept in place
of its result (``run_planned``). ``BatchEngine.map`` runs any per-item job that way (the evaluate
paths, ``generate``); scoring results come back columnar (``ScoredBatch``): flat per-token arrays
for the whole batch, per-document arrays beside them, in input order.

Responses of causal LMs (METHOD.md, "Responses of causal LMs") go the same way: ``encode_responses``,
``encode_chats`` or ``generate`` make ``EncodedResponse`` values, and ``score_responses`` runs them
through the same ``run_planned`` loop (``ScoredResponses``).

A caller that reports progress passes ``on_bucket``: it hears of each bucket as its forward pass
succeeds (``BucketDone``: the bucket's input positions and tokens), in the calling thread, long
before a large batch ends.

Each bucket is split in two (``scoring.prepare_batch``, ``scoring.score_prepared``): the host's part
(padding, positions, targets) runs in the caller; the device's part (the forward pass, the heads, the
copy back) runs on the model's one forward thread (``ScoringModel.forward_thread``), in the order
buckets were queued. A caller queues up to ``FORWARD_QUEUE`` buckets past the one it waits for, and
every thread of a pipeline worker that shares the model queues on the same thread, so the device
finds its next bucket ready while the callers tokenize, convert and write; forward passes on one
model never run two at a time (``ScoringModel.lock``), so the device never holds two buckets'
activations at once. ``score_stream`` also overlaps tokenizing in one caller: it encodes the next
chunk of texts in a thread while the current one is scored.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from normxlogit.chat import chat_rendering, encode_chat_batch, encode_chat_prompt_batch
from normxlogit.encoding import EncodedText, encode_batch
from normxlogit.errors import RecordError
from normxlogit.generated import append_generated, encode_prompt_batch, generate_responses
from normxlogit.limits import DEFAULT_BATCH_TOKENS, length_limit, prompt_room
from normxlogit.loading import ScoringModel
from normxlogit.response_scoring import ResponseScores, prepare_responses, score_prepared_responses
from normxlogit.response_spec import ResponseFoil, SystemPromptChoice
from normxlogit.responses import EncodedResponse, encode_response_batch
from normxlogit.result import TextAttribution, label_of
from normxlogit.scoring import Attribution, BatchScores, plan_batches, prepare_batch, score_prepared

STREAM_CHUNK = 4096  # texts per chunk of ``BatchEngine.score_stream``
FORWARD_QUEUE = 16  # buckets a caller prepares past the one it waits for (``run_planned``)
MODEL_ERROR = "model_error"

R = TypeVar("R")
J = TypeVar("J")
E = TypeVar("E", bound=EncodedText)


@dataclass(frozen=True)
class EngineOptions:
    """What to attribute and how to batch.

    Attributes:
        max_length: truncate longer texts to this many tokens (None: the model's limit).
        target: one target for every text without its own (class name/id or token); None: the
            model's prediction.
        foil: a contrastive foil for every text; scores become target minus foil.
        layers: layer numbers 1..L for layer-wise LogAt.
        batch_tokens: padded tokens per forward pass.
    """

    max_length: int | None = None
    target: str | int | None = None
    foil: str | int | None = None
    layers: tuple[int, ...] = ()
    batch_tokens: int = DEFAULT_BATCH_TOKENS


@dataclass(frozen=True)
class BucketDone:
    """A bucket whose forward pass succeeded, as an ``on_bucket`` callback hears of it.

    Attributes:
        index: input positions of its items (into the items the call was given).
        tokens: the items' tokens (the token rows they make).
    """

    index: tuple[int, ...]
    tokens: int

    @property
    def docs(self) -> int:
        """How many items the bucket scored."""
        return len(self.index)


@dataclass(frozen=True)
class GenerationDone:
    """A bucket of prompts the model answered (``BatchEngine.generate``), as ``on_bucket`` hears of it:
    generation is timed apart from scoring, which takes far less time per token.

    Attributes:
        answers: prompts answered.
        new_tokens: tokens generated, all answers together.
        seconds: wall time of the bucket's ``model.generate``.
    """

    answers: int
    new_tokens: int
    seconds: float


OnBucket = Callable[[BucketDone | GenerationDone], None]


def _bucket_reporter(
    on_bucket: OnBucket | None, keys: Sequence[int], tokens: Sequence[int]
) -> Callable[[list[int]], None] | None:
    """``run_planned``'s ``on_done`` that tells ``on_bucket`` of each finished bucket in input positions.

    Args:
        on_bucket: the caller's callback (None: nothing to report, and None comes back).
        keys: planned item i's input position.
        tokens: planned item i's tokens.
    """
    if on_bucket is None:
        return None
    return lambda idx: on_bucket(BucketDone(tuple(keys[i] for i in idx), sum(tokens[i] for i in idx)))


@dataclass
class Planned(Generic[R]):
    """What ``run_planned`` returns: each group's result and the items that failed alone.

    Attributes:
        groups: (item indices, result) per forward pass that succeeded, in the order they ran.
        failed: item index -> the exception its forward pass raised when it ran alone.
        padded_tokens: positions the successful forward passes ran (longest text x texts).
    """

    groups: list[tuple[list[int], R]] = field(default_factory=list)
    failed: dict[int, Exception] = field(default_factory=dict)
    padded_tokens: int = 0


def run_planned(
    lengths: Sequence[int],
    batch_tokens: int,
    fn: Callable[[J], R],
    *,
    prepare: Callable[[list[int]], J] | None = None,
    device: Executor | None = None,
    ahead: int = FORWARD_QUEUE,
    on_done: Callable[[list[int]], None] | None = None,
) -> Planned[R]:
    """Run ``fn`` over length buckets of items; a bucket that raises is halved and retried.

    Args:
        lengths: token length of each item.
        batch_tokens: padded-token budget per bucket (``plan_batches``).
        fn: runs one bucket, given ``prepare``'s job for it (default: the item indices); any
            exception counts as a failure.
        prepare: the host's part of a bucket, run in the calling thread (an exception counts as
            the bucket's failure too).
        device: where ``fn`` runs (the model's forward thread). The caller prepares up to ``ahead``
            buckets past the one it waits for, so the device finds the next bucket ready. None:
            ``fn`` runs in the calling thread, one bucket after another.
        on_done: told the item indices of each bucket (or retried half) whose ``fn`` succeeded, in
            the calling thread, as soon as its result is taken: before the buckets after it are.

    Returns:
        A ``Planned``: every item is in exactly one successful group or in ``failed``.
    """
    out: Planned[R] = Planned()

    def start(idx: list[int]) -> Callable[[], R]:
        """Begin a bucket; what to call for its result (or its exception)."""
        try:
            job = prepare(idx) if prepare is not None else idx
        except Exception as err:  # noqa: BLE001 - settled like a failed forward pass
            return functools.partial(_reraise, err)
        if device is None:
            return functools.partial(_freeing, fn, job)
        return device.submit(_freeing, fn, job).result

    def settle(idx: list[int], result_of: Callable[[], R]) -> None:
        try:
            result = result_of()
        except Exception as err:  # noqa: BLE001 - one bad text must not lose its neighbours
            if len(idx) == 1:
                out.failed[idx[0]] = err
                return
            halves = idx[: len(idx) // 2], idx[len(idx) // 2 :]
            for half, half_result in [(h, start(h)) for h in halves]:
                settle(half, half_result)
            return
        out.groups.append((idx, result))
        out.padded_tokens += len(idx) * max(lengths[i] for i in idx)
        if on_done is not None:
            on_done(idx)

    waiting: deque[tuple[list[int], Callable[[], R]]] = deque()
    for group in plan_batches(lengths, batch_tokens):
        waiting.append((group, start(group)))
        if len(waiting) > (ahead if device is not None else 0):
            settle(*waiting.popleft())
    while waiting:
        settle(*waiting.popleft())
    return out


def _reraise(err: Exception) -> R:
    raise err


def _freeing(fn: Callable[[J], R], job: J) -> R:
    """``fn(job)``; an exception leaves with the frames of its traceback cleared, so what they held
    (a failed forward pass's activations on the device) is freed now, not when the exception is
    dropped: a failed bucket's future can wait in the queue while the next buckets run, and the
    halves are retried while the exception is still referenced."""
    try:
        return fn(job)
    except Exception as err:
        traceback.clear_frames(err.__traceback__)
        raise


@dataclass
class ScoredBatch:
    """NormXLogit results of a batch of texts, columnar, in input order.

    Attributes:
        size: how many texts the batch had.
        index: (D,) input position of each scored text (increasing).
        encoded: the D scored texts' encodings.
        scores: their scores (``BatchScores``: per-token arrays hold the texts one after another).
        target, foil, prediction: (D,) readable names (foil None where there is none).
        errors: input position -> why that text was not scored (a ``RecordError``: its ``reason``
            is a stable code; model failures have reason ``model_error``).
        padded_tokens: positions the forward passes ran.
        layers: the layers of ``scores.layer_logat``.
    """

    size: int
    index: np.ndarray
    encoded: list[EncodedText]
    scores: BatchScores
    target: list[str]
    foil: list[str | None]
    prediction: list[str]
    errors: dict[int, RecordError]
    padded_tokens: int
    layers: tuple[int, ...] = ()

    @property
    def tokens(self) -> int:
        """Token rows of the scored texts."""
        return self.scores.tokens

    def attribution(self, d: int) -> Attribution:
        """The ``Attribution`` of the d-th scored text (views into the batch's arrays)."""
        return self.scores.attribution(d)

    def results(self, texts: Sequence[str]) -> list[TextAttribution]:
        """One ``TextAttribution`` per scored text (``texts``: the batch's input texts)."""
        return [
            TextAttribution(
                texts[i], self.encoded[d], self.attribution(d), target, foil, prediction, self.layers
            )
            for d, (i, target, foil, prediction) in enumerate(
                zip(self.index.tolist(), self.target, self.foil, self.prediction)
            )
        ]


@dataclass
class ScoredResponses:
    """Response-level NormXLogit of a batch of prompt/response pairs, columnar, in input order.

    Attributes:
        size: how many pairs the batch had.
        index: (D,) input position of each scored pair (increasing).
        encoded: the D scored pairs' encodings (prompt + response, segments).
        scores: their ``ResponseScores`` (per-token arrays hold the pairs one after another).
        target: (D,) the response's first token y_1, as text.
        prediction: (D,) the model's own greedy token at y_1's place, as text.
        errors: input position -> why that pair was not scored (``RecordError``).
        padded_tokens: positions the forward passes ran.
        foil_names: each step foil's id (``scores.foil_id``) -> its text; empty without a foil.
    """

    size: int
    index: np.ndarray
    encoded: list[EncodedResponse]
    scores: ResponseScores
    target: list[str]
    prediction: list[str]
    errors: dict[int, RecordError]
    padded_tokens: int
    foil_names: dict[int, str] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        """Token rows of the scored pairs."""
        return self.scores.tokens


@dataclass
class _Run(Generic[E, R]):
    """What ``BatchEngine._run`` gives back: the scored items in input order and the rest."""

    index: np.ndarray
    encoded: list[E]
    parts: list[R]
    perm: np.ndarray  # the concatenated parts reordered by ``perm`` follow ``encoded``
    errors: dict[int, RecordError]
    padded_tokens: int


class BatchEngine:
    """A loaded model and the batch logic around it: encode, plan, score, split on failure.

    With Beam's ``large_model`` / ``model_copies`` the engine lives in a shared process and callers
    hold a proxy that forwards method calls, so everything that touches the model happens inside
    one call (``score``, ``encode``) and only plain values cross the process boundary.
    """

    def __init__(self, model: ScoringModel, options: EngineOptions | None = None):
        self.model = model
        self.options = options or EngineOptions()

    @property
    def max_length(self) -> int:
        """The token limit texts are cut to."""
        return length_limit(self.options.max_length, self.model.max_length)

    def encode(
        self, texts: Sequence[str], targets: Sequence[str | int | None] | None = None
    ) -> list[EncodedText | RecordError]:
        """Tokenize texts in one call; resolve each target (None: the run-wide ``target``) and the foil."""
        opts, sm = self.options, self.model
        targets = (
            [opts.target] * len(texts)
            if targets is None
            else [opts.target if t is None else t for t in targets]
        )
        return encode_batch(
            texts,
            sm.tokenizer,
            sm.model,
            sm.adapter,
            max_length=self.max_length,
            targets=targets,
            foil=opts.foil,
        )

    def score(
        self,
        texts: Sequence[str],
        targets: Sequence[str | int | None] | None = None,
        on_bucket: OnBucket | None = None,
    ) -> ScoredBatch:
        """Encode and score a batch of texts; per-text failures are kept in ``errors``, never raised.

        ``on_bucket`` hears of each bucket as its forward pass succeeds (positions into ``texts``).
        """
        return self.score_encoded(self.encode(texts, targets), on_bucket)

    def score_stream(
        self,
        texts: Sequence[str],
        targets: Sequence[str | int | None] | None = None,
        chunk: int = STREAM_CHUNK,
    ) -> Iterator[tuple[int, ScoredBatch]]:
        """Score many texts ``chunk`` at a time, in order, each chunk encoded in a background thread
        while the one before it is scored: ``(input position of the chunk's first text, ScoredBatch)``.

        Tokenizing (Rust) and the forward pass (torch) both release the GIL, so on a GPU the device
        does not wait for the tokenizer, and on a CPU the two share the cores.
        """
        spans = [(lo, min(lo + chunk, len(texts))) for lo in range(0, len(texts), chunk)]
        if len(spans) <= 1:
            yield 0, self.score(texts, targets)
            return

        def encode(lo: int, hi: int) -> list[EncodedText | RecordError]:
            return self.encode(texts[lo:hi], None if targets is None else targets[lo:hi])

        with ThreadPoolExecutor(1, thread_name_prefix="normxlogit-encode") as pool:
            pending = pool.submit(encode, *spans[0])
            for k, (lo, _) in enumerate(spans):
                encoded = pending.result()
                if k + 1 < len(spans):
                    pending = pool.submit(encode, *spans[k + 1])
                yield lo, self.score_encoded(encoded)

    def score_encoded(
        self, items: Sequence[EncodedText | RecordError], on_bucket: OnBucket | None = None
    ) -> ScoredBatch:
        """Score already encoded texts (``RecordError`` entries are carried into ``errors``);
        ``on_bucket`` hears of each bucket as its forward pass succeeds (positions into ``items``)."""
        sm, layers = self.model, self.options.layers
        run = self._run(
            items,
            len,
            lambda prepared: score_prepared(sm, prepared, layers),
            prepare=lambda batch: prepare_batch(sm, batch),
            on_bucket=on_bucket,
        )
        scores = BatchScores.concat(run.parts, layers=bool(layers)).reorder(run.perm)
        return ScoredBatch(
            size=len(items),
            index=run.index,
            encoded=run.encoded,
            scores=scores,
            padded_tokens=run.padded_tokens,
            layers=tuple(layers),
            errors=run.errors,
            **self._labels(scores),
        )

    def map(
        self,
        items: Sequence[E | RecordError],
        cost: Callable[[E], int],
        fn: Callable[[list[int]], Sequence[R]],
        *,
        batch_tokens: int | None = None,
        on_bucket: OnBucket | None = None,
    ) -> list[R | RecordError]:
        """Run ``fn`` over length buckets of items, one result per item, errors kept in place.

        Every evaluate path and ``generate`` go through it: the items are planned by ``cost`` under
        the token budget, a bucket that fails is halved and retried, and an item that fails alone
        gets a ``model_error``.

        Args:
            items: encoded items, or the ``RecordError`` that stops one (kept as it is).
            cost: an item's tokens as the budget counts them.
            fn: runs one bucket, given the input positions of its items (into ``items``); returns
                one result per position, in order.
            batch_tokens: padded tokens per bucket (None: the engine's ``batch_tokens``).
            on_bucket: hears of each bucket as ``fn`` succeeds on it (positions into ``items``).

        Returns:
            Per item, its result or a ``RecordError``.
        """
        run = self._run(items, cost, fn, batch_tokens=batch_tokens, on_bucket=on_bucket)
        results = [result for part in run.parts for result in part]
        out: list = [run.errors.get(i) for i in range(len(items))]  # every item without one is in index
        for i, j in zip(run.index.tolist(), run.perm.tolist()):
            out[i] = results[j]
        return out

    def _run(
        self,
        items: Sequence[E | RecordError],
        cost: Callable[[E], int],
        fn: Callable,
        *,
        prepare: Callable[[list[E]], object] | None = None,
        batch_tokens: int | None = None,
        on_bucket: OnBucket | None = None,
    ) -> _Run[E, R]:
        """The one batch loop: plan the encoded items by ``cost`` under the token budget (None: the
        engine's), run each bucket (``run_planned``: halved and retried on failure), keep errors in
        place.

        Without ``prepare``, ``fn(positions)`` runs here, given the input positions of the bucket's
        items. With ``prepare``, each bucket is prepared here (``prepare(bucket)``, its items) and
        run on the model's forward thread (``fn(prepared)``), the next buckets prepared meanwhile.
        ``on_bucket`` hears of each bucket that succeeds."""
        errors = {i: e for i, e in enumerate(items) if isinstance(e, RecordError)}
        keys = [i for i in range(len(items)) if i not in errors]
        encoded: list[E] = [items[i] for i in keys]  # type: ignore[misc]
        on_done = _bucket_reporter(on_bucket, keys, [len(e) for e in encoded])
        costs = [cost(e) for e in encoded]
        budget = self.options.batch_tokens if batch_tokens is None else batch_tokens
        if prepare is None:
            planned = run_planned(costs, budget, lambda idx: fn([keys[i] for i in idx]), on_done=on_done)
        else:
            planned = run_planned(
                costs,
                budget,
                fn,
                prepare=lambda idx: prepare([encoded[i] for i in idx]),
                device=self.model.forward_thread(),
                on_done=on_done,
            )
        for i, err in planned.failed.items():
            errors[keys[i]] = RecordError(MODEL_ERROR, f"{type(err).__name__}: {err}")
        order = [i for idx, _ in planned.groups for i in idx]  # scored items, in the order they ran
        done = sorted(order)
        return _Run(
            index=np.asarray([keys[i] for i in done], dtype=np.int64),
            encoded=[encoded[i] for i in done],
            parts=[part for _, part in planned.groups],
            perm=np.argsort(order, kind="stable"),
            errors=errors,
            # positions the forward passes ran, whatever the planning cost counted
            padded_tokens=sum(len(idx) * max(len(encoded[i]) for i in idx) for idx, _ in planned.groups),
        )

    def encode_responses(
        self, prompts: Sequence[str], responses: Sequence[object]
    ) -> list[EncodedResponse | RecordError]:
        """Prompt/response pairs as the model reads them (``responses.encode_response_batch``)."""
        sm = self.model
        return encode_response_batch(prompts, responses, sm.tokenizer, sm.adapter, max_length=self.max_length)

    def encode_chats(
        self, conversations: Sequence[object], system_prompt: SystemPromptChoice | None = None
    ) -> list[EncodedResponse | RecordError]:
        """Chats through the tokenizer's template, the last assistant turn as the response
        (``chat.encode_chat_batch``), with the system message ``system_prompt`` asks for (None: as
        the template renders them; ``chat.chat_rendering``, which raises ``ChatTemplateError``)."""
        sm = self.model
        rendering = chat_rendering(sm.tokenizer, system_prompt or SystemPromptChoice())
        return encode_chat_batch(
            conversations, sm.tokenizer, sm.adapter, max_length=self.max_length, rendering=rendering
        )

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        batch_tokens: int | None = None,
        on_bucket: OnBucket | None = None,
    ) -> list[EncodedResponse | RecordError]:
        """The model's greedy answers (at most ``max_new_tokens``) to prompts, each on its prompt as
        the model read it, ready for ``score_responses``.

        Prompts are cut from their start to leave room for the answer (``limits.prompt_room``, at
        least one token kept); generation runs in length buckets of ``batch_tokens`` (None: the
        engine's) through ``map`` (a bucket that fails is halved, a prompt that fails alone is a
        ``model_error``); ``on_bucket`` hears of each answered bucket (``GenerationDone``).
        """
        sm = self.model
        room = max(prompt_room(self.max_length, max_new_tokens), 1)
        encoded = encode_prompt_batch(prompts, sm.tokenizer, sm.adapter, max_length=room)
        return self._answer(encoded, max_new_tokens, batch_tokens, on_bucket)

    def generate_chats(
        self,
        conversations: Sequence[object],
        max_new_tokens: int,
        system_prompt: SystemPromptChoice | None = None,
        batch_tokens: int | None = None,
        on_bucket: OnBucket | None = None,
    ) -> list[EncodedResponse | RecordError]:
        """``generate`` for conversations through the tokenizer's chat template: each is answered
        without its last assistant message, if it has one (``chat.encode_chat_prompt_batch``), with
        the system message ``system_prompt`` asks for (``chat.chat_rendering``)."""
        sm = self.model
        room = max(prompt_room(self.max_length, max_new_tokens), 1)
        rendering = chat_rendering(sm.tokenizer, system_prompt or SystemPromptChoice())
        encoded = encode_chat_prompt_batch(
            conversations, sm.tokenizer, sm.adapter, max_length=room, rendering=rendering
        )
        return self._answer(encoded, max_new_tokens, batch_tokens, on_bucket)

    def _answer(
        self,
        encoded: list[EncodedResponse | RecordError],
        max_new_tokens: int,
        batch_tokens: int | None,
        on_bucket: OnBucket | None = None,
    ) -> list[EncodedResponse | RecordError]:
        """Each encoded prompt followed by the model's greedy answer (``RecordError`` entries kept);
        ``on_bucket`` hears of each answered bucket with its time (``GenerationDone``)."""
        sm = self.model

        def answer(positions: list[int]) -> list[np.ndarray]:
            started = time.monotonic()
            ids = generate_responses(sm, [encoded[i] for i in positions], max_new_tokens)
            if on_bucket is not None:
                on_bucket(GenerationDone(len(ids), sum(len(a) for a in ids), time.monotonic() - started))
            return ids

        answers = self.map(encoded, lambda e: len(e) + max_new_tokens, answer, batch_tokens=batch_tokens)
        out: list[EncodedResponse | RecordError] = []
        for prompt, ids in zip(encoded, answers):
            if isinstance(ids, RecordError):
                out.append(ids)
                continue
            try:
                out.append(append_generated(prompt, ids, sm.tokenizer))
            except RecordError as err:
                out.append(err)
        return out

    def score_responses(
        self,
        items: Sequence[EncodedResponse | RecordError],
        step_scores: bool = False,
        on_bucket: OnBucket | None = None,
        foil: ResponseFoil | None = None,
    ) -> ScoredResponses:
        """Response-level NormXLogit of encoded pairs (``RecordError`` entries carried into ``errors``);
        ``on_bucket`` hears of each bucket as its forward pass succeeds (positions into ``items``);
        ``foil``: each step's contrastive foil (``response_scoring.score_responses``).

        The budget counts each pair's (n x T) step logits besides its n positions: a pair costs
        ``n * (1 + T / hidden_size)`` tokens (2T with a foil), so long answers make smaller forward
        passes.
        """
        sm = self.model
        width = sm.model.get_input_embeddings().embedding_dim
        heads = 1 if foil is None else 2  # head rows per step: the target, and its foil

        def cost(e: EncodedResponse) -> int:
            return len(e) + -(-len(e) * heads * e.n_response // width)

        run = self._run(
            items,
            cost,
            lambda prepared: score_prepared_responses(sm, prepared, step_scores, foil),
            prepare=lambda batch: prepare_responses(sm, batch),
            on_bucket=on_bucket,
        )
        scores = ResponseScores.concat(run.parts, steps=step_scores).reorder(run.perm)
        names: dict[int, str] = {}

        def name(i: int) -> str:
            if i not in names:
                names[i] = label_of(sm, i)
            return names[i]

        return ScoredResponses(
            size=len(items),
            index=run.index,
            encoded=run.encoded,
            scores=scores,
            target=[name(int(e.response_ids[0])) for e in run.encoded],
            prediction=[name(i) for i in scores.prediction_id.tolist()],
            errors=run.errors,
            padded_tokens=run.padded_tokens,
            foil_names={i: name(i) for i in np.unique(scores.foil_id[scores.foil_id >= 0]).tolist()},
        )

    def _labels(self, scores: BatchScores) -> dict:
        """Readable target, foil and prediction names (looked up once per distinct id)."""
        sm = self.model
        if scores.regression:
            n = len(scores.target_id)
            return {
                "target": ["value"] * n,
                "foil": [None] * n,
                "prediction": [f"{v:.6g}" for v in scores.prediction_value],
            }
        names: dict[int, str | None] = {-1: None}

        def name(i: int) -> str | None:
            if i not in names:
                names[i] = label_of(sm, i)
            return names[i]

        return {
            "target": [name(i) for i in scores.target_id.tolist()],
            "foil": [name(i) for i in scores.foil_id.tolist()],
            "prediction": [name(i) for i in scores.prediction_id.tolist()],
        }
