"""A synthetic finished run (token rows in ``normxlogit.token_schema()``) for report tests and timings.

No model runs: words come from a fixed vocabulary with a per-word score bias, so the corpus views
have real structure. With ``hostile=True`` ids, sources, labels, tokens and dead letters carry
markup, script, entities, right-to-left and emoji text, bidi controls and zero-width characters.
``misclassified`` gives that share of documents a target other than their prediction (target
mode "field"), ``layers`` adds the layer-wise columns, ``documents`` writes ``OUT/documents/``.

    python benchmarks/synthetic_run.py OUT --docs 100000 [--summaries]
    normxlogit report OUT --out report.html
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import normxlogit
from normxlogit.transforms.layout import (
    ATTRIBUTIONS,
    DOCUMENTS,
    ERRORS,
    GROUPS,
    MANIFEST_FILE,
    AnnotateCounts,
    AnnotateOptionsSection,
    AnnotateSections,
    Manifest,
    OutputFiles,
    RunHeader,
    TargetSection,
)

LABELS = ["positive", "negative", "neutral"]
HOSTILE = [
    "<script>document.title='pwned';window.pwned=1</script>",
    "<img src=x onerror=\"document.title='pwned';window.pwned=2\">",
    "</script><script>window.pwned=3</script>",
    "&amp;lt;b&amp;gt; &lt;i&gt; &#60;u&#62;",
    '<a href="https://example.com/x">link</a>',
    "\u202eevil\u202c שלום עולם مرحبا",
    "emoji 😀👍🏽 \u2028 line \u2029 sep",
    "{{constructor.constructor('window.pwned=4')()}}",
    "zwj-\u200d-id zwsp\u200b zwnj\u200c wj\u2060 bom\ufeff shy\u00ad",
    "\u2067rli\u2069 \u2066lri \u2068fsi \u202bRLE\u202a LRE \u202dLRO \u200eLRM\u200f RLM\u061c ALM",
]
HOSTILE_LABELS = [HOSTILE[0], "neg\u202eative", "neu\u200dtral"]
_SYLLABLES = ["ka", "lo", "mi", "ren", "sa", "tu", "vel", "no", "dra", "pi", "que", "zor", "el", "an", "ib"]


def vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct pronounceable words."""
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES, rng.integers(1, 5))))
    return np.array(sorted(words), dtype=object)


