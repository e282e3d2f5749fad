"""Nothing lost, on any runner: a run's counts come from the files it wrote, checked against the
runner's counters; a run whose files miss records fails and writes no manifest.

Unit tests of ``pipeline/reconcile.py``, fault injection on the local runner (a writer that
silently loses its last shard, one that drops a dead letter), the refusal of runners known to lose
records, and the real DaskRunner on a dask.distributed cluster on loopback with that refusal
lifted (the reconciliation alone must catch it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems

from normxlogit.pipeline import runners
from normxlogit.pipeline.reconcile import LostRecordsError, Written, list_parts, reconcile
from normxlogit.transforms import writers
from normxlogit.transforms.counters import RunnerCounts
from normxlogit.transforms.layout import DOCUMENTS, MANIFEST_FILE, RUNNING_FILE, OutputFiles

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "news.jsonl"
DEMO_RECORDS = 20


def _written(done=3, errors=1, tokens=30, summarized=3) -> Written:
    return Written(OutputFiles(), done=done, errors=errors, tokens=tokens, summarized=summarized)


def _counted(read=4, docs=3, errors=1, tokens=30, skipped=0, unparsed=0) -> RunnerCounts:
    totals = {
        "records_read": read - unparsed,
        "docs_annotated": docs,
        "dead_letters": errors,
        "tokens": tokens,
        "files_read": 1,
    }
    if skipped:
        totals["skipped_empty"] = skipped
    if unparsed:
        totals["dead_letter_malformed_json"] = unparsed
    return RunnerCounts(totals)


def _never_called():
    raise AssertionError("the inputs are counted only when the runner reports no counters")


def test_counts_come_from_the_files_when_the_runner_agrees():
    counts = reconcile(
        "R", "docs_annotated", _counted(read=5, skipped=1, unparsed=1), _written(), _never_called, 1
    )
    assert (
        counts.records_read,
        counts.docs_annotated,
        counts.skipped_empty,
        counts.errors,
        counts.tokens,
    ) == (
        5,
        3,
        1,
        1,
        30,
    )
    assert counts.reconciles


@pytest.mark.parametrize(
    "written, figure",
    [
        (_written(done=2, summarized=2), "annotated documents: the runner counted 3, the files hold 2"),
        (_written(errors=0), "dead letters: the runner counted 1, the files hold 0"),
        (_written(tokens=29), "token rows: the runner counted 30, the files hold 29"),
        (_written(summarized=None), "annotated documents in summaries/groups.jsonl: the runner counted 3"),
    ],
    ids=["documents", "dead-letters", "tokens", "summary"],
)
def test_a_file_short_of_the_runner_count_fails_naming_both_figures(written, figure):
    with pytest.raises(LostRecordsError) as err:
        reconcile("SomeRunner", "docs_annotated", _counted(), written, _never_called, 1)
    assert str(err.value).startswith("the runner SomeRunner lost records: ")
    assert figure in str(err.value)


def test_records_read_must_equal_what_the_files_account_for():
    # The readers met 6 records; 3 documents + 1 dead letter + 0 skipped are in the files.
    with pytest.raises(
        LostRecordsError, match=r"records read: the readers counted 6, the files account for 4"
    ):
        reconcile("R", "docs_annotated", _counted(read=6), _written(), _never_called, 1)


def test_every_input_file_must_have_been_read():
    with pytest.raises(LostRecordsError, match=r"input files read: the readers counted 1 of 2$"):
        reconcile("R", "docs_annotated", _counted(), _written(), _never_called, 2)


def test_attempted_only_counters_are_named_when_they_differ():
    counted = RunnerCounts({**_counted().totals, "records_read": 8}, committed=False)
    with pytest.raises(
        LostRecordsError, match=r"attempted counters only: a bundle it retried is counted twice"
    ):
        reconcile("FlinkRunner", "docs_annotated", counted, _written(), _never_called, 1)


def test_a_runner_without_counters_fails_unless_the_inputs_are_empty():
    with pytest.raises(LostRecordsError) as err:
        reconcile("DaskRunner", "docs_annotated", None, _written(0, 0, 0, None), lambda: 20, 1)
    assert str(err.value) == (
        "the runner DaskRunner reported no counts, so the run cannot be checked for lost records: the "
        "inputs hold 20 records, the files hold 0 annotated documents and 0 dead letters (20 unaccounted for)"
    )
    with pytest.raises(LostRecordsError, match="files hold 3 annotated documents"):
        reconcile("R", "docs_annotated", None, _written(), lambda: 4, 1)
    with pytest.raises(LostRecordsError, match="the inputs hold an unknown number of records"):
        reconcile("R", "docs_annotated", None, _written(0, 0, 0, None), lambda: None, 1)
    empty = reconcile("R", "docs_evaluated", None, Written(OutputFiles(), 0, 0), lambda: 0, 1)
    assert (empty.records_read, empty.docs_evaluated, empty.errors) == (0, 0, 0)


def test_a_missing_shard_is_found_from_the_file_names(tmp_path):
    folder = tmp_path / DOCUMENTS.folder
    folder.mkdir()
    for shard in (0, 1, 3):
        (tmp_path / DOCUMENTS.name(shard, 4)).write_bytes(b"")
    with pytest.raises(LostRecordsError, match="incomplete set of part files.*a shard was lost"):
        list_parts(str(tmp_path), DOCUMENTS)
    (tmp_path / DOCUMENTS.name(2, 4)).write_bytes(b"")
    assert list_parts(str(tmp_path), DOCUMENTS) == [DOCUMENTS.name(s, 4) for s in range(4)]
    assert list_parts(str(tmp_path / "nothing"), DOCUMENTS) == []


@pytest.mark.parametrize("runner", ["DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_the_dask_runner_is_refused_with_what_to_use(runner, tmp_path, tiny_classifier, capsys, cli):
    out = tmp_path / "out"
    assert cli.annotate(DEMO, "--output", out, "--model", tiny_classifier, "--runner", runner) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"normxlogit annotate: error: --runner {runner} is not supported: it drops what")
    assert "Use the local runner" in err[0] and "FlinkRunner" in err[0]
    assert not out.exists()


def _assert_no_finished_run(out: Path) -> None:
    assert not (out / MANIFEST_FILE).exists()
    assert not (out / RUNNING_FILE).exists()
    assert not list(out.rglob("part-*"))


@pytest.mark.slow
def test_a_sink_that_silently_loses_its_last_shard_fails_the_run(
    tmp_path, tiny_classifier, monkeypatch, capsys, cli
):
    """The documents writer deletes the last file it finalised and reports success: no runner
    error, only the reconciliation can tell."""
    real = writers.WriteBatchParquet.expand

    def lose_last_shard(self, batches):
        names = real(self, batches)
        if "documents" not in self._prefix:
            return names
        return (
            names
            | "AllNames" >> beam.combiners.ToList()
            | "LoseLast" >> beam.FlatMap(lambda ns: FileSystems.delete([sorted(ns)[-1]]) or sorted(ns)[:-1])
        )

    monkeypatch.setattr(writers.WriteBatchParquet, "expand", lose_last_shard)
    out = tmp_path / "out"
    args = [DEMO, "--id-field", "id", "--output", out, "--model", tiny_classifier, "--docs-per-batch", 4]
    code = cli.annotate(*args, "--direct_num_workers", 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("normxlogit annotate: error: ")
    assert "lost" in err[-1] and (
        "annotated documents: the runner counted 20" in err[-1] or "a shard" in err[-1]
    )
    _assert_no_finished_run(out)


@pytest.mark.slow
def test_a_dead_letter_writer_that_drops_one_fails_the_run(
    tmp_path, tiny_classifier, monkeypatch, capsys, cli
):
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": null}\n{"id": "c", "text": 3}\n')
    real = writers.DeadLetterLines.process

    def drop_one(self, letter):
        lines = list(real(self, letter))
        return [] if letter.doc_id == "c" else lines

    monkeypatch.setattr(writers.DeadLetterLines, "process", drop_one)
    out = tmp_path / "out"
    assert cli.annotate(bad, "--id-field", "id", "--output", out, "--model", tiny_classifier) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "dead letters: the runner counted 2, the files hold 1" in err
    assert "records read: the readers counted 3, the files account for 2" in err
    _assert_no_finished_run(out)


@contextlib.contextmanager
def dask_cluster(log_dir: Path, port: int) -> Iterator[str]:
    """A dask.distributed scheduler on 127.0.0.1:``port`` and a two-process worker; yields its address."""
    distributed = pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    scheduler_cmd = [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker_cmd = [str(bin_dir / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1"]
    procs = []
    try:
        for name, cmd in (("scheduler", scheduler_cmd), ("worker", worker_cmd)):
            log = (log_dir / f"dask-{name}.log").open("w")
            procs.append(subprocess.Popen([*cmd, "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT))
            time.sleep(1 if name == "scheduler" else 0)
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        with contextlib.suppress(ValueError):  # the DaskRunner's own client, left open by Beam
            distributed.default_client().close()
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_the_real_dask_runner_loses_records_and_the_run_fails(
    tmp_path, tiny_classifier, monkeypatch, free_port
):
    """Beam's DaskRunner on a loopback dask cluster, its refusal lifted: it drops every record
    (the reader's last batch is emitted in finish_bundle) and reports no counters. The run must
    fail, name the records lost, and leave no manifest."""
    pytest.importorskip("dask")
    from apache_beam.runners.dask.dask_runner import DaskOptions  # noqa: F401  (registers its flags)

    from normxlogit.pipeline.annotate import AnnotateConfig, run_annotate
    from normxlogit.pipeline.options import pipeline_options
    from normxlogit.transforms.model_handler import ModelSpec, ScoringOptions
    from normxlogit.transforms.sources import FieldSpec

    monkeypatch.setattr(runners, "LOSSY_RUNNERS", {})
    out = tmp_path / "out"
    cfg = AnnotateConfig(
        inputs=(str(DEMO),),
        output=str(out),
        spec=ModelSpec(path=str(tiny_classifier)),
        scoring=ScoringOptions(),
        fields=FieldSpec(id_field="id"),
    )
    with dask_cluster(tmp_path, free_port()) as address:
        runner = "apache_beam.runners.dask.dask_runner.DaskRunner"
        options = pipeline_options(["--runner", runner, "--dask_client_address", address])
        started = time.monotonic()
        with pytest.raises(LostRecordsError) as err:
            run_annotate(cfg, options)
        took = time.monotonic() - started
    message = str(err.value)
    print(f"DaskRunner run: {took:.1f} s; {message}")
    assert message.startswith("the runner apache_beam.runners.dask.dask_runner.DaskRunner ")
    assert f"the inputs hold {DEMO_RECORDS} records" in message
    assert "unaccounted for" in message
    _assert_no_finished_run(out)
    assert json.loads(DEMO.read_text().splitlines()[0])["id"]  # the input itself is intact
