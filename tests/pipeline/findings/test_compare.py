"""``normxlogit compare``: words aligned across tokenizers, agreement against scipy, the paired bootstrap
on planted differences, and the documents each run lacks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from normxlogit.pipeline.cli import main
from normxlogit.pipeline.findings import agreement
from normxlogit.pipeline.findings.align import TextBatch, WordRows, align, unit_words
from normxlogit.pipeline.findings.compare import (
    DOCUMENTS_FILE,
    FLIPS_FILE,
    SUMMARY_FILE,
    WORDS_FILE,
)
from normxlogit.pipeline.findings.paired import standardised
from normxlogit.pipeline.findings.word_deltas import ranks
from normxlogit.transforms.layout import DOCUMENTS

# Latin with accents, Cyrillic, Hebrew, emoji (one with a skin-tone modifier), CJK, mixed scripts.
MULTILINGUAL = {
    "latin": "Café naïve Ærøskøbing: the crème brûlée was très bon!",
    "cyrillic": "Привет, мир! Это тест.",
    "hebrew": "שלום עולם, מה שלומך?",
    "emoji": "great 😀 film 👍🏽 ok",
    "cjk": "東京は日本の首都です。",
    "mixed": "Mixed: Tokyo 東京, Москва and עברית 😀.",
    "punctuation": "Don't stop... it's fine?!",
}
# BERT's normaliser drops U+FE0F (a combining mark, stripped with the accents of an uncased model):
# no WordPiece token spans it, so 1 of this text's 13 non-space characters is not covered.
DROPPED = {"heart": "love it ❤️ so much"}


def annotate_texts(cli, folder: Path, model: Path, texts: dict[str, str]) -> Path:
    """``texts`` (by id) annotated by ``model`` into ``folder``/out."""
    src = folder / "texts.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in texts.items())
    )
    out = folder / "out"
    assert cli.annotate(src, "--output", out, "--model", model, "--id-field", "id") == 0
    return out


@pytest.fixture(scope="module")
def tokenizer_runs(tmp_path_factory, tiny_classifier, cli, bpe) -> tuple[Path, Path]:
    """The same texts annotated by a WordPiece (MiniLM's tokenizer) and a byte-level BPE classifier."""
    texts = {**MULTILINGUAL, **DROPPED}
    folder = tmp_path_factory.mktemp("compare-tokenizers")
    (folder / "wordpiece").mkdir()
    (folder / "bpe").mkdir()
    model = bpe.write_bpe_classifier(folder / "bpe" / "model")
    return (
        annotate_texts(cli, folder / "wordpiece", tiny_classifier, texts),
        annotate_texts(cli, folder / "bpe", model, texts),
    )


@pytest.fixture(scope="module")
def compared(tokenizer_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare-out")
    assert main(["compare", *map(str, tokenizer_runs), "--out", str(out), "--min-docs", "1"]) == 0
    return out


def documents(out: Path) -> pd.DataFrame:
    return pq.read_table(out / DOCUMENTS_FILE).to_pandas().set_index("doc_id").sort_index()


def word_rows(run_files, run: Path) -> pd.DataFrame:
    """Words from the raw token rows with pandas: non-special rows summed per (doc_id, word_index)."""
    rows = run_files.rows(run).to_pandas()
    rows = rows[~rows["special"] & rows["word_index"].notna()]
    rows = rows.assign(score=rows["score"].astype("float64"), word_index=rows["word_index"].astype("int64"))
    return rows.groupby(["doc_id", "word_index"]).agg(
        score=("score", "sum"), char_start=("char_start", "min"), char_end=("char_end", "max")
    )


def test_wordpiece_and_byte_level_bpe_words_cover_every_character(compared, tokenizer_runs, run_files):
    docs = documents(compared)
    assert set(docs.index) == set(MULTILINGUAL) | set(DROPPED)
    assert (docs.loc[list(MULTILINGUAL), "char_coverage"] >= 0.999).all()
    assert docs.loc[list(MULTILINGUAL), "char_coverage"].min() == 1.0
    nonspace = sum(not c.isspace() for c in DROPPED["heart"])
    assert docs.loc["heart", "char_coverage"] == pytest.approx((nonspace - 1) / nonspace)
    # WordPiece reads 😀, 👍🏽 and 首 as [UNK]: their characters are covered (the [UNK] keeps their span).
    wordpiece = run_files.rows(tokenizer_runs[0]).to_pandas()
    unknown = wordpiece[wordpiece["token_id"] == 100]
    assert set(unknown["token"]) == {"😀", "👍🏽", "首", "❤"}
    summary = json.loads((compared / SUMMARY_FILE).read_text())
    assert summary["documents"]["compared"] == len(docs)
    assert summary["char_coverage"]["median"] == 1.0


def test_a_token_over_two_words_makes_one_unit(compared, tokenizer_runs, run_files):
    """WordPiece's one [UNK] for 👍🏽 covers two words (👍 and the modifier); BPE has a row for each."""
    wordpiece, bpe = (word_rows(run_files, run).loc["emoji"] for run in tokenizer_runs)
    assert len(bpe) == len(wordpiece) + 1
    assert documents(compared).loc["emoji", "n_words"] == len(wordpiece)
    words = pq.read_table(compared / WORDS_FILE).to_pandas()
    assert "👍🏽" in set(words["word"])


def test_per_document_agreement_equals_a_scipy_reference(compared, tokenizer_runs, run_files):
    wordpiece, bpe = (word_rows(run_files, run) for run in tokenizer_runs)
    joined = wordpiece.join(bpe, how="inner", lsuffix="_a", rsuffix="_b")
    docs = documents(compared)
    checked = 0
    for doc_id, group in joined.groupby(level="doc_id"):
        if doc_id == "emoji":
            continue  # a token over two words: units are not words (test above)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input
            rho = stats.spearmanr(group["score_a"], group["score_b"]).statistic
            tau = stats.kendalltau(group["score_a"], group["score_b"]).statistic
        assert docs.loc[doc_id, "n_words"] == len(group)
        assert docs.loc[doc_id, "spearman"] == pytest.approx(rho, abs=1e-12)
        assert docs.loc[doc_id, "kendall"] == pytest.approx(tau, abs=1e-12)
        same_sign = np.mean(np.sign(group["score_a"]) == np.sign(group["score_b"]))
        assert docs.loc[doc_id, "sign_agreement"] == pytest.approx(same_sign)
        checked += 1
    assert checked == len(docs) - 1


def test_agreement_metrics_equal_scipy_with_ties_and_long_documents():
    rng = np.random.default_rng(3)
    lengths = np.r_[rng.integers(0, 40, 300), 1, 2, 1500]
    doc = np.repeat(np.arange(len(lengths)), lengths)
    x = rng.integers(0, 5, len(doc)).astype(float)  # many ties
    y = x + rng.integers(0, 3, len(doc))
    y[doc == len(lengths) - 2] = 7.0  # a constant document: no correlation
    ranks = [agreement.document_ranks(doc, len(lengths), v) for v in (x, y)]
    rho = agreement.spearman(doc, len(lengths), *ranks)
    tau = agreement.kendall_tau_b(doc, len(lengths), *ranks)
    starts = np.cumsum(lengths) - lengths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_rho = [stats.spearmanr(x[a : a + n], y[a : a + n]).statistic if n > 1 else np.nan
                    for a, n in zip(starts, lengths)]  # fmt: skip
        want_tau = [stats.kendalltau(x[a : a + n], y[a : a + n]).statistic if n > 1 else np.nan
                    for a, n in zip(starts, lengths)]  # fmt: skip
    np.testing.assert_allclose(rho, want_rho, atol=1e-12)
    np.testing.assert_allclose(tau, want_tau, atol=1e-12)
    assert np.isnan(rho[-2]) and np.isnan(tau[-3])


def test_topk_jaccard_breaks_ties_by_position_and_skips_short_documents():
    doc = np.array([0, 0, 0, 0, 1, 1])
    x = np.array([3.0, 1.0, 1.0, 0.0, 1.0, 2.0])
    y = np.array([0.0, 1.0, 5.0, 1.0, 2.0, 1.0])
    ranks = [agreement.document_ranks(doc, 2, v) for v in (x, y)]
    assert ranks[0].from_top.tolist() == [0, 1, 2, 3, 1, 0]
    assert ranks[1].average.tolist() == [1.0, 2.5, 4.0, 2.5, 2.0, 1.0]
    # k=2: doc 0 tops {0, 1} (1 and 2 tie: the earlier) against {2, 1}: 1 shared of 3; doc 1 has k units.
    np.testing.assert_allclose(agreement.topk_jaccard(doc, 2, *ranks, 2), [1 / 3, np.nan])
    np.testing.assert_allclose(agreement.sign_agreement(doc, 2, x, y), [0.5, 1.0])


def test_units_merge_words_a_token_spans_and_coverage_counts_both_runs():
    texts = TextBatch(["Don't stop... now", "  ", "héllo 😀 東京"])
    # run A splits every word; run B has tokens "'t" (words ' and t) and "..." (three words), a leading
    # space in its span of "東京", and no token over 😀.
    a = WordRows(
        doc=np.array([0] * 8 + [2] * 3),
        word_index=np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2]),
        score=np.arange(11.0),
        char_start=np.array([0, 3, 4, 6, 10, 11, 12, 14, 0, 6, 8]),
        char_end=np.array([3, 4, 5, 10, 11, 12, 13, 17, 5, 7, 10]),
    )
    b = WordRows(
        doc=np.array([0] * 5 + [2] * 2),
        word_index=np.array([0, 1, 3, 4, 7, 0, 2]),
        score=np.ones(7),
        char_start=np.array([0, 3, 5, 10, 13, 0, 7]),
        char_end=np.array([3, 5, 10, 13, 17, 5, 10]),
    )
    alignment = align(texts, a, b)
    units = alignment.units
    assert unit_words(texts, units, casefold=True).to_pylist() == [
        "don",
        "'t",
        "stop",
        "...",
        "now",
        "héllo",
        "東京",
    ]
    assert units.word_index.tolist() == [0, 1, 3, 4, 7, 0, 2]
    assert units.score_a.tolist() == [0.0, 1 + 2, 3.0, 4 + 5 + 6, 7.0, 8.0, 10.0]
    assert units.score_b.tolist() == [1.0] * 7
    assert units.row_a.tolist() == [0, 1, 3, 4, 7, 8, 10]
    np.testing.assert_allclose(alignment.coverage, [1.0, np.nan, 7 / 8])  # 😀 is in run A only


