"""summary.json of ``normxlogit compare``: what was compared and how well the two runs agree overall.

The medians over documents of ``char_coverage`` and ``spearman`` (documents where it is defined)
come with document-bootstrap intervals (``bootstrap.median_interval``), and every interval says what
it is, with the seed and B.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from normxlogit.pipeline.findings.bootstrap import Resampling, median_interval
from normxlogit.transforms.layout import Manifest

if TYPE_CHECKING:
    from normxlogit.pipeline.findings.compare import CompareOptions, DocumentCounts, PerDocument


def _median(values: np.ndarray, keys: np.ndarray, resampling: Resampling) -> dict:
    defined = ~np.isnan(values)
    interval = median_interval(values[defined], keys[defined], resampling)
    return {
        "median": _number(interval.estimate[0]),
        "ci_low": _number(interval.low[0]),
        "ci_high": _number(interval.high[0]),
        "n_docs": int(defined.sum()),
        "interval": f"median over documents with a value; {resampling.describe()}",
    }


def _number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def _run_facts(run: Path, manifest: Manifest) -> dict:
    model = manifest.header.model
    return {"path": str(run), "model": model.get("path"), "architecture": model.get("architecture")}


def compare_summary(
    runs: tuple[Path, Path],
    manifests: list[Manifest],
    counts: DocumentCounts,
    per_doc: PerDocument,
    options: CompareOptions,
    by: tuple[str, ...],
) -> dict:
    """summary.json: the runs, the document counts, median char_coverage and Spearman with intervals,
    the options (``by``: the ``--by`` fields without repeats) and what each interval is."""
    keys = np.concatenate(per_doc.keys)
    resampling = options.resampling
    return {
        "run_a": _run_facts(runs[0], manifests[0]),
        "run_b": _run_facts(runs[1], manifests[1]),
        "documents": asdict(counts),
        "char_coverage": _median(np.concatenate(per_doc.coverage), keys, resampling),
        "spearman": _median(np.concatenate(per_doc.spearman), keys, resampling),
        "options": {
            "by": list(by),
            "top_k": options.top_k,
            "standardise": options.standardise,
            "casefold": options.casefold,
            "min_docs": options.min_docs,
            "bootstrap": resampling.replicates,
            "seed": resampling.seed,
        },
        "intervals": {
            "words.parquet delta_ci_low, delta_ci_high": "paired: both runs' means from the same resampled "
            f"documents; delta = mean_b - mean_a; {resampling.describe()}",
        },
    }
