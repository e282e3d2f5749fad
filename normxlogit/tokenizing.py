"""The fast tokenizer as the encoder calls it: a private, cached copy per tokenizer and length, and
long texts cut to a bound of characters first.

Texts are cut to ``CHARS_PER_TOKEN * max_length`` characters before they are tokenized, so that
one huge record costs what a text of that length costs: the tokenizer would otherwise hold every
token of the whole text (its overflow windows) with their offsets, gigabytes for a 50 MB line.
The cut never changes a result: real text averages 1.5 to 5 characters per token (prose, code,
URLs, base64), and a cut text is used only when its first max_length tokens end in the first
half of the cut (at most CHARS_PER_TOKEN / 2 characters per token) and more tokens follow. Then
those tokens are the whole text's (the cut only changes tokens near it) and the text is longer
than max_length tokens, so it is truncated either way. Otherwise the whole text is tokenized.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Sequence

from tokenizers import Encoding
from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 64


def max_chars(max_length: int) -> int:
    """The characters of a text that are tokenized when at most ``max_length`` tokens are kept."""
    return CHARS_PER_TOKEN * max_length


def tokenize(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[list[str], list[Encoding]]:
    """Each text's first window of at most ``max_length`` tokens, long texts cut first.

    Returns:
        The texts as tokenized (each cut at ``max_chars(max_length)`` or whole; the encodings'
        offsets index into them), and their encodings, in order; a truncated encoding carries
        the windows that did not fit as ``overflowing``.
    """
    limit = max_chars(max_length)
    used = [text[:limit] for text in texts]
    encodings = first_windows(used, tokenizer, max_length)
    for i, text in enumerate(texts):
        if len(text) > limit and not _cut_is_safe(encodings[i], limit):
            # Over half the cut spans fewer than max_length tokens (long runs of whitespace or
            # of characters one token covers): tokenize the whole text, as if it were not cut.
            used[i], encodings[i] = text, first_windows([text], tokenizer, max_length)[0]
    return used, encodings


def _cut_is_safe(encoding: Encoding, limit: int) -> bool:
    """Whether a text cut at ``limit`` characters reads as the whole text: more tokens follow the
    first window (``encoding``), and the window ends in the first half of the cut."""
    return (
        len(encoding.overflowing) > 0 and max((end for _, end in encoding.offsets), default=0) <= limit // 2
    )


_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def _backend(tokenizer: PreTrainedTokenizerBase, max_length: int):
    """The tokenizer's Rust ``tokenizers.Tokenizer``, set to truncate at ``max_length`` as
    ``tokenizer(texts, truncation=True, max_length=...)`` does.

    A copy per tokenizer and length, set up once: the tokenizer's own backend is reconfigured by
    every ``tokenizer(...)`` call, which would race with a thread that tokenizes meanwhile.
    """
    with _BACKENDS_LOCK:
        per_length = _BACKENDS.setdefault(tokenizer, {})
        backend = per_length.get(max_length)
        if backend is None:
            backend = copy.deepcopy(tokenizer.backend_tokenizer)
            backend.no_padding()
            backend.enable_truncation(
                max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side
            )
            backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
            per_length[max_length] = backend
    return backend


def first_windows(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[Encoding]:
    """Each text's first window of at most ``max_length`` tokens (a ``tokenizers.Encoding``), in
    one call of the Rust tokenizer."""
    return _backend(tokenizer, max_length).encode_batch(texts, add_special_tokens=True)
