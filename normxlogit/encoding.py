"""Turn texts into what the scorer needs: token ids, offsets, words, pooled position, targets.

Everything that can fail for one record (no mask token for a masked LM, a target that is not a
class or not a single token) fails here, per record, with a ``RecordError`` that names a reason
code, so that a pipeline can dead-letter that record and carry on. ``encode_batch`` tokenizes a
whole batch in one call of the fast (Rust) tokenizer and returns such errors in place of the
records; ``encode_text`` is its one-text case and raises them.

The jobs it composes have their own modules: ``tokenizing`` (the cached fast tokenizer and the
cut of long texts), ``flat_tokens`` (the batch as flat arrays), ``words`` (word segmentation) and
``targets`` (targets and foils).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from normxlogit import tokenizing
from normxlogit.errors import RecordError
from normxlogit.flat_tokens import FlatTokens, SpecialNames, TokenView
from normxlogit.heads import HeadAdapter
from normxlogit.targets import TargetResolver


@dataclass
class EncodedText:
    """One tokenized text, ready to be scored.

    Attributes:
        input_ids: (n,) token ids, special tokens included.
        offsets: (n, 2) character span of each token in the text; (0, 0) for specials.
        special: (n,) True for special tokens ([CLS], <s>, ...).
        word_index: (n,) index of the word (see ``words.WORD``) a token starts in; -1 for specials
            and whitespace-only tokens.
        tokens: token strings: the text under each token's span, or the special token itself.
        truncated: the text was longer than ``max_length`` tokens and was cut.
        pooled_position: where the model's head reads for its own prediction.
        target_id: class id or token id to attribute; None means the model's prediction.
        foil_id: optional contrastive foil; scores become target minus foil.
        flat: the batch (``FlatTokens``) this text's arrays are views into, and its place in it;
            None for a text encoded on its own.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    special: np.ndarray
    word_index: np.ndarray
    tokens: Sequence[str]
    truncated: bool
    pooled_position: int
    target_id: int | None = None
    foil_id: int | None = None
    flat: tuple[FlatTokens, int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @classmethod
    def of(
        cls,
        flat: FlatTokens,
        d: int,
        truncated: bool,
        pooled: int,
        target_id: int | None,
        foil_id: int | None,
    ) -> EncodedText:
        """Text ``d`` of a batch, its arrays views into the batch's."""
        rows = flat.rows(d)
        return cls(
            input_ids=flat.input_ids[rows],
            offsets=flat.offsets[rows],
            special=flat.special[rows],
            word_index=flat.word_index[rows],
            tokens=TokenView(flat.tokens, rows.start, rows.stop),
            truncated=truncated,
            pooled_position=pooled,
            target_id=target_id,
            foil_id=foil_id,
            flat=(flat, d),
        )


def pooled_position(ids: np.ndarray, adapter: HeadAdapter, tokenizer: PreTrainedTokenizerBase) -> int:
    """Position the model reads for its prediction: first token, last token or first mask.

    Raises:
        RecordError: ``no_mask_token`` for a masked LM's text without its mask token.
    """
    (position,) = pooled_positions(ids, np.array([len(ids)]), adapter, tokenizer)
    if position < 0:
        raise _no_mask(tokenizer)
    return int(position)


def encode_batch(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    adapter: HeadAdapter,
    *,
    max_length: int,
    targets: Sequence[str | int | None] | None = None,
    foil: str | int | None = None,
) -> list[EncodedText | RecordError]:
    """Tokenize texts in one fast-tokenizer call (offsets kept) and resolve targets and foil.

    The batch is worked on as flat arrays (``FlatTokens``): token ids, offsets, word indices and
    token strings of all texts are computed at once, and each ``EncodedText`` is a view into them.

    Args:
        texts: the texts, tokenized in one call (the Rust tokenizer can use several threads).
        targets: one target per text, None entries meaning the model's prediction; None: the
            prediction for every text.
        foil: one contrastive foil for every text.

    Returns:
        One entry per text, in order: its ``EncodedText``, or the ``RecordError`` (not raised)
        that says why it cannot be scored (see ``pooled_position`` and ``targets.resolve_target``).

    Raises:
        ValueError: ``targets`` and ``texts`` differ in length.
    """
    texts = list(texts)
    targets = [None] * len(texts) if targets is None else list(targets)
    if len(targets) != len(texts):
        raise ValueError(f"{len(targets)} targets for {len(texts)} texts")
    if not texts:
        return []
    used, encodings = tokenizing.tokenize(texts, tokenizer, max_length)
    flat = FlatTokens.of(used, encodings, SpecialNames(tokenizer))
    pooled = pooled_positions(flat.input_ids, flat.lengths, adapter, tokenizer)
    resolve = TargetResolver(model, tokenizer, adapter)
    out: list[EncodedText | RecordError] = []
    for d, (target, encoding) in enumerate(zip(targets, encodings)):
        try:
            if flat.lengths[d] == 0:
                raise RecordError("no_tokens", "the text produced no tokens")
            if pooled[d] < 0:
                raise _no_mask(tokenizer)
            target_id, foil_id = resolve(target), resolve(foil)
        except RecordError as err:
            out.append(err)
        else:
            # A truncated encoding carries the windows that did not fit as ``overflowing``.
            truncated = len(encoding.overflowing) > 0
            out.append(EncodedText.of(flat, d, truncated, int(pooled[d]), target_id, foil_id))
    return out


def pooled_positions(
    input_ids: np.ndarray, lengths: np.ndarray, adapter: HeadAdapter, tokenizer: PreTrainedTokenizerBase
) -> np.ndarray:
    """``pooled_position`` of texts whose ids lie one after another (``lengths`` each), at once:
    -1 for a masked LM's text without a mask token."""
    if adapter.pooling == "first":
        return np.zeros(len(lengths), np.int64)
    if adapter.pooling == "last":
        return lengths - 1
    starts = np.cumsum(lengths) - lengths
    hits = np.flatnonzero(input_ids == tokenizer.mask_token_id)
    first = np.searchsorted(hits, starts)  # each text's first mask, if it is before its end
    found = first < len(hits)
    rows = np.where(found, hits[np.minimum(first, len(hits) - 1)] if len(hits) else 0, 0)
    inside = found & (rows < starts + lengths)
    return np.where(inside, rows - starts, -1)


def _no_mask(tokenizer: PreTrainedTokenizerBase) -> RecordError:
    return RecordError(
        "no_mask_token",
        f"a masked LM needs the mask token {tokenizer.mask_token!r} in the text",
    )


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
        RecordError: see ``pooled_position`` and ``targets.resolve_target``.
    """
    (encoded,) = encode_batch(
        [text], tokenizer, model, adapter, max_length=max_length, targets=[target], foil=foil
    )
    if isinstance(encoded, RecordError):
        raise encoded
    return encoded
