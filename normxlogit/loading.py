"""Load a model safely and offline: local folder or GGUF file, Auto classes, safetensors.

Defaults are the safe ones: no remote code, no pickle (``.bin``) weights, no hub access. A
user who trusts a model folder opts in with ``trust_remote_code=True`` or ``allow_pickle=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from normxlogit.heads import HeadAdapter, adapter_for, adapter_named, task_of
from normxlogit.limits import LENGTH_CAP

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


_FORWARD_THREAD_LOCK = threading.Lock()
# ``model``: a weak reference to the ScoringModel whose forward thread this is (weak, so that the
# thread does not keep its model, and with it its executor, alive)
_on_forward_thread = threading.local()


def _mark_forward_thread(model: weakref.ref) -> None:
    _on_forward_thread.model = model


@dataclass
class ScoringModel:
    """A model ready for ``score_batch``: weights in eval mode, tokenizer, head adapter."""

    model: PreTrainedModel
    tokenizer: object
    adapter: HeadAdapter
    device: torch.device
    padding_side: str
    info: ModelInfo
    # Held by every forward pass (``scoring.forward_base``): one at a time per model, so threads
    # that share a model overlap their host work with its forward passes, never two batches'
    # activations on the device.
    lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)
    # The thread that runs the batch engine's forward passes (``forward_thread``), made on first use.
    _forward: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    # Decoded text of each token id asked for so far; at most one entry per vocabulary item.
    _token_labels: dict[int, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["lock"]  # locks and threads do not pickle; a copy gets its own
        state["_forward"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def forward_thread(self) -> ThreadPoolExecutor | None:
        """The one thread that runs this model's scoring forward passes, in the order submitted.

        Every caller (each thread of a pipeline worker that shares the model) queues its prepared
        buckets here and goes on preparing the next ones, so the device always has the next bucket
        waiting instead of waiting for a caller's host work (``BatchEngine``).

        None when called on that thread itself or by a thread that holds ``lock``: queueing there
        would wait for a forward pass that waits for the caller. Such a caller runs its forward
        passes itself.
        """
        mine = getattr(_on_forward_thread, "model", None)
        if (mine is not None and mine() is self) or self.lock._is_owned():
            return None
        if self._forward is None:
            with _FORWARD_THREAD_LOCK:  # not ``lock``: a forward pass holds it
                if self._forward is None:
                    self._forward = ThreadPoolExecutor(
                        max_workers=1,
                        thread_name_prefix="normxlogit-forward",
                        initializer=_mark_forward_thread,
                        initargs=(weakref.ref(self),),
                    )
        return self._forward

    def token_label(self, token_id: int) -> str:
        """Decoded text of one token id (e.g. ' Paris'), decoded once per id and model."""
        token_id = int(token_id)
        label = self._token_labels.get(token_id)
        if label is None:
            label = self._token_labels[token_id] = self.tokenizer.decode([token_id])
        return label

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
        """Longest input the model accepts, from its config (capped at ``limits.LENGTH_CAP``)."""
        cfg = self.model.config
        limits = [getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions")]
        limits = [v for v in limits if isinstance(v, int) and v > 0]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 10**9:
            limits.append(tok_max)
        # RoBERTa-style models reserve two positions for the padding offset.
        offset = 2 if cfg.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        return min([LENGTH_CAP] + [v - offset for v in limits])


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safe, pickle) weight files in a model folder."""
    safe = sorted(p for pat in _SAFE_WEIGHTS for p in folder.glob(pat))
    pickled = sorted(p for pat in _PICKLE_WEIGHTS for p in folder.glob(pat))
    return safe, pickled


