"""The token-row schema every output file follows, and the columnar conversion to it.

One row per token. Document-level fields (target, prediction, ...) repeat on each row so that
any single row is self-describing and a Parquet reader can filter without joins.

Every run has the response columns (``segment``, ``response_step``, ``n_steps``,
``target_logprob``): filled by response runs (``response_token_rows``), null in plain runs
(``token_rows``), so that one schema reads both.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from normxlogit.encoding import EncodedText
from normxlogit.engine import ScoredBatch, ScoredResponses
from normxlogit.flat_tokens import FlatTokens, block_gather
from normxlogit.responses import SEGMENTS
from normxlogit.result import TextAttribution
from normxlogit.scoring import BatchScores

_BASE_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("position", pa.int32(), nullable=False),
    pa.field("token_id", pa.int32(), nullable=False),
    pa.field("token", pa.string(), nullable=False),
    pa.field("char_start", pa.int32(), nullable=False),
    pa.field("char_end", pa.int32(), nullable=False),
    pa.field("word_index", pa.int32()),
    pa.field("special", pa.bool_(), nullable=False),
    pa.field("norm", pa.float32(), nullable=False),
    pa.field("logat", pa.float32(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("target_id", pa.int32(), nullable=False),
    pa.field("foil", pa.string()),
    pa.field("foil_id", pa.int32()),
    pa.field("prediction", pa.string(), nullable=False),
    pa.field("prediction_id", pa.int32()),
    pa.field("prediction_prob", pa.float32()),
    pa.field("truncated", pa.bool_(), nullable=False),
    # Response runs (null in plain runs): the token's part of the conversation, its step t, how many
    # steps it is context for, and log p(y_t | context) on response tokens.
    pa.field("segment", pa.string()),
    pa.field("response_step", pa.int32()),
    pa.field("n_steps", pa.int32()),
    pa.field("target_logprob", pa.float32()),
]
_LAYER_FIELDS = [
    pa.field("logat_layers", pa.list_(pa.float32())),
    pa.field("score_layers", pa.list_(pa.float32())),
]
_STEP_FIELD = pa.field("step_scores", pa.list_(pa.float32()))
RESPONSE_TOKEN_COLUMNS: tuple[str, ...] = ("segment", "response_step", "n_steps", "target_logprob")


def token_schema(with_layers: bool = False, step_scores: bool = False) -> pa.Schema:
    """The Arrow schema of token rows; layer-wise list columns only when layers were asked for, the
    per-step list column only when a response run asked for it (``--step-scores``)."""
    return pa.schema(
        _BASE_FIELDS + (_LAYER_FIELDS if with_layers else []) + ([_STEP_FIELD] if step_scores else [])
    )


_DOCUMENT_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("n_tokens", pa.int32(), nullable=False),
    pa.field("truncated", pa.bool_(), nullable=False),
    pa.field("target", pa.string(), nullable=False),
    pa.field("prediction", pa.string(), nullable=False),
    pa.field("prediction_prob", pa.float32()),
]


_RESPONSE_DOCUMENT_FIELDS = [
    pa.field("response", pa.string(), nullable=False),
    pa.field("n_response_tokens", pa.int32(), nullable=False),
    pa.field("response_logprob", pa.float32(), nullable=False),
    # Chats: the chat template wrote a default system prompt the user never gave; null otherwise.
    pa.field("template_system_prompt", pa.bool_()),
]

DOCUMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in _DOCUMENT_FIELDS)
RESPONSE_DOCUMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in _RESPONSE_DOCUMENT_FIELDS)


def document_schema(keep_fields: Sequence[str] = (), responses: bool = False) -> pa.Schema:
    """The Arrow schema of document rows: one row per annotated document.

    Args:
        keep_fields: record fields copied into the table after its own columns, as strings
            (``kept_text``), null where a record lacks the field.
        responses: a response run: ``response`` (the response as the model read it),
            ``n_response_tokens``, ``response_logprob`` (the mean of its tokens'
            ``target_logprob``) and ``template_system_prompt`` (chats: whether the chat template
            wrote a default system prompt; null in other response runs) follow the table's own
            columns.

    Raises:
        ValueError: a kept field repeats or is named like one of the table's own columns.
    """
    own = DOCUMENT_COLUMNS + (RESPONSE_DOCUMENT_COLUMNS if responses else ())
    clash = sorted(set(keep_fields) & set(own))
    if clash or len(set(keep_fields)) != len(keep_fields):
        raise ValueError(
            f"kept fields must be distinct and differ from the documents table's own columns "
            f"({', '.join(own)}): {', '.join(clash) or 'repeated names'}"
        )
    fields = _DOCUMENT_FIELDS + (_RESPONSE_DOCUMENT_FIELDS if responses else [])
    return pa.schema(fields + [pa.field(name, pa.string()) for name in keep_fields])


def kept_text(value: Any) -> str | None:
    """A kept field's value as the documents table stores it: strings as they are, null as null,
    anything else (numbers, booleans, lists, objects) as its JSON text, so one column has one type
    whatever the records hold."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _ids(values: np.ndarray) -> pa.Array:
    """int32 ids with -1 (none) as null."""
    values = np.asarray(values)
    return pa.array(values.astype(np.int32), mask=values < 0)


