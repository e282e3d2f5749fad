"""Read a finished run for the report: manifest, dead letters, summaries and a document sample.

Parquet is streamed one row group at a time with only the columns needed, so memory depends on
the row-group size and the sample size, not on the size of the run. The sample is the
``sample_size`` documents with the smallest hash of their doc_id: deterministic, independent of
file order and runner, and stable when the run grows. The sampled documents' texts are then read
from the documents table (``documents/``) when the run has one, so the gaps between token spans
show the document's own characters.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from normxlogit.display import color_levels, color_scale, span_text
from normxlogit.pipeline.report.relative_scale import relative_scale
from normxlogit.pipeline.report.response_ranking import ResponseRanking
from normxlogit.response_spec import ResponseKind
from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    DOCUMENTS,
    ERRORS,
    GROUPS,
    TEMPLATE,
)
from normxlogit.transforms.summary_stats import (
    SummaryStats,
    batch_stats,
    empty_stats,
    merge_stats,
    summarize_groups,
)

DOC_COLUMNS = ["doc_id", "source", "prediction", "target", "prediction_prob", "truncated"]
TOKEN_COLUMNS = ["token", "char_start", "char_end", "word_index", "special", "norm", "logat", "score"]
# Response runs (LLM answers) fill these; plain runs hold nulls, older runs lack them.
RESPONSE_COLUMNS = ["segment", "response_step", "target_logprob"]
# Read where present, used in response runs: the step view lists positions, ``--foil top`` runs name
# each step's foil.
RESPONSE_EXTRA_COLUMNS = ["position", "foil"]
STEP_COLUMN = "step_scores"
RESPONSE_MODES = tuple(k.value for k in ResponseKind)  # the manifest's target modes of response runs
MAX_ERROR_EXAMPLES = 50
MAX_PAGE_TOKENS = 400  # tokens per document embedded in the page; longer ones are cut (and say so)
MAX_STEP_VALUES = 20_000  # per-step scores embedded per document (tokens x steps); more are left out


@dataclass
class DeadLetters:
    """Dead letters by reason, with the first few kept as examples."""

    by_reason: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)


@dataclass
class RunScan:
    """What one streaming pass over the token rows yields."""

    docs: int = 0
    tokens: int = 0
    truncated: int = 0
    by_prediction: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    sample: list[dict] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    responses: ResponseRanking = field(default_factory=ResponseRanking)


def read_dead_letters(output: Path) -> DeadLetters:
    """Count ``errors/*.jsonl`` by reason (streamed line by line), keeping a few examples."""
    letters = DeadLetters()
    for path in ERRORS.paths(output):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                letter = json.loads(line)
                letters.by_reason[str(letter.get("reason"))] += 1
                if len(letters.examples) < MAX_ERROR_EXAMPLES:
                    letters.examples.append(letter)
    return letters


def read_summaries(output: Path) -> list[dict] | None:
    """The pipeline's corpus summaries (``summaries/groups.jsonl``), or None for older runs."""
    path = GROUPS.path(output)
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def doc_hash(doc_id: str) -> int:
    """A stable 64-bit hash of a doc id; the sample keeps the smallest."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass
class DocChunk:
    """Whole documents from one row group: per-document fields and numpy token columns.

    Document ``i`` spans rows ``bounds[i]:bounds[i + 1]``.
    """

    bounds: np.ndarray
    docs: dict[str, list]
    tokens: pa.Table
    columns: dict[str, np.ndarray]


def iter_doc_chunks(output: Path) -> Iterator[DocChunk]:
    """The run's token rows as ``DocChunk``s, streamed one row group at a time.

    Rows of one document are contiguous; a document that straddles a row-group boundary is
    carried over to the next chunk, so every chunk holds whole documents.
    """
    carry: pa.Table | None = None
    for path in ATTRIBUTIONS.paths(output):
        reader = pq.ParquetFile(path)
        present = set(reader.schema_arrow.names)
        optional = RESPONSE_COLUMNS + RESPONSE_EXTRA_COLUMNS
        columns = DOC_COLUMNS + TOKEN_COLUMNS + [c for c in optional if c in present]
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group, columns=columns)
            table = table if carry is None else pa.concat_tables([carry, table])
            ids = table["doc_id"].combine_chunks()
            if len(ids) == 0:
                continue
            changes = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
            starts = np.r_[0, np.flatnonzero(changes) + 1]
            carry = table.slice(starts[-1])
            if len(starts) > 1:
                yield _chunk(table.slice(0, starts[-1]), starts[:-1])
    if carry is not None and carry.num_rows:
        yield _chunk(carry, np.array([0]))


def _chunk(table: pa.Table, starts: np.ndarray) -> DocChunk:
    firsts = table.select(DOC_COLUMNS).take(pa.array(starts))
    columns = {name: table[name].to_numpy() for name in ("char_start", "char_end", "norm", "logat", "score")}
    columns["special"] = table["special"].to_numpy(zero_copy_only=False).astype(bool)
    columns["word_index"] = table["word_index"].fill_null(-1).to_numpy()
    if "segment" in table.column_names and table["segment"].null_count < table.num_rows:
        columns["segment"] = table["segment"].fill_null("").to_numpy(zero_copy_only=False)
        columns["response_step"] = table["response_step"].fill_null(0).to_numpy()
        columns["target_logprob"] = table["target_logprob"].to_numpy(zero_copy_only=False).astype(np.float64)
        columns["position"] = table["position"].to_numpy()
        if "foil" in table.column_names:
            columns["foil"] = table["foil"].fill_null("").to_numpy(zero_copy_only=False)
    return DocChunk(
        bounds=np.r_[starts, table.num_rows],
        docs={name: firsts[name].to_pylist() for name in DOC_COLUMNS},
        tokens=table.select(["token"]),
        columns=columns,
    )


@dataclass
class SampledDoc:
    """A document kept for the page: its payload, and its spans to redo the gaps once its text is read."""

    payload: dict
    tokens: list[str]
    starts: np.ndarray
    ends: np.ndarray
    keep: np.ndarray  # positions (within the document) of the tokens on the page


def doc_payload(chunk: DocChunk, i: int) -> SampledDoc:
    """Document ``i`` of a chunk for the page: its fields and non-special tokens with colour levels.

    The payload's ``t`` is what each token shows (``display.span_text``: characters by span, so a
    character split across tokens shows once), ``k`` maps the index of each token whose string
    differs from what it shows to that string (for the hover text and the top tokens), and ``g``
    is the text before each token: spaces until ``with_texts`` puts the document's own characters.
    """
    a, b = int(chunk.bounds[i]), int(chunk.bounds[i + 1])
    cols = {name: values[a:b] for name, values in chunk.columns.items()}
    visible = np.flatnonzero(~cols["special"])
    keep = visible[:MAX_PAGE_TOKENS]
    score = cols["score"][keep].astype(np.float64)
    segment = cols["segment"][keep] if "segment" in cols else None
    # In a response run the colour scales leave out the tokens the chat template wrote.
    counted = score if segment is None else score[segment != TEMPLATE]
    scale, relative = color_scale(counted), relative_scale(counted)
    rows = chunk.tokens["token"].slice(a, b - a).to_pylist()
    tokens = [rows[k] for k in keep]
    starts, ends = cols["char_start"][keep].astype(np.int64), cols["char_end"][keep].astype(np.int64)
    gaps, shown = span_text(tokens, starts, ends)
    prob = chunk.docs["prediction_prob"][i]
    payload = {
        "id": chunk.docs["doc_id"][i],
        "source": chunk.docs["source"][i],
        "prediction": chunk.docs["prediction"][i],
        "target": chunk.docs["target"][i],
        "prob": None if prob is None else round(prob, 4),
        "truncated": bool(chunk.docs["truncated"][i]),
        "cut": bool(visible.size > MAX_PAGE_TOKENS),
        "scale": round(scale, 4),
        "t": shown,
        "k": {str(j): tok for j, (tok, piece) in enumerate(zip(tokens, shown)) if tok != piece},
        "g": gaps,
        "c": color_levels(score, scale).tolist(),
        "med": round(relative.center, 4),
        "spread": round(relative.spread, 4),
        "cm": relative.levels(score).tolist(),
        "s": np.round(score, 4).tolist(),
        "n": np.round(cols["norm"][keep].astype(np.float64), 4).tolist(),
        "l": np.round(cols["logat"][keep].astype(np.float64), 4).tolist(),
    }
    if segment is not None:
        payload.update(response_payload(cols, keep))
    return SampledDoc(payload, tokens, starts, ends, keep)


def response_payload(cols: dict[str, np.ndarray], keep: np.ndarray) -> dict:
    """A response document's extra page fields: each shown token's segment (``seg``), position
    (``p``), response step (``rs``, null for context), log-probability (``lp``) and, in ``--foil top``
    runs, its step's foil (``fo``, null for context); the response's length (``rn``) and mean
    log-probability over all its tokens (``rlp``)."""
    step = cols["response_step"].astype(np.int64)
    logprob = cols["target_logprob"]
    answer = step > 0
    kept_step, kept_lp = step[keep], logprob[keep]
    payload = {
        "seg": cols["segment"][keep].tolist(),
        "p": cols["position"][keep].astype(np.int64).tolist(),
        "rs": [int(t) if t > 0 else None for t in kept_step.tolist()],
        "lp": [round(float(v), 4) if t > 0 else None for t, v in zip(kept_step.tolist(), kept_lp.tolist())],
        "rn": int(answer.sum()),
        "rlp": round(float(logprob[answer].mean()), 4) if answer.any() else None,
    }
    foil = cols.get("foil")
    if foil is not None and (foil[answer] != "").any():
        payload["fo"] = [f if t > 0 else None for t, f in zip(kept_step.tolist(), foil[keep].tolist())]
    return payload


def read_step_scores(output: Path, doc_ids: list[str]) -> dict[str, list[list[float | None]]]:
    """Per-step scores (``--step-scores`` runs) of ``doc_ids``: doc_id -> one list per token, in
    position order; ``{}`` for runs without them."""
    paths = ATTRIBUTIONS.paths(output)
    if not paths or not doc_ids:
        return {}
    dataset = ds.dataset([str(p) for p in paths], format="parquet")
    if STEP_COLUMN not in dataset.schema.names:
        return {}
    table = dataset.to_table(
        columns=["doc_id", "position", STEP_COLUMN], filter=pc.field("doc_id").isin(doc_ids)
    ).sort_by([("doc_id", "ascending"), ("position", "ascending")])
    out: dict[str, list] = {}
    for doc_id, steps in zip(table["doc_id"].to_pylist(), table[STEP_COLUMN].to_pylist()):
        out.setdefault(doc_id, []).append(steps)
    return out


def with_steps(output: Path, sampled: list[SampledDoc]) -> None:
    """Add each response document's per-step scores for its shown tokens (``st``: one list per step
    t = 1..T), when the run kept them; ``st_cut`` when there are more than ``MAX_STEP_VALUES``."""
    wanted = [d for d in sampled if "rs" in d.payload]
    paths = ATTRIBUTIONS.paths(output)
    if not wanted or STEP_COLUMN not in pq.read_schema(paths[0]).names:
        return
    fit = [d for d in wanted if len(d.keep) * d.payload["rn"] <= MAX_STEP_VALUES]
    steps = read_step_scores(output, [d.payload["id"] for d in fit])
    for doc in wanted:
        rows = steps.get(doc.payload["id"])
        if rows is None:
            doc.payload["st_cut"] = True
            continue
        matrix = np.array([rows[k] for k in doc.keep.tolist()], dtype=np.float64).reshape(len(doc.keep), -1)
        doc.payload["st"] = [
            [None if np.isnan(v) else round(float(v), 4) for v in column] for column in matrix.T.tolist()
        ]


def read_document_texts(output: Path, doc_ids: list[str]) -> dict[str, str]:
    """The texts of ``doc_ids`` from the run's documents table (``documents/``), if it has one.

    Runs written before the documents table existed give ``{}``; the views then rebuild the text
    from the token rows (spaces between spans).
    """
    paths = DOCUMENTS.paths(output)
    if not paths or not doc_ids:
        return {}
    dataset = ds.dataset([str(p) for p in paths], format="parquet")
    if not {"doc_id", "text"} <= set(dataset.schema.names):
        return {}
    table = dataset.to_table(columns=["doc_id", "text"], filter=pc.field("doc_id").isin(doc_ids))
    return dict(zip(table["doc_id"].to_pylist(), table["text"].to_pylist()))


def spans_match(text: str, tokens: list[str], starts: np.ndarray, ends: np.ndarray) -> bool:
    """Every token is the text under its span: ``text`` is the text the tokens were cut from."""
    return all(text[s:e] == tok for tok, s, e in zip(tokens, starts.tolist(), ends.tolist()))


def with_texts(output: Path, sampled: list[SampledDoc]) -> list[dict]:
    """The payloads, with gaps from each document's own text where the run has a documents table."""
    texts = read_document_texts(output, [d.payload["id"] for d in sampled])
    for doc in sampled:
        text = texts.get(doc.payload["id"])
        if text is not None and spans_match(text, doc.tokens, doc.starts, doc.ends):
            doc.payload["g"] = span_text(doc.tokens, doc.starts, doc.ends, text)[0]
    return [d.payload for d in sampled]


def scan_run(output: Path, sample_size: int, with_summaries: bool, include_template: bool = False) -> RunScan:
    """One streaming pass: counts, the hash-chosen sample and, if asked, the corpus summaries.

    Args:
        output: the run folder.
        sample_size: at most this many documents are kept for the page.
        with_summaries: compute the summaries from the token rows (for runs without
            ``summaries/``, or whose summaries left the chat template's tokens out or in otherwise
            than asked); word texts are then rebuilt from their tokens (see
            ``summary_stats.batch_stats``).
        include_template: the computed summaries count the tokens a chat template wrote.
    """
    scan = RunScan()
    heap: list[tuple[int, str, SampledDoc]] = []  # max-heap on the hash: (-hash, doc_id, document)
    stats = empty_stats()
    for chunk in iter_doc_chunks(output):
        d = chunk.docs
        scan.docs += len(d["doc_id"])
        scan.tokens += int(chunk.bounds[-1])
        scan.truncated += sum(bool(t) for t in d["truncated"])
        scan.by_prediction.update(d["prediction"])
        scan.by_source.update(d["source"])
        for i, doc_id in enumerate(d["doc_id"]):
            h = doc_hash(doc_id)
            if len(heap) < sample_size:
                heapq.heappush(heap, (-h, doc_id, doc_payload(chunk, i)))
            elif sample_size and -heap[0][0] > h:
                heapq.heapreplace(heap, (-h, doc_id, doc_payload(chunk, i)))
        scan.responses.add(chunk)
        if with_summaries:
            stats = merge_stats([stats, _chunk_stats(chunk, include_template)])
    sampled = [doc for _, _, doc in sorted(heap, key=lambda e: (-e[0], e[1]))]
    low = scan.responses.lowest
    scan.responses.with_context(read_document_texts(output, sorted({t.doc_id for t in low})))
    with_steps(output, sampled)
    scan.sample = with_texts(output, sampled)
    scan.summaries = summarize_groups(stats)
    return scan


def _chunk_stats(chunk: DocChunk, include_template: bool = False) -> SummaryStats:
    """The summary statistics of a chunk's documents (its token rows, without the texts; the chat
    template's tokens only with ``include_template``)."""
    c, d = chunk.columns, chunk.docs
    names = ("char_start", "char_end", "word_index", "special", "score", "segment")
    rows = pa.table({"token": chunk.tokens["token"], **{name: c[name] for name in names if name in c}})
    documents = pa.table(
        {
            "n_tokens": np.diff(chunk.bounds),
            **{name: pa.array(d[name], pa.string()) for name in ("prediction", "target", "source")},
        }
    )
    return batch_stats(rows, documents, include_template=include_template)
