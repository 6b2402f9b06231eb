"""Session 30 (F4): serve's reload and TLS leftovers of session 29, ``worker-shutdown-timeout``.

- A ConfigMap reload whose off-loop TLS build failed left the router's ``load_balance`` /
  ``service_upstream`` and ``Reloader.built_config`` on the NEW ConfigMap while the settings
  kept the old: half applied. Now the contexts are built before anything is swapped in; a
  failed build leaves everything as it was (as ``nginx -t`` failing keeps ingress-nginx's
  configuration), and the next reload applies it all.
- ``worker-shutdown-timeout`` (ConfigMap) bounds serve's graceful stop unless
  ``--shutdown-timeout`` is given; a reload's value counts.
- An invalid ConfigMap of the manifests was warned "not used by custom-headers" only, while
  ``--tcp-services-configmap`` / ``--udp-services-configmap`` read the manifests' ConfigMaps too.
- ``proxy/_connection.py`` no longer imports ``_MAX_CHUNK_SIZE`` / ``_ChunkedReader`` it does
  not use.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from ingresslib import Router
from ingresslib._config import load_config, parse_config_data
from ingresslib._errors import ValidationError
from ingresslib._load import load_manifests
from ingresslib._serve_reload import Reloader
from ingresslib._tls import CertificateStore
from ingresslib.proxy._server import ProxyServer
from test_tls_s29 import _bump, _configmap_yaml, _ingress_yaml, _secret_yaml


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


# --- 1. a failed off-loop TLS build applies nothing of the ConfigMap ---------------------------


def _reloading(tmp_path: Path, ca: trustme.CA, data: dict[str, str]) -> tuple[Path, Path]:
    man = tmp_path / "m"
    man.mkdir()
    (man / "a.yaml").write_text(_ingress_yaml("a", "a.test", "a") + "---\n"
                                + _secret_yaml("a", ca.issue_cert("a.test")))
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml(data))
    return man, conf


@pytest.mark.parametrize("key, value, attr, old", [
    ("load-balance", "ewma", "load_balance", "round_robin"),
    ("service-upstream", "true", "service_upstream", False),
])
def test_fix_a_failed_tls_build_leaves_the_router_defaults_and_built_config(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, key: str, value: str,
        attr: str, old: Any) -> None:
    # Before: the router took the new ConfigMap's default (and built_config, which the cluster
    # watch's swaps put in their digest, was the new ConfigMap) while the settings and the
    # contexts stayed the old ones. Now none of it changes until a reload whose build works.
    man, conf = _reloading(tmp_path, ca, {"ssl-protocols": "TLSv1.2 TLSv1.3"})
    broken = [True]
    real = CertificateStore.build_tls

    def build_tls(self: CertificateStore, job: Any) -> Any:
        if broken[0]:
            raise OSError(24, "Too many open files")
        return real(self, job)
    monkeypatch.setattr(CertificateStore, "build_tls", build_tls)
    said: list[bool] = []

    async def main() -> None:
        res = load_manifests(str(man))
        cfg = load_config(str(conf))
        store = CertificateStore()
        store.configure_tls(cfg.settings)
        store.update(res)
        router = Router(res)
        server = ProxyServer(router, cfg.settings, cert_store=store)
        reloader = Reloader(server, [str(man)], ingress_class=None, controller=None,
                            config=cfg, config_path=str(conf), settle=0,
                            on_reload=lambda ok, msg: said.append(ok))
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", key: value}))
        assert await reloader.check() is False
        assert said == [False] and reloader.failures == 1 and reloader.reloads == 0
        assert getattr(router, attr) == old
        assert reloader.built_config is cfg and reloader.config is cfg
        assert server.settings == cfg.settings and server.settings.ssl_protocols == "TLSv1.2 TLSv1.3"
        assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_2
        # The next reload (SIGHUP) applies all of it.
        broken[0] = False
        assert await reloader.check(force=True) is True
        assert getattr(router, attr) == (value if attr == "load_balance" else True)
        assert reloader.built_config is reloader.config is not cfg
        assert server.settings.ssl_protocols == "TLSv1.3"
        assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_3
    asyncio.run(main())


def test_a_working_tls_build_and_the_router_default_go_in_together(
        tmp_path: Path, ca: trustme.CA) -> None:
    man, conf = _reloading(tmp_path, ca, {"ssl-protocols": "TLSv1.2 TLSv1.3"})

    async def main() -> None:
        res = load_manifests(str(man))
        cfg = load_config(str(conf))
        store = CertificateStore()
        store.configure_tls(cfg.settings)
        store.update(res)
        router = Router(res)
        server = ProxyServer(router, cfg.settings, cert_store=store)
        reloader = Reloader(server, [str(man)], ingress_class=None, controller=None,
                            config=cfg, config_path=str(conf), settle=0)
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3", "load-balance": "ewma"}))
        assert await reloader.check() is True
        assert router.load_balance == "ewma" and reloader.built_config is reloader.config
        assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_3
        assert store.hosts == {"a.test"}
    asyncio.run(main())


# --- 6. worker-shutdown-timeout ---------------------------------------------------------------


def test_fix_worker_shutdown_timeout_is_read_as_an_nginx_time() -> None:
    assert parse_config_data({"worker-shutdown-timeout": "240s"}).worker_shutdown_timeout == 240
    assert parse_config_data({"worker-shutdown-timeout": "1m30s"}).worker_shutdown_timeout == 90
    assert parse_config_data({"worker-shutdown-timeout": "500ms"}).worker_shutdown_timeout == 0.5
    assert parse_config_data({"worker-shutdown-timeout": "30"}).worker_shutdown_timeout == 30
    cfg = parse_config_data({"worker-shutdown-timeout": "30s"})
    assert not any("not implement" in w for w in cfg.warnings)
    assert parse_config_data({}).worker_shutdown_timeout is None
    with pytest.raises(ValidationError, match="data.worker-shutdown-timeout"):
        parse_config_data({"worker-shutdown-timeout": "soon"})


def test_worker_shutdown_timeout_zero_is_warned_and_not_used() -> None:
    # nginx: 0 is no bound at all (no shutdown timer), which serve does not offer.
    cfg = parse_config_data({"worker-shutdown-timeout": "0s"})
    assert cfg.worker_shutdown_timeout is None
    assert cfg.warnings == ("ConfigMap: data.worker-shutdown-timeout: 0 (nginx: no bound) is "
                            "not supported; read as not set (--shutdown-timeout, else 10 s)",)


def test_fix_the_flag_wins_else_the_configmap_else_ten_seconds() -> None:
    from ingresslib._cli import build_parser
    from ingresslib._serve_reload import shutdown_timeout

    parser = build_parser()
    cfg = parse_config_data({"worker-shutdown-timeout": "45s"})
    given = parser.parse_args(["serve", "-f", "x.yaml", "--shutdown-timeout", "3"])
    default = parser.parse_args(["serve", "-f", "x.yaml"])
    assert default.shutdown_timeout == 10   # (still a number: a default of 10)
    assert shutdown_timeout(given, cfg) == 3
    assert shutdown_timeout(default, cfg) == 45
    assert shutdown_timeout(default, parse_config_data({})) == 10
    assert shutdown_timeout(default, None) == 10
    assert shutdown_timeout(argparse.Namespace(), cfg) == 45
    # An explicit 10 is the flag's, not the default's.
    assert shutdown_timeout(parser.parse_args(["serve", "-f", "x", "--shutdown-timeout", "10"]),
                            cfg) == 10


class _Server:
    """Records the graceful stop's bound."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    async def shutdown(self, timeout: float = 10.0) -> None:
        self.timeouts.append(timeout)


