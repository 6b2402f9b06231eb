"""Session 29: TLS termination left-overs of session 28, through real handshakes on 127.0.0.1.

- A ConfigMap reload changing an ``ssl-*`` key rebuilt every context ON the event loop
  (``ProxyServer.settings`` -> ``CertificateStore.configure_tls``): 1.3-2.3 s for 1,000
  certificates during which the listener answered nobody. Now built in a worker thread and
  swapped in on the loop in one step (``_tls_reconfigure.configure_tls_off_loop``); two
  requests racing end with the newest; an update meanwhile is not undone.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from ingresslib import Router
from ingresslib._config import load_config
from ingresslib._load import load_manifests
from ingresslib._models import Ingress, IngressRule, IngressSpec, IngressTLS, ObjectMeta
from ingresslib._resources import Resources
from ingresslib._serve_reload import Reloader
from ingresslib._tls import CertificateStore
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._server import ProxyServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def _indent(pem: bytes) -> str:
    return "".join("    " + line + "\n" for line in pem.decode().splitlines())


def _secret_yaml(name: str, cert: trustme.LeafCert) -> str:
    crt = b"".join(p.bytes() for p in cert.cert_chain_pems)
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n"
            "type: kubernetes.io/tls\nstringData:\n"
            f"  tls.crt: |\n{_indent(crt)}  tls.key: |\n{_indent(cert.private_key_pem.bytes())}")


def _ingress_yaml(name: str, host: str, secret: str) -> str:
    return ("apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
            f"metadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  tls: [{{hosts: [{host}], secretName: {secret}}}]\n"
            f"  rules: [{{host: {host}}}]\n")


def _configmap_yaml(data: dict[str, str]) -> str:
    body = ", ".join(f'{k}: "{v}"' for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ingresslib}}\ndata: {{{body}}}\n"


def _bump(path: Path, text: str) -> None:
    """Replace ``path`` and move its mtime (writes may share a timestamp)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def _client(ca: trustme.CA | None, *, tls12: bool = False) -> ssl.SSLContext:
    """A client trusting ``ca`` (None: verifying nothing, for the default certificate)."""
    ctx = ssl.create_default_context()
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca.configure_trust(ctx)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def _handshake(port: int, ctx: ssl.SSLContext, sni: str | None) -> Any:
    """The client's SSLObject after a handshake; raises ssl.SSLError (or a connection error)."""
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=sni or ""), 2.0)
    obj = w.get_extra_info("ssl_object")
    w.close()
    try:
        await w.wait_closed()
    except (OSError, ssl.SSLError):
        pass
    return obj


def _ing(name: str, host: str, secret: str) -> Ingress:
    return Ingress(metadata=ObjectMeta(name=name, namespace="default"),
                   spec=IngressSpec(rules=(IngressRule(host=host),),
                                    tls=(IngressTLS(hosts=(host,), secret_name=secret),)))


# --- 1. ssl-* changes build the contexts off the event loop --------------------------------


def _slow_builder(monkeypatch: pytest.MonkeyPatch, protocols: tuple[str, ...],
                  entered: threading.Event, release: threading.Event,
                  wait: float = 1.5) -> None:
    """Make the first context built with ``protocols`` wait for ``release`` (at most ``wait``
    seconds): a slow rebuild without thousands of certificates."""
    from ingresslib import _tls

    real = _tls._new_context

    def slow(*args: Any, **kw: Any) -> ssl.SSLContext:
        tls = kw.get("tls")
        if tls is not None and tls.protocols == protocols and not entered.is_set():
            entered.set()
            release.wait(wait)
        return real(*args, **kw)
    monkeypatch.setattr(_tls, "_new_context", slow)


