"""The batch engine: planned buckets with split-and-retry, columnar results in input order."""

from __future__ import annotations

import pickle
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from normxlogit import engine as engine_module
from normxlogit.engine import BatchEngine, BucketDone, EngineOptions, run_planned
from normxlogit.errors import RecordError
from normxlogit.scoring import forward_base, score_batch

from .conftest import forward_threads

TOL = dict(atol=1e-5, rtol=1e-5)


def test_run_planned_halves_a_failing_bucket_down_to_the_bad_item():
    lengths = [5, 5, 5, 5, 5, 5]
    calls = []

    def fn(idx):
        calls.append(list(idx))
        if 3 in idx:
            raise RuntimeError("boom")
        return sum(idx)

    planned = run_planned(lengths, batch_tokens=1000, fn=fn)
    assert calls[0] == [0, 1, 2, 3, 4, 5]
    assert set(planned.failed) == {3} and "boom" in str(planned.failed[3])
    done = sorted(i for idx, _ in planned.groups for i in idx)
    assert done == [0, 1, 2, 4, 5]
    assert all(result == sum(idx) for idx, result in planned.groups)
    assert planned.padded_tokens == 5 * 5


def test_run_planned_counts_padded_positions_per_bucket():
    planned = run_planned([2, 3, 10], batch_tokens=10, fn=len)
    assert planned.padded_tokens == sum(
        len(idx) * max([2, 3, 10][i] for i in idx) for idx, _ in planned.groups
    )
    assert sorted(i for idx, _ in planned.groups for i in idx) == [0, 1, 2]


def test_run_planned_tells_of_each_bucket_as_it_settles_before_the_next_runs():
    """``on_done`` hears of a bucket (or a retried half) that succeeded before any later bucket
    runs, and never of one that failed."""
    events = []

    def fn(idx):
        events.append(("run", list(idx)))
        if 3 in idx:
            raise RuntimeError("boom")
        return idx

    planned = run_planned(
        [5, 5, 5, 5], batch_tokens=10, fn=fn, on_done=lambda idx: events.append(("done", idx))
    )
    assert events == [
        ("run", [0, 1]),
        ("done", [0, 1]),
        ("run", [2, 3]),
        ("run", [2]),
        ("done", [2]),
        ("run", [3]),
    ]
    assert set(planned.failed) == {3}


@pytest.fixture
def failing_seven(make_sm, make_ids, make_encoded, monkeypatch):
    """A classifier whose forward pass fails on any bucket holding the 7-token text, and four items:
    texts of 6, 7 and 8 tokens with a record error in second place."""
    sm = make_sm("bert", "classification")
    encoded = [make_encoded(sm, make_ids(n, seed=n)) for n in (6, 7, 8)]
    items = [encoded[0], RecordError("unknown_target", "no such class"), encoded[1], encoded[2]]
    real = engine_module.score_prepared

    def fails_on_seven(model, prepared, layers=()):
        if (prepared.padded.lengths == 7).any():
            raise RuntimeError("simulated failure")
        return real(model, prepared, layers)

    monkeypatch.setattr(engine_module, "score_prepared", fails_on_seven)
    return sm, items


def test_on_bucket_hears_each_scored_bucket_in_input_positions(failing_seven):
    sm, items = failing_seven
    heard = []
    scored = BatchEngine(sm).score_encoded(items, on_bucket=heard.append)
    # one bucket of the three texts fails; its halves [6] and [7, 8] run, then [7] and [8]
    assert heard == [BucketDone((0,), 6), BucketDone((3,), 8)]
    assert sum(b.docs for b in heard) == len(scored.index) and sum(b.tokens for b in heard) == scored.tokens


def test_run_planned_on_a_device_prepares_the_next_buckets_while_one_runs():
    """With a device (the model's forward thread), the caller prepares bucket k+1 while bucket k
    runs there: the first bucket's pass waits for the second bucket's preparation, which a loop
    that prepared and ran in turn would never reach (it would time out below)."""
    second_prepared = threading.Event()
    prepared, ran_on = [], set()

    def prepare(idx):
        prepared.append(list(idx))
        if len(prepared) == 2:
            second_prepared.set()
        return [i * 10 for i in idx]

    def fn(job):
        ran_on.add(threading.current_thread().name)
        if job == [0]:
            assert second_prepared.wait(timeout=10), "the next bucket was not prepared meanwhile"
        return sum(job)

    device = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
    try:
        planned = run_planned([4, 4, 4, 4], batch_tokens=4, fn=fn, prepare=prepare, device=device)
    finally:
        device.shutdown()
    assert prepared == [[0], [1], [2], [3]]
    assert [(idx, result) for idx, result in planned.groups] == [([0], 0), ([1], 10), ([2], 20), ([3], 30)]
    assert not planned.failed and planned.padded_tokens == 16
    assert len(ran_on) == 1 and ran_on.pop().startswith("device")


