"""Writes ``ferret_plausibility_cases.json``: ferret-xai 0.4.2's own plausibility evaluators on 40 cases.

ferret-xai 0.4.2 pins transformers<5 and numpy<2, so it cannot be a test dependency beside this
project's torch 2.13 / transformers 5; the cases were computed once, in a separate venv that sees the
project's packages and adds scikit-learn and ferret-xai installed with --no-deps:

    V=/tmp/ferretplau; SITE=lib/python3.11/site-packages
    python3 -m venv $V && echo $PWD/.venv/$SITE > $V/$SITE/main.pth
    $V/bin/pip install scikit-learn && $V/bin/pip install --no-deps ferret-xai==0.4.2
    $V/bin/python tests/normxlogit/data/make_ferret_cases.py \
        > tests/normxlogit/data/ferret_plausibility_cases.json

(scikit-learn 1.9.1, numpy 2.4.6.) Each case: word scores, a 0/1 rationale, k and ferret's
``auprc_plau``, ``token_f1_plau`` and ``token_iou_plau`` from ``compute_evaluation`` with its defaults
(``remove_first_last``, ``only_pos``) and ``top_k_rationale=k``; the explanation carries [CLS] and
[SEP] around the words, which ``remove_first_last`` drops.
"""

import importlib.util
import json
import sys
import types
from types import SimpleNamespace

import numpy as np

spec = importlib.util.find_spec("ferret")
pkg = types.ModuleType("ferret")
pkg.__path__ = list(spec.submodule_search_locations)
sys.modules["ferret"] = pkg  # skip ferret/__init__.py (it imports the whole benchmark stack)
pm = importlib.import_module("ferret.evaluators.plausibility_measures")
ExplanationWithRationale = importlib.import_module("ferret.explainers.explanation").ExplanationWithRationale


def evaluator(cls):
    ev = object.__new__(cls)
    ev.helper = SimpleNamespace(tokenizer=SimpleNamespace(cls_token="[CLS]"))
    return ev


rng = np.random.default_rng(7)
cases = []
for c in range(40):
    w = int(rng.integers(3, 25))
    scores = np.round(rng.normal(size=w), 3)
    if c % 5 == 0:
        scores = np.abs(scores)
    truth = (rng.random(w) < 0.3).astype(int)
    if truth.sum() == 0:
        truth[int(rng.integers(w))] = 1
    k = int(truth.sum()) if c % 3 else int(rng.integers(1, w + 1))
    # ferret's inputs carry [CLS] and [SEP]: remove_first_last drops them
    tokens = ["[CLS]"] + [f"w{i}" for i in range(w)] + ["[SEP]"]
    e = ExplanationWithRationale("t", tokens, np.r_[0.0, scores, 0.0], "m", 1, np.r_[0, truth, 0].tolist())
    out = {}
    for cls in (
        pm.AUPRC_PlausibilityEvaluation,
        pm.Tokenf1_PlausibilityEvaluation,
        pm.TokenIOU_PlausibilityEvaluation,
    ):
        r = evaluator(cls).compute_evaluation(e, 1, top_k_rationale=k)
        out[r.name] = float(r.score)
    cases.append({"scores": scores.tolist(), "rationale": truth.tolist(), "k": k, "ferret": out})
print(json.dumps(cases))
