"""Lexicons: read from JSON or CSV, refused in one line when malformed, and their share differences
between slices recovered with intervals that cover a known truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from normxlogit.pipeline.findings.bootstrap import Resampling, document_keys
from normxlogit.pipeline.findings.lexicon import WORD_PATTERN, Lexicon, LexiconError, read_lexicon
from normxlogit.pipeline.findings.lexicon_shares import lexicon_table
from normxlogit.pipeline.findings.observations import Observations, category_entries
from normxlogit.pipeline.findings.replicates import MassSums
from normxlogit.pipeline.findings.slices import CORPUS, Slices
from normxlogit.pipeline.findings.stats import StatsOptions, compute_stats
from normxlogit.pipeline.findings.tally import Tally
from normxlogit.words import WORD


def test_json_and_csv_lexicons_read_the_same(tmp_path):
    (tmp_path / "l.json").write_text(
        '{"identity": ["Muslim", "gay", "gay"], "negation": ["not", "never", "n"]}'
    )
    (tmp_path / "l.csv").write_text(
        "category,word\nidentity,Muslim\nidentity,gay\nnegation,not\nnegation,never\nnegation,n\n"
    )
    from_json, from_csv = read_lexicon(tmp_path / "l.json"), read_lexicon(tmp_path / "l.csv")
    assert from_json.categories == from_csv.categories == ("identity", "negation")
    assert from_json.words == from_csv.words == (("Muslim", "gay"), ("not", "never", "n"))
    assert read_lexicon(tmp_path / "l.json", casefold=True).words[0] == ("muslim", "gay")
    position, category = from_json.matches(pa.array(["gay", "the", "not", "muslim"]))
    assert sorted(zip(position.tolist(), category.tolist())) == [(0, 0), (2, 1)]


def test_entries_are_words_as_word_index_splits_them():
    assert WORD_PATTERN.pattern == WORD.pattern and WORD_PATTERN.flags == WORD.flags


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("l.json", "{not json", "not valid JSON"),
        ("l.json", '["a", "b"]', 'expected an object of categories, each a list of words: {"category"'),
        ("l.json", '{"a": "word"}', "expected an object of categories"),
        ("l.json", '{"a": ["gay man"]}', "'gay man' in category 'a' is not one word"),
        ("l.json", "{}", "no category holds a word"),
        ("l.csv", "name,term\na,b\n", "expected a header with the columns category, word, found name, term"),
        ("l.txt", "a", "expected a .json or .csv file"),
    ],
)
def test_a_malformed_lexicon_is_refused_in_one_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(LexiconError, match=None) as err:
        read_lexicon(tmp_path / name)
    assert str(err.value).startswith(f"--lexicon {tmp_path / name}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(LexiconError, match="cannot read it"):
        read_lexicon(tmp_path / "missing.json")


def lexicon_differences(n_corpora: int, n_docs: int, resampling: Resampling, rng: np.random.Generator):
    """The lexicon rows of simulated corpora, drawn as ``stats`` draws them (``category_entries``,
    ``Tally``, ``MassSums``, ``lexicon_table``), many corpora in one pass: corpus c is the ``--by``
    field ``c{c}`` of two slices of ``n_docs`` documents, A then B.

    A document holds 9 other words and Binomial(4, p) words of the category, each of absolute score
    1 to 3 (p = 0.5 in A, 0.3 in B): a slice's share has the truth 4p / (9 + 4p).
    """
    lexicon = Lexicon(("identity",), (("id",),), "simulated")
    slices = Slices((CORPUS, *(f"c{c}" for c in range(n_corpora))))
    in_b = np.tile(np.repeat([False, True], n_docs), n_corpora)
    slice_of = np.concatenate(
        [slices.ids(f"c{c}", pa.array(["A"] * n_docs + ["B"] * n_docs)) for c in range(n_corpora)]
    )
    n = len(slice_of)
    k = rng.binomial(4, np.where(in_b, 0.3, 0.5))
    part = (rng.uniform(1, 3, (n, 4)) * (np.arange(4) < k[:, None])).sum(axis=1)
    other = rng.uniform(1, 3, (n, 9)).sum(axis=1)
    has = np.flatnonzero(k > 0)
    doc = np.r_[has, np.arange(n)]  # one entry per (word, document): "id" where it occurs, "w" always
    word = np.r_[np.zeros(len(has), np.int64), np.ones(n, np.int64)]
    count, mass = np.r_[k[has], np.full(n, 9)].astype(np.float64), np.r_[part[has], other]
    obs = Observations(
        words=pa.array(["id", "w"]),
        keys=document_keys([f"d{i}" for i in range(n)]),
        slice_id=np.r_[np.zeros(len(doc), np.int64), slice_of[doc]],  # the corpus slice and the document's
        word=np.tile(word, 2),
        doc=np.tile(doc, 2),
        score=np.tile(mass, 2),
        count=np.tile(count, 2),
        mass=np.tile(mass, 2),
    )
    categories = category_entries(obs, lexicon)
    tally, sums = Tally(1), MassSums(len(slices), 1, resampling)
    tally.add(obs, np.asarray(slices.field_of), categories)
    sums.add(obs, categories)
    return lexicon_table(tally.categories(), tally.slices(), sums, slices, 5, lexicon)


def test_the_interval_of_a_difference_of_shares_covers_the_truth_in_simulated_corpora():
    # 1000 corpora: the coverage to within about 0.007 (one standard error)
    table = lexicon_differences(1000, 80, Resampling(replicates=400, seed=4), np.random.default_rng(17))
    found = table.filter(pc.equal(table["versus"], "B")).to_pydict()
    truth = 4 * 0.5 / (9 + 4 * 0.5) - 4 * 0.3 / (9 + 4 * 0.3)
    assert len(found["difference"]) == 1000
    low, high = (np.array(found[c]) for c in ("difference_ci_low", "difference_ci_high"))
    covered = (low <= truth) & (truth <= high)
    print(f"coverage of nominal 95% intervals of a difference of lexicon shares: {covered.mean():.3f}")
    assert 0.93 <= covered.mean() <= 0.97, covered.mean()


def test_stats_recovers_a_known_difference_of_lexicon_shares_between_slices(runs, tmp_path):
    rng = np.random.default_rng(3)
    docs = []
    for dialect, p in (("A", 0.5), ("B", 0.25), ("C", 0.25)):
        for i in range(300):
            k = int(rng.binomial(4, p))
            words = ["id"] * k + ["w"] * 9
            scores = [1.0 if rng.random() < 0.5 else -1.0 for _ in words]  # |score| 1: the share counts words
            docs.append(runs.Doc(f"{dialect}{i}", words, scores, {"dialect": dialect}))
    run = runs.write(tmp_path / "run", docs, keep_fields=("dialect",))
    (tmp_path / "lex.json").write_text('{"identity": ["id"]}')
    options = StatsOptions(
        by=("dialect",), resampling=Resampling(1000, seed=0), lexicon=read_lexicon(tmp_path / "lex.json")
    )
    table = compute_stats(run, options).lexicon
    rows = {(r["slice"], r["versus"]): r for r in table.to_pylist()}
    share_a, share_b = 2 / 11, 1 / 10
    for name, truth in (("A", share_a), ("B", share_b)):
        assert rows[(name, None)]["share_ci_low"] <= truth <= rows[(name, None)]["share_ci_high"]
    large = rows[("A", "B")]
    assert large["difference_ci_low"] <= share_a - share_b <= large["difference_ci_high"]
    assert large["difference_ci_low"] > 0 and large["p_value"] < 0.01
    same = rows[("B", "C")]  # no difference: the interval holds 0
    assert same["difference_ci_low"] <= 0 <= same["difference_ci_high"] and same["p_value"] > 0.05
    counted = table.filter(pc.and_(pc.equal(table["slice"], "A"), pc.is_null(table["versus"])))
    assert counted["n_occurrences"].to_pylist() == [sum(d.words.count("id") for d in docs[:300])]
    assert table.column_names[:4] == ["slice_field", "slice", "versus", "category"]
    assert [(r["slice"], r["versus"]) for r in table.to_pylist()] == [
        ("*", None), ("A", None), ("A", "B"), ("A", "C"), ("B", None), ("B", "C"), ("C", None)
    ]  # fmt: skip
