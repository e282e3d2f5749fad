"""Load a model safely and offline: local folder or GGUF file, Auto classes, safetensors.

Defaults are the safe ones: no remote code, no pickle (``.bin``) weights, no hub access. A
user who trusts a model folder opts in with ``trust_remote_code=True`` or ``allow_pickle=True``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from normxlogit.heads import HeadAdapter, adapter_for, task_of

# Never reach a model hub at run time; every path is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers.utils.logging.disable_progress_bar()

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SAFE_WEIGHTS = ("*.safetensors", "*.gguf")
_PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


class ModelLoadError(ValueError):
    """The model cannot be loaded as asked; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What the manifest records about a model."""

    path: str
    architecture: str
    model_type: str
    adapter: str
    task: str
    dtype: str
    weights_sha256: str
    tokenizer: str
    num_layers: int
    labels: dict[int, str] = field(default_factory=dict)


@dataclass
class ScoringModel:
    """A model ready for ``score_batch``: weights in eval mode, tokenizer, head adapter."""

    model: PreTrainedModel
    tokenizer: object
    adapter: HeadAdapter
    device: torch.device
    padding_side: str
    info: ModelInfo

    @property
    def base(self) -> torch.nn.Module:
        """The base transformer (no head)."""
        return self.model.base_model

    @property
    def pad_id(self) -> int:
        """Id used for padding; never attended to, so any valid id works."""
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id):
            if cand is not None:
                return int(cand)
        return 0

    @property
    def max_length(self) -> int:
        """Longest input the model accepts, from its config (capped at 8192)."""
        cfg = self.model.config
        limits = [getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions")]
        limits = [v for v in limits if isinstance(v, int) and v > 0]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 10**9:
            limits.append(tok_max)
        # RoBERTa-style models reserve two positions for the padding offset.
        offset = 2 if cfg.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        return min([8192] + [v - offset for v in limits])


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safe, pickle) weight files in a model folder."""
    safe = sorted(p for pat in _SAFE_WEIGHTS for p in folder.glob(pat))
    pickled = sorted(p for pat in _PICKLE_WEIGHTS for p in folder.glob(pat))
    return safe, pickled


def weights_sha256(files: list[Path]) -> str:
    """Content hash of the weight files (names and bytes), for the manifest."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _model_class(config, path: str, gguf: bool):
    arch = (getattr(config, "architectures", None) or [None])[0]
    if arch is None and gguf:
        return AutoModelForCausalLM
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None or task_of(arch) is None:
        raise ModelLoadError(
            f"{path}: config.json names architecture {arch!r}; normxlogit needs a model with a "
            "sequence-classification, causal-LM or masked-LM head (e.g. BertForSequenceClassification)."
        )
    return cls


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was given but torch sees no CUDA GPU")
    return dev


def load_model(
    path: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    padding_side: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    hash_weights: bool = True,
) -> ScoringModel:
    """Load a model for scoring.

    Args:
        path: a local model folder (config.json + safetensors), a ``.gguf`` file, or None for
            the embedded default model (SmolLM2-135M-Instruct).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` (GPU).
        padding_side: ``left`` or ``right`` for decoders; encoders always pad right, as trained.
        trust_remote_code: allow code shipped in the model folder to run.
        allow_pickle: allow ``.bin``/``.pt`` weights, which can run code when unpickled.
        hash_weights: compute the weights' sha256 for ``info`` (skip on workers).

    Raises:
        ModelLoadError: missing or unreadable folder, pickle-only weights, wrong architecture.
        UnsupportedModelError: no head adapter for the architecture.
    """
    from normxlogit.default_model import default_model_dir

    folder = Path(path) if path is not None else default_model_dir()
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    if not folder.exists():
        raise ModelLoadError(f"model path {folder} does not exist")
    gguf = folder.is_file() and folder.suffix == ".gguf"
    load_dir, load_kw = (folder.parent, {"gguf_file": folder.name}) if gguf else (folder, {})
    files = [folder] if gguf else None
    if not gguf:
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a model folder: it has no config.json")
        safe, pickled = weight_files(folder)
        if not safe and pickled and not allow_pickle:
            raise ModelLoadError(
                f"{folder} holds only pickle weights ({', '.join(p.name for p in pickled)}), which "
                "can run arbitrary code when loaded. Convert them to safetensors, or pass "
                "--allow-pickle (allow_pickle=True) if you trust this folder."
            )
        if not safe and not pickled:
            raise ModelLoadError(f"{folder} has no weight files (*.safetensors)")
        files = safe or pickled
        load_kw["use_safetensors"] = bool(safe)
    common = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(load_dir, **common, **load_kw)
        cls = _model_class(config, str(folder), gguf)
        model = cls.from_pretrained(load_dir, dtype=_DTYPES[dtype], **common, **load_kw)
        tokenizer = AutoTokenizer.from_pretrained(load_dir, **common, **load_kw)
    except (OSError, ValueError) as err:
        if isinstance(err, ModelLoadError):
            raise
        raise ModelLoadError(f"cannot load the model in {folder}: {err}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{folder}: normxlogit needs a fast tokenizer (tokenizer.json)")
    return prepare(
        model,
        tokenizer,
        device=device,
        padding_side=padding_side,
        path=str(folder),
        files=files if hash_weights else [],
    )


def prepare(
    model: PreTrainedModel,
    tokenizer,
    *,
    device: str = "cpu",
    padding_side: str | None = None,
    path: str = "<in memory>",
    files: list[Path] | None = None,
) -> ScoringModel:
    """Wrap an already-loaded model and tokenizer (e.g. from a notebook) for scoring."""
    adapter = adapter_for(model)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    side = padding_side or "right"
    if adapter.pooling != "last":
        side = "right"
    elif side not in ("left", "right"):
        raise ModelLoadError(f"padding_side must be left or right, not {side!r}")
    cfg = model.config
    info = ModelInfo(
        path=path,
        architecture=type(model).__name__,
        model_type=cfg.model_type,
        adapter=adapter.name,
        task=adapter.task,
        dtype=str(model.dtype).removeprefix("torch."),
        weights_sha256=weights_sha256(files) if files else "",
        tokenizer=type(tokenizer).__name__,
        num_layers=int(cfg.num_hidden_layers),
        labels={int(k): str(v) for k, v in (cfg.id2label or {}).items()}
        if adapter.task == "classification"
        else {},
    )
    return ScoringModel(model, tokenizer, adapter, dev, side, info)
