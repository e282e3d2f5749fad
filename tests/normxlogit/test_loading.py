"""Loading: safe defaults (no pickle), clear errors a user can act on, ``prepare`` for notebooks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, BertForTokenClassification, T5ForSequenceClassification

import normxlogit
from normxlogit.default_model import cache_root
from normxlogit.heads import UnsupportedModelError
from normxlogit.loading import ModelLoadError, check_safetensors, inspect_model, resolve_device
from normxlogit.result import label_of

TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _save(folder: Path, model, tokenizer, *, pickle_only: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if pickle_only:
        # transformers 5 always writes safetensors; write the pickle checkpoint by hand.
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert(make_model, bert_tokenizer):
    return make_model("bert", "classification", vocab_size=bert_tokenizer.vocab_size)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory, bert, bert_tokenizer) -> Path:
    return _save(tmp_path_factory.mktemp("bert-safe"), bert, bert_tokenizer)


@pytest.fixture(scope="module")
def pickle_folder(tmp_path_factory, bert, bert_tokenizer) -> Path:
    return _save(tmp_path_factory.mktemp("bert-pickle"), bert, bert_tokenizer, pickle_only=True)


def _same_logits(sm, model):
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with torch.no_grad():
        torch.testing.assert_close(sm.model(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_safetensors_folder_loads_with_its_info(bert_folder, bert):
    sm = normxlogit.load_model(bert_folder)
    _same_logits(sm, bert)
    assert not sm.model.training
    info = sm.info
    assert (info.architecture, info.model_type, info.adapter, info.task) == (
        "BertForSequenceClassification",
        "bert",
        "bert-classification",
        "classification",
    )
    assert info.dtype == "float32" and info.num_layers == 2 and info.path == str(bert_folder)
    assert info.labels == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert len(info.weights_sha256) == 64 and int(info.weights_sha256, 16) >= 0
    assert normxlogit.load_model(bert_folder).info.weights_sha256 == info.weights_sha256
    assert normxlogit.load_model(bert_folder, hash_weights=False).info.weights_sha256 == ""
    assert sm.padding_side == "right"


def test_weights_hash_changes_with_the_weights(tmp_path, make_model, bert_tokenizer, bert_folder):
    other = make_model("bert", "classification", seed=1, vocab_size=bert_tokenizer.vocab_size)
    a = normxlogit.load_model(bert_folder).info.weights_sha256
    b = normxlogit.load_model(_save(tmp_path / "other", other, bert_tokenizer)).info.weights_sha256
    assert a != b


def test_pickle_only_folder_is_refused(pickle_folder):
    assert sorted(p.name for p in pickle_folder.glob("*.bin")) == ["pytorch_model.bin"]
    assert not list(pickle_folder.glob("*.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        normxlogit.load_model(pickle_folder)
    assert "--allow-pickle" in str(err.value)
    assert "pytorch_model.bin" in str(err.value)


def test_allow_pickle_loads_it(pickle_folder, bert):
    sm = normxlogit.load_model(pickle_folder, allow_pickle=True)
    _same_logits(sm, bert)
    assert sm.info.adapter == "bert-classification"
    assert len(sm.info.weights_sha256) == 64


def test_safetensors_win_over_pickle(tmp_path, bert, bert_tokenizer, bert_folder):
    folder = _save(tmp_path / "both", bert, bert_tokenizer)
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint: must never be unpickled")
    sm = normxlogit.load_model(folder)  # no allow_pickle needed, and the .bin is not read
    _same_logits(sm, bert)


def _copy(folder: Path, to: Path) -> Path:
    to.mkdir()
    for f in folder.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda b: b[: len(b) - 1000], "is truncated: its header describes"),  # data cut short
        (lambda b: b[:20], "is not a readable safetensors file"),  # header cut short
        (lambda b: b"", "is not a readable safetensors file"),
        (lambda b: (10**12).to_bytes(8, "little") + b[8:], "is not a readable safetensors file"),
        (lambda b: b[:8] + b"[" + b[9:], "is not a readable safetensors file"),  # header not an object
    ],
)
def test_damaged_safetensors_fail_before_loading_naming_the_file(tmp_path, bert_folder, damage, says):
    folder = _copy(bert_folder, tmp_path / "damaged")
    weights = folder / "model.safetensors"
    check_safetensors(weights)  # the whole file passes
    weights.write_bytes(damage(weights.read_bytes()))
    for check in (normxlogit.load_model, inspect_model):
        with pytest.raises(ModelLoadError) as err:
            check(folder)
        assert str(err.value).startswith(f"{weights} {says}") and "\n" not in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        normxlogit.load_model(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        normxlogit.load_model(tmp_path)


def test_folder_without_weights(tmp_path, bert):
    bert.config.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no weight files"):
        normxlogit.load_model(tmp_path)


def test_unknown_dtype(bert_folder):
    with pytest.raises(ModelLoadError, match="float32"):
        normxlogit.load_model(bert_folder, dtype="float8")


def test_model_without_a_supported_head_names_it(tmp_path, bert_tokenizer):
    config = AutoConfig.for_model("bert", vocab_size=bert_tokenizer.vocab_size, **TINY_BERT)
    folder = _save(tmp_path / "ner", BertForTokenClassification(config), bert_tokenizer)
    with pytest.raises(ModelLoadError) as err:
        normxlogit.load_model(folder)
    msg = str(err.value)
    assert "BertForTokenClassification" in msg
    assert "sequence-classification" in msg and "causal-LM" in msg and "masked-LM" in msg


def test_unsupported_architecture_lists_supported_ones(tmp_path, bert_tokenizer):
    config = AutoConfig.for_model(
        "t5", d_model=32, d_ff=64, num_layers=1, num_heads=4, d_kv=8, vocab_size=bert_tokenizer.vocab_size
    )
    folder = _save(tmp_path / "t5", T5ForSequenceClassification(config), bert_tokenizer)
    with pytest.raises(UnsupportedModelError) as err:
        normxlogit.load_model(folder)
    msg = str(err.value)
    assert "T5ForSequenceClassification" in msg and "'t5'" in msg
    assert "bert/classification" in msg and "llama/causal_lm" in msg and "roberta/masked_lm" in msg


def test_decoder_folder_padding_side(tmp_path, make_model, bpe_tokenizer):
    model = make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer))
    folder = _save(tmp_path / "llama", model, bpe_tokenizer)
    assert normxlogit.load_model(folder, padding_side="left").padding_side == "left"
    assert normxlogit.load_model(folder).padding_side == "right"
    with pytest.raises(ModelLoadError, match="left or right"):
        normxlogit.load_model(folder, padding_side="middle")


def test_prepare_forces_right_padding_and_eval_for_encoders(make_model, stub_tokenizer):
    model = make_model("bert", "masked_lm").train()
    sm = normxlogit.prepare(model, stub_tokenizer(), padding_side="left")
    assert sm.padding_side == "right"
    assert not sm.model.training  # dropout off, as the method requires
    assert sm.info.labels == {}  # only classifiers have labels
    assert sm.base is model.bert


class _CountingDecoder:
    """A tokenizer stand-in that decodes with a real tokenizer and counts the calls."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def decode(self, ids):
        self.calls += 1
        return self.tokenizer.decode(ids)


