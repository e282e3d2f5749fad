"""A synthetic sentiment corpus whose rationale words are known by construction.

Each review is neutral filler around one to three sentiment words of one polarity; its label is that
polarity and its rationale is exactly those words. ``sentiment_records`` gives each record's rationale
as 0/1 per word (words as ``normxlogit.words.WORD`` splits them) or as character spans, alternately,
so both formats of ``--rationale-field`` are exercised.
"""

from __future__ import annotations

import random

from normxlogit.words import WORD

POSITIVE = ("wonderful", "superb", "delightful", "brilliant", "moving", "charming")
NEGATIVE = ("awful", "dreadful", "tedious", "clumsy", "boring", "lifeless")
OPENINGS = ("The film was", "Honestly the story felt", "My friends thought the show was", "This book is")
FILLERS = ("and the cast", "with a plot that", "in the second act", "while the music", "from start to end")


def review(rng: random.Random) -> tuple[str, str, list[str]]:
    """(text, label, the sentiment words it holds)."""
    label = rng.choice(("positive", "negative"))
    pool = POSITIVE if label == "positive" else NEGATIVE
    cues = rng.sample(pool, rng.randint(1, 3))
    parts = [rng.choice(OPENINGS)]
    for cue in cues:
        parts += [cue, rng.choice(FILLERS)]
    return " ".join(parts) + ".", label, cues


def sentiment_records(n: int, seed: int = 0) -> list[dict]:
    """``n`` records ``{"id", "text", "label", "rationale"}``; even records give the rationale as 0/1
    per word, odd ones as ``[start, end]`` character spans of the sentiment words."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        text, label, cues = review(rng)
        words = list(WORD.finditer(text))
        if i % 2 == 0:
            rationale = [int(m.group() in cues) for m in words]
        else:
            rationale = [list(m.span()) for m in words if m.group() in cues]
        records.append({"id": f"s{i}", "text": text, "label": label, "rationale": rationale})
    return records
