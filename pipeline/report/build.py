"""Build the report page of a finished run (no Beam: pyarrow streaming reads only)."""

from __future__ import annotations

from pathlib import Path

from normxlogit.pipeline.report.page import ReportInput, render_page
from normxlogit.pipeline.report.run_reader import (
    read_annotate_manifest,
    read_dead_letters,
    read_summaries,
    scan_run,
)

DEFAULT_SAMPLE = 500


def build_report(output: str | Path, sample_size: int = DEFAULT_SAMPLE) -> str:
    """The report page (HTML) of the run in ``output``.

    Corpus summaries come from the run's ``summaries/`` when present; for runs written before
    summaries existed they are computed from the token rows in the same streaming pass.

    Raises:
        RunNotFoundError: ``output`` holds no finished run.
    """
    folder = Path(output)
    manifest = read_annotate_manifest(folder)
    summaries = read_summaries(folder)
    scan = scan_run(folder, sample_size, with_summaries=summaries is None)
    data = ReportInput(
        output=str(output),
        manifest=manifest,
        dead=read_dead_letters(folder),
        scan=scan,
        summaries=scan.summaries if summaries is None else summaries,
        summaries_source="computed from the token rows" if summaries is None else "from the pipeline",
    )
    return render_page(data)


def write_report(output: str | Path, destination: str | Path, sample_size: int = DEFAULT_SAMPLE) -> Path:
    """Write the report page of ``output`` to ``destination`` (UTF-8) and return its path."""
    path = Path(destination)
    path.write_text(build_report(output, sample_size), encoding="utf-8")
    return path
