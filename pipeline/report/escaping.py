"""Escaping for the report page: every piece of user text goes through one of these.

Corpus and model text (ids, file names, labels, tokens, messages) is shown with ``iso`` or ``lit``:
HTML-escaped, bidi-isolated (``unicode-bidi: isolate``, so right-to-left text cannot move the
labels and numbers beside it) and with every ``display.REVEALED`` character (bidi controls,
zero-width and other invisible format characters, controls) shown as a styled escape such as
``\\u202e`` instead of being drawn. ``esc`` is for attributes and for the page's own words.
"""

from __future__ import annotations

import html
import json
import re

from normxlogit.display import REVEALED, char_class, reveal_html

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_JSON_UNSAFE = re.compile(f"[<>&]|{char_class(REVEALED)}")


def esc(value: object) -> str:
    """HTML-escape any value for element content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def iso(value: object) -> str:
    """Corpus or model text as-is, isolated and with hidden characters revealed."""
    return f'<span class="iso">{reveal_html(str(value), one_line=True)}</span>'


def lit(value: str | None) -> str:
    """A label, token or word quoted (JSON), isolated and escaped: spaces, markup, hidden characters show."""
    return f'<code class="lit">{reveal_html(json.dumps(value, ensure_ascii=False))}</code>'


def _json_escape(match: re.Match) -> str:
    char = match.group()
    if char in _JSON_ESCAPES:
        return _JSON_ESCAPES[char]
    cp = ord(char)
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    cp -= 0x10000  # a JSON string writes a character beyond the BMP as its UTF-16 surrogate pair
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def embed_json(data: object) -> str:
    """JSON safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so no string can close the element or
    open a comment; every ``display.REVEALED`` character (bidi controls, zero-width characters,
    U+2028/U+2029, controls) is written as its ``\\uXXXX`` escape, so the page source shows it too.
    Those characters only occur inside string literals, where ``JSON.parse`` reads the same values
    back.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_UNSAFE.sub(_json_escape, text)
