"""Corpus summary statistics without Beam: columnar, per batch of documents, bounded and mergeable.

A group is a slice of the corpus (all of it, one prediction, one target, one source). A
``SummaryStats`` holds, for any number of groups, three Arrow tables: document/token/word counts,
a fixed-bin histogram of token scores and, per word and per token text, the sum and count of their
scores. ``batch_stats`` computes it for one batch of token rows with Arrow and numpy group-bys (no
Python loop per token or word); ``merge_stats`` adds partial ones (concat, then group-by sums).

Memory is bounded by design: the histogram has fixed bins (symmetric log scale, the same edges for
every group and worker, so histograms add), and each vocabulary keeps at most ``2 * capacity``
entries. When it reaches that size it is pruned to the ``capacity`` most frequent entries (ties:
the larger total, then the text), a frequency-based heavy-hitters sketch. Entries that survive
every pruning keep exact sums and counts; a rare word pruned early and seen again restarts from
zero. With fewer than ``2 * capacity`` distinct words in a group nothing is ever pruned and all
figures are exact, whatever the batching and merge order. The final top-K lists rank by total
score and by mean score (words seen at least ``min_count`` times, so one lucky occurrence does not
top the list).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.transforms.layout import TEMPLATE

CORPUS, PREDICTION, TARGET, SOURCE = "corpus", "prediction", "target", "source"
GROUP_KINDS = (PREDICTION, TARGET, SOURCE)  # document columns that name a group; plus the corpus
WORD, TOKEN = "word", "token"
# Bin edges at +-10**(k / BINS_PER_DECADE) for |score| in [10**MIN_DECADE, 10**MAX_DECADE); bin 0 is
# (-10**MIN_DECADE, 10**MIN_DECADE); the outermost bins catch everything beyond.
BINS_PER_DECADE, MIN_DECADE, MAX_DECADE = 20, -3, 6
_SIDE = BINS_PER_DECADE * (MAX_DECADE - MIN_DECADE)
N_BINS = 2 * _SIDE + 1
DEFAULT_CAPACITY = 2000

_KEYS = [pa.field("kind", pa.string()), pa.field("group", pa.string())]
COUNTS_SCHEMA = pa.schema(_KEYS + [pa.field(n, pa.int64()) for n in ("docs", "tokens", "words")])
HISTOGRAM_SCHEMA = pa.schema(_KEYS + [pa.field("bin", pa.int64()), pa.field("count", pa.int64())])
VOCAB_SCHEMA = pa.schema(
    _KEYS
    + [
        pa.field("unit", pa.string()),  # WORD or TOKEN
        pa.field("text", pa.string()),
        pa.field("total", pa.float64()),
        pa.field("count", pa.int64()),
    ]
)


@dataclass
class SummaryStats:
    """Mergeable statistics of any number of groups, as Arrow tables (pickles as a few buffers).

    Attributes:
        counts: one row per group (``COUNTS_SCHEMA``): documents, tokens and words.
        histogram: one row per group and non-empty bin (``HISTOGRAM_SCHEMA``).
        vocab: one row per group, unit (``WORD`` / ``TOKEN``) and text (``VOCAB_SCHEMA``): the sum
            and count of the scores of that text; bounded, see the module docstring.
    """

    counts: pa.Table
    histogram: pa.Table
    vocab: pa.Table


def empty_stats() -> SummaryStats:
    """Statistics of no document."""
    return SummaryStats(
        COUNTS_SCHEMA.empty_table(), HISTOGRAM_SCHEMA.empty_table(), VOCAB_SCHEMA.empty_table()
    )


def histogram_bins(scores: np.ndarray) -> np.ndarray:
    """Fixed-bin index (0..N_BINS-1) of each score on the symmetric log scale."""
    mag = np.abs(scores.astype(np.float64))
    with np.errstate(divide="ignore"):
        level = np.floor((np.log10(np.maximum(mag, 1e-300)) - MIN_DECADE) * BINS_PER_DECADE) + 1
    level = np.clip(np.where(mag < 10.0**MIN_DECADE, 0, level), 0, _SIDE).astype(np.int64)
    return _SIDE + np.sign(scores).astype(np.int64) * level


def bin_edges(index: int) -> tuple[float, float]:
    """The (low, high) score range of histogram bin ``index``; outermost bins are open-ended."""
    level = index - _SIDE
    if level == 0:
        return -(10.0**MIN_DECADE), 10.0**MIN_DECADE
    inner = 10.0 ** (MIN_DECADE + (abs(level) - 1) / BINS_PER_DECADE)
    outer = np.inf if abs(level) == _SIDE else 10.0 ** (MIN_DECADE + abs(level) / BINS_PER_DECADE)
    return (inner, outer) if level > 0 else (-outer, -inner)


def batch_stats(
    rows: pa.RecordBatch | pa.Table,
    documents: pa.RecordBatch | pa.Table,
    capacity: int = DEFAULT_CAPACITY,
    include_template: bool = False,
) -> SummaryStats:
    """The statistics of one batch of documents, for their corpus, prediction, target and source groups.

    Special tokens are left out, and so are the tokens a chat template wrote (``segment``
    ``template``: role markers, a default system prompt) unless ``include_template``. A token
    counts under its stripped text (empty ones are dropped); a word (consecutive rows with the same
    ``word_index`` in a document) under the document text
    from its first token's start to its last token's end, stripped, with the sum of its tokens'
    scores. Without a ``text`` column the word text is rebuilt from its tokens (each the text under
    its span), which is the same span unless tokens leave a gap inside the word.

    Args:
        rows: token rows (``normxlogit.token_schema``; ``token``, ``char_start``, ``char_end``,
            ``word_index`` (null or -1 outside words), ``special`` and ``score`` are read), grouped
            by document in the order of ``documents``.
        documents: one row per document: ``n_tokens`` (its rows), ``prediction``, ``target``,
            ``source`` and optionally ``text``. Null group names count as "".
        capacity: vocabulary bound per group (see the module docstring).
        include_template: count the chat template's tokens as content (rows without a ``segment``
            column have none).

    Raises:
        ValueError: ``n_tokens`` does not add up to the number of rows.
    """
    n_tokens = _numpy(documents, "n_tokens").astype(np.int64)
    if n_tokens.sum() != rows.num_rows:
        raise ValueError(
            f"documents' n_tokens add up to {n_tokens.sum()}, but there are {rows.num_rows} rows"
        )
    if documents.num_rows == 0:
        return empty_stats()
    codes, groups = _document_groups(documents)  # codes: (4, docs) group of each document per kind
    doc = np.repeat(np.arange(documents.num_rows), n_tokens)
    special = _numpy(rows, "special").astype(bool)
    if not include_template and "segment" in rows.schema.names:
        template = pc.fill_null(pc.equal(_array(rows, "segment"), TEMPLATE), False)
        special |= template.to_numpy(zero_copy_only=False)
    score = _numpy(rows, "score").astype(np.float64)
    token = _array(rows, "token").cast(pa.string())

    stripped = pc.utf8_trim_whitespace(token)
    kept = np.flatnonzero(~special & (pc.utf8_length(stripped).to_numpy(zero_copy_only=False) > 0))
    doc_texts = _array(documents, "text") if "text" in documents.schema.names else None
    found = token_words(rows, doc, ~special, doc_texts)
    words, word_score, word_doc = found.text, found.score, found.doc

    texts = pa.concat_arrays([stripped.take(pa.array(kept)), words])
    unit = np.r_[np.ones(kept.size, np.int64), np.zeros(len(words), np.int64)]  # 0: WORD, 1: TOKEN
    entry_doc = np.r_[doc[kept], word_doc]
    entry_key = codes[:, entry_doc].ravel()  # every entry once per kind
    encoded = pc.dictionary_encode(texts)
    n_texts = max(len(encoded.dictionary), 1)
    code = (entry_key * 2 + np.tile(unit, len(codes))) * n_texts + np.tile(
        encoded.indices.to_numpy(), len(codes)
    )
    totals = (
        pa.table({"code": code, "score": np.tile(np.r_[score[kept], word_score], len(codes))})
        .group_by("code", use_threads=False)
        .aggregate([("score", "sum"), ("score", "count")])
    )
    order = np.argsort(totals["code"].to_numpy(), kind="stable")  # rows of a group together
    totals = totals.take(pa.array(order))
    code = totals["code"].to_numpy()
    key = pa.array(code // (2 * n_texts))
    vocab = pa.table(
        {
            "kind": groups["kind"].take(key),
            "group": groups["group"].take(key),
            "unit": pa.array([WORD, TOKEN]).take(pa.array(code // n_texts % 2)),
            "text": encoded.dictionary.take(pa.array(code % n_texts)),
            "total": totals["score_sum"],
            "count": totals["score_count"],
        },
        schema=VOCAB_SCHEMA,
    )

    n_groups = groups.num_rows
    token_key = codes[:, doc[kept]].ravel()
    bins = np.tile(histogram_bins(score[kept]), len(codes))
    dense = np.bincount(token_key * N_BINS + bins, minlength=n_groups * N_BINS).reshape(n_groups, N_BINS)
    group_of_bin, nonzero_bin = np.nonzero(dense)
    histogram = pa.table(
        {
            "kind": groups["kind"].take(pa.array(group_of_bin)),
            "group": groups["group"].take(pa.array(group_of_bin)),
            "bin": nonzero_bin.astype(np.int64),
            "count": dense[group_of_bin, nonzero_bin],
        },
        schema=HISTOGRAM_SCHEMA,
    )
    counts = groups.append_column("docs", pa.array(np.bincount(codes.ravel(), minlength=n_groups)))
    counts = counts.append_column("tokens", pa.array(np.bincount(token_key, minlength=n_groups)))
    words_per_group = np.bincount(codes[:, word_doc].ravel(), minlength=n_groups)
    counts = counts.append_column("words", pa.array(words_per_group)).cast(COUNTS_SCHEMA)
    largest = int(np.bincount(code // n_texts).max(initial=0))
    return SummaryStats(counts, histogram, _prune(vocab, capacity, largest))


def _document_groups(documents) -> tuple[np.ndarray, pa.Table]:
    """(4, docs) group number of each document per kind, and the groups' (kind, group) table."""
    n = documents.num_rows
    codes, kinds, names = [np.zeros(n, np.int64)], [CORPUS], [pa.array([""])]
    for kind in GROUP_KINDS:
        encoded = pc.dictionary_encode(pc.fill_null(_array(documents, kind).cast(pa.string()), ""))
        codes.append(encoded.indices.to_numpy().astype(np.int64) + sum(len(a) for a in names))
        kinds.append(kind)
        names.append(encoded.dictionary)
    kind_column = pa.array(np.repeat(kinds, [len(a) for a in names]).tolist(), pa.string())
    return np.stack(codes), pa.table({"kind": kind_column, "group": pa.concat_arrays(names)})


