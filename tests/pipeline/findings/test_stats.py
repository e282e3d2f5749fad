"""``normxlogit stats``: figures equal a pandas recount from the token rows, the same seed writes the
same files, and user errors end in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import false_discovery_control

from normxlogit.pipeline.cli import main
from normxlogit.pipeline.findings import bootstrap, replicates
from normxlogit.pipeline.findings.bootstrap import Resampling
from normxlogit.pipeline.findings.slices import CORPUS
from normxlogit.pipeline.findings.stats import (
    COVERAGE_NOTE,
    LEXICON_FILE,
    SUMMARY_FILE,
    WORDS_FILE,
    WORDS_SCHEMA,
    StatsOptions,
    compute_stats,
)
from normxlogit.pipeline.findings.words import read_documents

COLUMNS = [
    "slice_field", "slice", "word", "n_docs", "n_occurrences", "mean_score", "mean_ci_low", "mean_ci_high",
    "share", "share_ci_low", "share_ci_high", "lift", "p_value", "q_value",
]  # fmt: skip


def recount(run_files, run, by: list[str], casefold: bool = False) -> pd.DataFrame:
    """Per (slice, word): documents, occurrences, summed and absolute scores, from the token rows and the
    documents table with pandas, independently of the package's word grouping."""
    rows = run_files.rows(run).to_pandas()
    rows = rows[~rows["special"] & rows["word_index"].notna()]
    rows = rows.assign(score=rows["score"].astype("float64"))
    words = (
        rows.groupby(["doc_id", "word_index"], sort=False)
        .agg(score=("score", "sum"), start=("char_start", "min"), end=("char_end", "max"))
        .reset_index()
    )
    docs = read_documents(run, ["text", *by]).to_pandas().set_index("doc_id")
    texts = docs["text"]
    words["word"] = [texts[d][a:b].strip() for d, a, b in zip(words["doc_id"], words["start"], words["end"])]
    if casefold:
        words["word"] = words["word"].str.lower()
    words = words.join(docs[by], on="doc_id")
    words["abs"] = words["score"].abs()
    parts = []
    for field in [CORPUS, *by]:
        label = words[field] if field != CORPUS else CORPUS
        grouped = words.assign(slice_field=field, slice=label).groupby(
            ["slice_field", "slice", "word"], dropna=False
        )
        parts.append(
            grouped.agg(n_docs=("doc_id", "nunique"), n_occurrences=("score", "size"),
                        total=("score", "sum"), mass=("abs", "sum")).reset_index()
        )  # fmt: skip
    table = pd.concat(parts, ignore_index=True)
    table["mean_score"] = table["total"] / table["n_occurrences"]
    table["share"] = table["mass"] / table.groupby(["slice_field", "slice"], dropna=False)["mass"].transform(
        "sum"
    )
    corpus = table[table["slice_field"] == CORPUS].set_index("word")
    outside_total = corpus.loc[table["word"], "total"].to_numpy() - table["total"]
    outside_n = corpus.loc[table["word"], "n_occurrences"].to_numpy() - table["n_occurrences"]
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = table["mean_score"] / (outside_total / outside_n)
    table["lift"] = lift.where((table["slice_field"] != CORPUS) & (outside_n > 0) & (outside_total != 0))
    return table.set_index(["slice_field", "slice", "word"]).sort_index()


def check_against_recount(run_files, run, by: list[str], casefold: bool = False) -> pd.DataFrame:
    options = StatsOptions(by=tuple(by), resampling=Resampling(200), casefold=casefold)
    got = (
        compute_stats(run, options).words.to_pandas().set_index(["slice_field", "slice", "word"]).sort_index()
    )
    want = recount(run_files, run, by, casefold)
    assert got.index.equals(want.index)
    for column in ("n_docs", "n_occurrences", "mean_score"):  # exact: the same float64 sums of float32 scores
        assert (got[column] == want[column]).all(), column
    np.testing.assert_allclose(got["share"], want["share"], rtol=1e-12)
    np.testing.assert_allclose(got["lift"], want["lift"], rtol=1e-12)  # nan where both are missing
    return got


