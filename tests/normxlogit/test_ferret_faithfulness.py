"""ferret's metrics (aopc_compr, aopc_suff, taucorr_loo) equal ferret's procedure; Carton et al.'s
normalised metrics; diagnosticity of a planted perfect explanation is 1.0.

ferret-xai 0.4.2 does not install beside this project (it requires transformers < 5, numpy < 2 and
captum < 0.8), so ``ferret_reference`` below restates its procedure from its source:
``ferret/evaluators/faithfulness_measures.py`` (ferret-xai 0.4.2) lines 49-134 (AOPC
comprehensiveness), 161-252 (AOPC sufficiency), 264-324 (taucorr_loo), and
``ferret/evaluators/utils_from_soft_to_discrete.py`` lines 9-30 (top-k / percentage rationales,
``only_pos``) and 63-88 (defaults: ``remove_first_last``, ``only_pos=True``, ``remove_tokens=True``,
``based_on="perc"``, thresholds ``np.arange(0.1, 1.1, 0.1)``). As in ferret, perturbed texts are
decoded to strings and tokenized again, and the model reads each through the tokenizer.
"""

from __future__ import annotations

import copy
from statistics import mean
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

import normxlogit
from normxlogit.evaluation import EvaluationOptions, evaluate_batch, method_scores
from normxlogit.faithfulness import DocFaithfulness, perturb, rank_tokens
from normxlogit.ferret_evaluation import ferret_scalars
from normxlogit.ferret_faithfulness import (
    DIAGNOSTIC_METRICS,
    FERRET_THRESHOLDS,
    SCALAR_METRICS,
    diagnostic_hits,
    ferret_rationales,
    normalised,
)

# Lower-case words of the WordPiece vocabulary without punctuation: decoding and tokenizing again
# gives the same tokens, so ferret's string round trip and our id removal read the same inputs.
TEXTS = [
    "the film was a great story with fine acting and a good end",
    "dull plot and bad acting so i left early",
    "it was fine",
]


# --- ferret 0.4.2, restated (see the module docstring for the lines) ------------------------------
def _get_id_tokens_top_k(soft_score_explanation, k, only_pos=True):
    if only_pos:
        id_top_k = [
            i for i in np.array(soft_score_explanation).argsort()[-k:][::-1] if soft_score_explanation[i] > 0
        ]
    else:
        id_top_k = np.array(soft_score_explanation).argsort()[-k:][::-1]
    if id_top_k == []:
        return None
    return id_top_k


def _get_id_tokens_percentage(soft_score_explanation, percentage, only_pos=True):
    v = int(percentage * len(soft_score_explanation))
    if v > 0 and v <= len(soft_score_explanation):
        return _get_id_tokens_top_k(soft_score_explanation, v, only_pos=only_pos)
    return None