# The safetensors format caps its JSON header at 100 MB; a larger length is a damaged file.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def check_safetensors(path: Path) -> None:
    """Check a ``.safetensors`` file's header against its size, without reading its tensors.

    The file is an 8-byte little-endian header length, a JSON header giving each tensor's
    ``data_offsets`` into the data that follows, and that data; a copy cut short (an interrupted
    download, a full disk) is shorter than the largest end offset.

    Raises:
        ModelLoadError: naming the file and what is wrong with it.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        header_ok = 0 <= length <= min(size - 8, _MAX_SAFETENSORS_HEADER)
        try:
            header = json.loads(fh.read(length)) if header_ok else None
            ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            header_ok = False
    if not header_ok:
        raise ModelLoadError(
            f"{path} is not a readable safetensors file (its header is cut short or damaged; the file "
            f"has {size:,} bytes); copy or download the model again"
        )
    need = 8 + length + max(ends, default=0)
    if size < need:
        raise ModelLoadError(
            f"{path} is truncated: its header describes {need:,} bytes but the file has {size:,}; "
            "copy or download the model again"
        )


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
    if arch is None and gguf:  # GGUF files carry causal LMs and name no architecture
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
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


@dataclass(frozen=True)
class _Located:
    """A model on disk: where to load from, with which extra kwargs, and its weight files."""

    folder: Path
    load_dir: Path
    load_kw: dict
    files: list[Path]


def _locate(path: str | os.PathLike | None, allow_pickle: bool) -> _Located:
    """Resolve a model path and check it before anything is loaded."""
    from normxlogit.default_model import default_model_dir

    folder = Path(path) if path is not None else default_model_dir()
    if not folder.exists():
        raise ModelLoadError(f"model path {folder} does not exist")
    if folder.is_file() and folder.suffix == ".gguf":
        return _Located(folder, folder.parent, {"gguf_file": folder.name}, [folder])
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
    for weights in safe:
        if weights.suffix == ".safetensors":
            check_safetensors(weights)
    return _Located(folder, folder, {"use_safetensors": bool(safe)}, safe or pickled)


def _config(loc: _Located, trust_remote_code: bool):
    kw = {k: v for k, v in loc.load_kw.items() if k == "gguf_file"}
    try:
        return AutoConfig.from_pretrained(
            loc.load_dir, local_files_only=True, trust_remote_code=trust_remote_code, **kw
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read the model config in {loc.folder}: {err}") from err


def inspect_model(
    path: str | os.PathLike | None = None,
    *,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> ModelInfo:
    """Check a model without loading its weights, and describe it (with a weights hash).

    The pipeline calls this before it starts, so that a bad model path, pickle-only weights or
    an unsupported architecture fail fast with a clear message.

    Raises:
        ModelLoadError, UnsupportedModelError: as ``load_model``.
    """
    loc = _locate(path, allow_pickle)
    config = _config(loc, trust_remote_code)
    cls = _model_class(config, str(loc.folder), "gguf_file" in loc.load_kw)
    arch = cls.__name__
    adapter = adapter_named(arch, config)
    return ModelInfo(
        path=str(loc.folder),
        architecture=arch,
        model_type=config.model_type,
        adapter=adapter.name,
        task=adapter.task,
        dtype=dtype,
        weights_sha256=weights_sha256(loc.files),
        tokenizer=_tokenizer_class(loc),
        num_layers=int(config.num_hidden_layers),
        labels=_labels(config, adapter),
    )


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
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    loc = _locate(path, allow_pickle)
    config = _config(loc, trust_remote_code)
    cls = _model_class(config, str(loc.folder), "gguf_file" in loc.load_kw)
    common = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    try:
        model = cls.from_pretrained(loc.load_dir, dtype=_DTYPES[dtype], **common, **loc.load_kw)
        tok_kw = {k: v for k, v in loc.load_kw.items() if k == "gguf_file"}
        tokenizer = AutoTokenizer.from_pretrained(loc.load_dir, **common, **tok_kw)
    except (OSError, ValueError) as err:
        if isinstance(err, ModelLoadError):
            raise
        raise ModelLoadError(f"cannot load the model in {loc.folder}: {err}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{loc.folder}: normxlogit needs a fast tokenizer (tokenizer.json)")
    return prepare(
        model,
        tokenizer,
        device=device,
        padding_side=padding_side,
        path=str(loc.folder),
        files=loc.files if hash_weights else [],
    )


def _tokenizer_class(loc: _Located) -> str:
    """The tokenizer class a folder declares (tokenizer_config.json), read without loading it."""
    if "gguf_file" in loc.load_kw:
        return "gguf"
    config = loc.folder / "tokenizer_config.json"
    if config.is_file():
        return str(json.loads(config.read_text()).get("tokenizer_class") or "unspecified")
    return "tokenizer.json" if (loc.folder / "tokenizer.json").is_file() else "none"


def _labels(config, adapter: HeadAdapter) -> dict[int, str]:
    if adapter.task != "classification":
        return {}
    return {int(k): str(v) for k, v in (config.id2label or {}).items()}


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
    if dev.type == "cuda" and dev.index is None:
        # The GPU this thread means by "cuda": the forward thread has its own current device.
        dev = torch.device("cuda", torch.cuda.current_device())
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
        labels=_labels(cfg, adapter),
    )
    return ScoringModel(model, tokenizer, adapter, dev, side, info)


def load_skeleton(
    path: str | os.PathLike | None = None, *, trust_remote_code: bool = False, allow_pickle: bool = False
) -> ScoringModel:
    """The model's config, tokenizer and head with no weights (on the meta device): checks before a
    run that need the model's classes or vocabulary, at no memory cost, on any launcher.

    Raises:
        ModelLoadError, UnsupportedModelError: as ``load_model``.
    """
    loc = _locate(path, allow_pickle)
    config = _config(loc, trust_remote_code)
    cls = _model_class(config, str(loc.folder), "gguf_file" in loc.load_kw)
    tok_kw = {k: v for k, v in loc.load_kw.items() if k == "gguf_file"}
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            loc.load_dir, local_files_only=True, trust_remote_code=trust_remote_code, **tok_kw
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load the tokenizer in {loc.folder}: {err}") from err
    with torch.device("meta"):
        model = cls._from_config(config)
    return prepare(model, tokenizer, device="meta", path=str(loc.folder))
