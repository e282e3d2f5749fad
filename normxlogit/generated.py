"""Generated responses: the model answers prompts itself, and each answer is attributed as generated.

``encode_prompt_batch`` tokenizes prompts as plain records and cuts them from their start;
``generate_responses`` answers them greedily in batches; ``append_generated`` puts each answer's ids
after its prompt exactly as the model read it, nothing re-tokenized. ``encode_response_ids_batch``
does the same for ids generated elsewhere, given the prompt's text. Text and offsets of generated
ids come from decoding them (``decoded_offsets``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from normxlogit.encoding import EncodedText
from normxlogit.errors import RecordError
from normxlogit.flat_tokens import SpecialNames
from normxlogit.heads import HeadAdapter
from normxlogit.loading import ScoringModel
from normxlogit.responses import (
    NO_TOKENS,
    SEGMENT_CODE,
    EncodedResponse,
    TokenRow,
    assemble_plain,
    require_causal_lm,
    single,
    tokenize_rows,
)
from normxlogit.scoring import pad_batch
from normxlogit.words import word_indices


def encode_prompt_batch(
    prompts: Sequence[str], tokenizer: PreTrainedTokenizerBase, adapter: HeadAdapter, *, max_length: int
) -> list[EncodedResponse | RecordError]:
    """Prompts to generate from, tokenized as in ``encode_response_batch`` and cut from their start.

    Pass ``max_length`` minus the tokens to generate, then ``generate_responses`` and
    ``append_generated``: the answer is attributed on the prompt exactly as the model read it.

    Returns:
        One entry per prompt: an ``EncodedResponse`` with no response tokens, or a ``RecordError``.
    """
    require_causal_lm(adapter)
    names = SpecialNames(tokenizer)
    out: list[EncodedResponse | RecordError] = []
    for prompt, row in zip(prompts, tokenize_rows(prompts, tokenizer, special_tokens=True)):
        out.append(
            assemble_plain(
                prompt,
                row,
                "",
                NO_TOKENS,
                max_length=max_length,
                tokenizer=tokenizer,
                names=names,
                min_response=0,
            )
        )
    return out


def append_generated(
    prompt: EncodedResponse, response_ids: Sequence[int], tokenizer: PreTrainedTokenizerBase
) -> EncodedResponse:
    """The prompt as the model read it (``encode_prompt_batch``) followed by the ids it generated.

    Nothing is re-tokenized or cut: the ids are used as generated; text and offsets come from
    decoding them (``decoded_offsets``).

    Raises:
        RecordError: ``empty_response`` (no ids), ``bad_response_ids`` (ids outside the vocabulary).
    """
    ids = _checked_ids(response_ids, tokenizer)
    text, offsets = decoded_offsets(ids, tokenizer)
    special = np.isin(ids, np.asarray(tokenizer.all_special_ids, dtype=np.int64))
    full_text = prompt.text + text
    all_offsets = np.concatenate([prompt.offsets, offsets + len(prompt.text)]).astype(np.int32)
    all_special = np.concatenate([prompt.special, special])
    return EncodedResponse(
        input_ids=np.concatenate([prompt.input_ids, ids]),
        offsets=all_offsets,
        special=all_special,
        word_index=word_indices(full_text, all_offsets, all_special),
        tokens=prompt.tokens + [full_text[s:e] for s, e in all_offsets[len(prompt) :].tolist()],
        truncated=prompt.truncated,
        pooled_position=len(prompt) + len(ids) - 1,
        text=full_text,
        segment=np.r_[prompt.segment, np.full(len(ids), SEGMENT_CODE["response"], dtype=np.int8)],
        response_start=len(prompt),
        template_system_prompt=prompt.template_system_prompt,
    )


def _checked_ids(response_ids: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """(T,) int64 response ids; ``RecordError`` for none or ids outside the vocabulary."""
    ids = np.asarray(response_ids, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        raise RecordError("empty_response", "the response has no tokens")
    if ids.min() < 0 or ids.max() >= len(tokenizer):
        raise RecordError("bad_response_ids", f"response ids outside the vocabulary 0..{len(tokenizer) - 1}")
    return ids


def decoded_offsets(ids: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> tuple[str, np.ndarray]:
    """The text of generated ids and each id's span in it, from decoding (no re-tokenization).

    The text is ``decode(ids)``; token t ends where ``decode(ids[:t])`` ends, so spans tile the
    text in order. A token that ends inside a multi-byte character (byte-level BPE) decodes to a
    replacement character; it gets the span up to the last complete character, so it is empty
    and the token that completes the character covers all of it.

    Returns:
        (text, offsets: (T, 2) int32).
    """
    ids = [int(i) for i in ids]
    kw = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    prefixes = tokenizer.batch_decode([ids[: t + 1] for t in range(len(ids))], **kw)
    text = prefixes[-1] if prefixes else ""
    ends = np.zeros(len(ids), dtype=np.int64)
    for t, prefix in enumerate(prefixes):
        complete = prefix.rstrip("\ufffd") if t < len(ids) - 1 else prefix
        ends[t] = len(complete) if text.startswith(complete) else 0
    ends = np.maximum.accumulate(ends) if len(ends) else ends
    starts = np.r_[0, ends[:-1]] if len(ends) else ends
    return text, np.stack([starts, ends], axis=-1).astype(np.int32).reshape(-1, 2)


def encode_response_ids_batch(
    prompts: Sequence[str],
    response_ids: Sequence[Sequence[int]],
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
) -> list[EncodedResponse | RecordError]:
    """Encode prompts with responses given as token ids (a generation), kept exactly as given.

    The prompt is tokenized as in ``encode_response_batch``; the response text and offsets come
    from decoding the ids (``decoded_offsets``).

    Returns:
        One entry per pair: its ``EncodedResponse`` or a ``RecordError`` (``bad_response_ids`` for
        ids outside the vocabulary, ``empty_prompt``, ``empty_response``).
    """
    require_causal_lm(adapter)
    if len(prompts) != len(response_ids):
        raise ValueError(f"{len(response_ids)} responses for {len(prompts)} prompts")
    specials = np.asarray(tokenizer.all_special_ids, dtype=np.int64)
    names = SpecialNames(tokenizer)
    out: list[EncodedResponse | RecordError] = []
    for prompt, row, ids in zip(
        prompts, tokenize_rows(prompts, tokenizer, special_tokens=True), response_ids
    ):
        try:
            ids = _checked_ids(ids, tokenizer)
        except RecordError as err:
            out.append(err)
            continue
        text, offsets = decoded_offsets(ids, tokenizer)
        response = TokenRow(ids, offsets, np.isin(ids, specials), np.zeros(len(ids), dtype=bool))
        out.append(
            assemble_plain(
                prompt, row, text, response, max_length=max_length, tokenizer=tokenizer, names=names
            )
        )
    return out


def encode_response_ids(
    prompt: str,
    response_ids: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
    *,
    max_length: int,
) -> EncodedResponse:
    """``encode_response_ids_batch`` for one pair; raises its ``RecordError``."""
    return single(
        encode_response_ids_batch([prompt], [response_ids], tokenizer, adapter, max_length=max_length)
    )


def eos_ids(sm: ScoringModel) -> list[int]:
    """Token ids that end a generation: the generation config's EOS ids, else the tokenizer's."""
    eos = sm.model.generation_config.eos_token_id
    if eos is None:
        eos = getattr(sm.tokenizer, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


@torch.inference_mode()
def generate_responses(
    sm: ScoringModel, prompts: Sequence[EncodedText], max_new_tokens: int
) -> list[np.ndarray]:
    """The model's greedy answers to encoded prompts, batched.

    Prompts are padded on the left (whatever ``sm.padding_side``) with an attention mask, so that
    every row continues from its last real token; ``model.generate`` derives positions from the mask.

    Returns:
        Per prompt, (k,) int64 generated ids without the prompt, up to and including the first EOS
        (``eos_ids``), at most ``max_new_tokens``.

    Raises:
        UnsupportedModelError: the model is not a causal LM.
    """
    require_causal_lm(sm.adapter, sm.info.architecture)
    padded = pad_batch(prompts, sm.pad_id, "left")
    eos = eos_ids(sm)
    with sm.lock:
        out = sm.model.generate(
            input_ids=padded.input_ids.to(sm.device),
            attention_mask=padded.attention_mask.to(sm.device),
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            pad_token_id=sm.pad_id,
            eos_token_id=eos or None,
        )
    new = out[:, padded.input_ids.shape[1] :].cpu().numpy()
    stops = np.isin(new, eos)
    ends = np.where(stops.any(1), stops.argmax(1) + 1, new.shape[1])
    return [row[:end].astype(np.int64) for row, end in zip(new, ends.tolist())]
