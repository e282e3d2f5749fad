"""Gradient attribution baselines of the paper's faithfulness table, computed with Captum.

Each method attributes the target's logit at the pooled position to the input embeddings (the
word-embedding output fed as ``inputs_embeds``; for BERT-like models the position/type embeddings
and the embedding LayerNorm come after it), and a token's score is the L1 norm of its attribution
over the hidden dimension, as the paper did:

- ``gradient_norm``: Captum ``Saliency`` (the gradient itself);
- ``gradient_x_input``: Captum ``InputXGradient``;
- ``integrated_gradients``: Captum ``IntegratedGradients`` with a zero baseline (50 steps by default).

Captum is an optional extra (``pip install "normxlogit[eval]"``) and is imported only when a
gradient method is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from normxlogit.encoding import EncodedText
from normxlogit.loading import ScoringModel
from normxlogit.scoring import forward_base, pad_batch

GRADIENT_METHODS: tuple[str, ...] = ("gradient_norm", "gradient_x_input", "integrated_gradients")
DEFAULT_IG_STEPS = 50
INSTALL_HINT = 'pip install "normxlogit[eval]"'


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def require_captum():
    """The ``captum.attr`` module, or a ``MissingExtraError`` that says how to install it."""
    try:
        import captum.attr
    except ImportError as err:
        raise MissingExtraError(
            f"the gradient baselines ({', '.join(GRADIENT_METHODS)}) need Captum: {INSTALL_HINT}"
        ) from err
    return captum.attr


def pooled_logits_function(sm: ScoringModel) -> Callable[..., torch.Tensor]:
    """A forward function ``f(inputs_embeds, attention_mask, pooled_pos) -> (B, C)`` for Captum.

    It runs the base model on embeddings and applies the model's own head at the position the
    model reads (class logits, or vocabulary logits for a causal LM), so Captum's ``target``
    selects the attributed class or token.
    """
    model, adapter = sm.model, sm.adapter

    def forward(embeds: torch.Tensor, attention_mask: torch.Tensor, pooled_pos: torch.Tensor) -> torch.Tensor:
        final = forward_base(sm, attention_mask, inputs_embeds=embeds).last_hidden_state
        rows = torch.arange(final.shape[0], device=final.device)
        return adapter.class_logits(model, final[rows, pooled_pos])

    return forward


def gradient_scores(
    sm: ScoringModel,
    method: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pooled_pos: torch.Tensor,
    targets: torch.Tensor,
    *,
    ig_steps: int = DEFAULT_IG_STEPS,
    internal_batch_size: int | None = None,
) -> torch.Tensor:
    """Token scores of one gradient baseline for a padded batch.

    Args:
        sm: the loaded model.
        method: one of ``GRADIENT_METHODS``.
        input_ids, attention_mask: (B, T) a padded batch.
        pooled_pos: (B,) the position the head reads in each row.
        targets: (B,) the class or token id to attribute (the model's prediction in the paper).
        ig_steps: Integrated Gradients steps (Gauss-Legendre, Captum's default rule).
        internal_batch_size: rows per Integrated Gradients forward pass (bounds memory).

    Returns:
        (B, T) float32: the L1 norm over the hidden dimension of each token's attribution.

    Raises:
        MissingExtraError: Captum is not installed.
        ValueError: an unknown method.
    """
    attr = require_captum()
    forward = pooled_logits_function(sm)
    embeds = sm.model.get_input_embeddings()(input_ids.to(sm.device)).detach().requires_grad_()
    extra = (attention_mask.to(sm.device), pooled_pos.to(sm.device))
    targets = targets.to(sm.device)
    with torch.enable_grad():
        if method == "gradient_norm":
            out = attr.Saliency(forward).attribute(
                embeds, target=targets, abs=True, additional_forward_args=extra
            )
        elif method == "gradient_x_input":
            out = attr.InputXGradient(forward).attribute(
                embeds, target=targets, additional_forward_args=extra
            )
        elif method == "integrated_gradients":
            out = attr.IntegratedGradients(forward).attribute(
                embeds,
                baselines=torch.zeros_like(embeds),
                target=targets,
                additional_forward_args=extra,
                n_steps=ig_steps,
                internal_batch_size=internal_batch_size,
            )
        else:
            raise ValueError(f"unknown gradient method {method!r}; choose from {', '.join(GRADIENT_METHODS)}")
    return out.detach().float().abs().sum(-1)


def encoded_gradient_scores(
    sm: ScoringModel,
    method: str,
    batch: Sequence[EncodedText],
    targets: Sequence[int] | np.ndarray,
    *,
    batch_tokens: int,
    ig_steps: int = DEFAULT_IG_STEPS,
) -> list[np.ndarray]:
    """``gradient_scores`` for encoded texts, padded (right) into one batch.

    Integrated Gradients runs its steps in internal batches of at most ``batch_tokens`` padded
    positions.

    Returns:
        Per text, its (n,) float32 token scores.
    """
    padded = pad_batch(batch, sm.pad_id, "right")
    grad = gradient_scores(
        sm,
        method,
        padded.input_ids,
        padded.attention_mask,
        torch.tensor([e.pooled_position for e in batch]),
        torch.as_tensor(np.asarray(targets, dtype=np.int64)),
        ig_steps=ig_steps,
        internal_batch_size=max(1, batch_tokens // padded.input_ids.shape[1]),
    )
    grad = grad.cpu().numpy()
    return [grad[b, : len(e)] for b, e in enumerate(batch)]
