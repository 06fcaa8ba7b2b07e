"""Shared fixtures and hypothesis profiles.

Profiles (select with HYPOTHESIS_PROFILE=...): ``dev`` (default, quick),
``ci`` (what CI runs: 100 examples per property), ``deep`` (thousands of
examples per property, for long local runs). deadline=None everywhere: timing
on shared machines is noise.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

from backends import ALL, CORE, GPU

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=30, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_common)
settings.register_profile("deep", max_examples=3000, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _backend_fixture(names):
    def marks(n):
        skip = [pytest.mark.skip(reason=ALL[n][1])] if ALL[n][1] else []
        return skip + ([pytest.mark.gpu] if n in GPU else [])

    @pytest.fixture(scope="session", params=[pytest.param(n, marks=marks(n)) for n in names])
    def fixture(request):
        return ALL[request.param][0]()
    return fixture


backend = _backend_fixture(CORE)              # numpy and array_api_strict, float64
any_backend = _backend_fixture(list(ALL))     # the full matrix (issue: backends)


@pytest.fixture
def matrix_free(monkeypatch):
    """The gram route without its dense fallback (J formed when ``m > p``, or when the band exceeds
    ``BAND_MAX_ENTRIES``, if J fits ``DENSE_MAX_ENTRIES``): for tests of the Gram algebra itself."""
    import refnet.frozen
    monkeypatch.setattr(refnet.frozen, "DENSE_MAX_ENTRIES", 0)


@pytest.fixture(autouse=True)
def _gram_means_matrix_free(request):
    """In a test parametrized over the routes (``method`` = "gram" or "dense"), "gram" is the
    matrix-free route itself, so that the Gram algebra stays tested on every problem (m > p
    included); the fallback has its own tests (test_frozen_exact.py)."""
    if getattr(request.node, "callspec", None) and request.node.callspec.params.get("method") == "gram":
        request.getfixturevalue("matrix_free")
