"""Captum gradient baselines against a direct torch autograd computation on tiny models."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import normxlogit
from normxlogit.baselines import MissingExtraError, gradient_scores, pooled_logits_function, require_captum
from normxlogit.evaluation import check_methods
from normxlogit.scoring import pad_batch

TEXTS = ["A wonderful, heartfelt film with great acting.", "Dull plot."]


def _batch(sm):
    enc = [normxlogit.encode_text(t, sm.tokenizer, sm.model, sm.adapter, max_length=64) for t in TEXTS]
    padded = pad_batch(enc, sm.pad_id, "right")
    pooled = torch.tensor([e.pooled_position for e in enc])
    return padded.input_ids, padded.attention_mask, pooled


def _target_logit(sm, embeds, mask, pooled, targets):
    """The attributed logit summed over the batch, through the model's own forward (not the adapter)."""
    logits = sm.model(inputs_embeds=embeds, attention_mask=mask).logits
    if logits.dim() == 3:  # causal LM: the pooled position's vocabulary logits
        logits = logits[torch.arange(len(pooled)), pooled]
    return logits.gather(1, targets[:, None]).sum()


def _gradient(sm, embeds, mask, pooled, targets):
    embeds = embeds.detach().requires_grad_()
    (grad,) = torch.autograd.grad(_target_logit(sm, embeds, mask, pooled, targets), embeds)
    return grad


@pytest.fixture(scope="module", params=["tiny_classifier", "tiny_causal_lm"])
def setup(request):
    sm = normxlogit.load_model(request.getfixturevalue(request.param))
    ids, mask, pooled = _batch(sm)
    targets = torch.tensor([1, 0]) if sm.adapter.task == "classification" else torch.tensor([2023, 7592])
    embeds = sm.model.get_input_embeddings()(ids).detach()
    return sm, ids, mask, pooled, targets, embeds


def test_gradient_norm_and_gradient_x_input_match_autograd(setup):
    sm, ids, mask, pooled, targets, embeds = setup
    grad = _gradient(sm, embeds, mask, pooled, targets)
    real = mask.bool()
    for method, expected in (
        ("gradient_norm", grad.abs().sum(-1)),
        ("gradient_x_input", (grad * embeds).abs().sum(-1)),
    ):
        got = gradient_scores(sm, method, ids, mask, pooled, targets)
        assert got.shape == ids.shape
        torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-7)


def test_integrated_gradients_match_gauss_legendre_autograd(setup):
    sm, ids, mask, pooled, targets, embeds = setup
    steps = 8
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    total = torch.zeros_like(embeds)
    for a, w in zip(0.5 * (nodes + 1), 0.5 * weights):  # the rule on [0, 1]
        total += float(w) * _gradient(sm, float(a) * embeds, mask, pooled, targets)
    expected = (embeds * total).abs().sum(-1)
    got = gradient_scores(
        sm, "integrated_gradients", ids, mask, pooled, targets, ig_steps=steps, internal_batch_size=3
    )
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-7)


def test_integrated_gradients_are_complete(setup):
    """Signed IG attributions sum to f(x) - f(0): a check independent of the quadrature code."""
    sm, ids, mask, pooled, targets, embeds = setup
    attr = require_captum()
    forward = pooled_logits_function(sm)
    ig = attr.IntegratedGradients(forward).attribute(
        embeds,
        baselines=torch.zeros_like(embeds),
        target=targets,
        additional_forward_args=(mask, pooled),
        n_steps=200,
    )
    with torch.no_grad():
        gap = (forward(embeds, mask, pooled) - forward(torch.zeros_like(embeds), mask, pooled)).gather(
            1, targets[:, None]
        )
    torch.testing.assert_close(ig.sum((1, 2)), gap[:, 0].to(ig.dtype), rtol=2e-2, atol=2e-3)


def test_missing_captum_fails_fast_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(MissingExtraError, match=r'pip install "normxlogit\[eval\]"'):
        check_methods(("normxlogit", "integrated_gradients"))
    assert check_methods(("normxlogit", "random")) == ("normxlogit", "random")  # no Captum needed
