"""The report page in headless Chromium, driven over the DevTools protocol (stdlib websocket client).

Checks what a reader sees: the documents are rendered and coloured, the search box, filters and
sort work, a hostile corpus renders as text with no script run and no request leaving the page,
bidi controls and zero-width characters show as escapes without moving any neighbouring label or
number, and characters split across byte-level BPE tokens show once. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from normxlogit.display import REVEALED, reveal
from normxlogit.pipeline.report.assets import js_char_class
from normxlogit.pipeline.report.build import write_report

REPO = Path(__file__).resolve().parents[2]
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
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (make system-deps)"),
]


def _synthetic():
    spec = importlib.util.spec_from_file_location("synthetic_run", REPO / "benchmarks" / "synthetic_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture
def browser(tmp_path):
    """Open a page in a fresh headless Chromium; yields ``open(path) -> DevTools``."""
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


def save_screenshot(tools: DevTools, name: str, height: int = 3200) -> Path:
    """The top ``height`` pixels of the page as a PNG under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = min(height, tools.evaluate("document.documentElement.scrollHeight"))
    tools.evaluate("window.scrollTo(0, 0)")
    # A viewport as tall as the shot: Chromium does not paint below the viewport reliably.
    tools.call(
        "Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False
    )
    png = base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"])
    path = ARTIFACTS / name
    path.write_bytes(png)
    return path


def save_documents_screenshot(tools: DevTools, name: str) -> Path:
    """A screenshot of the documents section alone (the sections above it hidden meanwhile)."""
    others = "document.querySelectorAll('main > section:not(#documents)')"
    tools.evaluate(f"{others}.forEach(s => s.hidden = true)")
    path = save_screenshot(tools, name)
    tools.evaluate(f"{others}.forEach(s => s.hidden = false)")
    return path


def requested_urls(tools: DevTools) -> list[str]:
    return [
        e["params"]["request"]["url"] for e in tools.events if e.get("method") == "Network.requestWillBeSent"
    ]


def script_errors(tools: DevTools) -> list[dict]:
    return [e for e in tools.events if e.get("method") == "Runtime.exceptionThrown"]


def test_report_renders_colours_and_filters(tmp_path, browser):
    run = tmp_path / "run"
    _synthetic().write_synthetic_run(run, 300)
    page = write_report(run, tmp_path / "report.html", sample_size=120)
    tools = browser(page)

    assert tools.evaluate("document.querySelectorAll('article.doc').length") == 120
    assert tools.evaluate("document.getElementById('shown-count').textContent") == "120"
    assert tools.evaluate("document.getElementById('docs-annotated').textContent") == "300"
    red = tools.evaluate(
        "getComputedStyle(document.querySelector('#docs .tok.c20')).backgroundColor"
    )  # the strongest support in a document is always at the top of the scale
    assert red == "rgb(178, 24, 43)"
    assert tools.evaluate("document.querySelector('#docs .tok').title").startswith("norm ")

    tools.evaluate("document.getElementById('search').focus()")
    tools.call("Input.insertText", text="part-1.jsonl#L2")
    visible = tools.evaluate("[...document.querySelectorAll('article.doc')].filter(a => !a.hidden).length")
    expected = tools.evaluate(
        "[...document.querySelectorAll('article.doc .doc-id')]"
        ".filter(e => e.textContent.toLowerCase().includes('part-1.jsonl#l2')).length"
    )
    assert 0 < visible == expected < 120
    assert tools.evaluate("document.getElementById('shown-count').textContent") == str(visible)
    tools.evaluate("document.getElementById('search').value = ''")
    tools.evaluate("document.getElementById('filter-prediction').selectedIndex = 1")
    tools.evaluate("document.getElementById('filter-prediction').dispatchEvent(new Event('change'))")
    chosen = tools.evaluate("document.getElementById('filter-prediction').value")
    shown = tools.evaluate("[...document.querySelectorAll('article.doc')].filter(a => !a.hidden).length")
    assert shown == sum(d["prediction"] == chosen for d in _embedded_docs(page))
    assert script_errors(tools) == []
    tools.evaluate("document.getElementById('filter-prediction').selectedIndex = 0")
    tools.evaluate("document.getElementById('filter-prediction').dispatchEvent(new Event('change'))")
    assert save_screenshot(tools, "report.png").stat().st_size > 10_000