def test_standardised_and_ranks():
    doc = np.array([0, 0, 0, 1, 2, 2])
    z, valid = standardised(doc, 3, np.array([1.0, 2.0, 3.0, 5.0, 4.0, 4.0]))
    assert valid.tolist() == [True, False, False]  # one unit; all equal
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    slice_id, ranked = np.array([0, 0, 0, 1, 1, 0]), np.array([1, 1, 1, 1, 1, 0], bool)
    got = ranks(slice_id, np.array([2.0, 5.0, 2.0, 1.0, 3.0, 9.0]), ranked)
    assert got.tolist() == [2, 1, 2, 2, 1, -1]  # ties share the smaller rank; -1: not ranked


def write_run(folder: Path, runs, docs, keep_fields: tuple[str, ...] = ()) -> Path:
    """``runs.write``, with each document's text as its spans count it: words joined by one space
    (``runs.write`` joins its tokens without the spaces; compare reads words in the text itself)."""
    run = runs.write(folder, docs, keep_fields=keep_fields)
    (path,) = DOCUMENTS.paths(run)
    table = pq.read_table(path)
    texts = pa.array([" ".join(d.words) for d in docs], pa.string())
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", texts), path)
    return run


PLANTED = [f"p{i:02d}" for i in range(40)]


def planted_runs(folder: Path, runs, n_docs: int = 120, planted: float = 1.5) -> tuple[Path, Path]:
    """Two runs of the same texts: B's scores are A's plus noise, and ``planted`` more on each of the
    ``PLANTED`` words (each in every document once, with its own noise: 40 independent truths)."""
    rng = np.random.default_rng(11)
    fillers = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    docs_a, docs_b = [], []
    for d in range(n_docs):
        words = [*rng.choice(fillers, rng.integers(5, 12)).tolist(), *PLANTED]
        rng.shuffle(words)
        a = rng.normal(0, 1, len(words))
        b = a + rng.normal(0, 0.5, len(words)) + planted * np.isin(words, PLANTED)
        group = "even" if d % 2 == 0 else "odd"
        docs_a.append(runs.Doc(f"d{d}", words, a.tolist(), {"group": group}))
        docs_b.append(runs.Doc(f"d{d}", words, b.tolist(), {"group": group}))
    return (
        write_run(folder / "a", runs, docs_a, keep_fields=("group",)),
        write_run(folder / "b", runs, docs_b, keep_fields=("group",)),
    )


