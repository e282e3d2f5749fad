"""NormXLogit on a GPU: scoring time over the bare forward pass, and throughput, side by side.

For machines that lack this project's corpora, model packages and Beam (a lent GPU box: nothing
can be fetched there, and what travels is small), the models are built from their configurations
with seeded random weights (the cost of a forward pass does not depend on the weights' values) and
the texts are random words, tokenized by the small byte-level BPE the tests train
(``tests/pipeline/bpe_run.py``). Shapes: SmolLM2-135M (the default model), a 1B Llama, and a
BERT-base classifier.

Per model, on the padded batches ``score_encoded`` forms (``method_overhead.plan_work``), each batch
runs as the bare base-model forward (``run_floor``) and as the whole NormXLogit batch
(``run_scoring``: padding, forward with the layer-0 capture, head, unpadding to numpy), alternating,
with ``torch.cuda.synchronize()`` before every clock read. Headline: the sum over batches of each
batch's fastest scoring time over the same sum for the floor (METHOD.md: the floor is the bare
forward pass). Also: real tokens per second of both, and seconds per 512-token text in the largest
batch (the paper's efficiency table).

    python benchmarks/bench_gpu.py [--dtype bfloat16] [--docs 2048] [--repeats 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from method_overhead import plan_work, run_floor, run_scoring

import normxlogit

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "bench_gpu.json"
SHAPES = {
    "SmolLM2-135M shape (causal LM)": (
        transformers.LlamaForCausalLM,
        transformers.LlamaConfig(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        ),
    ),
    "Llama 1B shape (causal LM)": (
        transformers.LlamaForCausalLM,
        transformers.LlamaConfig(
            vocab_size=128256,
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        ),
    ),
    "BERT-base shape (classifier)": (
        transformers.BertForSequenceClassification,
        transformers.BertConfig(num_labels=2, max_position_embeddings=512),
    ),
}


def _bpe_tokenizer():
    spec = importlib.util.spec_from_file_location(
        "bpe_run", HERE.parent / "tests" / "pipeline" / "bpe_run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.byte_level_bpe()


def build_model(folder: Path, model_cls, config, tokenizer, dtype: torch.dtype) -> Path:
    """A seeded random model of ``config`` in ``dtype`` with ``tokenizer``, saved in ``folder``."""
    torch.manual_seed(0)
    model_cls(config).to(dtype).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def random_texts(docs: int, seed: int) -> list[str]:
    """Texts of random words, lengths log-uniform between about 16 and over 512 tokens."""
    rng = random.Random(seed)
    words = ["the", "capital", "of", "France", "is", "Paris", "film", "great", "plot", "dull", "market"]
    return [" ".join(rng.choice(words) for _ in range(int(2 ** rng.uniform(3, 8.5)))) for _ in range(docs)]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    """Wall seconds of ``fn()``, the device's queue drained before and after."""
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def measure(name: str, sm, texts: list[str], batch_tokens: int, repeats: int) -> dict:
    """Floor and scoring of every batch, alternating, fastest of ``repeats`` each."""
    encoded = normxlogit.encode_texts(sm, texts, max_length=512)
    work = plan_work(sm, encoded, batch_tokens)
    warm = work[0]
    for _ in range(2):
        run_floor(sm, warm)
        run_scoring(sm, warm)
    floor = [float("inf")] * len(work)
    scoring = [float("inf")] * len(work)
    for rep in range(repeats):
        for j, batch in enumerate(work):
            pair = [("f", batch), ("s", batch)]
            for kind, b in pair if (rep + j) % 2 == 0 else reversed(pair):
                if kind == "f":
                    floor[j] = min(floor[j], timed(lambda b=b: run_floor(sm, b)))
                else:
                    scoring[j] = min(scoring[j], timed(lambda b=b: run_scoring(sm, b)))
    real = sum(b.real_tokens for b in work)
    padded = sum(b.padded_tokens for b in work)
    full = [j for j, b in enumerate(work) if max(len(t) for t in b.texts) == 512]
    per_512 = (
        {"texts": sum(len(work[j].texts) for j in full), "s_per_text": sum(scoring[j] for j in full)}
        if full
        else None
    )
    if per_512:
        per_512["s_per_text"] /= per_512["texts"]
    return {
        "model": name,
        "adapter": sm.adapter.name,
        "batch_tokens": batch_tokens,
        "docs": len(encoded),
        "batches": len(work),
        "real_tokens": real,
        "padded_tokens": padded,
        "floor_s": sum(floor),
        "scoring_s": sum(scoring),
        "ratio": sum(scoring) / sum(floor),
        "floor_tokens_per_s": real / sum(floor),
        "scoring_tokens_per_s": real / sum(scoring),
        "at_512_tokens": per_512,
        "largest_batch_texts": max(len(b.texts) for b in work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--docs", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-tokens", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test")
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES), metavar="NAME")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{device}; torch {torch.__version__}, transformers {transformers.__version__}, {args.dtype}")
    tokenizer = _bpe_tokenizer()
    texts = random_texts(args.docs, seed=0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.models):
            model_cls, config = SHAPES[name]
            folder = build_model(
                Path(tmp) / f"m{i}", model_cls, config, tokenizer, getattr(torch, args.dtype)
            )
            sm = normxlogit.load_model(folder, device=args.device, dtype=args.dtype, hash_weights=False)
            for batch_tokens in args.batch_tokens:
                r = measure(name, sm, texts, batch_tokens, args.repeats)
                results.append(r)
                at = r["at_512_tokens"]
                print(
                    f"{name:34} batch_tokens {batch_tokens:>6}: scoring / floor {r['ratio']:.3f}; "
                    f"floor {r['floor_tokens_per_s']:,.0f} tok/s, "
                    f"scoring {r['scoring_tokens_per_s']:,.0f} tok/s"
                    + (f"; 512-token texts {at['s_per_text'] * 1e3:.3f} ms each" if at else ""),
                    flush=True,
                )
            del sm
            if args.device == "cuda":
                torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "bench_gpu", "device": device, "torch": torch.__version__, "dtype": args.dtype}
    args.out.write_text(json.dumps({**payload, "results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