@dataclass(frozen=True)
class Words:
    """The words of a batch of token rows, one entry per word, in row order.

    A word is a run of consecutive kept rows of one document with the same ``word_index``.

    Attributes:
        text: the word's text (string), stripped of surrounding whitespace.
        score: (words,) float64 sum of its tokens' scores.
        doc: (words,) the document number (as passed in ``doc``) it lies in.
        first_row: (words,) row of its first token.
        n_tokens: (words,) its token rows.
        char_start, char_end: (words,) the smallest start and the largest end of its tokens.
    """

    text: pa.Array
    score: np.ndarray
    doc: np.ndarray
    first_row: np.ndarray
    n_tokens: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray


def token_words(rows, doc: np.ndarray, keep: np.ndarray, texts: pa.Array | None = None) -> Words:
    """Group token rows into words (``word_index``) and sum their scores, without a loop per word.

    Args:
        rows: token rows with ``token``, ``char_start``, ``char_end``, ``word_index`` (null or -1
            outside words) and ``score``; the rows of a document are contiguous.
        doc: (rows,) the document number of each row.
        keep: (rows,) bool, rows that may belong to a word (e.g. not special tokens).
        texts: the document texts, indexed by document number. A word whose tokens overlap (byte-level
            BPE can give two tokens one character's span) or leave a gap inside it is taken from
            its document's text; without ``texts`` it is rebuilt from its tokens with overlaps
            removed, which is the same text unless the tokens leave a gap.
    """
    word_index = pc.fill_null(_array(rows, "word_index"), -1).to_numpy()
    in_word = np.flatnonzero(keep & (word_index >= 0))
    if in_word.size == 0:
        empty = np.zeros(0, np.int64)
        return Words(pa.array([], pa.string()), np.zeros(0), empty, empty, empty, empty, empty)
    token = _array(rows, "token").cast(pa.string())
    score = _numpy(rows, "score").astype(np.float64)
    w_doc, w_index = doc[in_word], word_index[in_word]
    continues = (w_doc[1:] == w_doc[:-1]) & (w_index[1:] == w_index[:-1])
    starts = np.flatnonzero(np.r_[True, ~continues])
    word_score = np.add.reduceat(score[in_word], starts)
    # Inside a word the tokens' strings are the text under their spans, so joining them gives the
    # word's span when each token starts where the previous one ended. Byte-level BPE can give two
    # tokens one character's span (overlap), and a tokenizer may skip characters (gap): those rare
    # words are rebuilt in Python.
    char_start, char_end = _numpy(rows, "char_start")[in_word], _numpy(rows, "char_end")[in_word]
    broken = np.flatnonzero(continues & (char_start[1:] != char_end[:-1])) + 1
    offsets = pa.array(np.r_[starts, in_word.size].astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, token.take(pa.array(in_word))), "")
    if broken.size:
        word_of_row = np.cumsum(np.r_[True, ~continues]) - 1
        bad = np.unique(word_of_row[broken])
        ends = np.r_[starts[1:], in_word.size]
        fixed = [
            _word_span(
                token,
                in_word,
                char_start,
                char_end,
                slice(starts[w], ends[w]),
                None if texts is None else texts[int(w_doc[starts[w]])].as_py(),
            )
            for w in bad.tolist()
        ]
        mask = np.zeros(len(starts), bool)
        mask[bad] = True
        joined = pc.replace_with_mask(joined, pa.array(mask), pa.array(fixed, pa.string()))
    return Words(
        text=pc.utf8_trim_whitespace(joined),
        score=word_score,
        doc=w_doc[starts],
        first_row=in_word[starts],
        n_tokens=np.diff(np.r_[starts, in_word.size]),
        char_start=np.minimum.reduceat(char_start, starts),
        char_end=np.maximum.reduceat(char_end, starts),
    )


