"""Response-level faithfulness of attribution methods on a batch of prompt/response pairs (ours).

``RESPONSE_METHODS`` is a registry of methods, each a function from the batch's ``Evidence`` (the
passes it needs, computed once on first use) to one (n,) score array per document (random: one row
per seed, (R, n)):

- ``normxlogit``: the response-level S of METHOD.md (the paper's NormXLogit summed over steps);
  ``logat`` and ``norm`` its components;
- ``random``: seeded per document, one ranking per random seed (its figures are their mean);
- ``gradient_x_input`` (signed, one backward pass), ``gradient_x_input_l2_steps`` (one backward
  pass per step) and ``integrated_gradients`` (Captum, from the replacement token's embedding,
  ``ig_steps`` forward and backward passes; not among the defaults for its cost):
  ``normxlogit.response_baselines``;
- named variants of ours, never the default meaning of ``normxlogit``:
  ``normxlogit_logprob`` sums ||x_i^0|| * log_softmax(H(x_i^L))[y_t] over the steps, exactly
  ``norm * (logat - n_steps * logsumexp_i)``; ``normxlogit_abs`` sums |NormXLogit_t|;
  ``normxlogit_stepnorm`` divides each step's scores by their L1 sum over its context first, so
  that every step weighs the same.

Methods marked ``baseline`` (random and the gradient ones, ``RESPONSE_BASELINES``) are those every
method is compared with in the summary. ``evaluate_response_batch`` scores every method, builds the
comprehensiveness and sufficiency variants (``normxlogit.response_faithfulness``), runs them
(identical rows once) and returns a ``DocFaithfulness`` per pair. ``evaluate_response_items`` runs
it over length buckets with the engine's split-and-retry (``BatchEngine.map``);
``normxlogit.tasks.ResponseTask`` encodes the records (prompt + response, chats, or prompts the
model answers itself) into ``EncodedResponse`` values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from normxlogit.baselines import DEFAULT_IG_STEPS
from normxlogit.engine import BatchEngine, OnBucket
from normxlogit.errors import RecordError
from normxlogit.faithfulness import (
    DEFAULT_RANDOM_SEEDS,
    RANDOM,
    DocFaithfulness,
    average_rows,
    random_scores,
    replacement_token,
    rows_per_method,
)
from normxlogit.ferret_faithfulness import (
    SCALAR_METRICS,
    aopc,
    ferret_rationales,
    removal_rows,
    with_scalars,
)
from normxlogit.limits import DEFAULT_BATCH_TOKENS
from normxlogit.loading import ScoringModel
from normxlogit.response_baselines import (
    gradient_x_input_l2_steps,
    gradient_x_input_signed,
    integrated_gradients_response,
    position_logsumexp,
)
from normxlogit.response_faithfulness import (
    doc_response_faithfulness,
    perturb_context,
    rankable_context,
    response_logprobs,
)
from normxlogit.response_scoring import ResponseScores, score_responses
from normxlogit.responses import EncodedResponse

NO_CONTEXT = "no_context_tokens"


class Evidence:
    """What the methods of one batch read, each pass computed on first use."""

    def __init__(
        self,
        sm: ScoringModel,
        batch: Sequence[EncodedResponse],
        doc_ids: Sequence[str],
        seed: int,
        random_seeds: int = 1,
        ig_steps: int = DEFAULT_IG_STEPS,
    ):
        self.sm, self.batch, self.doc_ids = sm, batch, doc_ids
        self.seed, self.random_seeds, self.ig_steps = seed, random_seeds, ig_steps

    @cached_property
    def scores(self) -> ResponseScores:
        """``score_responses`` with the per-step matrix."""
        return score_responses(self.sm, self.batch, step_scores=True)

    def token_field(self, name: str) -> list[np.ndarray]:
        """A per-token field of ``scores`` split per document."""
        values = getattr(self.scores, name)
        return [values[self.scores.document(d)] for d in range(len(self.batch))]

    def step_matrices(self) -> list[np.ndarray]:
        """Per document, (n, T) per-step NormXLogit (NaN where a step does not apply)."""
        return [self.scores.step_matrix(d) for d in range(len(self.batch))]

    @cached_property
    def replacement(self) -> int:
        """The id that replaces ranked tokens (``faithfulness.replacement_token``), where
        Integrated Gradients' path starts too."""
        return replacement_token(self.sm.tokenizer)[0]

    @cached_property
    def logsumexp(self) -> list[np.ndarray]:
        return position_logsumexp(self.sm, self.batch)


