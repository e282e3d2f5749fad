"""One scored text with readable names for its target and prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normxlogit.encoding import EncodedText
from normxlogit.loading import ScoringModel
from normxlogit.scoring import Attribution


@dataclass
class TokenScore:
    """A token of a result, for quick looks (``TextAttribution.top_tokens``)."""

    position: int
    token: str
    norm: float
    logat: float
    score: float


@dataclass
class TextAttribution:
    """The NormXLogit attribution of one text.

    Attributes:
        text: the input text.
        encoded: tokens, offsets, words (``EncodedText``).
        attribution: per-token norm, logat, score (``Attribution``).
        target: the attributed class name or token string.
        foil: the contrastive foil's name, or None.
        prediction: the model's own prediction (class name, token, or regression value).
        layers: the layers of ``attribution.layer_logat`` columns.
    """

    text: str
    encoded: EncodedText
    attribution: Attribution
    target: str
    foil: str | None
    prediction: str
    layers: tuple[int, ...] = ()

    @property
    def tokens(self) -> list[str]:
        return self.encoded.tokens

    @property
    def scores(self) -> np.ndarray:
        return self.attribution.score

    def _repr_html_(self) -> str:
        """Jupyter's rich display: tokens coloured by score (``normxlogit.display.to_html``)."""
        from normxlogit.display import to_html

        return to_html(self)

    def top_tokens(self, k: int = 5, include_special: bool = False) -> list[TokenScore]:
        """The k tokens with the largest score (largest first)."""
        att, enc = self.attribution, self.encoded
        keep = np.flatnonzero(include_special | ~enc.special)
        order = keep[np.argsort(-att.score[keep], kind="stable")][:k]
        return [
            TokenScore(int(i), enc.tokens[i], float(att.norm[i]), float(att.logat[i]), float(att.score[i]))
            for i in order
        ]


def label_of(sm: ScoringModel, class_or_token_id: int | None) -> str | None:
    """Readable name of a class id (``id2label``) or token id (decoded text, e.g. ' Paris')."""
    if class_or_token_id is None:
        return None
    if sm.adapter.task == "classification":
        return sm.info.labels.get(class_or_token_id, str(class_or_token_id))
    return sm.token_label(class_or_token_id)
