"""``normxlogit show``: one document of a finished run in the terminal, tokens coloured by score."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from normxlogit.display import LEVELS, PALETTE, color_levels, color_scale, reveal, span_text
from normxlogit.pipeline.report.run_reader import read_document_texts, spans_match
from normxlogit.transforms.layout import ATTRIBUTIONS

SHOW_COLUMNS = [
    "doc_id", "source", "position", "token", "char_start", "char_end", "special",
    "norm", "logat", "score", "target", "prediction", "prediction_prob", "truncated",
]  # fmt: skip
RESET = "\x1b[0m"


class UnknownDocError(KeyError):
    """No document has the requested id; the message lists the nearest ids."""

    def __str__(self) -> str:
        return str(self.args[0])


def terminal_safe(text: str, one_line: bool = False) -> str:
    """``text`` with ``display.REVEALED`` characters written as ``\\xNN`` / ``\\uNNNN`` escapes.

    Control characters (C0, C1, DEL) could move the cursor or recolour the terminal; bidi controls
    reorder the text around them in terminals that apply the bidi algorithm; zero-width and other
    format characters hide. ``one_line`` also escapes tab and newline (ids, labels, file names).
    """
    return reveal(text, one_line=one_line)


def read_document(output: Path, doc_id: str) -> pa.Table:
    """The token rows of one document, in position order.

    Raises:
        UnknownDocError: no such id; the message names up to five near ids.
    """
    dataset = ds.dataset(output / ATTRIBUTIONS.folder, format="parquet")
    rows = dataset.to_table(columns=SHOW_COLUMNS, filter=pc.field("doc_id") == doc_id)
    if rows.num_rows == 0:
        near = near_ids(output, doc_id)
        hint = ("; near ids: " + ", ".join(repr(n) for n in near)) if near else ""
        raise UnknownDocError(f"no document with id {doc_id!r} in {output}{hint}")
    return rows.sort_by("position")


def near_ids(output: Path, doc_id: str, n: int = 5) -> list[str]:
    """Up to ``n`` ids most similar to ``doc_id``, streaming the doc_id column one row group at a time."""
    best: list[tuple[float, str]] = []
    for path in ATTRIBUTIONS.paths(output):
        reader = pq.ParquetFile(path)
        for group in range(reader.num_row_groups):
            ids = pc.unique(reader.read_row_group(group, columns=["doc_id"])["doc_id"]).to_pylist()
            close = difflib.get_close_matches(doc_id, ids, n=n, cutoff=0.5)
            scored = [(difflib.SequenceMatcher(None, doc_id, c).ratio(), c) for c in close]
            best = sorted(set(best) | set(scored), key=lambda e: (-e[0], e[1]))[:n]
    return [c for _, c in best]


def ansi(text: str, level: int) -> str:
    """``text`` on palette colour ``level`` (24-bit ANSI), with black or white letters."""
    r, g, b = PALETTE[level]
    fg = "255;255;255" if abs(level - LEVELS) > 0.6 * LEVELS else "17;17;17"
    return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fg}m{text}{RESET}"


def read_document_text(output: Path, doc_id: str) -> str | None:
    """The document's text from the run's documents table, or None for runs without one."""
    return read_document_texts(output, [doc_id]).get(doc_id)


def render_document(rows: pa.Table, color: bool = True, top: int = 5, text: str | None = None) -> str:
    """The document as terminal text: header, coloured (or plain) text, legend and top tokens.

    The text is the document's own characters by span (``display.span_text``): a character split
    across tokens prints once, in the colour of the first token that covers it; the top tokens
    still list each token with its own string. ``text`` (from the documents table) fills the gaps
    between spans with the document's own characters; without it a gap prints as up to 3 spaces.
    """
    first = {name: rows[name][0].as_py() for name in ("doc_id", "source", "target", "prediction")}
    prob, truncated = rows["prediction_prob"][0].as_py(), rows["truncated"][0].as_py()
    keep = np.flatnonzero(~rows["special"].to_numpy(zero_copy_only=False).astype(bool))
    tokens = [rows["token"][int(i)].as_py() for i in keep]
    score = rows["score"].to_numpy()[keep].astype(np.float64)
    norm, logat = rows["norm"].to_numpy()[keep], rows["logat"].to_numpy()[keep]
    starts, ends = rows["char_start"].to_numpy()[keep], rows["char_end"].to_numpy()[keep]
    scale = color_scale(score)
    levels = color_levels(score, scale)
    if text is not None and not spans_match(text, tokens, starts, ends):
        text = None  # not the text these spans were cut from: fall back to the token strings
    gaps, shown = span_text(tokens, starts, ends, text)
    pieces = []
    for gap, piece, level in zip(gaps, shown, levels):
        pieces.append(terminal_safe(gap))
        if piece:
            pieces.append(ansi(terminal_safe(piece), int(level)) if color else terminal_safe(piece))
    p_txt = "" if prob is None else f" (p={prob:.3f})"
    lines = [
        f"doc_id: {terminal_safe(first['doc_id'], one_line=True)}",
        f"source: {terminal_safe(first['source'], one_line=True)}",
        f"prediction: {terminal_safe(repr(first['prediction']))}{p_txt}   "
        f"target: {terminal_safe(repr(first['target']))}" + ("   [truncated]" if truncated else ""),
        "",
        "".join(pieces),
        "",
    ]
    if color:
        bar = "".join(ansi(" ", i) for i in range(len(PALETTE)))
        lines.append(f"legend: {-scale:.4g} {bar} {scale:.4g}  (blue: against the target, red: supports it)")
    lines.append(f"top {top} tokens:")
    for rank, i in enumerate(np.argsort(-score, kind="stable")[:top], 1):
        lines.append(
            f"  {rank:>2}. {terminal_safe(repr(tokens[i])):<24} score {score[i]:>10.4g}   "
            f"norm {norm[i]:.4g}   logat {logat[i]:.4g}"
        )
    return "\n".join(lines)
