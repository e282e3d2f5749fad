"""The token-row schema every output file follows, and the columnar conversion to it.

One row per token. Document-level fields (target, prediction, ...) repeat on each row so that
any single row is self-describing and a Parquet reader can filter without joins.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from normxlogit.engine import ScoredBatch
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
]
_LAYER_FIELDS = [
    pa.field("logat_layers", pa.list_(pa.float32())),
    pa.field("score_layers", pa.list_(pa.float32())),
]


def token_schema(with_layers: bool = False) -> pa.Schema:
    """The Arrow schema of token rows; layer-wise list columns only when layers were asked for."""
    return pa.schema(_BASE_FIELDS + (_LAYER_FIELDS if with_layers else []))


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


DOCUMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in _DOCUMENT_FIELDS)


def document_schema(keep_fields: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of document rows: one row per annotated document.

    Args:
        keep_fields: record fields copied into the table after its own columns, as strings
            (``kept_text``), null where a record lacks the field.

    Raises:
        ValueError: a kept field repeats or is named like one of the table's own columns.
    """
    clash = sorted(set(keep_fields) & set(DOCUMENT_COLUMNS))
    if clash or len(set(keep_fields)) != len(keep_fields):
        raise ValueError(
            f"kept fields must be distinct and differ from the documents table's own columns "
            f"({', '.join(DOCUMENT_COLUMNS)}): {', '.join(clash) or 'repeated names'}"
        )
    return pa.schema(_DOCUMENT_FIELDS + [pa.field(name, pa.string()) for name in keep_fields])


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


def token_rows(
    scored: ScoredBatch, doc_ids: Sequence[str], sources: Sequence[str], with_layers: bool = False
) -> pa.RecordBatch:
    """All token rows of a scored batch as one Arrow record batch (``token_schema``).

    Args:
        scored: the engine's results; rows follow its scored texts in order.
        doc_ids, sources: one per scored text (``scored.index`` order).
        with_layers: add the layer-wise list columns.
    """
    enc = scored.encoded
    n = scored.tokens
    docs = _doc_columns(scored, doc_ids, sources)
    owner = pa.array(np.repeat(np.arange(len(enc), dtype=np.int32), scored.scores.lengths))
    per_token = {name: docs[name].take(owner) for name in docs}
    if enc:
        offsets = np.concatenate([e.offsets for e in enc])
        word = np.concatenate([e.word_index for e in enc])
        ids = np.concatenate([e.input_ids for e in enc]).astype(np.int32)
        special = np.concatenate([e.special for e in enc])
    else:
        offsets, word, ids, special = (
            np.zeros((0, 2), np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, bool),
        )
    starts = np.repeat(np.cumsum(scored.scores.lengths) - scored.scores.lengths, scored.scores.lengths)
    columns = [
        per_token["doc_id"],
        per_token["source"],
        pa.array((np.arange(n) - starts).astype(np.int32)),
        pa.array(ids),
        pa.array(list(itertools.chain.from_iterable(e.tokens for e in enc)), type=pa.string()),
        pa.array(offsets[:, 0].astype(np.int32)),
        pa.array(offsets[:, 1].astype(np.int32)),
        pa.array(word.astype(np.int32), mask=word < 0),
        pa.array(special, type=pa.bool_()),
        pa.array(scored.scores.norm),
        pa.array(scored.scores.logat),
        pa.array(scored.scores.score),
        *(
            per_token[name]
            for name in ("target", "target_id", "foil", "foil_id", "prediction", "prediction_id")
        ),
        per_token["prediction_prob"],
        per_token["truncated"],
    ]
    if with_layers:
        layer_logat = scored.scores.layer_logat
        width = layer_logat.shape[1]
        list_offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        layer_scores = layer_logat * scored.scores.norm[:, None]
        columns.append(pa.ListArray.from_arrays(list_offsets, pa.array(layer_logat.ravel())))
        columns.append(pa.ListArray.from_arrays(list_offsets, pa.array(layer_scores.ravel())))
    return pa.RecordBatch.from_arrays(columns, schema=token_schema(with_layers))


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
