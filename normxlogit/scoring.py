"""Batched NormXLogit: one forward pass of the base model, the head on every token vector.

``score_batch`` pads a batch of ``EncodedText`` (left or right), runs the base transformer once
with a hook that keeps only the layer-0 hidden states (no ``output_hidden_states`` unless
layer-wise scores are asked for), and applies the family's head adapter to all final token
vectors in one batched call. Per METHOD.md:

    norm_i  = ||x_i^0||_2
    logat_i = H(x_i^L)[y]            (minus H(x_i^L)[foil] with a foil)
            = |H(x_i^L) - H(x_p^L)|  (regression heads)
    score_i = norm_i * logat_i
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from normxlogit.encoding import EncodedText
from normxlogit.heads import is_regression
from normxlogit.loading import ScoringModel


@dataclass
class Attribution:
    """Scores of one text, aligned with its ``EncodedText`` tokens.

    Attributes:
        norm, logat, score: (n,) float32.
        layer_logat: (n, len(layers)) float32 LogAt at the requested layers, or None.
        target_id: the attributed class or token id.
        foil_id: the contrastive foil id, or None.
        prediction_id: the model's own prediction (None for regression).
        prediction_prob: softmax probability of the prediction at the pooled position
            (None for regression).
        prediction_value: the regression output, or the prediction's logit.
    """

    norm: np.ndarray
    logat: np.ndarray
    score: np.ndarray
    layer_logat: np.ndarray | None
    target_id: int
    foil_id: int | None
    prediction_id: int | None
    prediction_prob: float | None
    prediction_value: float


@dataclass(frozen=True)
class PaddedBatch:
    """A batch as tensors. ``shift``: (B,) left-padding added before each text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    shift: torch.Tensor


def pad_batch(batch: Sequence[EncodedText], pad_id: int, side: str) -> PaddedBatch:
    """Pad token ids to the longest text of the batch on the given side ("left"/"right")."""
    lengths = np.array([len(e) for e in batch])
    width = int(lengths.max())
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    shift = width - lengths if side == "left" else np.zeros_like(lengths)
    for row, (e, s) in enumerate(zip(batch, shift)):
        ids[row, s : s + len(e)] = e.input_ids
        mask[row, s : s + len(e)] = 1
    return PaddedBatch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(shift))


MAX_PADDING = 1.15


