"""Print a finished run's counts and each document's top-scoring tokens (used by ``make demo``).

python -m normxlogit.pipeline.summary OUT [--docs 8] [--top 3]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

from normxlogit.transforms.layout import ATTRIBUTIONS, read_manifest


def top_tokens_table(output: str, docs: int, top: int) -> list[str]:
    """Lines: for the first ``docs`` documents of each source, the prediction and top tokens."""
    table = ds.dataset(ATTRIBUTIONS.paths(Path(output)), format="parquet").to_table(
        columns=["doc_id", "source", "token", "score", "special", "prediction", "prediction_prob"]
    )
    table = table.filter(pc.invert(table["special"]))
    by_source: dict[str, set[str]] = {}
    for doc_id, source in zip(table["doc_id"].to_pylist(), table["source"].to_pylist()):
        by_source.setdefault(source, set()).add(doc_id)
    lines = []
    for doc_id in [d for s in sorted(by_source) for d in sorted(by_source[s])[:docs]]:
        rows = table.filter(pc.equal(table["doc_id"], doc_id))
        order = pc.sort_indices(rows, sort_keys=[("score", "descending")])[:top]
        best = rows.take(order)
        tokens = ", ".join(
            f"{t!r} {s:.2f}" for t, s in zip(best["token"].to_pylist(), best["score"].to_pylist())
        )
        pred, prob = rows["prediction"][0].as_py(), rows["prediction_prob"][0].as_py()
        prob_txt = f" (p={prob:.2f})" if prob is not None else ""
        lines.append(f"{doc_id}\n    prediction {pred!r}{prob_txt}; top tokens: {tokens}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--docs", type=int, default=3, help="documents per source")
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    manifest = read_manifest(Path(args.output))
    model = manifest.header.model
    print(f"Output: {Path(args.output).resolve()}")
    print("Counts: " + ", ".join(f"{k}={v}" for k, v in asdict(manifest.counts).items()))
    print(f"Model: {model['architecture']} ({model['path']}), target: {manifest.sections.target.mode}")
    for line in top_tokens_table(args.output, args.docs, args.top):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