def test_fix_serve_stops_within_the_configmaps_worker_shutdown_timeout() -> None:
    from ingresslib._cli import build_parser
    from ingresslib._serve import _stop_serving

    args = build_parser().parse_args(["serve", "-f", "x.yaml"])
    server = _Server()
    cfg = parse_config_data({"worker-shutdown-timeout": "2m"})
    asyncio.run(_stop_serving(server, args, asyncio.Event(), None, None, config=cfg))
    assert server.timeouts == [120]


def test_a_reload_changes_the_bound(tmp_path: Path, ca: trustme.CA) -> None:
    from ingresslib._cli import build_parser
    from ingresslib._serve_reload import shutdown_timeout

    man, conf = _reloading(tmp_path, ca, {"worker-shutdown-timeout": "20s"})
    args = build_parser().parse_args(["serve", "-f", str(man), "--config", str(conf)])

    async def main() -> None:
        res = load_manifests(str(man))
        cfg = load_config(str(conf))
        server = ProxyServer(Router(res), cfg.settings)
        reloader = Reloader(server, [str(man)], ingress_class=None, controller=None,
                            config=cfg, config_path=str(conf), settle=0)
        assert shutdown_timeout(args, reloader.config) == 20
        _bump(conf, _configmap_yaml({"worker-shutdown-timeout": "5s"}))
        assert await reloader.check() is True
        assert shutdown_timeout(args, reloader.config) == 5
        _bump(conf, _configmap_yaml({"worker-shutdown-timeout": "-1"}))   # invalid: kept
        assert await reloader.check() is False
        assert shutdown_timeout(args, reloader.config) == 5
    asyncio.run(main())


