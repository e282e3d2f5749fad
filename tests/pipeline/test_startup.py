"""Start-up: ``--help``, ``report``, ``show`` and the refusals that need no model import neither
torch, transformers nor Beam.

Each command runs in a fresh interpreter (modules imported by earlier tests would hide an import),
which then lists the heavy modules it holds. No timing is asserted (a shared machine makes it
noise); without these imports the commands answer in a fraction of a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def run_probe(args: list[str], cwd: Path | None = None) -> dict:
    """Run ``normxlogit ARGS`` in a fresh interpreter; its exit code, the heavy modules it imported
    and its stderr lines (``err``)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
    assert "PROBE " in done.stdout, done.stderr
    return {**json.loads(done.stdout.rsplit("PROBE ", 1)[1]), "err": done.stderr.splitlines()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic) -> Path:
    """A small synthetic finished run (no model)."""
    run = tmp_path_factory.mktemp("startup") / "run"
    synthetic.write_synthetic_run(run, 20, documents=True)
    return run


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["annotate", "--help"],
        ["evaluate", "--help"],
        ["report", "--help"],
        ["show", "--help"],
        ["stats", "--help"],
        ["compare", "--help"],
    ],
    ids=lambda args: " ".join(args),
)
def test_help_imports_no_heavy_module(args):
    probe = run_probe(args)
    assert (probe["code"], probe["heavy"]) == (0, [])


def test_report_imports_no_heavy_module(finished_run, tmp_path):
    html = tmp_path / "r.html"
    probe = run_probe(["report", str(finished_run), "--out", str(html)])
    assert (probe["code"], probe["heavy"]) == (0, [])
    assert html.stat().st_size > 0


@pytest.mark.parametrize("option", ["--stats", "--compare"])
def test_report_with_findings_imports_no_heavy_module(option, finished_run, tmp_path):
    folder = tmp_path / "findings"
    if option == "--stats":
        made = ["stats", str(finished_run), "--by", "prediction", "--out", str(folder), "--bootstrap", "20"]
    else:
        made = ["compare", str(finished_run), str(finished_run), "--out", str(folder), "--bootstrap", "20"]
    assert run_probe(made)["code"] == 0
    html = tmp_path / "r.html"
    probe = run_probe(["report", str(finished_run), "--out", str(html), option, str(folder)])
    assert (probe["code"], probe["heavy"]) == (0, [])
    assert html.stat().st_size > 0


def test_show_imports_no_heavy_module(finished_run):
    probe = run_probe(["show", str(finished_run), "--doc", "corpus/part-1.jsonl#L2"])
    assert (probe["code"], probe["heavy"]) == (0, [])


def test_stats_imports_no_heavy_module(finished_run, tmp_path):
    probe = run_probe(
        ["stats", str(finished_run), "--by", "prediction", "--out", str(tmp_path), "--bootstrap", "20"]
    )
    assert (probe["code"], probe["heavy"]) == (0, [])
    assert (tmp_path / "words.parquet").stat().st_size > 0


def test_compare_imports_no_heavy_module(finished_run, tmp_path):
    probe = run_probe(
        ["compare", str(finished_run), str(finished_run), "--out", str(tmp_path), "--bootstrap", "20"]
    )
    assert (probe["code"], probe["heavy"]) == (0, [])
    assert (tmp_path / "documents.parquet").stat().st_size > 0


