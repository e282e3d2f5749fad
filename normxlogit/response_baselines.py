"""Inputs of the response-level baselines and variants that ``score_responses`` does not give.

Gradient x input for a whole response (plain torch autograd on the input embeddings, the
word-embedding output fed as ``inputs_embeds``, as ``normxlogit.baselines`` does for Captum):

- ``gradient_x_input_signed``: one backward pass of the summed response log-probability
  sum_t log p(y_t | context). The score of token i is the signed sum over the hidden dimension of
  grad * input. Signed because it is exact: grad * input is linear in the gradient, so one backward
  pass gives precisely the sum over steps of each step's signed gradient x input; a norm (L1 or
  L2) does not commute with that sum, so a norm of the single pass would be the norm of a summed
  gradient, which is no per-step quantity. The sign also matches NormXLogit's: positive supports
  the response.
- ``gradient_x_input_l2_steps``: one backward pass per step t (from one forward pass), the L2 norm
  over the hidden dimension of grad_t * input per step, summed over the steps: METHOD.md's trial
  baseline. T backward passes per batch.
- ``integrated_gradients_response``: Captum's Integrated Gradients of the summed response
  log-probability from a baseline token's embedding at every context position to the input, signed
  like the first.

``position_logsumexp`` gives log sum_v exp H(x_i^L)[v] at every position, which turns the summed
raw-logit LogAt into the log-probability variant exactly (``normxlogit.response_evaluation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from normxlogit.baselines import DEFAULT_IG_STEPS, require_captum
from normxlogit.loading import ScoringModel
from normxlogit.responses import EncodedResponse, require_causal_lm
from normxlogit.scoring import forward_base, pad_batch


@dataclass
class ResponseGraph:
    """A differentiable teacher-forced pass over a right-padded batch.

    Attributes:
        embeds: (B, L, D) input embeddings (a leaf that requires grad).
        logprob: (B, T_max) log p(y_t | context), 0 on steps a document does not have.
        live: (B, T_max) bool, the steps each document has.
    """

    embeds: torch.Tensor
    logprob: torch.Tensor
    live: torch.Tensor


@dataclass(frozen=True)
class ResponseBatch:
    """A right-padded batch of pairs on the model's device, with its response steps.

    Attributes:
        ids, mask: (B, L) token ids and attention mask.
        y_pos: (B, T_max) the position of response token t (1 on steps a document does not have).
        live: (B, T_max) bool, the steps each document has.
        context: (B, L) bool, the positions before the response (the prompt or chat).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    y_pos: torch.Tensor
    live: torch.Tensor
    context: torch.Tensor


