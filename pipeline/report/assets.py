"""The report page's inline stylesheet and its one script (no external resources).

The script reads the embedded JSON (``<script type="application/json" id="report-data">``) and
builds every document with ``createElement`` / ``textContent``; user text never goes through
``innerHTML``, so markup in a document renders as text.
"""

from __future__ import annotations

from normxlogit.display import PALETTE, hex_color, text_color

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
.controls input{width:260px;padding:4px 6px}
article.doc{border-top:1px solid #e4e4e4;padding:8px 0}
article.doc header{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#444}
.doc-id{font-weight:700;color:#111;unicode-bidi:isolate}
.text{font-size:15px;line-height:1.9;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
.tok{border-radius:3px;padding:1px 0}
.legend span{display:inline-block;width:14px;height:12px;vertical-align:middle}
.warn{color:#8a4b00}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var list = document.getElementById("docs");
  var search = document.getElementById("search");
  var byPrediction = document.getElementById("filter-prediction");
  var bySource = document.getElementById("filter-source");
  var shown = document.getElementById("shown-count");
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function fmt(x) { return x === null ? "n/a" : Number(x).toPrecision(4); }
  function quoted(s) { return JSON.stringify(s); }
  function addOptions(select, values) {
    var counts = {};
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || (a < b ? -1 : 1); })
      .forEach(function (v) {
        var o = el("option", null, quoted(v) + " (" + counts[v] + ")");
        o.value = v;
        select.appendChild(o);
      });
  }
  function topTokens(d, k) {
    var idx = d.s.map(function (_, i) { return i; });
    idx.sort(function (a, b) { return d.s[b] - d.s[a] || a - b; });
    return idx.slice(0, k).map(function (i) { return quoted(d.t[i]) + " " + fmt(d.s[i]); }).join(", ");
  }
  function renderDoc(d) {
    var card = el("article", "doc");
    var head = el("header");
    head.appendChild(el("span", "doc-id", d.id));
    head.appendChild(el("span", null, "source: " + d.source));
    var pred = "prediction: " + quoted(d.prediction) + (d.prob === null ? "" : " (p=" + fmt(d.prob) + ")");
    head.appendChild(el("span", null, pred));
    head.appendChild(el("span", null, "target: " + quoted(d.target)));
    if (d.truncated) { head.appendChild(el("span", "warn", "truncated at max length")); }
    card.appendChild(head);
    var text = el("div", "text");
    text.dir = "auto";
    for (var i = 0; i < d.t.length; i++) {
      if (d.g[i]) { text.appendChild(document.createTextNode(" ".repeat(d.g[i]))); }
      var tok = el("span", "tok c" + d.c[i], d.t[i]);
      tok.title = "norm " + fmt(d.n[i]) + " | logat " + fmt(d.l[i]) + " | score " + fmt(d.s[i]);
      text.appendChild(tok);
    }
    card.appendChild(text);
    var more = d.cut ? " (first " + d.t.length + " tokens shown)" : "";
    card.appendChild(el("div", "muted", "top tokens: " + topTokens(d, 5) + "; colour scale \u00b1" +
      fmt(d.scale) + more));
    card.searchText = (d.id + "\u0000" + d.t.join("")).toLowerCase();
    card.doc = d;
    return card;
  }
  var cards = data.docs.map(renderDoc);
  cards.forEach(function (c) { list.appendChild(c); });
  addOptions(byPrediction, data.docs.map(function (d) { return d.prediction; }));
  addOptions(bySource, data.docs.map(function (d) { return d.source; }));
  function applyFilter() {
    var q = search.value.toLowerCase(), p = byPrediction.value, s = bySource.value, n = 0;
    cards.forEach(function (c) {
      var ok = (!q || c.searchText.indexOf(q) >= 0) &&
        (byPrediction.selectedIndex === 0 || c.doc.prediction === p) &&
        (bySource.selectedIndex === 0 || c.doc.source === s);
      c.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = String(n);
  }
  [search, byPrediction, bySource].forEach(function (e) {
    e.addEventListener("input", applyFilter);
    e.addEventListener("change", applyFilter);
  });
  applyFilter();
})();
"""


def palette_css() -> str:
    """One class per palette level: ``.c0`` (most negative) .. ``.c{2*LEVELS}`` (most positive)."""
    return "".join(
        f".c{i}{{background:{hex_color(rgb)};color:{text_color(i)}}}" for i, rgb in enumerate(PALETTE)
    )
