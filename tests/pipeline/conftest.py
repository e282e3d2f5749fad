"""Fixtures for the pipeline's tests: the tiny causal LM with either of two chat templates
(``chatml_lm``, ``cls_sep_chat_lm``), free loopback ports, the helper scripts that write runs
(``synthetic``, ``bpe``, loaded by path), JSON Lines inputs, the documents embedded in a report page,
and a page in headless Chromium (``browser``, driven over the DevTools protocol)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[2]

# A small ChatML-like template (SmolLM2's shape) for the tiny model's BERT tokenizer: [unused1] opens
# a turn, [unused2] ends it; both are added as special tokens.
CHATML_TEMPLATE = (
    "{% for m in messages %}[unused1]{{ m['role'] }}\n{{ m['content'] }}[unused2]\n{% endfor %}"
    "{% if add_generation_prompt %}[unused1]assistant\n{% endif %}"
)
# ``CHATML_TEMPLATE`` with a default system prompt (as SmolLM2's writes one) that the template's own
# variable ``use_default_system_prompt`` switches off (as Llama 2's templates read it).
DEFAULT_PROMPT_TEMPLATE = (
    "{% set use_default = use_default_system_prompt if use_default_system_prompt is defined else true %}"
    "{% if use_default and messages[0]['role'] != 'system' %}"
    "[unused1]system\nYou are a tiny test model[unused2]\n{% endif %}" + CHATML_TEMPLATE
)
# A template of the BERT tokenizer's own markers: [CLS] opens a turn, [SEP] ends it.
CLS_SEP_TEMPLATE = (
    "{% for m in messages %}[CLS] {{ m['role'] }} : {{ m['content'] }} [SEP]\n{% endfor %}"
    "{% if add_generation_prompt %}[CLS] assistant : {% endif %}"
)


def _with_chat_template(model: Path, folder: Path, template: str, special_tokens: list[str]) -> Path:
    """A copy of ``model`` in ``folder`` whose tokenizer has ``template`` (and ``special_tokens``)."""
    shutil.copytree(model, folder, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = template
    if special_tokens:
        tok.add_special_tokens({"additional_special_tokens": special_tokens})
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def chatml_lm(tiny_causal_lm, tmp_path_factory) -> Path:
    """The tiny random Llama (``tiny_causal_lm``) with ``CHATML_TEMPLATE`` on its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-chatml-lm")
    return _with_chat_template(tiny_causal_lm, folder, CHATML_TEMPLATE, ["[unused1]", "[unused2]"])


@pytest.fixture(scope="session")
def default_prompt_chat_lm(tiny_causal_lm, tmp_path_factory) -> Path:
    """The tiny random Llama with ``DEFAULT_PROMPT_TEMPLATE``: a default system prompt it can drop."""
    folder = tmp_path_factory.mktemp("tiny-default-prompt-lm")
    return _with_chat_template(tiny_causal_lm, folder, DEFAULT_PROMPT_TEMPLATE, ["[unused1]", "[unused2]"])


@pytest.fixture(scope="session")
def cls_sep_chat_lm(tiny_causal_lm, tmp_path_factory) -> Path:
    """The tiny random Llama (``tiny_causal_lm``) with ``CLS_SEP_TEMPLATE`` on its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-cls-sep-chat-lm")
    return _with_chat_template(tiny_causal_lm, folder, CLS_SEP_TEMPLATE, [])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """``free_port()``: a TCP port free on the loopback interface now."""
    return _free_port


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def synthetic():
    """``benchmarks/synthetic_run.py`` as a module: finished runs written without a model."""
    return _load("synthetic_run", REPO / "benchmarks" / "synthetic_run.py")


@pytest.fixture(scope="session")
def bpe():
    """``tests/pipeline/bpe_run.py`` as a module: a byte-level BPE classifier and a run annotated by it."""
    return _load("bpe_run", Path(__file__).with_name("bpe_run.py"))


def _write_jsonl(path: Path, rows: list, extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in extra_lines)
    )
    return path


@pytest.fixture(scope="session")
def write_jsonl() -> Callable[..., Path]:
    """``write_jsonl(path, rows, extra_lines=())``: the rows as JSON Lines, then the extra lines as
    they are (malformed records); returns ``path``."""
    return _write_jsonl


def _report_docs(page: Path | str) -> list[dict]:
    html = page.read_text(encoding="utf-8") if isinstance(page, Path) else page
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))["docs"]


@pytest.fixture(scope="session")
def report_docs() -> Callable[[Path | str], list[dict]]:
    """``report_docs(page)``: the documents embedded in a report page (its ``report-data`` JSON);
    ``page`` is the page's path or its HTML."""
    return _report_docs


# --- headless Chromium, for the report page's tests ----------------------------------------

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,1600",
]


class DevTools:
    """A minimal DevTools-protocol client over one page target's websocket (RFC 6455 framing)."""

    def __init__(self, ws_url: str):
        host, _, path = ws_url.removeprefix("ws://").partition("/")
        name, port = host.split(":")
        self._sock = socket.create_connection((name, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self._sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101"), response[:200]
        self._buffer = response.split(b"\r\n\r\n", 1)[1]
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools websocket closed")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _receive(self) -> dict:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            message += self._read(length)
            if first & 0x80:  # FIN
                return json.loads(message)

    def call(self, method: str, **params) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        payload = json.dumps({"id": self._next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
            if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n)
        )  # fmt: skip
        self._sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        self._sock.close()

    def requested_urls(self) -> list[str]:
        """The URLs the page asked for (Network.requestWillBeSent events)."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def script_errors(self) -> list[dict]:
        """The page's uncaught script exceptions (Runtime.exceptionThrown events)."""
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def save_screenshot(self, name: str, height: int = 3200) -> Path:
        """The top ``height`` pixels of the page as a PNG under test-artifacts/."""
        ARTIFACTS.mkdir(exist_ok=True)
        height = min(height, self.evaluate("document.documentElement.scrollHeight"))
        self.evaluate("window.scrollTo(0, 0)")
        # A viewport as tall as the shot: Chromium does not paint below the viewport reliably.
        self.call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False
        )
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path = ARTIFACTS / name
        path.write_bytes(png)
        return path

    def save_documents_screenshot(self, name: str) -> Path:
        """A screenshot of the documents section alone (the sections above it hidden meanwhile)."""
        others = "document.querySelectorAll('main > section:not(#documents)')"
        self.evaluate(f"{others}.forEach(s => s.hidden = true)")
        path = self.save_screenshot(name)
        self.evaluate(f"{others}.forEach(s => s.hidden = false)")
        return path


@pytest.fixture
def browser(tmp_path):
    """Open a page in a fresh headless Chromium; yields ``open(path) -> DevTools``. Skips where
    chromium is not installed."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (make system-deps)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[DevTools] = []

    def open_page(page: Path) -> DevTools:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as fh:
            target = next(t for t in json.load(fh) if t["type"] == "page")
        tools = DevTools(target["webSocketDebuggerUrl"])
        clients.append(tools)
        for domain in ("Page", "Network", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=page.resolve().as_uri())
        deadline = time.monotonic() + 30
        while not tools.evaluate("document.readyState === 'complete'"):
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.1)
        return tools

    yield open_page
    for client in clients:
        client.close()
    proc.terminate()
    proc.wait(timeout=30)