def test_token_labels_are_the_decoded_text_decoded_once_per_id(make_model, bpe_tokenizer):
    sm = normxlogit.prepare(make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer)), bpe_tokenizer)
    sm.tokenizer = _CountingDecoder(bpe_tokenizer)
    ids = list(range(len(bpe_tokenizer)))
    want = [bpe_tokenizer.decode([i]) for i in ids]
    assert " Paris" in want and "<s>" in want
    assert [label_of(sm, i) for i in ids] == want
    assert [label_of(sm, np.int64(i)) for i in reversed(ids)] == want[::-1]  # numpy ids hit the cache
    assert sm.tokenizer.calls == len(ids)
    assert label_of(sm, None) is None
    sm.tokenizer = bpe_tokenizer
    assert pickle.loads(pickle.dumps(sm)).token_label(ids[-1]) == want[-1]


@pytest.mark.parametrize(
    ("ids", "want"),
    [((5, 6, 7), 5), ((None, 6, 7), 6), ((None, None, 7), 7), ((None, None, None), 0)],
)
def test_pad_id_falls_back_to_eos_then_unk(make_model, stub_tokenizer, ids, want):
    tok = stub_tokenizer(pad_token_id=ids[0], eos_token_id=ids[1], unk_token_id=ids[2])
    assert normxlogit.prepare(make_model("llama", "causal_lm"), tok).pad_id == want


def test_max_length_from_config_and_tokenizer(make_model, stub_tokenizer):
    roberta = normxlogit.prepare(
        make_model("roberta", "classification"), stub_tokenizer(model_max_length=10**30)
    )
    assert roberta.max_length == 64 - 2  # RoBERTa's two reserved padding positions
    gpt2 = normxlogit.prepare(make_model("gpt2", "causal_lm"), stub_tokenizer(model_max_length=16))
    assert gpt2.max_length == 16
    big = normxlogit.prepare(
        make_model("llama", "causal_lm", max_position_embeddings=100_000),
        stub_tokenizer(model_max_length=10**30),
    )
    assert big.max_length == 8192


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="no CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_cache_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NORMXLOGIT_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("NORMXLOGIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "normxlogit" / "models"