def test_paired_bootstrap_is_seeded_and_covers_planted_differences(tmp_path, runs):
    run_a, run_b = planted_runs(tmp_path, runs)
    args = [str(run_a), str(run_b), "--no-standardise", "--by", "group", "--bootstrap", "400"]
    tables = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        assert main(["compare", *args, "--seed", str(seed), "--out", str(tmp_path / name)]) == 0
        tables[name] = pq.read_table(tmp_path / name / WORDS_FILE)
    assert tables["first"].equals(tables["again"])
    assert not tables["first"].equals(tables["other"])
    words = tables["first"].to_pandas().set_index(["slice_field", "slice", "word"])
    corpus = words.loc["*"].droplevel(0)
    planted, fillers = corpus.loc[PLANTED], corpus.drop(index=PLANTED)
    # 40 independent 95% intervals of a known difference: about 38 cover it (binomial sd 1.4)
    covered = (planted["delta_ci_low"] < 1.5) & (1.5 < planted["delta_ci_high"])
    assert covered.sum() >= 34
    assert (planted["delta_ci_low"] > 0).all() and (planted["p_value"] < 0.01).all()
    assert ((fillers["delta_ci_low"] < 0) & (0 < fillers["delta_ci_high"])).mean() >= 0.75
    assert (planted["n_docs"] == 120).all() and (planted["rank_b"] <= 40).all()
    by_group = words.loc["group", "n_docs"].groupby("word").sum()
    assert (by_group == corpus["n_docs"].loc[by_group.index]).all()


