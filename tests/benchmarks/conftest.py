"""The benchmark scripts import each other as top-level modules, as ``python benchmarks/X.py`` does."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def benchmark_module(request):
    """``benchmark_module(name)`` imports ``benchmarks/name.py`` with the benchmarks on sys.path."""
    sys.path.insert(0, str(BENCHMARKS))
    request.addfinalizer(lambda: sys.path.remove(str(BENCHMARKS)))
    return importlib.import_module
