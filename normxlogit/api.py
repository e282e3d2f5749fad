"""The notebook API: ``normxlogit.score(model, texts)`` returns one result per text."""

from __future__ import annotations

import os
from collections.abc import Sequence

from normxlogit.encoding import EncodedText
from normxlogit.engine import BatchEngine, EngineOptions, ScoredBatch
from normxlogit.errors import RecordError
from normxlogit.limits import DEFAULT_BATCH_TOKENS
from normxlogit.loading import ModelInfo, ScoringModel, load_model
from normxlogit.result import TextAttribution


class LayerError(ValueError):
    """Layer-wise scores were asked for layers the model does not have."""


def validate_layers(model: ScoringModel | ModelInfo, layers: Sequence[int]) -> tuple[int, ...]:
    """Layer numbers must lie in 1..L (L = the model's number of layers).

    Raises:
        LayerError: naming the bad layers and the valid range.
    """
    top = getattr(model, "info", model).num_layers
    bad = [layer for layer in layers if not 1 <= int(layer) <= top]
    if bad:
        raise LayerError(f"layers {bad} are out of range: this model has layers 1..{top}")
    return tuple(int(layer) for layer in layers)


def encode_texts(
    sm: ScoringModel,
    texts: Sequence[str],
    *,
    targets: Sequence[str | int | None] | None = None,
    foil: str | int | None = None,
    max_length: int | None = None,
) -> list[EncodedText]:
    """Tokenize texts (one tokenizer call) and resolve their targets (``None`` = the prediction).

    Raises:
        normxlogit.RecordError: the first text that cannot be scored (e.g. no mask token).
    """
    encoded = BatchEngine(sm, EngineOptions(max_length=max_length, foil=foil)).encode(texts, targets)
    for item in encoded:
        if isinstance(item, RecordError):
            raise item
    return encoded


def score_encoded(
    sm: ScoringModel,
    encoded: Sequence[EncodedText],
    *,
    layers: Sequence[int] = (),
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list:
    """Score encoded texts in length-sorted batches within a padded-token budget.

    Returns:
        One ``Attribution`` per input, in input order.

    Raises:
        normxlogit.RecordError: ``model_error`` when the model fails on a text on its own.
    """
    scored = BatchEngine(sm, EngineOptions(layers=tuple(layers), batch_tokens=batch_tokens)).score_encoded(
        encoded
    )
    _raise_first(scored)
    return [scored.attribution(d) for d in range(len(scored.index))]


def _raise_first(scored: ScoredBatch) -> None:
    if scored.errors:
        raise scored.errors[min(scored.errors)]


def score(
    model: ScoringModel | str | os.PathLike | None,
    texts: Sequence[str] | str,
    *,
    target: str | int | None = None,
    targets: Sequence[str | int | None] | None = None,
    foil: str | int | None = None,
    max_length: int | None = None,
    layers: Sequence[int] = (),
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[TextAttribution]:
    """NormXLogit attributions for texts.

    Args:
        model: a ``ScoringModel`` (see ``load_model``/``prepare``), a model folder or GGUF path,
            or None for the embedded default model.
        texts: one text or a sequence of texts.
        target: one target for every text: a class name or id, or a single token for LMs.
        targets: one target per text (overrides ``target``); None entries use the prediction.
        foil: a contrastive foil; scores become target minus foil.
        max_length: truncate longer texts (flagged ``truncated``); default: the model's limit.
        layers: layer numbers 1..L for layer-wise LogAt.
        batch_tokens: padded tokens per forward pass.

    Returns:
        One ``TextAttribution`` per text, in order.

    Raises:
        normxlogit.RecordError: a text cannot be scored (e.g. no mask token for a masked LM).
    """
    sm = model if isinstance(model, ScoringModel) else load_model(model)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if targets is None:
        targets = [target] * len(texts)
    options = EngineOptions(
        max_length=max_length, foil=foil, layers=validate_layers(sm, layers), batch_tokens=batch_tokens
    )
    results: list[TextAttribution] = []
    for lo, scored in BatchEngine(sm, options).score_stream(texts, targets):
        _raise_first(scored)
        results += scored.results(texts[lo : lo + scored.size])
    return results
