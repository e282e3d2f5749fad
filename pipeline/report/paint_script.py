"""The part of the report page's script that colours a document and shows one step's attribution.

``assets.SCRIPT`` puts it inside its one function, where ``el``, ``put``, ``fmt``, ``tokenOf``,
``level``, ``tokenClass`` and ``colours`` (the scale chooser) are defined. A document is coloured
by its summed scores or, in a response run with per-step scores, by one step's, on the scale chosen
on the page: relative to the median (``relative_scale.py``; computed here for a step's scores, as
the page embeds only the summed scores' levels) or absolute.
"""

from __future__ import annotations

from normxlogit.pipeline.report.relative_scale import SPREAD_QUANTILE

_PAINT_TEMPLATE = r"""  // A token as `show` lists it (display.visible_token): edge spaces as the open box,
  // newline, tab and carriage return as \n, \t, \r.
  function visibleToken(s) {
    if (!s) { return "''"; }
    s = String(s).replace(/^ +| +$/g, function (m) { return "\u2423".repeat(m.length); });
    return s.replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r");
  }
  // The q-quantile of sorted numbers, interpolated linearly (numpy's default).
  function quantile(sorted, q) {
    var pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
  function ascending(a, b) { return a - b; }
  // The colour scale relative to the median (pipeline/report/relative_scale.py): centre the median,
  // ends at the __QUANTILE__ quantile of the distances to it.
  function relativeScale(values) {
    if (!values.length) { return {center: 0, spread: 1}; }
    var center = quantile(values.slice().sort(ascending), 0.5);
    var distance = values.map(function (v) { return Math.abs(v - center); }).sort(ascending);
    var spread = quantile(distance, __QUANTILE__);
    if (!(spread > 0)) { spread = distance[distance.length - 1]; }
    return {center: center, spread: spread > 0 ? spread : 1};
  }
  function relative() { return colours.value === "relative"; }
  // The scale of one step's scores (its context tokens, not the template's), as chosen on the page.
  function stepScale(d, values) {
    var counted = values.filter(function (v, i) { return v !== null && d.seg[i] !== "template"; });
    if (relative()) { return relativeScale(counted); }
    var top = counted.reduce(function (m, v) { return Math.max(m, Math.abs(v)); }, 0);
    return {center: 0, spread: top || 1};
  }
  // The scale of the summed scores (computed in relative_scale.py and embedded).
  function summedScale(d) {
    return relative() ? {center: d.med, spread: d.spread} : {center: 0, spread: d.scale};
  }
  function scaleWords(sc) {
    return relative() ? "colours: median " + fmt(sc.center) + ", ends at \u00b1" + fmt(sc.spread) :
      "colour scale \u00b1" + fmt(sc.spread);
  }
  function cell(tag, node, cls) {
    var c = el(tag, cls);
    c.appendChild(typeof node === "string" ? document.createTextNode(node) : node);
    return c;
  }
  // Step t's top context tokens with their segment and position (as `normxlogit show --step`).
  function stepTop(d, t, values, k) {
    var idx = [];
    values.forEach(function (v, i) { if (v !== null && d.seg[i] !== "template") { idx.push(i); } });
    idx.sort(function (a, b) { return values[b] - values[a] || a - b; });
    var table = el("table", "step-top"), head = el("tr");
    ["#", "context token", "segment", "position", "score", "norm", "logat"].forEach(function (h, j) {
      head.appendChild(el("th", j === 0 || j > 2 ? "num" : null, h));
    });
    table.appendChild(el("caption", "muted", "top " + k + " context tokens at step " + t));
    table.appendChild(head);
    idx.slice(0, k).forEach(function (i, rank) {
      var row = el("tr");
      row.appendChild(cell("td", String(rank + 1), "num"));
      row.appendChild(cell("td", put(el("code", "lit"), visibleToken(tokenOf(d, i)))));
      row.appendChild(cell("td", d.seg[i]));
      row.appendChild(cell("td", String(d.p[i]), "num"));
      row.appendChild(cell("td", fmt(values[i]), "num"));
      row.appendChild(cell("td", fmt(d.n[i]), "num"));
      row.appendChild(cell("td", d.n[i] ? fmt(values[i] / d.n[i]) : "n/a", "num"));
      table.appendChild(row);
    });
    return table;
  }
  // Colour a document by its summed scores (card.step 0) or, in a response document, by one step's
  // scores (the attribution of response token t), on the scale chosen on the page.
  function paint(card) {
    var d = card.doc, t = card.step, values = t ? d.st[t - 1] : null;
    var sc = values ? stepScale(d, values) : summedScale(d);
    card.spans.forEach(function (s, i) {
      if (!s) { return; }
      var lvl = values ? (values[i] === null ? null : level(values[i] - sc.center, sc.spread)) :
        relative() ? d.cm[i] : d.c[i];
      s.className = tokenClass(d, i, lvl) + (t && d.rs[i] === t ? " sel" : "");
    });
    // The line under the text describes the summed scores (their top tokens, their scale); the
    // step's own scale is in the step's note.
    card.scaleNote.textContent = scaleWords(summedScale(d));
    if (!card.stepNote || d.st_cut) { return; }
    var note = card.stepNote;
    note.textContent = "";
    if (card.stepTop) { card.stepTop.remove(); card.stepTop = null; }
    if (!t) { return; }
    var at = d.rs.indexOf(t);
    note.appendChild(document.createTextNode("step " + t + ": the attribution of response token "));
    note.appendChild(put(el("code", "lit"), visibleToken(tokenOf(d, at))));
    note.appendChild(document.createTextNode(" at position " + d.p[at] + " (log p " + fmt(d.lp[at])));
    if (d.fo && d.fo[at] !== null) {
      note.appendChild(document.createTextNode("; against the model's own alternative "));
      note.appendChild(put(el("code", "lit"), visibleToken(d.fo[at])));
    }
    note.appendChild(document.createTextNode("; " + scaleWords(sc) + "; grey: after it, no part of its " +
      "context). Click it again for the summed scores."));
    card.stepTop = note.parentNode.insertBefore(stepTop(d, t, values, 5), note.nextSibling);
  }
  function showStep(card, t) {
    card.step = t;
    paint(card);
  }
"""

PAINT_SCRIPT = _PAINT_TEMPLATE.replace("__QUANTILE__", repr(SPREAD_QUANTILE))
