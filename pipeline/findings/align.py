"""Align the words of two runs of one text, whatever their tokenizers.

Both runs split a document's text into the same words (``word_index``: runs of word characters or
single other non-space characters, found from character offsets; ``normxlogit.words``), and a
run's word row carries the character span its tokens cover. Words are matched by span, which is
the same as matching them by ``word_index`` except where a token covers more than one word: such a
token belongs to its first word, and the words it reaches into have no row of their own in that run
(a byte-level BPE's ``...`` or ``'t``, a Llama-3 ``(the``). Those words are merged into one *unit*
with the words they overlap in the other run, so that both runs' scores cover the same characters.

Precisely: each word row's span is trimmed to its first and last non-space character; units are the
connected components of the overlap of those spans, across both runs; a unit is aligned when both
runs have a row in it; its score in a run is the sum of that run's word scores in it, and its key is
its first ``word_index``. Where no token crosses a word boundary in either run, units are words.

``char_coverage`` of a text is the share of its non-space characters that lie in a word span of
both runs (so in an aligned unit). A character no token of a run spans is not covered: text after
a run's truncation, or characters a tokenizer's normaliser drops (BERT drops format and control
characters such as U+200D and, uncased, combining marks such as U+FE0F). An unknown character that
a WordPiece tokenizer maps to ``[UNK]`` keeps its span and is covered: coverage says where both runs
put a score, not whether the model could read the character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ``str.isspace`` of the ASCII code points; the ``\s`` of the word split (``normxlogit.words``).
_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)])


class TextBatch:
    """The texts of a batch of documents, one after another, as code points.

    Positions are global (in the joined texts); ``start[d]`` is text ``d``'s first position.
    """

    def __init__(self, texts: list[str]):
        self.texts = texts
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        self.length = lengths
        self.start = np.cumsum(lengths) - lengths
        self.joined = "".join(texts)
        self.code = np.frombuffer(self.joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        self.space = _is_space(self.code)
        # non-space characters before each position, and where each non-space character is
        self.nonspace_before = np.concatenate([[0], np.cumsum(~self.space)])
        self.nonspace_at = np.flatnonzero(~self.space)

    def __len__(self) -> int:
        return len(self.texts)

    def nonspace_chars(self) -> np.ndarray:
        """(D,) non-space characters of each text."""
        return self.nonspace_before[self.start + self.length] - self.nonspace_before[self.start]

    def global_spans(self, doc: np.ndarray, char_start: np.ndarray, char_end: np.ndarray):
        """Spans in a document's text as global positions, clipped to the text."""
        length = self.length[doc]
        start = self.start[doc] + np.clip(char_start.astype(np.int64), 0, length)
        return start, self.start[doc] + np.clip(char_end.astype(np.int64), 0, length)

    def strings(self, start: np.ndarray, end: np.ndarray) -> pa.Array:
        """The text between global positions ``start`` and ``end`` of each row, as one Arrow array."""
        data = np.frombuffer(self.joined.encode("utf-8"), dtype=np.uint8)
        if len(data) == len(self.code):  # ASCII: a character is a byte
            byte_start, byte_end = start, end
        else:
            width = 1 + (self.code >= 0x80) + (self.code >= 0x800) + (self.code >= 0x10000)
            byte_at = np.concatenate([[0], np.cumsum(width)])
            byte_start, byte_end = byte_at[start], byte_at[end]
        sizes = byte_end - byte_start
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        gather = np.repeat(byte_start - offsets[:-1], sizes) + np.arange(int(offsets[-1]))
        return pa.LargeStringArray.from_buffers(
            len(sizes), pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data[gather])
        ).cast(pa.string())


def _is_space(code: np.ndarray) -> np.ndarray:
    space = np.empty(len(code), bool)
    ascii_ = code < 128
    space[ascii_] = _ASCII_SPACE[code[ascii_]]
    if not ascii_.all():
        distinct, inverse = np.unique(code[~ascii_], return_inverse=True)
        space[~ascii_] = np.array([chr(c).isspace() for c in distinct.tolist()])[inverse]
    return space


@dataclass(frozen=True)
class WordRows:
    """One run's word rows of a batch of documents (arrays of one length).

    Attributes:
        doc: (n,) the document's index in the batch (its ``TextBatch`` text).
        word_index: (n,) the word's index in its document.
        score: (n,) the word's score (the sum of its tokens' scores).
        char_start, char_end: (n,) the span its tokens cover in the document's text.
    """

    doc: np.ndarray
    word_index: np.ndarray
    score: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table, doc: np.ndarray) -> WordRows:
        """Rows of a word table (``word_index``, ``score``, ``char_start``, ``char_end``) whose
        documents are at ``doc`` in the batch."""
        return cls(
            doc=np.asarray(doc, np.int64),
            word_index=table["word_index"].to_numpy().astype(np.int64),
            score=table["score"].to_numpy().astype(np.float64),
            char_start=table["char_start"].to_numpy(),
            char_end=table["char_end"].to_numpy(),
        )


