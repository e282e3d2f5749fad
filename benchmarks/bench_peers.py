"""The peers NormXLogit is compared with, run on the same model, texts and batches.

- Captum ``InputXGradient`` (gradient x input) and ``IntegratedGradients`` (50 steps, zero
  baseline), batched over the same length-sorted padded batches as NormXLogit, attributing the
  same target (the model's prediction) at the same pooled position: ``normxlogit.baselines``,
  the code ``normxlogit evaluate`` uses for its gradient baselines.
- For a decoder, Captum's LLM attribution API (``LLMGradientAttribution`` over the input
  embeddings with ``LayerGradientXActivation`` or ``LayerIntegratedGradients``), which takes one
  prompt at a time, attributing the same predicted next token.

Captum attributes a target it is given; to attribute the model's own prediction (what NormXLogit
attributes, and returns along with it) a Captum user first tokenizes and runs the model once to
get that prediction: ``predict`` is that step, timed apart so that both the end-to-end and the
attribution-only figures can be reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

import normxlogit
from normxlogit.baselines import encoded_gradient_scores
from normxlogit.encoding import EncodedText
from normxlogit.evaluation import predict_rows
from normxlogit.loading import ScoringModel
from normxlogit.scoring import plan_batches

IG_STEPS = 50


def predict(sm: ScoringModel, texts: Sequence[str], max_length: int, batch_tokens: int):
    """Tokenize ``texts`` and get the model's predictions with one forward pass per batch.

    Returns:
        (encoded texts, predicted class or next-token id of each).
    """
    encoded = normxlogit.encode_texts(sm, texts, max_length=max_length)
    rows = [e.input_ids for e in encoded]
    _, predictions = predict_rows(sm, rows, np.zeros(len(rows), dtype=np.int64), batch_tokens)
    return encoded, predictions.tolist()


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
        encoded_gradient_scores(
            sm,
            method,
            [encoded[i] for i in idx],
            [targets[i] for i in idx],
            batch_tokens=batch_tokens,
            ig_steps=IG_STEPS,
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