def _word_span(token, in_word, char_start, char_end, word: slice, text: str | None) -> str:
    """One word's text from the document text, or without it from its tokens with overlaps removed."""
    starts, ends = char_start[word].tolist(), char_end[word].tolist()
    if text is not None:
        return text[starts[0] : ends[-1]]
    out, reached = "", starts[0]
    for row, start, end in zip(in_word[word].tolist(), starts, ends):
        out += token[row].as_py()[max(0, reached - start) :]
        reached = max(reached, end)
    return out


def merge_stats(parts: list[SummaryStats], capacity: int = DEFAULT_CAPACITY) -> SummaryStats:
    """One ``SummaryStats`` holding all of ``parts`` (sums per group, bin and text; then pruned)."""
    parts = [p for p in parts if p.counts.num_rows]
    if len(parts) <= 1:
        return parts[0] if parts else empty_stats()
    return SummaryStats(
        counts=_sum_by(
            [p.counts for p in parts], ["kind", "group"], ["docs", "tokens", "words"], COUNTS_SCHEMA
        ),
        histogram=_sum_by(
            [p.histogram for p in parts], ["kind", "group", "bin"], ["count"], HISTOGRAM_SCHEMA
        ),
        vocab=_prune(
            _sum_by(
                [p.vocab for p in parts], ["kind", "group", "unit", "text"], ["total", "count"], VOCAB_SCHEMA
            ),
            capacity,
        ),
    )


