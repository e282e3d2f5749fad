"""Lexicons: named categories of words (identity terms, negations, ...), from a JSON or CSV file.

    JSON   {"identity": ["muslim", "gay", "black"], "negation": ["not", "never", "no"]}
    CSV    a header with the columns ``category`` and ``word``, then one row per word

Entries are words as the run's ``word_index`` splits a text (a run of letters, digits and ``_``, or
one other non-space character), matched to the words' text exactly, or both lower-cased with
``--casefold``. A word may belong to several categories.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# One word of ``normxlogit.words.WORD`` (test_lexicon checks that the two agree).
WORD_PATTERN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
SUFFIXES = (".json", ".csv")
CSV_COLUMNS = ("category", "word")


class LexiconError(ValueError):
    """A lexicon file that cannot be read as categories of words; the message says what to fix."""


@dataclass(frozen=True)
class Lexicon:
    """Categories of words.

    Attributes:
        categories: category names, in the file's order.
        words: the distinct words of each category, in the file's order.
        path: the file it was read from.
    """

    categories: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]
    path: str

    def matches(self, words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Where the lexicon's words are among distinct ``words``: (position in ``words``, category)
        pairs, one per (word, category) membership."""
        entries = pa.array([w for ws in self.words for w in ws], pa.string())
        category = np.repeat(np.arange(len(self.categories)), [len(ws) for ws in self.words])
        position = pc.fill_null(pc.index_in(entries, value_set=words), -1).to_numpy(zero_copy_only=False)
        found = position >= 0
        return position[found].astype(np.int64), category[found]


def read_lexicon(path: Path, casefold: bool = False) -> Lexicon:
    """The lexicon in ``path`` (``.json`` or ``.csv``), lower-cased with ``casefold`` as the words are.

    Raises:
        LexiconError: a missing or unreadable file, another suffix, a JSON value that is not an object
            of lists of strings, a CSV without ``category`` and ``word`` columns, an entry that is not
            one word, or no category at all.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise LexiconError(f"--lexicon {path}: expected a {' or '.join(SUFFIXES)} file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LexiconError(f"--lexicon {path}: cannot read it ({type(err).__name__}: {err})") from err
    pairs = _json_pairs(path, text) if path.suffix.lower() == ".json" else _csv_pairs(path, text)
    categories: dict[str, dict[str, None]] = {}
    for category, word in pairs:
        if not WORD_PATTERN.fullmatch(word):
            raise LexiconError(
                f"--lexicon {path}: {word!r} in category {category!r} is not one word (a run of letters, "
                "digits and _, or one other character); list the words of a phrase separately"
            )
        categories.setdefault(category, {})[word] = None
    if not categories:
        raise LexiconError(f"--lexicon {path}: no category holds a word")
    names = tuple(categories)
    words = [tuple(ws) for ws in categories.values()]
    if casefold:
        words = [tuple(dict.fromkeys(pc.utf8_lower(pa.array(ws, pa.string())).to_pylist())) for ws in words]
    return Lexicon(names, tuple(words), str(path))


def _json_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise LexiconError(f"--lexicon {path}: not valid JSON ({err})") from err
    shape_ok = isinstance(body, dict) and all(
        isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in body.values()
    )
    if not shape_ok:
        raise LexiconError(
            f"--lexicon {path}: expected an object of categories, each a list of words: "
            '{"category": ["word", ...]}'
        )
    return [(str(category), w.strip()) for category, ws in body.items() for w in ws]


def _csv_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if not set(CSV_COLUMNS) <= set(reader.fieldnames or ()):
        raise LexiconError(
            f"--lexicon {path}: expected a header with the columns {', '.join(CSV_COLUMNS)}, "
            f"found {', '.join(reader.fieldnames or ()) or 'none'}"
        )
    rows = [(row["category"] or "", (row["word"] or "").strip()) for row in reader]
    return [(c, w) for c, w in rows if c or w]