def plan_batches(
    lengths: Sequence[int], batch_tokens: int, max_padding: float = MAX_PADDING
) -> list[list[int]]:
    """Group texts into batches of similar length whose padded size fits a token budget.

    Texts are sorted by length (stable, so the plan is deterministic) and cut greedily so that
    ``len(batch) * longest <= batch_tokens`` (a text longer than the budget goes alone) and the
    padded size stays within ``max_padding`` times the batch's real tokens: padding is forward
    compute spent on nothing, and on a mixed corpus a budget alone pads batches to about 2x.

    Returns:
        Lists of indices into ``lengths``, shortest texts first.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order.tolist():
        padded = (len(current) + 1) * lengths[i]  # sorted: this text is the batch's longest
        if current and (padded > batch_tokens or padded > max_padding * (real + lengths[i])):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches


class _FirstInputCapture:
    """Forward pre-hook that keeps the first input of a layer: ``hidden_states[0]``.

    ALBERT calls its shared layer group once per layer; only the first call is layer 0.
    """

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, module, args, kwargs):
        if self.value is None:
            self.value = args[0] if args else kwargs["hidden_states"]


@torch.inference_mode()
def score_batch(
    sm: ScoringModel, batch: Sequence[EncodedText], layers: Sequence[int] = ()
) -> list[Attribution]:
    """Score a batch of encoded texts with one forward pass.

    Args:
        sm: the loaded model, tokenizer and head adapter.
        batch: encoded texts; any lengths, any mix of targets.
        layers: optional layer numbers 1..L for layer-wise LogAt (``hidden_states[l]``).

    Returns:
        One ``Attribution`` per text, in order. Scores do not depend on the batch or the padding
        side (tested).
    """
    model, adapter = sm.model, sm.adapter
    padded = pad_batch(batch, sm.pad_id, sm.padding_side)
    ids = padded.input_ids.to(sm.device)
    mask = padded.attention_mask.to(sm.device)
    shift = padded.shift.to(sm.device)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if adapter.position_ids:
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if layers:
        kwargs["output_hidden_states"] = True

    capture = _FirstInputCapture()
    first_layer = sm.base.get_submodule(adapter.layers)[0]
    handle = first_layer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        out = sm.base(**kwargs)
    finally:
        handle.remove()
    final = out.last_hidden_state  # (B, T, D)
    norm = capture.value.float().norm(dim=-1)  # (B, T)

    rows = torch.arange(len(batch), device=sm.device)
    pooled_pos = torch.tensor([e.pooled_position for e in batch], device=sm.device) + shift
    pooled_logits = adapter.class_logits(model, final[rows, pooled_pos]).float()  # (B, C)
    regression = is_regression(model, adapter)

    if regression:
        # H(x_p) from the same batched head call as H(x_i), so LogAt(x_p) is exactly 0 and the
        # last layer of the layer-wise variant equals it.
        head = adapter.target_logits(model, final, torch.zeros_like(rows)[:, None])[..., 0].float()
        logat = (head - head[rows, pooled_pos][:, None]).abs()
        targets = torch.zeros_like(rows)
        foils = None
    else:
        predicted = pooled_logits.argmax(-1)
        targets = torch.tensor(
            [e.target_id if e.target_id is not None else -1 for e in batch], device=sm.device
        )
        targets = torch.where(targets < 0, predicted, targets)
        foils = torch.tensor([e.foil_id if e.foil_id is not None else -1 for e in batch], device=sm.device)
        logat = _contrast(adapter.target_logits(model, final, _pair(targets, foils)), foils)

    layer_logat = None
    if layers:
        per_layer = []
        for layer in layers:
            hidden = out.hidden_states[layer]
            if adapter.final_norm and layer < len(out.hidden_states) - 1:
                hidden = sm.base.get_submodule(adapter.final_norm)(hidden)
            if regression:
                head = adapter.target_logits(model, hidden, targets[:, None])[..., 0].float()
                pooled = head[rows, pooled_pos]
                per_layer.append((head - pooled[:, None]).abs())
            else:
                per_layer.append(
                    _contrast(adapter.target_logits(model, hidden, _pair(targets, foils)), foils)
                )
        layer_logat = torch.stack(per_layer, dim=-1)  # (B, T, len(layers))

    return _unpad(batch, padded, norm, logat, layer_logat, pooled_logits, targets, foils, regression)


def _pair(targets: torch.Tensor, foils: torch.Tensor) -> torch.Tensor:
    """(B, 2) target and foil ids; a missing foil (-1) reads the target twice."""
    return torch.stack([targets, torch.where(foils < 0, targets, foils)], dim=-1)


def _contrast(logits: torch.Tensor, foils: torch.Tensor) -> torch.Tensor:
    """(B, T, 2) target/foil logits -> (B, T) target minus foil where a foil is set."""
    logits = logits.float()
    has_foil = (foils >= 0)[:, None]
    return torch.where(has_foil, logits[..., 0] - logits[..., 1], logits[..., 0])


def _unpad(batch, padded, norm, logat, layer_logat, pooled_logits, targets, foils, regression):
    norm = norm.cpu().numpy()
    logat = logat.cpu().numpy()
    layer_logat = layer_logat.cpu().numpy() if layer_logat is not None else None
    probs = torch.softmax(pooled_logits, dim=-1)
    predicted = pooled_logits.argmax(-1)
    results = []
    for b, enc in enumerate(batch):
        cols = slice(int(padded.shift[b]), int(padded.shift[b]) + len(enc))
        n, la = norm[b, cols], logat[b, cols]
        pred = int(predicted[b])
        results.append(
            Attribution(
                norm=n.astype(np.float32),
                logat=la.astype(np.float32),
                score=(n * la).astype(np.float32),
                layer_logat=None if layer_logat is None else layer_logat[b, cols].astype(np.float32),
                target_id=int(targets[b]),
                foil_id=None if foils is None or int(foils[b]) < 0 else int(foils[b]),
                prediction_id=None if regression else pred,
                prediction_prob=None if regression else float(probs[b, pred]),
                prediction_value=float(pooled_logits[b, 0] if regression else pooled_logits[b, pred]),
            )
        )
    return results
