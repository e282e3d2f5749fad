"""``--no-default-system-prompt`` through a template that can drop its default system prompt (a tiny
Llama with ``DEFAULT_PROMPT_TEMPLATE``), and the system-prompt flags in ``evaluate``."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from normxlogit.transforms.layout import DOCUMENTS, MANIFEST_FILE

CHATS = [
    {
        "id": "c1",
        "messages": [
            {"role": "user", "content": "what is the capital of france ?"},
            {"role": "assistant", "content": "paris is the capital ."},
        ],
    },
    {
        "id": "c2",
        "messages": [
            {"role": "system", "content": "be brief ."},
            {"role": "user", "content": "name a color ."},
            {"role": "assistant", "content": "blue ."},
        ],
    },
]
DEFAULT = "You are a tiny test model"


def documents(out) -> dict[str, dict]:
    return {d["doc_id"]: d for d in pq.read_table(out / DOCUMENTS.folder).to_pylist()}


def test_no_default_system_prompt_uses_the_templates_variable(
    cli, default_prompt_chat_lm, write_jsonl, tmp_path, run_files
):
    src = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    args = ["--model", default_prompt_chat_lm, "--messages-field", "messages", "--id-field", "id"]
    assert cli.annotate(src, *args, "--output", tmp_path / "default") == 0
    before = documents(tmp_path / "default")
    assert {k: d["template_system_prompt"] for k, d in before.items()} == {"c1": True, "c2": False}
    assert DEFAULT in before["c1"]["text"]

    assert cli.annotate(src, *args, "--output", tmp_path / "dropped", "--no-default-system-prompt") == 0
    after = documents(tmp_path / "dropped")
    assert {k: d["template_system_prompt"] for k, d in after.items()} == {"c1": False, "c2": False}
    assert after["c1"]["text"].startswith("[unused1]user\nwhat is the capital of france ?[unused2]")
    assert after["c2"]["text"] == before["c2"]["text"]  # its own system message: nothing to drop
    target = run_files.manifest(tmp_path / "dropped")["target"]
    assert target["no_default_system_prompt"] is True
    assert target["system_prompt_variable"] == "use_default_system_prompt"


def test_plain_response_runs_have_a_null_template_system_prompt(cli, chatml_lm, write_jsonl, tmp_path):
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "r", "text": "a question ?", "answer": "an answer ."}])
    args = [
        "--model",
        chatml_lm,
        "--response-field",
        "answer",
        "--id-field",
        "id",
        "--output",
        tmp_path / "o",
    ]
    assert cli.annotate(src, *args) == 0
    assert documents(tmp_path / "o")["r"]["template_system_prompt"] is None


def test_evaluate_renders_chats_with_the_system_prompt(cli, default_prompt_chat_lm, write_jsonl, tmp_path):
    src = write_jsonl(tmp_path / "chats.jsonl", CHATS[:1])
    out = tmp_path / "eval"
    args = ["--model", default_prompt_chat_lm, "--messages-field", "messages", "--id-field", "id"]
    args += ["--methods", "normxlogit,random", "--bootstrap", "20", "--output", out]
    assert cli.evaluate(src, *args, "--system-prompt", "be brief .") == 0
    faithfulness = json.loads((out / MANIFEST_FILE).read_text())["faithfulness"]
    assert faithfulness["system_prompt"] == "be brief ."
    assert faithfulness["no_default_system_prompt"] is False