def _embedded_docs(page: Path) -> list[dict]:
    text = page.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">'
    )
    return json.loads(text[start : text.index("</script>", start)])["docs"]


def test_hostile_corpus_renders_as_text(tmp_path, browser):
    synthetic = _synthetic()
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 200, hostile=True)
    page = write_report(run, tmp_path / "hostile.html", sample_size=200)
    tools = browser(page)

    assert tools.evaluate("document.title") == "normxlogit report"
    assert tools.evaluate("typeof window.pwned") == "undefined"
    assert tools.evaluate("document.querySelectorAll('article.doc').length") == 200
    # Nothing from the corpus became an element: no images, links, iframes or extra scripts.
    assert tools.evaluate("document.querySelectorAll('img, iframe, object, embed, a').length") == 0
    assert tools.evaluate("document.scripts.length") == 2  # the JSON block and the page's own script
    body = tools.evaluate("document.body.innerText")
    for text in synthetic.HOSTILE[:5]:  # markup, script, entities and links render as their text
        assert text in body
    assert "😀👍🏽" in body and "שלום עולם" in body
    hrefs = tools.evaluate("[...document.querySelectorAll('[src],[href]')].map(e => e.src || e.href)")
    assert hrefs == []
    assert [u for u in requested_urls(tools) if not u.startswith(("file:", "data:"))] == []
    assert script_errors(tools) == []
    save_screenshot(tools, "report-hostile.png")


def _bpe():
    spec = importlib.util.spec_from_file_location("bpe_run", Path(__file__).with_name("bpe_run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# In the page: the text nodes that hold a raw hidden character (display.REVEALED), except the
# FSI..PDI pair the page itself wraps around each filter option's label.
RAW_HIDDEN = """(() => {
  const re = __HIDDEN__;
  const found = [];
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let t = n.textContent;
    if (n.parentElement.tagName === "OPTION") { t = t.replace(/^\\u2068([^]*)\\u2069 \\(\\d+\\)$/u, "$1"); }
    re.lastIndex = 0;
    if (re.test(t)) { found.push(n.parentElement.tagName + ": " + JSON.stringify(t)); }
  }
  return found;
})()""".replace("__HIDDEN__", js_char_class(REVEALED, flags="u"))

# In the page: for each container matched by a selector, its child nodes (text and elements) must
# be laid out in document order: each starts on a later line than the previous one ends, or on
# that line to its right. Right-to-left text or a bidi control that leaked out of its element would draw a
# neighbour (a label, a number, the next field) before it.
OUT_OF_ORDER = """((selector) => {
  function boxes(node) {
    if (node.nodeType === Node.TEXT_NODE) {
      if (!node.textContent.trim()) { return []; }
      const range = document.createRange();
      range.selectNodeContents(node);
      return [...range.getClientRects()];
    }
    return node.nodeType === Node.ELEMENT_NODE ? [...node.getClientRects()] : [];
  }
  const found = [];
  document.querySelectorAll(selector).forEach((container) => {
    let previous = null;
    container.childNodes.forEach((node) => {
      const rects = boxes(node).filter((r) => r.width > 0);
      if (!rects.length) { return; }
      const first = rects[0];
      if (previous && first.top < previous.bottom - 1 && first.left < previous.right - 1) {
        found.push(container.textContent.slice(0, 80) + " | at " + (node.textContent || "").slice(0, 40));
      }
      previous = rects[rects.length - 1];
    });
  });
  return found;
})"""
NEIGHBOURS = [
    "article.doc header",  # id, source, prediction, target
    "article.doc header > span",  # "prediction: " label, value, "(p=...)"
    ".top-tokens",  # each token, then its score
    "#dead-letters td.where",  # file name, then line
    "#run p",
    "#corpus summary",
]


def test_bidi_and_zero_width_text_cannot_move_its_neighbours(tmp_path, browser):
    synthetic = _synthetic()
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 60, hostile=True, documents=True)
    page = write_report(run, tmp_path / "bidi.html", sample_size=60)
    tools = browser(page)
    tools.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")

    # The checker sees a leak: a raw RLO in an element that does not isolate it draws the next
    # element's text before it.
    tools.evaluate(
        "(() => { const p = document.createElement('p'); p.id = 'probe';"
        "p.innerHTML = '<span>x \\u202eleak</span><span>(3)</span>'; document.body.appendChild(p); })()"
    )
    assert tools.evaluate(f"{OUT_OF_ORDER}('#probe')") != []
    assert tools.evaluate(RAW_HIDDEN) != []
    tools.evaluate("document.getElementById('probe').remove()")

    assert tools.evaluate(RAW_HIDDEN) == []
    for selector in NEIGHBOURS:
        assert tools.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length") > 0, selector
        assert tools.evaluate(f"{OUT_OF_ORDER}({json.dumps(selector)})") == [], selector
    body = tools.evaluate("document.body.innerText")
    for hostile in synthetic.HOSTILE[-2:]:
        assert reveal(hostile, one_line=True) in body  # ids and file names: each hidden one as an escape
    assert reveal(synthetic.HOSTILE_LABELS[1]) in body and "neg\\u202eative" in body
    # Filter options are text only: revealed, and isolated by FSI..PDI so the count stays after it.
    options = tools.evaluate("[...document.querySelectorAll('#filter-prediction option')].map(o => o.text)")
    assert '\u2068"neg\\u202eative"\u2069 (' in "".join(options)
    # The document text is the documents table's text, each hidden character revealed in place.
    docs = {d["id"]: d for d in _embedded_docs(page)}
    shown = tools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('article.doc')].map("
        "a => [a.doc.id, a.querySelector('.text').textContent]))"
    )
    texts = {i: "".join(g + t for g, t in zip(d["g"], d["t"])) for i, d in docs.items()}
    assert shown == {i: reveal(t) for i, t in texts.items()}
    escapes = tools.evaluate("[...document.querySelectorAll('.text .esc')].map(e => e.textContent)")
    assert {"\\u200d", "\\u202e", "\\u2067", "\\u061c", "\\ufeff"} <= set(escapes)
    assert script_errors(tools) == []
    tools.evaluate("document.getElementById('search').focus()")
    save_screenshot(tools, "report-bidi.png")
    tools.call("Input.insertText", text="zwj-")
    save_documents_screenshot(tools, "report-bidi-documents.png")
    # A reader can search for a hidden character by the escape the page shows for it.
    tools.evaluate("document.getElementById('search').value = ''")
    tools.call("Input.insertText", text="\\u202eevil")
    found = tools.evaluate("[...document.querySelectorAll('article.doc')].filter(a => !a.hidden).length")
    assert found == sum("\u202eevil" in t for t in texts.values()) > 0


