"""Session 30 (R14): a review of F4's staged ConfigMap reload (TLS contexts built before anything
is swapped in) and of ``worker-shutdown-timeout``.

- A staged reload whose router build raised (``Reloader._swap``) once the new ``ssl-*``
  contexts had been committed left those contexts serving beside the old settings, router
  defaults and ``built_config``: half applied. Now the settings still serving get their
  contexts back, and the next reload applies it all.
- The rest holds already and is pinned here: every kind of ConfigMap key changed together
  with a failing TLS build is all or nothing; a plain HTTP serve (no certificate store) applies
  its ConfigMap edits as before; two quick edits (failed then good, good then failed); a
  cluster snapshot swapped in while the staged build runs; SIGHUP and cancellation (Ctrl-C,
  SIGTERM) during a build; ``--shutdown-timeout``'s ``_NotGiven`` default through pickling,
  copying and ``--help``; ``worker-shutdown-timeout`` read as nginx reads a msec time
  (``ngx_parse_time(value, 0)``: no ``y`` / ``M`` units).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import pickle
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from ingresslib import Router
from ingresslib._config import load_config, parse_config_data
from ingresslib._errors import ValidationError
from ingresslib._load import load_manifests
from ingresslib._resources import Resources
from ingresslib._serve_reload import Reloader, shutdown_timeout
from ingresslib._tls import CertificateStore
from ingresslib.proxy._server import ProxyServer
from test_tls_s29 import _bump, _configmap_yaml, _ing, _ingress_yaml, _secret, _secret_yaml

OLD = {"ssl-protocols": "TLSv1.2 TLSv1.3"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def _files(tmp_path: Path, ca: trustme.CA, data: dict[str, str]) -> tuple[Path, Path]:
    man = tmp_path / "m"
    man.mkdir()
    (man / "a.yaml").write_text(_ingress_yaml("a", "a.test", "a") + "---\n"
                                + _secret_yaml("a", ca.issue_cert("a.test")))
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml(data))
    return man, conf


class _Setup:
    """A file-based serve's reloader, its server, router and certificate store (None: plain
    HTTP), as ``_serve`` puts them together."""

    def __init__(self, man: Path | None, conf: Path, *, tls: bool = True,
                 res: Resources | None = None) -> None:
        self.res = res if res is not None else load_manifests(str(man))
        self.cfg = load_config(str(conf))
        self.store: CertificateStore | None = None
        if tls:
            self.store = CertificateStore()
            self.store.configure_tls(self.cfg.settings)
            self.store.update(self.res)
        self.router = Router(self.res, load_balance=self.cfg.load_balance or "round_robin",
                             service_upstream=self.cfg.service_upstream)
        self.load_balance = self.router.load_balance
        self.server = ProxyServer(self.router, self.cfg.settings, cert_store=self.store)
        self.said: list[bool] = []
        self.reloader = Reloader(
            self.server, [] if man is None else [str(man)], ingress_class=None,
            controller=None, config=self.cfg, config_path=str(conf), settle=0, interval=0,
            on_reload=lambda ok, msg: self.said.append(ok))

    def version(self, host: str = "a.test") -> ssl.TLSVersion:
        assert self.store is not None
        return self.store.context_for(host).minimum_version

    def unchanged(self) -> None:
        """Nothing of the last ConfigMap edit is in use."""
        r = self.reloader
        assert r.config is self.cfg and r.built_config is self.cfg
        assert self.server.settings == self.cfg.settings
        assert self.router.load_balance == self.load_balance
        assert self.router.service_upstream == self.cfg.service_upstream
        if self.store is not None:
            assert self.version() == ssl.TLSVersion.TLSv1_2
            assert self.store._tls.dh_param == self.cfg.settings.ssl_dh_param


def _reject_of(store: CertificateStore) -> Any:
    """The store's ``ssl-reject-handshake`` pair (read again: mypy keeps an earlier narrowing)."""
    return store._reject


