"""Head adapters: what the model's own head would output for every token at once.

NormXLogit needs ``H(x_i^L)[y]``: the logit the head gives target ``y`` when token ``i``'s final
representation stands where the head reads. Each Hugging Face family reads from a different
place and wraps its head in different modules, so each family is one declarative entry below:
the model types it covers, where its layers live (to capture layer 0 with a hook), how it pools
(first token, last token, mask position) and a function that applies the model's own head
modules to a stack of token vectors. Nothing here re-implements a head; every entry calls the
modules the model was trained with, in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

Task = Literal["classification", "causal_lm", "masked_lm"]
Pooling = Literal["first", "last", "mask"]

# A head function maps token vectors x: (N, D) to the head's output for each of them.
# Classification heads return all class logits (N, C); LM heads return the transformed vectors
# (N, D') that the output embedding matrix is applied to, so only target rows need be used.
HeadFn = Callable[[PreTrainedModel, torch.Tensor], torch.Tensor]

# Full-vocabulary logits are computed this many token vectors at a time (``vocab_chunks``), so a
# batch of long answers never holds (positions x vocabulary) logits at once.
VOCAB_CHUNK = 512


class UnsupportedModelError(ValueError):
    """The model's architecture has no registered head adapter."""


@dataclass(frozen=True)
class HeadAdapter:
    """One family's head, declared.

    Attributes:
        name: registry id, ``"<family>-<task>"``.
        task: classification (incl. regression), causal_lm or masked_lm.
        model_types: ``config.model_type`` values the entry covers.
        layers: dotted path, from the base model, to the list of transformer layers; the input
            of the first one is ``hidden_states[0]``.
        pooling: where the model itself reads: first token, last real token, mask position.
        head: applies the model's own head modules to token vectors (see ``HeadFn``).
        final_norm: dotted path, from the base model, of a pre-norm decoder's final norm, applied
            to intermediate layers for the layer-wise variant (ours: as the logit lens does).
        position_ids: pass positions derived from the attention mask, so that left padding does
            not shift absolute or rotary positions (decoders).
    """

    name: str
    task: Task
    model_types: tuple[str, ...]
    layers: str
    pooling: Pooling
    head: HeadFn
    final_norm: str | None = None
    position_ids: bool = False

    def class_logits(self, model: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
        """Full head output for vectors ``x: (N, D)``: class logits or vocabulary logits (N, V).

        For an LM head this is called on the pooled vector of each text; many vectors go through
        ``vocab_chunks``.
        """
        h = self.head(model, x)
        if self.task == "classification":
            return h
        return model.get_output_embeddings()(h)

    def vocab_chunks(
        self, model: PreTrainedModel, hidden: torch.Tensor
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """``class_logits`` of ``hidden: (M, D)`` as float32, ``VOCAB_CHUNK`` vectors at a time.

        Yields:
            (rows, logits): the rows of ``hidden`` a chunk covers and their (m, V) logits.
        """
        for lo in range(0, hidden.shape[0], VOCAB_CHUNK):
            rows = slice(lo, lo + VOCAB_CHUNK)
            yield rows, self.class_logits(model, hidden[rows]).float()

    def target_logits(
        self, model: PreTrainedModel, hidden: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Logit of each text's targets at every token.

        Args:
            hidden: (B, T, D) token representations.
            targets: (B, K) target ids (class ids or token ids) per text.

        Returns:
            (B, T, K): ``H(hidden[b, t])[targets[b, k]]``. For LM heads only the K target rows of
            the output matrix are touched, never the whole vocabulary.
        """
        b, t, d = hidden.shape
        h = self.head(model, hidden.reshape(b * t, d)).reshape(b, t, -1)
        if self.task == "classification":
            return torch.gather(h, 2, targets[:, None, :].expand(b, t, targets.shape[1]))
        out = model.get_output_embeddings()
        rows = out.weight[targets]  # (B, K, D')
        logits = torch.einsum("btd,bkd->btk", h, rows)
        if out.bias is not None:
            logits = logits + out.bias[targets][:, None, :]
        return logits


def _first_slot(x: torch.Tensor) -> torch.Tensor:
    # Heads written as `features[:, 0]` read (N, 1, D) as N one-token sequences.
    return x[:, None, :]


# --- head functions, one per family; each calls the model's own modules -------------------


def _bert_cls(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.classifier(m.dropout(m.bert.pooler(_first_slot(x))))


def _albert_cls(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    pooled = m.albert.pooler_activation(m.albert.pooler(x))
    return m.classifier(m.dropout(pooled))


def _roberta_like_cls(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    # RoBERTa, XLM-R, CamemBERT, ELECTRA and MPNet classification heads take features[:, 0].
    return m.classifier(_first_slot(x))


def _deberta_cls(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.classifier(m.dropout(m.pooler(_first_slot(x))))


def _distilbert_cls(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.classifier(m.dropout(nn.functional.relu(m.pre_classifier(x))))


def _decoder_score(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.score(x)


def _identity(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return x


def _bert_mlm(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.cls.predictions.transform(x)


def _roberta_like_mlm(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    head = m.lm_head
    return head.layer_norm(nn.functional.gelu(head.dense(x)))


def _albert_mlm(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    p = m.predictions
    return p.LayerNorm(p.activation(p.dense(x)))


def _electra_mlm(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.generator_predictions(x)


def _distilbert_mlm(m: PreTrainedModel, x: torch.Tensor) -> torch.Tensor:
    return m.vocab_layer_norm(m.activation(m.vocab_transform(x)))


# --- the registry --------------------------------------------------------------------------

_ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")
_LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3")

ADAPTERS: tuple[HeadAdapter, ...] = (
    HeadAdapter("bert-classification", "classification", ("bert",), "encoder.layer", "first", _bert_cls),
    HeadAdapter(
        "roberta-classification",
        "classification",
        _ROBERTA_TYPES,
        "encoder.layer",
        "first",
        _roberta_like_cls,
    ),
    HeadAdapter(
        "electra-classification", "classification", ("electra",), "encoder.layer", "first", _roberta_like_cls
    ),
    HeadAdapter(
        "mpnet-classification", "classification", ("mpnet",), "encoder.layer", "first", _roberta_like_cls
    ),
    HeadAdapter(
        "deberta-classification",
        "classification",
        ("deberta-v2", "deberta"),
        "encoder.layer",
        "first",
        _deberta_cls,
    ),
    HeadAdapter(
        "distilbert-classification",
        "classification",
        ("distilbert",),
        "transformer.layer",
        "first",
        _distilbert_cls,
    ),
    HeadAdapter(
        "albert-classification",
        "classification",
        ("albert",),
        "encoder.albert_layer_groups",
        "first",
        _albert_cls,
    ),
    HeadAdapter(
        "llama-like-classification",
        "classification",
        _LLAMA_LIKE,
        "layers",
        "last",
        _decoder_score,
        final_norm="norm",
        position_ids=True,
    ),
    HeadAdapter(
        "phi-classification",
        "classification",
        ("phi",),
        "layers",
        "last",
        _decoder_score,
        final_norm="final_layernorm",
        position_ids=True,
    ),
    HeadAdapter(
        "gpt2-classification",
        "classification",
        ("gpt2",),
        "h",
        "last",
        _decoder_score,
        final_norm="ln_f",
        position_ids=True,
    ),
    HeadAdapter(
        "gpt-neox-classification",
        "classification",
        ("gpt_neox",),
        "layers",
        "last",
        _decoder_score,
        final_norm="final_layer_norm",
        position_ids=True,
    ),
    HeadAdapter(
        "llama-like-causal-lm",
        "causal_lm",
        _LLAMA_LIKE,
        "layers",
        "last",
        _identity,
        final_norm="norm",
        position_ids=True,
    ),
    HeadAdapter(
        "phi-causal-lm",
        "causal_lm",
        ("phi",),
        "layers",
        "last",
        _identity,
        final_norm="final_layernorm",
        position_ids=True,
    ),
    HeadAdapter(
        "gpt2-causal-lm", "causal_lm", ("gpt2",), "h", "last", _identity, final_norm="ln_f", position_ids=True
    ),
    HeadAdapter(
        "gpt-neox-causal-lm",
        "causal_lm",
        ("gpt_neox",),
        "layers",
        "last",
        _identity,
        final_norm="final_layer_norm",
        position_ids=True,
    ),
    HeadAdapter("bert-masked-lm", "masked_lm", ("bert",), "encoder.layer", "mask", _bert_mlm),
    HeadAdapter(
        "deberta-masked-lm", "masked_lm", ("deberta-v2", "deberta"), "encoder.layer", "mask", _bert_mlm
    ),
    HeadAdapter(
        "roberta-masked-lm",
        "masked_lm",
        _ROBERTA_TYPES + ("mpnet",),
        "encoder.layer",
        "mask",
        _roberta_like_mlm,
    ),
    HeadAdapter("electra-masked-lm", "masked_lm", ("electra",), "encoder.layer", "mask", _electra_mlm),
    HeadAdapter(
        "albert-masked-lm", "masked_lm", ("albert",), "encoder.albert_layer_groups", "mask", _albert_mlm
    ),
    HeadAdapter(
        "distilbert-masked-lm", "masked_lm", ("distilbert",), "transformer.layer", "mask", _distilbert_mlm
    ),
)

_BY_KEY = {(a.task, t): a for a in ADAPTERS for t in a.model_types}


def task_of(model_class_name: str) -> Task | None:
    """The task a Hugging Face model class name implies, e.g. ``BertForMaskedLM`` -> masked_lm."""
    if model_class_name.endswith("ForSequenceClassification"):
        return "classification"
    if model_class_name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    if model_class_name.endswith("ForMaskedLM"):
        return "masked_lm"
    return None


def list_supported() -> list[str]:
    """Supported ``model_type/task`` pairs, sorted, for messages and docs."""
    return sorted(f"{t}/{a.task}" for a in ADAPTERS for t in a.model_types)


def adapter_for(model: PreTrainedModel) -> HeadAdapter:
    """The registered adapter for a loaded model (see ``adapter_named``)."""
    return adapter_named(type(model).__name__, model.config)


def adapter_named(architecture: str, config: PretrainedConfig) -> HeadAdapter:
    """The registered adapter for a model class name and its config.

    Raises:
        UnsupportedModelError: naming the model's class and type and listing supported ones, or
            saying which variant of a supported family is not (see ``_unsupported_variant``).
    """
    key = (task_of(architecture), config.model_type)
    if key not in _BY_KEY:
        raise UnsupportedModelError(
            f"normxlogit has no head adapter for {architecture} (model_type={config.model_type!r}). "
            f"Supported model_type/task pairs: {', '.join(list_supported())}."
        )
    adapter = _BY_KEY[key]
    problem = _unsupported_variant(adapter, config)
    if problem:
        raise UnsupportedModelError(f"{architecture}: {problem}")
    return adapter


def _unsupported_variant(adapter: HeadAdapter, config: PretrainedConfig) -> str | None:
    """Why a config of a registered family still cannot be scored exactly, if it cannot."""
    if adapter.name == "deberta-masked-lm" and not getattr(config, "legacy", True):
        return (
            "DeBERTa masked-LM heads with legacy=False are not supported (only the legacy "
            "cls.predictions head, which released checkpoints use)"
        )
    regression = getattr(config, "problem_type", None) == "regression"
    if adapter.task == "classification" and regression and config.num_labels > 1:
        return (
            f"multi-output regression ({config.num_labels} outputs) is not supported; "
            "NormXLogit's regression score needs a single output"
        )
    return None


def is_regression(model: PreTrainedModel, adapter: HeadAdapter) -> bool:
    """A classification head with one output, or declared as regression, scores |H(x_i)-H(x_p)|."""
    cfg = model.config
    return adapter.task == "classification" and (
        cfg.num_labels == 1 or getattr(cfg, "problem_type", None) == "regression"
    )
