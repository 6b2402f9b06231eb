"""Session 30 (R16): serve's reload, all or nothing, and retried after a transient failure.

- ``Reloader._swap``: a step that raised AFTER the router was swapped (the certificates'
  update, the table's notes, the configuration's digest) left the router (its table, its
  ``load-balance`` default) and ``built_config`` new beside the old settings: half applied. Now
  the router and the certificates are put back and nothing of the reload is recorded.
- A reload that failed for a reason that passes by itself (a TLS build hitting EMFILE, a
  MemoryError, a file that could not be read for EMFILE) was never tried again until the next
  edit or SIGHUP. Now it is retried after 1 s, doubling to 60 s (reset by a success or a
  change), as ingress-nginx requeues a failed sync (``internal/task/queue.go``: ``worker``,
  ``AddRateLimited``); an invalid manifest or ConfigMap still waits for its next edit. The
  failure is logged once per kind, not per retry. ``serve --kubernetes``: a cluster snapshot
  whose swap failed is delivered again likewise (``SnapshotRetry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pathlib
import signal
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from ingresslib import Router, _serve_reload
from ingresslib._config import load_config
from ingresslib._errors import FieldError, ValidationError
from ingresslib._load import load_manifests
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from test_serve_reload_review_s30 import _broken_build, _files, _Setup
from test_tls_s29 import _bump, _configmap_yaml, _ingress_yaml, _secret_yaml

OLD = {"ssl-protocols": "TLSv1.2 TLSv1.3"}
NEW = {"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def _clock() -> list[float]:
    """The running loop's clock, frozen and moved by hand (the Reloader's retry reads it)."""
    loop = asyncio.get_running_loop()
    now = [loop.time()]
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    return now


def _state(s: _Setup) -> dict[str, Any]:
    """Every piece of state a reload changes."""
    r, router, store = s.reloader, s.router, s.store
    return {
        "server.router": s.server.router, "router._state": router._state,
        "table": router.table, "load_balance": router.load_balance,
        "service_upstream": router.service_upstream, "built_config": r.built_config,
        "config": r.config, "settings": s.server.settings, "digest": r.last_digest,
        "notes": r.last_notes, "swap": r.last_swap, "resources": r.last_resources,
        "served": r.last_served, "load_balance_of_reloader": r.load_balance,
        "store._last_args": None if store is None else store._last_args,
        "certificates": None if store is None else store.certificates(),
        "version": None if store is None else s.version(),
    }


def _served(s: _Setup) -> list[str]:
    return sorted(i.metadata.name for i in s.router.table.served)


def _add_b(man: Path, ca: trustme.CA) -> None:
    _bump(man / "b.yaml", _ingress_yaml("b", "b.test", "b") + "---\n"
          + _secret_yaml("b", ca.issue_cert("b.test")))


def _fail_once(monkeypatch: pytest.MonkeyPatch, step: str) -> list[int]:
    """``step`` raising (a MemoryError: transient) on its first call; the count of its calls."""
    calls = [0]
    if step == "store.update":
        owner: Any = CertificateStore
        name = "update"
    else:
        owner, name = _serve_reload, step
    real = getattr(owner, name)

    def failing(*a: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise MemoryError(step)
        return real(*a, **kw)
    monkeypatch.setattr(owner, name, failing)
    return calls


STEPS = ["_log_route_warnings", "_served_by", "store.update", "_table_notes", "config_digest"]


# --- 1. _swap: all or nothing --------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("configmap", [True, False], ids=["staged", "manifests-only"])
def test_fix_a_swap_failing_after_the_router_leaves_everything_as_it_was(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, step: str,
        configmap: bool) -> None:
    # A new Ingress (b.test, its certificate) and, staged, a ConfigMap edit (ssl-protocols,
    # load-balance). The step raises once the router was swapped. Before: the router's table
    # and default (and, past the certificates' update, built_config and the certificates)
    # were the new ones while the settings stayed old. Now every piece is the old one, and
    # the retry applies it all.
    man, conf = _files(tmp_path, ca, OLD)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        before = _state(s)
        calls = _fail_once(monkeypatch, step)
        _add_b(man, ca)
        if configmap:
            _bump(conf, _configmap_yaml(NEW))
        assert await s.reloader.check() is False
        assert calls[0] >= 1
        after = _state(s)
        assert after == before, {k: (before[k], after[k]) for k in before
                                 if before[k] != after[k]}
        assert _served(s) == ["a"]   # the old table serves
        assert s.said == [False]
        assert s.reloader.retry_delay == 1.0
        # Nothing changed since: no reload until the retry is due, then all of it.
        assert await s.reloader.check() is None
        now[0] += 1.0
        assert await s.reloader.check() is True
        assert _served(s) == ["a", "b"]
        assert s.store is not None
        assert [h for h, _, _ in s.store.certificates()] == ["a.test", "b.test"]
        assert s.reloader.last_swap > before["swap"] and s.reloader.last_digest
        if configmap:
            assert s.router.load_balance == "ewma" and s.reloader.built_config is s.reloader.config
            assert s.version() == ssl.TLSVersion.TLSv1_3
            assert s.server.settings.ssl_protocols == "TLSv1.3"
        assert s.said == [False, True] and s.reloader.retry_delay == 0
    asyncio.run(main())


def test_fix_a_failed_swap_of_a_service_upstream_change_puts_both_defaults_back(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # service-upstream and load-balance change together (the router's full build); the digest
    # then raises: both defaults and the state go back.
    man, conf = _files(tmp_path, ca, OLD)

    async def main() -> None:
        s = _Setup(man, conf, tls=False)
        before = _state(s)
        _fail_once(monkeypatch, "config_digest")
        _bump(conf, _configmap_yaml({**OLD, "service-upstream": "true", "load-balance": "ewma"}))
        assert await s.reloader.check() is False
        assert _state(s) == before
        assert s.router.service_upstream is False and s.router.load_balance == "round_robin"
    asyncio.run(main())


# --- 2. a transient failure is retried, with a bounded backoff -------------------------------------


def test_fix_a_failed_tls_build_is_retried_and_logged_once(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # EMFILE building the ConfigMap's contexts. Before: the edit was never applied until the
    # next edit or SIGHUP. Now: tried again after 1, 2, 4 ... s, at most 60 s, the failure
    # logged once (not per retry), applied once the build works.
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _bump(conf, _configmap_yaml(NEW))
        assert await s.reloader.check() is False
        delays = [s.reloader.retry_delay]
        for _ in range(8):
            now[0] += delays[-1] - 0.001
            assert await s.reloader.check() is None   # not yet due
            now[0] += 0.001
            assert await s.reloader.check() is False
            delays.append(s.reloader.retry_delay)
        assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
        s.unchanged()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 2, [r.getMessage() for r in errors]   # the TLS build's, serve's
        assert "trying again in 1 s" in errors[-1].getMessage()
        broken[0] = False
        now[0] += 60
        assert await s.reloader.check() is True
        assert s.version() == ssl.TLSVersion.TLSv1_3 and s.router.load_balance == "ewma"
        assert s.said == [False] * 9 + [True]
        assert s.reloader.retry_delay == 0 and s.reloader.last_error is None
        assert s.reloader.failures == 9 and s.reloader.reloads == 1
    asyncio.run(main())


def test_fix_a_new_kind_of_failure_is_logged_again(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    man, conf = _files(tmp_path, ca, OLD)
    fail: list[BaseException] = [RuntimeError("one")]
    real = Router.update

    def update(self: Router, res: Resources) -> None:
        if fail:
            raise fail[0]
        real(self, res)
    monkeypatch.setattr(Router, "update", update)
    caplog.set_level(logging.ERROR, logger="ingresslib.serve")

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _add_b(man, ca)
        assert await s.reloader.check() is False
        now[0] += 1
        assert await s.reloader.check() is False
        fail[0] = MemoryError("two")
        now[0] += 2
        assert await s.reloader.check() is False
        said = [r.getMessage() for r in caplog.records if r.name == "ingresslib.serve"]
        assert len(said) == 2, said
        assert [repr(r.exc_info[1]) for r in caplog.records if r.exc_info] == [
            "RuntimeError('one')", "MemoryError('two')"]
        fail.clear()
        now[0] += 4
        assert await s.reloader.check() is True
        assert _served(s) == ["a", "b"]
    asyncio.run(main())


def test_an_invalid_manifest_waits_for_its_next_edit(
        tmp_path: Path, ca: trustme.CA) -> None:
    man, conf = _files(tmp_path, ca, OLD)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _bump(man / "b.yaml", "kind: Ingress\napiVersion: networking.k8s.io/v1\nspec: [\n")
        assert await s.reloader.check() is False
        assert s.reloader.retry_delay == 0 and s.reloader._retry_at is None
        now[0] += 3600
        assert await s.reloader.check() is None   # not read again: nothing changed
        _add_b(man, ca)
        assert await s.reloader.check() is True
    asyncio.run(main())


def test_an_invalid_configmap_is_not_retried_but_the_manifests_go_in(
        tmp_path: Path, ca: trustme.CA) -> None:
    man, conf = _files(tmp_path, ca, OLD)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "proxy-body-size": "x!"}))
        _add_b(man, ca)
        assert await s.reloader.check() is False
        assert _served(s) == ["a", "b"]
        assert s.reloader._retry_at is None
        now[0] += 3600
        assert await s.reloader.check() is None
    asyncio.run(main())


def _unreadable(monkeypatch: pytest.MonkeyPatch, name: str, code: list[int]) -> None:
    """``name`` (a file's base name) cannot be read (``code[0]``; 0: it can)."""
    real = pathlib.Path.read_bytes

    def read_bytes(self: pathlib.Path) -> bytes:
        if self.name == name and code[0]:
            raise OSError(code[0], os.strerror(code[0]), str(self))
        return real(self)
    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)