def _sum_by(tables: list[pa.Table], keys: list[str], values: list[str], schema: pa.Schema) -> pa.Table:
    summed = (
        pa.concat_tables(tables).group_by(keys, use_threads=False).aggregate([(v, "sum") for v in values])
    )
    return pa.table([summed[name] for name in keys] + [summed[f"{v}_sum"] for v in values], schema=schema)


def _prune(vocab: pa.Table, capacity: int, largest: int | None = None) -> pa.Table:
    """Keep the ``capacity`` most frequent entries of each vocabulary that has ``2 * capacity``.

    Args:
        largest: the size of the largest vocabulary in ``vocab``, when the caller knows it.
    """
    parts = ["kind", "group", "unit"]
    if vocab.num_rows < 2 * capacity:
        return vocab
    if largest is None:
        sizes = vocab.group_by(parts, use_threads=False).aggregate([([], "count_all")])["count_all"]
        largest = pc.max(sizes).as_py()
    if largest < 2 * capacity:
        return vocab
    ranking = [("count", "descending"), ("total", "descending"), ("text", "ascending")]
    order = pc.sort_indices(vocab, [(c, "ascending") for c in parts] + ranking)
    ranked = vocab.take(order)
    starts = _run_starts(ranked, parts)
    sizes = np.diff(np.r_[starts, ranked.num_rows])
    rank = np.arange(ranked.num_rows) - np.repeat(starts, sizes)
    keep = (np.repeat(sizes, sizes) < 2 * capacity) | (rank < capacity)
    return ranked.filter(pa.array(keep))


