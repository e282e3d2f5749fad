"""Encoding: words from offsets, specials, truncation, pooled positions, target resolution."""

from __future__ import annotations

import numpy as np
import pytest

from normxlogit.encoding import RecordError, encode_text, pooled_position, resolve_target, word_indices
from normxlogit.heads import adapter_for

LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.fixture(scope="module")
def bert_classifier(make_model):
    return make_model("bert", "classification", id2label=LABELS, label2id={v: k for k, v in LABELS.items()})


@pytest.fixture(scope="module")
def llama_lm(make_model, bpe_tokenizer):
    return make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer))


def _encode(text, tokenizer, model, max_length=64, **kw):
    return encode_text(text, tokenizer, model, adapter_for(model), max_length=max_length, **kw)


def _words(enc):
    return list(zip(enc.tokens, enc.word_index.tolist()))


def test_wordpieces_of_one_word_share_an_index(bert_tokenizer, bert_classifier):
    text = "Unbelievably, Paris wasn't crowded in 2024!"
    enc = _encode(text, bert_tokenizer, bert_classifier)
    assert _words(enc) == [
        ("[CLS]", -1),
        ("Un", 0),
        ("bel", 0),
        ("ie", 0),
        ("va", 0),
        ("bly", 0),
        (",", 1),
        ("Paris", 2),
        ("wasn", 3),
        ("'", 4),
        ("t", 5),
        ("crowded", 6),
        ("in", 7),
        ("202", 8),
        ("4", 8),
        ("!", 9),
        ("[SEP]", -1),
    ]
    assert enc.special.tolist() == [True] + [False] * 15 + [True]
    assert enc.offsets[0].tolist() == [0, 0] and enc.offsets[-1].tolist() == [0, 0]
    # Token strings are the original text under each span (case kept, "##" never shown).
    for tok, (s, e), sp in zip(enc.tokens, enc.offsets.tolist(), enc.special):
        assert sp or tok == text[s:e]
    assert enc.input_ids.tolist() == bert_tokenizer(text).input_ids
    assert enc.pooled_position == 0 and not enc.truncated and len(enc) == 17


def test_leading_space_tokens_map_to_their_word(bpe_tokenizer, llama_lm):
    text = "The capital of France is Paris"
    enc = _encode(text, bpe_tokenizer, llama_lm)
    assert _words(enc) == [
        ("<s>", -1),
        ("The", 0),
        (" capital", 1),
        (" of", 2),
        (" France", 3),
        (" is", 4),
        (" Paris", 5),
    ]
    assert enc.offsets[-1].tolist() == [24, 30]  # the span starts at the space
    assert enc.pooled_position == len(enc) - 1


def test_whitespace_only_tokens_have_no_word(bpe_tokenizer, llama_lm):
    text = "  zebra,\u00a0Paris"  # two leading spaces, a no-break space split into two byte tokens
    enc = _encode(text, bpe_tokenizer, llama_lm)
    words = enc.word_index[~enc.special]
    tokens = [t for t, sp in zip(enc.tokens, enc.special) if not sp]
    for tok, w in zip(tokens, words):
        if tok.strip() == "":
            assert w == -1, tok
    joined = {}
    for tok, w in zip(tokens, words):
        if w >= 0:
            joined[w] = joined.get(w, "") + tok
    assert {w: s.strip() for w, s in joined.items()} == {0: "zebra", 1: ",", 2: "Paris"}


def test_word_indices_from_offsets_alone():
    text = "日本\u3000語 😀ok  x"
    offsets = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [2, 4], [4, 6], [6, 8], [8, 9], [8, 11], [0, 0]])
    special = np.array([True] + [False] * 8 + [True])
    got = word_indices(text, offsets, special)
    # 日本 | 語 | 😀 | ok | x ; an ideographic space alone has no word; " 😀" starts at the emoji
    assert got.tolist() == [-1, 0, 0, -1, 1, 2, 3, -1, 4, -1]
    assert got.dtype == np.int32