HUB_HINT = (
    "--model org/name: no such file or folder; it looks like a Hugging Face Hub name; models load offline: "
    "download it first (hf download org/name --local-dir DIR) and pass --model DIR"
)
ANNOTATE = ["annotate", "in.jsonl", "--output", "out"]
EVALUATE = ["evaluate", "in.jsonl", "--output", "out", "--label-field", "label"]
# (argv, the message after "normxlogit COMMAND: error: "); FINISHED stands for a finished run's folder.
REFUSALS = {
    "hub model": (ANNOTATE + ["--model", "org/name"], HUB_HINT),
    "evaluate hub model": (EVALUATE + ["--model", "org/name"], HUB_HINT),
    "missing input": (
        ["annotate", "missing.jsonl", "--output", "out"],
        "missing.jsonl: no such file or folder",
    ),
    "glob matching nothing": (
        ["evaluate", "in/*.jsonl", "--output", "out", "--label-field", "label"],
        "in/*.jsonl: no file matches this pattern",
    ),
    "finished output": (
        ["annotate", "*.jsonl", "--output", "FINISHED"],
        "FINISHED already holds a finished run (manifest.json); pass --overwrite to replace it, or choose "
        "another --output",
    ),
    # Beam's flag keeps its value: DirectRunner is not taken for an input, and the run is refused for
    # its finished output folder instead.
    "beam flag split": (
        ["evaluate", "in.jsonl", "--runner", "DirectRunner", "--label-field", "y", "--output", "FINISHED"],
        "FINISHED already holds a finished run (manifest.json); pass --overwrite to replace it, or choose "
        "another --output",
    ),
    "unknown flag": (
        ANNOTATE + ["--runer", "DirectRunner"],
        "unrecognized option --runer; did you mean --runner?",
    ),
    "response flags clash": (
        ANNOTATE + ["--response-field", "answer", "--generate", "8"],
        "--response-field and --generate cannot be combined: --response-field reads the response from a "
        "field, --messages-field from a chat, --generate has the model write it; choose one",
    ),
    "response flag alone": (
        ANNOTATE + ["--step-scores"],
        "--step-scores needs a response run: add --response-field, --messages-field or --generate",
    ),
    "no label": (
        ["evaluate", "in.jsonl", "--output", "out"],
        "--label-field is required (or a response mode: --response-field, --messages-field, --generate)",
    ),
    "label and response": (
        EVALUATE + ["--response-field", "answer"],
        "give --label-field (the paper's metrics on a labelled corpus) or one of --response-field, "
        "--messages-field, --generate (response mode, no label), not both",
    ),
    "large model": (
        EVALUATE + ["--large-model"],
        "--large-model and --model-copies are not supported by evaluate",
    ),
    # Refused before its own flags would be refused as unknown ones.
    "lossy runner": (
        ANNOTATE
        + ["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner", "--dask_client_address", "x"],
        "--runner apache_beam.runners.dask.dask_runner.DaskRunner is not supported: it drops what a step "
        "emits when it finishes a bundle (a reader's last batch, a file writer's last shard), runs only one "
        "of several outputs, and reports no counts. Use the local runner (default; --direct_num_workers N "
        "--direct_running_mode multi_processing for several processes), or DataflowRunner, FlinkRunner, "
        "SparkRunner or PortableRunner for a cluster",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=str)
def test_a_refusal_that_needs_no_model_imports_no_heavy_module(case, finished_run, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "a", "label": "x"}\n')
    (tmp_path / "in").mkdir()
    argv, message = REFUSALS[case]
    argv = [str(finished_run) if arg == "FINISHED" else arg for arg in argv]
    if "--model" not in argv:
        argv += ["--model", "."]  # a folder that exists, whether or not the default model is installed
    message = message.replace("FINISHED", str(finished_run))
    probe = run_probe(argv, cwd=tmp_path)
    assert probe == {"code": 2, "heavy": [], "err": [f"normxlogit {argv[0]}: error: {message}"]}
    assert not (tmp_path / "out").exists()


def test_beams_flags_are_read_without_importing_beam(monkeypatch):
    """The flags read from Beam's source, and whether each takes a value, are those Beam's option
    classes declare once Beam is imported: a Beam release that declares them otherwise fails here.
    Without the source, Beam's classes are asked."""
    from normxlogit.pipeline import options
    from normxlogit.pipeline.options import _beam_options_path, _flags_in_source, beam_flags

    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, apache_beam; from normxlogit.pipeline.options import _beam_actions; "
            "print(json.dumps({f: a.nargs for f, a in _beam_actions().items()}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    declared = json.loads(imported.stdout.splitlines()[-1])
    assert _flags_in_source(_beam_options_path().read_text(encoding="utf-8")) == declared == beam_flags()
    assert declared["--runner"] is None and declared["--save_main_session"] == 0
    monkeypatch.setattr(options, "_beam_options_path", lambda: None)
    # This process may have imported more option classes (a runner's) than a fresh one.
    assert declared.items() <= beam_flags().items()


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
