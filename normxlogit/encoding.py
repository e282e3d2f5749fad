"""Turn texts into what the scorer needs: token ids, offsets, words, pooled position, targets.

Everything that can fail for one record (no mask token for a masked LM, a target that is not a
class or not a single token) fails here, per record, with a ``RecordError`` that names a reason
code, so that a pipeline can dead-letter that record and carry on. ``encode_batch`` tokenizes a
whole batch in one call of the fast (Rust) tokenizer and returns such errors in place of the
records; ``encode_text`` is its one-text case and raises them.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from tokenizers import Encoding
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


def word_indices(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Word index of each token from character offsets alone.

    A token belongs to the word that contains its first non-space character (words: ``_WORD``).

    Args:
        offsets: (n, 2) character spans.
        special: (n,) special-token flags.

    Returns:
        (n,) int32, -1 where a token is special or covers only whitespace.
    """
    return _Chars([text]).word_index(np.zeros(len(offsets), np.int64), np.asarray(offsets), special)


def pooled_position(ids: np.ndarray, adapter: HeadAdapter, tokenizer: PreTrainedTokenizerBase) -> int:
    """Position the model reads for its prediction: first token, last token or first mask.

    Raises:
        RecordError: ``no_mask_token`` for a masked LM's text without its mask token.
    """
    (position,) = pooled_positions(ids, np.array([len(ids)]), adapter, tokenizer)
    if position < 0:
        raise _no_mask(tokenizer)
    return int(position)


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

    The batch is worked on as flat arrays (``FlatTokens``): token ids, offsets, word indices and
    token strings of all texts are computed at once, and each ``EncodedText`` is a view into them.

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
    used = [text[:limit] for text in texts]
    encodings = _first_windows(used, tokenizer, max_length)
    for i, text in enumerate(texts):
        if len(text) > limit and not _cut_is_safe(encodings[i], limit):
            # Over half the cut spans fewer than max_length tokens (long runs of whitespace or
            # of characters one token covers): tokenize the whole text, as if it were not cut.
            used[i], encodings[i] = text, _first_windows([text], tokenizer, max_length)[0]
    flat = FlatTokens.of(used, encodings, SpecialNames(tokenizer))
    pooled = pooled_positions(flat.input_ids, flat.lengths, adapter, tokenizer)
    resolve = _TargetResolver(model, tokenizer, adapter)
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
            out.append(flat.text(d, truncated, int(pooled[d]), target_id, foil_id))
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


def _cut_is_safe(encoding, limit: int) -> bool:
    """Whether a text cut at ``limit`` characters reads as the whole text: more tokens follow the
    first window (``encoding``), and the window ends in the first half of the cut."""
    return (
        len(encoding.overflowing) > 0 and max((end for _, end in encoding.offsets), default=0) <= limit // 2
    )


_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def _backend(tokenizer: PreTrainedTokenizerBase, max_length: int):
    """The tokenizer's Rust ``tokenizers.Tokenizer``, set to truncate at ``max_length`` as
    ``tokenizer(texts, truncation=True, max_length=...)`` does.

    A copy per tokenizer and length, set up once: the tokenizer's own backend is reconfigured by
    every ``tokenizer(...)`` call, which would race with a thread that tokenizes meanwhile.
    """
    with _BACKENDS_LOCK:
        per_length = _BACKENDS.setdefault(tokenizer, {})
        backend = per_length.get(max_length)
        if backend is None:
            backend = copy.deepcopy(tokenizer.backend_tokenizer)
            backend.no_padding()
            backend.enable_truncation(
                max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side
            )
            backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
            per_length[max_length] = backend
    return backend


def _first_windows(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list:
    """Each text's first window of at most ``max_length`` tokens (a ``tokenizers.Encoding``), in
    one call of the Rust tokenizer."""
    return _backend(tokenizer, max_length).encode_batch(texts, add_special_tokens=True)


class TokenView(Sequence):
    """One text's token strings: a slice of its batch's token column, made a list on first use."""

    __slots__ = ("_items", "_source", "_start", "_stop")

    def __init__(self, source: pa.Array, start: int, stop: int):
        self._source, self._start, self._stop = source, start, stop
        self._items: list[str] | None = None

    def _list(self) -> list[str]:
        if self._items is None:
            self._items = self._source[self._start : self._stop].to_pylist()
        return self._items

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, i):
        return self._list()[i]

    def __iter__(self):
        return iter(self._list())

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and self._list() == list(other)

    def __add__(self, other) -> list[str]:
        return self._list() + list(other)

    def __repr__(self) -> str:
        return repr(self._list())


