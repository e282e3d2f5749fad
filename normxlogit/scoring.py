"""Batched NormXLogit: one forward pass of the base model, the head on every token vector.

``score_padded`` pads a batch of ``EncodedText`` (left or right), runs the base transformer once
with a hook that keeps only the layer-0 hidden states (no ``output_hidden_states`` unless
layer-wise scores are asked for), and applies the family's head adapter to all final token
vectors in one batched call. Per METHOD.md:

    norm_i  = ||x_i^0||_2
    logat_i = H(x_i^L)[y]            (minus H(x_i^L)[foil] with a foil)
            = |H(x_i^L) - H(x_p^L)|  (regression heads)
    score_i = norm_i * logat_i

Results are columnar (``BatchScores``); ``score_batch`` splits them into one ``Attribution`` per text.
``forward_base`` is the package's one forward pass, shared with the baselines and the metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from normxlogit.encoding import EncodedText
from normxlogit.flat_tokens import block_gather
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


@dataclass
class BatchScores:
    """Scores of D texts, columnar: per-token arrays hold the texts one after another.

    Attributes:
        lengths: (D,) tokens per text.
        norm, logat: (N,) float32, N = lengths.sum().
        layer_logat: (N, len(layers)) float32, or None.
        target_id, foil_id, prediction_id: (D,) int64; -1 for no foil / no prediction (regression).
        prediction_prob: (D,) float32 (NaN for regression).
        prediction_value: (D,) float64: the regression output, or the prediction's logit.
        regression: the head is a regression head.
    """

    lengths: np.ndarray
    norm: np.ndarray
    logat: np.ndarray
    layer_logat: np.ndarray | None
    target_id: np.ndarray
    foil_id: np.ndarray
    prediction_id: np.ndarray
    prediction_prob: np.ndarray
    prediction_value: np.ndarray
    regression: bool = False

    @classmethod
    def concat(cls, parts: Sequence[BatchScores], layers: bool) -> BatchScores:
        """The texts of ``parts`` one after another (an empty batch when there are none)."""
        if not parts:
            f32, i64 = np.zeros(0, np.float32), np.zeros(0, np.int64)
            return cls(
                i64,
                f32,
                f32,
                np.zeros((0, 0), np.float32) if layers else None,
                i64,
                i64,
                i64,
                f32,
                np.zeros(0, np.float64),
            )

        def cat(name: str):
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            lengths=cat("lengths"),
            norm=cat("norm"),
            logat=cat("logat"),
            layer_logat=cat("layer_logat") if layers else None,
            target_id=cat("target_id"),
            foil_id=cat("foil_id"),
            prediction_id=cat("prediction_id"),
            prediction_prob=cat("prediction_prob"),
            prediction_value=cat("prediction_value"),
            regression=parts[0].regression,
        )

    def reorder(self, perm: np.ndarray) -> BatchScores:
        """The texts in the order ``perm`` (new text j is old text ``perm[j]``)."""
        gather = block_gather(self.lengths, perm)
        return BatchScores(
            lengths=self.lengths[perm],
            norm=self.norm[gather],
            logat=self.logat[gather],
            layer_logat=None if self.layer_logat is None else self.layer_logat[gather],
            target_id=self.target_id[perm],
            foil_id=self.foil_id[perm],
            prediction_id=self.prediction_id[perm],
            prediction_prob=self.prediction_prob[perm],
            prediction_value=self.prediction_value[perm],
            regression=self.regression,
        )

    @functools.cached_property
    def score(self) -> np.ndarray:
        """(N,) float32 NormXLogit, ``norm * logat``."""
        return (self.norm * self.logat).astype(np.float32)

    @property
    def tokens(self) -> int:
        """N, the token rows."""
        return int(self.lengths.sum())

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """(D,) the first row of each text."""
        return np.cumsum(self.lengths) - self.lengths

    def attribution(self, d: int) -> Attribution:
        """The ``Attribution`` of text ``d`` (views into the arrays)."""
        start = int(self.starts[d])
        cols = slice(start, start + int(self.lengths[d]))
        foil, pred = int(self.foil_id[d]), int(self.prediction_id[d])
        return Attribution(
            norm=self.norm[cols],
            logat=self.logat[cols],
            score=self.score[cols],
            layer_logat=None if self.layer_logat is None else self.layer_logat[cols],
            target_id=int(self.target_id[d]),
            foil_id=None if foil < 0 else foil,
            prediction_id=None if pred < 0 else pred,
            prediction_prob=None if pred < 0 else float(self.prediction_prob[d]),
            prediction_value=float(self.prediction_value[d]),
        )

    def attributions(self) -> list[Attribution]:
        """One ``Attribution`` per text, in order."""
        return [self.attribution(d) for d in range(len(self.lengths))]


@dataclass(frozen=True)
class PaddedBatch:
    """A batch as tensors. ``shift``: (B,) left-padding added before each text; ``lengths``: (B,)
    int64 real tokens of each text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    shift: torch.Tensor
    lengths: np.ndarray


