"""The head adapters reproduce each model's own output (METHOD.md's invariant), family by family.

All in fp32 on tiny random models whose parameters are all off their initial values, so a
missing bias, a skipped pooler, a missing or doubled final norm, or the wrong output matrix
changes the numbers.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, BertForTokenClassification, T5ForSequenceClassification

from normxlogit.heads import (
    ADAPTERS,
    VOCAB_CHUNK,
    UnsupportedModelError,
    adapter_for,
    is_regression,
    list_supported,
    task_of,
)

ATOL = 1e-5

# The acceptance list of issue #2: every pair must stay registered.
REQUIRED = {
    "classification": [
        "bert",
        "roberta",
        "xlm-roberta",
        "camembert",
        "electra",
        "deberta-v2",
        "distilbert",
        "albert",
        "mpnet",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "phi3",
        "phi",
        "gpt2",
        "gpt_neox",
    ],
    "causal_lm": ["llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "phi", "gpt2", "gpt_neox"],
    "masked_lm": [
        "bert",
        "roberta",
        "xlm-roberta",
        "camembert",
        "mpnet",
        "electra",
        "albert",
        "distilbert",
        "deberta-v2",
    ],
}
FIRST_TOKEN = {
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
    "deberta-v2",
    "deberta",
    "distilbert",
    "albert",
    "mpnet",
}


def _forward(model, ids: torch.Tensor):
    with torch.no_grad():
        return model(ids, output_hidden_states=True)


def _batch(make_ids, task: str, n: int = 9, rows: int = 2, mask_at: int = 3) -> torch.Tensor:
    at = mask_at if task == "masked_lm" else None
    return torch.stack([torch.as_tensor(make_ids(n, seed, mask_at=at)) for seed in range(rows)])


def test_every_required_pair_is_registered():
    registered = {(t, a.task) for a in ADAPTERS for t in a.model_types}
    missing = {(t, task) for task, types in REQUIRED.items() for t in types} - registered
    assert not missing


def test_registry_keys_are_unique():
    keys = [(t, a.task) for a in ADAPTERS for t in a.model_types]
    assert len(keys) == len(set(keys)), "two adapters claim the same model_type/task"
    names = [a.name for a in ADAPTERS]
    assert len(names) == len(set(names))


def test_adapter_for_picks_the_family_and_task(registered, make_model):
    model = make_model(registered.model_type, registered.task)
    adapter = adapter_for(model)
    assert adapter.task == registered.task
    assert registered.model_type in adapter.model_types
    expected_pooling = {"causal_lm": "last", "masked_lm": "mask"}.get(
        registered.task, "first" if registered.model_type in FIRST_TOKEN else "last"
    )
    assert adapter.pooling == expected_pooling
    # The declared layer list is the model's real one: its length is the layer count (ALBERT
    # shares one group across layers).
    layers = model.base_model.get_submodule(adapter.layers)
    if registered.model_type != "albert":
        assert len(layers) == model.config.num_hidden_layers
    if adapter.final_norm:
        assert isinstance(model.base_model.get_submodule(adapter.final_norm), torch.nn.Module)


def test_pooled_head_reproduces_model_logits(registered, make_model, make_ids):
    """H(x_pooled^L) == the model's logits: first token, last token or the mask position."""
    model = make_model(registered.model_type, registered.task)
    adapter = adapter_for(model)
    ids = _batch(make_ids, registered.task)
    out = _forward(model, ids)
    last_hidden = out.hidden_states[-1]
    with torch.no_grad():
        if registered.task == "classification":
            pos = 0 if adapter.pooling == "first" else -1
            got, want = adapter.class_logits(model, last_hidden[:, pos]), out.logits
        elif registered.task == "causal_lm":
            got, want = adapter.class_logits(model, last_hidden[:, -1]), out.logits[:, -1]
        else:
            got, want = adapter.class_logits(model, last_hidden[:, 3]), out.logits[:, 3]
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_target_logits_match_class_logits_at_every_position(registered, make_model, make_ids):
    """The batched target path (only K rows of an LM's output matrix) equals the full head."""
    model = make_model(registered.model_type, registered.task)
    adapter = adapter_for(model)
    ids = _batch(make_ids, registered.task)
    hidden = _forward(model, ids).hidden_states[-1]
    width = model.config.num_labels if registered.task == "classification" else model.config.vocab_size
    targets = torch.tensor([[2, 0, 1], [1, 2, 2]]) if width == 3 else torch.tensor([[7, 0, 99], [42, 5, 5]])
    with torch.no_grad():
        got = adapter.target_logits(model, hidden, targets)
        full = adapter.class_logits(model, hidden.reshape(-1, hidden.shape[-1])).reshape(
            *hidden.shape[:2], -1
        )
    assert got.shape == (2, ids.shape[1], 3)
    want = torch.gather(full, 2, targets[:, None, :].expand(-1, ids.shape[1], -1))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model_type", REQUIRED["causal_lm"])
