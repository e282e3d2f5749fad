"""The report page's inline stylesheet and its one script (no external resources).

The script reads the embedded JSON (``<script type="application/json" id="report-data">``) and
builds every document with ``createElement`` / ``textContent``; user text never goes through
``innerHTML``, so markup in a document renders as text.
"""

from __future__ import annotations

from normxlogit.display import LEVELS, PALETTE, REVEALED, hex_color, text_color
from normxlogit.pipeline.report.paint_script import PAINT_SCRIPT

BASE_CSS = """
body{font:14px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header.top{background:#22313f;color:#fff;padding:14px 24px}
header.top h1{margin:0;font-size:20px}
main{padding:8px 24px 40px;max-width:1280px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:17px;margin:4px 0 10px}
h3{font-size:14px;margin:10px 0 6px}
table{border-collapse:collapse;font-size:12.5px}
td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.lit{font-family:ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:break-word;unicode-bidi:isolate}
td.label{min-width:10em;max-width:22em}
td.label .lit{overflow-wrap:anywhere}
.pair{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:10px 14px}
td.wide{min-width:14em;max-width:24em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:10px 24px}
.grid>div{min-width:0;overflow-x:auto}
.bar{background:#4a78a8;height:12px;display:inline-block;min-width:1px}
.hist{display:flex;align-items:flex-end;height:140px;gap:1px;border-bottom:1px solid #999}
.hist div{flex:1;background:#4a78a8;min-height:1px}
.hist div.neg{background:#2166ac}.hist div.pos{background:#b2182b}
.axis{display:flex;justify-content:space-between;font-size:12px;color:#555}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.muted{color:#666;font-size:12px}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-bottom:8px}
.controls input[type=search]{width:260px;padding:4px 6px}
article.doc{border-top:1px solid #e4e4e4;padding:8px 0}
article.doc header{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#444}
.doc-id{font-weight:700;color:#111}
.iso{unicode-bidi:isolate}
.esc{font-family:ui-monospace,monospace;font-size:85%;color:#8a1c7c;background:#f3e6f1;
border:1px solid #d9b8d4;border-radius:3px;padding:0 2px}
.text{font-size:15px;line-height:1.9;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
.tok{border-radius:3px;padding:1px 0}
.legend span{display:inline-block;width:14px;height:12px;vertical-align:middle}
.warn{color:#8a4b00}
.tok.resp{text-decoration:underline;text-decoration-thickness:2px;text-underline-offset:4px}
.tok.tmpl{background:none;color:#9a9a9a}
.tok.na{background:none;color:#9a9a9a}
.tok.pick{cursor:pointer}
.tok.sel{outline:2px solid #111;outline-offset:1px}
#docs.hide-template .tok.tmpl{display:none}
.step-note{font-size:12px;color:#333;margin:2px 0}
.step-top{margin:2px 0 6px}
.step-top caption{text-align:left}
#documents.absolute .when-relative,#documents:not(.absolute) .when-absolute{display:none}
"""

