"""Runners normxlogit refuses before a run, because they are known to lose records.

The reconciliation of every finished run (``pipeline/reconcile.py``) is what protects against
runners nobody has listed; this list saves a user the run that it would fail. No Beam import:
the refusal comes before anything heavy is loaded.
"""

from __future__ import annotations

from normxlogit.pipeline.startup_checks import RunRefused

SUPPORTED = (
    "the local runner (default; --direct_num_workers N --direct_running_mode multi_processing for "
    "several processes), or DataflowRunner, FlinkRunner, SparkRunner or PortableRunner for a cluster"
)
# Runner class name -> why it is refused. Tests empty it to run a refused runner on purpose.
LOSSY_RUNNERS: dict[str, str] = {
    "DaskRunner": "it drops what a step emits when it finishes a bundle (a reader's last batch, a "
    "file writer's last shard), runs only one of several outputs, and reports no counts",
}


class UnsupportedRunnerError(RunRefused):
    """``--runner`` names a runner that loses records."""


def check_runner(runner: str | None) -> None:
    """Refuse a runner of ``LOSSY_RUNNERS``, named short or fully qualified.

    Raises:
        UnsupportedRunnerError: one line saying why, and what to use instead.
    """
    name = (runner or "").rsplit(".", 1)[-1]
    if name in LOSSY_RUNNERS:
        raise UnsupportedRunnerError(
            f"--runner {runner} is not supported: {LOSSY_RUNNERS[name]}. Use {SUPPORTED}"
        )


def runner_flag(beam_args: list[str]) -> str | None:
    """The value of ``--runner`` among Beam's flags (``--runner X`` or ``--runner=X``), else None."""
    for i, token in enumerate(beam_args):
        if token == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
        if token.startswith("--runner="):
            return token.split("=", 1)[1]
    return None
