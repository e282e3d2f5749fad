"""A real ``normxlogit annotate`` run with a byte-level BPE tokenizer over a hostile corpus.

Shared by the report and compare tests through the ``bpe`` fixture (tests/pipeline/conftest.py).
The tokenizer is a small byte-level BPE (GPT-2 / SmolLM2 style) trained on English only, so every
Hebrew letter and emoji is split into byte tokens that share the character's span. Class labels,
the input file name, document ids and texts carry bidi controls and zero-width characters.
"""

from __future__ import annotations

import json
from pathlib import Path

TEXTS = {
    "he": "שלום עולם",
    "emoji": "great 😀 film",
    "zwj-\u200d-id": "zwj-\u200d-id \u202eevil\u202c ok \u2067rli\u2069 end",
    "\u202erid": "The cat sat on the mat.",
}
LABELS = {0: "neg\u202eative", 1: "pos\u200ditive"}
FILE_NAME = "re\u202eviews\u200b.jsonl"
_CORPUS = [
    "The capital of France is Paris.",
    "A wonderful film with great acting and a dull plot.",
    "The cat sat on the mat; the dog did not.",
] * 4


def byte_level_bpe():
    """A fast byte-level BPE tokenizer (vocab ~300) with <s> prepended, like Llama/SmolLM2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def write_bpe_classifier(folder: Path) -> Path:
    """A tiny random Llama sequence classifier with the byte-level BPE tokenizer and hostile labels."""
    import torch
    import transformers

    tokenizer = byte_level_bpe()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    torch.manual_seed(0)
    transformers.LlamaForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def annotate_bpe_run(cli, folder: Path) -> Path:
    """Annotate ``TEXTS`` (plus one malformed line) with the BPE classifier through ``cli`` (the
    shared fixture); the run folder."""
    model = write_bpe_classifier(folder / "model")
    src = folder / FILE_NAME
    lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in TEXTS.items()]
    src.write_text("\n".join(lines) + "\n{not json\n", encoding="utf-8")
    out = folder / "out"
    assert cli.annotate(src, "--output", out, "--model", model, "--id-field", "id", "--layers", "1,2") == 0
    return out
