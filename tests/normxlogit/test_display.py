"""Scores as colours: the shared diverging palette and the Jupyter HTML of one result."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

import normxlogit
from normxlogit.display import LEVELS, PALETTE, color_levels, color_scale, hex_color, to_html

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
    assert parsed.attrs == {"style", "title", "dir"}
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text and "onerror=alert(2)>" in text and "&amp;" in text
    assert "😀" in text
    spans = re.findall(r'<span title="norm [^"]+" style="background:#[0-9a-f]{6};', html)
    assert len(spans) == int((~hostile_result.encoded.special).sum())