# --- 7. an invalid ConfigMap of the manifests: every use named --------------------------------


def test_fix_an_invalid_configmap_names_the_services_flags_too() -> None:
    from ingresslib import parse_manifests

    res = parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tcp, namespace: "
                          "default}\ndata: {'9000': 1}\n")
    text = "\n".join(str(w) for w in res.warnings)
    assert ("not used by custom-headers, --tcp-services-configmap or "
            "--udp-services-configmap") in text
    assert not res.config_maps


# --- 8. no unused re-exports in proxy/_connection.py --------------------------------------------


def test_fix_connection_does_not_import_the_chunked_names_it_does_not_use() -> None:
    from ingresslib.proxy import _chunked, _connection

    assert not hasattr(_connection, "_MAX_CHUNK_SIZE")
    assert not hasattr(_connection, "_ChunkedReader")
    assert _connection._RequestChunkedReader is _chunked._RequestChunkedReader


# --- 2. an ssl-dh-param Secret that comes after the settings named it ---------------------------


def test_fix_a_dh_secret_coming_after_its_not_found_is_applied_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    # The cluster watch's snapshots, in order: without the Secret (said "not found"), then with
    # it. Before: the parameters were loaded, but nothing said so after the "not found" line.
    from ingresslib._resources import Resources
    from test_tls_s29 import FFDHE3072, _dh_secret, _ing, _secret, _settings

    rsa = trustme.CA(key_type=trustme.KeyType.RSA)
    ing = _ing("a", "a.test", "a")
    cert = _secret("a", rsa.issue_cert("a.test", key_type=trustme.KeyType.RSA))
    store = CertificateStore()
    store.configure_tls(_settings(ssl_dh_param="default/dh"))
    caplog.set_level("INFO", logger="ingresslib.tls")
    store.update(Resources(ingresses=(ing,), secrets=(cert,)))
    assert "Secret default/dh not found" in caplog.text
    assert not store._tls.dh_pem
    caplog.clear()
    store.update(Resources(ingresses=(ing,), secrets=(cert, _dh_secret("dh", FFDHE3072))))
    assert store._tls.dh_pem
    assert any(c["name"].startswith("DHE-") for c in store.context_for("a.test").get_ciphers())
    assert caplog.text.count("DH parameters loaded") == 1
    caplog.clear()
    store.update(Resources(ingresses=(ing,), secrets=(cert, _dh_secret("dh", FFDHE3072))))
    assert caplog.text == ""   # said once


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_applies_a_dh_secret_created_later(tmp_path: Path) -> None:
    import json

    from test_tls_review_s29 import _b64, _tls_ingress_dict, _tls_secret_dict
    from test_tls_s29 import DHE, FFDHE3072, _dhe
    from tests._fake_kube import FakeKube, kubeconfig_dict
    from tests.test_serve_cli import _start_serve, _stop

    rsa = trustme.CA(key_type=trustme.KeyType.RSA)
    kube = FakeKube()
    url = await kube.start()
    kube.put(_tls_ingress_dict("a", "a.test", "a"))
    kube.put(_tls_secret_dict("a", rsa.issue_cert("a.test", key_type=trustme.KeyType.RSA)))
    kc = tmp_path / "kubeconfig"
    kc.write_text(json.dumps(kubeconfig_dict(url)))
    conf = tmp_path / "configmap.yaml"
    conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                    "data: {ssl-dh-param: default/dh}\n")
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(kc), "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--config", str(conf), "--reload-interval", "0.05")
    try:
        loop = asyncio.get_running_loop()
        port = ports["https"]
        deadline = loop.time() + 10
        while True:   # the first table is in
            try:
                ctx = ssl.create_default_context()
                rsa.configure_trust(ctx)
                _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                     server_hostname="a.test")
                w.close()
                break
            except (ssl.SSLError, OSError):
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
        assert await _dhe(port, rsa) is None
        kube.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": "dh", "namespace": "default"},
                  "data": {"dhparam.pem": _b64(FFDHE3072)}})
        deadline = loop.time() + 8   # (at once here; a loaded machine is slow)
        while await _dhe(port, rsa) != DHE:
            assert loop.time() < deadline, "the DH Secret was never applied"
            await asyncio.sleep(0.05)
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
    assert "DH parameters loaded" in err and "Traceback" not in err, err


