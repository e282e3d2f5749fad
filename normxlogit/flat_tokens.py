"""A batch's tokens as flat arrays: every text's tokens one after another, computed at once.

``FlatTokens.of`` turns the tokenizer's encodings of a batch into columns (ids, offsets, special
flags, word indices, token strings); each text's ``EncodedText`` is a view into them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tokenizers import Encoding
from transformers import PreTrainedTokenizerBase

from normxlogit.words import Chars


class SpecialNames(dict):
    """Special token id -> token string ("[CLS]", "<s>"), looked up once per id and batch."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self._tokenizer = tokenizer

    def __missing__(self, token_id: int) -> str:
        name = self[token_id] = self._tokenizer.convert_ids_to_tokens(token_id)
        return name


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
    def of(cls, texts: list[str], encodings: Sequence[Encoding], names: SpecialNames) -> FlatTokens:
        """Flatten the tokenizer's encodings of ``texts``; word indices and token strings for all
        texts at once."""
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
        ids, offsets, special = _flat_encodings(encodings, lengths)
        starts = np.cumsum(lengths) - lengths
        chars = Chars(texts)
        doc = np.repeat(np.arange(len(texts)), lengths)
        return cls(
            starts=starts,
            lengths=lengths,
            input_ids=ids,
            offsets=offsets,
            special=special,
            word_index=chars.word_index(doc, offsets, special),
            tokens=token_strings(chars, doc, offsets, special, ids, names),
            texts=texts,
        )

    def rows(self, d: int) -> slice:
        """The rows of text ``d``."""
        return slice(int(self.starts[d]), int(self.starts[d] + self.lengths[d]))


def _flat_encodings(
    encodings: Sequence[Encoding], lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def token_strings(
    chars: Chars,
    doc: np.ndarray,
    offsets: np.ndarray,
    special: np.ndarray,
    ids: np.ndarray,
    names: SpecialNames,
) -> pa.Array:
    """The text under each token's span (special tokens: their own name), as one Arrow array."""
    starts, ends = chars.spans(doc, offsets)
    if len(chars.utf8) == len(chars.code):  # ASCII: a character is a byte
        byte_starts, byte_ends = starts, np.maximum(ends, starts)
    else:
        code = chars.code
        width = 1 + (code >= 0x80) + (code >= 0x800) + (code >= 0x10000)
        byte_at = np.concatenate([[0], np.cumsum(width)])
        byte_starts, byte_ends = byte_at[starts], byte_at[np.maximum(ends, starts)]
    data = chars.utf8
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
        return pa.StringArray.from_buffers(len(sizes), pa.py_buffer(value_offsets.astype(np.int32)), values)
    return pa.LargeStringArray.from_buffers(len(sizes), pa.py_buffer(value_offsets), values)


def block_gather(sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Indices that put consecutive blocks of ``sizes`` (texts' rows, one after another) in the
    order ``order``: block j of the result is block ``order[j]``."""
    starts = np.cumsum(sizes) - sizes
    new_sizes = sizes[order]
    new_starts = np.cumsum(new_sizes) - new_sizes
    return np.repeat(starts[order] - new_starts, new_sizes) + np.arange(int(new_sizes.sum()))
