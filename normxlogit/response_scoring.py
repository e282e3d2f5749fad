"""Score responses of causal LMs: one teacher-forced forward pass per padded batch.

``score_responses`` runs the base model once on prompt + response (``scoring.forward_base``: the
model's lock, the layer-0 hook, positions from the attention mask) and reads the LM head's T
response rows at every position: ``(B, n, d) x (B, T, d) -> (B, n, T)`` logits H(x_i)[y_t]. Step t
applies to the context i <= p_t (p_t = position of y_t minus 1). Per token (METHOD.md, "Responses of
causal LMs"):

    logat_i   = sum over steps t with p_t >= i of H(x_i^L)[y_t]
    score_i   = ||x_i^0||_2 * logat_i
    n_steps_i = how many such steps (T for prompt tokens, T - s for y_s, 0 for y_T)

The full vocabulary is read only at the T positions p_t, for ``target_logprob`` and, at p_1, the
model's own greedy first token (``prediction_id``, ``prediction_prob``).

With a foil (``ResponseFoil.TOP``, METHOD.md's contrastive rule) step t reads H(x_i^L)[y_t] -
H(x_i^L)[f_t], f_t the model's most likely token at p_t other than y_t, found in that same
full-vocabulary pass; the head then reads 2T rows, ``(B, n, d) x (B, 2T, d)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from normxlogit.flat_tokens import block_gather
from normxlogit.loading import ScoringModel
from normxlogit.response_spec import ResponseFoil
from normxlogit.responses import EncodedResponse, require_causal_lm
from normxlogit.scoring import PaddedBatch, forward_base, pad_batch


@dataclass
class ResponseScores:
    """Response-level scores of D documents, columnar: per-token arrays hold them one after another.

    Attributes:
        lengths: (D,) int64 tokens per document (prompt + response).
        response_length: (D,) int64 T, response tokens per document.
        prediction_id: (D,) int64 the model's greedy token at p_1 (what it would answer first).
        prediction_prob: (D,) float32 its softmax probability there.
        norm: (N,) float32 ||x_i^0||, N = lengths.sum().
        logat: (N,) float32 LogAt summed over the steps the token is context for (0 if none).
        score: (N,) float32 norm * logat.
        n_steps: (N,) int32 how many response steps the token is context for.
        target_logprob: (N,) float32 log p(y_t | context) on response token y_t; NaN on the prompt.
        foil_id: (N,) int64 step t's foil f_t on response token y_t when scored with a foil; -1 on
            the prompt and without a foil.
        step_score: per-step NormXLogit, or None (``step_scores=False``): each document's
            (lengths[d], T_d) matrix, row-major, documents one after another; NaN where step t does
            not apply (i > p_t). Token row k's T_d values are ``step_score[o[k]:o[k+1]]`` with
            ``o = step_offsets()`` (an Arrow list column's offsets).
    """

    lengths: np.ndarray
    response_length: np.ndarray
    prediction_id: np.ndarray
    prediction_prob: np.ndarray
    norm: np.ndarray
    logat: np.ndarray
    score: np.ndarray
    n_steps: np.ndarray
    target_logprob: np.ndarray
    foil_id: np.ndarray
    step_score: np.ndarray | None = None

    _DOC_FIELDS = ("lengths", "response_length", "prediction_id", "prediction_prob")
    _TOKEN_FIELDS = ("norm", "logat", "score", "n_steps", "target_logprob", "foil_id")

    @classmethod
    def concat(cls, parts: Sequence[ResponseScores], steps: bool) -> ResponseScores:
        """The documents of ``parts`` one after another (an empty result when there are none)."""
        if not parts:
            f32, i64 = np.zeros(0, np.float32), np.zeros(0, np.int64)
            i32 = np.zeros(0, np.int32)
            return cls(i64, i64, i64, f32, f32, f32, f32, i32, f32, i64, f32 if steps else None)
        names = (*cls._DOC_FIELDS, *cls._TOKEN_FIELDS) + (("step_score",) if steps else ())
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})

    def reorder(self, perm: np.ndarray) -> ResponseScores:
        """The documents in the order ``perm`` (new document j is old document ``perm[j]``)."""
        perm = np.asarray(perm, dtype=np.int64)
        tokens = block_gather(self.lengths, perm)
        out = {name: getattr(self, name)[perm] for name in self._DOC_FIELDS}
        out.update({name: getattr(self, name)[tokens] for name in self._TOKEN_FIELDS})
        if self.step_score is not None:
            out["step_score"] = self.step_score[block_gather(self.lengths * self.response_length, perm)]
        return ResponseScores(**out)

    @property
    def tokens(self) -> int:
        """N, the token rows."""
        return int(self.lengths.sum())

    def step_offsets(self) -> np.ndarray:
        """(N + 1,) int64: token row k's per-step scores are ``step_score[o[k]:o[k+1]]``."""
        per_token = np.repeat(self.response_length, self.lengths)
        return np.r_[0, np.cumsum(per_token)].astype(np.int64)

    def step_matrix(self, d: int) -> np.ndarray:
        """(lengths[d], T_d) per-step NormXLogit of document d (NaN where a step does not apply)."""
        if self.step_score is None:
            raise ValueError("per-step scores were not kept; score with step_scores=True")
        sizes = self.lengths * self.response_length
        start = int(sizes[:d].sum())
        return self.step_score[start : start + int(sizes[d])].reshape(int(self.lengths[d]), -1)

    def document(self, d: int) -> slice:
        """Token rows of document d in the per-token arrays."""
        end = int(self.lengths[: d + 1].sum())
        return slice(end - int(self.lengths[d]), end)


@dataclass(frozen=True)
class PreparedResponses:
    """A bucket of pairs made ready on the host (``prepare_responses``) for ``score_prepared_responses``.

    Attributes:
        padded: ids, mask, left shift and real tokens per document.
        start: (B,) position of each document's first response token, before padding.
        n_response: (B,) response tokens per document.
    """

    padded: PaddedBatch
    start: torch.Tensor
    n_response: torch.Tensor


def prepare_responses(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> PreparedResponses:
    """The host's part of scoring a bucket of pairs: pad it, gather where each response starts.

    Raises:
        UnsupportedModelError: the model is not a causal LM.
    """
    require_causal_lm(sm.adapter, sm.info.architecture)
    return PreparedResponses(
        padded=pad_batch(batch, sm.pad_id, sm.padding_side),
        start=torch.tensor([e.response_start for e in batch], dtype=torch.int64),
        n_response=torch.tensor([e.n_response for e in batch], dtype=torch.int64),
    )


def score_responses(
    sm: ScoringModel,
    batch: Sequence[EncodedResponse],
    step_scores: bool = False,
    foil: ResponseFoil | None = None,
) -> ResponseScores:
    """Response-level NormXLogit of a batch with one teacher-forced forward pass.

    Args:
        sm: a loaded causal LM (either padding side).
        batch: encoded prompt/response pairs (``normxlogit.responses``, ``normxlogit.chat``).
        step_scores: also keep every step's NormXLogit (``ResponseScores.step_score``).
        foil: each step's contrastive foil (``ResponseFoil.TOP``); None: target logits alone.

    Returns:
        ``ResponseScores`` of the documents, in order. Equal to T separate next-token runs on the
        growing prefixes, summed per context token (tested), whatever the batch and padding; with
        a foil, to 2T runs (target y_t minus foil f_t).

    Raises:
        UnsupportedModelError: the model is not a causal LM.
    """
    return score_prepared_responses(sm, prepare_responses(sm, batch), step_scores, foil)


@torch.inference_mode()
def score_prepared_responses(
    sm: ScoringModel,
    prepared: PreparedResponses,
    step_scores: bool = False,
    foil: ResponseFoil | None = None,
) -> ResponseScores:
    """The device's part of ``score_responses``: the forward pass, the per-step heads and the copy
    back (``BatchEngine`` runs it on the model's forward thread)."""
    dev = sm.device
    padded = prepared.padded
    ids = padded.input_ids.to(dev)
    mask = padded.attention_mask.to(dev)
    shift = padded.shift.to(dev)
    out = forward_base(sm, mask, input_ids=ids, capture_layer0=True)
    final = out.last_hidden_state  # (B, L, D)
    norm = out.layer0.float().norm(dim=-1)  # (B, L)

    start = prepared.start.to(dev)  # (B,) y_1's position
    n_resp = prepared.n_response.to(dev)  # (B,) T
    step = torch.arange(int(n_resp.max()), device=dev)  # (T_max,) step t - 1
    live = step[None] < n_resp[:, None]  # (B, T_max) steps each document has
    width = ids.shape[1]
    y_pos = (shift + start)[:, None] + step[None]  # (B, T_max) padded position of y_t
    y_pos = torch.where(live, y_pos, width - 1)  # any real column for a missing step
    targets = ids.gather(1, y_pos)  # (B, T_max) response ids

    rows, steps = live.nonzero(as_tuple=True)
    vocab = _step_vocab(sm, final[rows, y_pos[rows, steps] - 1], targets[rows, steps], foil is not None)
    target_logprob = torch.full_like(norm, float("nan"))
    target_logprob[rows, y_pos[rows, steps]] = vocab.logprob
    foil_id = torch.full_like(ids, -1)
    if vocab.foil is None:
        logits = sm.adapter.target_logits(sm.model, final, targets).float()  # (B, L, T_max)
    else:
        foils = targets.clone()  # a missing step reads its (masked) target twice
        foils[rows, steps] = vocab.foil
        foil_id[rows, y_pos[rows, steps]] = vocab.foil
        pair = sm.adapter.target_logits(sm.model, final, torch.cat([targets, foils], 1)).float()
        logits = pair[..., : targets.shape[1]] - pair[..., targets.shape[1] :]  # (B, L, T_max)

    # Step t applies to token i when i <= p_t = y_pos - 1, on real tokens of the same document.
    col = torch.arange(width, device=dev)
    applies = (col[None, :, None] < y_pos[:, None, :]) & live[:, None, :] & mask.bool()[:, :, None]
    logat = torch.where(applies, logits, 0.0).sum(-1)  # (B, L)
    n_steps = applies.sum(-1)
    first = steps == 0  # every document has T >= 1 steps: one first step per row, in row order

    real = mask.bool()
    score = norm * logat
    result = ResponseScores(
        lengths=padded.lengths,
        response_length=n_resp.cpu().numpy().astype(np.int64),
        prediction_id=vocab.best[first].cpu().numpy().astype(np.int64),
        prediction_prob=vocab.best_logprob[first].exp().cpu().numpy().astype(np.float32),
        norm=norm[real].cpu().numpy(),
        logat=logat[real].cpu().numpy(),
        score=score[real].cpu().numpy(),
        n_steps=n_steps[real].cpu().numpy().astype(np.int32),
        target_logprob=target_logprob[real].cpu().numpy(),
        foil_id=foil_id[real].cpu().numpy().astype(np.int64),
    )
    if step_scores:
        per_step = torch.where(applies, norm[..., None] * logits, float("nan"))  # (B, L, T_max)
        blocks = [per_step[b, real[b], : int(t)].reshape(-1) for b, t in enumerate(n_resp.tolist())]
        result.step_score = torch.cat(blocks).cpu().numpy()
    return result


@dataclass(frozen=True)
class _StepVocab:
    """What one full-vocabulary pass gives at M step positions, each (M,).

    Attributes:
        logprob: log p(target).
        best: the argmax token.
        best_logprob: its log-probability.
        foil: the highest-logit token other than the target, or None when not asked for.
    """

    logprob: torch.Tensor
    best: torch.Tensor
    best_logprob: torch.Tensor
    foil: torch.Tensor | None


def _step_vocab(sm: ScoringModel, hidden: torch.Tensor, targets: torch.Tensor, foil: bool) -> _StepVocab:
    """For hidden: (M, D) and targets: (M,), in chunks of positions (``HeadAdapter.vocab_chunks``):
    log_softmax(LM head(hidden)) at the target, the argmax token and its log-probability, and with
    ``foil`` the most likely token other than the target (the runner-up where the target is first)."""
    chosen, best, best_lp, foils = [], [], [], []
    for rows, logits in sm.adapter.vocab_chunks(sm.model, hidden):  # logits: (m, V)
        total = logits.logsumexp(-1)
        top, arg = logits.max(-1)
        chosen.append(logits.gather(1, targets[rows, None])[:, 0] - total)
        best.append(arg)
        best_lp.append(top - total)
        if foil:  # the chunk is read for the last time: rule the target out in place
            foils.append(logits.scatter_(1, targets[rows, None], float("-inf")).argmax(-1))
    long = torch.zeros(0, dtype=torch.long, device=hidden.device)
    empty = hidden.new_zeros(0, dtype=torch.float32)

    def cat(parts: list[torch.Tensor], none: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts) if parts else none

    return _StepVocab(
        logprob=cat(chosen, empty),
        best=cat(best, long),
        best_logprob=cat(best_lp, empty),
        foil=cat(foils, long) if foil else None,
    )