def _doc_columns(scored: ScoredBatch, doc_ids: Sequence[str], sources: Sequence[str]) -> dict[str, pa.Array]:
    """Per-document values of a scored batch, one entry per scored text."""
    pred = scored.scores.prediction_id
    return {
        "doc_id": pa.array(doc_ids, type=pa.string()),
        "source": pa.array(sources, type=pa.string()),
        "target": pa.array(scored.target, type=pa.string()),
        "target_id": pa.array(scored.scores.target_id.astype(np.int32)),
        "foil": pa.array(scored.foil, type=pa.string()),
        "foil_id": _ids(scored.scores.foil_id),
        "prediction": pa.array(scored.prediction, type=pa.string()),
        "prediction_id": _ids(pred),
        "prediction_prob": pa.array(scored.scores.prediction_prob.astype(np.float32), mask=pred < 0),
        "truncated": pa.array([e.truncated for e in scored.encoded], type=pa.bool_()),
    }


def _text_columns(encoded: Sequence[EncodedText], lengths: np.ndarray) -> list[pa.Array]:
    """position .. special: what the encodings say about each token, documents one after another."""
    flat = _shared_batch(encoded)
    if flat is not None:  # views into one encoded batch: every column gathered at once
        docs = np.fromiter((e.flat[1] for e in encoded), dtype=np.int64, count=len(encoded))
        rows = block_gather(flat.lengths, docs)
        offsets, word, special = flat.offsets[rows], flat.word_index[rows], flat.special[rows]
        ids = flat.input_ids[rows].astype(np.int32)
        tokens = flat.tokens.take(pa.array(rows)).cast(pa.string())
    elif encoded:
        offsets = np.concatenate([e.offsets for e in encoded])
        word = np.concatenate([e.word_index for e in encoded])
        ids = np.concatenate([e.input_ids for e in encoded]).astype(np.int32)
        special = np.concatenate([e.special for e in encoded])
        tokens = pa.array(list(itertools.chain.from_iterable(e.tokens for e in encoded)), type=pa.string())
    else:
        offsets, word = np.zeros((0, 2), np.int32), np.zeros(0, np.int32)
        ids, special = np.zeros(0, np.int32), np.zeros(0, bool)
        tokens = pa.array([], type=pa.string())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return [
        pa.array((np.arange(int(lengths.sum())) - starts).astype(np.int32)),
        pa.array(ids),
        tokens,
        pa.array(offsets[:, 0].astype(np.int32)),
        pa.array(offsets[:, 1].astype(np.int32)),
        pa.array(word.astype(np.int32), mask=word < 0),
        pa.array(special, type=pa.bool_()),
    ]


def _shared_batch(encoded: Sequence[EncodedText]) -> FlatTokens | None:
    """The one ``FlatTokens`` every encoding is a view into, or None."""
    first = encoded[0].flat if encoded else None
    if first is None or any(e.flat is None or e.flat[0] is not first[0] for e in encoded):
        return None
    return first[0]


_PER_DOC = (
    "target",
    "target_id",
    "foil",
    "foil_id",
    "prediction",
    "prediction_id",
    "prediction_prob",
    "truncated",
)


def _per_token(docs: dict[str, pa.Array], lengths: np.ndarray) -> dict[str, pa.Array]:
    """Each per-document column repeated on its document's token rows."""
    owner = pa.array(np.repeat(np.arange(len(lengths), dtype=np.int32), lengths))
    return {name: docs[name].take(owner) for name in docs}


def _lists(values: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    """A list<float32> column from flat values and (N + 1,) offsets; NaN values become nulls."""
    values = np.asarray(values, dtype=np.float32)
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), pa.array(values, mask=np.isnan(values))
    )


