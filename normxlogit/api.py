"""The notebook API: ``normxlogit.score(model, texts)`` returns one result per text;
``score_responses``, ``score_chats`` and ``generate_and_score`` one result per response of a causal
LM, through the same task and engine as ``annotate`` (``tasks.ResponseTask``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from normxlogit.chat import check_chat_template
from normxlogit.encoding import EncodedText
from normxlogit.engine import STREAM_CHUNK, BatchEngine, EngineOptions, ScoredBatch
from normxlogit.errors import RecordError
from normxlogit.limits import DEFAULT_BATCH_TOKENS, prompt_room
from normxlogit.loading import ModelInfo, ScoringModel, load_model
from normxlogit.response_result import ResponseAttribution
from normxlogit.response_spec import ResponseKind, ResponseSpec
from normxlogit.responses import require_causal_lm
from normxlogit.result import TextAttribution
from normxlogit.tasks import ResponseTask

Model = ScoringModel | str | os.PathLike | None
DEFAULT_MAX_NEW_TOKENS = 32


class LayerError(ValueError):
    """Layer-wise scores were asked for layers the model does not have."""


def validate_layers(model: ScoringModel | ModelInfo, layers: Sequence[int]) -> tuple[int, ...]:
    """Layer numbers must lie in 1..L (L = the model's number of layers).

    Raises:
        LayerError: naming the bad layers and the valid range.
    """
    top = getattr(model, "info", model).num_layers
    bad = [layer for layer in layers if not 1 <= int(layer) <= top]
    if bad:
        raise LayerError(f"layers {bad} are out of range: this model has layers 1..{top}")
    return tuple(int(layer) for layer in layers)


def encode_texts(
    sm: ScoringModel,
    texts: Sequence[str],
    *,
    targets: Sequence[str | int | None] | None = None,
    foil: str | int | None = None,
    max_length: int | None = None,
) -> list[EncodedText]:
    """Tokenize texts (one tokenizer call) and resolve their targets (``None`` = the prediction).

    Raises:
        normxlogit.RecordError: the first text that cannot be scored (e.g. no mask token).
    """
    encoded = BatchEngine(sm, EngineOptions(max_length=max_length, foil=foil)).encode(texts, targets)
    for item in encoded:
        if isinstance(item, RecordError):
            raise item
    return encoded


def score_encoded(
    sm: ScoringModel,
    encoded: Sequence[EncodedText],
    *,
    layers: Sequence[int] = (),
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list:
    """Score encoded texts in length-sorted batches within a padded-token budget.

    Returns:
        One ``Attribution`` per input, in input order.

    Raises:
        normxlogit.RecordError: ``model_error`` when the model fails on a text on its own.
    """
    scored = BatchEngine(sm, EngineOptions(layers=tuple(layers), batch_tokens=batch_tokens)).score_encoded(
        encoded
    )
    _raise_first(scored)
    return [scored.attribution(d) for d in range(len(scored.index))]


def _raise_first(scored: ScoredBatch) -> None:
    if scored.errors:
        raise scored.errors[min(scored.errors)]


def scoring_model(model: Model) -> ScoringModel:
    """What every notebook call accepts as a model: a ``ScoringModel`` as it is, else ``load_model``
    of a model folder or GGUF path (None: the embedded default model)."""
    return model if isinstance(model, ScoringModel) else load_model(model)


def score(
    model: Model,
    texts: Sequence[str] | str,
    *,
    target: str | int | None = None,
    targets: Sequence[str | int | None] | None = None,
    foil: str | int | None = None,
    max_length: int | None = None,
    layers: Sequence[int] = (),
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[TextAttribution]:
    """NormXLogit attributions for texts.

    Args:
        model: a ``ScoringModel`` (see ``load_model``/``prepare``), a model folder or GGUF path,
            or None for the embedded default model.
        texts: one text or a sequence of texts.
        target: one target for every text: a class name or id, or a single token for LMs.
        targets: one target per text (overrides ``target``); None entries use the prediction.
        foil: a contrastive foil; scores become target minus foil.
        max_length: truncate longer texts (flagged ``truncated``); default: the model's limit.
        layers: layer numbers 1..L for layer-wise LogAt.
        batch_tokens: padded tokens per forward pass.

    Returns:
        One ``TextAttribution`` per text, in order.

    Raises:
        normxlogit.RecordError: a text cannot be scored (e.g. no mask token for a masked LM).
    """
    sm = scoring_model(model)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if targets is None:
        targets = [target] * len(texts)
    options = EngineOptions(
        max_length=max_length, foil=foil, layers=validate_layers(sm, layers), batch_tokens=batch_tokens
    )
    results: list[TextAttribution] = []
    for lo, scored in BatchEngine(sm, options).score_stream(texts, targets):
        _raise_first(scored)
        results += scored.results(texts[lo : lo + scored.size])
    return results


_ABSENT = object()  # the task's marker of a field an input lacks: every input has its fields
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class _Input:
    """One input as ``ResponseTask`` reads a record (``tasks.Record``)."""

    doc_id: str
    source: str
    text: Any = None
    target: Any = None
    response: Any = None
    messages: Any = None


def _at(index: int, err: RecordError) -> RecordError:
    """``err`` naming the input it belongs to (also as its ``index`` attribute)."""
    out = RecordError(err.reason, f"input {index} cannot be scored ({err.reason}): {err}")
    out.index = index
    return out


def _strings(value: object) -> Iterator[str]:
    """Every string inside a value (a chat's roles and contents)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _prompt_problem(prompt: object) -> RecordError | None:
    """Why a prompt cannot be scored (``annotate``'s reasons for a record's text), else None."""
    if prompt is None:
        return RecordError("null_text", "the prompt is None")
    if not isinstance(prompt, str):
        return RecordError("non_string_text", f"the prompt is a {type(prompt).__name__}, not a string")
    if not prompt.strip():
        return RecordError(
            "blank_prompt",
            "the prompt is empty or whitespace only (annotate counts such a record as skipped_empty)",
        )
    if "\x00" in prompt:
        return RecordError("nul_bytes", "the prompt contains NUL (\\x00) bytes")
    return None


def _unicode_problem(item: _Input) -> RecordError | None:
    """``invalid_unicode`` for a lone surrogate (e.g. a JSON \\ud800 escape) in a prompt, response or
    chat: no tokenizer takes one."""
    for what, value in (("prompt", item.text), ("response", item.response), ("chat", item.messages)):
        if any(_SURROGATE.search(s) for s in _strings(value)):
            return RecordError(
                "invalid_unicode", f"the {what} holds a lone surrogate, which is not a character"
            )
    return None


def _score_inputs(
    sm: ScoringModel,
    spec: ResponseSpec,
    items: list[_Input],
    *,
    step_scores: bool,
    max_length: int | None,
    batch_tokens: int,
) -> list[ResponseAttribution]:
    """Every input's ``ResponseAttribution`` through ``ResponseTask`` (``annotate``'s task), in
    length-sorted buckets, ``STREAM_CHUNK`` inputs at a time.

    Raises:
        normxlogit.RecordError: the first input that cannot be scored, naming its position: inputs
            are checked before anything is encoded, then encoding and scoring errors come per chunk.
    """
    task = ResponseTask(spec, _ABSENT, step_scores)
    for i, item in enumerate(items):
        problem = (
            (None if spec.kind is ResponseKind.CHAT else _prompt_problem(item.text))
            or task.problem(item)
            or _unicode_problem(item)
        )
        if problem is not None:
            raise _at(i, problem)
    engine = BatchEngine(sm, EngineOptions(max_length=max_length, batch_tokens=batch_tokens))
    results: list[ResponseAttribution] = []
    for lo in range(0, len(items), STREAM_CHUNK):
        chunk = items[lo : lo + STREAM_CHUNK]
        scored = task.score(engine, chunk, None)
        if scored.errors:
            first = min(scored.errors)
            raise _at(lo + first, scored.errors[first])
        rows = pa.Table.from_batches([task.token_rows(scored, chunk)])
        starts = np.cumsum(scored.scores.lengths) - scored.scores.lengths
        for doc, start, n in zip(
            task.document_rows(scored, chunk, {}).to_pylist(), starts.tolist(), scored.scores.lengths.tolist()
        ):
            results.append(ResponseAttribution.of(spec.kind.value, rows.slice(start, n), doc))
    return results


def _causal_lm(model: Model) -> ScoringModel:
    """The scoring model, refused in one line unless it has a causal-LM head."""
    sm = scoring_model(model)
    require_causal_lm(sm.adapter, sm.info.architecture)
    return sm


def _listed(values: Sequence | str) -> list:
    """One input or a sequence of them as a list (a lone string is one input)."""
    return [values] if isinstance(values, str) else list(values)


def score_responses(
    model: Model,
    prompts: Sequence[str] | str,
    responses: Sequence[str] | str,
    *,
    step_scores: bool = False,
    max_length: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[ResponseAttribution]:
    """Why a causal LM would give each response to its prompt: ``annotate --response-field``'s rows.

    Each token's score sums its NormXLogit over the response steps it is context for (METHOD.md,
    "Responses of causal LMs"); the prompt is tokenized as a plain text, the response on its own.

    Args:
        model: as ``score`` takes it (a ``ScoringModel``, a folder or GGUF path, None: the default
            model); it must be a causal LM.
        prompts, responses: one of each, or equally long sequences.
        step_scores: keep each token's score at every step (``step_scores`` rows, ``(n, T)``
            ``ResponseAttribution.step_scores``).
        max_length: cut longer pairs (the prompt from its start first, then the response's end;
            flagged ``truncated``); default: the model's limit.
        batch_tokens: padded tokens per forward pass.

    Returns:
        One ``ResponseAttribution`` per pair, in input order.

    Raises:
        normxlogit.RecordError: the first pair that cannot be scored, naming its position and reason
            (``annotate``'s dead-letter reasons, e.g. ``null_response``, ``empty_response``).
        UnsupportedModelError: the model is not a causal LM.
        ValueError: prompts and responses differ in number.
    """
    prompts, responses = _listed(prompts), _listed(responses)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts")
    sm = _causal_lm(model)
    items = [
        _Input(str(i), "score_responses", text=p, response=r)
        for i, (p, r) in enumerate(zip(prompts, responses))
    ]
    return _score_inputs(
        sm,
        ResponseSpec(ResponseKind.RESPONSE, "response"),
        items,
        step_scores=step_scores,
        max_length=max_length,
        batch_tokens=batch_tokens,
    )


def score_chats(
    model: Model,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    *,
    step_scores: bool = False,
    max_length: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[ResponseAttribution]:
    """Why a chat model gave each conversation's last assistant message: ``annotate
    --messages-field``'s rows.

    The conversation before that message goes through the tokenizer's chat template (with its
    generation prompt); tokens the template wrote have segment ``template``, the others their
    message's role, the answer ``response``.

    Args:
        model: as ``score`` takes it; a causal LM whose tokenizer has a chat template.
        conversations: OpenAI-style chats (lists of ``{"role": ..., "content": ...}``), each ending
            with the assistant's message.
        step_scores, max_length, batch_tokens: as in ``score_responses``.

    Returns:
        One ``ResponseAttribution`` per conversation, in input order.

    Raises:
        normxlogit.RecordError: the first conversation that cannot be scored, naming its position
            and reason (e.g. ``malformed_messages``, ``no_assistant_response``).
        UnsupportedModelError: the model is not a causal LM or its tokenizer has no chat template.
    """
    conversations = list(conversations)
    sm = _causal_lm(model)
    check_chat_template(sm.tokenizer)
    items = [_Input(str(i), "score_chats", messages=m) for i, m in enumerate(conversations)]
    return _score_inputs(
        sm,
        ResponseSpec(ResponseKind.CHAT, "messages"),
        items,
        step_scores=step_scores,
        max_length=max_length,
        batch_tokens=batch_tokens,
    )


def generate_and_score(
    model: Model,
    prompts: Sequence[str] | str,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    step_scores: bool = False,
    max_length: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> list[ResponseAttribution]:
    """The model's own greedy answer to each prompt, and why it gave it: ``annotate --generate``'s rows.

    Answers are generated in length buckets (at most ``max_new_tokens`` each, ending at an
    end-of-sequence token), kept as the generated ids, and scored as ``score_responses`` scores a
    given response; ``ResponseAttribution.generated`` holds each answer.

    Args:
        model: as ``score`` takes it; a causal LM.
        prompts: one prompt or a sequence of them.
        max_new_tokens: the most tokens an answer may have.
        step_scores, max_length, batch_tokens: as in ``score_responses`` (prompts longer than
            ``max_length - max_new_tokens`` are cut from their start).

    Returns:
        One ``ResponseAttribution`` per prompt, in input order.

    Raises:
        normxlogit.RecordError: the first prompt that cannot be answered or scored, naming its
            position and reason.
        UnsupportedModelError: the model is not a causal LM.
        ValueError: ``max_new_tokens`` below 1, or leaving no room for a prompt.
    """
    prompts = _listed(prompts)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    sm = _causal_lm(model)
    limit = BatchEngine(sm, EngineOptions(max_length=max_length)).max_length
    if prompt_room(limit, max_new_tokens) < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in {limit} tokens "
            "(max_length or the model's limit); generate fewer tokens"
        )
    items = [_Input(str(i), "generate_and_score", text=p) for i, p in enumerate(prompts)]
    return _score_inputs(
        sm,
        ResponseSpec(ResponseKind.GENERATE, max_new_tokens=max_new_tokens),
        items,
        step_scores=step_scores,
        max_length=max_length,
        batch_tokens=batch_tokens,
    )
