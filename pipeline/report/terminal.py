"""``normxlogit show``: one document of a finished run in the terminal, tokens coloured by score."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from normxlogit.display import LEVELS, PALETTE, color_levels, color_scale, reveal, span_text, visible_token
from normxlogit.pipeline.report.run_reader import (
    RESPONSE_COLUMNS,
    STEP_COLUMN,
    read_document_texts,
    spans_match,
)
from normxlogit.transforms.layout import ATTRIBUTIONS, TEMPLATE, read_annotate_manifest

SHOW_COLUMNS = [
    "doc_id", "source", "position", "token", "char_start", "char_end", "special",
    "norm", "logat", "score", "target", "prediction", "prediction_prob", "truncated",
]  # fmt: skip
RESET = "\x1b[0m"
DIM = "\x1b[2m"
UNDERLINE = "\x1b[4m"
BOX = "\x1b[7m"  # reverse video: the response token whose attribution ``--step`` shows


class StepError(ValueError):
    """``--step`` asked of a run or document that has no such per-step scores."""


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


def has_step_scores(output: Path) -> bool:
    """Whether the run kept per-step scores (``annotate --step-scores``)."""
    return STEP_COLUMN in ds.dataset(output / ATTRIBUTIONS.folder, format="parquet").schema.names


def read_document(output: Path, doc_id: str, steps: bool = False) -> pa.Table:
    """The token rows of one document, in position order (with the response columns where the run
    has them, and ``step_scores`` if ``steps``).

    Raises:
        UnknownDocError: no such id; the message says how many documents the run holds and names
            up to five near ids (``near_ids``).
        StepError: ``steps`` and the run kept no per-step scores.
    """
    dataset = ds.dataset(output / ATTRIBUTIONS.folder, format="parquet")
    present = set(dataset.schema.names)
    if steps and STEP_COLUMN not in present:
        raise StepError(f"{output} has no per-step scores; annotate with --step-scores to use --step")
    wanted = SHOW_COLUMNS + RESPONSE_COLUMNS + ([STEP_COLUMN] if steps else [])
    rows = dataset.to_table(columns=[c for c in wanted if c in present], filter=pc.field("doc_id") == doc_id)
    if rows.num_rows == 0:
        near = near_ids(output, doc_id)
        held = read_annotate_manifest(output).counts.docs_annotated
        hint = ("; near ids: " + ", ".join(repr(n) for n in near)) if near else "; no id is near it"
        raise UnknownDocError(f"no document with id {doc_id!r} in {output} ({held:,} documents){hint}")
    return rows.sort_by("position")


def near_ids(output: Path, doc_id: str, n: int = 5) -> list[str]:
    """Up to ``n`` ids near ``doc_id``: the ids that start with it, then those that contain it (case
    ignored, shortest first), then difflib's closest; the doc_id column is read one row group at a time.

    A prefix is what users type (``c7`` for ``c7-wrong-author``), and difflib's ratio rejects it.
    """
    ranks: dict[str, tuple] = {}
    for path in ATTRIBUTIONS.paths(output):
        reader = pq.ParquetFile(path)
        for group in range(reader.num_row_groups):
            ids = pc.unique(reader.read_row_group(group, columns=["doc_id"])["doc_id"])
            for rank, found in _near_in(ids, doc_id, n):
                ranks[found] = min(rank, ranks.get(found, rank))
            ranks = dict(sorted(ranks.items(), key=lambda e: e[1])[:n])
    return list(ranks)


def _near_in(ids: pa.Array, doc_id: str, n: int) -> list[tuple[tuple, str]]:
    """(rank, id) of up to ``n`` ids of each kind near ``doc_id``; a lower rank is nearer."""
    table = pa.table({"id": ids, "length": pc.utf8_length(ids)})
    found = []
    for kind, mask in enumerate(
        (pc.starts_with(ids, doc_id, ignore_case=True), pc.match_substring(ids, doc_id, ignore_case=True))
    ):
        hits = table.filter(mask).sort_by([("length", "ascending"), ("id", "ascending")]).slice(0, n)
        found += [
            ((kind, length, i), i) for i, length in zip(hits["id"].to_pylist(), hits["length"].to_pylist())
        ]
    close = difflib.get_close_matches(doc_id, ids.to_pylist(), n=n, cutoff=0.5)
    found += [((2, -difflib.SequenceMatcher(None, doc_id, c).ratio(), c), c) for c in close]
    return found


def ansi(text: str, level: int) -> str:
    """``text`` on palette colour ``level`` (24-bit ANSI), with black or white letters."""
    r, g, b = PALETTE[level]
    fg = "255;255;255" if abs(level - LEVELS) > 0.6 * LEVELS else "17;17;17"
    return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fg}m{text}{RESET}"


def read_document_text(output: Path, doc_id: str) -> str | None:
    """The document's text from the run's documents table, or None for runs without one."""
    return read_document_texts(output, [doc_id]).get(doc_id)


def _segments(rows: pa.Table) -> np.ndarray | None:
    """Each token's segment in a response run, or None (plain and older runs)."""
    if "segment" not in rows.column_names or rows["segment"].null_count == rows.num_rows:
        return None
    return rows["segment"].fill_null("").to_numpy(zero_copy_only=False)