def _run_starts(table: pa.Table, keys: list[str]) -> np.ndarray:
    """First row of each run of equal ``keys`` in a table sorted by them."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n - 1, bool)
    for name in keys:
        column = table[name].combine_chunks()
        change |= pc.not_equal(column.slice(1), column.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return np.flatnonzero(np.r_[True, change])


def _runs(table: pa.Table, keys: list[str]) -> dict[tuple, pa.Table]:
    """The table's rows by their ``keys`` values, each as a slice (sorted first unless already grouped)."""
    ordered = table
    starts, names = _run_names(ordered, keys)
    if len(set(names)) < len(names):
        ordered = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        starts, names = _run_names(ordered, keys)
    stops = np.r_[starts[1:], ordered.num_rows]
    return {name: ordered.slice(a, b - a) for name, a, b in zip(names, starts, stops)}


def _run_names(table: pa.Table, keys: list[str]) -> tuple[np.ndarray, list[tuple]]:
    starts = _run_starts(table, keys)
    return starts, list(zip(*(table[k].take(pa.array(starts)).to_pylist() for k in keys)))


def top_entries(vocab: pa.Table, k: int, by: str, min_count: int = 3) -> list[dict]:
    """The ``k`` entries of one vocabulary with the highest total (``by="total"``) or mean score.

    Args:
        vocab: rows with ``text``, ``total`` and ``count``, one per text.

    Returns:
        Dicts with ``text``, ``count``, ``total``, ``mean``; ties broken by text, so the result is
        deterministic. For ``mean``, entries seen fewer than ``min_count`` times are left out
        unless no entry reaches it.
    """
    table = vocab.select(["text", "count", "total"])
    table = table.append_column("mean", pc.divide(table["total"], pc.cast(table["count"], pa.float64())))
    if by == "mean":
        frequent = table.filter(pc.greater_equal(table["count"], min_count))
        table = frequent if frequent.num_rows else table
    order = pc.sort_indices(
        table, [("total" if by == "total" else "mean", "descending"), ("text", "ascending")]
    )
    return table.take(order[:k]).to_pylist()


def summarize_groups(stats: SummaryStats, k: int = 20) -> list[dict]:
    """The JSON-ready summary of each group, by kind and group: counts, histogram, top words and tokens."""
    histograms = _runs(stats.histogram, ["kind", "group"])
    vocabs = _runs(stats.vocab, ["kind", "group", "unit"])
    out = []
    for counts in stats.counts.sort_by([("kind", "ascending"), ("group", "ascending")]).to_pylist():
        key = (counts["kind"], counts["group"])
        words, tokens = (vocabs.get(key + (unit,), VOCAB_SCHEMA.empty_table()) for unit in (WORD, TOKEN))
        out.append(
            {
                **counts,
                "histogram": _histogram(histograms.get(key, HISTOGRAM_SCHEMA.empty_table())),
                "top_words_by_total": top_entries(words, k, "total"),
                "top_words_by_mean": top_entries(words, k, "mean"),
                "top_tokens_by_total": top_entries(tokens, k, "total"),
                "top_tokens_by_mean": top_entries(tokens, k, "mean"),
            }
        )
    return out


def _histogram(rows: pa.Table) -> list[dict]:
    """Bins from the first to the last non-empty one (empty ones between included)."""
    dense = np.zeros(N_BINS, np.int64)
    np.add.at(dense, rows["bin"].to_numpy(), rows["count"].to_numpy())
    nonzero = np.flatnonzero(dense)
    bins = []
    for i in range(int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else ():
        lo, hi = bin_edges(i)
        bins.append({"low": _finite(lo), "high": _finite(hi), "count": int(dense[i])})
    return bins


def _finite(edge: float) -> float | None:
    """A bin edge for JSON: None for an open end."""
    return None if np.isinf(edge) else float(edge)


def _array(data, name: str) -> pa.Array:
    column = data.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _numpy(data, name: str) -> np.ndarray:
    return _array(data, name).to_numpy(zero_copy_only=False)
