"""Turn texts into what the scorer needs: token ids, offsets, words, pooled position, targets.

Everything that can fail for one record (no mask token for a masked LM, a target that is not a
class or not a single token) fails here, per record, with a ``RecordError`` that names a reason
code, so that a pipeline can dead-letter that record and carry on. ``encode_batch`` tokenizes a
whole batch in one call of the fast (Rust) tokenizer and returns such errors in place of the
records; ``encode_text`` is its one-text case and raises them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from normxlogit.heads import HeadAdapter, is_regression

# Words are runs of word characters, or single other non-space characters. This needs no
# tokenizer knowledge (no "##" or "Ġ" prefixes), so word views are comparable across models.
# Every character that is not whitespace (``\s``, the same set as ``str.isspace``) lies in
# exactly one word, which ``word_indices`` relies on.
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class RecordError(ValueError):
    """A problem with one record; ``reason`` is a stable code for dead-letter files."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        # Exceptions pickle as type(*args); ours takes the reason too (it crosses process
        # boundaries inside the engine's results when Beam shares the model).
        return type(self), (self.reason, str(self))


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
    spans = np.fromiter(
        itertools.chain.from_iterable(map(re.Match.span, _WORD.finditer(text))), dtype=np.int64
    ).reshape(-1, 2)
    starts = np.minimum(offsets[:, 0].astype(np.int64), len(text))
    ends = offsets[:, 1].astype(np.int64)
    # Words cover every non-space character, so a token's first non-space character (" Paris"
    # starts at the space) lies in the first word that ends after the token starts: at the
    # token's start if that is inside the word, else at the word's start.
    idx = np.searchsorted(spans[:, 1], starts, side="right")
    inside = idx < len(spans)
    first = np.maximum(starts, spans[np.minimum(idx, len(spans) - 1), 0]) if len(spans) else starts
    out = np.where(inside & (first < ends) & ~special, idx, -1)
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


class _TargetResolver:
    """``resolve_target`` once per distinct value: a run-wide target or foil is the same for every
    record. A bad value raises a fresh ``RecordError`` for each record that names it."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, adapter: HeadAdapter):
        self._args = (model, tokenizer, adapter)
        self._seen: dict[tuple, int | None | RecordError] = {}

    def __call__(self, value: str | int | None) -> int | None:
        key = (type(value), value)  # the type too: 5 == 5.0 as keys, but 5.0 is no token id
        try:
            hit = self._seen[key]
        except KeyError:
            hit = self._seen[key] = self._resolve(value)
        except TypeError:  # an unhashable value (a list from a JSON field) is not memoised
            hit = self._resolve(value)
        if isinstance(hit, RecordError):
            raise RecordError(hit.reason, str(hit))
        return hit

    def _resolve(self, value: str | int | None) -> int | None | RecordError:
        try:
            return resolve_target(value, *self._args)
        except RecordError as err:
            return err


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

    Args:
        texts: the texts, tokenized in one call (the Rust tokenizer can use several threads).
        targets: one target per text, None entries meaning the model's prediction; None: the
            prediction for every text.
        foil: one contrastive foil for every text.

    Returns:
        One entry per text, in order: its ``EncodedText``, or the ``RecordError`` (not raised)
        that says why it cannot be scored (see ``pooled_position`` and ``resolve_target``).

    Raises:
        ValueError: ``targets`` and ``texts`` differ in length.
    """
    texts = list(texts)
    targets = [None] * len(texts) if targets is None else list(targets)
    if len(targets) != len(texts):
        raise ValueError(f"{len(targets)} targets for {len(texts)} texts")
    if not texts:
        return []
    limit = max_chars(max_length)
    windows = _first_windows([text[:limit] for text in texts], tokenizer, max_length)
    for i, text in enumerate(texts):
        if len(text) > limit and not windows[i].cut_is_safe(limit):
            # Over half the cut spans fewer than max_length tokens (long runs of whitespace or
            # of characters one token covers): tokenize the whole text, as if it were not cut.
            windows[i] = _first_windows([text], tokenizer, max_length)[0]
    resolve = _TargetResolver(model, tokenizer, adapter)
    names = SpecialNames(tokenizer)
    out: list[EncodedText | RecordError] = []
    for window, target in zip(windows, targets):
        try:
            encoded = _encode_window(window, adapter=adapter, tokenizer=tokenizer, names=names)
            encoded.target_id = resolve(target)
            encoded.foil_id = resolve(foil)
        except RecordError as err:
            out.append(err)
        else:
            out.append(encoded)
    return out


