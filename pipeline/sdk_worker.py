"""The local runner's worker process (``--direct_running_mode multi_processing``): Beam's SDK worker,
deaf to Ctrl-C, and stopped by the launcher when a signal ends the run.

A terminal sends Ctrl-C to every process of the job, workers included; Beam's workers would each
print a traceback. Here they ignore it: the launcher takes the signal (Ctrl-C, or a SIGTERM sent to
it alone), kills its workers at once (``stop_workers``) and says so in one line
(``pipeline/interrupts.py``). Killed rather than left to wind down: a worker whose launcher closes
its channels mid-bundle fails that bundle (its next step finds the interpreter shutting down or
the data channel gone) and Beam prints the failure to stderr. Started by ``options.local_runner``.
"""

from __future__ import annotations

import signal
import sys

MODULE = "normxlogit.pipeline.sdk_worker"


def command_line() -> str:
    """The shell command the local runner starts a worker with. ``exec``: the shell Beam starts it
    with (``shell=True``) would die of the Ctrl-C itself."""
    return f"exec {sys.executable} -m {MODULE}"


def stop_workers() -> list[int]:
    """Kill this process's worker processes (its children started from ``command_line``); the pids
    killed. Called in the launcher's signal handler: nothing here may raise."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with accelerate, a dependency
        return []
    killed = []
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return []
    for child in children:
        try:
            if MODULE in child.cmdline():
                child.kill()
                killed.append(child.pid)
        except psutil.Error:  # gone already, or not ours to read
            continue
    return killed


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
