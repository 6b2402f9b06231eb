"""Session 28: the TLS termination settings of ingress-nginx's ConfigMap (``ssl-protocols``,
``ssl-ciphers``, ``ssl-ecdh-curve``, ``ssl-session-tickets``, ``ssl-reject-handshake``, the
``ssl-session-*`` keys) and the server-level annotations ``ssl-ciphers`` /
``ssl-prefer-server-ciphers``, through real handshakes on 127.0.0.1 against ``ProxyServer``.

Before this session the contexts were ingress-nginx's defaults, hard-coded: every key was
"an ingress-nginx key ingresslib does not implement, ignored", and the annotations were warned
"not implemented". Each test below failed then (no such ``ProxySettings`` field, the key
ignored, the annotation without effect)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any

import pytest
import trustme

from ingresslib import Router, ValidationError
from ingresslib._config import parse_config_data
from ingresslib._models import (
    Ingress,
    IngressRule,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    freeze_map,
)
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED
from ingresslib.proxy._server import ProxyServer

P = "nginx.ingress.kubernetes.io/"
AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
AES256 = "ECDHE-ECDSA-AES256-GCM-SHA384"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def _secret(name: str, cert: trustme.LeafCert) -> Secret:
    crt = b"".join(p.bytes() for p in cert.cert_chain_pems)
    return Secret(
        metadata=ObjectMeta(name=name, namespace="default"),
        type="kubernetes.io/tls",
        data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                         "tls.key": base64.b64encode(cert.private_key_pem.bytes()).decode()}),
    )


def _ing(name: str, host: str, secret: str | None, annotations: dict[str, str] | None = None,
         ) -> Ingress:
    return Ingress(
        metadata=ObjectMeta(name=name, namespace="default",
                            annotations=freeze_map(annotations or {})),
        spec=IngressSpec(rules=(IngressRule(host=host),),
                         tls=(IngressTLS(hosts=(host,), secret_name=secret),) if secret else ()),
    )


@pytest.fixture(scope="module")
def secrets(ca: trustme.CA) -> tuple[Secret, Secret]:
    return (_secret("a", ca.issue_cert("a.test")), _secret("b", ca.issue_cert("b.test")))


def _res(secrets: tuple[Secret, Secret], a_annotations: dict[str, str] | None = None,
         ) -> Resources:
    return Resources(ingresses=(_ing("a", "a.test", "a", a_annotations),
                                _ing("b", "b.test", "b"),
                                _ing("plain", "plain.test", None)),
                     secrets=secrets)


def _client(ca: trustme.CA, *, tls12: bool = False, tls13: bool = False,
            ciphers: str | None = None, curve: str | None = None,
            verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if verify:
        ca.configure_trust(ctx)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if curve is not None:
        ctx.set_ecdh_curve(curve)
    return ctx


class _Served:
    """A started ProxyServer (HTTPS only) and its port."""

    def __init__(self, server: ProxyServer, port: int) -> None:
        self.server = server
        self.port = port

    async def handshake(self, ctx: ssl.SSLContext, sni: str | None) -> Any:
        """The client's SSLObject after a handshake with ``sni`` (None: no SNI); raises
        ssl.SSLError (or a connection error) when refused."""
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", self.port, ssl=ctx, server_hostname=sni or ""), 2.0)
        obj = w.get_extra_info("ssl_object")
        w.close()
        try:
            await w.wait_closed()
        except (OSError, ssl.SSLError):
            pass
        return obj

    async def refused(self, ctx: ssl.SSLContext, sni: str | None) -> str:
        try:
            await self.handshake(ctx, sni)
        except (ssl.SSLError, ConnectionError) as e:
            return str(e)
        raise AssertionError(f"handshake with {sni!r} succeeded")


def _run(res: Resources, settings: ProxySettings, body: Any) -> None:
    async def main() -> None:
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), settings, cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        try:
            await body(_Served(server, server.addresses[-1][2]))
        finally:
            await server.shutdown(1.0)
    asyncio.run(main())


def _settings(**data: str) -> ProxySettings:
    return parse_config_data({k.replace("_", "-"): v for k, v in data.items()}).settings


# --- ssl-protocols ---------------------------------------------------------------------------


def test_tls12_client_refused_under_ssl_protocols_tls13(ca: trustme.CA,
                                                        secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        await s.refused(_client(ca, tls12=True), "a.test")
        assert (await s.handshake(_client(ca), "a.test")).version() == "TLSv1.3"
    _run(_res(secrets), _settings(ssl_protocols="TLSv1.3"), body)


def test_default_protocols_serve_tls12(ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        assert (await s.handshake(_client(ca, tls12=True), "a.test")).version() == "TLSv1.2"
    _run(_res(secrets), ProxySettings(), body)


def test_ssl_protocols_tls12_only_refuses_tls13_client(ca: trustme.CA,
                                                       secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        await s.refused(_client(ca, tls13=True), "b.test")
        assert (await s.handshake(_client(ca), "b.test")).version() == "TLSv1.2"
    _run(_res(secrets), _settings(ssl_protocols="tlsv1.2"), body)


# --- ssl-ciphers, ssl_prefer_server_ciphers --------------------------------------------------


def test_cipher_outside_ssl_ciphers_is_refused(ca: trustme.CA,
                                               secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        await s.refused(_client(ca, tls12=True, ciphers=AES128), "a.test")
        obj = await s.handshake(_client(ca, tls12=True, ciphers=AES256), "a.test")
        assert obj.cipher()[0] == AES256
    _run(_res(secrets), _settings(ssl_ciphers=AES256), body)


def test_ssl_ciphers_prefers_the_server_order_and_empty_the_clients(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    # nginx.tmpl: "ssl_ciphers '...'; ssl_prefer_server_ciphers on;" with any ssl-ciphers;
    # ssl-ciphers "" writes neither (nginx's default list, the client's order).
    client = f"{AES128}:{AES256}"

    async def server_order(s: _Served) -> None:
        got = await s.handshake(_client(ca, tls12=True, ciphers=client), "a.test")
        assert got.cipher()[0] == AES256

    async def client_order(s: _Served) -> None:
        got = await s.handshake(_client(ca, tls12=True, ciphers=client), "a.test")
        assert got.cipher()[0] == AES128
    _run(_res(secrets), _settings(ssl_ciphers=f"{AES256}:{AES128}"), server_order)
    _run(_res(secrets), _settings(ssl_ciphers=""), client_order)


def test_configmap_refuses_a_cipher_list_openssl_refuses() -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({"ssl-ciphers": "NO-SUCH-CIPHER"})
    assert "data.ssl-ciphers" in str(e.value) and "SSL_CTX_set_cipher_list" in str(e.value)
    with pytest.raises(ValidationError) as e:
        parse_config_data({"ssl-protocols": "TLSv1.2 TLSv1.4"})
    assert "data.ssl-protocols" in str(e.value) and "TLSv1.4" in str(e.value)
    with pytest.raises(ValidationError):
        parse_config_data({"ssl-protocols": ""})
    with pytest.raises(ValidationError):
        parse_config_data({"ssl-ecdh-curve": "prime256v1:nope"})
    with pytest.raises(ValueError, match="ssl_ciphers"):
        ProxySettings(ssl_ciphers="NO-SUCH-CIPHER")


def test_configmap_warns_what_python_cannot_set() -> None:
    cfg = parse_config_data({"ssl-ecdh-curve": "X25519:prime256v1", "ssl-session-cache": "false",
                             "ssl-session-cache-size": "20m", "ssl-session-timeout": "1h",
                             "ssl-protocols": "SSLv2 TLSv1.2"})
    text = "\n".join(cfg.warnings)
    for key in ("ssl-ecdh-curve", "ssl-session-cache", "ssl-session-cache-size",
                "ssl-session-timeout", "ssl-protocols"):
        assert f"data.{key}:" in text, text
    assert "not implement" not in text
    assert cfg.settings.ssl_session_timeout == 3600.0
    assert cfg.settings.ssl_session_cache_size == 20 * 1024 * 1024
    # The defaults, set explicitly, warn nothing.
    quiet = parse_config_data({"ssl-session-timeout": "10m", "ssl-session-cache-size": "10m",
                               "ssl-protocols": "TLSv1.2 TLSv1.3", "ssl-ecdh-curve": "auto"})
    assert quiet.warnings == ()


# --- ssl-ecdh-curve --------------------------------------------------------------------------


def test_ssl_ecdh_curve_limits_the_key_exchange(ca: trustme.CA,
                                                secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        await s.refused(_client(ca, curve="prime256v1"), "a.test")
        await s.handshake(_client(ca, curve="secp384r1"), "a.test")
    _run(_res(secrets), _settings(ssl_ecdh_curve="secp384r1"), body)


# --- ssl-session-tickets ---------------------------------------------------------------------


@pytest.mark.parametrize("tickets", [False, True])
def test_ssl_session_tickets(ca: trustme.CA, secrets: tuple[Secret, Secret],
                             tickets: bool) -> None:
    async def body(s: _Served) -> None:
        obj = await s.handshake(_client(ca, tls12=True), "a.test")
        assert obj.session is not None
        assert obj.session.has_ticket is tickets
    settings = (_settings(ssl_session_tickets="true") if tickets
                else _settings(ssl_session_tickets="false"))
    _run(_res(secrets), settings, body)


# --- ssl-reject-handshake --------------------------------------------------------------------


def test_ssl_reject_handshake_refuses_unknown_names_and_serves_known_ones(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        loose = _client(ca, verify=False)
        why = await s.refused(loose, "unknown.test")
        assert "UNRECOGNIZED_NAME" in why.upper(), why
        await s.refused(loose, None)   # no SNI: the default server, refused too
        assert (await s.handshake(_client(ca), "a.test")).version()
        assert (await s.handshake(_client(ca), "B.TEST")).version()
        # An Ingress host without tls keeps its server (the default certificate), as nginx's
        # server block for it answers.
        got = await s.handshake(loose, "plain.test")
        assert got.getpeercert(binary_form=True)
    _run(_res(secrets), _settings(ssl_reject_handshake="true"), body)


def test_without_ssl_reject_handshake_unknown_names_get_the_default_certificate(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        assert (await s.handshake(_client(ca, verify=False), "unknown.test")).version()
    _run(_res(secrets), ProxySettings(), body)


# --- the annotations, one host only ----------------------------------------------------------


def test_ssl_ciphers_annotation_applies_to_its_host_only(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    res = _res(secrets, {P + "ssl-ciphers": AES256})

    async def body(s: _Served) -> None:
        only128 = _client(ca, tls12=True, ciphers=AES128)
        await s.refused(only128, "a.test")
        assert (await s.handshake(only128, "b.test")).cipher()[0] == AES128
        both = _client(ca, tls12=True, ciphers=f"{AES128}:{AES256}")
        assert (await s.handshake(both, "a.test")).cipher()[0] == AES256
    _run(res, ProxySettings(), body)


def test_ssl_prefer_server_ciphers_annotation_off_on_its_host_only(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    res = _res(secrets, {P + "ssl-ciphers": f"{AES256}:{AES128}",
                         P + "ssl-prefer-server-ciphers": "false"})

    async def body(s: _Served) -> None:
        client = _client(ca, tls12=True, ciphers=f"{AES128}:{AES256}")
        # a.test: its own list, the client's order; b.test: the ConfigMap's server order.
        assert (await s.handshake(client, "a.test")).cipher()[0] == AES128
        assert (await s.handshake(client, "b.test")).cipher()[0] == AES256
    _run(res, _settings(ssl_ciphers=f"{AES256}:{AES128}"), body)


def test_annotation_first_ingress_of_the_host_wins() -> None:
    from ingresslib._tls_settings import ServerCiphers, server_ciphers

    older = _ing("older", "a.test", None, {P + "ssl-ciphers": AES256})
    newer = _ing("newer", "a.test", None, {P + "ssl-ciphers": AES128,
                                           P + "ssl-prefer-server-ciphers": "true"})
    bad = _ing("bad", "c.test", None, {P + "ssl-ciphers": "NOT A LIST"})
    got = server_ciphers([older, newer, bad], P)
    assert got == {"a.test": ServerCiphers(AES256, True)}


def test_the_annotations_are_implemented() -> None:
    assert {"ssl-ciphers", "ssl-prefer-server-ciphers"} <= IMPLEMENTED


# --- a settings change rebuilds the contexts -------------------------------------------------


def test_a_settings_change_rebuilds_the_contexts(ca: trustme.CA,
                                                 secrets: tuple[Secret, Secret]) -> None:
    async def body(s: _Served) -> None:
        old_default = s.server.cert_store.default_context
        assert (await s.handshake(_client(ca, tls12=True), "a.test")).version() == "TLSv1.2"
        s.server.settings = _settings(ssl_protocols="TLSv1.3")
        assert s.server.cert_store.default_context is not old_default
        await s.refused(_client(ca, tls12=True), "a.test")
        await s.refused(_client(ca, tls12=True), "b.test")
        assert (await s.handshake(_client(ca), "a.test")).version() == "TLSv1.3"
        # Unchanged TLS settings keep the contexts (their session cache).
        kept = s.server.cert_store.default_context
        s.server.settings = _settings(ssl_protocols="TLSv1.3", hsts="false")
        assert s.server.cert_store.default_context is kept
    _run(_res(secrets), ProxySettings(), body)


def test_store_configure_tls_alone(secrets: tuple[Secret, Secret]) -> None:
    store = CertificateStore()
    store.update(_res(secrets))
    a_before = store.context_for("a.test")
    store.configure_tls(_settings(ssl_protocols="TLSv1.3"))
    a_after = store.context_for("a.test")
    assert a_after is not a_before and a_after is not store.default_context
    assert a_after.minimum_version == ssl.TLSVersion.TLSv1_3
    assert store.default_context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_a_refused_annotation_value_is_reported_and_ignored(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    res = _res(secrets, {P + "ssl-ciphers": "NO-SUCH-CIPHER",
                         P + "ssl-prefer-server-ciphers": "yes"})
    store = CertificateStore()
    problems = [str(p) for p in store.update(res)]
    assert any("ssl-ciphers" in p and "ignored" in p for p in problems), problems
    assert any("ssl-prefer-server-ciphers" in p and "ignored" in p for p in problems), problems
    # The host keeps its certificate's context.
    assert store.context_for("a.test") is not store.default_context


def test_a_protocol_set_with_a_hole_is_written_as_nginx_writes_it() -> None:
    # nginx's ngx_ssl_create: one SSL_OP_NO_* per protocol not listed.
    store = CertificateStore()
    store.configure_tls(ProxySettings(ssl_protocols="TLSv1 TLSv1.2"))
    ctx = store.default_context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_TLSv1_1
    assert not ctx.options & ssl.OP_NO_TLSv1_2


def _bio_handshake(server: ssl.SSLContext, client: ssl.SSLContext, sni: str) -> str | None:
    """A handshake through memory BIOs: None, or the server's error."""
    si, so, ci, co = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(si, so, server_side=True)
    c = client.wrap_bio(ci, co, server_hostname=sni)
    for _ in range(10):
        for obj in (c, s):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                return str(e)
        si.write(co.read())
        ci.write(so.read())
    return None


