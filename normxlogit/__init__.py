"""NormXLogit token attributions (Abbasi et al., EMNLP 2025), batched, for every common HF head.

The method package: pure torch + transformers, no Beam. See ``score`` for the notebook API, and
``score_responses``, ``score_chats`` and ``generate_and_score`` for responses of causal LMs.

Public names are imported on first use (PEP 562), so that importing a submodule, e.g. the
command line under ``normxlogit.pipeline``, does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normxlogit.api import (
        encode_texts,
        generate_and_score,
        score,
        score_chats,
        score_encoded,
        score_responses,
    )
    from normxlogit.encoding import EncodedText, encode_batch, encode_text
    from normxlogit.errors import RecordError
    from normxlogit.heads import UnsupportedModelError, list_supported
    from normxlogit.loading import ModelLoadError, ScoringModel, load_model, prepare
    from normxlogit.response_result import ResponseAttribution
    from normxlogit.result import TextAttribution
    from normxlogit.schema import to_record_batch, token_schema
    from normxlogit.scoring import Attribution, score_batch

__version__ = "0.1.0"

# Each public name -> the module that defines it.
_MODULES = {
    "Attribution": "normxlogit.scoring",
    "EncodedText": "normxlogit.encoding",
    "ModelLoadError": "normxlogit.loading",
    "RecordError": "normxlogit.errors",
    "ResponseAttribution": "normxlogit.response_result",
    "ScoringModel": "normxlogit.loading",
    "TextAttribution": "normxlogit.result",
    "UnsupportedModelError": "normxlogit.heads",
    "encode_batch": "normxlogit.encoding",
    "encode_text": "normxlogit.encoding",
    "encode_texts": "normxlogit.api",
    "generate_and_score": "normxlogit.api",
    "list_supported": "normxlogit.heads",
    "load_model": "normxlogit.loading",
    "prepare": "normxlogit.loading",
    "score": "normxlogit.api",
    "score_batch": "normxlogit.scoring",
    "score_chats": "normxlogit.api",
    "score_encoded": "normxlogit.api",
    "score_responses": "normxlogit.api",
    "to_record_batch": "normxlogit.schema",
    "token_schema": "normxlogit.schema",
}

__all__ = [
    "Attribution",
    "EncodedText",
    "ModelLoadError",
    "RecordError",
    "ResponseAttribution",
    "ScoringModel",
    "TextAttribution",
    "UnsupportedModelError",
    "encode_batch",
    "encode_text",
    "encode_texts",
    "generate_and_score",
    "list_supported",
    "load_model",
    "prepare",
    "score",
    "score_batch",
    "score_chats",
    "score_encoded",
    "score_responses",
    "to_record_batch",
    "token_schema",
]


def __getattr__(name: str):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'normxlogit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