def test_fix_a_configmap_reload_rebuilds_the_contexts_off_the_loop(
        tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the reload set the server's settings on the loop, whose configure_tls built every
    # context there: the handshake below waited for the whole rebuild, then got the new
    # settings (TLS 1.3 only) and failed. Now it completes, with the old contexts, while the
    # rebuild runs; the new settings apply once it is swapped in.
    man = tmp_path / "m"
    man.mkdir()
    (man / "a.yaml").write_text(_ingress_yaml("a", "a.test", "a") + "---\n"
                                + _secret_yaml("a", ca.issue_cert("a.test")))
    cm = tmp_path / "cm.yaml"
    cm.write_text(_configmap_yaml({"proxy-body-size": "1m"}))
    entered, release = threading.Event(), threading.Event()
    _slow_builder(monkeypatch, ("tlsv1.3",), entered, release)

    async def main() -> None:
        res = load_manifests(str(man))
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), ProxySettings(), cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        port = server.addresses[-1][2]
        try:
            r = Reloader(server, [str(man)], ingress_class=None, controller=None, settle=0,
                         config=load_config(cm), config_path=str(cm))
            _bump(cm, _configmap_yaml({"proxy-body-size": "1m", "ssl-protocols": "TLSv1.3"}))
            reload = asyncio.create_task(r.check())
            async with asyncio.timeout(2):
                while not entered.is_set():
                    await asyncio.sleep(0.005)
            # The rebuild is waiting in its worker thread: the listener answers meanwhile,
            # with the contexts in use (TLS 1.2 still allowed), the whole set of them.
            assert (await _handshake(port, _client(ca, tls12=True), "a.test")).version() \
                == "TLSv1.2"
            assert (await _handshake(port, _client(None, tls12=True), None)).version() \
                == "TLSv1.2"
            assert not reload.done() and not release.is_set()
            assert server.settings.ssl_protocols == "TLSv1.2 TLSv1.3"
            release.set()
            assert await reload is True
            assert server.settings.ssl_protocols == "TLSv1.3"
            for sni, trust in (("a.test", ca), (None, None)):
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    await _handshake(port, _client(trust, tls12=True), sni)
                assert (await _handshake(port, _client(trust), sni)).version() == "TLSv1.3"
        finally:
            release.set()
            await server.shutdown(1.0)
    asyncio.run(main())


def _settings(**data: str) -> ProxySettings:
    from ingresslib._config import parse_config_data

    return parse_config_data({k.replace("_", "-"): v for k, v in data.items()}).settings