def render_document(
    rows: pa.Table,
    color: bool = True,
    top: int = 5,
    text: str | None = None,
    step: int | None = None,
    note: str | None = None,
    include_template: bool = False,
) -> str:
    """The document as terminal text: header, coloured (or plain) text, legend and top tokens.

    The text is the document's own characters by span (``display.span_text``): a character split
    across tokens prints once, in the colour of the first token that covers it; the top tokens
    still list each token with its own string. ``text`` (from the documents table) fills the gaps
    between spans with the document's own characters; without it a gap prints as up to 3 spaces.

    Response runs: response tokens are underlined, tokens the chat template wrote are dim and left
    out of the colour scale and (unless ``include_template``, which the top list then says) the top
    tokens. ``step`` t (rows with ``step_scores``) colours the
    tokens by step t's scores, the attribution of response token y_t (reverse video), and the top
    tokens are step t's context tokens; ``note`` is a line printed under the step's line. The top
    tokens of a response run carry their segment and position (a prompt token and a response token
    can have the same string); top-list tokens show their edge spaces and newlines
    (``display.visible_token``), while the running text keeps real spaces and line breaks.

    Raises:
        StepError: ``step`` is not a response step of this document.
    """
    first = {name: rows[name][0].as_py() for name in ("doc_id", "source", "target", "prediction")}
    prob, truncated = rows["prediction_prob"][0].as_py(), rows["truncated"][0].as_py()
    keep = np.flatnonzero(~rows["special"].to_numpy(zero_copy_only=False).astype(bool))
    tokens = [rows["token"][int(i)].as_py() for i in keep]
    score = rows["score"].to_numpy()[keep].astype(np.float64)
    norm, logat = rows["norm"].to_numpy()[keep], rows["logat"].to_numpy()[keep]
    starts, ends = rows["char_start"].to_numpy()[keep], rows["char_end"].to_numpy()[keep]
    segment = _segments(rows)
    seg = segment[keep] if segment is not None else np.full(len(keep), "", dtype=object)
    answer = (
        rows["response_step"].fill_null(0).to_numpy()[keep] if segment is not None else np.zeros(len(keep))
    )
    shown_score = score
    if step is not None:
        shown_score = _step_column(rows, keep, answer, step)
    content = (seg != TEMPLATE) & np.isfinite(shown_score)
    scale = color_scale(shown_score[content])
    levels = color_levels(shown_score, scale)
    if text is not None and not spans_match(text, tokens, starts, ends):
        text = None  # not the text these spans were cut from: fall back to the token strings
    gaps, shown = span_text(tokens, starts, ends, text)
    pieces = []
    for k, (gap, piece, level) in enumerate(zip(gaps, shown, levels)):
        pieces.append(terminal_safe(gap))
        if not piece:
            continue
        piece = terminal_safe(piece)
        if not color:
            pieces.append(piece)
        elif step is not None and answer[k] == step:  # y_t itself is not in its own context
            pieces.append(f"{BOX}{UNDERLINE}{piece}{RESET}")
        elif seg[k] == TEMPLATE or not np.isfinite(shown_score[k]):
            pieces.append(f"{DIM}{piece}{RESET}")
        else:
            mark = (BOX if step is not None and answer[k] == step else "") + (
                UNDERLINE if answer[k] > 0 else ""
            )
            pieces.append(mark + ansi(piece, int(level)))
    p_txt = "" if prob is None else f" (p={prob:.3f})"
    lines = [
        f"doc_id: {terminal_safe(first['doc_id'], one_line=True)}",
        f"source: {terminal_safe(first['source'], one_line=True)}",
    ]
    if segment is None:
        lines.append(
            f"prediction: {terminal_safe(repr(first['prediction']))}{p_txt}   "
            f"target: {terminal_safe(repr(first['target']))}" + ("   [truncated]" if truncated else "")
        )
    else:
        lines.append(_response_header(rows, first, p_txt, truncated))
        if step is not None:
            lines.append(_step_line(rows, step))
            if note is not None:
                lines.append(note)
    lines += ["", "".join(pieces), ""]
    if color:
        bar = "".join(ansi(" ", i) for i in range(len(PALETTE)))
        what = "the target" if segment is None else "the response" if step is None else "that token"
        lines.append(f"legend: {-scale:.4g} {bar} {scale:.4g}  (blue: against {what}, red: supports it)")
        if segment is not None:
            lines.append(
                f"        {UNDERLINE}underlined{RESET}: response tokens; {DIM}dim{RESET}: chat-template "
                + (
                    "tokens (left out of the scale)"
                    if include_template
                    else "tokens (left out of the scale and the top tokens)"
                )
                + ("" if step is None else ", tokens after the step")
            )
    ranked = np.flatnonzero(content | (include_template & np.isfinite(shown_score)))
    lines.append(
        (f"top {top} tokens" if step is None else f"top {top} context tokens at step {step}")
        + (" (chat-template tokens included):" if include_template and segment is not None else ":")
    )
    position = rows["position"].to_numpy()[keep]
    for rank, i in enumerate(ranked[np.argsort(-shown_score[ranked], kind="stable")][:top], 1):
        where = "" if segment is None else f"{seg[i]:<9} pos {position[i]:>4}   "
        lines.append(
            f"  {rank:>2}. {visible_token(tokens[i]):<20} {where}score {shown_score[i]:>10.4g}   "
            f"norm {norm[i]:.4g}   logat {logat[i] if step is None else shown_score[i] / norm[i]:.4g}"
        )
    return "\n".join(lines)


