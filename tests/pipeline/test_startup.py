"""Start-up: ``--help``, ``report`` and ``show`` import neither torch, transformers nor Beam.

Each command runs in a fresh interpreter (modules imported by earlier tests would hide an import),
which then lists the heavy modules it holds. No timing is asserted (a shared machine makes it
noise); without these imports the commands answer in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "apache_beam")
PROBE = f"""
import json, sys
from normxlogit.pipeline.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("\\nPROBE " + json.dumps({{"code": code, "heavy": heavy}}))
"""


def run_probe(args: list[str]) -> dict:
    """Run ``normxlogit ARGS`` in a fresh interpreter; its exit code and the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert "PROBE " in done.stdout, done.stderr
    return json.loads(done.stdout.rsplit("PROBE ", 1)[1])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small synthetic finished run (no model)."""
    spec = importlib.util.spec_from_file_location("synthetic_run", REPO / "benchmarks" / "synthetic_run.py")
    synthetic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synthetic)
    run = tmp_path_factory.mktemp("startup") / "run"
    synthetic.write_synthetic_run(run, 20)
    return run


@pytest.mark.parametrize(
    "args",
    [["--help"], ["annotate", "--help"], ["evaluate", "--help"], ["report", "--help"], ["show", "--help"]],
    ids=lambda args: " ".join(args),
)
def test_help_imports_no_heavy_module(args):
    assert run_probe(args) == {"code": 0, "heavy": []}


def test_report_imports_no_heavy_module(finished_run, tmp_path):
    html = tmp_path / "r.html"
    assert run_probe(["report", str(finished_run), "--out", str(html)]) == {"code": 0, "heavy": []}
    assert html.stat().st_size > 0


def test_show_imports_no_heavy_module(finished_run):
    assert run_probe(["show", str(finished_run), "--doc", "corpus/part-1.jsonl#L2"]) == {
        "code": 0,
        "heavy": [],
    }


def test_a_beam_flag_is_still_split_from_ours():
    # Beam is imported to learn that --runner takes a value: the value is not taken for an input.
    from normxlogit.pipeline.cli import build_parser
    from normxlogit.pipeline.options import split_beam_args

    _, subs = build_parser()
    mine, theirs = split_beam_args(["in.txt", "--runner", "DirectRunner", "--output", "o"], subs["annotate"])
    assert (mine, theirs) == (["in.txt", "--output", "o"], ["--runner", "DirectRunner"])


def test_the_package_loads_its_public_names_on_first_use():
    probe = (
        "import sys, normxlogit; "
        "before = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'); "
        "names = sorted(n for n in normxlogit.__all__ if getattr(normxlogit, n) is not None); "
        "print(before == [], names == sorted(normxlogit.__all__) == sorted(normxlogit._MODULES), "
        "set(normxlogit.__all__) <= set(dir(normxlogit)), normxlogit.score.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True", "True", "normxlogit.api"]