@pytest.mark.parametrize("where", ["prepare", "device"])
def test_run_planned_on_a_device_halves_a_failing_bucket(where):
    """A bucket that fails on the device, or while being prepared, is halved and retried as
    without a device; the same items succeed and fail."""

    def prepare(idx):
        if where == "prepare" and 3 in idx:
            raise ValueError("cannot pad")
        return list(idx)

    def fn(job):
        if where == "device" and 3 in job:
            raise RuntimeError("out of memory (simulated)")
        return sum(job)

    lengths = [5] * 6 + [9] * 3
    with ThreadPoolExecutor(max_workers=1) as device:
        planned = run_planned(lengths, batch_tokens=30, fn=fn, prepare=prepare, device=device, ahead=1)
    alone = run_planned(lengths, batch_tokens=30, fn=lambda idx: fn(prepare(idx)))
    assert set(planned.failed) == set(alone.failed) == {3}
    assert sorted(map(tuple, (idx for idx, _ in planned.groups))) == sorted(
        map(tuple, (idx for idx, _ in alone.groups))
    )
    assert all(result == sum(idx) for idx, result in planned.groups)
    assert planned.padded_tokens == alone.padded_tokens


def test_the_engine_runs_every_forward_pass_on_the_models_one_forward_thread(make_sm, make_ids, make_encoded):
    sm = make_sm("bert", "classification")
    batch = [make_encoded(sm, make_ids(n, seed=n)) for n in (5, 9, 14, 30)]
    with forward_threads(sm) as threads:
        scored = BatchEngine(sm, EngineOptions(batch_tokens=30)).score_encoded(batch)
    assert scored.index.tolist() == [0, 1, 2, 3]
    assert len(threads) == 1 and threads.pop().startswith("normxlogit-forward")
    assert sm.forward_thread() is sm.forward_thread()
    copy = pickle.loads(pickle.dumps(sm))  # a copy (another worker) makes its own thread
    assert copy._forward is None and copy.forward_thread() is not sm.forward_thread()


def test_a_failed_bucket_does_not_keep_what_its_pass_held():
    """A failure's traceback frames are cleared as it leaves the bucket: what the pass allocated (on a
    GPU, its activations) is freed before the halves are retried, not when the error is dropped."""

    class Activations:
        pass

    held = []

    def fn(idx):
        activations = Activations()
        held.append(weakref.ref(activations))
        raise RuntimeError("out of memory (simulated)")

    with ThreadPoolExecutor(max_workers=1) as device:
        planned = run_planned([3, 3], batch_tokens=10, fn=fn, prepare=list, device=device)
    alone = run_planned([3, 3], batch_tokens=10, fn=fn)
    assert set(planned.failed) == set(alone.failed) == {0, 1} and len(held) == 6
    assert all(ref() is None for ref in held)
    assert all("simulated" in str(err) for err in [*planned.failed.values(), *alone.failed.values()])