def synthetic_table(
    first_doc: int,
    n_docs: int,
    vocab: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    seed: int,
    misclassified: float = 0.0,
    layers: tuple[int, ...] = (),
) -> pa.Table:
    """Token rows of documents ``first_doc .. first_doc + n_docs - 1``: one <s>, then one token per word."""
    rng = np.random.default_rng(seed + first_doc)
    wrong = np.random.default_rng(seed + first_doc + 1).random(n_docs) < misclassified
    lengths = rng.integers(8, 60, n_docs)
    words = (rng.zipf(1.3, lengths.sum()) - 1) % len(vocab)
    doc_of_word = np.repeat(np.arange(n_docs), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    word_index = np.arange(lengths.sum()) - np.repeat(starts, lengths)
    text = np.where(word_index == 0, vocab[words], " " + vocab[words])
    char_len = np.fromiter((len(t) for t in text), dtype=np.int64, count=len(text))
    char_end = np.cumsum(char_len) - np.repeat(np.cumsum(char_len)[starts] - char_len[starts], lengths)
    prediction = rng.integers(0, len(labels), n_docs)
    target = np.where(wrong, (prediction + 1) % len(labels), prediction)
    norm = rng.uniform(1.5, 3.0, len(words)).astype(np.float32)
    logat = (bias[words] + rng.normal(0, 1, len(words)) + (prediction[doc_of_word] - 1)).astype(np.float32)
    # Prepend one special token per document: insert at each document's first row.
    at = starts
    docs = np.arange(first_doc, first_doc + n_docs)
    sources = np.array([f"corpus/part-{k}.jsonl" for k in range(4)], dtype=object)[docs % 4]
    doc_ids = np.array([f"{s}#L{d + 1}" for s, d in zip(sources, docs)], dtype=object)
    rows_doc = np.insert(doc_of_word, at, np.arange(n_docs))

    def per_doc(values, typ):
        return pa.array(values[rows_doc], type=typ)

    columns = {
        "doc_id": per_doc(doc_ids, pa.string()),
        "source": per_doc(sources, pa.string()),
        "position": pa.array(
            np.arange(len(rows_doc)) - np.repeat(starts + np.arange(n_docs), lengths + 1), pa.int32()
        ),
        "token_id": pa.array(np.insert(words + 100, at, 1), pa.int32()),
        "token": pa.array(np.insert(text, at, "<s>"), pa.string()),
        "char_start": pa.array(np.insert(char_end - char_len, at, 0), pa.int32()),
        "char_end": pa.array(np.insert(char_end, at, 0), pa.int32()),
        "word_index": pa.array(
            np.insert(word_index, at, -1), pa.int32(), mask=np.insert(word_index < 0, at, True)
        ),
        "special": pa.array(np.insert(np.zeros(len(words), bool), at, True)),
        "norm": pa.array(np.insert(norm, at, 1.0)),
        "logat": pa.array(np.insert(logat, at, 0.0)),
        "score": pa.array(np.insert(norm * logat, at, 0.0).astype(np.float32)),
        "target": per_doc(np.array(labels, dtype=object)[target], pa.string()),
        "target_id": per_doc(target, pa.int32()),
        "foil": pa.nulls(len(rows_doc), pa.string()),
        "foil_id": pa.nulls(len(rows_doc), pa.int32()),
        "prediction": per_doc(np.array(labels, dtype=object)[prediction], pa.string()),
        "prediction_id": per_doc(prediction, pa.int32()),
        "prediction_prob": per_doc(rng.uniform(0.34, 1.0, n_docs).astype(np.float32), pa.float32()),
        "truncated": per_doc(lengths > 56, pa.bool_()),
        **{  # a plain run: the response columns are null
            name: pa.nulls(len(rows_doc), normxlogit.token_schema().field(name).type)
            for name in ("segment", "response_step", "n_steps", "target_logprob")
        },
    }
    if layers:  # layer l's scores: the final scores scaled by l / L (a stand-in with structure)
        share = np.asarray(layers, dtype=np.float32) / max(layers)
        for name in ("logat", "score"):
            values = np.outer(columns[name].to_numpy(), share).astype(np.float32)
            columns[f"{name}_layers"] = pa.FixedSizeListArray.from_arrays(values.ravel(), len(layers)).cast(
                pa.list_(pa.float32())
            )
    return pa.table(columns, schema=normxlogit.token_schema(with_layers=bool(layers)))


def document_rows(table: pa.Table) -> pa.Table:
    """One row per document of a token-row table (rows of a document are contiguous); its text is its
    non-special tokens' text, which covers it."""
    ids = table["doc_id"].to_numpy(zero_copy_only=False)
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    bounds = np.r_[starts, len(ids)]
    tokens = np.where(
        table["special"].to_numpy(zero_copy_only=False), "", table["token"].to_numpy(zero_copy_only=False)
    )
    per_doc = table.take(pa.array(starts))
    return pa.table(
        {
            "doc_id": per_doc["doc_id"],
            "source": per_doc["source"],
            "text": pa.array(["".join(tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:])], pa.string()),
            "n_tokens": pa.array(np.diff(bounds), pa.int32()),
            **{name: per_doc[name] for name in ("truncated", "target", "prediction", "prediction_prob")},
        }
    )


