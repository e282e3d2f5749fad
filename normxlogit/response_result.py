"""One scored response of a causal LM, as the notebook API returns it (``normxlogit.score_responses``,
``score_chats``, ``generate_and_score``): the token rows and the document row that ``annotate`` writes
for the same input, with readable accessors and Jupyter display.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa

from normxlogit.result import TokenScore

# The segment of tokens a chat template wrote (``responses.SEGMENTS``): shown, never in the colour
# scale nor in top-token lists unless asked for.
TEMPLATE_SEGMENT = "template"


@dataclass
class ResponseAttribution:
    """The response-level NormXLogit of one prompt/response pair (METHOD.md, "Responses of causal LMs").

    ``rows`` are the pair's token rows (``normxlogit.token_schema``, with ``step_scores`` when asked
    for), position by position, exactly as ``annotate`` writes them; the other attributes are the
    pair's document row (``normxlogit.schema.document_schema(responses=True)``).

    Attributes:
        kind: where the response came from: ``response`` (given), ``chat`` (a conversation's last
            assistant message) or ``generate`` (the model's own greedy answer).
        rows: the token rows.
        doc_id, source: the result's input position (as text) and the call that made it.
        text: the prompt (or the conversation through the chat template) followed by the response:
            the text the token spans (``char_spans``) point into.
        n_tokens: tokens of prompt and response.
        truncated: cut to the length limit (the prompt from its start first, then the response).
        target: the response's first token y_1.
        prediction, prediction_prob: the model's own greedy token at y_1's place, its probability.
        response: the response as the model read it (for ``generate``: its answer).
        n_response_tokens: T, the response's tokens.
        response_logprob: the mean log-probability of the response's tokens.
        template_system_prompt: chats: the chat template wrote a default system prompt; else None.
    """

    kind: str
    rows: pa.Table
    doc_id: str
    source: str
    text: str
    n_tokens: int
    truncated: bool
    target: str
    prediction: str
    prediction_prob: float | None
    response: str
    n_response_tokens: int
    response_logprob: float
    template_system_prompt: bool | None = None

    @classmethod
    def of(cls, kind: str, rows: pa.Table, document: dict[str, Any]) -> ResponseAttribution:
        """A result from its token rows and its document row (a dict of the documents table's columns)."""
        return cls(kind=kind, rows=rows, **document)

    def document(self) -> dict[str, Any]:
        """The document row, the documents table's columns in its order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("kind", "rows")}

    @property
    def generated(self) -> str | None:
        """The model's own answer (``generate_and_score``); None for a given response."""
        return self.response if self.kind == "generate" else None

    def column(self, name: str) -> np.ndarray:
        """One token-row column as a NumPy array (nulls as NaN in numeric columns, None otherwise)."""
        return self.rows[name].to_numpy(zero_copy_only=False)

    @property
    def tokens(self) -> list[str]:
        return self.rows["token"].to_pylist()

    @property
    def positions(self) -> np.ndarray:
        return self.column("position")

    @property
    def token_ids(self) -> np.ndarray:
        return self.column("token_id")

    @property
    def char_spans(self) -> np.ndarray:
        """(n, 2) each token's [start, end) in ``text``."""
        return np.stack([self.column("char_start"), self.column("char_end")], axis=1)

    @property
    def special(self) -> np.ndarray:
        return self.column("special")

    @property
    def segments(self) -> list[str]:
        """Each token's part: ``prompt``, ``response``, ``template`` or a chat role."""
        return self.rows["segment"].to_pylist()

    @property
    def is_template(self) -> np.ndarray:
        """(n,) bool: tokens the chat template wrote."""
        return np.asarray(self.segments, dtype=object) == TEMPLATE_SEGMENT

    @property
    def norms(self) -> np.ndarray:
        return self.column("norm")

    @property
    def logats(self) -> np.ndarray:
        """LogAt summed over the steps each token is context for."""
        return self.column("logat")

    @property
    def scores(self) -> np.ndarray:
        """NormXLogit summed over the steps each token is context for."""
        return self.column("score")

    @property
    def n_steps(self) -> np.ndarray:
        return self.column("n_steps")

    @property
    def response_steps(self) -> np.ndarray:
        """(n,) int: t = 1..T on response token y_t, -1 on context tokens."""
        return self.rows["response_step"].fill_null(-1).to_numpy()

    @property
    def target_logprobs(self) -> np.ndarray:
        """(n,) log p(y_t | context) on response tokens, NaN on the others."""
        return self.column("target_logprob").astype(np.float64)

    @property
    def response_start(self) -> int:
        """The position of y_1."""
        return self.n_tokens - self.n_response_tokens

    @property
    def step_scores(self) -> np.ndarray | None:
        """(n, T) each token's NormXLogit at steps 1..T (NaN where the step does not apply: the
        token comes after the position that predicts y_t); None unless ``step_scores=True``."""
        if "step_scores" not in self.rows.column_names:
            return None
        values = self.rows["step_scores"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return values.astype(np.float64).reshape(self.rows.num_rows, self.n_response_tokens)

    def top_tokens(
        self, k: int = 5, include_template: bool = False, include_special: bool = False
    ) -> list[TokenScore]:
        """The k tokens with the largest summed score (largest first); the chat template's tokens
        and special tokens only when asked for."""
        keep = np.ones(self.rows.num_rows, dtype=bool)
        if not include_special:
            keep &= ~self.special
        if not include_template:
            keep &= ~self.is_template
        index = np.flatnonzero(keep)
        score, norm, logat, tokens = self.scores, self.norms, self.logats, self.tokens
        order = index[np.argsort(-score[index], kind="stable")][:k]
        return [
            TokenScore(int(i), tokens[i], float(norm[i]), float(logat[i]), float(score[i])) for i in order
        ]

    def to_arrow(self) -> pa.Table:
        """The token rows (``rows``)."""
        return self.rows

    def to_pandas(self):
        """The token rows as a pandas DataFrame (needs pandas)."""
        return self.rows.to_pandas()

    def _repr_html_(self) -> str:
        """Jupyter's rich display (``normxlogit.display.response_to_html``)."""
        from normxlogit.display import response_to_html

        return response_to_html(self)
