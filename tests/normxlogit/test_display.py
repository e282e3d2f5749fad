"""Scores as colours: the shared diverging palette and the Jupyter HTML of one result."""

from __future__ import annotations

import re
import sys
import unicodedata
from html.parser import HTMLParser

import numpy as np
import pytest

import normxlogit
from normxlogit.display import (
    LEVELS,
    PALETTE,
    color_levels,
    color_scale,
    hex_color,
    reveal,
    reveal_html,
    span_text,
    to_html,
    visible_token,
)
from normxlogit.loading import prepare

HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> &amp; \u202eevil 😀"


def test_levels_are_symmetric_around_zero():
    scale = color_scale(np.array([-2.0, 1.0, 0.5]))
    assert scale == 2.0
    np.testing.assert_array_equal(
        color_levels(np.array([-2.0, 0.0, 1.0, 2.0, 9.0]), scale), [0, 10, 15, 20, 20]
    )
    assert PALETTE[LEVELS] == (247, 247, 247)  # zero is neutral
    assert hex_color(PALETTE[0]) == "#2166ac" and hex_color(PALETTE[-1]) == "#b2182b"
    assert color_scale(np.zeros(3)) == 1.0  # all-zero scores do not divide by zero


@pytest.fixture(scope="module")
def hostile_result(tiny_classifier):
    model = normxlogit.load_model(str(tiny_classifier))
    return normxlogit.score(model, [HOSTILE])[0]


class TagCollector(HTMLParser):
    """Every tag and attribute name in a piece of HTML, and its text."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_html_escapes_text_and_colours_every_token(hostile_result):
    html = to_html(hostile_result)
    assert html == hostile_result._repr_html_()
    parsed = TagCollector()
    parsed.feed(html)
    assert parsed.tags == {"div", "span", "b"}  # the text's <script> and <img> are not elements
    assert parsed.attrs == {"style", "title", "dir", "class"}  # class: the revealed U+202E
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text and "onerror=alert(2)>" in text and "&amp;" in text
    assert "😀" in text
    assert "\u202e" not in html and '<span class="esc" title="U+202E">\\u202e</span>' in html
    spans = re.findall(r'<span title="norm [^"]+" style="background:#[0-9a-f]{6};', html)
    assert len(spans) == int((~hostile_result.encoded.special).sum())


# Cf characters that draw a visible sign (prepended concatenation marks) or only lay out Egyptian
# hieroglyphs; every other Cf, Zl and Zp character hides or moves the text around it.
VISIBLE_FORMAT = {*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
VISIBLE_FORMAT |= set(range(0x13430, 0x13440))
BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}


def test_every_invisible_or_bidi_character_is_revealed():
    missed = [
        f"U+{cp:04X}"
        for cp in range(sys.maxunicode + 1)
        if cp not in VISIBLE_FORMAT
        and (
            unicodedata.category(chr(cp)) in ("Cf", "Zl", "Zp", "Cc")
            or unicodedata.bidirectional(chr(cp)) in BIDI_CONTROLS
        )
        and chr(cp) not in "\t\n"
        and reveal(chr(cp)) == chr(cp)
    ]
    assert missed == []
    assert (
        reveal("zwj-\u200d-id \u202eevil\u202c \U000e0041") == "zwj-\\u200d-id \\u202eevil\\u202c \\U000e0041"
    )
    assert reveal("a\x1b[2J\x85") == "a\\x1b[2J\\x85"
    assert reveal_html("<b>\u2066") == '&lt;b&gt;<span class="esc" title="U+2066">\\u2066</span>'


def test_visible_text_is_left_alone():
    text = "שלום עולם مرحبا 😀👍🏽 ❤\ufe0f e\u0301 café\tnext\nline"
    assert reveal(text) == text  # letters, marks, emoji and their variation selectors draw something
    assert reveal("a\tb\nc", one_line=True) == "a\\x09b\\x0ac"  # ids and labels are one line


BPE_TEXTS = ["שלום עולם", "great 😀 film", "zwj-\u200d-id \u202eevil\u202c ok", "The cat sat on the mat."]


@pytest.mark.parametrize("text", BPE_TEXTS)
def test_span_text_shows_a_character_split_across_tokens_once(bpe_tokenizer, text):
    enc = bpe_tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    spans = [s for s, special in zip(enc["offset_mapping"], enc["special_tokens_mask"]) if not special]
    starts, ends = np.array(spans).T
    tokens = [text[a:b] for a, b in spans]  # token strings are the text under their spans
    if text != BPE_TEXTS[-1]:
        assert len(set(spans)) < len(spans)  # byte-level BPE: tokens that share a character's span
        assert "".join(tokens) != text  # so concatenating tokens repeats characters
    for known in (text, None):
        gaps, shown = span_text(tokens, starts, ends, known)
        assert "".join(g + s for g, s in zip(gaps, shown)) == text
    gaps, shown = span_text(["Paris", "is"], np.array([0, 9]), np.array([5, 11]))
    assert gaps == ["", "   "]  # without the text a gap is at most 3 spaces
    gaps, shown = span_text(["ab", "bc", "c"], np.array([0, 1, 2]), np.array([2, 3, 3]), "abc")
    assert shown == ["ab", "c", ""]  # a partial overlap shows only the new characters


@pytest.fixture(scope="module")
def bpe_result(make_model, bpe_tokenizer):
    model = make_model("llama", "classification", vocab_size=len(bpe_tokenizer), pad_token_id=0)
    return normxlogit.score(prepare(model, bpe_tokenizer), ["שלום 😀 \u202eok"])[0]


def test_html_of_a_byte_level_bpe_text_shows_each_character_once(bpe_result):
    parsed = TagCollector()
    parsed.feed(to_html(bpe_result))
    body = "".join(parsed.text).split("prediction", 1)[1]
    assert "שלום 😀 \\u202eok" in body and "שש" not in body and "😀😀" not in body
    # One coloured span per token that shows characters; the others' numbers join its hover text.
    titles = re.findall(r'<span title="(norm [^"]+)"', to_html(bpe_result))
    assert sum(t.count("norm ") for t in titles) == int((~bpe_result.encoded.special).sum())
    assert len(titles) < int((~bpe_result.encoded.special).sum())


@pytest.mark.slow
def test_smollm2_tokenizer_splits_characters_that_span_text_shows_once():
    from transformers import AutoTokenizer

    from normxlogit.default_model import default_model_dir

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    text = "שלום עולם 😀 zwj-\u200d-id"
    spans = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    tokens = [text[a:b] for a, b in spans]
    assert "".join(tokens) != text  # the "ששללוום": concatenated tokens repeat characters
    starts, ends = np.array(spans).T
    gaps, shown = span_text(tokens, starts, ends, text)
    assert "".join(g + s for g, s in zip(gaps, shown)) == text


def test_visible_token_shows_edge_spaces_newlines_and_hidden_characters():
    assert visible_token(" Juliet") == "\u2423Juliet"
    assert visible_token(" ") == "\u2423" and visible_token("  ") == "\u2423\u2423"  # not an empty cell
    assert visible_token("a b ") == "a b\u2423"  # inner spaces stay
    assert visible_token("\n") == "\\n" and visible_token("\t") == "\\t" and visible_token("\r\n") == "\\r\\n"
    assert visible_token(" \u202eevil\x1b") == "\u2423\\u202eevil\\x1b"
    assert visible_token("") == "''"