@dataclass
class FlatTokens:
    """The tokens of a batch of texts, columnar: texts one after another.

    Attributes:
        starts, lengths: (D,) each text's first row and its number of tokens.
        input_ids: (N,) int64; offsets: (N, 2) int32; special: (N,) bool; word_index: (N,) int32
            (see ``EncodedText``).
        tokens: (N,) token strings, an Arrow string array.
        texts: (D,) the texts as tokenized (the offsets index into them).
    """

    starts: np.ndarray
    lengths: np.ndarray
    input_ids: np.ndarray
    offsets: np.ndarray
    special: np.ndarray
    word_index: np.ndarray
    tokens: pa.Array
    texts: list[str]

    @classmethod
    def of(cls, texts: list[str], encodings: Sequence, names: SpecialNames) -> FlatTokens:
        """Flatten the tokenizer's encodings of ``texts``; word indices and token strings for all
        texts at once."""
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        ids, offsets, special = _flat_encodings(encodings, lengths)
        starts = np.cumsum(lengths) - lengths
        chars = _Chars(texts)
        doc = np.repeat(np.arange(len(texts)), lengths)
        return cls(
            starts=starts,
            lengths=lengths,
            input_ids=ids,
            offsets=offsets,
            special=special,
            word_index=chars.word_index(doc, offsets, special),
            tokens=chars.token_strings(doc, offsets, special, ids, names),
            texts=texts,
        )

    def text(
        self, d: int, truncated: bool, pooled: int, target_id: int | None, foil_id: int | None
    ) -> EncodedText:
        """Text ``d`` as an ``EncodedText`` whose arrays are views into the batch's."""
        rows = slice(int(self.starts[d]), int(self.starts[d] + self.lengths[d]))
        return EncodedText(
            input_ids=self.input_ids[rows],
            offsets=self.offsets[rows],
            special=self.special[rows],
            word_index=self.word_index[rows],
            tokens=TokenView(self.tokens, rows.start, rows.stop),
            truncated=truncated,
            pooled_position=pooled,
            target_id=target_id,
            foil_id=foil_id,
            flat=(self, d),
        )


def _flat_encodings(encodings: Sequence, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (N,), offsets (N, 2) and special flags (N,) of encodings, one after another."""
    n = int(lengths.sum())
    whole = np.array([len(e.overflowing) == 0 for e in encodings], dtype=bool)
    parts = [encodings[i] for i in np.flatnonzero(~whole).tolist()]
    if whole.any():
        # One merged encoding: three Python lists for the batch instead of three per text. Merging
        # pairs every overflowing window with every other, so truncated texts are read on their own.
        parts.insert(
            0, Encoding.merge([encodings[i] for i in np.flatnonzero(whole).tolist()], growing_offsets=False)
        )
    chain = itertools.chain.from_iterable
    ids = np.fromiter(chain(e.ids for e in parts), dtype=np.int64, count=n)
    offsets = np.fromiter(chain(chain(e.offsets for e in parts)), dtype=np.int32, count=2 * n).reshape(n, 2)
    special = np.fromiter(chain(e.special_tokens_mask for e in parts), dtype=np.bool_, count=n)
    if whole.all():
        return ids, offsets, special
    # ``parts`` holds the whole texts' tokens first, then the truncated texts': put them in text order.
    from_whole = np.repeat(whole, lengths)
    order = np.concatenate([np.flatnonzero(from_whole), np.flatnonzero(~from_whole)])
    back = np.empty(n, np.int64)
    back[order] = np.arange(n)
    return ids[back], offsets[back], special[back]


def block_gather(sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Indices that put consecutive blocks of ``sizes`` (texts' rows, one after another) in the
    order ``order``: block j of the result is block ``order[j]``."""
    starts = np.cumsum(sizes) - sizes
    new_sizes = sizes[order]
    new_starts = np.cumsum(new_sizes) - new_sizes
    return np.repeat(starts[order] - new_starts, new_sizes) + np.arange(int(new_sizes.sum()))


# Character classes of ASCII as the ``_WORD`` pattern sees them (``\w``: str.isalnum or "_";
# ``\s``: str.isspace); other characters are looked up once per distinct character in a batch.
_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)])
_ASCII_WORD = np.array([chr(c).isalnum() or chr(c) == "_" for c in range(128)])