def test_stats_of_a_real_run_equal_a_pandas_recount(annotated_run, run_files):
    got = check_against_recount(run_files, annotated_run, ["prediction", "group", "source"])
    assert ("group", "a", "great") in got.index and (CORPUS, CORPUS, "THE") in got.index
    folded = check_against_recount(run_files, annotated_run, ["group"], casefold=True)
    assert (CORPUS, CORPUS, "THE") not in folded.index
    assert folded.loc[(CORPUS, CORPUS, "the"), "n_occurrences"] == sum(
        got.loc[(CORPUS, CORPUS, w), "n_occurrences"] for w in ("The", "the", "THE")
    )


def test_stats_of_a_synthetic_run_equal_a_pandas_recount(synthetic_run, run_files):
    got = check_against_recount(run_files, synthetic_run, ["prediction", "target", "source"])
    assert set(got.index.get_level_values("slice_field")) == {CORPUS, "prediction", "target", "source"}


def test_intervals_and_tests_only_where_words_have_support(synthetic_run):
    table = compute_stats(synthetic_run, StatsOptions(by=("prediction",), resampling=Resampling(200))).words
    assert table.schema == WORDS_SCHEMA and table.column_names == COLUMNS
    words = table.to_pandas()
    rare, common = words[words["n_docs"] < 5], words[words["n_docs"] >= 5]
    assert len(rare) and rare[["mean_ci_low", "share_ci_low", "p_value", "q_value"]].isna().all().all()
    assert common[["mean_ci_low", "mean_ci_high", "share_ci_low", "share_ci_high"]].notna().all().all()
    assert (common["mean_ci_low"] <= common["mean_score"]).mean() > 0.99
    assert (common["mean_score"] <= common["mean_ci_high"]).mean() > 0.99
    corpus = words[words["slice_field"] == CORPUS]
    assert corpus["lift"].isna().all() and corpus.loc[corpus["n_docs"] >= 5, "p_value"].notna().all()
    for _, part in words.groupby(["slice_field", "slice"]):
        tested = part["p_value"].notna()
        np.testing.assert_allclose(
            part.loc[tested, "q_value"], false_discovery_control(part.loc[tested, "p_value"])
        )
    # rows: the corpus first, then each slice; words in order within a slice
    assert words["slice"].tolist()[: len(corpus)] == [CORPUS] * len(corpus)
    assert words["word"].tolist()[: len(corpus)] == sorted(corpus["word"])


def test_a_slice_effect_is_found_and_a_word_without_one_is_not(runs, tmp_path):
    rng = np.random.default_rng(1)
    docs = []
    for i in range(140):
        group = None if i >= 120 else "A" if i % 2 else "B"  # a record without the field: its own slice
        words = ["good", "the", "good", "the", "plot"]
        effect = 2.0 if group == "A" else 0.5
        scores = [
            effect + rng.normal(0, 1),
            rng.normal(0, 1),
            effect + rng.normal(0, 1),
            rng.normal(0, 1),
            1.0,
        ]
        docs.append(runs.Doc(f"d{i}", words, scores, {"group": group}))
    run = runs.write(tmp_path / "run", docs, keep_fields=("group",))
    found = compute_stats(run, StatsOptions(by=("group",))).words
    assert list(dict.fromkeys(found["slice"].to_pylist())) == [CORPUS, "A", "B", None]  # null last
    table = found.to_pandas()
    assert table.loc[table["slice"].isna() & (table["word"] == "good"), "n_docs"].tolist() == [20]
    words = table.set_index(["slice", "word"])
    assert words.loc[("A", "good"), "p_value"] < 0.01 and words.loc[("A", "good"), "lift"] > 1
    a, corpus = words.loc[("A", "good")], words.loc[(CORPUS, "good")]  # outside A: B and the null slice
    outside = (corpus["mean_score"] * corpus["n_occurrences"] - a["mean_score"] * a["n_occurrences"]) / (
        corpus["n_occurrences"] - a["n_occurrences"]
    )
    assert a["lift"] == pytest.approx(a["mean_score"] / outside)
    assert words.loc[("A", "good"), "mean_ci_low"] > 1.5 and words.loc[("B", "good"), "mean_ci_high"] < 1.0
    assert words.loc[("A", "the"), "p_value"] > 0.05 and words.loc[("A", "the"), "q_value"] > 0.05
    assert words.loc[("A", "plot"), "mean_ci_low"] == words.loc[("A", "plot"), "mean_ci_high"] == 1.0
    assert words.loc[(CORPUS, "good"), "p_value"] < 0.01  # the corpus mean (about 1.2) is not 0