@pytest.mark.parametrize("which", ["manifest", "configmap"])
def test_fix_a_file_unread_for_emfile_is_retried(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    # The loaders report an unreadable file as a ValidationError ("Invalid value: Too many
    # open files"); EMFILE passes by itself: retried (EACCES: below, not).
    man, conf = _files(tmp_path, ca, OLD)
    code = [0]
    _unreadable(monkeypatch, "b.yaml" if which == "manifest" else "c.yaml", code)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        code[0] = errno.EMFILE
        _add_b(man, ca)
        _bump(conf, _configmap_yaml(NEW))
        assert await s.reloader.check() is False
        assert s.reloader.retry_delay == 1
        code[0] = 0
        now[0] += 1
        assert await s.reloader.check() is True
        assert _served(s) == ["a", "b"]
        assert s.router.load_balance == "ewma"
    asyncio.run(main())


def test_a_file_unread_for_eacces_waits_for_a_change(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    man, conf = _files(tmp_path, ca, OLD)
    code = [errno.EACCES]
    _unreadable(monkeypatch, "b.yaml", code)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _add_b(man, ca)
        assert await s.reloader.check() is False
        assert s.reloader._retry_at is None
        now[0] += 3600
        assert await s.reloader.check() is None
    asyncio.run(main())


def test_transient_classification() -> None:
    def verr(detail: str, field: str = "") -> ValidationError:
        return ValidationError([FieldError("f.yaml", field, "Invalid value", detail)])
    assert _serve_reload._transient(OSError(errno.EMFILE, "x")) and _serve_reload._transient(MemoryError())
    assert _serve_reload._transient(RuntimeError("a bug"))
    assert _serve_reload._transient(verr(os.strerror(errno.EMFILE)))
    assert _serve_reload._transient(verr(os.strerror(errno.ENOMEM)))
    assert not _serve_reload._transient(verr(os.strerror(errno.EACCES)))
    assert not _serve_reload._transient(verr("Too many open files", field="data.x"))   # a value, not a read
    assert not _serve_reload._transient(verr("must be a number"))


def test_fix_a_change_starts_the_backoff_again(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    man, conf = _files(tmp_path, ca, OLD)
    _broken_build(monkeypatch)

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        _bump(conf, _configmap_yaml(NEW))
        assert await s.reloader.check() is False
        now[0] += 1
        assert await s.reloader.check() is False
        now[0] += 2
        assert await s.reloader.check() is False
        assert s.reloader.retry_delay == 4
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3"}))
        assert await s.reloader.check() is False
        assert s.reloader.retry_delay == 1
        assert await s.reloader.check(force=True) is False   # SIGHUP: a first try too
        assert s.reloader.retry_delay == 1
    asyncio.run(main())


def test_fix_run_wakes_for_the_retry_without_polling(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # --reload-interval 0 (SIGHUP only): the retry still comes, by itself.
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)
    monkeypatch.setattr(_serve_reload, "RETRY_FIRST", 0.02)

    async def main() -> None:
        s = _Setup(man, conf)
        assert s.reloader.interval == 0
        _bump(conf, _configmap_yaml(NEW))
        task = asyncio.get_running_loop().create_task(s.reloader.run())
        try:
            s.reloader.request_reload()
            for _ in range(200):
                if s.reloader.failures >= 2:
                    break
                await asyncio.sleep(0.01)
            assert s.reloader.failures >= 2   # the SIGHUP's, then a retry's
            broken[0] = False
            for _ in range(200):
                if s.reloader.reloads:
                    break
                await asyncio.sleep(0.01)
            assert s.reloader.reloads == 1 and s.version() == ssl.TLSVersion.TLSv1_3
        finally:
            task.cancel()
    asyncio.run(main())


# --- --kubernetes: a snapshot whose swap failed ----------------------------------------------------


def _watcher(delivered: int) -> Any:
    from ingresslib._kube import ClusterWatcher

    async def on_snapshot(res: Any) -> None:
        pass

    w = ClusterWatcher(on_snapshot, client=object())
    w._delivered_generation = delivered   # (as if the store's generation ``delivered`` was)
    return w


def test_snapshot_retry_delivers_again_after_a_transient_failure() -> None:
    async def main() -> None:
        w = _watcher(5)
        retry = _serve_reload.SnapshotRetry()
        full, words = retry.failed(MemoryError(), lambda: w)
        assert full and words == "; trying again in 1 s"
        retry.delay = 0.0   # (the timer is set: shorten nothing, fire it by hand below)
        assert retry._timer is not None
        retry._timer._run()   # the delay passed
        assert w.delivered_generation == -1 and w._dirty.is_set()
        # The same failure again: not logged in full, twice as long.
        w._delivered_generation = 6
        w._dirty.clear()
        retry.delay = 1.0
        full, words = retry.failed(MemoryError(), lambda: w)
        assert not full and words == "; trying again in 2 s"
        # A newer snapshot delivered meanwhile: not delivered again (it has its own outcome).
        w._delivered_generation = 7
        assert retry._timer is not None
        retry._timer._run()
        assert not w._dirty.is_set() and w.delivered_generation == 7
        # A success resets; an invalid snapshot's error is not retried.
        retry.succeeded()
        assert retry.delay == 0 and retry._timer is None
        full, words = retry.failed(ValidationError([FieldError("x", "", "Invalid value", "y")]),
                                   lambda: w)
        assert full and words == "" and retry._timer is None
        retry.succeeded()
    asyncio.run(main())


@pytest.mark.asyncio
async def test_fix_serve_kubernetes_swaps_a_failed_snapshot_in_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # _watch: the router's update raises once (MemoryError). Before: the snapshot was not
    # swapped in until the cluster changed again. Now the watcher delivers it again.
    from ingresslib import _serve
    from ingresslib._kube import ClusterWatcher

    monkeypatch.setattr(_serve_reload, "RETRY_FIRST", 0.02)
    res = load_manifests_text(_ingress_only("a.test"))
    delivered: list[Any] = []

    async def run(self: ClusterWatcher, stop: asyncio.Event) -> None:
        self._dirty = asyncio.Event()
        self._delivered_generation = 1
        delivered.append(self)
        with contextlib.suppress(MemoryError):   # (the watcher logs it and goes on)
            await self.on_snapshot(res)
        for _ in range(200):   # the flusher's part: deliver again when marked dirty
            if self._dirty.is_set():
                self._dirty.clear()
                self._delivered_generation = 1
                await self.on_snapshot(res)
                break
            await asyncio.sleep(0.01)
        await stop.wait()
    monkeypatch.setattr(ClusterWatcher, "run", run)
    fail = [1]
    real = Router.update

    def update(self: Router, r: Resources) -> None:
        if fail[0]:
            fail[0] -= 1
            raise MemoryError("once")
        real(self, r)
    monkeypatch.setattr(Router, "update", update)
    router = Router(Resources())
    server = type("S", (), {"router": router, "cert_store": None})()
    said: list[bool] = []
    stop, synced = asyncio.Event(), asyncio.Event()
    args = type("A", (), {"ingress_class": None, "controller": None, "namespace": None,
                          "kubeconfig": None, "no_auth_secrets": True})()

    def on_reload(ok: bool, *a: Any) -> None:
        said.append(ok)
        if ok:
            stop.set()
    task = asyncio.get_running_loop().create_task(_serve._watch(
        args, server, None, None, stop, synced, on_reload=on_reload))   # type: ignore[arg-type]
    await asyncio.wait_for(stop.wait(), 2)
    await task
    assert said == [False, True]
    assert router.route("GET", "a.test", "/") is not None


def _ingress_only(host: str) -> str:
    return ("apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            "metadata: {name: a, namespace: default}\n"
            f"spec:\n  rules: [{{host: {host}, http: {{paths: [{{path: /, pathType: Prefix, "
            "backend: {service: {name: a, port: {number: 80}}}}]}}]\n")


def load_manifests_text(text: str) -> Resources:
    from ingresslib._load import parse_manifests
    return parse_manifests(text)


# --- serve from files, in process --------------------------------------------------------------


@pytest.mark.asyncio
async def test_fix_serve_applies_a_configmap_edit_once_its_tls_build_works(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # serve -f --config --tls-listen: the edit's TLS build fails (EMFILE) then works; the
    # retry applies it with no further edit, and the metrics say so.
    from ingresslib import _serve
    from ingresslib._cli import build_parser

    monkeypatch.setattr(_serve_reload, "RETRY_FIRST", 0.05)
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)
    broken[0] = False
    stores: list[CertificateStore] = []
    real_init = CertificateStore.__init__

    def init(self: CertificateStore, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        stores.append(self)
    monkeypatch.setattr(CertificateStore, "__init__", init)
    reloaders: list[Any] = []

    class Reloader(_serve_reload.Reloader):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            reloaders.append(self)
    monkeypatch.setattr(_serve, "Reloader", Reloader)
    args = build_parser().parse_args([
        "serve", "-f", str(man), "--config", str(conf), "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--reload-interval", "0.05", "--access-log", "off"])
    cfg = load_config(str(conf))
    res = load_manifests(str(man))

    async def edit_then_stop() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        try:
            while not reloaders:   # (its snapshot taken: an edit now is a change)
                assert loop.time() < deadline
                await asyncio.sleep(0.02)
            store = stores[-1]
            broken[0] = True
            _bump(conf, _configmap_yaml(NEW))
            await asyncio.sleep(0.3)   # a few failed tries
            assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_2
            broken[0] = False
            # The new contexts are in use before the reload is counted (the table swap runs
            # in between, in a worker thread): wait for both, or a SIGTERM in between found
            # reloads == 0 under load (session 35's snapshot run).
            while store.context_for("a.test").minimum_version != ssl.TLSVersion.TLSv1_3 \
                    or reloaders[0].reloads < 1:
                assert loop.time() < deadline
                await asyncio.sleep(0.02)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
    task = asyncio.get_running_loop().create_task(edit_then_stop())
    assert await _serve._serve(args, res, cfg) == 0
    await task
    r = reloaders[0]
    assert r.failures >= 2 and r.reloads == 1 and r.retry_delay == 0   # retried, then applied


def test_fix_a_configmap_unread_for_emfile_backs_off_beside_good_manifests(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # The manifests go in at once; the ConfigMap's read is retried, 1 s then 2 s (a partial
    # success does not start the backoff again), its error logged once.
    man, conf = _files(tmp_path, ca, OLD)
    code = [0]
    _unreadable(monkeypatch, "c.yaml", code)
    caplog.set_level(logging.ERROR, logger="ingresslib.serve")

    async def main() -> None:
        s = _Setup(man, conf)
        now = _clock()
        code[0] = errno.EMFILE
        _add_b(man, ca)
        _bump(conf, _configmap_yaml(NEW))
        assert await s.reloader.check() is False
        assert _served(s) == ["a", "b"] and s.reloader.retry_delay == 1
        now[0] += 1
        assert await s.reloader.check() is False
        assert s.reloader.retry_delay == 2
        assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
        code[0] = 0
        now[0] += 2
        assert await s.reloader.check() is True
        assert s.router.load_balance == "ewma" and s.reloader.retry_delay == 0
    asyncio.run(main())


def test_an_edit_failing_as_the_last_one_did_is_logged_again(
        tmp_path: Path, ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    # Only a retry's repeated failure is quiet: each edit's is logged, as before.
    man, conf = _files(tmp_path, ca, OLD)
    caplog.set_level(logging.ERROR, logger="ingresslib.serve")

    async def main() -> None:
        s = _Setup(man, conf)
        for _ in range(2):
            _bump(man / "b.yaml", "kind: Ingress\napiVersion: networking.k8s.io/v1\nspec: [\n")
            assert await s.reloader.check() is False
        assert len(caplog.records) == 2
    asyncio.run(main())
