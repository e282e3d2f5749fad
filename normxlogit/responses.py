"""Response-level NormXLogit for causal LMs: why the model gave a whole answer (METHOD.md, ours).

A record is a prompt and a response r = y_1..y_T. The model reads prompt + response once (teacher
forcing); step t is predicted at p_t, the position just before y_t, from the context 0..p_t. A causal
model's x_i^L does not depend on later tokens, so for a context token i <= p_t

    LogAt_t(x_i) = H(x_i^L)[y_t]        NormXLogit_t(x_i) = ||x_i^0||_2 * LogAt_t(x_i)

equals the plain next-token NormXLogit of the prefix ending at p_t with target y_t: T runs in one
forward pass, and only the T response rows of the LM head (one (n x d) by (d x T) product). The
response-level score sums the steps a token is context for: S(x_i) = sum over t with p_t >= i.

Token ids: the prompt is tokenized as a plain record (with the tokenizer's usual special tokens), the
response on its own without special tokens, and the two are concatenated, which is how a model that
generated the response read it; tokenizing the joined string can merge tokens across the boundary.
Generated responses keep their generated ids (``normxlogit.generated``); chats are encoded by
``normxlogit.chat``; ``normxlogit.response_scoring`` scores them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from normxlogit.encoding import EncodedText
from normxlogit.errors import RecordError
from normxlogit.flat_tokens import SpecialNames
from normxlogit.heads import HeadAdapter, UnsupportedModelError, list_supported
from normxlogit.words import word_indices

# Segment labels of response tokens, stored as int8 codes into this tuple (an Arrow dictionary).
# Plain records use prompt/response; chats label template-added tokens and each message's role.
SEGMENTS = ("prompt", "response", "template", "system", "developer", "user", "assistant", "tool")
SEGMENT_CODE = {name: np.int8(code) for code, name in enumerate(SEGMENTS)}


@dataclass(kw_only=True)
class EncodedResponse(EncodedText):
    """A prompt and its response as one token sequence (an ``EncodedText`` the scorer can pad).

    Attributes:
        text: the display text the offsets point into: the prompt (or rendered chat) followed by
            the response text.
        segment: (n,) int8 codes into ``SEGMENTS``.
        response_start: position of y_1; the response is ``input_ids[response_start:]``.
        template_system_prompt: chats: the chat template wrote a default system prompt into the
            conversation; None for a prompt that is not a chat.

    Special tokens found inside the text (chat markers such as ``<|im_end|>``) keep their real
    offsets; only those the tokenizer adds around a text (a BOS) have (0, 0).
    """

    text: str
    segment: np.ndarray
    response_start: int
    template_system_prompt: bool | None = None

    @property
    def n_response(self) -> int:
        """T, the number of response tokens."""
        return len(self) - self.response_start

    @property
    def response_ids(self) -> np.ndarray:
        """(T,) the response token ids y_1..y_T."""
        return self.input_ids[self.response_start :]

    @property
    def response_step(self) -> np.ndarray:
        """(n,) int32: t = 1..T for response token y_t, -1 for context tokens."""
        pos = np.arange(len(self), dtype=np.int32) - self.response_start
        return np.where(pos >= 0, pos + 1, -1).astype(np.int32)

    @property
    def segments(self) -> list[str]:
        """Segment name of each token."""
        return [SEGMENTS[c] for c in self.segment.tolist()]


def require_causal_lm(adapter: HeadAdapter, architecture: str | None = None) -> None:
    """Response attribution reads an LM head at every step; refuse other heads.

    Raises:
        UnsupportedModelError: naming the architecture (or adapter) and the causal-LM families.
    """
    if adapter.task == "causal_lm":
        return
    name = architecture or adapter.name
    families = ", ".join(s for s in list_supported() if s.endswith("/causal_lm"))
    raise UnsupportedModelError(
        f"response attribution needs a causal language model; {name} is a {adapter.task} model "
        f"({adapter.name}). Use a model with a causal-LM head: {families}."
    )


@dataclass(frozen=True)
class TokenRow:
    """One tokenizer row, as arrays: ids, offsets into its own text, special flags."""

    ids: np.ndarray
    offsets: np.ndarray
    special: np.ndarray
    added: np.ndarray  # special tokens the tokenizer added around the text (BOS), not in the text


# A row of no tokens: the response of a prompt whose answer is still to be generated.
NO_TOKENS = TokenRow(np.zeros(0, np.int64), np.zeros((0, 2), np.int32), np.zeros(0, bool), np.zeros(0, bool))


def _rows(enc, tokenizer: PreTrainedTokenizerBase) -> list[TokenRow]:
    """Split a batched fast-tokenizer output into ``TokenRow`` rows."""
    specials = np.asarray(tokenizer.all_special_ids, dtype=np.int64)
    out = []
    for ids, offsets, added in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
        ids = np.asarray(ids, dtype=np.int64)
        added = np.asarray(added, dtype=bool)
        out.append(
            TokenRow(
                ids=ids,
                offsets=np.asarray(offsets, dtype=np.int32).reshape(-1, 2),
                special=added | np.isin(ids, specials),
                added=added,
            )
        )
    return out


def tokenize_rows(texts: Sequence[str], tokenizer, *, special_tokens: bool) -> list[TokenRow]:
    """One fast-tokenizer call for a batch of texts, offsets kept, no truncation."""
    if not texts:
        return []
    enc = tokenizer(
        list(texts),
        add_special_tokens=special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    return _rows(enc, tokenizer)


def _kept_lead(prompt: TokenRow, bos_id: int | None) -> int:
    """Leading prompt tokens truncation keeps: the BOS the tokenizer adds (or a template writes)."""
    lead = 0
    while lead < len(prompt.ids) and (prompt.added[lead] or (lead == 0 and prompt.ids[0] == bos_id)):
        lead += 1
    return lead


def assemble(
    prompt_text: str,
    prompt: TokenRow,
    prompt_segment: np.ndarray,
    response_text: str,
    response: TokenRow,
    *,
    max_length: int,
    tokenizer: PreTrainedTokenizerBase,
    names: SpecialNames,
    min_response: int = 1,
) -> EncodedResponse:
    """Concatenate a tokenized prompt and response into an ``EncodedResponse``, cut to ``max_length``.

    Over ``max_length``, the prompt is cut from its start first (the context nearest the answer is
    kept, and so is a leading BOS), keeping at least one prompt token so that y_1 has a position
    that predicts it; then the response is cut from its end.

    Args:
        min_response: fewer response tokens left is an ``empty_response`` (0: a prompt to generate from).

    Raises:
        RecordError: ``empty_prompt`` (no token predicts y_1), ``empty_response`` (T = 0 after cutting).
    """
    n_p, n_r = len(prompt.ids), len(response.ids)
    if n_p == 0:
        raise RecordError(
            "empty_prompt", "the prompt produced no tokens, so no position predicts the response"
        )
    excess = max(0, n_p + n_r - max_length)
    lead = _kept_lead(prompt, tokenizer.bos_token_id)
    cut_prompt = min(excess, n_p - max(lead, 1))
    keep_response = n_r - (excess - cut_prompt)
    if keep_response < min_response:
        raise RecordError(
            "empty_response",
            "the response has no tokens" if n_r == 0 else f"no response token fits in {max_length} tokens",
        )
    p_keep = np.r_[np.arange(lead), np.arange(lead + cut_prompt, n_p)].astype(np.int64)
    ids = np.concatenate([prompt.ids[p_keep], response.ids[:keep_response]])
    offsets = np.concatenate([prompt.offsets[p_keep], response.offsets[:keep_response] + len(prompt_text)])
    special = np.concatenate([prompt.special[p_keep], response.special[:keep_response]])
    segment = np.concatenate(
        [prompt_segment[p_keep], np.full(keep_response, SEGMENT_CODE["response"], dtype=np.int8)]
    )
    added = np.concatenate([prompt.added[p_keep], response.added[:keep_response]])
    text = prompt_text + response_text
    tokens = [text[s:e] for s, e in offsets.tolist()]
    for pos in np.flatnonzero(added).tolist():  # added specials have no text: show their names
        tokens[pos] = names[int(ids[pos])]
    return EncodedResponse(
        input_ids=ids,
        offsets=offsets.astype(np.int32),
        special=special,
        word_index=word_indices(text, offsets, special),
        tokens=tokens,
        truncated=excess > 0,
        pooled_position=len(ids) - 1,
        text=text,
        segment=segment.astype(np.int8),
        response_start=len(ids) - keep_response,
    )


def encode_response_batch(
    prompts: Sequence[str],
    responses: Sequence[str | None],
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
) -> list[EncodedResponse | RecordError]:
    """Encode prompt/response pairs: one tokenizer call for the prompts, one for the responses.

    Returns:
        One entry per pair, in order: its ``EncodedResponse`` or the ``RecordError`` (not raised):
        ``missing_response`` (not a string), ``empty_prompt``, ``empty_response``.

    Raises:
        UnsupportedModelError: the adapter is not a causal LM's.
        ValueError: ``prompts`` and ``responses`` differ in length.
    """
    require_causal_lm(adapter)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts")
    is_text = [isinstance(r, str) for r in responses]
    prompt_rows = tokenize_rows(prompts, tokenizer, special_tokens=True)
    response_rows = iter(
        tokenize_rows([r for r in responses if isinstance(r, str)], tokenizer, special_tokens=False)
    )
    names = SpecialNames(tokenizer)
    out: list[EncodedResponse | RecordError] = []
    for prompt, row, response, ok in zip(prompts, prompt_rows, responses, is_text):
        if not ok:
            out.append(
                RecordError("missing_response", f"the response is {type(response).__name__}, not text")
            )
            continue
        out.append(
            assemble_plain(
                prompt,
                row,
                response,
                next(response_rows),
                max_length=max_length,
                tokenizer=tokenizer,
                names=names,
            )
        )
    return out


def assemble_plain(
    prompt_text: str, prompt: TokenRow, response_text: str, response: TokenRow, **options: Any
) -> EncodedResponse | RecordError:
    """``assemble`` (``options``: its keyword arguments) for a plain, not chat, prompt: every prompt
    token in segment ``prompt``. The ``RecordError`` is returned, not raised: batch encoders keep
    it in place."""
    segment = np.full(len(prompt.ids), SEGMENT_CODE["prompt"], dtype=np.int8)
    try:
        return assemble(prompt_text, prompt, segment, response_text, response, **options)
    except RecordError as err:
        return err


def single(encoded: Sequence[EncodedResponse | RecordError]) -> EncodedResponse:
    """The one entry of a one-record batch encoding; raises its ``RecordError``."""
    (one,) = encoded
    if isinstance(one, RecordError):
        raise one
    return one


def encode_response(
    prompt: str, response: str, tokenizer: PreTrainedTokenizerBase, adapter: HeadAdapter, *, max_length: int
) -> EncodedResponse:
    """``encode_response_batch`` for one pair; raises its ``RecordError``."""
    return single(encode_response_batch([prompt], [response], tokenizer, adapter, max_length=max_length))