class FerretReference:
    """ferret's ModelHelper._forward (a batch of strings through the tokenizer) and its evaluators."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    @torch.inference_mode()
    def probs(self, texts: list[str], target: int) -> np.ndarray:
        item = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        return self.model(**item).logits.softmax(-1)[:, target].numpy()

    def _aopc(self, text, scores, target, sufficiency: bool) -> float:
        baseline = self.probs([text], target)[0]
        input_ids = self.tokenizer(text)["input_ids"][1:-1]  # remove_first_last
        score_explanation = scores[1:-1]  # tokens[0] is the cls token
        texts, last_id_top = [], None
        for v in np.arange(0.1, 1.1, 0.1):
            id_top = _get_id_tokens_percentage(score_explanation, v, True)
            if id_top is not None and last_id_top is not None and set(id_top) == last_id_top:
                id_top = None
            if id_top is None:
                continue
            last_id_top = set(id_top)
            sample = np.array(copy.copy(input_ids))
            if sufficiency:
                ids = sample[np.sort(id_top)]
            else:
                ids = np.delete(sample, id_top)
            texts.append(self.tokenizer.decode(ids))
        if texts == []:
            return 1.0 if sufficiency else 0.0
        return mean(baseline - self.probs(texts, target))

    def aopc_compr(self, text, scores, target) -> float:
        return self._aopc(text, scores, target, sufficiency=False)

    def aopc_suff(self, text, scores, target) -> float:
        return self._aopc(text, scores, target, sufficiency=True)

    def taucorr_loo(self, text, scores, target) -> float:
        baseline = self.probs([text], target)[0]
        input_ids = self.tokenizer(text)["input_ids"][1:-1]
        samples = []
        for occ_idx in range(len(input_ids)):
            sample = copy.copy(input_ids)
            sample.pop(occ_idx)
            samples.append(self.tokenizer.decode(sample))
        loo_scores = (self.probs(samples, target) - baseline) * -1
        return kendalltau(loo_scores, scores[1:-1])[0]


# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    sm = normxlogit.load_model(tiny_classifier)
    enc = [normxlogit.encode_text(t, sm.tokenizer, sm.model, sm.adapter, max_length=64) for t in TEXTS]
    return sm, enc


def test_the_round_trip_is_exact_on_these_texts(classifier):
    sm, enc = classifier
    for text, e in zip(TEXTS, enc):
        inner = list(e.input_ids[1:-1])
        for drop in range(len(inner)):
            kept = inner[:drop] + inner[drop + 1 :]
            assert sm.tokenizer(sm.tokenizer.decode(kept))["input_ids"][1:-1] == kept, text


def test_aopc_and_taucorr_equal_ferrets_procedure(classifier):
    """Same model, texts and scores: normxlogit's signed scores (negative ones are left out of the
    rationales) and one random ranking (all positive)."""
    sm, enc = classifier
    opts = EvaluationOptions(methods=("normxlogit", "random"), seed=5, random_seeds=1, batch_tokens=256)
    ids = ["a", "b", "c"]
    scores, predictions, _ = method_scores(sm, enc, ids, opts)
    docs = evaluate_batch(sm, enc, [1, 0, 1], ids, opts)
    ref = FerretReference(sm.model, sm.tokenizer)
    checked = 0
    for text, doc_scores, target, doc in zip(TEXTS, scores, predictions, docs):
        for m, s in enumerate(doc_scores):
            want = [
                ref.aopc_compr(text, s, int(target)),
                ref.aopc_suff(text, s, int(target)),
                ref.taucorr_loo(text, s, int(target)),
            ]
            assert not np.isnan(want).any()
            np.testing.assert_allclose(doc.scalars[m, :3], want, rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked == 6
    # normxlogit's scores have both signs here, so only_pos matters in the comparison.
    assert any((s[0][1:-1] < 0).any() and (s[0][1:-1] > 0).any() for s in scores)


def test_ferrets_float_thresholds_are_floor_tenths():
    n = np.arange(1, 5001)
    for j, t in enumerate(FERRET_THRESHOLDS):
        assert (np.array([int(t * k) for k in n]) == (j + 1) * n // 10).all()


def test_rationales_skip_repeats_and_non_positive_scores():
    scores = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    # v = 0 for 10%, 1 for 20..30%, 2 for 40..50%, 3 for 60..70%, 4 for 80..90%, 5 for 100%:
    # only three tokens are positive, so the sets stop growing at 60%.
    got = [r.tolist() for r in ferret_rationales(scores)]
    assert got == [[2], [2, 4], [2, 4, 0]]
    assert ferret_rationales(np.array([-1.0, -2.0])) == []


def test_a_text_above_the_loo_cap_gets_no_taucorr(classifier):
    sm, enc = classifier
    opts = EvaluationOptions(methods=("normxlogit", "random"), random_seeds=2, loo_max_tokens=5)
    docs = evaluate_batch(sm, enc, [1, 0, 1], ["a", "b", "c"], opts)
    long_, short = docs[0], docs[2]  # 14 and 3 rankable tokens
    assert long_.loo_skipped and np.isnan(long_.scalars[:, 2]).all()
    assert not short.loo_skipped and not np.isnan(short.scalars[:, 2]).any()
    assert not np.isnan(long_.scalars[:, :2]).any()  # the other metrics are unaffected


def test_normalised_metrics_follow_carton():
    # null difference 0.4: Comp = max(0, d) / 0.4, Suff = 1 - max(0, d) / 0.4, clipped to [0, 1].
    comp, suff = normalised(np.array([0.2, 0.6, -0.1]), np.array([0.1, 0.5, -0.2]), 0.4)
    assert comp == pytest.approx(np.mean([0.5, 1.0, 0.0]))
    assert suff == pytest.approx(np.mean([0.75, 0.0, 1.0]))
    assert np.isnan(normalised(np.array([0.1]), np.array([0.1]), 0.0)).all()


def test_diagnostic_hits_count_strict_preferences_over_each_random_row():
    methods, rows = ("a", "random"), np.array([1, 2])
    values = np.zeros((3, len(DIAGNOSTIC_METRICS)))
    values[0] = 0.5
    values[1] = 0.4  # random seed 1: a is better on higher-is-better metrics
    values[2] = 0.5  # random seed 2: a tie, not a preference
    hits = diagnostic_hits(values, rows, methods, "random")
    higher = np.array([m != "sufficiency" and m != "aopc_suff" for m in DIAGNOSTIC_METRICS])
    np.testing.assert_allclose(hits[0], np.where(higher, 0.5, 0.0))
    assert np.isnan(hits[1]).all()
    assert np.isnan(diagnostic_hits(values[:1], np.array([1]), ("a",), "random")).all()


def _additive_model(weights: dict[int, float]):
    """p(class 1 | ids) = sigmoid(sum of the weights of the tokens present - 2): a model whose
    perfect explanation is its weights."""

    def predict(rows, targets):
        logits = np.array([sum(weights.get(int(t), 0.0) for t in r) - 2.0 for r in rows])
        p1 = 1 / (1 + np.exp(-logits))
        return np.where(np.asarray(targets) == 1, p1, 1 - p1)

    return predict


def test_a_planted_perfect_explanation_has_diagnosticity_one():
    """The model adds a known weight per token; the explanation that is those weights beats every
    random ranking on every metric of every document."""
    rng = np.random.default_rng(0)
    cls, sep, mask = 101, 102, 103
    hits_all = []
    for _ in range(20):
        n = int(rng.integers(8, 20))
        ids = np.r_[cls, rng.choice(np.arange(1000, 1100), n, replace=False), sep]
        weights = {int(t): float(w) for t, w in zip(ids[1:-1], rng.uniform(0.05, 1.0, n))}
        predict = _additive_model(weights)
        special = np.zeros(len(ids), dtype=bool)
        special[[0, -1]] = True
        enc = SimpleNamespace(input_ids=ids, special=special)
        perfect = np.r_[0.0, [weights[int(t)] for t in ids[1:-1]], 0.0]
        rankings = np.stack([perfect, *rng.random((3, len(ids)))])  # the method, then 3 random rankings
        original = predict([ids], np.array([1]))[0]
        variants = [perturb(ids, rank_tokens(s, True), mask) for s in rankings]
        drops = np.stack(
            [
                original - predict(list(v.reshape(-1, len(ids))), np.ones(18, int)).reshape(2, 9)
                for v in variants
            ]
        )
        [(values, skipped)] = ferret_scalars(
            predict, [enc], [rankings], np.array([1]), np.array([original]), [drops], mask, 256
        )
        assert not skipped and not np.isnan(values).any()
        per_doc = np.concatenate([drops.mean(-1), values], axis=1)
        hits_all.append(diagnostic_hits(per_doc, np.array([1, 3]), ("planted", "random"), "random")[0])
    np.testing.assert_array_equal(np.mean(hits_all, axis=0), np.ones(len(DIAGNOSTIC_METRICS)))
    assert len(SCALAR_METRICS) == 5


def test_random_seeds_average_the_scalars_that_have_a_value():
    from normxlogit.faithfulness import average_rows

    scalars = np.array([[1.0, np.nan], [2.0, np.nan], [4.0, 3.0]])
    doc = DocFaithfulness(np.zeros((3, 2, 9)), np.zeros((3, 2, 9)), scalars=scalars)
    out = average_rows(doc, np.array([1, 2]))
    np.testing.assert_allclose(out.scalars, [[1.0, np.nan], [3.0, 3.0]])


def test_response_removal_rows_keep_the_response_and_drop_unreadable_rows(make_pair):
    from normxlogit.response_evaluation import RemovalRows

    prompt, response = np.array([11, 12, 13, 14]), np.array([21, 22])
    enc = make_pair(prompt, response)
    removal = RemovalRows()
    scores = np.array([[0.4, 0.3, 0.2, 0.1, 0.0, 0.0], [-1.0, 0.5, -1.0, -1.0, 0.0, 0.0]])
    spans = removal.add(enc, scores)
    assert [count for _, count in spans] == [4, 1]  # 10..100% of 4 tokens: 1, 2, 3, 4 tokens; one positive
    for row, start, readable in zip(removal.rows, removal.starts, removal.readable):
        if readable:
            np.testing.assert_array_equal(row[start:], response)  # the response is untouched
            assert start == len(row) - len(response) >= 1
    # Removing every context token leaves nothing before the response: not read.
    start, count = spans[0]
    assert removal.readable[start : start + count] == [True, True, True, False]
    np.testing.assert_array_equal(removal.rows[start + count], np.r_[11, 21, 22])  # only the top token kept
    second, _ = spans[1]
    np.testing.assert_array_equal(removal.rows[second], np.r_[11, 13, 14, 21, 22])
