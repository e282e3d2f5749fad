"""The report page in headless Chromium, driven over the DevTools protocol (stdlib websocket client).

Checks what a reader sees: the documents are rendered and coloured, the search box, filters and
sort work, a hostile corpus renders as text with no script run and no request leaving the page,
bidi controls and zero-width characters show as escapes without moving any neighbouring label or
number, and characters split across byte-level BPE tokens show once. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import json

import pytest

from normxlogit.display import REVEALED, reveal
from normxlogit.pipeline.report.assets import js_char_class
from normxlogit.pipeline.report.build import write_report

pytestmark = pytest.mark.slow  # the ``browser`` fixture skips where chromium is not installed


def test_report_renders_colours_and_filters(tmp_path, browser, synthetic, report_docs):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 300)
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
    assert shown == sum(d["prediction"] == chosen for d in report_docs(page))
    assert tools.script_errors() == []
    tools.evaluate("document.getElementById('filter-prediction').selectedIndex = 0")
    tools.evaluate("document.getElementById('filter-prediction').dispatchEvent(new Event('change'))")
    assert tools.save_screenshot("report.png").stat().st_size > 10_000


def test_hostile_corpus_renders_as_text(tmp_path, browser, synthetic):
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
    assert [u for u in tools.requested_urls() if not u.startswith(("file:", "data:"))] == []
    assert tools.script_errors() == []
    tools.save_screenshot("report-hostile.png")


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


def test_bidi_and_zero_width_text_cannot_move_its_neighbours(tmp_path, browser, synthetic, report_docs):
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
    docs = {d["id"]: d for d in report_docs(page)}
    shown = tools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('article.doc')].map("
        "a => [a.doc.id, a.querySelector('.text').textContent]))"
    )
    texts = {i: "".join(g + t for g, t in zip(d["g"], d["t"])) for i, d in docs.items()}
    assert shown == {i: reveal(t) for i, t in texts.items()}
    escapes = tools.evaluate("[...document.querySelectorAll('.text .esc')].map(e => e.textContent)")
    assert {"\\u200d", "\\u202e", "\\u2067", "\\u061c", "\\ufeff"} <= set(escapes)
    assert tools.script_errors() == []
    tools.evaluate("document.getElementById('search').focus()")
    tools.save_screenshot("report-bidi.png")
    tools.call("Input.insertText", text="zwj-")
    tools.save_documents_screenshot("report-bidi-documents.png")
    # A reader can search for a hidden character by the escape the page shows for it.
    tools.evaluate("document.getElementById('search').value = ''")
    tools.call("Input.insertText", text="\\u202eevil")
    found = tools.evaluate("[...document.querySelectorAll('article.doc')].filter(a => !a.hidden).length")
    assert found == sum("\u202eevil" in t for t in texts.values()) > 0


def test_misclassified_filter_and_confidence_sort(tmp_path, browser, synthetic, report_docs):
    run = tmp_path / "run"
    synthetic.write_synthetic_run(run, 150, misclassified=0.3, layers=(1, 3))
    page = write_report(run, tmp_path / "sort.html", sample_size=100)
    docs = report_docs(page)
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
    tools.save_documents_screenshot("report-misclassified-by-confidence.png")
    tools.evaluate("document.getElementById('filter-misclassified').click()")
    all_ids = tools.evaluate(f"{visible}.map(a => a.doc.id)")
    assert all_ids == sorted(probs, key=lambda i: (-probs[i], [d["id"] for d in docs].index(i)))
    tools.evaluate(f"{order}.value = 'sample'; {order}.dispatchEvent(new Event('change'))")
    assert tools.evaluate(f"{visible}.map(a => a.doc.id)") == [d["id"] for d in docs]
    assert "layers 1, 3, in that order" in tools.evaluate("document.getElementById('layers').textContent")
    assert tools.script_errors() == []


def test_byte_level_bpe_characters_show_once(tmp_path, browser, bpe, cli):
    run = bpe.annotate_bpe_run(cli, tmp_path)
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
    assert tools.script_errors() == []
    tools.save_documents_screenshot("report-bpe-documents.png")


def test_findings_and_comparison_sections(tmp_path, browser, synthetic):
    from normxlogit.pipeline.cli import main

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
    assert [u for u in tools.requested_urls() if not u.startswith(("file:", "data:"))] == []
    assert tools.script_errors() == []
    others = "document.querySelectorAll('main > section:not(#findings):not(#comparison)')"
    tools.evaluate(f"{others}.forEach(s => s.hidden = true)")
    assert tools.save_screenshot("report-findings-comparison.png").stat().st_size > 10_000
