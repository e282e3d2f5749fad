"""``normxlogit.bootstrap``'s streaming replicate sums (the rest of the module is tested with the
findings commands, tests/pipeline/findings/test_bootstrap.py): a document at a time, through the
buffer, equals the weighted sums of all documents at once; merging leaves the other state as it is;
the module and the faithfulness intervals built on it import neither torch nor Beam nor pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from normxlogit import bootstrap
from normxlogit.bootstrap import Resampling, StreamingReplicates, document_keys, poisson_weights


def test_streaming_sums_are_the_weighted_sums_of_all_documents():
    resampling = Resampling(replicates=120, seed=6)
    rng = np.random.default_rng(0)
    n = 2 * bootstrap.PENDING_DOCS + 37  # two full buffers and a partial one
    keys = document_keys([f"doc-{i}" for i in range(n)])
    values = rng.normal(size=(n, 5))
    stream = StreamingReplicates(5, resampling)
    for key, row in zip(keys, values):
        stream.add(key, row)
    weights = poisson_weights(keys, resampling)  # (n, B)
    np.testing.assert_allclose(stream.means(), (values.T @ weights) / weights.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(stream.weights, weights.sum(axis=0))


def test_merging_adds_the_other_state_and_leaves_it_as_it_is():
    resampling = Resampling(replicates=40, seed=1)
    keys = document_keys(["a", "b", "c"])
    one, other, both = (StreamingReplicates(2, resampling) for _ in range(3))
    one.add(keys[0], [1.0, 2.0])
    other.add(keys[1], [3.0, 4.0])
    other.add(keys[2], [5.0, 6.0])
    for key, row in zip(keys, ([1.0, 2.0], [3.0, 4.0], [5.0, 6.0])):
        both.add(key, row)
    one.merge(other)
    np.testing.assert_allclose(one.means(), both.means(), rtol=1e-12)
    assert other.weights.sum() == 0  # still buffered, not weighed by the merge
    with pytest.raises(ValueError, match="another shape or resampling"):
        one.merge(StreamingReplicates(2, Resampling(replicates=40, seed=2)))
    with pytest.raises(ValueError, match="expected 2 values per document, got 3"):
        one.add(keys[0], [1.0, 2.0, 3.0])


def test_the_bootstrap_and_the_faithfulness_intervals_import_neither_torch_nor_beam_nor_pandas():
    probe = (
        "import sys, normxlogit.bootstrap, normxlogit.faithfulness_intervals; print(sorted(m for m in "
        "sys.modules if m.split('.')[0] in ('torch', 'transformers', 'apache_beam', 'pandas', 'scipy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
