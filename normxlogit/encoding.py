"""Turn a text into what the scorer needs: token ids, offsets, words, pooled position, targets.

Everything that can fail for one record (no mask token for a masked LM, a target that is not a
class or not a single token) fails here, per record, with a ``RecordError`` that names a reason
code, so that a pipeline can dead-letter that record and carry on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from normxlogit.heads import HeadAdapter, is_regression

# Words are runs of word characters, or single other non-space characters. This needs no
# tokenizer knowledge (no "##" or "Ġ" prefixes), so word views are comparable across models.
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SPACES = np.array([c for c in range(0x3100) if chr(c).isspace()], dtype=np.uint32)


class RecordError(ValueError):
    """A problem with one record; ``reason`` is a stable code for dead-letter files."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class EncodedText:
    """One tokenized text, ready to be scored.

    Attributes:
        input_ids: (n,) token ids, special tokens included.
        offsets: (n, 2) character span of each token in the text; (0, 0) for specials.
        special: (n,) True for special tokens ([CLS], <s>, ...).
        word_index: (n,) index of the word (see ``_WORD``) a token starts in; -1 for specials
            and whitespace-only tokens.
        tokens: token strings: the text under each token's span, or the special token itself.
        truncated: the text was longer than ``max_length`` tokens and was cut.
        pooled_position: where the model's head reads for its own prediction.
        target_id: class id or token id to attribute; None means the model's prediction.
        foil_id: optional contrastive foil; scores become target minus foil.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    special: np.ndarray
    word_index: np.ndarray
    tokens: list[str]
    truncated: bool
    pooled_position: int
    target_id: int | None = None
    foil_id: int | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def word_indices(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Word index of each token from character offsets alone.

    A token belongs to the word that contains its first non-space character.

    Args:
        offsets: (n, 2) character spans.
        special: (n,) special-token flags.

    Returns:
        (n,) int32, -1 where a token is special or covers only whitespace.
    """
    spans = np.array([m.span() for m in _WORD.finditer(text)], dtype=np.int64).reshape(-1, 2)
    starts = np.minimum(offsets[:, 0].astype(np.int64), len(text))
    ends = offsets[:, 1].astype(np.int64)
    # Skip leading whitespace inside a token's span (" Paris" starts at the space):
    # next_visible[i] is the first non-space character at or after i.
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    at = np.where(np.isin(codepoints, _SPACES), len(text), np.arange(len(text)))
    next_visible = np.append(np.minimum.accumulate(at[::-1])[::-1], len(text))
    first = next_visible[starts]
    idx = np.searchsorted(spans[:, 1], first, side="right") if len(spans) else np.zeros_like(first)
    inside = (idx < len(spans)) & (first < ends)
    if len(spans):
        inside &= spans[np.minimum(idx, len(spans) - 1), 0] <= first
    out = np.where(inside & ~special, idx, -1)
    return out.astype(np.int32)


def pooled_position(ids: np.ndarray, adapter: HeadAdapter, tokenizer: PreTrainedTokenizerBase) -> int:
    """Position the model reads for its prediction: first token, last token or first mask."""
    if adapter.pooling == "first":
        return 0
    if adapter.pooling == "last":
        return len(ids) - 1
    hits = np.flatnonzero(ids == tokenizer.mask_token_id)
    if len(hits) == 0:
        raise RecordError(
            "no_mask_token",
            f"a masked LM needs the mask token {tokenizer.mask_token!r} in the text",
        )
    return int(hits[0])


def resolve_target(
    value: str | int | None,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
) -> int | None:
    """Map a user's target (class name, class id, or token string) to an id.

    Returns None for None (the model's own prediction).

    Raises:
        RecordError: ``unknown_target`` for a class the model does not have or a token id outside
            the vocabulary, ``multi_token_target`` for an LM target that is not exactly one token.
    """
    if value is None:
        return None
    if adapter.task == "classification":
        if is_regression(model, adapter):
            raise RecordError("unknown_target", "a regression head has no classes to target")
        label2id = {str(k): int(v) for k, v in (model.config.label2id or {}).items()}
        num = model.config.num_labels
        if str(value) in label2id:
            return label2id[str(value)]
        if isinstance(value, (int, np.integer)) or str(value).lstrip("-").isdigit():
            if 0 <= int(value) < num:
                return int(value)
        raise RecordError(
            "unknown_target",
            f"target {value!r} is neither a class name ({', '.join(label2id)}) nor an id in 0..{num - 1}",
        )
    if isinstance(value, (int, np.integer)):
        # An id with no row in the output matrix would crash the whole batch (or, if negative,
        # silently fall back to the prediction); it is this record's error.
        rows = model.get_output_embeddings().weight.shape[0]
        if not 0 <= int(value) < rows:
            raise RecordError("unknown_target", f"token id {value} is outside the vocabulary (0..{rows - 1})")
        return int(value)
    ids = tokenizer.encode(str(value), add_special_tokens=False)
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise RecordError(
            "multi_token_target",
            f"target {value!r} is {len(ids)} tokens {pieces}; NormXLogit attributes one token. "
            f"Give a single token (mind the leading space, e.g. ' Paris').",
        )
    return int(ids[0])


def encode_text(
    text: str,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    adapter: HeadAdapter,
    *,
    max_length: int,
    target: str | int | None = None,
    foil: str | int | None = None,
) -> EncodedText:
    """Tokenize one text (fast tokenizer, offsets kept) and resolve its target and foil.

    Raises:
        RecordError: see ``pooled_position`` and ``resolve_target``.
    """
    enc = tokenizer(
        text,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=True,
    )
    # With overflow on, a fast tokenizer returns one row per window; more than one = truncated.
    truncated = len(enc["input_ids"]) > 1
    ids = np.asarray(enc["input_ids"][0], dtype=np.int64)
    if len(ids) == 0:
        raise RecordError("no_tokens", "the text produced no tokens")
    offsets = np.asarray(enc["offset_mapping"][0], dtype=np.int32).reshape(-1, 2)
    special = np.asarray(enc["special_tokens_mask"][0], dtype=bool)
    specials = tokenizer.convert_ids_to_tokens(ids[special].tolist())
    it = iter(specials)
    tokens = [next(it) if sp else text[s:e] for sp, (s, e) in zip(special, offsets.tolist())]
    return EncodedText(
        input_ids=ids,
        offsets=offsets,
        special=special,
        word_index=word_indices(text, offsets, special),
        tokens=tokens,
        truncated=truncated,
        pooled_position=pooled_position(ids, adapter, tokenizer),
        target_id=resolve_target(target, model, tokenizer, adapter),
        foil_id=resolve_target(foil, model, tokenizer, adapter),
    )