def _step_line(rows: pa.Table, step: int) -> str:
    """What step ``step`` predicts: its response token y_t, y_t's position and log-probability."""
    at = pc.index(rows["response_step"], step).as_py()  # present: _step_column checked the step
    logprob = rows["target_logprob"][at].as_py()
    odds = "" if logprob is None else f", log p {logprob:.4g} (p={np.exp(logprob):.3g})"
    return (
        f"step {step}: the attribution of response token {visible_token(rows['token'][at].as_py())} "
        f"at position {rows['position'][at].as_py()}{odds}"
    )


def _response_header(rows: pa.Table, first: dict, p_txt: str, truncated: bool) -> str:
    """The header line of a response document: its length, mean log-probability and first tokens."""
    logprob = rows["target_logprob"].to_numpy(zero_copy_only=False).astype(np.float64)
    answer = np.isfinite(logprob)
    mean = f"{logprob[answer].mean():.4g}" if answer.any() else "n/a"
    return (
        f"response: {int(answer.sum())} tokens, mean log p {mean}   first response token: "
        f"{visible_token(first['target'])}   the model's own first token: "
        f"{visible_token(first['prediction'])}{p_txt}" + ("   [truncated]" if truncated else "")
    )


def _step_column(rows: pa.Table, keep: np.ndarray, answer: np.ndarray, step: int) -> np.ndarray:
    """(kept tokens,) step ``step``'s scores, NaN where the step does not apply.

    Raises:
        StepError: the document has no step ``step``.
    """
    n_steps = int(answer.max()) if len(answer) else 0
    values = rows[STEP_COLUMN].to_pylist()
    width = len(values[0] or []) if values else 0
    if not 1 <= step <= width:
        raise StepError(f"--step {step}: this document's response has steps 1..{max(width, n_steps)}")
    return np.array([values[int(i)][step - 1] for i in keep], dtype=np.float64)
