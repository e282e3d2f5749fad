"""Finished runs for the findings tests: a real annotate run, benchmark-style synthetic runs, and runs
written word by word with chosen scores (known truths)."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import normxlogit
from normxlogit.transforms.layout import ATTRIBUTIONS, DOCUMENTS, MANIFEST_FILE, AnnotateCounts

# Short texts with repeated words, in two groups (--keep-fields group), one in mixed case.
TEXTS = [
    ("a", "The film was great, the acting was great."),
    ("a", "A great film; the plot was dull."),
    ("a", "Great acting, dull plot, great music."),
    ("a", "The music was not great."),
    ("a", "THE film is great and the music is great."),
    ("a", "Dull, dull, dull: the film was dull."),
    ("b", "The plot was dull and the acting was dull."),
    ("b", "Not a great film, not a dull film."),
    ("b", "The acting was fine; the film was fine."),
    ("b", "Great plot. Great film. The end."),
    ("b", "The film was dull but the music was great."),
    ("b", "Fine acting, fine plot, the film was fine."),
]


@pytest.fixture(scope="session")
def annotated_run(tmp_path_factory, tiny_classifier, cli) -> Path:
    """A real annotate run of ``TEXTS`` with the tiny classifier, ``group`` kept from the records."""
    folder = tmp_path_factory.mktemp("findings-run")
    src = folder / "reviews.jsonl"
    records = [{"id": f"r{i}", "text": t, "group": g} for i, (g, t) in enumerate(TEXTS)]
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = folder / "out"
    argv = [src, "--output", out, "--model", tiny_classifier, "--id-field", "id"]
    assert cli.annotate(*argv, "--keep-fields", "group") == 0
    return out


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, synthetic) -> Path:
    """A benchmark-style synthetic run of 400 documents in row groups of 64, 30% misclassified."""
    out = tmp_path_factory.mktemp("findings-synthetic") / "run"
    synthetic.write_synthetic_run(out, 400, docs_per_group=64, misclassified=0.3, documents=True)
    return out


@dataclasses.dataclass
class Doc:
    """A document written word by word: each word one token with its score (and segment)."""

    doc_id: str
    words: list[str]
    scores: list[float]
    fields: dict[str, str | None] = dataclasses.field(default_factory=dict)
    segments: list[str] | None = None


def token_table(docs: list[Doc]) -> pa.Table:
    """Token rows (``normxlogit.token_schema``): a special token, then one token per word, spaces between."""
    columns: dict[str, list] = {name: [] for name in normxlogit.token_schema().names}
    for d in docs:
        starts = np.r_[0, np.cumsum([len(w) + 1 for w in d.words])[:-1]].tolist()
        n = len(d.words) + 1
        label = d.fields.get("prediction", "positive")
        values = {
            "doc_id": [d.doc_id] * n,
            "source": [d.fields.get("source", "corpus.jsonl")] * n,
            "position": list(range(n)),
            "token_id": [101] + [1000 + i for i in range(n - 1)],
            "token": ["[CLS]", *d.words],
            "char_start": [0, *starts],
            "char_end": [0, *(s + len(w) for s, w in zip(starts, d.words))],
            "word_index": [None, *range(n - 1)],
            "special": [True] + [False] * (n - 1),
            "norm": [1.0] * n,
            "logat": [0.0, *d.scores],
            "score": [0.0, *d.scores],
            "target": [d.fields.get("target", label)] * n,
            "target_id": [0] * n,
            "foil": [None] * n,
            "foil_id": [None] * n,
            "prediction": [label] * n,
            "prediction_id": [0] * n,
            "prediction_prob": [0.9] * n,
            "truncated": [False] * n,
            "segment": [None, *(d.segments or [None] * (n - 1))],
            "response_step": [None] * n,
            "n_steps": [None] * n,
            "target_logprob": [None] * n,
        }
        for name, v in values.items():
            columns[name].extend(v)
    return pa.table(columns, schema=normxlogit.token_schema())


def write_run(
    synthetic,
    out: Path,
    docs: list[Doc],
    keep_fields: tuple[str, ...] = (),
    row_group_size: int | None = None,
) -> Path:
    """A finished run holding ``docs`` (manifest as ``synthetic_run`` writes one, counts of these docs)."""
    manifest = synthetic.write_synthetic_run(out, 1, documents=True)
    tokens = token_table(docs)
    pq.write_table(tokens, out / ATTRIBUTIONS.name(0, 1), row_group_size=row_group_size)
    documents = synthetic.document_rows(tokens)
    for name in keep_fields:
        documents = documents.append_column(name, pa.array([d.fields.get(name) for d in docs], pa.string()))
    pq.write_table(documents, out / DOCUMENTS.name(0, 1))
    options = dataclasses.replace(manifest.sections.options, keep_fields=tuple(keep_fields))
    sections = dataclasses.replace(manifest.sections, options=options)
    counts = AnnotateCounts(len(docs), len(docs), 0, 0, tokens.num_rows)
    manifest = dataclasses.replace(manifest, sections=sections, counts=counts)
    (out / MANIFEST_FILE).write_text(manifest.to_json())
    return out


@pytest.fixture(scope="session")
def runs(synthetic):
    """``Doc``, ``write_run`` and ``token_table`` for tests that write a run word by word."""
    return types.SimpleNamespace(Doc=Doc, write=functools.partial(write_run, synthetic), tokens=token_table)