def test_two_quick_reloads_end_with_the_newest_settings(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first request's build is slow and still running when the second one comes: it is
    # dropped (never swapped in over the newer one), whichever finishes first.
    from ingresslib._tls_reconfigure import configure_tls_off_loop

    entered, release = threading.Event(), threading.Event()
    _slow_builder(monkeypatch, ("tlsv1.3",), entered, release, wait=0.3)
    res = Resources(ingresses=(_ing("a", "a.test", "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def main() -> None:
        store = CertificateStore()
        store.update(res)
        first = asyncio.create_task(configure_tls_off_loop(
            store, _settings(ssl_protocols="TLSv1.3")))
        async with asyncio.timeout(2):
            while not entered.is_set():
                await asyncio.sleep(0.005)
        second = asyncio.create_task(configure_tls_off_loop(
            store, _settings(ssl_protocols="TLSv1.2")))
        await asyncio.gather(first, second)
        for ctx in (store.default_context, store.context_for("a.test")):
            assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
        # And back to the settings in use before both: a request for them drops a pending one.
        third = asyncio.create_task(configure_tls_off_loop(
            store, _settings(ssl_protocols="TLSv1.3")))
        await asyncio.sleep(0)
        store.configure_tls(_settings(ssl_protocols="TLSv1.2"))
        await third
        assert store.context_for("a.test").maximum_version == ssl.TLSVersion.TLSv1_2
    asyncio.run(main())


def test_an_update_during_the_rebuild_is_not_undone(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cluster snapshot applied (update() in a worker thread) while the contexts are built
    # for new settings: the build, made on the older decision, is not swapped in over it; it
    # runs again on the new one. Both the new host and the new settings end up served.
    from ingresslib._tls_reconfigure import configure_tls_off_loop

    entered, release = threading.Event(), threading.Event()
    _slow_builder(monkeypatch, ("tlsv1.3",), entered, release, wait=0.3)
    a = _secret("a", ca.issue_cert("a.test"))
    b = _secret("b", ca.issue_cert("b.test"))
    one = Resources(ingresses=(_ing("a", "a.test", "a"),), secrets=(a,))
    two = Resources(ingresses=(_ing("a", "a.test", "a"), _ing("b", "b.test", "b")),
                    secrets=(a, b))

    async def main() -> None:
        store = CertificateStore()
        store.update(one)
        task = asyncio.create_task(configure_tls_off_loop(
            store, _settings(ssl_protocols="TLSv1.3")))
        async with asyncio.timeout(2):
            while not entered.is_set():
                await asyncio.sleep(0.005)
        updating = asyncio.create_task(asyncio.to_thread(store.update, two))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(task, updating)
        assert "b.test" in store.hosts
        for host in ("a.test", "b.test"):
            assert store.context_for(host).minimum_version == ssl.TLSVersion.TLSv1_3
        assert store.default_context.minimum_version == ssl.TLSVersion.TLSv1_3
    asyncio.run(main())


def _secret(name: str, cert: trustme.LeafCert) -> Any:
    import base64

    from ingresslib._models import Secret, freeze_map

    crt = b"".join(p.bytes() for p in cert.cert_chain_pems)
    return Secret(
        metadata=ObjectMeta(name=name, namespace="default"), type="kubernetes.io/tls",
        data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                         "tls.key": base64.b64encode(cert.private_key_pem.bytes()).decode()}))


# --- 2. ssl-dh-param -------------------------------------------------------------------------

#: RFC 7919 ffdhe3072, as "openssl dhparam" writes PEM DH parameters (CPython's test data
#: ffdh3072.pem): a standard group, so no slow generation here.
FFDHE3072 = """-----BEGIN DH PARAMETERS-----
MIIBjAKCAYEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3
7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32
nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZsYu
N///////////AgECAgIBFA==
-----END DH PARAMETERS-----
"""
DHE = "DHE-RSA-AES128-GCM-SHA256"


@pytest.fixture(scope="module")
def rsa_ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


def _dh_secret(name: str, pem: str | None) -> Any:
    from ingresslib._models import Secret, freeze_map

    return Secret(metadata=ObjectMeta(name=name, namespace="default"), type="Opaque",
                  string_data=freeze_map({} if pem is None else {"dhparam.pem": pem}))


def _dhe_client(ca: trustme.CA) -> ssl.SSLContext:
    ctx = _client(ca, tls12=True)
    ctx.set_ciphers(DHE)
    return ctx


async def _dhe(port: int, ca: trustme.CA) -> str | None:
    """The cipher of a TLS 1.2 handshake offering only a DHE suite; None: refused."""
    try:
        return str((await _handshake(port, _dhe_client(ca), "a.test")).cipher()[0])
    except (ssl.SSLError, ConnectionError):
        return None


def _dh_run(res: Resources, settings: ProxySettings, body: Any) -> None:
    async def main() -> None:
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), settings, cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        try:
            await body(server, store, server.addresses[-1][2])
        finally:
            await server.shutdown(1.0)
    asyncio.run(main())


def test_fix_ssl_dh_param_offers_the_dhe_suites(rsa_ca: trustme.CA) -> None:
    # Before: "ssl-dh-param" was an ingress-nginx key ingresslib ignored (a warning): no DH
    # parameters were ever loaded, so a client offering only DHE suites was refused.
    cfg_warnings = __import__("ingresslib._config", fromlist=["x"]).parse_config_data(
        {"ssl-dh-param": "default/dh"}).warnings
    assert cfg_warnings == ()
    secret = _secret("a", rsa_ca.issue_cert("a.test", key_type=trustme.KeyType.RSA))
    with_dh = Resources(ingresses=(_ing("a", "a.test", "a"),),
                        secrets=(secret, _dh_secret("dh", FFDHE3072)))

    async def body(server: ProxyServer, store: CertificateStore, port: int) -> None:
        assert await _dhe(port, rsa_ca) == DHE
        # Without SNI too (the default certificate's context), and the ECDHE suites stay.
        obj = await _handshake(port, _client(rsa_ca, tls12=True), "a.test")
        assert obj.cipher()[0].startswith("ECDHE-")
        # The Secret loses its key: an update builds the contexts again, without DH.
        problems = store.update(Resources(ingresses=with_dh.ingresses,
                                          secrets=(secret, _dh_secret("dh", None))))
        assert any("data.ssl-dh-param" in str(p) and "no dhparam.pem" in str(p)
                   for p in problems), problems
        assert await _dhe(port, rsa_ca) is None
        # And back.
        assert not [p for p in store.update(with_dh) if "dh-param" in str(p)]
        assert await _dhe(port, rsa_ca) == DHE
        # Unset by a settings change: no DHE.
        server.settings = ProxySettings()
        assert await _dhe(port, rsa_ca) is None
    _dh_run(with_dh, _settings(ssl_dh_param="default/dh"), body)


def test_without_ssl_dh_param_no_dhe(rsa_ca: trustme.CA) -> None:
    res = Resources(ingresses=(_ing("a", "a.test", "a"),),
                    secrets=(_secret("a", rsa_ca.issue_cert("a.test", key_type=trustme.KeyType.RSA)),
                             _dh_secret("dh", FFDHE3072)))

    async def body(server: ProxyServer, store: CertificateStore, port: int) -> None:
        assert await _dhe(port, rsa_ca) is None
        # Set by a settings change (the Secret read from the store's last Resources).
        server.settings = _settings(ssl_dh_param="default/dh")
        assert await _dhe(port, rsa_ca) == DHE
    _dh_run(res, ProxySettings(), body)


@pytest.mark.parametrize("secrets, said", [
    ((), "Secret default/dh not found"),
    ((("dh", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),),
     "BEGIN DH PARAMETERS"),
    ((("dh", "-----BEGIN DH PARAMETERS-----\nMIIBCgKCAQEA\n-----END DH PARAMETERS-----\n"),),
     "OpenSSL refuses"),
])
def test_a_missing_or_bad_dh_secret_is_said_and_offers_no_dhe(
        rsa_ca: trustme.CA, secrets: tuple[tuple[str, str], ...], said: str) -> None:
    # ingress-nginx: a missing Secret or key, or a first PEM block other than DH PARAMETERS,
    # gives nginx no ssl_dhparam (a warning). The rest is served as before.
    res = Resources(ingresses=(_ing("a", "a.test", "a"),),
                    secrets=(_secret("a", rsa_ca.issue_cert("a.test", key_type=trustme.KeyType.RSA)),
                             *(_dh_secret(n, pem) for n, pem in secrets)))
    store = CertificateStore()
    store.configure_tls(_settings(ssl_dh_param="default/dh"))
    problems = [str(p) for p in store.update(res)]
    assert any("ConfigMap: data.ssl-dh-param: " in p and said in p for p in problems), problems

    async def body(server: ProxyServer, store: CertificateStore, port: int) -> None:
        assert await _dhe(port, rsa_ca) is None
        assert (await _handshake(port, _client(rsa_ca, tls12=True), "a.test")).version() \
            == "TLSv1.2"
    _dh_run(res, _settings(ssl_dh_param="default/dh"), body)


def test_ssl_dh_param_value_is_namespace_slash_name() -> None:
    from ingresslib import ValidationError
    from ingresslib._config import parse_config_data

    with pytest.raises(ValidationError, match="ssl-dh-param"):
        parse_config_data({"ssl-dh-param": "dhparam"})
    with pytest.raises(ValueError, match="ssl_dh_param"):
        ProxySettings(ssl_dh_param="a/b/c")
    assert parse_config_data({"ssl-dh-param": ""}).settings.ssl_dh_param == ""


# --- 3. a host-less rule's ssl-ciphers: the default server's ---------------------------------

P = "nginx.ingress.kubernetes.io/"
AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
AES256 = "ECDHE-ECDSA-AES256-GCM-SHA384"


def _hostless(name: str, annotations: dict[str, str]) -> Ingress:
    from ingresslib._models import freeze_map

    return Ingress(metadata=ObjectMeta(name=name, namespace="default",
                                       annotations=freeze_map(annotations)),
                   spec=IngressSpec(rules=(IngressRule(host=None),)))


async def _cipher(port: int, ca: trustme.CA | None, sni: str | None, ciphers: str
                  ) -> str | None:
    ctx = _client(ca, tls12=True)
    ctx.set_ciphers(ciphers)
    try:
        return str((await _handshake(port, ctx, sni)).cipher()[0])
    except (ssl.SSLError, ConnectionError):
        return None


def test_fix_a_hostless_rules_ssl_ciphers_apply_to_the_default_server(ca: trustme.CA) -> None:
    # ingress-nginx: a rule without host lands in the default server "_" (createServers:
    # host = defServerName), whose ssl_ciphers the annotation sets: a ClientHello without SNI
    # or naming no server. Before: the annotation was ignored (only rule hosts were read),
    # and AES128, which the annotation leaves out, was negotiated there. Hosts with a server
    # of their own keep the ConfigMap's ciphers, TLS hosts or not.
    from ingresslib.proxy._annotations import IMPLEMENTED

    assert "ssl-ciphers" in IMPLEMENTED
    res = Resources(ingresses=(_hostless("catch", {P + "ssl-ciphers": AES256}),
                               _ing("a", "a.test", "a"),
                               Ingress(metadata=ObjectMeta(name="plain", namespace="default"),
                                       spec=IngressSpec(rules=(IngressRule(host="plain.test"),)))),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def main() -> None:
        store = CertificateStore()
        assert not [p for p in store.update(res) if "ssl-ciphers" in str(p)]
        server = ProxyServer(Router(res), ProxySettings(), cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        port = server.addresses[-1][2]
        try:
            for sni in (None, "unknown.test"):
                assert await _cipher(port, None, sni, AES128) is None, sni
                assert await _cipher(port, None, sni, f"{AES128}:{AES256}") == AES256, sni
            assert await _cipher(port, ca, "a.test", AES128) == AES128
            assert await _cipher(port, None, "plain.test", AES128) == AES128
            # Gone with the annotation.
            store.update(Resources(ingresses=(_hostless("catch", {}),), secrets=res.secrets))
            assert await _cipher(port, None, None, AES128) == AES128
        finally:
            await server.shutdown(1.0)
    asyncio.run(main())


def test_default_server_ciphers_first_ingress_wins() -> None:
    from ingresslib._tls_settings import ServerCiphers, default_server_ciphers

    older = _hostless("older", {P + "ssl-ciphers": AES256})
    newer = _hostless("newer", {P + "ssl-ciphers": AES128,
                                P + "ssl-prefer-server-ciphers": "false"})
    hosted = _ing("hosted", "h.test", "x")
    assert default_server_ciphers([older, newer, hosted], P) == ServerCiphers(AES256, False)
    assert default_server_ciphers([hosted], P) is None


def test_serve_kubernetes_reads_the_dh_secret_with_the_named_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # serve --kubernetes watches Secrets of type kubernetes.io/tls, and the Opaque Secrets
    # named (auth-type: basic): the ssl-dh-param Secret (kubectl create secret generic, as
    # ingress-nginx's example) is one of the named ones, with an HTTPS listener (a store).
    import argparse
    import types

    import ingresslib._kube
    from ingresslib import _serve

    got: list[Any] = []

    class Recorder:
        def __init__(self, *a: Any, auth_refs: Any, **kw: Any) -> None:
            got.append(auth_refs)

        async def run(self, stop: asyncio.Event | None = None) -> None:
            return None

    monkeypatch.setattr(ingresslib._kube, "ClusterWatcher", Recorder)
    cfg = types.SimpleNamespace(settings=_settings(ssl_dh_param="tls/dh"))
    args = argparse.Namespace(no_auth_secrets=False, namespace=None, kubeconfig=None,
                              ingress_class=None, controller=None)

    async def main() -> None:
        for store in (object(), None):
            await _serve._watch(args, None, store, None, asyncio.Event(), asyncio.Event(),
                                on_reload=lambda *a, **k: None, config=lambda: cfg,
                                kube_client=object())
    asyncio.run(main())
    with_store, without = (refs(Resources()) for refs in got)
    assert with_store == {("tls", "dh")}
    assert without == frozenset()
