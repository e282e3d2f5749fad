"""Word segmentation: which word of its text each token belongs to, from character offsets alone.

Words are runs of word characters, or single other non-space characters (``WORD``). This needs
no tokenizer knowledge (no "##" or "Ġ" prefixes), so word views are comparable across models.
"""

from __future__ import annotations

import functools
import re

import numpy as np

# Every character that is not whitespace (``\s``, the same set as ``str.isspace``) lies in
# exactly one word, which ``word_indices`` relies on.
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)

# Character classes of ASCII as the ``WORD`` pattern sees them (``\w``: str.isalnum or "_";
# ``\s``: str.isspace); other characters are looked up once per distinct character in a batch.
_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)])
_ASCII_WORD = np.array([chr(c).isalnum() or chr(c) == "_" for c in range(128)])


def word_indices(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Word index of each token from character offsets alone.

    A token belongs to the word that contains its first non-space character (words: ``WORD``).

    Args:
        offsets: (n, 2) character spans.
        special: (n,) special-token flags.

    Returns:
        (n,) int32, -1 where a token is special or covers only whitespace.
    """
    return Chars([text]).word_index(np.zeros(len(offsets), np.int64), np.asarray(offsets), special)


class Chars:
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

    def spans(self, doc: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens' character spans in the joined texts, starts kept within their text.

        Args:
            doc: (N,) the text of each token.
            offsets: (N, 2) each token's character span in its text.
        """
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
        starts, ends = self.spans(doc, offsets)
        first = next_non_space[starts]
        hit = (first < ends) & (first < self.text_starts[doc] + self.text_lengths[doc]) & ~special
        words = ends_before[np.minimum(first, n - 1) + 1] - 1 - ends_before[self.text_starts[doc]]
        return np.where(hit, words, -1).astype(np.int32)
