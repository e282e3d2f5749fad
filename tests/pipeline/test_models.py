"""README "Models": the encoder-to-classifier recipe gives a folder that ``annotate`` takes."""

from __future__ import annotations

import re
from pathlib import Path

import transformers
from transformers import AutoTokenizer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_recipe() -> str:
    """The Python block of README's "Models" section."""
    section = README.read_text().split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_recipe_turns_an_encoder_into_a_classifier(
    tmp_path, tiny_classifier, run_files, monkeypatch, cli
):
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "encoder_dir")
    AutoTokenizer.from_pretrained(tiny_classifier).save_pretrained(tmp_path / "encoder_dir")
    src = tmp_path / "x.txt"
    src.write_text("a fine film\n")
    monkeypatch.chdir(tmp_path)
    # The bare encoder is refused (no head) ...
    assert cli.annotate("x.txt", "--output", "o1", "--model", "encoder_dir") == 2
    # ... the recipe's folder (head untrained: fine-tuning is left out) is annotated.
    exec(readme_recipe(), {})
    assert cli.annotate("x.txt", "--output", "o2", "--model", "my-classifier", "--target", "positive") == 0
    rows = run_files.rows(tmp_path / "o2")
    assert set(rows["target"].to_pylist()) == {"positive"}
    assert set(rows["prediction"].to_pylist()) <= {"negative", "positive"}
