"""What ``stats`` and ``compare`` print: the top findings of each slice, each figure with its interval."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from normxlogit.pipeline.findings.slices import CORPUS


def interval(value: float, low: float | None, high: float | None) -> str:
    """``0.715 [0.68, 0.75]``, or the value alone when it has no interval."""
    if low is None or high is None:
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def _slices(words: pa.Table) -> list[tuple[str, str | None]]:
    keys = words.select(["slice_field", "slice"]).group_by(["slice_field", "slice"]).aggregate([])
    return list(zip(keys["slice_field"].to_pylist(), keys["slice"].to_pylist()))


def top_word_lines(
    words: pa.Table, top: int, value: str, low: str, high: str, max_slices: int = 8
) -> list[str]:
    """Per slice (the corpus first, then up to ``max_slices``), its ``top`` words with an interval,
    ranked by ``value`` (largest first): one line per word, ``word  value [low, high]  n docs``, then
    its lift and BH q-value where the table has them."""
    lines = []
    slices = sorted(_slices(words), key=lambda fs: (fs[0] != CORPUS, fs[0], str(fs[1])))
    for field, name in slices[: max_slices + 1]:
        mask = pc.and_(pc.equal(words["slice_field"], field), pc.is_valid(words[low]))
        mask = pc.and_(
            mask, pc.equal(words["slice"], name) if name is not None else pc.is_null(words["slice"])
        )
        chosen = words.filter(mask).sort_by([(value, "descending"), ("word", "ascending")]).slice(0, top)
        if chosen.num_rows == 0:
            continue
        title = "corpus" if field == CORPUS else f"{field} = {name!r}"
        lines.append(f"{title}: top {chosen.num_rows} words by {value}")
        for row in chosen.to_pylist():
            shown = repr(row["word"])[1:-1]
            figure = interval(row[value], row[low], row[high])
            lift = "" if row.get("lift") is None else f"  lift {row['lift']:.3g}"
            test = "" if row.get("q_value") is None else f"  q {row['q_value']:.3g}"
            lines.append(f"  {shown:<16} {figure:<30} {row['n_docs']:>5,} docs{lift}{test}")
    return lines
