"""Response-level faithfulness (ours): how much a response's teacher-forced log-probability depends
on the context tokens an attribution ranks highest.

METHOD.md's deletion test of the paper, moved from one prediction to a whole response
r = y_1..y_T. Only *rankable* context tokens take part: positions before y_1 that are neither special
tokens nor tokens a chat template wrote (role markers, a default system prompt); the response itself
is never replaced. For n_c rankable tokens ranked by a method's scores and k in 10%..90%,
m = floor(k * n_c):

- comprehensiveness replaces the top m ranked context tokens with the replacement token
  (``faithfulness.replacement_token``: mask, else unk, else pad);
- sufficiency replaces every ranked context token after the top m.

The figure is the drop of the response's mean per-token log-probability, teacher forced:
mean_t log p(y_t | x) - mean_t log p(y_t | x'), not clipped (comprehensiveness: higher is better;
sufficiency: lower is better). Beside it, the "accuracy" is the share of response tokens that are
still the model's argmax at their step (1 for the model's own greedy answer before any replacement).
A document's figures are ``faithfulness.DocFaithfulness`` values, so ``CurveSums`` aggregates them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from normxlogit.faithfulness import PERCENTS, DocFaithfulness, perturb
from normxlogit.loading import ScoringModel
from normxlogit.responses import SEGMENT_CODE, EncodedResponse
from normxlogit.scoring import forward_base, pad_rows, plan_batches


def rankable_context(enc: EncodedResponse) -> np.ndarray:
    """(n,) bool: the context tokens a method ranks and the metrics may replace.

    Positions before the response, less special tokens (BOS, ``<|im_start|>``) and tokens with the
    ``template`` segment (what a chat template added around the messages).
    """
    before = np.arange(len(enc)) < enc.response_start
    return before & ~np.asarray(enc.special, dtype=bool) & (enc.segment != SEGMENT_CODE["template"])


def rank_context(scores: np.ndarray, rankable: np.ndarray) -> np.ndarray:
    """Rankable positions by score, largest first (ties: earlier position first)."""
    positions = np.flatnonzero(rankable)
    order = np.argsort(-np.asarray(scores, dtype=np.float64)[positions], kind="stable")
    return positions[order]


def perturb_context(
    enc: EncodedResponse, scores: np.ndarray, replacement: int, percents: tuple[int, ...] = PERCENTS
) -> np.ndarray:
    """Comprehensiveness and sufficiency variants of one prompt/response pair for every k.

    Returns:
        (2, K, n) int64 token ids: ``[0, j]`` with the top m_j rankable context tokens replaced,
        ``[1, j]`` with every other rankable context token replaced; m_j = floor(k_j * n_c).
    """
    rankable = rankable_context(enc)
    ranking = rank_context(scores, rankable)
    return perturb(enc.input_ids, ranking, replacement, percents, base=int(rankable.sum()))


@torch.inference_mode()
def response_logprobs(
    sm: ScoringModel, rows: Sequence[np.ndarray], starts: Sequence[int], batch_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced mean log-probability of each row's response, and its argmax agreement.

    Args:
        rows: token-id arrays; row r's response is ``rows[r][starts[r]:]`` (at least one token,
            ``starts[r] >= 1``).
        starts: position of y_1 in each row.
        batch_tokens: padded tokens per forward pass (``plan_batches``).

    Returns:
        (R,) float64 mean over t of log p(y_t | row[:p_t + 1]); (R,) float64 share of response
        tokens that are the argmax of their step.
    """
    mean_lp = np.zeros(len(rows))
    agree = np.zeros(len(rows))
    dev = sm.device
    for group in plan_batches([len(r) for r in rows], batch_tokens):
        padded = pad_rows([rows[i] for i in group], sm.pad_id, "right")
        ids, lengths = padded.input_ids, torch.from_numpy(padded.lengths)
        final = forward_base(sm, padded.attention_mask.to(dev), input_ids=ids.to(dev)).last_hidden_state
        first = torch.tensor([starts[i] for i in group])
        steps = lengths - first  # (G,) T per row
        doc = torch.repeat_interleave(torch.arange(len(group)), steps)  # (M,) row of each step
        step_start = torch.cumsum(steps, 0) - steps  # (G,) each row's first step among the M
        y_pos = first[doc] + torch.arange(len(doc)) - step_start[doc]  # (M,) position of each y_t
        lp, hit = _target_logprobs_and_hits(
            sm, final[doc.to(dev), (y_pos - 1).to(dev)], ids[doc, y_pos].to(dev)
        )
        per_row = torch.zeros(2, len(group), dtype=torch.float64).index_add_(1, doc, torch.stack([lp, hit]))
        mean_lp[group], agree[group] = (per_row / steps).numpy()
    return mean_lp, agree


def _target_logprobs_and_hits(
    sm: ScoringModel, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For hidden: (M, D) and targets: (M,): float64 log_softmax(LM head)[target] and argmax hits."""
    lps, hits = [], []
    for rows, logits in sm.adapter.vocab_chunks(sm.model, hidden):  # logits: (m, V)
        want = targets[rows]
        lps.append(torch.log_softmax(logits, -1).gather(1, want[:, None])[:, 0])
        hits.append(logits.argmax(-1) == want)
    return torch.cat(lps).double().cpu(), torch.cat(hits).double().cpu()


def doc_response_faithfulness(
    original: tuple[float, float], perturbed: tuple[np.ndarray, np.ndarray]
) -> DocFaithfulness:
    """One pair's drops and argmax agreement from ``response_logprobs`` figures.

    Args:
        original: (mean log-probability, argmax agreement) of the unperturbed pair.
        perturbed: (M, 2, K) arrays of the same for every method, metric and k.
    """
    mean_lp, agree = perturbed
    return DocFaithfulness(drop=float(original[0]) - np.asarray(mean_lp, dtype=np.float64), correct=agree)