def _broken_build(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``CertificateStore.build_tls`` raising while the returned flag is true."""
    broken = [True]
    real = CertificateStore.build_tls

    def build_tls(self: CertificateStore, job: Any) -> Any:
        if broken[0]:
            raise OSError(24, "Too many open files")
        return real(self, job)
    monkeypatch.setattr(CertificateStore, "build_tls", build_tls)
    return broken


# --- the defect: a router build that fails after the contexts went in ----------------------------


def test_fix_a_failed_swap_after_the_tls_commit_puts_the_contexts_back(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # The ConfigMap changes ssl-protocols and load-balance; the contexts are built and
    # committed, then the router's build raises (a bug, MemoryError: anything but a
    # ValidationError of the manifests, read before). Before: TLSv1.3-only contexts went on
    # serving with the old settings (ssl_protocols "TLSv1.2 TLSv1.3"), the old balancer and the
    # old built_config, until some later reload. Now the settings serving get their contexts
    # back: nothing of the edit is in use.
    man, conf = _files(tmp_path, ca, OLD)
    fail = [True]
    real = Router.update

    def update(self: Router, res: Resources) -> None:
        if fail[0]:
            raise RuntimeError("boom")
        real(self, res)
    monkeypatch.setattr(Router, "update", update)

    async def main() -> None:
        s = _Setup(man, conf)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        assert await s.reloader.check() is False
        assert s.said == [False] and s.reloader.failures == 1
        assert "boom" in (s.reloader.last_error or "")
        s.unchanged()
        assert s.store is not None and s.store.default_context.minimum_version \
            == ssl.TLSVersion.TLSv1_2
        # The next reload (SIGHUP) applies all of it.
        fail[0] = False
        assert await s.reloader.check(force=True) is True
        assert s.router.load_balance == "ewma" and s.version() == ssl.TLSVersion.TLSv1_3
        assert s.server.settings.ssl_protocols == "TLSv1.3"
        assert s.reloader.built_config is s.reloader.config is not s.cfg
    asyncio.run(main())


def test_a_failed_swap_whose_restore_fails_too_is_still_one_failed_reload(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # The restore's own build failing (logged there) does not hide the reload's error.
    man, conf = _files(tmp_path, ca, OLD)
    def update(self: Router, res: Resources) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr(Router, "update", update)
    calls = [0]
    real = CertificateStore.build_tls

    def build_tls(self: CertificateStore, job: Any) -> Any:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(24, "Too many open files")
        return real(self, job)
    monkeypatch.setattr(CertificateStore, "build_tls", build_tls)

    async def main() -> None:
        s = _Setup(man, conf)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        assert await s.reloader.check() is False
        assert s.said == [False] and "boom" in (s.reloader.last_error or "")
        assert s.reloader.config is s.cfg and s.router.load_balance == s.load_balance
    asyncio.run(main())


# --- all or nothing, whatever the ConfigMap changes -----------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("proxy-body-size", "5m"),               # a ProxySettings key
    ("load-balance", "ewma"),                # the router's default balancer
    ("service-upstream", "true"),            # the router's default wiring
    ("ssl-dh-param", "default/dh"),          # the store's DH parameters
    ("log-format-upstream", "$remote_addr $status"),   # the access log's format
    ("worker-shutdown-timeout", "3s"),       # serve's stop bound, the TCP services' drain
    ("proxy-stream-responses", "3"),         # the UDP services' sessions
])
def test_every_key_kind_with_a_failing_tls_build_is_all_or_nothing(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, key: str,
        value: str) -> None:
    from ingresslib._cli import build_parser

    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)
    args = build_parser().parse_args(["serve", "-f", str(man), "--config", str(conf)])

    async def main() -> None:
        s = _Setup(man, conf)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", key: value}))
        assert await s.reloader.check() is False
        # (serve's on_reload(False): the access log, TCP/UDP feeds and metrics keep theirs.)
        assert s.said == [False]
        s.unchanged()
        assert shutdown_timeout(args, s.reloader.config) == 10
        assert s.reloader.config.proxy_stream_responses == 1
        broken[0] = False
        assert await s.reloader.check(force=True) is True
        new = s.reloader.config
        assert new is not s.cfg and s.reloader.built_config is new
        assert s.server.settings == new.settings and s.version() == ssl.TLSVersion.TLSv1_3
        assert s.router.load_balance == (new.load_balance or "round_robin")
        assert s.router.service_upstream == new.service_upstream
    asyncio.run(main())


def test_a_plain_http_serve_applies_configmap_edits_as_before(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # No certificate store (no --tls-listen): nothing is staged, no TLS build is tried, the
    # ssl-* keys are simply settings.
    man, conf = _files(tmp_path, ca, OLD)
    _broken_build(monkeypatch)   # (never called)

    async def main() -> None:
        s = _Setup(man, conf, tls=False)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma",
                                     "proxy-body-size": "5m", "service-upstream": "true",
                                     "worker-shutdown-timeout": "4s"}))
        assert await s.reloader.check() is True
        new = s.reloader.config
        assert s.said == [True] and new is not s.cfg and s.reloader.built_config is new
        assert s.server.settings == new.settings
        assert s.server.settings.ssl_protocols == "TLSv1.3"
        assert s.router.load_balance == "ewma" and s.router.service_upstream is True
        assert new.worker_shutdown_timeout == 4
    asyncio.run(main())


# --- two edits in quick succession ----------------------------------------------------------------


def test_a_good_edit_after_a_failed_one_applies_both(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first edit's TLS build fails; the second edit (only load-balance) still carries the
    # first's ssl-protocols, which the store never took: built now, with everything else.
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)

    async def main() -> None:
        s = _Setup(man, conf)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "proxy-body-size": "5m"}))
        assert await s.reloader.check() is False
        broken[0] = False
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "proxy-body-size": "5m",
                                     "load-balance": "ewma"}))
        assert await s.reloader.check() is True
        assert s.said == [False, True]
        assert s.version() == ssl.TLSVersion.TLSv1_3 and s.router.load_balance == "ewma"
        assert s.server.settings.proxy_body_size == 5 * 1024 * 1024
    asyncio.run(main())


def test_a_failed_edit_after_a_good_one_keeps_the_good_one(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)
    broken[0] = False

    async def main() -> None:
        s = _Setup(man, conf)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        assert await s.reloader.check() is True
        good = s.reloader.config
        broken[0] = True
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.2", "load-balance": "round_robin",
                                     "service-upstream": "true"}))
        assert await s.reloader.check() is False
        assert s.said == [True, False]
        assert s.reloader.config is good and s.reloader.built_config is good
        assert s.server.settings == good.settings
        assert s.router.load_balance == "ewma" and s.router.service_upstream is False
        assert s.version() == ssl.TLSVersion.TLSv1_3
    asyncio.run(main())


# --- concurrency: a cluster snapshot, SIGHUP, cancellation during the build -----------------------


def test_a_cluster_snapshot_during_the_staged_build_is_kept(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # serve --kubernetes --config: the reloader reads only the ConfigMap; the watch swaps a
    # snapshot (router and store, under the shared lock, in a worker thread) while the new
    # contexts are being built. The build is done again on that snapshot, then the router is
    # rebuilt from the snapshot with the new default: both the new host and the new settings.
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml(OLD))
    a, b = _secret("a", ca.issue_cert("a.test")), _secret("b", ca.issue_cert("b.test"))
    one = Resources(ingresses=(_ing("a", "a.test", "a"),), secrets=(a,))
    two = Resources(ingresses=(_ing("a", "a.test", "a"), _ing("b", "b.test", "b")),
                    secrets=(a, b))
    real = CertificateStore.build_tls
    holder: list[_Setup] = []
    builds = [0]

    def build_tls(self: CertificateStore, job: Any) -> Any:
        built = real(self, job)
        builds[0] += 1
        if builds[0] == 1:   # the watch's swap lands between the build and its commit
            s = holder[0]
            with s.reloader.lock:
                s.router.update(two)
                self.update(two)
        return built
    monkeypatch.setattr(CertificateStore, "build_tls", build_tls)

    async def main() -> None:
        s = _Setup(None, conf, res=one)
        holder.append(s)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        assert await s.reloader.check() is True
        assert builds[0] == 2   # built again on the snapshot
        assert s.router.resources is two and s.router.load_balance == "ewma"
        assert s.store is not None and s.store.hosts == {"a.test", "b.test"}
        assert s.version("b.test") == ssl.TLSVersion.TLSv1_3
        assert s.version("a.test") == ssl.TLSVersion.TLSv1_3
        assert s.reloader.built_config is s.reloader.config
    asyncio.run(main())


def _blocking_build(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event,
                                                               threading.Event]:
    """The first ``build_tls`` waits for ``release`` (at most 2 s); ``done`` once it returned."""
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    real = CertificateStore.build_tls

    def build_tls(self: CertificateStore, job: Any) -> Any:
        first = not entered.is_set()
        entered.set()
        if first:
            release.wait(2)
        try:
            return real(self, job)
        finally:
            if first:
                done.set()
    monkeypatch.setattr(CertificateStore, "build_tls", build_tls)
    return entered, release, done


async def _until(flag: Any) -> None:
    async with asyncio.timeout(3):
        while not flag():
            await asyncio.sleep(0.005)


def test_sighup_during_a_build_reads_the_files_once_more_after_it(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    man, conf = _files(tmp_path, ca, OLD)
    entered, release, _ = _blocking_build(monkeypatch)

    async def main() -> None:
        s = _Setup(man, conf)
        task = asyncio.get_running_loop().create_task(s.reloader.run())
        try:
            _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
            s.reloader.request_reload()
            await _until(entered.is_set)
            s.reloader.request_reload()   # SIGHUP while the contexts are built
            release.set()
            await _until(lambda: s.reloader.reloads == 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert s.said == [True, True] and s.reloader.failures == 0
        assert s.version() == ssl.TLSVersion.TLSv1_3 and s.router.load_balance == "ewma"
        assert s.reloader.built_config == s.reloader.config != s.cfg
    asyncio.run(main())


def test_a_stop_during_the_build_applies_nothing_and_leaves_no_thread_busy(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C / SIGTERM: serve cancels the reloader's task (_stop_serving). The build running in
    # the worker thread finishes aside and is never committed; asyncio.run's executor shutdown
    # then finds the thread free.
    man, conf = _files(tmp_path, ca, OLD)
    entered, release, done = _blocking_build(monkeypatch)
    holder: list[_Setup] = []

    async def main() -> None:
        s = _Setup(man, conf)
        holder.append(s)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        task = asyncio.get_running_loop().create_task(s.reloader.check())
        await _until(entered.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await _until(done.is_set)
        await asyncio.sleep(0)
        s.unchanged()
        assert s.said == []
    asyncio.run(main())   # (returns: the default executor's thread is free)
    s = holder[0]
    s.unchanged()
    # And a later reload of the same edit still applies it (the aborted job is superseded).

    async def again() -> None:
        assert await s.reloader.check(force=True) is True
        assert s.version() == ssl.TLSVersion.TLSv1_3 and s.router.load_balance == "ewma"
    asyncio.run(again())


# --- --shutdown-timeout's default ------------------------------------------------------------------


def test_the_not_given_default_survives_pickling_and_copying() -> None:
    from ingresslib._cli import build_parser

    cfg = parse_config_data({"worker-shutdown-timeout": "45s"})
    ns = build_parser().parse_args(["serve", "-f", "x.yaml"])
    for twin in (pickle.loads(pickle.dumps(ns)), copy.deepcopy(ns), copy.copy(ns)):
        assert twin.shutdown_timeout == 10.0
        assert shutdown_timeout(twin, cfg) == 45
    given = build_parser().parse_args(["serve", "-f", "x.yaml", "--shutdown-timeout", "10.0"])
    assert shutdown_timeout(pickle.loads(pickle.dumps(given)), cfg) == 10
    assert shutdown_timeout(build_parser().parse_args(
        ["serve", "-f", "x.yaml", "--shutdown-timeout=0"]), cfg) == 0   # given: abort at once
    # Arithmetic on the default gives a plain float (nothing else reads "not_given").
    assert type(ns.shutdown_timeout + 0) is float


def test_serve_help_names_the_configmap_key() -> None:
    from ingresslib._cli import build_parser

    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    text = " ".join(sub.choices["serve"].format_help().split())
    assert ("--shutdown-timeout SECONDS on SIGINT/SIGTERM/SIGQUIT, how long in-flight requests "
            "may take to finish (default: the --config ConfigMap's worker-shutdown-timeout, "
            "else 10)") in text


# --- worker-shutdown-timeout as nginx reads it -----------------------------------------------------


@pytest.mark.parametrize("value, seconds", [
    ("240s", 240), ("5m", 300), ("1h30m", 5400), ("1h30m15s", 5415), ("10", 10), ("1d", 86400),
    ("1w", 604800), ("1m30", 90), ("250ms", 0.25), (" 30s ", 30), ("24d", 24 * 86400),
])
def test_worker_shutdown_timeout_nginx_times(value: str, seconds: float) -> None:
    assert parse_config_data({"worker-shutdown-timeout": value}).worker_shutdown_timeout \
        == seconds


@pytest.mark.parametrize("value", [
    # nginx's worker_shutdown_timeout is ngx_conf_set_msec_slot: ngx_parse_time(value, 0),
    # which starts at st_month, so "y" and "M" are refused; units once each, largest first; a
    # space splits the directive's argument; past 2147483647 ms.
    "1y", "1M", "30m1h", "1s1s", "1h 30m", "1.5s", "-1", "s", "", "25d",
])
def test_worker_shutdown_timeout_values_nginx_refuses(value: str) -> None:
    with pytest.raises(ValidationError, match="data.worker-shutdown-timeout"):
        parse_config_data({"worker-shutdown-timeout": value})


# --- ssl-reject-handshake and a default-server alias under a ``*.`` rule host ---------------------


_BACK = ("{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: "
         "{number: 80}}}}]}}")


def _alias_under(ca: trustme.CA, *, wild_tls: bool, alias: str = "x.e.test") -> Resources:
    import dataclasses

    from ingresslib import parse_manifests

    tls = "  tls: [{hosts: ['*.e.test'], secretName: wild}]\n" if wild_tls else ""
    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: wild, namespace: "
        f"default}}\nspec:\n{tls}  rules: [{{host: '*.e.test', {_BACK[1:]}]\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/server-alias: "
        f"'{alias}'}}\nspec:\n  rules: [{_BACK}]\n")
    return dataclasses.replace(res, secrets=(_secret("wild", ca.issue_cert("*.e.test")),))


@pytest.mark.parametrize("wild_tls", [False, True])
def test_fix_ssl_reject_handshake_refuses_a_default_server_alias_under_any_wildcard_server(
        ca: trustme.CA, wild_tls: bool) -> None:
    # The alias of a rule without host is an exact server_name of the default server (where
    # ingress-nginx writes ssl_reject_handshake on); nginx finds exact names before "*." ones,
    # so a ClientHello naming it is refused, whether the "*.e.test" server has a certificate
    # (F4's case) or not. Before, without one: answered with the default certificate, as if
    # the "*.e.test" server had it.
    from test_tls_s29 import _settings

    store = CertificateStore()
    store.configure_tls(_settings(ssl_reject_handshake="true"))
    store.update(_alias_under(ca, wild_tls=wild_tls))
    assert store._reject is not None
    assert store.context_for_hello(b"x.e.test") in store._reject
    assert store.context_for_hello(b"X.E.TEST") in store._reject
    assert store.context_for_hello(b"y.e.test") not in store._reject   # the "*." server's
    assert store.context_for_hello(b"a.x.e.test") in store._reject     # nobody's
    # Without ssl-reject-handshake: the lookup's certificate (the "*." one when there is one).
    plain = CertificateStore()
    plain.update(_alias_under(ca, wild_tls=wild_tls))
    assert plain.context_for_hello(b"x.e.test") is plain.context_for_hello(b"y.e.test")
    assert (plain.context_for_hello(b"x.e.test") is plain.default_context) is not wild_tls


def test_reject_handshake_toggled_by_a_reload_follows_the_aliases(ca: trustme.CA) -> None:
    # configure_tls decides the last update again: the refused names follow the setting.
    from test_tls_s29 import _settings

    store = CertificateStore()
    store.update(_alias_under(ca, wild_tls=False))
    assert store._reject is None
    store.configure_tls(_settings(ssl_reject_handshake="true"))
    reject = _reject_of(store)
    assert reject is not None and store.context_for_hello(b"x.e.test") in reject
    store.configure_tls(_settings())
    assert _reject_of(store) is None
    assert store.context_for_hello(b"x.e.test") is store.default_context


def test_an_alias_that_is_a_rule_host_is_that_servers_even_under_reject(ca: trustme.CA) -> None:
    # ingress-nginx drops an alias naming another server's host ("Conflicting hostname and
    # alias"): the rule host's server answers it, with its certificate.
    import dataclasses

    from ingresslib import parse_manifests
    from test_tls_s29 import _settings

    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: "
        "default}\nspec:\n  tls: [{hosts: [x.e.test], secretName: x}]\n"
        f"  rules: [{{host: x.e.test, {_BACK[1:]}]\n---\n"
        + "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/server-alias: "
        f"x.e.test}}\nspec:\n  rules: [{_BACK}]\n")
    res = dataclasses.replace(res, secrets=(_secret("x", ca.issue_cert("x.e.test")),))
    for reject in ("false", "true"):
        store = CertificateStore()
        store.configure_tls(_settings(ssl_reject_handshake=reject))
        store.update(res)
        ctx = store.context_for_hello(b"x.e.test")
        assert ctx is store.context_for("x.e.test") and ctx is not store.default_context
        assert store._reject is None or ctx not in store._reject


def test_fix_cluster_md_says_where_the_stop_bound_comes_from() -> None:
    # docs/cluster.md's "Stopping and signals" said "--shutdown-timeout seconds (default 10)",
    # which the ConfigMap's worker-shutdown-timeout now replaces when the flag is not given.
    text = " ".join((Path(__file__).parent.parent / "docs" / "cluster.md").read_text(
        encoding="utf-8").split())
    stopping = text[text.index("**Stopping and signals.**"):text.index("**Service type.**")]
    assert "(default 10;" not in stopping
    assert ("Without the flag, the bound is the `--config` ConfigMap's `worker-shutdown-timeout`"
            in stopping)
    assert "the flag, when given, wins over the key" in stopping
    assert "terminationGracePeriodSeconds" in stopping


def test_manifest_edits_with_a_failing_tls_build_wait_with_it(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # One reload reads both: a new Ingress (and a TCP services ConfigMap edit, which serve's
    # on_reload applies only on success) goes in with the ConfigMap or not at all, as a failed
    # nginx reload keeps ingress-nginx's whole configuration.
    man, conf = _files(tmp_path, ca, OLD)
    broken = _broken_build(monkeypatch)

    async def main() -> None:
        s = _Setup(man, conf)
        (man / "b.yaml").write_text(_ingress_yaml("b", "b.test", "b") + "---\n"
                                    + _secret_yaml("b", ca.issue_cert("b.test")))
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3"}))
        assert await s.reloader.check() is False
        s.unchanged()
        assert s.router.resources is s.res and s.reloader.last_resources is None
        assert s.store is not None and s.store.hosts == {"a.test"}
        broken[0] = False
        assert await s.reloader.check(force=True) is True
        assert s.store.hosts == {"a.test", "b.test"}
        assert s.version("b.test") == ssl.TLSVersion.TLSv1_3
        assert len(s.router.resources.ingresses) == 2
    asyncio.run(main())


# --- explain and the handshake agree on server-alias names ----------------------------------------


def _alias_case(ca: trustme.CA, docs: list[tuple[str, str | None, list[str], str | None]],
                secrets: dict[str, list[str]]) -> Resources:
    import dataclasses

    from ingresslib import parse_manifests

    text = []
    for name, host, tls, alias in docs:
        ann = (f"  annotations: {{nginx.ingress.kubernetes.io/server-alias: '{alias}'}}\n"
               if alias else "")
        rule = f"[{{host: '{host}', {_BACK[1:]}]" if host else f"[{_BACK}]"
        spec = f"  tls: [{{hosts: {tls}, secretName: {name}}}]\n" if tls else ""
        text.append(f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}"
                    f"\n  namespace: default\n{ann}spec:\n{spec}  rules: {rule}\n")
    res = parse_manifests("---\n".join(text))
    return dataclasses.replace(res, secrets=tuple(
        _secret(n, ca.issue_cert(*hosts)) for n, hosts in secrets.items()))


_WILD = ("wild", "*.e.test", ["*.e.test"], None)


@pytest.mark.parametrize("docs, secrets, x_secret", [
    # a host-less rule's alias under a "*." certificate: the wildcard's (emptyUID is deleted)
    ([_WILD, ("catch", None, [], "x.e.test")], {"wild": ["*.e.test"]}, "default/wild"),
    # the alias is another rule's host with its own certificate: that one
    ([_WILD, ("x", "x.e.test", ["x.e.test"], None), ("catch", None, [], "x.e.test")],
     {"wild": ["*.e.test"], "x": ["x.e.test"]}, "default/x"),
    # the alias has a certificate of its own (a tls.hosts name): that one
    ([("wild", "*.e.test", ["*.e.test", "x.e.test"], None), ("catch", None, [], "x.e.test")],
     {"wild": ["*.e.test", "x.e.test"]}, "default/wild"),
    # spelt in capitals
    ([_WILD, ("catch", None, [], "X.E.test")], {"wild": ["*.e.test"]}, "default/wild"),
    # two host-less rules, each with an alias
    ([_WILD, ("c1", None, [], "x.e.test"), ("c2", None, [], "z.e.test")],
     {"wild": ["*.e.test"]}, "default/wild"),
    # the alias of a rule with a host (not the default server's): no default-server rule
    ([_WILD, ("h", "h.test", [], "x.e.test")], {"wild": ["*.e.test"]}, "default/wild"),
])
def test_explain_and_the_store_agree_on_aliases(
        ca: trustme.CA, docs: Any, secrets: dict[str, list[str]], x_secret: str | None) -> None:
    from ingresslib._tls import certificate_for_name

    res = _alias_case(ca, docs, secrets)
    store = CertificateStore()
    store.update(res)
    for name in ("x.e.test", "y.e.test", "z.e.test", "a.x.e.test", "h.test"):
        hit = certificate_for_name(res, None, name)
        ctx = store.context_for_hello(name.encode())
        assert (hit is None) == (ctx is store.default_context), name
    hit = certificate_for_name(res, None, "x.e.test")
    assert (hit and hit[0]) == x_secret


# --- an ssl-dh-param key and its Secret in one edit -------------------------------------------------


def test_fix_a_dh_secret_and_its_key_in_one_edit_say_no_not_found(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The manifests gain the DH Secret and the ConfigMap names it, in one edit. F4's staged
    # build decides with the resources in use (no Secret yet), then the swap brings the
    # Secret: "Secret default/dh not found" was warned for a Secret that is there.
    from test_tls_s29 import FFDHE3072

    rsa = trustme.CA(key_type=trustme.KeyType.RSA)
    man = tmp_path / "m"
    man.mkdir()
    (man / "a.yaml").write_text(_ingress_yaml("a", "a.test", "a") + "---\n" + _secret_yaml(
        "a", rsa.issue_cert("a.test", key_type=trustme.KeyType.RSA)))
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml(OLD))

    async def main() -> None:
        s = _Setup(man, conf)
        caplog.set_level("INFO")
        (man / "dh.yaml").write_text(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: dh, namespace: default}\n"
            "type: Opaque\nstringData:\n  dhparam.pem: |\n"
            + "".join(f"    {line}\n" for line in FFDHE3072.splitlines()))
        _bump(conf, _configmap_yaml({**OLD, "ssl-dh-param": "default/dh"}))
        assert await s.reloader.check() is True
        assert s.store is not None and s.store._tls.dh_pem
        assert any(c["name"].startswith("DHE-") for c in s.store.context_for("a.test")
                   .get_ciphers())
        assert "not found" not in caplog.text
        # A key naming a Secret that is really missing is still said.
        caplog.clear()
        _bump(conf, _configmap_yaml({**OLD, "ssl-dh-param": "default/other"}))
        assert await s.reloader.check() is True
        assert caplog.text.count("Secret default/other not found") == 1
        assert not s.store._tls.dh_pem
    asyncio.run(main())


# --- the stop's bound cuts a busy request and a WebSocket tunnel, closes an idle connection -------


@pytest.mark.asyncio
async def test_serve_stop_cuts_busy_work_at_the_configmaps_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nginx's worker_shutdown_timeout: once it is over, every connection still open is closed
    # (a request waiting on its upstream, a WebSocket tunnel); an idle keep-alive connection
    # is closed at once. serve with --config worker-shutdown-timeout "300ms" and no flag.
    import os
    import signal

    from ingresslib import _serve
    from ingresslib._cli import build_parser
    from test_serve_cli import _manifests

    seen: list[str] = []
    hold = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"upgrade: websocket" in head.lower():
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n")
            await writer.drain()
            seen.append("ws")
        else:
            seen.append("busy")
        await hold.wait()   # never answers (set only at the end)
        writer.close()

    up = await asyncio.start_server(upstream, "127.0.0.1", 0)
    up_port = up.sockets[0].getsockname()[1]
    man = tmp_path / "m.yaml"
    man.write_text(_manifests("web", [up_port]))
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml({"worker-shutdown-timeout": "300ms"}))
    drained: list[float] = []
    real_drain = _serve._drain

    async def drain(server: Any, timeout: float, interrupt: asyncio.Event) -> None:
        drained.append(timeout)
        await real_drain(server, timeout, interrupt)
    monkeypatch.setattr(_serve, "_drain", drain)
    listening: list[Any] = []
    real_start = ProxyServer.start

    async def start(self: ProxyServer, *a: Any, **kw: Any) -> None:
        await real_start(self, *a, **kw)
        listening.append(self)
    monkeypatch.setattr(ProxyServer, "start", start)
    args = build_parser().parse_args([
        "serve", "-f", str(man), "--config", str(conf), "--listen", "127.0.0.1:0",
        "--reload-interval", "0", "--access-log", "off"])
    outcome: dict[str, bytes] = {}

    async def clients() -> None:
        try:
            await _until(lambda: bool(listening) and bool(listening[0].addresses))
            port = listening[0].addresses[0][-1]
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
            busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
            busy_w.write(b"GET /busy HTTP/1.1\r\nHost: app.test\r\n\r\n")
            ws_r, ws_w = await asyncio.open_connection("127.0.0.1", port)
            ws_w.write(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert (await ws_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            await _until(lambda: sorted(seen) == ["busy", "ws"])
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(5):
                outcome["idle"] = await idle_r.read()
                outcome["busy"] = await busy_r.read()
                outcome["ws"] = await ws_r.read()
            for w in (idle_w, busy_w, ws_w):
                w.close()
        except BaseException:
            os.kill(os.getpid(), signal.SIGTERM)   # (serve must stop whatever happened)
            raise
    task = asyncio.get_running_loop().create_task(clients())
    try:
        assert await _serve._serve(args, load_manifests(str(man)), load_config(str(conf))) == 0
        await task
    finally:
        hold.set()
        up.close()
        await up.wait_closed()
    assert drained == [0.3]
    # Closed without a response: the idle one at once, the busy ones at the bound (the
    # tunnel got its 101 before).
    assert outcome == {"idle": b"", "busy": b"", "ws": b""}


# --- a default-server alias under a "*." certificate: the lookup's certificate ---------------------


def test_fix_a_default_server_alias_under_a_wildcard_gets_the_wildcards_certificate(
        ca: trustme.CA) -> None:
    # F4 gave it the default certificate, reading configureCertificates' "emptyUID" (the
    # default server's certificate does not cover the alias) as "the fallback certificate".
    # But configuration.lua's handle_servers deletes an EMPTY_UID entry from
    # certificate_servers, and certificate.lua's get_pem_cert_uid then tries the "*." entry:
    # ingress-nginx serves the wildcard's certificate (valid for the alias), the generated
    # default one only when no "*." covers it.
    from ingresslib._tls import certificate_for_name

    res = _alias_under(ca, wild_tls=True)
    store = CertificateStore()
    store.update(res)
    assert store._selection is not None
    wild = store._selection.chosen["*.e.test"][0].ctx
    assert store.context_for_hello(b"x.e.test") is wild
    assert store.context_for_hello(b"X.E.Test") is wild
    assert store.hosts == {"*.e.test"}
    hit = certificate_for_name(res, None, "x.e.test")
    assert hit is not None and hit[0] == "default/wild"


def test_a_default_certificate_covering_the_alias_serves_it(ca: trustme.CA) -> None:
    # configureCertificates: the default server's certificate (--default-ssl-certificate) is
    # the alias's when it is valid for it ("ssl.IsValidHostname(alias, SSLCert.CN)").
    import dataclasses

    for covered, expect_default in (("x.e.test", True), ("other.test", False)):
        res = _alias_under(ca, wild_tls=True)
        res = dataclasses.replace(res, secrets=(*res.secrets,
                                                _secret("def", ca.issue_cert(covered))))
        store = CertificateStore(default_secret="default/def")
        store.update(res)
        ctx = store.context_for_hello(b"x.e.test")
        assert (ctx is store.default_context) is expect_default, covered
        assert store.context_for_hello(b"y.e.test") is not store.default_context


def test_the_alias_takes_the_configmaps_ciphers_not_the_wildcard_servers(
        ca: trustme.CA) -> None:
    # The "*.e.test" server sets ssl-ciphers; the alias is the default server's name (nginx:
    # exact before wildcard), whose ciphers are the ConfigMap's: the wildcard's certificate
    # with those, not the "*." server's context.
    import dataclasses

    from ingresslib import parse_manifests
    from test_tls_s29 import AES256

    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: wild\n"
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/ssl-ciphers: "
        f"'{AES256}'}}\nspec:\n  tls: [{{hosts: ['*.e.test'], secretName: wild}}]\n"
        f"  rules: [{{host: '*.e.test', {_BACK[1:]}]\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/server-alias: "
        f"x.e.test}}\nspec:\n  rules: [{_BACK}]\n")
    res = dataclasses.replace(res, secrets=(_secret("wild", ca.issue_cert("*.e.test")),))
    store = CertificateStore()
    store.update(res)
    assert store._selection is not None
    base = store._selection.chosen["*.e.test"][0].ctx
    server = store.context_for_hello(b"y.e.test")
    assert server is not base
    assert [c["name"] for c in server.get_ciphers() if "TLS_" not in c["name"]] == [AES256]
    assert store.context_for_hello(b"x.e.test") is base


def _handshake(server: ssl.SSLContext, ca: trustme.CA, name: str) -> tuple[str, str]:
    """An in-memory handshake of a client trusting ``ca`` (verifying ``name``) with
    ``server``: the cipher chosen and the certificate's subjectAltName."""
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # (the ciphers list applies)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for i, (obj, out, peer) in enumerate(((client, c_out, s_in), (srv, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer.write(data)
        if all(done):
            break
    cipher = client.cipher()
    cert = client.getpeercert()
    assert cipher is not None and cert is not None
    return cipher[0], str(cert.get("subjectAltName"))


def test_fix_the_alias_gets_the_wildcards_certificate_with_the_default_servers_ciphers(
        ca: trustme.CA) -> None:
    # A rule without host sets ssl-ciphers (the default server's, createServers) and a
    # server-alias under "*.e.test": nginx selects the default server by that exact name (its
    # ciphers), certificate.lua serves the "*." certificate. F4: the default certificate,
    # which a client verifying the alias refuses.
    import dataclasses

    from ingresslib import parse_manifests
    from test_tls_s29 import AES256

    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: wild, namespace: "
        "default}\nspec:\n  tls: [{hosts: ['*.e.test'], secretName: wild}]\n"
        f"  rules: [{{host: '*.e.test', {_BACK[1:]}]\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        "  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/server-alias: "
        f"x.e.test, nginx.ingress.kubernetes.io/ssl-ciphers: '{AES256}'}}\n"
        f"spec:\n  rules: [{_BACK}]\n")
    res = dataclasses.replace(res, secrets=(_secret("wild", ca.issue_cert("*.e.test")),))
    store = CertificateStore()
    store.update(res)
    alias = store.context_for_hello(b"x.e.test")
    assert alias is not store._default_server and alias is not store.default_context
    cipher, names = _handshake(alias, ca, "x.e.test")
    assert cipher == AES256 and "*.e.test" in names
    cipher, names = _handshake(store.context_for_hello(b"y.e.test"), ca, "y.e.test")
    assert cipher != AES256 and "*.e.test" in names
    # The next update (a cluster snapshot) reuses the context; a settings change rebuilds it.
    store.update(res)
    assert store.context_for_hello(b"x.e.test") is alias
    from test_tls_s29 import _settings
    store.configure_tls(_settings(ssl_protocols="TLSv1.2 TLSv1.3", ssl_session_tickets="true"))
    again = store.context_for_hello(b"x.e.test")
    assert again is not alias and _handshake(again, ca, "x.e.test")[0] == AES256
