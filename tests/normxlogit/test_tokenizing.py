"""The fast tokenizer as the encoder calls it: long texts cut before tokenizing, read as whole,
and the user's tokenizer left as it was."""

from __future__ import annotations

import pytest

from normxlogit import tokenizing
from normxlogit.encoding import encode_batch
from normxlogit.heads import adapter_for


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
        m.setattr(tokenizing, "CHARS_PER_TOKEN", 10**9)
        return encode_batch(*args, **kw)


# WordPiece drops whitespace and makes one [UNK] of a word over 100 characters, so texts 4 and 5
# have fewer than max_length tokens in half the cut; byte-level BPE gives spaces and x's tokens.
@pytest.mark.parametrize(("which", "whole"), [("bert", [4, 5]), ("bpe", [])])
def test_long_texts_are_cut_before_tokenizing_and_read_as_whole(which, whole, request, monkeypatch):
    tokenizer = request.getfixturevalue(f"{which}_tokenizer")
    model = request.getfixturevalue("bert_classifier" if which == "bert" else "llama_lm")
    max_length = 16
    limit = tokenizing.max_chars(max_length)
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
    real = tokenizing.first_windows

    def spy(batch, *a, **k):
        seen.append([len(t) for t in batch])
        return real(batch, *a, **k)

    monkeypatch.setattr(tokenizing, "first_windows", spy)
    got = encode_batch(texts, tokenizer, model, adapter_for(model), max_length=max_length)
    assert [_same_encoding(g, w) for g, w in zip(got, want)] == [True] * len(texts)
    assert [g.truncated for g in got[:4]] == [False, True, True, True]
    # One call with every text cut to the limit, then one with the whole text for each text whose
    # first max_length tokens span over half the cut.
    assert seen == [[min(len(t), limit) for t in texts], *([len(texts[i])] for i in whole)]


def test_a_huge_text_is_tokenized_only_up_to_the_cut(bert_tokenizer, bert_classifier, monkeypatch):
    text = "the quick brown fox jumps over the lazy dog. " * 200_000  # 9 MB, about 2 million tokens
    lengths = []
    real = tokenizing.first_windows

    def spy(batch, *a, **k):
        lengths.extend(len(t) for t in batch)
        return real(batch, *a, **k)

    monkeypatch.setattr(tokenizing, "first_windows", spy)
    (enc,) = encode_batch(
        [text], bert_tokenizer, bert_classifier, adapter_for(bert_classifier), max_length=64
    )
    assert lengths == [tokenizing.max_chars(64)]
    assert enc.truncated and len(enc) == 64 and enc.tokens[1:4] == ["the", "quick", "brown"]


def test_the_tokenizer_is_not_reconfigured_by_encoding(bert_tokenizer, bert_classifier):
    before = bert_tokenizer.backend_tokenizer.truncation
    encode_batch(["a text"], bert_tokenizer, bert_classifier, adapter_for(bert_classifier), max_length=5)
    assert bert_tokenizer.backend_tokenizer.truncation == before
