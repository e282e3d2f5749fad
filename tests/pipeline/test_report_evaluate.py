"""``normxlogit report RUN --evaluate DIR``: the Faithfulness section from an ``evaluate`` run."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from normxlogit.pipeline.report.intervals import with_interval


def _records() -> list[dict]:
    spec = importlib.util.spec_from_file_location(
        "rationale_corpus", Path(__file__).with_name("rationale_corpus.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sentiment_records(8, seed=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_classifier, cli) -> tuple[Path, Path]:
    """(an annotate run, an evaluate run with rationales) of the same corpus and tiny classifier."""
    folder = tmp_path_factory.mktemp("report-evaluate")
    src = folder / "reviews.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    run, evaluated = folder / "run", folder / "eval"
    assert cli.annotate(src, "--output", run, "--model", tiny_classifier, "--id-field", "id") == 0
    args = ("--model", tiny_classifier, "--id-field", "id", "--label-field", "label", "--bootstrap", 100)
    args += ("--methods", "normxlogit,random,gradient_x_input", "--rationale-field", "rationale")
    assert cli.evaluate(src, *args, "--output", evaluated) == 0
    return run, evaluated


def _report(cli, run: Path, page: Path, *extra) -> int:
    return cli.run("report", run, "--out", page, *extra)


def _section(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<section id="faithfulness">.*?</section>', text, re.S)
    assert match, "no Faithfulness section"
    return html.unescape(match.group())


def test_the_section_shows_every_method_and_metric_with_its_interval(runs, cli, tmp_path):
    run, evaluated = runs
    page = tmp_path / "report.html"
    assert _report(cli, run, page, "--evaluate", evaluated) == 0
    section = _section(page)
    summary = json.loads((evaluated / "summary.json").read_text())
    assert f"{summary['samples']:,}</b> documents" in section
    assert "faithfulness-model-differs" not in section
    for method, figures in summary["methods"].items():
        assert method in section
        for metric in ("comprehensiveness", "sufficiency"):
            for figure in ("drop", "accuracy"):
                shown = with_interval(figures[metric][figure], *figures[metric][f"{figure}_ci"])
                assert shown in section, (method, metric, figure)
        for metric, figure in figures["plausibility"].items():
            assert with_interval(figure["mean"], *figure["ci"]) in section, (method, metric)
    for base_free in ("normxlogit", "gradient_x_input"):
        diff = summary["methods"][base_free]["comprehensiveness"]["differences"]["random"]
        low, high = diff["drop_ci"]
        assert f"{diff['drop']:+.3g} [{low:+.3g}, {high:+.3g}] p=" in section
    assert 'id="faithfulness-differences"' in section and 'id="plausibility-table"' in section
    for method, figures in summary.get("ferret", {}).get("methods", {}).items():  # when evaluate has them
        assert 'id="ferret-table"' in section and "aopc_suff (lower better)" in section
        for metric, figure in figures.items():
            assert with_interval(figure["mean"], *figure["ci"]) in section, (method, metric)
    for metric, figure in summary.get("diagnosticity", {}).get("metrics", {}).items():
        assert 'id="diagnosticity-table"' in section
        assert f'<td>{metric}</td><td class="num">{with_interval(figure["mean"], *figure["ci"])}' in section
    assert "rationales in field <code>" in section and "8</b> documents (0 without a rationale" in section


def test_without_the_flag_there_is_no_section(runs, cli, tmp_path):
    page = tmp_path / "report.html"
    assert _report(cli, runs[0], page) == 0
    assert 'id="faithfulness"' not in page.read_text(encoding="utf-8")


def test_another_models_evaluation_is_flagged(runs, cli, tmp_path):
    run, evaluated = runs
    other = tmp_path / "other-eval"
    shutil.copytree(evaluated, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"]["weights_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    page = tmp_path / "report.html"
    assert _report(cli, run, page, "--evaluate", other) == 0
    assert 'id="faithfulness-model-differs"' in _section(page)


def test_a_folder_that_is_not_an_evaluate_run_is_one_line_error(runs, cli, tmp_path, capsys):
    run, _ = runs
    page = tmp_path / "report.html"
    assert _report(cli, run, page, "--evaluate", run) == 2  # an annotate run
    err = capsys.readouterr().err
    assert "holds a `normxlogit annotate` run" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _report(cli, run, page, "--evaluate", empty) == 2
    err = capsys.readouterr().err
    assert "has no manifest.json" in err and "normxlogit evaluate" in err