@dataclass(frozen=True)
class ResponseMethod:
    """One attribution method of response-level faithfulness.

    Attributes:
        name: the ``--methods`` name.
        scores: per document of the batch, its (n,) token scores (larger: more important), or
            (R, n) for R rankings whose figures are averaged (random's seeds).
        ours: a named variant of ours, not the paper's definition.
        baseline: a baseline every method is compared with (random, the gradient methods).
        default: among the methods of a run that names none (``DEFAULT_RESPONSE_METHODS``).
    """

    name: str
    scores: Callable[[Evidence], list[np.ndarray]]
    ours: bool = False
    baseline: bool = False
    default: bool = True


def _logprob_variant(ev: Evidence) -> list[np.ndarray]:
    norm, logat, n_steps = (ev.token_field(f) for f in ("norm", "logat", "n_steps"))
    return [nm * (la - ns * lse) for nm, la, ns, lse in zip(norm, logat, n_steps, ev.logsumexp)]


def _stepnorm_variant(ev: Evidence) -> list[np.ndarray]:
    out = []
    for m in ev.step_matrices():
        scale = np.nansum(np.abs(m), axis=0, keepdims=True)  # (1, T) L1 over each step's context
        out.append(np.nansum(m / np.where(scale > 0, scale, 1.0), axis=1).astype(np.float32))
    return out


RESPONSE_METHODS: dict[str, ResponseMethod] = {
    m.name: m
    for m in (
        ResponseMethod("normxlogit", lambda ev: ev.token_field("score")),
        ResponseMethod("logat", lambda ev: ev.token_field("logat")),
        ResponseMethod("norm", lambda ev: ev.token_field("norm")),
        ResponseMethod(
            RANDOM,
            lambda ev: [
                random_scores(len(e), ev.seed, ev.random_seeds, d) for e, d in zip(ev.batch, ev.doc_ids)
            ],
            baseline=True,
        ),
        ResponseMethod(
            "gradient_x_input", lambda ev: gradient_x_input_signed(ev.sm, ev.batch), baseline=True
        ),
        ResponseMethod(
            "gradient_x_input_l2_steps", lambda ev: gradient_x_input_l2_steps(ev.sm, ev.batch), baseline=True
        ),
        ResponseMethod(
            "integrated_gradients",
            lambda ev: integrated_gradients_response(ev.sm, ev.batch, ev.replacement, ev.ig_steps),
            baseline=True,
            default=False,
        ),
        ResponseMethod("normxlogit_logprob", _logprob_variant, ours=True),
        ResponseMethod(
            "normxlogit_abs", lambda ev: [np.nansum(np.abs(m), axis=1) for m in ev.step_matrices()], ours=True
        ),
        ResponseMethod("normxlogit_stepnorm", _stepnorm_variant, ours=True),
    )
}
DEFAULT_RESPONSE_METHODS: tuple[str, ...] = tuple(m.name for m in RESPONSE_METHODS.values() if m.default)
RESPONSE_BASELINES: tuple[str, ...] = tuple(m.name for m in RESPONSE_METHODS.values() if m.baseline)


def list_response_methods() -> list[str]:
    """The response-level method names, in registry order."""
    return list(RESPONSE_METHODS)


@dataclass(frozen=True)
class ResponseEvaluationOptions:
    """What to compare on responses and how to batch.

    Attributes:
        methods: names from ``RESPONSE_METHODS``, in output order.
        seed: seed of the random baseline's first ranking.
        batch_tokens: padded tokens per forward pass.
        random_seeds: rankings the random baseline averages per pair (seeds seed..seed+R-1).
        ig_steps: Integrated Gradients steps (``integrated_gradients``).
    """

    methods: tuple[str, ...] = DEFAULT_RESPONSE_METHODS
    seed: int = 0
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    ig_steps: int = DEFAULT_IG_STEPS

    def __post_init__(self) -> None:
        if self.random_seeds < 1 or self.seed < 0 or self.ig_steps < 1:
            raise ValueError(
                "random_seeds >= 1, seed >= 0 and ig_steps >= 1, "
                f"got {self.random_seeds}, {self.seed} and {self.ig_steps}"
            )


