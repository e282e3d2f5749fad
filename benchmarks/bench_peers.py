"""The peers NormXLogit is compared with, run on the same model, texts and batches.

- Captum ``InputXGradient`` (gradient x input) and ``IntegratedGradients`` (50 steps, zero
  baseline), batched over the same length-sorted padded batches as NormXLogit, attributing the
  same target (the model's prediction) at the same pooled position: ``normxlogit.baselines``,
  the code ``normxlogit evaluate`` uses for its gradient baselines.
- For a decoder, Captum's LLM attribution API (``LLMGradientAttribution`` over the input
  embeddings with ``LayerGradientXActivation`` or ``LayerIntegratedGradients``), which takes one
  prompt at a time, attributing the same predicted next token.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from normxlogit.baselines import gradient_scores
from normxlogit.encoding import EncodedText
from normxlogit.loading import ScoringModel
from normxlogit.scoring import pad_batch, plan_batches

IG_STEPS = 50


def gradient_seconds(
    sm: ScoringModel,
    encoded: Sequence[EncodedText],
    targets: Sequence[int],
    method: str,
    batch_tokens: int,
) -> float:
    """Wall seconds of one Captum gradient method over ``encoded``, in NormXLogit's batches.

    Integrated Gradients runs its 50 steps in internal batches of at most ``batch_tokens``
    padded positions, the same memory bound the scorer uses.
    """
    start = time.perf_counter()
    for idx in plan_batches([len(e) for e in encoded], batch_tokens):
        texts = [encoded[i] for i in idx]
        padded = pad_batch(texts, sm.pad_id, sm.padding_side)
        pooled = torch.tensor([e.pooled_position for e in texts]) + padded.shift
        width = padded.input_ids.shape[1]
        gradient_scores(
            sm,
            method,
            padded.input_ids,
            padded.attention_mask,
            pooled,
            torch.tensor([targets[i] for i in idx]),
            ig_steps=IG_STEPS,
            internal_batch_size=max(1, batch_tokens // width),
        )
    return time.perf_counter() - start


def llm_attribution_seconds(
    sm: ScoringModel, texts: Sequence[str], targets: Sequence[int], method: str, batch_tokens: int
) -> float:
    """Wall seconds of Captum's LLM attribution over ``texts``, one prompt at a time.

    Args:
        method: ``gradient_x_input`` (``LayerGradientXActivation``) or ``integrated_gradients``
            (``LayerIntegratedGradients``, 50 steps, internal batches within ``batch_tokens``).
        targets: the predicted next token of each text.
    """
    from captum.attr import (
        LayerGradientXActivation,
        LayerIntegratedGradients,
        LLMGradientAttribution,
        TextTokenInput,
    )

    embeddings = sm.model.get_input_embeddings()
    if method == "gradient_x_input":
        attr, extra = LayerGradientXActivation(sm.model, embeddings), {}
    else:
        attr, extra = LayerIntegratedGradients(sm.model, embeddings), {"n_steps": IG_STEPS}
    llm = LLMGradientAttribution(attr, sm.tokenizer)
    start = time.perf_counter()
    for text, target in zip(texts, targets):
        prompt = TextTokenInput(text, sm.tokenizer)
        if method != "gradient_x_input":
            extra["internal_batch_size"] = max(1, batch_tokens // (prompt.to_tensor().shape[-1] + 1))
        llm.attribute(prompt, target=torch.tensor([target]), **extra)
    return time.perf_counter() - start