_SCRIPT_TEMPLATE = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var list = document.getElementById("docs");
  var search = document.getElementById("search");
  var byPrediction = document.getElementById("filter-prediction");
  var bySource = document.getElementById("filter-source");
  var misclassified = document.getElementById("filter-misclassified");
  var order = document.getElementById("sort-order");
  var shown = document.getElementById("shown-count");
  var colours = document.getElementById("colour-scale");
  var section = document.getElementById("documents");
  // Characters that draw nothing or reorder their neighbours (normxlogit.display.REVEALED) are
  // shown as escapes; one-line labels escape tab and newline too.
  var REVEAL = __REVEAL__;
  var REVEAL_LINE = __REVEAL_LINE__;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function fmt(x) { return x === null ? "n/a" : Number(x).toPrecision(4); }
  function hex(cp, width) { return ("0000000" + cp.toString(16)).slice(-width); }
  function escapeOf(ch) {
    var cp = ch.codePointAt(0);
    return cp < 0x100 ? "\\x" + hex(cp, 2) : cp < 0x10000 ? "\\u" + hex(cp, 4) : "\\U" + hex(cp, 8);
  }
  function revealed(s) { return String(s).replace(REVEAL_LINE, escapeOf); }
  // Append s to parent as text, each revealed character as a styled escape.
  function put(parent, s, pattern) {
    var re = pattern || REVEAL, last = 0, m, mark;
    s = String(s);
    re.lastIndex = 0;
    while ((m = re.exec(s)) !== null) {
      if (m.index > last) { parent.appendChild(document.createTextNode(s.slice(last, m.index))); }
      mark = el("span", "esc", escapeOf(m[0]));
      mark.title = "U+" + hex(m[0].codePointAt(0), 4).toUpperCase();
      parent.appendChild(mark);
      last = re.lastIndex;
    }
    if (last < s.length) { parent.appendChild(document.createTextNode(s.slice(last))); }
    return parent;
  }
  function iso(cls, s) { return put(el("span", cls ? "iso " + cls : "iso"), s, REVEAL_LINE); }
  function lit(s) { return put(el("code", "lit"), JSON.stringify(s)); }
  function labelled(label, node, after) {
    var e = el("span", null, label);
    e.appendChild(node);
    if (after) { e.appendChild(document.createTextNode(after)); }
    return e;
  }
  function addOptions(select, values) {
    var counts = {};
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || (a < b ? -1 : 1); })
      .forEach(function (v) {
        // An option holds text only: the label is revealed and wrapped in FSI..PDI, so right-to-left
        // text cannot move the count after it.
        var o = el("option", null, "\u2068" + revealed(JSON.stringify(v)) + "\u2069 (" + counts[v] + ")");
        o.value = v;
        select.appendChild(o);
      });
  }
  function tokenOf(d, i) { return d.k[i] === undefined ? d.t[i] : d.k[i]; }
  function topTokens(d, k, line) {
    var idx = d.s.map(function (_, i) { return i; }).filter(function (i) {
      return data.include_template || !d.seg || d.seg[i] !== "template";
    });
    idx.sort(function (a, b) { return d.s[b] - d.s[a] || a - b; });
    idx.slice(0, k).forEach(function (i, rank) {
      if (rank) { line.appendChild(document.createTextNode(", ")); }
      line.appendChild(lit(tokenOf(d, i)));
      line.appendChild(document.createTextNode(" " + fmt(d.s[i])));
    });
  }
  // Palette level of a score on a scale (as normxlogit.display.color_levels).
  function level(v, scale) {
    var L = __LEVELS__;
    return Math.max(-L, Math.min(L, Math.round(v / scale * L))) + L;
  }
  function tokenClass(d, i, lvl) {
    if (d.seg && d.seg[i] === "template") { return "tok tmpl"; }
    var cls = lvl === null ? "tok na" : "tok c" + lvl;
    if (d.rs && d.rs[i] !== null) { cls += " resp" + (d.st ? " pick" : ""); }
    return cls;
  }
  __PAINT__
  function renderDoc(d) {
    var card = el("article", "doc");
    var head = el("header");
    var resp = d.seg !== undefined;
    head.appendChild(iso("doc-id", d.id));
    head.appendChild(labelled("source: ", iso(null, d.source)));
    var prob = d.prob === null ? "" : " (p=" + fmt(d.prob) + ")";
    if (resp) {
      head.appendChild(labelled("response: ", el("b", null, d.rn + " tokens"), ", mean log p " + fmt(d.rlp)));
      head.appendChild(labelled("first response token: ", lit(d.target)));
      head.appendChild(labelled("model's own first token: ", lit(d.prediction), prob));
      if (d.target !== d.prediction) {
        head.appendChild(el("span", "warn", "the model would begin otherwise"));
      }
    } else {
      head.appendChild(labelled("prediction: ", lit(d.prediction), prob));
      head.appendChild(labelled("target: ", lit(d.target)));
      if (d.target !== d.prediction) { head.appendChild(el("span", "warn", "misclassified")); }
    }
    if (d.truncated) { head.appendChild(el("span", "warn", "truncated at max length")); }
    card.appendChild(head);
    var text = el("div", "text"), last = null, all = [], spans = [];
    text.dir = "auto";
    for (var i = 0; i < d.t.length; i++) {
      var title = "norm " + fmt(d.n[i]) + " | logat " + fmt(d.l[i]) + " | score " + fmt(d.s[i]);
      if (resp && d.rs[i] !== null) {
        title = "response token " + d.rs[i] + " | log p " + fmt(d.lp[i]) + " | " + title +
          (d.st ? "\nclick: its own attribution" : "");
      } else if (resp) {
        title = d.seg[i] + " | " + title;
      }
      if (d.g[i]) { put(text, d.g[i]); all.push(d.g[i]); }
      if (d.t[i] === "" && last) {
        // Its characters are already shown (a character split across tokens): it adds its numbers
        // to the hover text of the token that shows them.
        last.title += "\nand " + JSON.stringify(tokenOf(d, i)) + ": " + title;
        spans.push(null);
        continue;
      }
      var tok = put(el("span", tokenClass(d, i, relative() ? d.cm[i] : d.c[i])), d.t[i]);
      tok.title = title;
      if (resp && d.st && d.rs[i] !== null) {
        tok.addEventListener("click", (function (t) {
          return function () { showStep(card, card.step === t ? 0 : t); };
        })(d.rs[i]));
      }
      text.appendChild(tok);
      spans.push(tok);
      all.push(d.t[i]);
      last = tok;
    }
    card.spans = spans;
    card.step = 0;
    card.appendChild(text);
    if (resp) {
      card.stepNote = card.appendChild(el("div", "step-note"));
      if (d.st_cut) { card.stepNote.textContent = "per-step scores of this document are too many to embed"; }
    }
    var more = d.cut ? " (first " + d.t.length + " tokens shown)" : "";
    var top = el("div", "muted top-tokens", "top tokens: ");
    topTokens(d, 5, top);
    top.appendChild(document.createTextNode("; "));
    card.scaleNote = top.appendChild(el("span", "scale-note", scaleWords(summedScale(d))));
    top.appendChild(document.createTextNode(more));
    card.appendChild(top);
    // Search finds the text as written and as shown (a reader can type an escape such as \u202e).
    var raw = d.id + "\u0000" + all.join(""), seen = revealed(raw);
    card.searchText = (seen === raw ? raw : raw + "\u0000" + seen).toLowerCase();
    card.doc = d;
    return card;
  }
  var cards = data.docs.map(renderDoc);
  cards.forEach(function (c, i) { c.rank = i; list.appendChild(c); });
  addOptions(byPrediction, data.docs.map(function (d) { return d.prediction; }));
  addOptions(bySource, data.docs.map(function (d) { return d.source; }));
  function applyFilter() {
    var q = search.value.toLowerCase(), p = byPrediction.value, s = bySource.value, n = 0;
    cards.forEach(function (c) {
      var ok = (!q || c.searchText.indexOf(q) >= 0) &&
        (byPrediction.selectedIndex === 0 || c.doc.prediction === p) &&
        (bySource.selectedIndex === 0 || c.doc.source === s) &&
        (!misclassified.checked || c.doc.target !== c.doc.prediction);
      c.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = String(n);
  }
  // Sample order, or by the prediction's probability; documents without one (regression) go last.
  function applyOrder() {
    var sign = order.value === "prob-asc" ? 1 : order.value === "prob-desc" ? -1 : 0;
    cards.slice().sort(function (a, b) {
      var x = a.doc.prob, y = b.doc.prob;
      if (sign && (x === null) !== (y === null)) { return x === null ? 1 : -1; }
      return (sign && x !== null ? sign * (x - y) : 0) || a.rank - b.rank;
    }).forEach(function (c) { list.appendChild(c); });
  }
  [search, byPrediction, bySource, misclassified].forEach(function (e) {
    e.addEventListener("input", applyFilter);
    e.addEventListener("change", applyFilter);
  });
  order.addEventListener("change", applyOrder);
  colours.addEventListener("change", function () {
    section.classList.toggle("absolute", !relative());
    cards.forEach(paint);
  });
  // A row of the corpus views that names a document of the page shows it (at its step, for a token).
  function showDocument(row) {
    var card = cards.filter(function (c) { return c.doc.id === row.dataset.doc; })[0];
    if (!card) { return; }
    if (card.hidden) {
      search.value = "";
      byPrediction.selectedIndex = 0;
      bySource.selectedIndex = 0;
      misclassified.checked = false;
      applyFilter();
    }
    // The step, where its token is on the page (special tokens and tokens past the cut are not).
    var t = Number(row.dataset.step || 0);
    if (t && card.doc.st && card.step !== t && card.doc.rs.indexOf(t) >= 0) { showStep(card, t); }
    card.scrollIntoView();
  }
  document.querySelectorAll("#corpus tr.jump").forEach(function (row) {
    row.addEventListener("click", function () { showDocument(row); });
  });
  var hideTemplate = document.getElementById("hide-template");
  if (hideTemplate) {
    hideTemplate.addEventListener("change", function () {
      list.classList.toggle("hide-template", hideTemplate.checked);
    });
  }
  applyOrder();
  applyFilter();
})();
"""


def js_char_class(ranges: tuple[tuple[int, int], ...], flags: str = "gu") -> str:
    """A JavaScript regular-expression literal matching the inclusive code-point ranges."""
    parts = "".join(f"\\u{{{a:x}}}" + ("" if a == b else f"-\\u{{{b:x}}}") for a, b in ranges)
    return f"/[{parts}]/{flags}"


SCRIPT = (
    _SCRIPT_TEMPLATE.replace("__REVEAL__", js_char_class(REVEALED))
    .replace("__REVEAL_LINE__", js_char_class(((0x09, 0x0A), *REVEALED)))
    .replace("__LEVELS__", str(LEVELS))
    .replace("__PAINT__", PAINT_SCRIPT)
)


def palette_css() -> str:
    """One class per palette level: ``.c0`` (most negative) .. ``.c{2*LEVELS}`` (most positive)."""
    return "".join(
        f".c{i}{{background:{hex_color(rgb)};color:{text_color(i)}}}" for i, rgb in enumerate(PALETTE)
    )
