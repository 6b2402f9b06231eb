"""Shared test configuration: hypothesis profiles.

``dev`` (default) keeps the suite quick; ``ci`` (HYPOTHESIS_PROFILE=ci, set by .ci/run) runs more
examples with no deadline, since CI machines are shared and noisy; ``thorough``
(HYPOTHESIS_PROFILE=thorough) is for a long hunt by hand, e.g. after a change to the matcher or
the proxy core: ``pytest tests/test_match.py tests/test_proxy_fuzz.py`` with it takes minutes
(the stateful table test alone, tens of minutes).
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
# Shared and noisy machines: no deadline, no "too slow" check; a failure prints its blob.
_patient = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", _patient, max_examples=300)
settings.register_profile("thorough", _patient, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def mypy_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the tests that type-check a user's program against ingresslib: the
    first analyses the package, the others reuse it (a few seconds each instead of ~10). Fresh per
    session, and mypy rechecks any module whose source changed, so nothing stale is reused."""
    return tmp_path_factory.mktemp("mypy_cache")