def pad_batch(batch: Sequence[EncodedText], pad_id: int, side: str) -> PaddedBatch:
    """Pad token ids to the longest text of the batch on the given side ("left"/"right")."""
    return pad_rows([e.input_ids for e in batch], pad_id, side)


def pad_rows(rows: Sequence[np.ndarray], pad_id: int, side: str) -> PaddedBatch:
    """``pad_batch`` of bare token-id arrays (the masked variants of the faithfulness metrics)."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = int(lengths.max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    shift = width - lengths if side == "left" else np.zeros_like(lengths)
    for row, (r, s) in enumerate(zip(rows, shift)):
        ids[row, s : s + len(r)] = r
        mask[row, s : s + len(r)] = 1
    return PaddedBatch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(shift), lengths)


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


class BaseOutput(NamedTuple):
    """What ``forward_base`` returns.

    Attributes:
        last_hidden_state: (B, T, D) the final hidden states.
        hidden_states: every layer's hidden states, when asked for (else None).
        layer0: (B, T, D) the first layer's input, ``hidden_states[0]``, when asked for (else None).
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None
    layer0: torch.Tensor | None


def forward_base(
    sm: ScoringModel,
    attention_mask: torch.Tensor,
    *,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    output_hidden_states: bool = False,
    capture_layer0: bool = False,
) -> BaseOutput:
    """One forward pass of the base transformer: the only one in the package.

    Scoring, the gradient baselines and the faithfulness metrics all call it, so every forward pass
    gets the same position ids (from the attention mask, for decoders padded on the left) and holds
    the model's lock: one forward pass at a time per model (see ``normxlogit.engine``), and the
    layer-0 hook of one caller never sees another caller's batch.

    Args:
        attention_mask: (B, T) 1 for real tokens, on the model's device.
        input_ids: (B, T) token ids, or ``inputs_embeds``: (B, T, D) input embeddings.
        output_hidden_states: keep every layer's hidden states.
        capture_layer0: keep the first layer's input (a hook; no ``output_hidden_states`` needed).
    """
    kwargs = {"attention_mask": attention_mask}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = input_ids
    if sm.adapter.position_ids:
        kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    if output_hidden_states:
        kwargs["output_hidden_states"] = True
    capture = _FirstInputCapture()
    with sm.lock:
        handle = None
        if capture_layer0:
            first_layer = sm.base.get_submodule(sm.adapter.layers)[0]
            handle = first_layer.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            out = sm.base(**kwargs)
        finally:
            if handle is not None:
                handle.remove()
    return BaseOutput(
        out.last_hidden_state, out.hidden_states if output_hidden_states else None, capture.value
    )


@dataclass(frozen=True)
class PreparedBatch:
    """A bucket made ready for its forward pass on the host (``prepare_batch``): what
    ``score_prepared`` needs, as CPU tensors, with no reference to the encodings.

    Attributes:
        padded: ids, mask, left shift and real tokens per text.
        pooled: (B,) pooled position of each text before padding.
        targets: (B,) target id per text, -1 for the prediction.
        foils: (B,) foil id per text, -1 for none.
    """

    padded: PaddedBatch
    pooled: torch.Tensor
    targets: torch.Tensor
    foils: torch.Tensor


def prepare_batch(sm: ScoringModel, batch: Sequence[EncodedText]) -> PreparedBatch:
    """The host's part of scoring a bucket: pad it and gather its per-text positions and targets."""
    return PreparedBatch(
        padded=pad_batch(batch, sm.pad_id, sm.padding_side),
        pooled=torch.tensor([e.pooled_position for e in batch], dtype=torch.int64),
        targets=torch.tensor([-1 if e.target_id is None else e.target_id for e in batch], dtype=torch.int64),
        foils=torch.tensor([-1 if e.foil_id is None else e.foil_id for e in batch], dtype=torch.int64),
    )


