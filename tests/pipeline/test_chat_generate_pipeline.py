"""``annotate --generate N`` through the chat template: ``--messages-field`` answers each chat without
its last assistant message, ``--chat-template`` puts plain prompts (and ``--response-field``
answers) through the template; the progress line times generation apart from scoring. A tiny Llama
with ``CHATML_TEMPLATE`` ([unused1] opens a turn, [unused2] ends it)."""

from __future__ import annotations

import pyarrow.parquet as pq

from normxlogit.transforms.layout import DOCUMENTS

CHATS = [
    {
        "id": "answered",
        "messages": [
            {"role": "user", "content": "what is the capital of france ?"},
            {"role": "assistant", "content": "berlin ."},
        ],
    },
    {"id": "open", "messages": [{"role": "user", "content": "name a color ."}]},
    {"id": "only-answer", "messages": [{"role": "assistant", "content": "hello ."}]},
    {"id": "bad", "messages": "not a chat"},
]
PROMPTS = [{"id": "p1", "text": "what is the capital of france ?", "answer": "paris ."}]


def documents(out) -> dict[str, dict]:
    return {d["doc_id"]: d for d in pq.read_table(out / DOCUMENTS.folder).to_pylist()}


def test_generate_answers_each_chat_through_the_template(
    cli, chatml_lm, write_jsonl, tmp_path, run_files, capsys
):
    src = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    out = tmp_path / "out"
    args = ["--model", chatml_lm, "--id-field", "id", "--output", out, "--messages-field", "messages"]
    assert cli.annotate(src, *args, "--generate", "3") == 0
    docs = documents(out)
    assert set(docs) == {"answered", "open"}
    answered = docs["answered"]
    prompt = "[unused1]user\nwhat is the capital of france ?[unused2]\n[unused1]assistant\n"
    assert answered["text"] == prompt + answered["response"]
    assert "berlin" not in answered["text"]  # the record's own answer is not read
    assert 1 <= answered["n_response_tokens"] <= 3
    assert docs["open"]["text"].startswith("[unused1]user\nname a color .[unused2]\n[unused1]assistant\n")
    assert {d["template_system_prompt"] for d in docs.values()} == {False}
    letters = {d["doc_id"]: d["reason"] for d in run_files.dead_letters(out)}
    assert letters == {"only-answer": "empty_prompt", "bad": "malformed_messages"}
    target = run_files.manifest(out)["target"]
    assert (target["mode"], target["messages_field"], target["max_new_tokens"]) == ("generate", "messages", 3)
    err = capsys.readouterr().err
    assert " tokens generated in " in err and "), scored in " in err


def test_chat_template_puts_plain_prompts_through_the_template(
    cli, chatml_lm, write_jsonl, tmp_path, run_files
):
    src = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    args = ["--model", chatml_lm, "--id-field", "id", "--chat-template"]
    prompt = "[unused1]user\nwhat is the capital of france ?[unused2]\n[unused1]assistant\n"

    assert cli.annotate(src, *args, "--generate", "3", "--output", tmp_path / "gen") == 0
    generated = documents(tmp_path / "gen")["p1"]
    assert generated["text"] == prompt + generated["response"]
    assert run_files.manifest(tmp_path / "gen")["target"]["chat_template"] is True

    system = ["--generate", "3", "--system-prompt", "be brief .", "--output", tmp_path / "sys"]
    assert cli.annotate(src, *args, *system) == 0
    briefed = documents(tmp_path / "sys")["p1"]
    assert briefed["text"].startswith("[unused1]system\nbe brief .[unused2]\n" + prompt)

    assert cli.annotate(src, *args, "--response-field", "answer", "--output", tmp_path / "given") == 0
    given = documents(tmp_path / "given")["p1"]
    assert given["text"] == prompt + "paris .[unused2]"
    assert given["response"] == "paris .[unused2]"
    segments = set(pq.read_table(tmp_path / "given" / "attributions")["segment"].to_pylist())
    assert segments == {"template", "user", "response"}


def test_chat_template_needs_a_response_run(cli, chatml_lm, write_jsonl, tmp_path, capsys):
    src = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    assert cli.annotate(src, "--model", chatml_lm, "--output", tmp_path / "o", "--chat-template") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--chat-template puts a response run's prompt through the chat template: add "
                        "--generate N or --response-field FIELD")  # fmt: skip
