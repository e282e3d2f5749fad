"""Build the report page of a finished run (no Beam: pyarrow streaming reads only)."""

from __future__ import annotations

from pathlib import Path

from normxlogit.pipeline.report.compare_input import read_compare_dir
from normxlogit.pipeline.report.corpus_views import grouped_fields
from normxlogit.pipeline.report.faithfulness_views import read_evaluate_dir
from normxlogit.pipeline.report.findings_input import read_stats_dir, sample_findings
from normxlogit.pipeline.report.page import ReportInput, render_page
from normxlogit.pipeline.report.run_reader import (
    read_dead_letters,
    read_summaries,
    scan_run,
)
from normxlogit.transforms.layout import read_annotate_manifest

DEFAULT_SAMPLE = 500


def build_report(
    output: str | Path,
    sample_size: int = DEFAULT_SAMPLE,
    stats: str | Path | None = None,
    compare: str | Path | None = None,
    include_template: bool = False,
    evaluate: str | Path | None = None,
) -> str:
    """The report page (HTML) of the run in ``output``.

    Corpus summaries come from the run's ``summaries/`` when present; for runs written before
    summaries existed they are computed from the token rows in the same streaming pass. Findings
    come from ``stats`` (a ``normxlogit stats`` folder) or are computed for the sampled documents;
    ``compare`` (a ``normxlogit compare`` folder with this run as RUN_A) adds the Comparison section;
    ``evaluate`` (a ``normxlogit evaluate`` output folder) adds the Faithfulness section.
    The tokens a chat template wrote are left out of the corpus tables and the computed findings
    unless ``include_template``; a run whose summaries were written the other way has them computed
    again from the token rows.

    Raises:
        RunNotFoundError: ``output`` holds no finished run.
        FindingsDirError: ``stats``, ``compare`` or ``evaluate`` lacks a file its command writes.
    """
    folder = Path(output)
    manifest = read_annotate_manifest(folder)
    summaries = read_summaries(folder)
    if manifest.sections.options.include_template != include_template:
        summaries = None  # written with the template's tokens left out or in otherwise than asked
    comparison = None if compare is None else read_compare_dir(Path(compare), folder)
    faithfulness = None if evaluate is None else read_evaluate_dir(Path(evaluate))
    findings = None if stats is None else read_stats_dir(Path(stats))
    scan = scan_run(folder, sample_size, with_summaries=summaries is None, include_template=include_template)
    if findings is None:
        mode = manifest.sections.target.mode
        ids = [d["id"] for d in scan.sample]
        findings = sample_findings(folder, ids, scan.docs, grouped_fields(mode), include_template)
    source = "computed from the token rows" if summaries is None else "from the pipeline"
    data = ReportInput(
        output=str(output),
        manifest=manifest,
        dead=read_dead_letters(folder),
        scan=scan,
        summaries=scan.summaries if summaries is None else summaries,
        summaries_source=source
        + ("; chat-template tokens included (--include-template)" if include_template else ""),
        findings=findings,
        comparison=comparison,
        faithfulness=faithfulness,
        include_template=include_template,
    )
    return render_page(data)


def write_report(
    output: str | Path,
    destination: str | Path,
    sample_size: int = DEFAULT_SAMPLE,
    stats: str | Path | None = None,
    compare: str | Path | None = None,
    include_template: bool = False,
    evaluate: str | Path | None = None,
) -> Path:
    """Write the report page of ``output`` to ``destination`` (UTF-8) and return its path."""
    path = Path(destination)
    page = build_report(output, sample_size, stats, compare, include_template, evaluate)
    path.write_text(page, encoding="utf-8")
    return path
