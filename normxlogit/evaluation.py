"""Faithfulness of several attribution methods on a batch of texts: scores, rankings, masked predictions.

``evaluate_batch`` does for a batch of encoded texts what METHOD.md's "Faithfulness metrics"
describe: one NormXLogit forward pass gives the normxlogit, logat and norm scores and the original
prediction; the random baseline is seeded per document, once per random seed; the gradient baselines
come from Captum (``normxlogit.baselines``); every ranking's comprehensiveness and sufficiency
variants of every text are then scored in token-budget batches, and the random seeds' figures
averaged per text. The metric arithmetic is ``normxlogit.faithfulness``. ``ferret_scalars`` adds
ferret's metrics (removal rows, leave-one-out rows), Carton et al.'s normalised ones (one empty-input
row) and, through ``ferret_faithfulness.with_scalars``, each method's diagnosticity hits against
random's rankings (``normxlogit.ferret_faithfulness``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from normxlogit.baselines import DEFAULT_IG_STEPS, GRADIENT_METHODS, encoded_gradient_scores, require_captum
from normxlogit.encoding import EncodedText
from normxlogit.engine import BatchEngine, OnBucket
from normxlogit.errors import RecordError
from normxlogit.faithfulness import (
    DEFAULT_RANDOM_SEEDS,
    RANDOM,
    DocFaithfulness,
    average_rows,
    doc_faithfulness,
    perturb,
    random_scores,
    rank_tokens,
    replacement_token,
    rows_per_method,
)
from normxlogit.ferret_evaluation import ferret_scalars
from normxlogit.ferret_faithfulness import DEFAULT_LOO_MAX_TOKENS, with_scalars
from normxlogit.heads import is_regression
from normxlogit.limits import DEFAULT_BATCH_TOKENS
from normxlogit.loading import ScoringModel
from normxlogit.plausibility import doc_plausibility
from normxlogit.scoring import forward_base, pad_rows, plan_batches, score_batch

OWN_METHODS: tuple[str, ...] = ("normxlogit", "logat", "norm")
METHODS: tuple[str, ...] = (*OWN_METHODS, RANDOM, *GRADIENT_METHODS)
# The methods every other method is compared with (paired differences in the summary).
BASELINE_METHODS: tuple[str, ...] = (RANDOM, *GRADIENT_METHODS)


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (unknown method, unsupported model); says what to do."""


@dataclass(frozen=True)
class EvaluationOptions:
    """What to compare and how to batch.

    Attributes:
        methods: method names from ``METHODS``, in output order.
        seed: seed of the random baseline's first ranking.
        ig_steps: Integrated Gradients steps.
        batch_tokens: padded tokens per forward pass (gradient passes use the same budget).
        random_seeds: rankings the random baseline averages per text (seeds seed..seed+R-1).
        loo_max_tokens: ``taucorr_loo`` only for texts of at most this many rankable tokens (one
            extra forward pass per token); 0: never.
        plausibility: also score each method against the records' rationales (``normxlogit.plausibility``).
        rationale_k: words chosen for token_f1_plau / token_iou_plau; None: each rationale's length.
    """

    methods: tuple[str, ...] = METHODS
    seed: int = 0
    ig_steps: int = DEFAULT_IG_STEPS
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    loo_max_tokens: int = DEFAULT_LOO_MAX_TOKENS
    plausibility: bool = False
    rationale_k: int | None = None

    def __post_init__(self) -> None:
        if self.random_seeds < 1 or self.seed < 0 or self.loo_max_tokens < 0:
            raise EvaluationError(
                f"random_seeds >= 1, seed >= 0 and loo_max_tokens >= 0, got {self.random_seeds}, "
                f"{self.seed} and {self.loo_max_tokens}"
            )


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Validate method names; fail fast when a gradient method lacks Captum.

    Raises:
        EvaluationError: an unknown or repeated method, or none at all.
        MissingExtraError: a gradient method without Captum installed.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise EvaluationError(
            f"--methods {','.join(methods)!r}: give distinct names from {', '.join(METHODS)}"
        )
    if any(m in GRADIENT_METHODS for m in methods):
        require_captum()
    return tuple(methods)