def token_rows(
    scored: ScoredBatch, doc_ids: Sequence[str], sources: Sequence[str], with_layers: bool = False
) -> pa.RecordBatch:
    """All token rows of a scored batch as one Arrow record batch (``token_schema``).

    The response columns are null.

    Args:
        scored: the engine's results; rows follow its scored texts in order.
        doc_ids, sources: one per scored text (``scored.index`` order).
        with_layers: add the layer-wise list columns.
    """
    n, lengths = scored.tokens, scored.scores.lengths
    per_token = _per_token(_doc_columns(scored, doc_ids, sources), lengths)
    columns = [
        per_token["doc_id"],
        per_token["source"],
        *_text_columns(scored.encoded, lengths),
        pa.array(scored.scores.norm),
        pa.array(scored.scores.logat),
        pa.array(scored.scores.score),
        *(per_token[name] for name in _PER_DOC),
        *(pa.nulls(n, type=_FIELD_TYPES[name]) for name in RESPONSE_TOKEN_COLUMNS),
    ]
    if with_layers:
        layer_logat = scored.scores.layer_logat
        width = layer_logat.shape[1]
        list_offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        layer_scores = layer_logat * scored.scores.norm[:, None]
        columns.append(pa.ListArray.from_arrays(list_offsets, pa.array(layer_logat.ravel())))
        columns.append(pa.ListArray.from_arrays(list_offsets, pa.array(layer_scores.ravel())))
    return pa.RecordBatch.from_arrays(columns, schema=token_schema(with_layers))


_FIELD_TYPES = {f.name: f.type for f in _BASE_FIELDS}


def _response_doc_columns(
    scored: ScoredResponses, doc_ids: Sequence[str], sources: Sequence[str]
) -> dict[str, pa.Array]:
    """Per-document values of scored responses: target = y_1, prediction = the model's own token there."""
    s, enc = scored.scores, scored.encoded
    first = np.array([int(e.response_ids[0]) for e in enc], dtype=np.int32)
    return {
        "doc_id": pa.array(doc_ids, type=pa.string()),
        "source": pa.array(sources, type=pa.string()),
        "target": pa.array(scored.target, type=pa.string()),
        "target_id": pa.array(first, type=pa.int32()),
        "foil": pa.nulls(len(enc), type=pa.string()),
        "foil_id": pa.nulls(len(enc), type=pa.int32()),
        "prediction": pa.array(scored.prediction, type=pa.string()),
        "prediction_id": pa.array(s.prediction_id.astype(np.int32)),
        "prediction_prob": pa.array(s.prediction_prob.astype(np.float32)),
        "truncated": pa.array([e.truncated for e in enc], type=pa.bool_()),
    }


def response_token_rows(
    scored: ScoredResponses, doc_ids: Sequence[str], sources: Sequence[str], step_scores: bool = False
) -> pa.RecordBatch:
    """All token rows of scored responses as one Arrow record batch (``token_schema``).

    ``score`` and ``logat`` are summed over the steps a token is context for (0 where ``n_steps`` is
    0); ``response_step`` and ``target_logprob`` are null on context tokens. ``foil`` and
    ``foil_id`` are per step too: on response token y_t, the foil f_t its step was scored against
    (``--foil top``), null elsewhere and in runs without a foil.

    Args:
        scored: the engine's response results; rows follow its scored pairs in order.
        doc_ids, sources: one per scored pair (``scored.index`` order).
        step_scores: add ``step_scores``: each token's NormXLogit at steps 1..T (null where the
            step does not apply, i.e. the token comes after the position that predicts y_t).
    """
    s, enc = scored.scores, scored.encoded
    per_token = _per_token(_response_doc_columns(scored, doc_ids, sources), s.lengths)
    per_token.update(_step_foils(s.foil_id, scored.foil_names))
    step = np.concatenate([e.response_step for e in enc]) if enc else np.zeros(0, np.int32)
    segment = np.concatenate([e.segment for e in enc]) if enc else np.zeros(0, np.int8)
    names = pa.array(SEGMENTS, type=pa.string())
    columns = [
        per_token["doc_id"],
        per_token["source"],
        *_text_columns(enc, s.lengths),
        pa.array(s.norm),
        pa.array(s.logat),
        pa.array(s.score),
        *(per_token[name] for name in _PER_DOC),
        names.take(pa.array(segment.astype(np.int32))),
        pa.array(step, mask=step < 0),
        pa.array(s.n_steps.astype(np.int32)),
        pa.array(s.target_logprob, mask=np.isnan(s.target_logprob)),
    ]
    if step_scores:
        columns.append(_lists(s.step_score, s.step_offsets()))
    return pa.RecordBatch.from_arrays(columns, schema=token_schema(step_scores=step_scores))


