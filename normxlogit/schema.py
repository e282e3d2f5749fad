"""The token-row schema every output file follows, and the columnar conversion to it.

One row per token. Document-level fields (target, prediction, ...) repeat on each row so that
any single row is self-describing and a Parquet reader can filter without joins.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from normxlogit.result import TextAttribution

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


def to_record_batch(
    result: TextAttribution, doc_id: str, source: str, with_layers: bool = False
) -> pa.RecordBatch:
    """All token rows of one document as one Arrow record batch (columnar, no per-row dicts)."""
    enc, att = result.encoded, result.attribution
    n = len(enc)

    def repeat(value, typ):
        return pa.array(np.repeat(np.array([value], dtype=object), n), type=typ)

    columns = [
        repeat(doc_id, pa.string()),
        repeat(source, pa.string()),
        pa.array(np.arange(n, dtype=np.int32)),
        pa.array(enc.input_ids.astype(np.int32)),
        pa.array(enc.tokens, type=pa.string()),
        pa.array(enc.offsets[:, 0]),
        pa.array(enc.offsets[:, 1]),
        pa.array(enc.word_index, mask=enc.word_index < 0),
        pa.array(enc.special),
        pa.array(att.norm),
        pa.array(att.logat),
        pa.array(att.score),
        repeat(result.target, pa.string()),
        repeat(att.target_id, pa.int32()),
        repeat(result.foil, pa.string()),
        repeat(att.foil_id, pa.int32()),
        repeat(result.prediction, pa.string()),
        repeat(att.prediction_id, pa.int32()),
        repeat(att.prediction_prob, pa.float32()),
        repeat(enc.truncated, pa.bool_()),
    ]
    if with_layers:
        width = att.layer_logat.shape[1]
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        layer_scores = att.layer_logat * att.norm[:, None]
        columns.append(pa.ListArray.from_arrays(offsets, pa.array(att.layer_logat.ravel())))
        columns.append(pa.ListArray.from_arrays(offsets, pa.array(layer_scores.ravel())))
    return pa.RecordBatch.from_arrays(columns, schema=token_schema(with_layers))