def check_evaluable(sm: ScoringModel) -> None:
    """Faithfulness needs a class or next-token prediction: classifiers and causal LMs.

    Raises:
        EvaluationError: a regression head or a masked LM.
    """
    if is_regression(sm.model, sm.adapter) or sm.adapter.task == "masked_lm":
        raise EvaluationError(
            f"{sm.info.architecture}: evaluate needs a classifier or a causal LM (a regression head has no "
            "accuracy; a masked LM reads the mask token that the metrics insert)"
        )


def method_scores(
    sm: ScoringModel, batch: Sequence[EncodedText], doc_ids: Sequence[str], opts: EvaluationOptions
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every method's token scores, and the original prediction, for a batch of texts.

    Returns:
        (scores, predictions, probabilities): per text an (M', n) array, one row per method in
        ``opts.methods`` order, random's ``opts.random_seeds`` rows in place of its one
        (``rows_per_method``); (B,) predicted ids y_hat; (B,) p(y_hat | x).
    """
    atts = score_batch(sm, batch)
    predictions = np.array([a.prediction_id for a in atts], dtype=np.int64)
    per_method: dict[str, list[np.ndarray]] = {
        "normxlogit": [a.score for a in atts],
        "logat": [a.logat for a in atts],
        "norm": [a.norm for a in atts],
        RANDOM: [random_scores(len(e), opts.seed, opts.random_seeds, d) for e, d in zip(batch, doc_ids)],
    }
    for method in (m for m in opts.methods if m in GRADIENT_METHODS):
        per_method[method] = encoded_gradient_scores(
            sm, method, batch, predictions, batch_tokens=opts.batch_tokens, ig_steps=opts.ig_steps
        )
    scores = [
        np.concatenate([np.atleast_2d(per_method[m][b]) for m in opts.methods]) for b in range(len(batch))
    ]
    return scores, predictions, np.array([a.prediction_prob for a in atts], dtype=np.float64)


@torch.inference_mode()
def predict_rows(
    sm: ScoringModel, rows: Sequence[np.ndarray], targets: np.ndarray, batch_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """p(target) and argmax of the model on many token-id rows, in token-budget batches.

    Args:
        rows: token-id arrays (any lengths); the model reads its usual position in each.
        targets: (R,) the id whose probability to return for each row.

    Returns:
        (R,) float64 probabilities and (R,) int64 argmax ids.
    """
    prob = np.zeros(len(rows))
    pred = np.zeros(len(rows), dtype=np.int64)
    for group in plan_batches([len(r) for r in rows], batch_tokens):
        padded = pad_rows([rows[i] for i in group], sm.pad_id, "right")
        lengths = torch.from_numpy(padded.lengths)
        mask = padded.attention_mask.to(sm.device)
        final = forward_base(sm, mask, input_ids=padded.input_ids.to(sm.device)).last_hidden_state
        pooled = lengths - 1 if sm.adapter.pooling == "last" else torch.zeros_like(lengths)
        logits = sm.adapter.class_logits(sm.model, final[torch.arange(len(group)), pooled.to(sm.device)])
        probs = torch.softmax(logits.float(), dim=-1)
        want = torch.from_numpy(targets[group]).to(sm.device)
        prob[group] = probs.gather(1, want[:, None])[:, 0].double().cpu().numpy()
        pred[group] = probs.argmax(-1).cpu().numpy()
    return prob, pred


def evaluate_batch(
    sm: ScoringModel,
    batch: Sequence[EncodedText],
    golds: Sequence[int],
    doc_ids: Sequence[str],
    opts: EvaluationOptions,
    rationales: Sequence[np.ndarray | None] | None = None,
) -> list[DocFaithfulness]:
    """Comprehensiveness and sufficiency of every method on every text of a batch.

    Args:
        sm: the loaded model (a classifier or a causal LM).
        batch: encoded texts (their own targets are ignored: the paper attributes the prediction).
        golds: gold label (class id or next-token id) per text.
        doc_ids: document ids (seed the random baseline).
        opts: methods, seed and batching.
        rationales: with ``opts.plausibility``, each text's rationale (``plausibility.rationale_words``;
            None: the record has none).

    Returns:
        One ``DocFaithfulness`` per text, with (M, 2, K) drops and accuracy hits (random's: the
        mean over its seeds), and with ``opts.plausibility`` its ``DocPlausibility``.
    """
    replacement, _ = replacement_token(sm.tokenizer)
    scores, predictions, probs = method_scores(sm, batch, doc_ids, opts)
    variants = [
        np.stack([perturb(e.input_ids, rank_tokens(s, bool(e.special[0])), replacement) for s in doc_scores])
        for e, doc_scores in zip(batch, scores)
    ]  # per text: (M', 2, K, n)
    shape = variants[0].shape[:3]
    rows = [row for v in variants for row in v.reshape(-1, v.shape[-1])]
    targets = np.repeat(predictions, int(np.prod(shape)))
    masked_prob, masked_pred = predict_rows(sm, rows, targets, opts.batch_tokens)
    masked_prob = masked_prob.reshape(len(batch), *shape)
    masked_pred = masked_pred.reshape(len(batch), *shape)
    method_rows = rows_per_method(opts.methods, opts.random_seeds)
    docs = [
        doc_faithfulness(probs[b], masked_prob[b], masked_pred[b], int(golds[b])) for b in range(len(batch))
    ]
    scalars = ferret_scalars(
        lambda rows, targets: predict_rows(sm, rows, targets, opts.batch_tokens)[0],
        batch,
        scores,
        predictions,
        probs,
        [d.drop for d in docs],
        replacement,
        opts.loo_max_tokens,
    )
    docs = [
        average_rows(with_scalars(d, *v, opts.methods, method_rows, RANDOM), method_rows)
        for d, v in zip(docs, scalars)
    ]
    if opts.plausibility:
        docs = [
            replace(doc, plausibility=doc_plausibility(s, e.word_index, r, method_rows, opts.rationale_k))
            for doc, s, e, r in zip(docs, scores, batch, rationales or [None] * len(batch))
        ]
    return docs


def evaluate_encoded(
    engine: BatchEngine,
    items: Sequence[EncodedText | RecordError],
    golds: Sequence[int | None],
    doc_ids: Sequence[str],
    opts: EvaluationOptions,
    on_bucket: OnBucket | None = None,
    rationales: Sequence[np.ndarray | None] | None = None,
) -> list[DocFaithfulness | RecordError]:
    """``evaluate_batch`` over a whole batch in length buckets, split and retried on failure
    (``BatchEngine.map``).

    Args:
        engine: the batch engine (its ``batch_tokens`` is ignored: ``opts.batch_tokens`` plans).
        items: encoded texts, or the ``RecordError`` that stops one (kept as it is).
        golds: gold label per item (None where ``items`` holds an error).
        on_bucket: hears of each bucket as it is evaluated (positions into ``items``).
        rationales: each item's rationale with ``opts.plausibility`` (see ``evaluate_batch``).

    Returns:
        Per item, its ``DocFaithfulness`` or a ``RecordError`` (``model_error`` when the model
        failed on the text alone).
    """
    return engine.map(
        items,
        len,
        lambda positions: evaluate_batch(
            engine.model,
            [items[i] for i in positions],
            [golds[i] for i in positions],
            [doc_ids[i] for i in positions],
            opts,
            None if rationales is None else [rationales[i] for i in positions],
        ),
        batch_tokens=opts.batch_tokens,
        on_bucket=on_bucket,
    )