class SpecialNames(dict):
    """Special token id -> token string ("[CLS]", "<s>"), looked up once per id and batch."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self._tokenizer = tokenizer

    def __missing__(self, token_id: int) -> str:
        name = self[token_id] = self._tokenizer.convert_ids_to_tokens(token_id)
        return name


# Texts are cut to CHARS_PER_TOKEN * max_length characters before they are tokenized, so that
# one huge record costs what a text of that length costs: the tokenizer would otherwise hold every
# token of the whole text (its overflow windows) with their offsets, gigabytes for a 50 MB line.
# The cut never changes a result: real text averages 1.5 to 5 characters per token (prose, code,
# URLs, base64), and a cut text is used only when its first max_length tokens end in the first
# half of the cut (at most CHARS_PER_TOKEN / 2 characters per token) and more tokens follow. Then
# those tokens are the whole text's (the cut only changes tokens near it) and the text is longer
# than max_length tokens, so it is truncated either way. Otherwise the whole text is tokenized.
CHARS_PER_TOKEN = 64


def max_chars(max_length: int) -> int:
    """The characters of a text that are tokenized when at most ``max_length`` tokens are kept."""
    return CHARS_PER_TOKEN * max_length


@dataclass
class _Window:
    """The tokenizer's first window of a (possibly cut) text: what the model reads.

    Attributes:
        text: the text tokenized (offsets index into it).
        windows: how many windows the text made: more than one means it was truncated.
    """

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[int]
    windows: int

    def cut_is_safe(self, limit: int) -> bool:
        """Whether a text cut at ``limit`` characters reads as the whole text: more tokens follow
        the window, and the window ends in the first half of the cut."""
        return self.windows > 1 and max((end for _, end in self.offsets), default=0) <= limit // 2


def _first_windows(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[_Window]:
    """Each text's first window of at most ``max_length`` tokens, in one fast-tokenizer call."""
    enc = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=True,
        # Not used (the scorer builds its own mask); converting them costs a third of the call.
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    # With overflow on, a fast tokenizer returns each text's truncated encoding and then its
    # overflowing windows, so every text has a row: its first row is what the model reads, and
    # more than one row means it was truncated.
    owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    first = np.searchsorted(owner, np.arange(len(texts))).tolist()
    windows = np.bincount(owner, minlength=len(texts)).tolist()
    ids, offsets, special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
    return [
        _Window(text, ids[row], offsets[row], special[row], count)
        for text, row, count in zip(texts, first, windows)
    ]


def _encode_window(
    window: _Window,
    *,
    adapter: HeadAdapter,
    tokenizer: PreTrainedTokenizerBase,
    names: SpecialNames,
) -> EncodedText:
    """An ``EncodedText`` (targets unresolved) from the tokenizer's first window of a text."""
    text, ids, offsets, special = window.text, window.ids, window.offsets, window.special
    if len(ids) == 0:
        raise RecordError("no_tokens", "the text produced no tokens")
    ids_arr = np.asarray(ids, dtype=np.int64)
    pooled = pooled_position(ids_arr, adapter, tokenizer)
    # fromiter over the flattened pairs: twice as fast as asarray on a list of tuples.
    flat = itertools.chain.from_iterable(offsets)
    offsets_arr = np.fromiter(flat, dtype=np.int32, count=2 * len(offsets)).reshape(-1, 2)
    special_arr = np.asarray(special, dtype=bool)
    # Token strings are the text under each span; special tokens show their own name.
    tokens = list(map(text.__getitem__, itertools.starmap(slice, offsets)))
    for pos in np.flatnonzero(special_arr).tolist():
        tokens[pos] = names[ids[pos]]
    return EncodedText(
        input_ids=ids_arr,
        offsets=offsets_arr,
        special=special_arr,
        word_index=word_indices(text, offsets_arr, special_arr),
        tokens=tokens,
        truncated=window.windows > 1,
        pooled_position=pooled,
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
        RecordError: see ``pooled_position`` and ``resolve_target``.
    """
    (encoded,) = encode_batch(
        [text], tokenizer, model, adapter, max_length=max_length, targets=[target], foil=foil
    )
    if isinstance(encoded, RecordError):
        raise encoded
    return encoded


class TargetError(ValueError):
    """A run-wide target or foil that the model cannot have: a whole-input problem, caught before a run."""


def check_run_targets(sm, target: str | int | None, foil: str | int | None) -> None:
    """Resolve a run-wide ``--target`` and ``--foil`` as every record would.

    Args:
        sm: a ``ScoringModel`` (``loading.load_skeleton`` is enough: no weights are read).

    Raises:
        TargetError: naming the flag, the value and why (the classes or the tokens it splits into).
    """
    for flag, value in (("--target", target), ("--foil", foil)):
        try:
            resolve_target(value, sm.model, sm.tokenizer, sm.adapter)
        except RecordError as err:
            raise TargetError(f"{flag} {value!r} cannot be attributed with this model: {err}") from err
