"""NormXLogit token attributions (Abbasi et al., EMNLP 2025), batched, for every common HF head.

The method package: pure torch + transformers, no Beam. See ``score`` for the notebook API.
"""

from normxlogit.api import encode_texts, score, score_encoded
from normxlogit.encoding import EncodedText, RecordError, encode_batch, encode_text
from normxlogit.heads import UnsupportedModelError, list_supported
from normxlogit.loading import ModelLoadError, ScoringModel, load_model, prepare
from normxlogit.result import TextAttribution
from normxlogit.schema import to_record_batch, token_schema
from normxlogit.scoring import Attribution, score_batch

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "EncodedText",
    "ModelLoadError",
    "RecordError",
    "ScoringModel",
    "TextAttribution",
    "UnsupportedModelError",
    "encode_batch",
    "encode_text",
    "encode_texts",
    "list_supported",
    "load_model",
    "prepare",
    "score",
    "score_batch",
    "score_encoded",
    "to_record_batch",
    "token_schema",
]