def test_documents_in_one_run_only_are_counted(tmp_path, runs):
    def doc(i: int, text: str = "") -> object:
        words = (text or f"word{i} and more words here").split()
        return runs.Doc(f"d{i}", words, np.linspace(-1, 1, len(words)).tolist())

    run_a = write_run(tmp_path / "a", runs, [doc(i) for i in range(10)])
    run_b = write_run(tmp_path / "b", runs, [doc(i, "another text" if i == 5 else "") for i in range(3, 13)])
    assert main(["compare", str(run_a), str(run_b), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["documents"] == {
        "run_a": 10, "run_b": 10, "in_both": 7, "compared": 6, "texts_differ": 1, "only_a": 3, "only_b": 3,
    }  # fmt: skip
    assert sorted(documents(tmp_path / "out").index) == ["d3", "d4", "d6", "d7", "d8", "d9"]
    assert (documents(tmp_path / "out")["spearman"] == 1.0).all()
    assert pq.read_table(tmp_path / "out" / FLIPS_FILE).num_rows == 0
    words = pq.read_table(tmp_path / "out" / WORDS_FILE).to_pandas().set_index("word")
    assert words.loc["and", "n_docs"] == 6 and words.loc["and", "rank_a"] > 0
    assert words.loc["word3", "n_docs"] == 1  # below --min-docs 5: no interval, no rank
    assert words.loc[["word3"], ["delta_ci_low", "p_value", "rank_a", "rank_b"]].isna().all(axis=None)


def test_documents_without_a_correlation_give_null_medians(tmp_path, runs, capsys):
    """One-word documents have no Spearman: the medians are null, not a crash."""
    docs = [runs.Doc(f"d{i}", [f"w{i}"], [float(i)]) for i in range(8)]
    run_a, run_b = write_run(tmp_path / "a", runs, docs), write_run(tmp_path / "b", runs, docs)
    assert main(["compare", str(run_a), str(run_b), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["spearman"]["median"] is None and summary["spearman"]["n_docs"] == 0
    assert summary["char_coverage"]["median"] == 1.0
    assert "median Spearman n/a" in capsys.readouterr().out


def test_user_mistakes_fail_in_one_line(tmp_path, runs, capsys):
    run_a = write_run(tmp_path / "a", runs, [runs.Doc("x", ["one", "two"], [1.0, 2.0])])
    run_b = write_run(tmp_path / "b", runs, [runs.Doc("y", ["one", "two"], [1.0, 2.0])])
    (tmp_path / "unfinished").mkdir()
    cases = {
        "unfinished": [str(tmp_path / "unfinished"), str(run_b)],
        "disjoint": [str(run_a), str(run_b)],
        "by": [str(run_a), str(run_b), "--by", "group"],
    }
    for name, argv in cases.items():
        assert main(["compare", *argv, "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("normxlogit compare: error: ") and "\n" not in err, err
        assert {"unfinished": "manifest", "disjoint": "no doc_id in common", "by": "--by group"}[name] in err
    assert not (tmp_path / "out" / DOCUMENTS_FILE).exists()


def test_by_segment_slices_words_and_template_tokens_are_left_out(tmp_path, runs):
    segments = ["template", "prompt", "prompt", "response", "response", "template"]
    words = ["<turn>", "capital", "of", "Paris", "it", "</turn>"]
    rng = np.random.default_rng(5)

    def docs():
        return [runs.Doc(f"c{i}", words, rng.normal(0, 1, 6).tolist(), segments=segments) for i in range(6)]

    run_a, run_b = write_run(tmp_path / "a", runs, docs()), write_run(tmp_path / "b", runs, docs())
    assert main(["compare", str(run_a), str(run_b), "--by", "segment", "--out", str(tmp_path / "out")]) == 0
    table = pq.read_table(tmp_path / "out" / WORDS_FILE).to_pandas()
    assert set(zip(table["slice_field"], table["slice"], table["word"])) == {
        *(("*", "*", w) for w in words[1:5]),
        ("segment", "prompt", "capital"),
        ("segment", "prompt", "of"),
        ("segment", "response", "Paris"),
        ("segment", "response", "it"),
    }
    assert (table["n_docs"] == 6).all()
    assert (documents(tmp_path / "out")["n_words"] == 4).all()
    # the template tokens' characters are in no word of either run
    assert documents(tmp_path / "out")["char_coverage"].tolist() == [16 / 29] * 6
