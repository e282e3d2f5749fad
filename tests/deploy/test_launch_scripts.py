"""The launch scripts under deploy/: they parse, explain themselves, and print working commands.

``--dry-run`` prints each command a script would run. Every flag in a printed ``normxlogit annotate``
command must be one that Beam's PipelineOptions or ``normxlogit annotate --help`` knows, and the
values that matter (runner, image, GPU options) are read back through Beam's own option classes.
The same check covers every ``normxlogit annotate`` and ``deploy/`` command shown in README.md and
the guides under deploy/.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import apache_beam
import pytest
from apache_beam.options.pipeline_options import (
    DebugOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
    WorkerOptions,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPTS = sorted(p for p in DEPLOY.rglob("*.sh") if p.name != "common.sh")
GPU_ACCELERATOR = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
DATAFLOW_ENV = {"PROJECT": "my-project", "TEMP_LOCATION": "gs://my-bucket/tmp", "IMAGE": "reg/normxlogit:1"}


def script_id(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


def run_script(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a launch script with a clean set of its variables plus ``env``."""
    names = ("PROJECT", "TEMP_LOCATION", "IMAGE", "REGION", "MACHINE_TYPE", "MAX_WORKERS", "ENVIRONMENT")
    base = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        ["bash", str(script), *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=30
    )


