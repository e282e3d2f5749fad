"""Print a finished run's counts and each document's top-scoring tokens (used by ``make demo``).

python -m normxlogit.pipeline.summary OUT [--docs 8] [--top 3]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

from normxlogit.transforms.layout import ATTRIBUTIONS, TEMPLATE, read_manifest


def top_tokens_table(output: str, docs: int, top: int, include_template: bool = False) -> list[str]:
    """Lines: for the first ``docs`` documents of each source, the prediction and top tokens (special
    tokens left out, and the tokens a chat template wrote unless ``include_template``)."""
    dataset = ds.dataset(ATTRIBUTIONS.paths(Path(output)), format="parquet")
    columns = ["doc_id", "source", "token", "score", "special", "prediction", "prediction_prob"]
    table = dataset.to_table(columns=columns + [c for c in ("segment",) if c in dataset.schema.names])
    keep = pc.invert(table["special"])
    if not include_template and "segment" in table.column_names:
        keep = pc.and_(keep, pc.invert(pc.fill_null(pc.equal(table["segment"], TEMPLATE), False)))
    table = table.filter(keep)
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
    parser.add_argument(
        "--include-template", action="store_true", help="rank the tokens a chat template wrote too"
    )
    args = parser.parse_args(argv)
    manifest = read_manifest(Path(args.output))
    model = manifest.header.model
    print(f"Output: {Path(args.output).resolve()}")
    print("Counts: " + ", ".join(f"{k}={v}" for k, v in asdict(manifest.counts).items()))
    print(f"Model: {model['architecture']} ({model['path']}), target: {manifest.sections.target.mode}")
    if args.include_template:
        print("Top tokens include the tokens a chat template wrote (--include-template)")
    for line in top_tokens_table(args.output, args.docs, args.top, args.include_template):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