def test_causal_lm_target_logits_equal_model_logits_everywhere(model_type, make_model, make_ids):
    """For a causal LM, every position is a prediction: target_logits == logits gathered, all t."""
    model = make_model(model_type, "causal_lm")
    adapter = adapter_for(model)
    ids = _batch(make_ids, "causal_lm", n=11)
    out = _forward(model, ids)
    targets = torch.stack([out.logits[0, -1].topk(4).indices, torch.tensor([0, 17, 63, 99])])
    with torch.no_grad():
        got = adapter.target_logits(model, out.hidden_states[-1], targets)
    want = torch.gather(out.logits, 2, targets[:, None, :].expand(-1, ids.shape[1], -1))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_vocab_chunks_cover_every_vector_in_order(make_model):
    """The chunked full-vocabulary pass: VOCAB_CHUNK vectors at a time, float32, in order, equal
    to ``class_logits`` of each chunk."""
    model = make_model("llama", "causal_lm")
    adapter = adapter_for(model)
    hidden = torch.randn(2 * VOCAB_CHUNK + 7, model.config.hidden_size)
    with torch.no_grad():
        chunks = list(adapter.vocab_chunks(model, hidden))
        assert [(r.start, min(r.stop, len(hidden))) for r, _ in chunks] == [
            (0, VOCAB_CHUNK),
            (VOCAB_CHUNK, 2 * VOCAB_CHUNK),
            (2 * VOCAB_CHUNK, len(hidden)),
        ]
        for rows, logits in chunks:
            assert logits.dtype == torch.float32
            want = adapter.class_logits(model, hidden[rows]).float()
            torch.testing.assert_close(logits, want, atol=0, rtol=0)
    assert list(adapter.vocab_chunks(model, hidden[:0])) == []


@pytest.mark.parametrize("model_type", REQUIRED["masked_lm"])
def test_masked_lm_target_logits_equal_model_logits_everywhere(model_type, make_model, make_ids):
    model = make_model(model_type, "masked_lm")
    adapter = adapter_for(model)
    ids = _batch(make_ids, "masked_lm", n=10)
    out = _forward(model, ids)
    targets = torch.tensor([[int(out.logits[0, 3].argmax()), 11, 98], [0, 50, 50]])
    with torch.no_grad():
        got = adapter.target_logits(model, out.hidden_states[-1], targets)
    want = torch.gather(out.logits, 2, targets[:, None, :].expand(-1, ids.shape[1], -1))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "model_type", ["bert", "roberta", "deberta-v2", "distilbert", "llama", "gpt2", "phi"]
)
def test_regression_head_reproduces_model_output(model_type, make_model, make_ids):
    model = make_model(model_type, "classification", num_labels=1)
    adapter = adapter_for(model)
    assert is_regression(model, adapter)
    ids = _batch(make_ids, "classification")
    out = _forward(model, ids)
    pos = 0 if adapter.pooling == "first" else -1
    with torch.no_grad():
        got = adapter.class_logits(model, out.hidden_states[-1][:, pos])
    assert got.shape == (2, 1)
    torch.testing.assert_close(got, out.logits, atol=ATOL, rtol=0)


def test_is_regression_only_for_one_output_or_declared(make_model):
    bert3 = make_model("bert", "classification")
    assert not is_regression(bert3, adapter_for(bert3))
    declared = make_model("bert", "classification", num_labels=1, problem_type="regression")
    assert is_regression(declared, adapter_for(declared))
    lm = make_model("llama", "causal_lm")
    assert not is_regression(lm, adapter_for(lm))


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("BertForSequenceClassification", "classification"),
        ("LlamaForCausalLM", "causal_lm"),
        ("GPT2LMHeadModel", "causal_lm"),
        ("RobertaForMaskedLM", "masked_lm"),
        ("BertForTokenClassification", None),
        ("BertModel", None),
        ("T5ForConditionalGeneration", None),
    ],
)
def test_task_of_class_names(name, task):
    assert task_of(name) == task


def test_list_supported_is_sorted_and_complete():
    pairs = list_supported()
    assert pairs == sorted(pairs)
    assert len(pairs) == sum(len(a.model_types) for a in ADAPTERS)
    assert {"bert/classification", "llama/causal_lm", "roberta/masked_lm", "gpt_neox/classification"} <= set(
        pairs
    )


def test_unsupported_head_lists_supported_pairs():
    model = BertForTokenClassification(
        AutoConfig.for_model(
            "bert",
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=100,
        )
    )
    with pytest.raises(UnsupportedModelError) as err:
        adapter_for(model)
    msg = str(err.value)
    assert "BertForTokenClassification" in msg
    assert "bert/classification" in msg and "llama/causal_lm" in msg


def test_unsupported_model_type_lists_supported_pairs():
    config = AutoConfig.for_model(
        "t5", d_model=32, d_ff=64, num_layers=1, num_heads=4, d_kv=8, vocab_size=100
    )
    with pytest.raises(UnsupportedModelError, match=r"model_type='t5'.*bert/classification"):
        adapter_for(T5ForSequenceClassification(config))


def test_unsupported_variants_of_supported_families_are_refused():
    import transformers

    from normxlogit.heads import UnsupportedModelError, adapter_named

    deberta = transformers.DebertaV2Config(legacy=False)
    with pytest.raises(UnsupportedModelError, match="legacy=False"):
        adapter_named("DebertaV2ForMaskedLM", deberta)
    assert adapter_named("DebertaV2ForMaskedLM", transformers.DebertaV2Config()).task == "masked_lm"
    multi = transformers.BertConfig(num_labels=3, problem_type="regression")
    with pytest.raises(UnsupportedModelError, match="multi-output regression"):
        adapter_named("BertForSequenceClassification", multi)
