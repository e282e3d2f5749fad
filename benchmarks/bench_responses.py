"""Response attribution cost (issue 15): ours against inseq and Captum on the same model and pairs.

The model (default: SmolLM2-135M-Instruct) answers the first ``--pairs`` prompts of
``benchmarks/data/llm_prompts.jsonl`` greedily (at most ``--new-tokens`` tokens, batched), through its
chat template when it has one (SmolLM2 often ends a plain prompt at once); each prompt + answer pair
is then attributed by every method, and seconds per pair are printed side by side with their ratio
to ours, timed on the same pairs (a peer run on its first n pairs is compared with ours on them):

- ``floor``: a plain forward pass with full-vocabulary logits on the same padded batches;
- ``normxlogit``: ``score_responses`` (one teacher-forced pass, T head rows per position), batched;
- ``gradient_x_input (ours)`` and ``gradient_x_input_l2_steps (ours)``: the evaluate baselines
  (``normxlogit.response_baselines``: one backward pass, or one per step), batched;
- inseq ``saliency`` and ``input_x_gradient``: forced attribution of the same answer
  (``attribute(prompt, generated_texts=prompt + answer)``), step by step, batch size 1 (inseq's
  rule for decoder-only models), on ``--inseq-pairs`` pairs;
- Captum ``LLMGradientAttribution`` with ``LayerGradientXActivation`` on the embedding layer (input x
  gradient) and with ``LayerIntegratedGradients`` (50 steps), one pair at a time, on
  ``--captum-pairs`` pairs (the slowest).

Each timed method runs once untimed on one pair first (warm-up). The pairs are also written as
``OUT/llm_pairs.jsonl`` (prompt, the answer's text) and, when the tokenizer has a chat template,
``OUT/llm_chats.jsonl`` (the same prompts answered through the template, as chat records) for
``normxlogit evaluate``.

    python benchmarks/bench_responses.py             # 16 chat pairs, 24 new tokens: minutes on 2 cores
    python benchmarks/bench_responses.py --quick     # 2 pairs, 4 new tokens, 1 pair per peer
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import normxlogit
from normxlogit.generated import append_generated, encode_prompt_batch, generate_responses
from normxlogit.response_baselines import gradient_x_input_l2_steps, gradient_x_input_signed
from normxlogit.response_scoring import score_responses
from normxlogit.responses import EncodedResponse
from normxlogit.scoring import pad_batch

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "data" / "llm_prompts.jsonl"
BATCH = 16
IG_STEPS = 50


def read_prompts(path: Path, limit: int) -> list[dict]:
    """The first ``limit`` records of a prompts file (``id``, ``prompt``)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit]


