"""The report's colour scale relative to each document's median score, and the page's toggle back to
the absolute scale (the data, and the page in headless Chromium).

A classifier whose scores are all positive (15 to 45, as a user saw) is the case it is for: on the
absolute scale every token is red; on the relative one tokens below the median are blue.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from normxlogit.display import LEVELS, color_levels
from normxlogit.pipeline.report.build import write_report
from normxlogit.pipeline.report.relative_scale import SPREAD_QUANTILE, relative_scale
from normxlogit.transforms.layout import ATTRIBUTIONS

REVIEWS = [
    {"id": "r1", "text": "A wonderful, heartfelt film with great acting."},
    {"id": "r2", "text": "Dull plot and wooden dialogue; I left early."},
    {"id": "r3", "text": "Not bad at all, not bad at all."},
]


def test_relative_scale_centres_on_the_median_and_clips_outliers():
    scores = np.r_[np.linspace(15, 45, 31), 1000.0]  # all positive, one outlier
    scale = relative_scale(scores)
    assert scale.center == pytest.approx(np.median(scores))
    assert scale.spread == pytest.approx(np.quantile(np.abs(scores - scale.center), SPREAD_QUANTILE))
    assert scale.spread < 20  # the outlier does not stretch the scale (its largest distance is 969)
    levels = scale.levels(scores)
    assert (np.diff(levels) >= 0).all() and levels[0] == 0 and levels[-1] == 2 * LEVELS  # outlier clipped
    assert (levels[scores < scale.center] <= LEVELS).all() and (levels[scores > scale.center] >= LEVELS).all()
    assert (levels < LEVELS).sum() == 15 and (levels > LEVELS).sum() == 15  # 30, 31: white
    assert (color_levels(scores, np.abs(scores).max()) >= LEVELS).all()  # absolute: no token is blue

    assert relative_scale(np.full(5, 30.0)).levels(np.full(5, 30.0)).tolist() == [LEVELS] * 5
    for empty in (relative_scale(np.array([])), relative_scale(np.array([np.nan]))):
        assert (empty.center, empty.spread) == (0.0, 1.0)
    # Most tokens at the median: the quantile is 0, so the largest distance is the scale's end.
    sparse = relative_scale(np.r_[np.zeros(30), 4.0])
    assert (sparse.center, sparse.spread) == (0.0, 4.0)


def shifted_copy(run: Path, out: Path, by: float) -> Path:
    """``run`` copied to ``out`` with every score moved by ``by`` (all positive, as a classifier's can be)."""
    shutil.copytree(run, out)
    for path in ATTRIBUTIONS.paths(out):
        table = pq.read_table(path)
        at = table.schema.get_field_index("score")
        moved = (np.abs(table["score"].to_numpy()) + by).astype(np.float32)
        pq.write_table(table.set_column(at, table.schema.field(at), pa.array(moved)), path)
    return out


@pytest.fixture
def positive_run(tmp_path, synthetic) -> Path:
    synthetic.write_synthetic_run(tmp_path / "plain", 40, documents=True)
    return shifted_copy(tmp_path / "plain", tmp_path / "positive", 15.0)


def test_page_documents_carry_both_scales(positive_run, tmp_path, report_docs):
    for d in report_docs(write_report(positive_run, tmp_path / "p.html")):
        s = np.array(d["s"])
        scale = relative_scale(s)
        assert d["med"] == pytest.approx(scale.center, abs=1e-3)
        assert d["spread"] == pytest.approx(scale.spread, rel=1e-3)
        assert min(d["c"]) >= LEVELS  # absolute: every token on the red side
        assert min(d["cm"]) < LEVELS < max(d["cm"])  # relative: both sides
        np.testing.assert_array_equal(d["cm"], scale.levels(s))


CLASSES = (
    "[...document.querySelectorAll('article.doc')]"
    ".map(a => [...a.querySelectorAll('.tok')].map(t => t.className))"
)


@pytest.mark.slow
def test_colour_toggle_restores_the_absolute_scale(positive_run, tmp_path, browser, report_docs):
    page = write_report(positive_run, tmp_path / "positive.html")
    docs = report_docs(page)
    tools = browser(page)
    legends = "[...document.querySelectorAll('#documents .legend')].map(p => p.offsetParent !== null)"
    notes = "[...document.querySelectorAll('.scale-note')].map(e => e.textContent)"

    relative = tools.evaluate(CLASSES)
    assert relative == [[f"tok c{v}" for v in d["cm"]] for d in docs]
    assert tools.evaluate(legends) == [True, False]
    assert tools.evaluate(notes)[0].startswith("colours: median ")
    tools.save_documents_screenshot("report-positive-scores-relative.png")

    tools.evaluate("document.getElementById('colour-scale').value = 'absolute'")
    tools.evaluate("document.getElementById('colour-scale').dispatchEvent(new Event('change'))")
    absolute = tools.evaluate(CLASSES)
    assert absolute == [[f"tok c{v}" for v in d["c"]] for d in docs] != relative
    blue = ", ".join(f"#docs .tok.c{i}" for i in range(LEVELS))
    assert (
        tools.evaluate(f"document.querySelectorAll('{blue}').length") == 0
    )  # all positive: nothing blue on the absolute scale
    assert tools.evaluate(legends) == [False, True]
    note = tools.evaluate(notes)[0]
    assert note.startswith("colour scale \u00b1") and float(note[14:]) == pytest.approx(
        docs[0]["scale"], rel=1e-3
    )
    tools.save_documents_screenshot("report-positive-scores-absolute.png")

    tools.evaluate("document.getElementById('colour-scale').value = 'relative'")
    tools.evaluate("document.getElementById('colour-scale').dispatchEvent(new Event('change'))")
    assert tools.evaluate(CLASSES) == relative
    assert tools.script_errors() == []


@pytest.mark.slow
def test_screenshot_of_a_classifier_run(tmp_path, tiny_classifier, cli, write_jsonl, browser, report_docs):
    src = write_jsonl(tmp_path / "reviews.jsonl", REVIEWS)
    out = tmp_path / "out"
    assert cli.annotate(src, "--output", out, "--model", tiny_classifier, "--id-field", "id") == 0
    page = write_report(out, tmp_path / "classifier.html")
    tools = browser(page)
    assert tools.evaluate(CLASSES) == [[f"tok c{v}" for v in d["cm"]] for d in report_docs(page)]
    assert tools.evaluate("document.querySelectorAll('#corpus h3')[0].textContent") == "Predictions"
    assert tools.script_errors() == []
    assert tools.save_screenshot("report-classifier-run.png").stat().st_size > 10_000