def test_special_tokens_have_no_word_even_with_a_span():
    # A special token can carry a real span (e.g. one written in the text); it is still no word.
    text = "hello <mask> world"
    offsets = np.array([[0, 5], [6, 12], [13, 18]])
    got = word_indices(text, offsets, np.array([False, True, False]))
    assert got.tolist() == [0, -1, 4]


def test_word_indices_empty_text_and_no_tokens():
    assert word_indices("", np.zeros((1, 2), np.int32), np.array([True])).tolist() == [-1]
    assert word_indices("abc", np.zeros((0, 2), np.int32), np.zeros(0, bool)).tolist() == []


def test_truncation_keeps_max_length_tokens_with_specials(bert_tokenizer, bert_classifier):
    text = "one two three four five six seven eight nine ten"
    enc = _encode(text, bert_tokenizer, bert_classifier, max_length=8)
    assert enc.truncated
    assert enc.tokens == ["[CLS]", "one", "two", "three", "four", "five", "six", "[SEP]"]
    assert len(enc) == 8 == len(enc.offsets) == len(enc.special) == len(enc.word_index) == len(enc.tokens)
    assert enc.word_index.tolist() == [-1, 0, 1, 2, 3, 4, 5, -1]
    exact = _encode("one two three four five six", bert_tokenizer, bert_classifier, max_length=8)
    assert len(exact) == 8 and not exact.truncated  # fits exactly: not truncated
    short = _encode("one two", bert_tokenizer, bert_classifier, max_length=8)
    assert len(short) == 4 and not short.truncated


def test_decoder_truncation_keeps_the_start(bpe_tokenizer, llama_lm):
    enc = _encode("The cat sat on the mat; the dog did not.", bpe_tokenizer, llama_lm, max_length=5)
    assert enc.truncated and len(enc) == 5
    assert enc.tokens[:3] == ["<s>", "The", " cat"]
    assert enc.pooled_position == 4


def test_empty_text_without_specials_is_a_record_error(bpe_pair, llama_lm):
    _, no_bos = bpe_pair
    with pytest.raises(RecordError) as err:
        _encode("", no_bos, llama_lm)
    assert err.value.reason == "no_tokens"


def test_pooled_position_per_pooling(make_model, bert_tokenizer):
    ids = np.array([101, 7, bert_tokenizer.mask_token_id, 9, bert_tokenizer.mask_token_id, 102])
    cls = adapter_for(make_model("bert", "classification"))
    dec = adapter_for(make_model("gpt2", "classification"))
    mlm = adapter_for(make_model("bert", "masked_lm"))
    assert pooled_position(ids, cls, bert_tokenizer) == 0
    assert pooled_position(ids, dec, bert_tokenizer) == 5
    assert pooled_position(ids, mlm, bert_tokenizer) == 2  # the first mask
    with pytest.raises(RecordError) as err:
        pooled_position(np.array([101, 7, 102]), mlm, bert_tokenizer)
    assert err.value.reason == "no_mask_token"


def test_masked_lm_text_without_mask(make_model, bert_tokenizer):
    model = make_model("roberta", "masked_lm", vocab_size=bert_tokenizer.vocab_size)
    with pytest.raises(RecordError) as err:
        _encode("no mask here", bert_tokenizer, model)
    assert err.value.reason == "no_mask_token"
    enc = _encode("a [MASK] here", bert_tokenizer, model)
    assert enc.tokens[enc.pooled_position] == "[MASK]"


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
    enc = _encode("Fine.", bert_tokenizer, bert_classifier, target="positive", foil=0)
    assert (enc.target_id, enc.foil_id) == (2, 0)
    with pytest.raises(RecordError) as err:
        _encode("Fine.", bert_tokenizer, bert_classifier, foil="great")
    assert err.value.reason == "unknown_target"