def test_misclassified_filter_and_confidence_sort(tmp_path, browser):
    run = tmp_path / "run"
    _synthetic().write_synthetic_run(run, 150, misclassified=0.3, layers=(1, 3))
    page = write_report(run, tmp_path / "sort.html", sample_size=100)
    docs = _embedded_docs(page)
    tools = browser(page)
    visible = "[...document.querySelectorAll('article.doc')].filter(a => !a.hidden)"
    order = "document.getElementById('sort-order')"

    assert tools.evaluate(f"{visible}.map(a => a.doc.id)") == [d["id"] for d in docs]
    wrong = [d["id"] for d in docs if d["target"] != d["prediction"]]
    assert 0 < len(wrong) < len(docs)
    assert tools.evaluate("document.getElementById('misclassified-count').textContent") == str(len(wrong))
    tools.evaluate("document.getElementById('filter-misclassified').click()")
    assert tools.evaluate(f"{visible}.map(a => a.doc.id)") == wrong
    assert tools.evaluate("document.getElementById('shown-count').textContent") == str(len(wrong))
    assert tools.evaluate(
        f"{visible}.every(a => a.querySelector('header .warn').textContent === 'misclassified')"
    )

    probs = {d["id"]: d["prob"] for d in docs}
    for value, reverse in (("prob-asc", False), ("prob-desc", True)):
        tools.evaluate(f"{order}.value = '{value}'; {order}.dispatchEvent(new Event('change'))")
        ids = tools.evaluate(f"{visible}.map(a => a.doc.id)")
        assert ids == sorted(wrong, key=lambda i: (-probs[i] if reverse else probs[i], wrong.index(i)))
        # The order is the page order (what a reader scrolls), not only the DOM order.
        tops = tools.evaluate(f"{visible}.map(a => a.getBoundingClientRect().top)")
        assert tops == sorted(tops)
    save_documents_screenshot(tools, "report-misclassified-by-confidence.png")
    tools.evaluate("document.getElementById('filter-misclassified').click()")
    all_ids = tools.evaluate(f"{visible}.map(a => a.doc.id)")
    assert all_ids == sorted(probs, key=lambda i: (-probs[i], [d["id"] for d in docs].index(i)))
    tools.evaluate(f"{order}.value = 'sample'; {order}.dispatchEvent(new Event('change'))")
    assert tools.evaluate(f"{visible}.map(a => a.doc.id)") == [d["id"] for d in docs]
    assert "layers 1, 3, in that order" in tools.evaluate("document.getElementById('layers').textContent")
    assert script_errors(tools) == []