def write_synthetic_run(
    out: Path,
    n_docs: int,
    seed: int = 0,
    docs_per_group: int = 512,
    hostile: bool = False,
    misclassified: float = 0.0,
    layers: tuple[int, ...] = (),
    documents: bool = False,
) -> Manifest:
    """Write ``OUT/attributions/part-00000-of-00001.parquet``, ``OUT/errors/``, ``OUT/manifest.json``.

    Args:
        misclassified: the share of documents whose target is not their prediction.
        layers: layer numbers of the ``logat_layers`` / ``score_layers`` columns (none: no columns).
        documents: also write ``OUT/documents/part-00000-of-00001.parquet`` (with each ``text``).

    Returns:
        The manifest.
    """
    rng = np.random.default_rng(seed)
    vocab = vocabulary(5000, rng)
    labels = HOSTILE_LABELS if hostile else LABELS
    if hostile:
        vocab[: len(HOSTILE)] = HOSTILE
    bias = rng.normal(0, 2, len(vocab))
    started = datetime.datetime.now(datetime.timezone.utc)
    (out / ATTRIBUTIONS.folder).mkdir(parents=True, exist_ok=True)
    (out / ERRORS.folder).mkdir(exist_ok=True)
    tokens, doc_tables = 0, []
    path = out / ATTRIBUTIONS.name(0, 1)
    schema = normxlogit.token_schema(with_layers=bool(layers))
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for first in range(0, n_docs, docs_per_group):
            n = min(docs_per_group, n_docs - first)
            table = synthetic_table(first, n, vocab, bias, labels, seed, misclassified, tuple(layers))
            if hostile and first == 0:
                table = _hostile_ids(table)
            writer.write_table(table)
            tokens += table.num_rows
            if documents:
                doc_tables.append(document_rows(table))
    if documents:
        (out / DOCUMENTS.folder).mkdir(exist_ok=True)
        pq.write_table(pa.concat_tables(doc_tables), out / DOCUMENTS.name(0, 1))
    bad = "corpus/b\u202ead\u200b.jsonl" if hostile else "corpus/bad.jsonl"
    letters = [{"source": bad, "locator": "line 3", "doc_id": None, "reason": "malformed_json",
                "message": "not valid JSON", "excerpt": HOSTILE[i % len(HOSTILE)] if hostile else "{bad"}
               for i in range(3)]  # fmt: skip
    (out / ERRORS.name(0, 1)).write_text("".join(json.dumps(e) + "\n" for e in letters))
    header = RunHeader(
        command="annotate",
        start_time=started,
        inputs=("corpus/", *(HOSTILE[:2] if hostile else [])),
        input_files=4,
        output=str(out),
        runner="synthetic",
        model={"path": "synthetic", "architecture": "SyntheticForSequenceClassification",
               "task": "classification", "adapter": "synthetic", "num_layers": 0},
    )  # fmt: skip
    manifest = Manifest(
        header=header,
        sections=AnnotateSections(
            target=TargetSection(
                mode="field" if misclassified else "prediction",
                target_field="label" if misclassified else None,
            ),
            options=AnnotateOptionsSection(layers=tuple(layers)),
        ),
        counts=AnnotateCounts(
            records_read=n_docs + 3, docs_annotated=n_docs, skipped_empty=0, errors=3, tokens=tokens
        ),
        files=OutputFiles(
            attributions=(ATTRIBUTIONS.name(0, 1),),
            documents=(DOCUMENTS.name(0, 1),) if documents else None,
            errors=(ERRORS.name(0, 1),),
        ),
        end_time=datetime.datetime.now(datetime.timezone.utc),
    )
    (out / MANIFEST_FILE).write_text(manifest.to_json())
    return manifest


def _hostile_ids(table: pa.Table) -> pa.Table:
    """Give the first documents hostile ids and sources (rows of one document stay together)."""
    ids = table["doc_id"].to_pylist()
    firsts = list(dict.fromkeys(ids))[: len(HOSTILE)]
    rename = {old: f"{HOSTILE[i]}#{i}" for i, old in enumerate(firsts)}
    new_ids = [rename.get(i, i) for i in ids]
    sources = [HOSTILE[(firsts.index(i) + 1) % len(HOSTILE)] if i in rename else s
               for i, s in zip(ids, table["source"].to_pylist())]  # fmt: skip
    table = table.set_column(0, table.schema.field(0), pa.array(new_ids, pa.string()))
    return table.set_column(1, table.schema.field(1), pa.array(sources, pa.string()))


def write_rescored_copy(run: Path, out: Path, seed: int = 1) -> Path:
    """A second run over ``run``'s documents, as another model would score them: ``run`` copied to
    ``out`` with each token's score replaced by ``0.5 * score + N(0, 2)`` (for ``compare``)."""
    import shutil

    shutil.copytree(run, out)
    path = out / ATTRIBUTIONS.name(0, 1)
    table = pq.read_table(path)
    score = table["score"].to_numpy()
    noisy = 0.5 * score + np.random.default_rng(seed).normal(0, 2, len(score))
    at = table.schema.get_field_index("score")
    pq.write_table(table.set_column(at, table.schema.field(at), pa.array(noisy.astype(np.float32))), path)
    return out


def write_summaries(out: Path) -> None:
    """Write ``summaries/groups.jsonl`` as the pipeline would (same accumulator, from the rows)."""
    from normxlogit.pipeline.report.run_reader import scan_run

    GROUPS.path(out).parent.mkdir(exist_ok=True)
    groups = scan_run(out, 0, with_summaries=True).summaries
    lines = "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in groups)
    GROUPS.path(out).write_text(lines, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--hostile", action="store_true")
    parser.add_argument("--summaries", action="store_true", help="also write summaries/ (as annotate does)")
    args = parser.parse_args()
    started = time.monotonic()
    manifest = write_synthetic_run(args.out, args.docs, hostile=args.hostile)
    print(f"wrote {args.out}: {manifest.counts} in {time.monotonic() - started:.1f} s")
    if args.summaries:
        started = time.monotonic()
        write_summaries(args.out)
        print(f"wrote {args.out}/summaries in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