@dataclass(frozen=True)
class Units:
    """Aligned units, by document then position (arrays of one length).

    Attributes:
        doc: (n,) the document's index in the batch.
        word_index: (n,) the unit's first word.
        start, end: (n,) the unit's characters, global positions in the ``TextBatch``.
        score_a, score_b: (n,) each run's score of the unit.
        row_a: (n,) the unit's first word row in run A (an index into its ``WordRows``).
    """

    doc: np.ndarray
    word_index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score_a: np.ndarray
    score_b: np.ndarray
    row_a: np.ndarray

    def __len__(self) -> int:
        return len(self.doc)


@dataclass(frozen=True)
class Alignment:
    """The aligned units of a batch and each text's ``char_coverage`` (NaN: no non-space character)."""

    units: Units
    coverage: np.ndarray


def align(texts: TextBatch, a: WordRows, b: WordRows) -> Alignment:
    """Align two runs' word rows of the same texts (see the module docstring)."""
    spans = [_trimmed(texts, rows) for rows in (a, b)]
    start = np.concatenate([s for s, _, _ in spans])
    end = np.concatenate([e for _, e, _ in spans])
    kept = [k for _, _, k in spans]
    in_a = np.r_[np.ones(kept[0].sum(), bool), np.zeros(kept[1].sum(), bool)]
    score = np.concatenate([a.score[kept[0]], b.score[kept[1]]])
    word = np.concatenate([a.word_index[kept[0]], b.word_index[kept[1]]])
    row = np.concatenate([np.flatnonzero(kept[0]), np.full(kept[1].sum(), len(a.doc))])
    order = np.lexsort((~in_a, end, start))
    start, end, in_a, score, word, row = (v[order] for v in (start, end, in_a, score, word, row))
    # A unit begins where a span starts at or after the end of every span before it.
    reach = np.maximum.accumulate(end) if len(end) else end
    begins = np.r_[True, start[1:] >= reach[:-1]] if len(start) else np.zeros(0, bool)
    unit = np.cumsum(begins) - 1
    firsts = np.flatnonzero(begins)
    n = len(firsts)
    has_a = np.bincount(unit, weights=in_a, minlength=n) > 0
    has_b = np.bincount(unit, weights=~in_a, minlength=n) > 0
    aligned = has_a & has_b
    unit_start = start[firsts]
    units = Units(
        doc=(np.searchsorted(texts.start, unit_start, side="right") - 1)[aligned],
        word_index=np.minimum.reduceat(word, firsts)[aligned] if n else word[:0],
        start=unit_start[aligned],
        end=np.maximum.reduceat(end, firsts)[aligned] if n else end[:0],
        score_a=np.bincount(unit, weights=np.where(in_a, score, 0.0), minlength=n)[aligned],
        score_b=np.bincount(unit, weights=np.where(in_a, 0.0, score), minlength=n)[aligned],
        row_a=np.minimum.reduceat(row, firsts)[aligned] if n else row[:0],
    )
    return Alignment(units=units, coverage=_coverage(texts, spans))


def _trimmed(texts: TextBatch, rows: WordRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global spans trimmed to their non-space characters, and which rows have any."""
    start, end = texts.global_spans(rows.doc, rows.char_start, rows.char_end)
    first, past = texts.nonspace_before[start], texts.nonspace_before[end]
    kept = past > first
    return texts.nonspace_at[first[kept]], texts.nonspace_at[past[kept] - 1] + 1, kept


def _coverage(texts: TextBatch, spans) -> np.ndarray:
    n = len(texts.code)
    covered = ~texts.space
    for start, end, _ in spans:
        depth = np.cumsum(np.bincount(start, minlength=n + 1) - np.bincount(end, minlength=n + 1))[:n]
        covered &= depth > 0
    total = np.concatenate([[0], np.cumsum(covered)])
    stop = texts.start + texts.length
    nonspace = texts.nonspace_chars()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nonspace > 0, (total[stop] - total[texts.start]) / nonspace, np.nan)


def unit_words(texts: TextBatch, units: Units, casefold: bool) -> pa.Array:
    """Each unit's text (lower-cased with ``casefold``)."""
    words = texts.strings(units.start, units.end)
    return pc.utf8_lower(words) if casefold else words
