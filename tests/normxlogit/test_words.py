"""Word segmentation: word indices of tokens from character offsets alone."""

from __future__ import annotations

import random

import numpy as np

from normxlogit.words import WORD, word_indices


def test_word_indices_from_offsets_alone():
    text = "日本\u3000語 😀ok  x"
    offsets = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [2, 4], [4, 6], [6, 8], [8, 9], [8, 11], [0, 0]])
    special = np.array([True] + [False] * 8 + [True])
    got = word_indices(text, offsets, special)
    # 日本 | 語 | 😀 | ok | x ; an ideographic space alone has no word; " 😀" starts at the emoji
    assert got.tolist() == [-1, 0, 0, -1, 1, 2, 3, -1, 4, -1]
    assert got.dtype == np.int32


def test_special_tokens_have_no_word_even_with_a_span():
    # A special token can carry a real span (e.g. one written in the text); it is still no word.
    text = "hello <mask> world"
    offsets = np.array([[0, 5], [6, 12], [13, 18]])
    got = word_indices(text, offsets, np.array([False, True, False]))
    assert got.tolist() == [0, -1, 4]


def test_word_indices_empty_text_and_no_tokens():
    assert word_indices("", np.zeros((1, 2), np.int32), np.array([True])).tolist() == [-1]
    assert word_indices("abc", np.zeros((0, 2), np.int32), np.zeros(0, bool)).tolist() == []


def _word_indices_reference(text, offsets, special):
    """Literal definition: the word (regex match) holding the token's first non-space character."""
    spans = [m.span() for m in WORD.finditer(text)]
    out = []
    for (start, end), sp in zip(offsets.tolist(), special.tolist()):
        first = next((c for c in range(start, min(end, len(text))) if not text[c].isspace()), None)
        hit = [w for w, (a, b) in enumerate(spans) if first is not None and a <= first < b]
        out.append(-1 if sp or not hit else hit[0])
    return out


def test_word_indices_match_the_literal_definition():
    rng = random.Random(0)
    alphabet = "ab1_ ,.!\t\n\u00a0\u3000\u2028\x1cé日😀\u0301-'"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        n = rng.randint(0, 10)
        starts = np.array(sorted(rng.randint(0, len(text) + 2) for _ in range(n)), dtype=np.int64)
        offsets = np.stack([starts, starts + [rng.randint(0, 4) for _ in range(n)]], 1).reshape(-1, 2)
        special = np.array([rng.random() < 0.2 for _ in range(n)], dtype=bool)
        got = word_indices(text, offsets.astype(np.int32), special)
        assert got.tolist() == _word_indices_reference(text, offsets, special), (text, offsets)
