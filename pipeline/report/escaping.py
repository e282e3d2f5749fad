"""Escaping for the report page: every piece of user text goes through one of these."""

from __future__ import annotations

import html
import json

_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)

# Bidi controls in a label would reorder what a reader sees; labels show them as escapes.
_BIDI_ESCAPES = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"}
)


def esc(value: object) -> str:
    """HTML-escape any value for element content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def lit(value: str | None) -> str:
    """A label, token or word shown quoted and escaped, so leading spaces, markup and bidi controls show."""
    return f'<code class="lit">{esc(json.dumps(value, ensure_ascii=False).translate(_BIDI_ESCAPES))}</code>'


def embed_json(data: object) -> str:
    """JSON safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so no string can close the element or
    open a comment; U+2028/U+2029 are escaped for older JavaScript parsers. ``JSON.parse`` reads
    the same values back.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_JSON_ESCAPES)