def test_ssl_reject_handshake_with_the_server_context_callback(
        ca: trustme.CA, secrets: tuple[Secret, Secret]) -> None:
    store = CertificateStore()
    store.configure_tls(_settings(ssl_reject_handshake="true"))
    store.update(_res(secrets))
    listening = store.server_context()
    assert _bio_handshake(listening, _client(ca, verify=False), "unknown.test") is not None
    assert _bio_handshake(listening, _client(ca), "a.test") is None


# --- through serve's reload of the --config file ----------------------------------------------


def _write_configmap(path: Any, data: dict[str, str]) -> None:
    import json
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "c", "namespace": "default"},
                                "data": data}))


def test_a_configmap_reload_applies_the_tls_keys_and_a_refused_one_keeps_them(
        ca: trustme.CA, tmp_path: Any) -> None:
    import json

    from ingresslib import load_manifests
    from ingresslib._config import load_config
    from ingresslib._serve_reload import Reloader

    leaf = ca.issue_cert("a.test")
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "a", "namespace": "default"},
         "spec": {"tls": [{"hosts": ["a.test"], "secretName": "a"}],
                  "rules": [{"host": "a.test"}]}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "a", "namespace": "default"},
         "stringData": {"tls.crt": leaf.cert_chain_pems[0].bytes().decode(),
                        "tls.key": leaf.private_key_pem.bytes().decode()}}]}))
    cm = tmp_path / "cm.json"
    _write_configmap(cm, {"ssl-protocols": "TLSv1.3"})

    async def main() -> None:
        res = load_manifests(str(m))
        cfg = load_config(cm)
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), cfg.settings, cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        s = _Served(server, server.addresses[-1][2])
        r = Reloader(server, [str(m)], ingress_class=None, controller=None, settle=0,
                     config=cfg, config_path=str(cm))
        try:
            await s.refused(_client(ca, tls12=True), "a.test")
            _write_configmap(cm, {"ssl-protocols": "TLSv1.2 TLSv1.3", "ssl-ciphers": "BOGUS"})
            assert await r.check(force=True) is False
            assert "data.ssl-ciphers" in (r.last_error or "")
            await s.refused(_client(ca, tls12=True), "a.test")   # the settings in use
            _write_configmap(cm, {"ssl-protocols": "TLSv1.2 TLSv1.3"})
            assert await r.check(force=True) is True
            assert (await s.handshake(_client(ca, tls12=True), "a.test")).version() == "TLSv1.2"
        finally:
            await server.shutdown(1.0)
    asyncio.run(main())