def test_segments_slice_a_response_run_and_template_tokens_are_left_out(runs, tmp_path):
    docs = [
        runs.Doc(
            f"c{i}",
            ["<", "user", ">", "hi", "there", "Hello", "there"],
            [9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0 + i],
            segments=["template"] * 3 + ["user", "user", "response", "response"],
        )
        for i in range(6)
    ]
    run = runs.write(tmp_path / "run", docs)
    words = compute_stats(run, StatsOptions(by=("segment",), resampling=Resampling(100))).words.to_pandas()
    assert set(zip(words["slice_field"], words["slice"])) == {
        (CORPUS, CORPUS),
        ("segment", "user"),
        ("segment", "response"),
    }
    assert "user" not in set(words["word"]) and "<" not in set(words["word"])
    there = words[words["word"] == "there"].set_index("slice")
    assert there.loc["user", "mean_score"] == 2.0 and there.loc["response", "mean_score"] == np.mean(
        4.0 + np.arange(6)
    )
    assert (
        there.loc["user", "n_docs"] == there.loc[CORPUS, "n_docs"] == 6
        and there.loc[CORPUS, "n_occurrences"] == 12
    )
    assert there.loc["user", "lift"] == pytest.approx(2.0 / 6.5)


def test_blocks_of_words_give_the_same_figures_as_one_block(synthetic_run, monkeypatch):
    options = StatsOptions(by=("prediction", "source"), resampling=Resampling(50, seed=3))
    whole = compute_stats(synthetic_run, options).words
    monkeypatch.setattr(replicates, "ACCUMULATOR_BYTES", 3 * 8 * 50 * 40)  # 40 rows a block
    assert len(replicates.word_blocks(*_blocks_input(synthetic_run, options))) > 10
    assert compute_stats(synthetic_run, options).words.equals(whole)


def test_a_chunk_of_many_documents_is_weighed_docs_per_chunk_at_a_time(synthetic_run, monkeypatch):
    """The run's 400 documents are one chunk of word rows; the bootstrap weighs at most
    ``DOCS_PER_CHUNK`` of them at once (a chunk of one-word documents holds 131,072) and finds the
    same figures as when it weighs them all at once."""
    options = StatsOptions(by=("prediction", "source"), resampling=Resampling(50, seed=3))
    weighted, weigh = [], bootstrap.poisson_weights

    def recorded(keys, resampling, *args):
        weighted.append(len(keys))
        return weigh(keys, resampling, *args)

    monkeypatch.setattr(bootstrap, "poisson_weights", recorded)
    whole = compute_stats(synthetic_run, options).words
    assert max(weighted) == 400
    weighted.clear()
    monkeypatch.setattr(bootstrap, "DOCS_PER_CHUNK", 16)
    bounded = compute_stats(synthetic_run, options).words
    assert max(weighted) == 16
    assert bounded.drop(COLUMNS[5:]).equals(whole.drop(COLUMNS[5:]))
    for name in COLUMNS[5:]:  # the same sums, added in another order
        np.testing.assert_allclose(bounded[name].to_numpy(), whole[name].to_numpy(), rtol=1e-9, atol=1e-12)


def _blocks_input(run, options):
    from normxlogit.pipeline.findings.stats import _Run, _word_counts
    from normxlogit.pipeline.findings.tally import Tally

    source, tally = _Run(run, options), Tally()
    for obs in source.observations():
        tally.add(obs, np.asarray(source.slices.field_of))
    words = tally.words()
    return words, _word_counts(words, options.min_docs).eligible, len(source.slices), options.resampling


def stats(run, out, *extra) -> int:
    return main(["stats", str(run), "--by", "prediction", "--out", str(out), "--bootstrap", "100", *extra])