class _Chars:
    """The characters of a batch's texts, one after another, as code points and UTF-8 bytes."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.text_lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        self.text_starts = np.cumsum(self.text_lengths) - self.text_lengths
        self.joined = "".join(texts)
        self.code = np.frombuffer(self.joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)

    @functools.cached_property
    def utf8(self) -> np.ndarray:
        """The joined texts' UTF-8 bytes (texts the tokenizer took have no lone surrogates)."""
        return np.frombuffer(self.joined.encode("utf-8"), dtype=np.uint8)

    def _spans(self, doc: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens' character spans in the joined texts, starts kept within their text."""
        base = self.text_starts[doc]
        starts = base + np.minimum(offsets[:, 0].astype(np.int64), self.text_lengths[doc])
        return starts, base + offsets[:, 1].astype(np.int64)

    def word_index(self, doc: np.ndarray, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
        """``word_indices`` of every token of every text, at once."""
        code, n = self.code, len(self.code)
        space, word = np.empty(n, bool), np.empty(n, bool)
        ascii_ = code < 128
        space[ascii_], word[ascii_] = _ASCII_SPACE[code[ascii_]], _ASCII_WORD[code[ascii_]]
        if not ascii_.all():
            other = ~ascii_
            distinct, inverse = np.unique(code[other], return_inverse=True)
            chars = [chr(c) for c in distinct.tolist()]
            space[other] = np.array([c.isspace() for c in chars])[inverse]
            word[other] = np.array([c.isalnum() or c == "_" for c in chars])[inverse]
        # A word starts at a non-space character that is not a word character, or whose previous
        # character (in the same text) is not one.
        after_word = np.zeros(n, bool)
        after_word[1:] = word[:-1]
        after_word[self.text_starts[self.text_starts < n]] = False
        begins = ~space & ~(word & after_word)
        ends_before = np.concatenate([[0], np.cumsum(begins)])  # words begun before each character
        # A token belongs to the word holding its first non-space character.
        positions = np.where(space, n, np.arange(n))
        next_non_space = np.append(np.minimum.accumulate(positions[::-1])[::-1], n)
        starts, ends = self._spans(doc, offsets)
        first = next_non_space[starts]
        hit = (first < ends) & (first < self.text_starts[doc] + self.text_lengths[doc]) & ~special
        words = ends_before[np.minimum(first, n - 1) + 1] - 1 - ends_before[self.text_starts[doc]]
        return np.where(hit, words, -1).astype(np.int32)

    def token_strings(
        self,
        doc: np.ndarray,
        offsets: np.ndarray,
        special: np.ndarray,
        ids: np.ndarray,
        names: SpecialNames,
    ) -> pa.Array:
        """The text under each token's span (special tokens: their own name), as one Arrow array."""
        starts, ends = self._spans(doc, offsets)
        if len(self.utf8) == len(self.code):  # ASCII: a character is a byte
            byte_starts, byte_ends = starts, np.maximum(ends, starts)
        else:
            width = 1 + (self.code >= 0x80) + (self.code >= 0x800) + (self.code >= 0x10000)
            byte_at = np.concatenate([[0], np.cumsum(width)])
            byte_starts, byte_ends = byte_at[starts], byte_at[np.maximum(ends, starts)]
        data = self.utf8
        rows = np.flatnonzero(special)
        if len(rows):
            # Special tokens point into their names, appended after the texts.
            distinct, which = np.unique(ids[rows], return_inverse=True)
            encoded = [names[int(i)].encode("utf-8") for i in distinct.tolist()]
            sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            name_starts = len(data) + np.cumsum(sizes) - sizes
            data = np.concatenate([data, np.frombuffer(b"".join(encoded), dtype=np.uint8)])
            byte_starts, byte_ends = byte_starts.copy(), byte_ends.copy()
            byte_starts[rows] = name_starts[which]
            byte_ends[rows] = name_starts[which] + sizes[which]
        sizes = byte_ends - byte_starts
        value_offsets = np.concatenate([[0], np.cumsum(sizes)])
        gather = np.repeat(byte_starts - value_offsets[:-1], sizes) + np.arange(int(value_offsets[-1]))
        values = pa.py_buffer(data[gather])
        if value_offsets[-1] < 2**31:
            return pa.StringArray.from_buffers(
                len(sizes), pa.py_buffer(value_offsets.astype(np.int32)), values
            )
        return pa.LargeStringArray.from_buffers(len(sizes), pa.py_buffer(value_offsets), values)


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