def test_a_caller_holding_the_models_lock_runs_its_passes_itself(make_sm, make_ids, make_encoded):
    """Queueing on the forward thread while holding the lock it needs would never return."""
    sm = make_sm("bert", "classification")
    batch = [make_encoded(sm, make_ids(n, seed=n)) for n in (5, 9)]
    expected = BatchEngine(sm).score_encoded(batch).scores.score
    got = []

    def run():
        with sm.lock, forward_threads(sm) as threads:
            got.append((BatchEngine(sm).score_encoded(batch).scores.score, set(threads)))

    caller = threading.Thread(target=run, name="holds-the-lock", daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert got, "scoring while holding the model's lock did not return"
    np.testing.assert_allclose(got[0][0], expected, **TOL)
    assert got[0][1] == {"holds-the-lock"}
    # On the forward thread itself there is no forward thread to queue on either.
    assert sm.forward_thread().submit(sm.forward_thread).result(timeout=60) is None


@pytest.mark.parametrize("side", ["left", "right"])
def test_scored_batch_is_columnar_in_input_order(make_sm, make_ids, make_encoded, side):
    """Columns equal per-text scoring; texts of several buckets come back in input order."""
    sm = make_sm("llama", "causal_lm", padding_side=side)
    lengths = (9, 30, 4, 17, 4, 25)
    encoded = [make_encoded(sm, make_ids(n, seed=n + i)) for i, n in enumerate(lengths)]
    engine = BatchEngine(sm, EngineOptions(batch_tokens=40, layers=(1,)))
    scored = engine.score_encoded(encoded)

    assert scored.index.tolist() == list(range(len(lengths)))
    assert scored.scores.lengths.tolist() == list(lengths) and scored.tokens == sum(lengths)
    assert scored.padded_tokens >= sum(lengths) and not scored.errors
    bounds = np.cumsum(lengths)[:-1]
    for d, (enc, norm, score) in enumerate(
        zip(encoded, np.split(scored.scores.norm, bounds), np.split(scored.scores.score, bounds))
    ):
        (alone,) = score_batch(sm, [enc], layers=(1,))
        np.testing.assert_allclose(norm, alone.norm, **TOL)
        np.testing.assert_allclose(score, alone.score, **TOL)
        np.testing.assert_allclose(scored.attribution(d).layer_logat, alone.layer_logat, **TOL)
        assert scored.scores.prediction_id[d] == alone.prediction_id == scored.scores.target_id[d]
        assert scored.prediction[d] == sm.token_label(alone.prediction_id)
    assert scored.foil == [None] * len(lengths) and (scored.scores.foil_id == -1).all()


def test_errors_stay_in_place_and_pickle(failing_seven):
    sm, items = failing_seven
    scored = BatchEngine(sm).score_encoded(items)
    assert scored.size == 4 and scored.index.tolist() == [0, 3]
    assert {i: e.reason for i, e in scored.errors.items()} == {1: "unknown_target", 2: "model_error"}
    assert "simulated failure" in str(scored.errors[2])
    copy = pickle.loads(pickle.dumps(scored))  # crosses process boundaries with a shared model
    assert copy.errors[2].reason == "model_error" and str(copy.errors[2]) == str(scored.errors[2])
    np.testing.assert_array_equal(copy.scores.score, scored.scores.score)


def test_map_gives_each_item_its_result_or_error_in_place():
    """``BatchEngine.map``: results in input order, given errors kept, an item that fails alone a
    ``model_error``, its bucket-mates retried; the budget given overrides the engine's."""
    bad = RecordError("empty_text", "no tokens")
    items = [[1] * 5, bad, [1] * 3, [1] * 9, [1] * 4]
    runs: list[list[int]] = []

    def fn(positions: list[int]) -> list[str]:
        runs.append(positions)
        if 3 in positions:
            raise RuntimeError("simulated failure")
        return [f"r{p}" for p in positions]

    heard: list[BucketDone] = []
    engine = BatchEngine(None, EngineOptions(batch_tokens=1))
    out = engine.map(items, len, fn, batch_tokens=12, on_bucket=heard.append)
    assert out[:3] == ["r0", bad, "r2"] and out[4] == "r4"
    assert out[3].reason == "model_error" and "simulated failure" in str(out[3])
    assert [3] in runs and max(len(r) for r in runs) > 1  # bucketed under 12 tokens, then halved
    assert sorted(p for b in heard for p in b.index) == [0, 2, 4]
    assert sum(b.tokens for b in heard) == 12


def test_empty_batch(make_sm):
    scored = BatchEngine(make_sm("bert", "classification")).score_encoded([])
    assert (
        scored.size == 0 and scored.tokens == 0 and scored.index.tolist() == [] and scored.padded_tokens == 0
    )


def test_forward_passes_on_one_model_never_overlap(make_sm, make_ids):
    """Threads sharing a model take turns on it (the engine's lock); their host work is free."""
    sm = make_sm("bert", "classification")
    inside, overlaps = [0], []
    real_forward = sm.base.forward

    def slow_forward(*args, **kwargs):
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.02)
        inside[0] -= 1
        return real_forward(*args, **kwargs)

    sm.base.forward = slow_forward
    try:
        ids = np.stack([make_ids(5, seed=1)])

        def run():
            for _ in range(3):
                forward_base(sm, torch.ones(1, 5, dtype=torch.long), input_ids=torch.from_numpy(ids))

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        del sm.base.forward
    assert len(overlaps) == 9 and max(overlaps) == 1


def test_threads_sharing_a_model_get_their_own_scores(make_sm, make_ids, make_encoded):
    """The layer-0 hook is set under the model's lock: a thread never captures another's batch."""
    sm = make_sm("bert", "classification")
    batches = [[make_encoded(sm, make_ids(n, seed=10 * k + n)) for n in (5, 9, 14)] for k in range(4)]
    engine = BatchEngine(sm)
    expected = [engine.score_encoded(b).scores.score for b in batches]
    got: dict[int, list] = {k: [] for k in range(len(batches))}

    def run(k):
        for _ in range(5):
            got[k].append(engine.score_encoded(batches[k]).scores.score)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, runs in got.items():
        assert len(runs) == 5
        for scores in runs:
            np.testing.assert_allclose(scores, expected[k], **TOL)