def answer(sm, prompts: Sequence[str], new_tokens: int, chat: bool) -> list[EncodedResponse]:
    """Each prompt with the model's greedy answer appended as generated (nothing re-tokenized).

    With ``chat``, each prompt is the user turn of a conversation rendered with the chat template and
    its generation prompt; the rendered text holds the template's markers, so the tokenizer adds
    nothing the template did not write (SmolLM2 adds no BOS of its own).
    """
    tok = sm.tokenizer
    if chat:
        prompts = [
            tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
    encoded = encode_prompt_batch(prompts, tok, sm.adapter, max_length=sm.max_length - new_tokens)
    out = []
    for lo in range(0, len(encoded), BATCH):
        chunk = encoded[lo : lo + BATCH]
        out += [
            append_generated(e, ids, tok) for e, ids in zip(chunk, generate_responses(sm, chunk, new_tokens))
        ]
    return out


def seconds_per_pair(
    fn: Callable[[Sequence[EncodedResponse]], object], pairs: Sequence[EncodedResponse], batch: int
) -> float:
    """Run ``fn`` over ``pairs`` in chunks of ``batch`` after one untimed warm-up call; seconds per pair."""
    fn(pairs[:1])
    start = time.perf_counter()
    for lo in range(0, len(pairs), batch):
        fn(pairs[lo : lo + batch])
    return (time.perf_counter() - start) / len(pairs)


def floor_fn(sm) -> Callable:
    """A plain forward pass with full logits on the same padded batch (the model's padding side)."""

    @torch.inference_mode()
    def run(batch):
        padded = pad_batch(batch, sm.pad_id, sm.padding_side)
        mask = padded.attention_mask
        kwargs = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if sm.adapter.position_ids else {}
        return sm.model(input_ids=padded.input_ids, attention_mask=mask, **kwargs).logits

    return run


def inseq_fn(sm, method: str) -> Callable | None:
    """inseq forced attribution of one pair at a time; None when inseq is not installed."""
    try:
        import inseq
    except ImportError:
        return None
    model = inseq.load_model(sm.model, method, tokenizer=sm.tokenizer)

    def run(batch):
        for e in batch:
            prompt = e.text[: e.offsets[e.response_start, 0]] if e.response_start < len(e) else e.text
            model.attribute(prompt, generated_texts=e.text, show_progress=False, skip_special_tokens=False)

    return run


def captum_fn(sm, method: str) -> Callable | None:
    """Captum's LLMGradientAttribution of one pair at a time (target: the answer's own ids)."""
    try:
        from captum.attr import (
            LayerGradientXActivation,
            LayerIntegratedGradients,
            LLMGradientAttribution,
            TextTokenInput,
        )
    except ImportError:
        return None
    emb = sm.model.get_input_embeddings()
    layer = (
        LayerGradientXActivation(sm.model, emb)
        if method == "input_x_gradient"
        else LayerIntegratedGradients(sm.model, emb)
    )
    llm = LLMGradientAttribution(layer, sm.tokenizer)
    extra = {} if method == "input_x_gradient" else {"n_steps": IG_STEPS}

    def run(batch):
        for e in batch:
            prompt = e.text[: e.offsets[e.response_start, 0]]
            inp = TextTokenInput(prompt, sm.tokenizer)
            llm.attribute(inp, target=torch.as_tensor(e.response_ids), **extra)

    return run


def main(argv: Sequence[str] | None = None) -> dict:
    """Generate the pairs, time every method, print the table, write the JSON and the pair files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--prompts", type=Path, default=PROMPTS)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--grad-pairs", type=int, default=6, help="pairs for our gradient baselines")
    ap.add_argument("--inseq-pairs", type=int, default=6)
    ap.add_argument("--captum-pairs", type=int, default=3)
    ap.add_argument("--ig-pairs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--quick", action="store_true", help="2 pairs, 4 new tokens, 1 pair per peer")
    args = ap.parse_args(argv)
    if args.quick:
        args.pairs, args.new_tokens, args.grad_pairs = 2, 4, 2
        args.inseq_pairs = args.captum_pairs = args.ig_pairs = 1
    args.out.mkdir(parents=True, exist_ok=True)
    sm = normxlogit.load_model(args.model, padding_side="left")
    sm.model.requires_grad_(False)  # gradients flow to the inputs only, for every method alike
    records = read_prompts(args.prompts, args.pairs)
    prompts = [r["prompt"] for r in records]
    pairs = answer(sm, prompts, args.new_tokens, chat=False)
    with open(args.out / "llm_pairs.jsonl", "w") as fh:
        for r, e in zip(records, pairs):
            response = e.text[len(r["prompt"]) :]
            fh.write(json.dumps({"id": r["id"], "prompt": r["prompt"], "response": response}) + "\n")
    chat = bool(getattr(sm.tokenizer, "chat_template", None))
    if chat:  # chat answers are the realistic ones (SmolLM2 often ends a plain prompt at once): time those
        pairs = answer(sm, prompts, args.new_tokens, chat=True)
        with open(args.out / "llm_chats.jsonl", "w") as fh:
            for r, e in zip(records, pairs):
                text = sm.tokenizer.decode(e.response_ids, skip_special_tokens=True).strip()
                messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": text}]
                fh.write(json.dumps({"id": r["id"], "messages": messages}) + "\n")

    methods: list[tuple[str, Callable | None, int, int]] = [
        ("floor (forward, full logits)", floor_fn(sm), len(pairs), BATCH),
        ("normxlogit (score_responses)", lambda b: score_responses(sm, b), len(pairs), BATCH),
        (
            "gradient_x_input (ours, 1 backward)",
            lambda b: gradient_x_input_signed(sm, b),
            args.grad_pairs,
            BATCH,
        ),
        (
            "gradient_x_input_l2_steps (ours)",
            lambda b: gradient_x_input_l2_steps(sm, b),
            args.grad_pairs,
            BATCH,
        ),
        ("inseq saliency", inseq_fn(sm, "saliency"), args.inseq_pairs, 1),
        ("inseq input_x_gradient", inseq_fn(sm, "input_x_gradient"), args.inseq_pairs, 1),
        (
            "captum LLMGradientAttribution(LayerGradientXActivation)",
            captum_fn(sm, "input_x_gradient"),
            args.captum_pairs,
            1,
        ),
        (
            f"captum LLMGradientAttribution(LayerIntegratedGradients, {IG_STEPS} steps)",
            captum_fn(sm, "integrated_gradients"),
            args.ig_pairs,
            1,
        ),
    ]
    results, ours = [], {}  # ours: normxlogit's seconds per pair on the first n pairs, by n
    for name, fn, n, batch in methods:
        if fn is None:
            print(f"{name}: not installed, skipped")
            continue
        n = min(n, len(pairs))
        if n not in ours:  # every ratio compares the same pairs
            ours[n] = seconds_per_pair(lambda b: score_responses(sm, b), pairs[:n], BATCH)
        s = ours[n] if name.startswith("normxlogit") else seconds_per_pair(fn, pairs[:n], batch)
        results.append(
            {
                "method": name,
                "pairs": n,
                "batch": batch,
                "seconds_per_pair": s,
                "ratio_to_normxlogit": s / ours[n],
            }
        )
        print(f"{name}: {s:.4f} s/pair over {n} pairs ({s / ours[n]:.1f}x normxlogit on them)", flush=True)
    tokens = [len(e) for e in pairs]
    report = {
        "model": sm.info.architecture,
        "model_path": args.model or "SmolLM2-135M-Instruct (default)",
        "pairs": len(pairs),
        "chat_template": chat,
        "new_tokens": args.new_tokens,
        "mean_tokens_per_pair": sum(tokens) / len(tokens),
        "mean_response_tokens": sum(e.n_response for e in pairs) / len(pairs),
        "torch_threads": torch.get_num_threads(),
        "results": results,
    }
    mean_tokens, mean_answer = report["mean_tokens_per_pair"], report["mean_response_tokens"]
    print(f"\n{len(pairs)} pairs, {mean_tokens:.1f} tokens each ({mean_answer:.1f} answer tokens)")
    print("| method | pairs | s/pair | x normxlogit |\n|---|---|---|---|")
    for r in results:
        print(
            f"| {r['method']} | {r['pairs']} | {r['seconds_per_pair']:.4f} | {r['ratio_to_normxlogit']:.1f} |"
        )
    (args.out / "bench_responses.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
