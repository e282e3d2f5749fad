"""Flat token arrays: a batch's texts one after another, each text a view into them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from normxlogit.encoding import encode_batch
from normxlogit.flat_tokens import FlatTokens, SpecialNames, TokenView, block_gather
from normxlogit.heads import adapter_for


def test_block_gather_reorders_blocks_of_rows():
    sizes = np.array([2, 0, 3, 1])
    rows = np.arange(int(sizes.sum()))  # blocks: [0 1] [] [2 3 4] [5]
    assert rows[block_gather(sizes, np.array([2, 0, 3, 1]))].tolist() == [2, 3, 4, 0, 1, 5]
    assert block_gather(sizes, np.array([1])).tolist() == []


def test_a_token_view_is_a_lazy_slice_that_compares_as_a_list():
    view = TokenView(pa.array(["a", "b", "c", "d"]), 1, 3)
    assert len(view) == 2 and view[0] == "b" and list(view) == ["b", "c"]
    assert view == ["b", "c"] and view == ("b", "c") and view != "bc"
    assert view + ["x"] == ["b", "c", "x"] and repr(view) == "['b', 'c']"


def test_each_text_is_a_view_into_the_batch(bert_tokenizer, bert_classifier):
    texts = ["one two", "three", "four five six"]
    got = encode_batch(texts, bert_tokenizer, bert_classifier, adapter_for(bert_classifier), max_length=8)
    flat = got[0].flat[0]
    assert isinstance(flat, FlatTokens) and flat.texts == texts
    assert [e.flat for e in got] == [(flat, 0), (flat, 1), (flat, 2)]
    assert flat.lengths.tolist() == [len(e) for e in got]
    assert flat.starts.tolist() == [0, len(got[0]), len(got[0]) + len(got[1])]
    assert all(np.shares_memory(e.input_ids, flat.input_ids) for e in got)
    assert flat.tokens.to_pylist() == [t for e in got for t in e.tokens]


def test_special_names_are_looked_up_once_per_id(bert_tokenizer):
    names = SpecialNames(bert_tokenizer)
    cls = bert_tokenizer.cls_token_id
    assert names[cls] == "[CLS]" and dict(names) == {cls: "[CLS]"}
