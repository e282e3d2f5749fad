"""Targets and foils: class names, class ids and token strings resolved per record, once per value."""

from __future__ import annotations

import numpy as np
import pytest

from normxlogit import targets
from normxlogit.encoding import encode_batch, encode_text
from normxlogit.errors import RecordError
from normxlogit.heads import adapter_for
from normxlogit.targets import resolve_target


@pytest.mark.parametrize(
    ("value", "want"),
    [("positive", 2), ("negative", 0), (1, 1), (np.int64(2), 2), ("0", 0), (None, None)],
)
def test_resolve_class_target(bert_classifier, bert_tokenizer, value, want):
    assert resolve_target(value, bert_classifier, bert_tokenizer, adapter_for(bert_classifier)) == want


@pytest.mark.parametrize("value", ["happy", 3, -1, "-1", "1.5", "Positive"])
def test_resolve_unknown_class(bert_classifier, bert_tokenizer, value):
    with pytest.raises(RecordError) as err:
        resolve_target(value, bert_classifier, bert_tokenizer, adapter_for(bert_classifier))
    assert err.value.reason == "unknown_target"
    assert "positive" in str(err.value) and "0..2" in str(err.value)


def test_resolve_lm_targets(llama_lm, bpe_tokenizer):
    adapter = adapter_for(llama_lm)
    paris = bpe_tokenizer.convert_tokens_to_ids("ĠParis")
    assert resolve_target(" Paris", llama_lm, bpe_tokenizer, adapter) == paris
    assert resolve_target(paris, llama_lm, bpe_tokenizer, adapter) == paris
    with pytest.raises(RecordError) as err:
        resolve_target(" xylophone", llama_lm, bpe_tokenizer, adapter)
    assert err.value.reason == "multi_token_target"
    assert "Paris" in str(err.value)  # the hint about the leading space
    for bad in (len(bpe_tokenizer) + 5, -2):
        with pytest.raises(RecordError) as err:
            resolve_target(bad, llama_lm, bpe_tokenizer, adapter)
        assert err.value.reason == "unknown_target"


def test_encode_text_resolves_target_and_foil(bert_tokenizer, bert_classifier):
    adapter = adapter_for(bert_classifier)
    enc = encode_text(
        "Fine.", bert_tokenizer, bert_classifier, adapter, max_length=64, target="positive", foil=0
    )
    assert (enc.target_id, enc.foil_id) == (2, 0)
    with pytest.raises(RecordError) as err:
        encode_text("Fine.", bert_tokenizer, bert_classifier, adapter, max_length=64, foil="great")
    assert err.value.reason == "unknown_target"


def test_batch_resolves_each_distinct_target_once(bpe_tokenizer, llama_lm, monkeypatch):
    calls = []
    real = targets.resolve_target

    def counting(value, *args):
        calls.append(value)
        return real(value, *args)

    monkeypatch.setattr(targets, "resolve_target", counting)
    texts = ["The cat sat", "Paris", "the dog", "France", "is", "a"]
    per_text = [" Paris", " Paris", "5", 5, 5.0, " xylophone"]
    got = encode_batch(
        texts, bpe_tokenizer, llama_lm, adapter_for(llama_lm), max_length=16, targets=per_text, foil=" the"
    )
    assert sorted(calls, key=repr) == sorted([" Paris", "5", 5, 5.0, " xylophone", " the"], key=repr)
    # Token id 5, token string "5" and 5.0 (equal to 5 as a dict key; "5.0" is three tokens) differ.
    assert got[3].target_id == 5 and got[2].target_id == bpe_tokenizer.convert_tokens_to_ids("5")
    assert got[4].reason == got[5].reason == "multi_token_target"
    assert got[0].target_id == got[1].target_id == bpe_tokenizer.convert_tokens_to_ids("ĠParis")
    again = encode_batch(
        ["a", "b"], bpe_tokenizer, llama_lm, adapter_for(llama_lm), max_length=16, targets=[" zzz", " zzz"]
    )
    assert again[0] is not again[1], "each record gets its own error"
    first, second = again
    assert isinstance(first, RecordError) and (first.reason, str(first)) == (second.reason, str(second))
    assert first.reason == "multi_token_target"
