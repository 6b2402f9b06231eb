"""Shared test configuration: hypothesis profiles.

``dev`` (default) keeps the suite quick; ``ci`` (HYPOTHESIS_PROFILE=ci, set by .ci/run) runs more
examples with no deadline, since CI machines are shared and noisy; ``thorough``
(HYPOTHESIS_PROFILE=thorough) is for a long hunt by hand, e.g. after a change to the matcher or
the proxy core: ``pytest tests/test_match.py tests/test_proxy_fuzz.py`` with it takes minutes
(the stateful table test alone, tens of minutes).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
# Shared and noisy machines: no deadline, no "too slow" check; a failure prints its blob.
_patient = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", _patient, max_examples=300)
settings.register_profile("thorough", _patient, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


#: The bytecode cache the test processes' children share (``pytest_configure``), or None.
_CHILD_PYCACHE: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Under ``PYTHONDONTWRITEBYTECODE`` (set on the machines the suite has run on so far), every
    ``python -m ingresslib`` a test starts compiled the whole package from source: ~0.2 s of a
    0.4 s ``explain``, hundreds of times a run (the editable install has no ``__pycache__``).
    The test processes' children share one bytecode cache instead, in a directory of this run
    (``PYTHONPYCACHEPREFIX``), so nothing is written into the tree; this process itself is
    unchanged. A child that sets ``PYTHONDONTWRITEBYTECODE`` itself again only reads the cache.
    Without the variable, Python's own ``__pycache__`` already does this."""
    global _CHILD_PYCACHE
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    import shutil
    import tempfile

    prefix = _CHILD_PYCACHE = tempfile.mkdtemp(prefix="ingresslib-tests-pycache-")
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix

    def restore() -> None:
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved
        shutil.rmtree(prefix, ignore_errors=True)

    config.add_cleanup(restore)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fill the children's bytecode cache with what this process imported: a prefix makes Python
    look for every module's bytecode there (the standard library's and the installed packages'
    too), so without this the first child compiled all of them again (~1 s). Their own cached
    files are linked (Python checks each against its source's mtime and size, as it does in
    ``__pycache__``); ingresslib's, which nobody wrote, are compiled."""
    if _CHILD_PYCACHE is None:
        return
    import importlib.util
    import py_compile
    import shutil
    import sys

    for name, mod in list(sys.modules.items()):
        src, cached = getattr(mod, "__file__", None), getattr(mod, "__cached__", None)
        if not src or not cached or not src.endswith(".py"):
            continue
        old, sys.pycache_prefix = sys.pycache_prefix, _CHILD_PYCACHE
        try:
            target = importlib.util.cache_from_source(src)
        finally:
            sys.pycache_prefix = old
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(cached):
                try:
                    os.link(cached, target)
                except OSError:
                    shutil.copyfile(cached, target)
            elif name == "ingresslib" or name.startswith("ingresslib."):
                py_compile.compile(src, cfile=target, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass  # that module is compiled by the first child that needs it, as before


@pytest.fixture(scope="session")
def mypy_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the tests that type-check a user's program against ingresslib: the
    first analyses the package, the others reuse it (a few seconds each instead of ~10). Fresh per
    session, and mypy rechecks any module whose source changed, so nothing stale is reused."""
    return tmp_path_factory.mktemp("mypy_cache")


@pytest.fixture(autouse=True)
def _sigint_handler_restored() -> Iterator[None]:
    """Put back the SIGINT handler a test found. uvicorn's ``capture_signals`` restores, at a
    server's teardown, the handler it saw at start-up: inside an async fixture that is the
    per-test asyncio Runner's, which then stays the process's handler after the Runner is gone.
    ``serve`` behaves differently under a handler other than Python's default (session 22:
    a Ctrl-C while the first table builds was lost under a handler that only records it), so a
    test must not leave one to the next."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not before and before is not None:
        signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def _ingresslib_loggers_restored() -> Iterator[None]:
    """Put back the ``ingresslib`` and ``ingresslib.access`` loggers as a test found them.
    ``serve`` run in-process sets them up for a CLI (``--access-log off`` disables the access
    logger, any other value stops it propagating) and a CLI never needs them back; a later
    test reading them through ``caplog`` then saw nothing (test_tls_plain_s16 after
    test_serve_sigint_s22, session 22)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("ingresslib", "ingresslib.access")]
    saved = [(lg, lg.disabled, lg.propagate, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, disabled, propagate, level, handlers in saved:
        lg.disabled, lg.propagate = disabled, propagate
        lg.setLevel(level)
        lg.handlers[:] = handlers