def _step_foils(foil_id: np.ndarray, names: Mapping[int, str]) -> dict[str, pa.Array]:
    """Per-token ``foil`` and ``foil_id`` columns from (N,) step foil ids (-1: none, null)."""
    none = foil_id < 0
    ids, owner = np.unique(np.where(none, -1, foil_id), return_inverse=True)
    text = pa.array([names.get(i) for i in ids.tolist()], type=pa.string())
    return {
        "foil": text.take(pa.array(owner.astype(np.int32), mask=none)),
        "foil_id": _ids(foil_id),
    }


def response_document_rows(
    scored: ScoredResponses,
    doc_ids: Sequence[str],
    sources: Sequence[str],
    kept: Mapping[str, Sequence[Any]] | None = None,
) -> pa.RecordBatch:
    """One row per scored pair (``document_schema(responses=True)``).

    ``text`` is the prompt (or rendered conversation) followed by the response, the text the
    token spans point into; ``response`` is the response part of it as the model read it.
    """
    kept = kept or {}
    s, enc = scored.scores, scored.encoded
    docs = _response_doc_columns(scored, doc_ids, sources)
    starts = np.cumsum(s.lengths) - s.lengths
    logprob = np.nan_to_num(s.target_logprob, nan=0.0).astype(np.float64)
    sums = np.add.reduceat(logprob, starts) if len(enc) else np.zeros(0)
    response = [e.text[int(e.offsets[e.response_start, 0]) : int(e.offsets[-1, 1])] for e in enc]
    columns = {
        "doc_id": docs["doc_id"],
        "source": docs["source"],
        "text": pa.array([e.text for e in enc], type=pa.string()),
        "n_tokens": pa.array(s.lengths.astype(np.int32)),
        "truncated": docs["truncated"],
        "target": docs["target"],
        "prediction": docs["prediction"],
        "prediction_prob": docs["prediction_prob"],
        "response": pa.array(response, type=pa.string()),
        "n_response_tokens": pa.array(s.response_length.astype(np.int32)),
        "response_logprob": pa.array((sums / s.response_length).astype(np.float32)),
        "template_system_prompt": pa.array([e.template_system_prompt for e in enc], type=pa.bool_()),
        **{name: pa.array([kept_text(v) for v in values], type=pa.string()) for name, values in kept.items()},
    }
    return pa.RecordBatch.from_arrays(
        list(columns.values()), schema=document_schema(list(kept), responses=True)
    )


def document_rows(
    scored: ScoredBatch,
    doc_ids: Sequence[str],
    sources: Sequence[str],
    texts: Sequence[str],
    kept: Mapping[str, Sequence[Any]] | None = None,
) -> pa.RecordBatch:
    """One row per scored text (``document_schema``).

    Args:
        doc_ids, sources, texts: one per scored text (``scored.index`` order).
        kept: kept field name -> its raw values, one per scored text (see ``kept_text``).
    """
    kept = kept or {}
    docs = _doc_columns(scored, doc_ids, sources)
    columns = {
        "doc_id": docs["doc_id"],
        "source": docs["source"],
        "text": pa.array(texts, type=pa.string()),
        "n_tokens": pa.array(scored.scores.lengths.astype(np.int32)),
        "truncated": docs["truncated"],
        "target": docs["target"],
        "prediction": docs["prediction"],
        "prediction_prob": docs["prediction_prob"],
        **{name: pa.array([kept_text(v) for v in values], type=pa.string()) for name, values in kept.items()},
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=document_schema(list(kept)))


def to_record_batch(
    result: TextAttribution, doc_id: str, source: str, with_layers: bool = False
) -> pa.RecordBatch:
    """All token rows of one document as one Arrow record batch (``token_rows`` of a one-text batch)."""
    att = result.attribution
    regression = att.prediction_id is None
    scores = BatchScores(
        lengths=np.array([len(result.encoded)]),
        norm=att.norm,
        logat=att.logat,
        layer_logat=att.layer_logat,
        target_id=np.array([att.target_id]),
        foil_id=np.array([-1 if att.foil_id is None else att.foil_id]),
        prediction_id=np.array([-1 if regression else att.prediction_id]),
        prediction_prob=np.array([np.nan if regression else att.prediction_prob], np.float32),
        prediction_value=np.array([att.prediction_value]),
        regression=regression,
    )
    one = ScoredBatch(
        size=1,
        index=np.zeros(1, np.int64),
        encoded=[result.encoded],
        scores=scores,
        target=[result.target],
        foil=[result.foil],
        prediction=[result.prediction],
        errors={},
        padded_tokens=len(result.encoded),
        layers=result.layers,
    )
    return token_rows(one, [doc_id], [source], with_layers)