def dry_run(script: Path, *args: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """The commands a script prints with --dry-run, each split as the shell would."""
    done = run_script(script, "--dry-run", *args, env=env)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def annotate_help(cli) -> str:
    """The text of ``normxlogit annotate --help``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.annotate("--help")
    return out.getvalue()


def annotate_options(command: list[str], annotate_help: str) -> tuple[PipelineOptions, dict]:
    """Beam's options of an ``annotate`` command, and normxlogit's own flags with their values.

    Fails if a flag is known to neither Beam nor ``normxlogit annotate``.
    """
    assert command[:2] == ["normxlogit", "annotate"]
    options = PipelineOptions(command[2:])
    known = options.get_all_options()
    ours = {k: v for k, v in options.get_all_options(retain_unknown_options=True).items() if k not in known}
    for name in ours:
        flag = "--" + name.replace("_", "-")
        assert re.search(re.escape(flag) + r"\b", annotate_help), f"{flag} is neither Beam's nor normxlogit's"
    return options, ours


@pytest.mark.parametrize("script", [*SCRIPTS, DEPLOY / "common.sh"], ids=script_id)
def test_script_parses(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_help_shows_usage(script):
    done = run_script(script, "--help")
    assert done.returncode == 0, done.stderr
    assert f"deploy/{script_id(script)} [--dry-run]" in done.stdout
    assert os.access(script, os.X_OK), f"{script} is not executable"


def test_dataflow_cpu(annotate_help):
    [command] = dry_run(
        DEPLOY / "dataflow/run.sh", "gs://b/in/*.jsonl", "--output", "gs://b/out", env=DATAFLOW_ENV
    )
    options, ours = annotate_options(command, annotate_help)
    assert command[2] == "gs://b/in/*.jsonl", "the glob reaches normxlogit unexpanded"
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    cloud = options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == (
        "my-project",
        "us-central1",
        "gs://my-bucket/tmp",
    )
    worker = options.view_as(WorkerOptions)
    assert (worker.sdk_container_image, worker.machine_type) == ("reg/normxlogit:1", "n2-standard-4")
    assert "use_runner_v2" in options.view_as(DebugOptions).experiments
    assert not cloud.dataflow_service_options
    assert ours == {"output": "gs://b/out"}


def test_dataflow_gpu(annotate_help):
    env = {**DATAFLOW_ENV, "MACHINE_TYPE": "g2-standard-4"}
    [command] = dry_run(DEPLOY / "dataflow/run.sh", "--gpu", "gs://b/in/", "--output", "gs://b/out", env=env)
    options, ours = annotate_options(command, annotate_help)
    assert options.view_as(GoogleCloudOptions).dataflow_service_options == [GPU_ACCELERATOR]
    assert options.view_as(WorkerOptions).machine_type == "g2-standard-4"
    assert "use_runner_v2" in options.view_as(DebugOptions).experiments
    assert ours == {"output": "gs://b/out", "device": "cuda", "dtype": "bfloat16", "model_copies": "1"}


@pytest.mark.parametrize("missing", ["PROJECT", "TEMP_LOCATION", "IMAGE"])
def test_dataflow_names_a_missing_setting(missing):
    env = {k: v for k, v in DATAFLOW_ENV.items() if k != missing}
    done = run_script(DEPLOY / "dataflow/run.sh", "--dry-run", "in", "--output", "gs://b/out", env=env)
    assert done.returncode == 2 and f"set {missing} (" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("engine", ["flink", "spark"])
def test_portable_docker_environment(engine, annotate_help):
    env = {"IMAGE": "reg/normxlogit:1", "JOB_ENDPOINT": "jobs:8099", "ARTIFACT_ENDPOINT": "jobs:8098"}
    [command] = dry_run(DEPLOY / engine / "run.sh", "s3://b/in/", "--output", "s3://b/out", env=env)
    options, ours = annotate_options(command, annotate_help)
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    portable = options.view_as(PortableOptions)
    assert (portable.job_endpoint, portable.artifact_endpoint) == ("jobs:8099", "jobs:8098")
    assert (portable.environment_type, portable.environment_config) == ("DOCKER", "reg/normxlogit:1")
    assert int(portable.sdk_worker_parallelism) == 1
    assert ours == {"output": "s3://b/out"}


def test_portable_external_environment_and_parallelism(annotate_help):
    env = {
        "ENVIRONMENT": "external",
        "WORKER_POOL": "localhost:50000",
        "PARALLELISM": "8",
        "SDK_WORKERS": "2",
    }
    [command] = dry_run(DEPLOY / "flink/run.sh", "gs://b/in/", "--output", "gs://b/out", env=env)
    options, _ = annotate_options(command, annotate_help)
    portable = options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")
    assert int(portable.sdk_worker_parallelism) == 2
    assert options.view_as(FlinkRunnerOptions).parallelism == 8


def test_portable_docker_needs_an_image():
    done = run_script(DEPLOY / "spark/run.sh", "--dry-run", "in", "--output", "out")
    assert done.returncode == 2 and "set IMAGE (" in done.stderr


def test_job_servers_match_the_installed_beam():
    version = apache_beam.__version__
    [flink] = dry_run(DEPLOY / "flink/job_server.sh", env={"FLINK_MASTER": "jm:8081"})
    image = next(token for token in flink if token.startswith("apache/beam_flink"))
    flink_version, tag = re.fullmatch(r"apache/beam_flink([\d.]+)_job_server:(.+)", image).groups()
    assert tag == version
    assert flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert flink[-1] == "--flink-master=jm:8081"
    [spark] = dry_run(
        DEPLOY / "spark/job_server.sh", env={"SPARK_MASTER": "spark://m:7077", "ARTIFACTS_DIR": "gs://b/art"}
    )
    assert f"apache/beam_spark3_job_server:{version}" in spark
    assert spark[-2:] == ["--spark-master-url=spark://m:7077", "--artifacts-dir=gs://b/art"]


def test_build_image_cpu_and_gpu():
    version = apache_beam.__version__
    [build] = dry_run(DEPLOY / "build_image.sh", "reg/normxlogit:cpu")
    assert build[:4] == ["docker", "build", "-f", str(DEPLOY / "Dockerfile")]
    assert build[-3:] == ["-t", "reg/normxlogit:cpu", str(DEPLOY.parent)]
    assert f"BEAM_VERSION={version}" in build and "TORCH_VARIANT=cpu" in build
    build, push = dry_run(DEPLOY / "build_image.sh", "--gpu", "--push", "reg/normxlogit:gpu")
    assert "TORCH_VARIANT=cu128" in build
    assert push == ["docker", "push", "reg/normxlogit:gpu"]


def test_launcher_python_matches_the_image():
    base = re.search(r"^FROM apache/beam_python(\d+\.\d+)_sdk:", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert base, "the Dockerfile builds on the Beam Python SDK image"
    assert base.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}", (
        "the image's Python must match the launcher's: pickled pipeline code crosses between them"
    )


def documented_commands(markdown: Path) -> list[tuple[dict[str, str], list[str]]]:
    """(environment, argv) of every command line in the bash blocks of a guide.

    Continuation lines are joined, comments and a trailing ``&`` dropped; ``VAR=value`` prefixes and
    ``export`` lines become the command's environment.
    """
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown.read_text(), re.S):
        exported: dict[str, str] = {}
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            tokens = [t for t in shlex.split(line, comments=True) if t != "&"]
            if tokens[:1] == ["export"]:
                exported.update(t.split("=", 1) for t in tokens[1:])
                continue
            env = dict(exported)
            while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
                env.update([tokens.pop(0).split("=", 1)])
            if tokens:
                commands.append((env, tokens))
    return commands


@pytest.mark.parametrize(
    "guide",
    [DEPLOY.parent / "README.md", *sorted(DEPLOY.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(DEPLOY.parent)),
)
def test_documented_commands_are_valid(guide, annotate_help):
    checked = 0
    for env, argv in documented_commands(guide):
        if argv[0].startswith("deploy/") and argv[0].endswith(".sh"):
            script = DEPLOY.parent / argv[0]
            args = [a for a in argv[1:] if a != "--dry-run"]
            for command in dry_run(script, *args, env=env):
                if command[0] == "normxlogit":
                    annotate_options(command, annotate_help)
            checked += 1
        elif argv[:2] == ["normxlogit", "annotate"]:
            annotate_options(argv, annotate_help)
            checked += 1
    assert checked, f"{guide} shows no normxlogit or deploy/ command"