def test_byte_level_bpe_characters_show_once(tmp_path, browser):
    bpe = _bpe()
    run = bpe.annotate_bpe_run(tmp_path)
    page = write_report(run, tmp_path / "bpe.html")
    tools = browser(page)
    shown = tools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('article.doc')].map("
        "a => [a.doc.id, a.querySelector('.text').textContent]))"
    )
    assert shown == {i: reveal(t) for i, t in bpe.TEXTS.items()}  # "שלום עולם", not "ששללוום ..."
    # A letter's second byte token draws nothing: its numbers join the hover text of the first.
    first = tools.evaluate(
        "[...document.querySelectorAll('article.doc')].find(a => a.doc.id === 'he').querySelector('.tok')"
        ".title"
    )
    assert first.startswith("norm ") and '\nand "ש": norm ' in first
    assert tools.evaluate(RAW_HIDDEN) == []
    for selector in NEIGHBOURS[:4]:
        assert tools.evaluate(f"{OUT_OF_ORDER}({json.dumps(selector)})") == [], selector
    assert script_errors(tools) == []
    save_documents_screenshot(tools, "report-bpe-documents.png")


def test_findings_and_comparison_sections(tmp_path, browser):
    from normxlogit.pipeline.cli import main

    synthetic = _synthetic()
    run_a = tmp_path / "a"
    synthetic.write_synthetic_run(run_a, 200, documents=True, misclassified=0.3)
    run_b = synthetic.write_rescored_copy(run_a, tmp_path / "b")
    stats, compared = tmp_path / "stats", tmp_path / "compare"
    assert main(["stats", str(run_a), "--by", "prediction", "--out", str(stats), "--bootstrap", "100"]) == 0
    assert main(["compare", str(run_a), str(run_b), "--out", str(compared), "--bootstrap", "100"]) == 0
    page = write_report(run_a, tmp_path / "findings.html", sample_size=50, stats=stats, compare=compared)
    tools = browser(page)

    shown = (
        "[...document.querySelectorAll('#findings details[open] table')].map(t => t.offsetParent !== null)"
    )
    lift_note = "document.querySelector('#findings details[open] p.by-lift').offsetParent !== null"
    assert tools.evaluate(shown) == [True] and not tools.evaluate(lift_note)  # the corpus: by mean
    whiskers = "[...document.querySelectorAll('#findings details[open] .ci .span')].map(e => e.offsetWidth)"
    assert all(w > 0 for w in tools.evaluate(whiskers))
    tools.evaluate("document.getElementById('findings-rank-lift').click()")
    assert tools.evaluate(shown) == [False] and tools.evaluate(lift_note)  # no lift in the corpus: a note
    tools.evaluate("document.querySelectorAll('#findings details').forEach(d => d.open = true)")
    lift_tables = (
        "[...document.querySelectorAll('#findings table.by-lift')].filter(t => t.offsetParent).length"
    )
    assert tools.evaluate(lift_tables) == 3  # one per prediction
    tools.evaluate("document.getElementById('findings-rank-mean').click()")
    assert tools.evaluate("document.querySelectorAll('#side-by-side .tok').length") > 0
    assert tools.evaluate("document.querySelectorAll('img, iframe, object, embed, a').length") == 0
    assert [u for u in requested_urls(tools) if not u.startswith(("file:", "data:"))] == []
    assert script_errors(tools) == []
    others = "document.querySelectorAll('main > section:not(#findings):not(#comparison)')"
    tools.evaluate(f"{others}.forEach(s => s.hidden = true)")
    assert save_screenshot(tools, "report-findings-comparison.png").stat().st_size > 10_000