# --- 3. a staged build's problems: once per request ---------------------------------------------


def test_fix_a_retried_staged_build_logs_its_problems_once(
        ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    # commit_tls refuses a build when an update came meanwhile; the next try built the same
    # settings again and logged their problems again ("not found" twice for one reload).
    from ingresslib._resources import Resources
    from test_tls_s29 import _ing, _secret, _settings

    res = Resources(ingresses=(_ing("a", "a.test", "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))
    store = CertificateStore()
    store.update(res)
    caplog.set_level("INFO", logger="ingresslib.tls")
    job = store.ask_tls(_settings(ssl_dh_param="default/dh"))
    assert job is not None
    built = store.build_tls(job)
    assert built is not None and caplog.text.count("default/dh not found") == 1
    store.update(res)   # a cluster snapshot meanwhile
    assert store.commit_tls(built) is False
    built = store.build_tls(job)
    assert built is not None and store.commit_tls(built) is True
    assert caplog.text.count("default/dh not found") == 1
    assert store._tls.dh_param == "default/dh"
    store.update(res)   # lasting: not said again
    assert caplog.text.count("default/dh not found") == 1


# --- 4. a default-server alias under a ``*.`` host ----------------------------------------------


def _alias_res(ca: trustme.CA, ciphers: bool = False) -> Any:
    from ingresslib import parse_manifests
    from test_tls_s29 import AES256, P, _secret

    extra = f', {P}ssl-ciphers: "{AES256}"' if ciphers else ""
    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: wild, namespace: "
        "default}\nspec:\n  tls: [{hosts: ['*.example.test'], secretName: wild}]\n"
        "  rules: [{host: '*.example.test'}]\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        f"  namespace: default\n  annotations: {{{P}server-alias: x.example.test{extra}}}\n"
        "spec:\n  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: "
        "{name: s, port: {number: 80}}}}]}}]\n")
    import dataclasses
    return dataclasses.replace(res, secrets=(_secret("wild", ca.issue_cert("*.example.test")),))


def test_a_default_server_alias_under_a_wildcard_gets_the_wildcards_certificate(
        ca: trustme.CA) -> None:
    # configureCertificates gives the alias an emptyUID entry, but configuration.lua's
    # handle_servers deletes EMPTY_UID entries, so certificate.lua's get_pem_cert_uid falls back
    # to the "*." entry (R14; F4 had given it the default certificate).
    store = CertificateStore()
    store.update(_alias_res(ca))
    wild = store.context_for("y.example.test")
    assert wild is not store.default_context
    assert store.context_for("x.example.test") is wild
    assert store.hosts == {"*.example.test"}


def test_fix_the_alias_takes_the_default_servers_ciphers_and_its_refusal(ca: trustme.CA) -> None:
    from test_tls_s29 import _settings

    store = CertificateStore()
    store.update(_alias_res(ca, ciphers=True))
    assert store._default_server is not None
    # The wildcard's certificate with the default server's ciphers (R14): neither context.
    alias = store.context_for_hello(b"x.example.test")
    assert alias is not store._default_server
    assert alias is not store.context_for_hello(b"y.example.test")
    rejecting = CertificateStore()
    rejecting.configure_tls(_settings(ssl_reject_handshake="true"))
    rejecting.update(_alias_res(ca))
    assert rejecting._reject is not None
    assert rejecting.context_for_hello(b"x.example.test") in rejecting._reject
    assert rejecting.context_for_hello(b"y.example.test") not in rejecting._reject


@pytest.mark.asyncio
async def test_serve_follows_worker_shutdown_timeout_through_a_reload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # serve from files with --config and --tcp-services-configmap: the TCP services' drain
    # bound and the stop's are the ConfigMap's, and a reload's new value replaces them.
    import os
    import signal

    from ingresslib import _serve, _serve_tcp
    from ingresslib._cli import build_parser
    from test_tls_s29 import _bump

    man = tmp_path / "m.yaml"
    man.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tcp, namespace: ingress}\n"
                   "data: {}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml({"worker-shutdown-timeout": "7s"}))
    feeds: list[Any] = []
    real_feed = _serve_tcp.TCPServicesFeed

    class Feed(real_feed):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            feeds.append(self)
    monkeypatch.setattr(_serve_tcp, "TCPServicesFeed", Feed)
    drained: list[float] = []
    real_drain = _serve._drain

    async def drain(server: Any, timeout: float, interrupt: asyncio.Event) -> None:
        drained.append(timeout)
        await real_drain(server, timeout, interrupt)
    monkeypatch.setattr(_serve, "_drain", drain)
    reloaders: list[Reloader] = []

    class Reloading(Reloader):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            reloaders.append(self)
    monkeypatch.setattr(_serve, "Reloader", Reloading)
    args = build_parser().parse_args([
        "serve", "-f", str(man), "--config", str(conf), "--listen", "127.0.0.1:0",
        "--tcp-services-configmap", "ingress/tcp", "--reload-interval", "0.05",
        "--access-log", "off"])
    cfg = load_config(str(conf))
    res = load_manifests(str(man))

    async def edit_then_stop() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        try:
            # The reloader's snapshot of the files taken first: an edit before it was its
            # starting point, never reloaded (drain_timeout stayed 7 under load).
            while not feeds or feeds[0].services.drain_timeout != 7 or not reloaders:
                assert loop.time() < deadline
                await asyncio.sleep(0.02)
            _bump(conf, _configmap_yaml({"worker-shutdown-timeout": "3s"}))
            while feeds[0].services.drain_timeout != 3:
                assert loop.time() < deadline, feeds[0].services.drain_timeout
                await asyncio.sleep(0.02)
        finally:   # (stopped whatever happened: a failure must not leave serve running)
            os.kill(os.getpid(), signal.SIGTERM)
    task = asyncio.get_running_loop().create_task(edit_then_stop())
    assert await _serve._serve(args, res, cfg) == 0
    await task
    assert drained == [3]


def test_explain_says_the_wildcards_certificate_for_that_alias(ca: trustme.CA) -> None:
    from ingresslib._tls import certificate_for_name

    res = _alias_res(ca)
    alias = certificate_for_name(res, None, "x.example.test")
    assert alias is not None and alias[0] == "default/wild"
    hit = certificate_for_name(res, None, "y.example.test")
    assert hit is not None and hit[0] == "default/wild"