def evaluate_response_batch(
    sm: ScoringModel,
    batch: Sequence[EncodedResponse],
    doc_ids: Sequence[str],
    opts: ResponseEvaluationOptions,
) -> list[DocFaithfulness]:
    """Comprehensiveness and sufficiency of every method on every pair of a batch.

    Every pair needs at least one rankable context token (``evaluate_response_items`` checks).

    Returns:
        One ``DocFaithfulness`` per pair: (M, 2, K) drops of the mean response log-probability and
        (M, 2, K) shares of response tokens still the argmax (random's: the mean over its seeds).
    """
    ev = Evidence(sm, batch, doc_ids, opts.seed, opts.random_seeds, opts.ig_steps)
    replacement = ev.replacement
    per_method = [RESPONSE_METHODS[m].scores(ev) for m in opts.methods]
    method_rows = rows_per_method(opts.methods, opts.random_seeds)
    rows, starts, index, removal = [], [], [], RemovalRows()
    for d, enc in enumerate(batch):
        rankings = np.concatenate([np.atleast_2d(s[d]) for s in per_method])  # (M', n)
        variants = np.stack([perturb_context(enc, r, replacement) for r in rankings])  # (M', 2, K, n)
        flat = np.concatenate([enc.input_ids[None], variants.reshape(-1, len(enc))])
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)  # identical rows run once
        index.append((len(rows), inverse.reshape(-1), variants.shape[:3], removal.add(enc, rankings)))
        rows += list(unique)
        starts += [enc.response_start] * len(unique)
    mean_lp, agree = response_logprobs(sm, rows, starts, opts.batch_tokens)
    # ferret's AOPC rows in passes of their own: the mask-token figures keep their batches.
    removed_lp = response_logprobs(sm, removal.rows, removal.starts, opts.batch_tokens)[0]
    removed_lp = np.where(removal.readable, removed_lp, np.nan)
    out = []
    for offset, inverse, shape, spans in index:
        lp, ag = mean_lp[offset + inverse], agree[offset + inverse]
        doc = doc_response_faithfulness((lp[0], ag[0]), (lp[1:].reshape(shape), ag[1:].reshape(shape)))
        values = np.full((len(spans), len(SCALAR_METRICS)), np.nan)
        for j, (start, count) in enumerate(spans):
            compr, suff = removed_lp[start : start + count], removed_lp[start + count : start + 2 * count]
            values[j, :2] = aopc(lp[0], compr, suff, empty=(np.nan, np.nan))
        doc = with_scalars(doc, values, False, opts.methods, method_rows, RANDOM)
        out.append(average_rows(doc, method_rows))
    return out


class RemovalRows:
    """ferret's AOPC rows of a response batch: context tokens removed, the response untouched.

    For each ranking of a pair, ``ferret_faithfulness.removal_rows`` over its rankable context tokens
    (``rankable_context``); the response starts as many positions earlier as tokens were removed
    before it. A row with nothing left before the response cannot be read (the first response token
    would have no context): it is kept out of the AOPC mean (``readable`` False), and a pair without
    any rationale (no context token with a positive score) gets no AOPC (ferret's 0 and 1 are
    probabilities, not log-probabilities).
    """

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.starts: list[int] = []
        self.readable: list[bool] = []

    def add(self, enc: EncodedResponse, rankings: np.ndarray) -> list[tuple[int, int]]:
        """Add one pair's rows for each ranking; returns per ranking (first row, rationales)."""
        positions = np.flatnonzero(rankable_context(enc))
        spans = []
        for scores in rankings:
            rationales = ferret_rationales(np.asarray(scores)[positions])
            compr, suff = removal_rows(enc.input_ids, positions, rationales)
            spans.append((len(self.rows), len(compr)))
            removed = [len(r) for r in rationales] + [len(positions) - len(r) for r in rationales]
            for row, gone in zip(compr + suff, removed):
                start = enc.response_start - gone
                self.rows.append(row if start > 0 else enc.input_ids)  # an unreadable row: a placeholder
                self.starts.append(start if start > 0 else enc.response_start)
                self.readable.append(start > 0)
        return spans


def evaluate_response_items(
    engine: BatchEngine,
    items: Sequence[EncodedResponse | RecordError],
    doc_ids: Sequence[str],
    opts: ResponseEvaluationOptions,
    on_bucket: OnBucket | None = None,
) -> list[DocFaithfulness | RecordError]:
    """``evaluate_response_batch`` over length buckets, split and retried on failure; ``on_bucket``
    hears of each bucket as it is evaluated (positions into ``items``).

    Returns:
        Per item, its ``DocFaithfulness`` or a ``RecordError``: the item's own, ``no_context_tokens``
        (nothing before the response that is neither special nor template), or ``model_error``.
    """
    out: list = list(items)
    for i, e in enumerate(items):
        if not isinstance(e, RecordError) and not rankable_context(e).any():
            out[i] = RecordError(
                NO_CONTEXT, "no context token to rank: everything before the response is special or template"
            )
    return engine.map(
        out,
        len,
        lambda positions: evaluate_response_batch(
            engine.model, [out[i] for i in positions], [doc_ids[i] for i in positions], opts
        ),
        batch_tokens=opts.batch_tokens,
        on_bucket=on_bucket,
    )
