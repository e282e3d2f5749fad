"""The command line: help texts, argument splitting, layer-wise output columns."""

from __future__ import annotations

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