def test_the_same_seed_writes_the_same_files_and_another_seed_other_intervals(
    synthetic_run, tmp_path, capsys
):
    (tmp_path / "lex.json").write_text('{"first": ["an", "anan"], "second": ["ananan"]}')
    lexicon = ["--lexicon", str(tmp_path / "lex.json")]
    assert stats(synthetic_run, tmp_path / "one", *lexicon) == 0
    assert stats(synthetic_run, tmp_path / "two", *lexicon) == 0
    assert stats(synthetic_run, tmp_path / "seed", *lexicon, "--seed", "1") == 0
    for name in (WORDS_FILE, LEXICON_FILE, SUMMARY_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    one, seed = (pq.read_table(tmp_path / d / WORDS_FILE).to_pandas() for d in ("one", "seed"))
    assert one[["word", "mean_score", "share", "lift"]].equals(seed[["word", "mean_score", "share", "lift"]])
    assert not one["mean_ci_low"].equals(seed["mean_ci_low"])
    summary = json.loads((tmp_path / "one" / SUMMARY_FILE).read_text())
    assert summary["intervals"] == (
        "95% percentile interval, document bootstrap (Poisson(1) weight per document), B=100, seed 0; "
        "percentile intervals undercover with few documents: nominal 95% intervals covered the true mean "
        "about 88% of the time at 5 documents, 91% at 10, 93% at 20, 94% at 100 (simulation)"
    )
    assert summary["options"] == {"by": ["prediction"], "bootstrap": 100, "seed": 0, "min_docs": 5,
                                  "casefold": False, "lexicon": str(tmp_path / "lex.json"),
                                  "include_template": False}  # fmt: skip
    corpus = summary["slices"][0]
    assert (corpus["slice_field"], corpus["slice"], corpus["n_docs"]) == (CORPUS, CORPUS, 400)
    assert sum(s["n_docs"] for s in summary["slices"][1:]) == 400
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "corpus: top 5 words by mean_score"  # each slice's top words, then where they went
    wrote = [line for line in out if line.startswith("normxlogit: wrote ")]
    assert [line.split(",")[0] for line in wrote] == [
        f"normxlogit: wrote {tmp_path / name / WORDS_FILE}" for name in ("one", "two", "seed")
    ]
    # without --lexicon, a lexicon.parquet left by an earlier run is removed
    assert stats(synthetic_run, tmp_path / "one") == 0 and not (tmp_path / "one" / LEXICON_FILE).exists()


def test_the_help_of_min_docs_says_how_intervals_of_few_documents_cover(capsys):
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 5); " + COVERAGE_NOTE in help_text


@pytest.mark.parametrize(
    "case, message",
    [
        ("no run", "{tmp} is not a finished normxlogit run (no manifest.json)"),
        (
            "unknown field",
            "--by lang: not a field of this run; choose from prediction, target, source, segment",
        ),
        ("bad lexicon", "--lexicon {tmp}/lex.json: not valid JSON"),
        ("old run", "{tmp}/old has no documents table (documents/)"),
    ],
)
def test_user_errors_end_in_one_line(case, message, synthetic_run, synthetic, tmp_path, capsys):
    (tmp_path / "lex.json").write_text("{oops")
    synthetic.write_synthetic_run(tmp_path / "old", 3)
    run, extra = {
        "no run": (tmp_path, []),
        "unknown field": (synthetic_run, ["--by", "lang"]),
        "bad lexicon": (synthetic_run, ["--lexicon", str(tmp_path / "lex.json")]),
        "old run": (tmp_path / "old", []),
    }[case]
    assert stats(run, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("normxlogit stats: error: " + message.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists()


def test_the_top_words_print_with_their_interval_lift_and_q():
    import pyarrow as pa

    from normxlogit.pipeline.findings.terminal import top_word_lines

    words = pa.table(
        {
            "slice_field": ["*", "*", "*", "label", "label"],
            "slice": ["*", "*", "*", "pos", "pos"],
            "word": ["good", "the", "rare", "good", "the"],
            "n_docs": [40, 50, 2, 20, 25],
            "mean_score": [2.5, 0.1, 9.0, 3.0, 0.2],
            "mean_ci_low": [2.0, 0.05, None, 2.4, 0.1],
            "mean_ci_high": [3.0, 0.15, None, 3.6, 0.3],
            "lift": [None, None, None, 1.5, 2.0],
            "q_value": [None, None, None, 0.01, 0.5],
        }
    )
    lines = top_word_lines(words, 1, "mean_score", "mean_ci_low", "mean_ci_high")
    # "rare" has the highest mean but no interval (too few documents): it is not a finding.
    assert lines == [
        "corpus: top 1 words by mean_score",
        "  good             2.5 [2, 3]                        40 docs",
        "label = 'pos': top 1 words by mean_score",
        "  good             3 [2.4, 3.6]                      20 docs  lift 1.5  q 0.01",
    ]