def score_padded(sm: ScoringModel, batch: Sequence[EncodedText], layers: Sequence[int] = ()) -> BatchScores:
    """Score a batch of encoded texts with one forward pass; columnar results.

    Args:
        sm: the loaded model, tokenizer and head adapter.
        batch: encoded texts; any lengths, any mix of targets.
        layers: optional layer numbers 1..L for layer-wise LogAt (``hidden_states[l]``).

    Returns:
        ``BatchScores`` of the texts, in order. Scores do not depend on the batch or the padding
        side (tested).
    """
    return score_prepared(sm, prepare_batch(sm, batch), layers)


@torch.inference_mode()
def score_prepared(sm: ScoringModel, prepared: PreparedBatch, layers: Sequence[int] = ()) -> BatchScores:
    """The device's part of ``score_padded``: one forward pass of a prepared bucket, the heads, and
    the results copied back to the host (``BatchEngine`` runs it on the model's forward thread)."""
    model, adapter = sm.model, sm.adapter
    padded = prepared.padded
    ids = padded.input_ids.to(sm.device)
    mask = padded.attention_mask.to(sm.device)
    shift = padded.shift.to(sm.device)

    out = forward_base(sm, mask, input_ids=ids, output_hidden_states=bool(layers), capture_layer0=True)
    final = out.last_hidden_state  # (B, T, D)
    norm = out.layer0.float().norm(dim=-1)  # (B, T)

    rows = torch.arange(len(padded.lengths), device=sm.device)
    pooled_pos = prepared.pooled.to(sm.device) + shift
    pooled_logits = adapter.class_logits(model, final[rows, pooled_pos]).float()  # (B, C)
    regression = is_regression(model, adapter)

    if regression:
        # H(x_p) from the same batched head call as H(x_i), so LogAt(x_p) is exactly 0 and the
        # last layer of the layer-wise variant equals it.
        head = adapter.target_logits(model, final, torch.zeros_like(rows)[:, None])[..., 0].float()
        logat = (head - head[rows, pooled_pos][:, None]).abs()
        targets = torch.zeros_like(rows)
        foils = torch.full_like(rows, -1)
    else:
        predicted = pooled_logits.argmax(-1)
        targets = prepared.targets.to(sm.device)
        targets = torch.where(targets < 0, predicted, targets)
        foils = prepared.foils.to(sm.device)
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

    # Real tokens are contiguous and in order in each row, whichever side the padding is on, so
    # the mask flattens the batch into the texts one after another.
    real = mask.bool()
    probs = torch.softmax(pooled_logits, dim=-1)
    predicted = pooled_logits.argmax(-1)
    prob = probs.gather(1, predicted[:, None])[:, 0]
    value = pooled_logits[:, 0] if regression else pooled_logits.gather(1, predicted[:, None])[:, 0]
    return BatchScores(
        lengths=padded.lengths,
        norm=norm[real].cpu().numpy().astype(np.float32),
        logat=logat[real].cpu().numpy().astype(np.float32),
        layer_logat=None if layer_logat is None else layer_logat[real].cpu().numpy().astype(np.float32),
        target_id=targets.cpu().numpy().astype(np.int64),
        foil_id=foils.cpu().numpy().astype(np.int64),
        prediction_id=np.full(len(padded.lengths), -1, np.int64)
        if regression
        else predicted.cpu().numpy().astype(np.int64),
        prediction_prob=np.full(len(padded.lengths), np.nan, np.float32)
        if regression
        else prob.cpu().numpy().astype(np.float32),
        prediction_value=value.double().cpu().numpy(),
        regression=regression,
    )


def score_batch(
    sm: ScoringModel, batch: Sequence[EncodedText], layers: Sequence[int] = ()
) -> list[Attribution]:
    """``score_padded`` as one ``Attribution`` per text, in order."""
    return score_padded(sm, batch, layers).attributions()


def _pair(targets: torch.Tensor, foils: torch.Tensor) -> torch.Tensor:
    """(B, 2) target and foil ids; a missing foil (-1) reads the target twice."""
    return torch.stack([targets, torch.where(foils < 0, targets, foils)], dim=-1)


def _contrast(logits: torch.Tensor, foils: torch.Tensor) -> torch.Tensor:
    """(B, T, 2) target/foil logits -> (B, T) target minus foil where a foil is set."""
    logits = logits.float()
    has_foil = (foils >= 0)[:, None]
    return torch.where(has_foil, logits[..., 0] - logits[..., 1], logits[..., 0])