def response_batch(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> ResponseBatch:
    """``batch`` padded (right) on ``sm``'s device, with the positions of its response steps."""
    require_causal_lm(sm.adapter, sm.info.architecture)
    dev = sm.device
    padded = pad_batch(batch, sm.pad_id, "right")
    ids, mask = padded.input_ids.to(dev), padded.attention_mask.to(dev)
    start = torch.tensor([e.response_start for e in batch], device=dev)
    n_resp = torch.tensor([e.n_response for e in batch], device=dev)
    step = torch.arange(int(n_resp.max()), device=dev)
    live = step[None] < n_resp[:, None]  # (B, T_max)
    y_pos = torch.where(live, start[:, None] + step[None], 1)  # any position >= 1 for a missing step
    context = torch.arange(ids.shape[1], device=dev)[None] < start[:, None]
    return ResponseBatch(ids, mask, y_pos, live, context)


def step_logprobs(
    sm: ScoringModel,
    embeds: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    y_pos: torch.Tensor,
    live: torch.Tensor,
) -> torch.Tensor:
    """(B, T_max) log p(y_t | context) teacher forced from input embeddings, 0 on missing steps."""
    final = forward_base(sm, mask, inputs_embeds=embeds).last_hidden_state
    rows = torch.arange(len(embeds), device=embeds.device)[:, None].expand_as(y_pos)
    logits = sm.adapter.class_logits(sm.model, final[rows, y_pos - 1].reshape(-1, final.shape[-1])).float()
    chosen = logits.log_softmax(-1).gather(1, ids.gather(1, y_pos).reshape(-1, 1))[:, 0]
    return torch.where(live, chosen.reshape(live.shape), 0.0)


def response_graph(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> ResponseGraph:
    """Forward pass on input embeddings with autograd on, full vocabulary at the T positions p_t."""
    b = response_batch(sm, batch)
    embeds = sm.model.get_input_embeddings()(b.ids).detach().requires_grad_()
    with torch.enable_grad():
        logprob = step_logprobs(sm, embeds, b.ids, b.mask, b.y_pos, b.live)
    return ResponseGraph(embeds, logprob, b.live)


def _unpad(scores: torch.Tensor, batch: Sequence[EncodedResponse]) -> list[np.ndarray]:
    scores = scores.detach().float().cpu().numpy()
    return [scores[b, : len(e)].copy() for b, e in enumerate(batch)]


def gradient_x_input_signed(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> list[np.ndarray]:
    """Per document, (n,) sum over the hidden dimension of grad(sum_t log p(y_t)) * input embedding."""
    graph = response_graph(sm, batch)
    (grad,) = torch.autograd.grad(graph.logprob.sum(), graph.embeds)
    return _unpad((grad * graph.embeds).sum(-1), batch)


def gradient_x_input_l2_steps(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> list[np.ndarray]:
    """Per document, (n,) sum over steps t of ||grad(log p(y_t)) * input embedding||_2.

    Documents of a batch are independent, so step t of every document is one backward pass.
    """
    graph = response_graph(sm, batch)
    total = torch.zeros(graph.embeds.shape[:2], device=graph.embeds.device)
    steps = graph.live.shape[1]
    for t in range(steps):
        (grad,) = torch.autograd.grad(graph.logprob[:, t].sum(), graph.embeds, retain_graph=t < steps - 1)
        total += (grad * graph.embeds).norm(dim=-1) * graph.live[:, t, None]
    return _unpad(total, batch)


def integrated_gradients_response(
    sm: ScoringModel, batch: Sequence[EncodedResponse], baseline_id: int, steps: int = DEFAULT_IG_STEPS
) -> list[np.ndarray]:
    """Per document, (n,) Captum Integrated Gradients of the summed response log-probability.

    The path runs from the embedding of ``baseline_id`` at every context position (the prompt or
    chat, template tokens included, as Captum's ``LLMGradientAttribution`` treats its whole input;
    evaluate passes the token it replaces ranked tokens with) to the input, the response's own
    embeddings fixed (teacher forcing), in ``steps`` Gauss-Legendre steps (Captum's default rule), one
    internal batch of the documents per step. Not a zero embedding: RMSNorm (Llama, SmolLM2) turns a
    path through zero into a jump that 50, or 200, steps do not integrate. The score of token i is the
    signed sum over the hidden dimension, as ``gradient_x_input_signed``'s: a document's scores add up
    to log p(response | context) - log p(response | every context token the baseline token)
    (Integrated Gradients' completeness, up to the rule's error); response and padding positions
    score 0.

    Raises:
        MissingExtraError: Captum is not installed.
    """
    attr = require_captum()
    b = response_batch(sm, batch)
    embed = sm.model.get_input_embeddings()
    embeds = embed(b.ids).detach()
    baseline = torch.where(b.context[..., None], embed(torch.full_like(b.ids, baseline_id)).detach(), embeds)

    def summed_logprob(e, ids, mask, y_pos, live):
        return step_logprobs(sm, e, ids, mask, y_pos, live).sum(-1)

    with torch.enable_grad():
        out = attr.IntegratedGradients(summed_logprob).attribute(
            embeds,
            baselines=baseline,
            additional_forward_args=(b.ids, b.mask, b.y_pos, b.live),
            n_steps=steps,
            internal_batch_size=len(batch),
        )
    return _unpad(out.sum(-1), batch)


@torch.inference_mode()
def position_logsumexp(sm: ScoringModel, batch: Sequence[EncodedResponse]) -> list[np.ndarray]:
    """Per document, (n,) logsumexp over the vocabulary of H(x_i^L) at every position.

    One full-vocabulary head pass per position, in chunks (``HeadAdapter.vocab_chunks``).
    """
    padded = pad_batch(batch, sm.pad_id, "right")
    mask = padded.attention_mask.to(sm.device)
    final = forward_base(sm, mask, input_ids=padded.input_ids.to(sm.device)).last_hidden_state
    hidden = final[mask.bool()]  # (N, D) real positions, documents one after another
    parts = [logits.logsumexp(-1) for _, logits in sm.adapter.vocab_chunks(sm.model, hidden)]
    flat = torch.cat(parts).cpu().numpy()
    return np.split(flat, np.cumsum([len(e) for e in batch])[:-1])
