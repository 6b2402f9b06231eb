"""Session 28 review of the TLS termination settings (``ssl-*`` ConfigMap keys, the
``ssl-ciphers`` / ``ssl-prefer-server-ciphers`` annotations): real handshakes on 127.0.0.1.

The defects (each test below named ``test_fix_...`` failed before the fix):

- a name with a server of its own (a rule host, a ``server-alias``) that also matched a ``*.``
  host whose ``ssl-ciphers`` annotation allows more than the ConfigMap got the wildcard's
  context: a client was given a cipher the ConfigMap forbids on a host that does not allow it
  (nginx: an exact ``server_name`` is chosen before a wildcard one, with its own ssl_ciphers);
- a ``server-alias`` name did not take its server's ``ssl-ciphers``: nginx.tmpl writes the
  aliases into the server's ``server_name``, next to its ``ssl_ciphers``;
- ``ssl-reject-handshake`` refused the www twin of ``from-to-www-redirect`` (nginx: a redirect
  server block of its own, ``RedirectServers``);
- the ConfigMap's ``ssl-ciphers`` refused a list with spaces (OpenSSL's separators are ``:``,
  spaces, ``,`` and ``;``; nginx.tmpl quotes the value);
- ``ssl-ecdh-curve`` refused OpenSSL 3's TLS group names (``secp256r1``, ``P-256``,
  ``x25519``) that nginx's SSL_CTX_set1_curves_list takes;
- ``configure_tls`` from one ``ssl-reject-handshake: "true"`` setting to another dropped the
  refusing contexts before building the new ones: meanwhile an unknown name got the default
  certificate.

The other tests guard what held already: the defaults unchanged, the ConfigMap's policy on
every name, passthrough and client certificates under ``ssl-reject-handshake``, resumption
across names, a settings change racing an update."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import ssl
import threading
from typing import Any

import pytest
import trustme

from ingresslib import Router
from ingresslib._config import parse_config_data
from ingresslib._models import (
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    ServiceBackendPort,
    freeze_map,
)
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from ingresslib._tls_settings import INGRESS_NGINX_CIPHERS, ServerCiphers, server_ciphers
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._server import ProxyServer

# The feature's own test file's constants, CA fixture and Secret/ConfigMap helpers.
from test_tls_keys_s28 import AES128, AES256, P, _secret, _settings, ca  # noqa: F401


def _ca_secret(name: str, ca: trustme.CA) -> Secret:
    return Secret(metadata=ObjectMeta(name=name, namespace="default"), type="Opaque",
                  data=freeze_map({"ca.crt": base64.b64encode(ca.cert_pem.bytes()).decode()}))


_PATH = HTTPIngressPath(IngressBackend(IngressServiceBackend("svc", ServiceBackendPort(number=80))),
                        "/", "Prefix")


def _ing(name: str, hosts: list[str], secret: str | None = None,
         ann: dict[str, str] | None = None) -> Ingress:
    return Ingress(
        metadata=ObjectMeta(name=name, namespace="default", annotations=freeze_map(ann or {})),
        spec=IngressSpec(rules=tuple(IngressRule(host=h, paths=(_PATH,)) for h in hosts),
                         tls=(IngressTLS(hosts=tuple(hosts), secret_name=secret),)
                         if secret else ()),
    )


def _client(ca: trustme.CA | None, *, tls12: bool = False, ciphers: str | None = None,
            curve: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(ctx)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if curve is not None:
        ctx.set_ecdh_curve(curve)
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


async def _cipher(port: int, ctx: ssl.SSLContext, sni: str | None) -> str | None:
    """The cipher negotiated, None when the handshake is refused."""
    try:
        return str((await _handshake(port, ctx, sni)).cipher()[0])
    except (ssl.SSLError, ConnectionError):
        return None


def _run(res: Resources, settings: ProxySettings, body: Any) -> None:
    async def main() -> None:
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), settings, cert_store=store)
        await server.start(None, ("127.0.0.1", 0))
        try:
            await body(server, server.addresses[-1][2])
        finally:
            await server.shutdown(1.0)
    asyncio.run(main())


# --- the SNI switch never gives a name a policy weaker than its server's ---------------------


def test_fix_wildcard_annotation_ciphers_stay_off_names_with_a_server_of_their_own(
        ca: trustme.CA) -> None:
    # The ConfigMap allows AES256 only; the *.wild.test server's annotation adds AES128.
    # y.wild.test is a rule host of its own (no annotation), x.wild.test a server-alias of
    # b.test: both are served by their own server (nginx: exact server_name before the
    # wildcard), with the ConfigMap's ciphers. z.wild.test has no server but the wildcard's.
    res = Resources(
        ingresses=(_ing("w", ["*.wild.test"], "w", {P + "ssl-ciphers": f"{AES128}:{AES256}"}),
                   _ing("b", ["b.test"], "b", {P + "server-alias": "x.wild.test"}),
                   _ing("y", ["y.wild.test"])),
        secrets=(_secret("w", ca.issue_cert("*.wild.test")), _secret("b", ca.issue_cert("b.test"))))

    async def body(server: ProxyServer, port: int) -> None:
        only128 = _client(None, tls12=True, ciphers=AES128)
        for sni in ("y.wild.test", "Y.WILD.TEST", "x.wild.test", "b.test", None, "other.test"):
            assert await _cipher(port, only128, sni) is None, sni
        assert await _cipher(port, only128, "z.wild.test") == AES128
        # y.wild.test still gets the wildcard certificate that covers it.
        obj = await _handshake(port, _client(ca, tls12=True, ciphers=AES256), "y.wild.test")
        assert obj.cipher()[0] == AES256
    _run(res, _settings(ssl_ciphers=AES256), body)


def test_fix_server_alias_takes_its_servers_ciphers(ca: trustme.CA) -> None:
    # nginx.tmpl: "server_name {{ $server.Hostname }} {{ $server.Alias }};" then
    # "ssl_ciphers {{ $server.SSLCiphers }};" in the same server block.
    res = Resources(
        ingresses=(_ing("a", ["a.test"], "a", {P + "ssl-ciphers": AES256,
                                               P + "server-alias": "alias.test"}),
                   _ing("b", ["b.test"], "b")),
        secrets=(_secret("a", ca.issue_cert("a.test", "alias.test")),
                 _secret("b", ca.issue_cert("b.test"))))

    async def body(server: ProxyServer, port: int) -> None:
        only128 = _client(None, tls12=True, ciphers=AES128)
        for sni in ("a.test", "alias.test", "ALIAS.test."):
            assert await _cipher(port, only128, sni) is None, sni
        assert await _cipher(port, only128, "b.test") == AES128
        both = _client(ca, tls12=True, ciphers=f"{AES128}:{AES256}")
        assert (await _handshake(port, both, "alias.test")).cipher()[0] == AES256
    _run(res, ProxySettings(), body)


def test_fix_server_ciphers_lists_the_aliases() -> None:
    ing = _ing("a", ["a.test"], None, {P + "ssl-ciphers": AES256,
                                      P + "server-alias": "Alias.test, other.test"})
    got = server_ciphers(iter([ing, _ing("b", ["b.test"])]), P)
    assert got == {"a.test": ServerCiphers(AES256, None), "alias.test": ServerCiphers(AES256, None),
                   "other.test": ServerCiphers(AES256, None)}


def test_configmap_forbidden_cipher_refused_on_every_name_but_the_annotated_one(
        ca: trustme.CA) -> None:
    # Guard: the ConfigMap forbids AES128; only a.test's server (annotation) allows it.
    res = Resources(
        ingresses=(_ing("a", ["a.test"], "a", {P + "ssl-ciphers": AES128}),
                   _ing("b", ["b.test"], "b"), _ing("p", ["plain.test"])),
        secrets=(_secret("a", ca.issue_cert("a.test")), _secret("b", ca.issue_cert("b.test"))))

    async def body(server: ProxyServer, port: int) -> None:
        only128 = _client(None, tls12=True, ciphers=AES128)
        for sni in ("b.test", "plain.test", "unknown.test", None, "127.0.0.1"):
            assert await _cipher(port, only128, sni) is None, sni
        for sni in ("a.test", "A.TEST", "a.test."):
            assert await _cipher(port, only128, sni) == AES128, sni
    _run(res, _settings(ssl_ciphers=AES256), body)


# --- ssl-reject-handshake ----------------------------------------------------------------------


def test_fix_reject_handshake_serves_the_www_twins(ca: trustme.CA) -> None:
    res = Resources(
        ingresses=(_ing("a", ["a.test"], "a", {P + "from-to-www-redirect": "true"}),
                   _ing("p", ["plain.test"], None, {P + "from-to-www-redirect": "true"})),
        secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def body(server: ProxyServer, port: int) -> None:
        loose = _client(None)
        for sni in ("www.a.test", "WWW.plain.test", "a.test"):
            assert (await _handshake(port, loose, sni)).version(), sni
        for sni in ("www.other.test", None):
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                await _handshake(port, loose, sni)
    _run(res, _settings(ssl_reject_handshake="true"), body)


def _tls_session(port: int, ctx: ssl.SSLContext, sni: str,
                 session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession | None, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() + b"\r\nConnection: close\r\n\r\n")
            try:
                while t.recv(65536):
                    pass
            except (ssl.SSLError, OSError):
                pass
            return t.session, t.session_reused


@pytest.mark.parametrize("tickets", ["false", "true"])
def test_reject_handshake_and_client_certificates_hold_for_resumed_sessions(
        ca: trustme.CA, tickets: str) -> None:
    # Guard: a session of a.test offered with an unknown name is refused (reject context, no
    # session cache of a.test's); one of auth1.test (CA 1) is not resumed by auth2.test
    # (CA 2: its own context and session cache, nginx's per-server session id context).
    ca1, ca2 = trustme.CA(), trustme.CA()
    res = Resources(
        ingresses=(_ing("a", ["a.test"], "m"),
                   _ing("x1", ["auth1.test"], "m", {P + "auth-tls-secret": "default/ca1"}),
                   _ing("x2", ["auth2.test"], "m", {P + "auth-tls-secret": "default/ca2"})),
        secrets=(_secret("m", ca.issue_cert("a.test", "auth1.test", "auth2.test", "u.test")),
                 _ca_secret("ca1", ca1), _ca_secret("ca2", ca2)))
    client = _client(ca, tls12=True)
    ca1.issue_cert("client").configure_cert(client)

    async def body(server: ProxyServer, port: int) -> None:
        sess, _ = await asyncio.to_thread(_tls_session, port, client, "a.test")
        assert (await asyncio.to_thread(_tls_session, port, client, "a.test", sess))[1]
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await asyncio.to_thread(_tls_session, port, client, "u.test", sess)
        sess, _ = await asyncio.to_thread(_tls_session, port, client, "auth1.test")
        assert (await asyncio.to_thread(_tls_session, port, client, "auth1.test", sess))[1]
        with pytest.raises(ssl.SSLError):   # a full handshake: CA 2 refuses CA 1's certificate
            await asyncio.to_thread(_tls_session, port, client, "auth2.test", sess)
    _run(res, _settings(ssl_reject_handshake="true", ssl_session_tickets=tickets), body)


def test_reject_handshake_leaves_ssl_passthrough_alone(ca: trustme.CA) -> None:
    # Guard: the ClientHello of a passthrough host is piped before any TLS here, whatever
    # ssl-reject-handshake and ssl-protocols say (the backend's own TLS 1.2 answers).
    from ingresslib import parse_manifests

    leaf = ca.issue_cert("pass.test")

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbackend")
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    async def main() -> None:
        bctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(bctx)
        bsrv = await asyncio.start_server(backend, "127.0.0.1", 0, ssl=bctx)
        bport = bsrv.sockets[0].getsockname()[1]
        res = parse_manifests(f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: pass
  namespace: default
  annotations: {{nginx.ingress.kubernetes.io/ssl-passthrough: "true"}}
spec:
  rules:
  - host: pass.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: pass, port: {{number: 443}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: pass, namespace: default}}
spec: {{ports: [{{port: 443, targetPort: {bport}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: pass-1, namespace: default, labels: {{kubernetes.io/service-name: pass}}}}
addressType: IPv4
ports: [{{port: {bport}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""")
        store = CertificateStore()
        store.update(res)
        settings = _settings(ssl_reject_handshake="true", ssl_protocols="TLSv1.3")
        server = ProxyServer(Router(res), settings, cert_store=store, ssl_passthrough=True)
        await server.start(None, ("127.0.0.1", 0))
        port = server.addresses[-1][2]
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=_client(ca, tls12=True), server_hostname="pass.test"), 2)
            assert w.get_extra_info("ssl_object").version() == "TLSv1.2"
            w.write(b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n")
            assert (await asyncio.wait_for(r.read(), 2)).endswith(b"backend")
            w.close()
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                await _handshake(port, _client(None), "other.test")
        finally:
            await server.shutdown(1.0)
            bsrv.close()
            await bsrv.wait_closed()
    asyncio.run(main())


# --- the ConfigMap values nginx takes ---------------------------------------------------------


def test_fix_ssl_ciphers_with_spaces_as_openssl_reads_them(ca: trustme.CA) -> None:
    # OpenSSL ssl_ciph.c ITEM_SEP: ':' ' ' ';' ','; nginx.tmpl "ssl_ciphers '{{ ... }}';".
    settings = _settings(ssl_ciphers=f"{AES256} ECDHE-RSA-AES256-GCM-SHA384")
    assert settings.ssl_ciphers == f"{AES256} ECDHE-RSA-AES256-GCM-SHA384"
    res = Resources(ingresses=(_ing("a", ["a.test"], "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def body(server: ProxyServer, port: int) -> None:
        assert await _cipher(port, _client(None, tls12=True, ciphers=AES128), "a.test") is None
        assert await _cipher(port, _client(None, tls12=True), "a.test") == AES256
    _run(res, settings, body)


@pytest.mark.parametrize("name,python", [("secp256r1", "prime256v1"), ("P-256", "prime256v1"),
                                         ("P-384", "secp384r1"), ("x25519", "X25519")])
def test_fix_ssl_ecdh_curve_takes_openssl_group_names(name: str, python: str) -> None:
    # OpenSSL 3 providers/common/capabilities.c TLS_GROUP_ENTRY("secp256r1", "prime256v1"...),
    # ("P-256", ...) "Alias of above", ("x25519", "X25519", ...): SSL_CTX_set1_curves_list
    # takes these names (nginx's ssl_ecdh_curve).
    settings = _settings(ssl_ecdh_curve=name)
    store = CertificateStore()
    store.configure_tls(settings)
    refused = "secp521r1"
    ok_client, other = _client(None, curve=python), _client(None, curve=refused)

    def hs(client: ssl.SSLContext) -> str | None:
        si, so, ci, co = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        s = store.default_context.wrap_bio(si, so, server_side=True)
        c = client.wrap_bio(ci, co, server_hostname="x.test")
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
    assert hs(ok_client) is None
    assert hs(other) is not None


def test_configmap_values_as_nginx_takes_them() -> None:
    # Guard: ngx_conf_set_bitmask_slot matches ssl_protocols ignoring case, in any order, a
    # duplicate only warned; an empty value is "invalid number of arguments".
    for value in ("TLSv1.3 TLSv1.2", "tlsv1.2  TLSV1.3", "TLSv1.2 TLSv1.2\nTLSv1.3"):
        parse_config_data({"ssl-protocols": value})
    from ingresslib import ValidationError
    for bad in ({"ssl-protocols": " "}, {"ssl-protocols": "TLSv1.2,TLSv1.3"},
                {"ssl-ecdh-curve": "AUTO"}, {"ssl-ciphers": "NOPE:NADA"}, {"ssl-ciphers": "A\0B"}):
        with pytest.raises(ValidationError):
            parse_config_data(bad)


# --- the defaults are what they were -----------------------------------------------------------


def test_defaults_build_the_contexts_as_before() -> None:
    # Guard: with no key set, a context is what the hard-coded one was before the keys
    # (minimum TLSv1.2, ingress-nginx's ciphers, no compression, no renegotiation, no
    # tickets, the server's order).
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.set_ciphers(INGRESS_NGINX_CIPHERS)
    old.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    store = CertificateStore()
    store.configure_tls(ProxySettings())
    for ctx in (store.default_context, store.server_context()):
        assert ctx.options == old.options
        assert ctx.minimum_version == old.minimum_version
        assert [c["name"] for c in ctx.get_ciphers()] == [c["name"] for c in old.get_ciphers()]
        assert ctx.verify_mode == ssl.CERT_NONE


# --- reload --------------------------------------------------------------------------------------


def test_configure_tls_racing_updates_ends_with_the_last_settings(ca: trustme.CA) -> None:
    # Guard: update() in a worker thread while configure_tls() runs here (the RLock): no
    # deadlock, and every context ends with the last settings.
    res = Resources(ingresses=(_ing("a", ["a.test"], "a"), _ing("b", ["b.test"], "b")),
                    secrets=(_secret("a", ca.issue_cert("a.test")),
                             _secret("b", ca.issue_cert("b.test"))))
    store = CertificateStore()
    store.update(res)
    done = threading.Event()

    def updates() -> None:
        for _ in range(20):
            store.update(res)
        done.set()
    t = threading.Thread(target=updates)
    t.start()
    tls13, both = _settings(ssl_protocols="TLSv1.3"), ProxySettings()
    for i in range(20):
        store.configure_tls(tls13 if i % 2 == 0 else both)
    store.configure_tls(dataclasses.replace(both, ssl_protocols="TLSv1.3"))
    t.join(10)
    assert done.is_set()
    for ctx in (store.context_for("a.test"), store.context_for("b.test"), store.default_context):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_established_connection_survives_a_settings_change(ca: trustme.CA) -> None:
    # Guard: a keep-alive TLS 1.2 connection made before ssl-protocols becomes TLSv1.3 keeps
    # its context (nginx: a reload's old workers finish their connections); new ones follow
    # the new settings.
    res = Resources(ingresses=(_ing("a", ["a.test"], "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def body(server: ProxyServer, port: int) -> None:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=_client(ca, tls12=True), server_hostname="a.test"), 2)
        try:
            server.settings = _settings(ssl_protocols="TLSv1.3")
            with pytest.raises(ssl.SSLError):
                await _handshake(port, _client(ca, tls12=True), "a.test")
            w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 ")
            assert w.get_extra_info("ssl_object").version() == "TLSv1.2"
        finally:
            w.close()
    _run(res, ProxySettings(), body)


def test_per_host_contexts_stay_bounded_by_the_hosts(ca: trustme.CA) -> None:
    # Guard: contexts of annotation values no longer in use are dropped at each update.
    secrets = (_secret("a", ca.issue_cert("a.test")),)
    store = CertificateStore()
    lists = [AES128, AES256, f"{AES128}:{AES256}", f"{AES256}:{AES128}"]
    for i in range(12):
        store.update(Resources(ingresses=(
            _ing("a", ["a.test"], "a", {P + "ssl-ciphers": lists[i % 4]}),
            _ing("b", ["b.test"], None, {P + "ssl-ciphers": lists[(i + 1) % 4]})),
            secrets=secrets))
        assert len(store._cipher_ctxs) == 2


def _bio_refused(listening: ssl.SSLContext, sni: str) -> bool:
    """Whether a handshake with ``listening`` (through memory BIOs) naming ``sni`` fails."""
    si, so, ci, co = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    s = listening.wrap_bio(si, so, server_side=True)
    c = _client(None).wrap_bio(ci, co, server_hostname=sni)
    for _ in range(10):
        for obj in (c, s):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return True
        si.write(co.read())
        ci.write(so.read())
    return False


def test_fix_reject_handshake_holds_while_the_settings_change(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # configure_tls from one ssl-reject-handshake setting to another (another key changed):
    # what a ClientHello naming no server gets while the contexts are rebuilt. Before the
    # fix, the refusing contexts were dropped first: the default certificate was served.
    from ingresslib import _tls

    res = Resources(ingresses=(_ing("a", ["a.test"], "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))
    store = CertificateStore()
    store.configure_tls(_settings(ssl_reject_handshake="true"))
    store.update(res)
    assert _bio_refused(store.context_for_hello(b"unknown.test"), "unknown.test")
    seen: list[ssl.SSLContext] = []
    real = _tls._reject_context

    def spy(tls: Any, named: bool) -> ssl.SSLContext:
        seen.append(store.context_for_hello(b"unknown.test"))
        return real(tls, named)
    monkeypatch.setattr(_tls, "_reject_context", spy)
    store.configure_tls(_settings(ssl_reject_handshake="true", ssl_protocols="TLSv1.3"))
    assert seen
    assert all(_bio_refused(ctx, "unknown.test") for ctx in seen)
    assert _bio_refused(store.context_for_hello(b"unknown.test"), "unknown.test")
    assert not _bio_refused(store.context_for_hello(b"a.test"), "a.test")


def test_session_tickets_toggle_on_a_running_server(ca: trustme.CA) -> None:
    # Guard: ssl-session-tickets changed by a settings change (a ConfigMap reload) applies to
    # the next handshakes, on every context (the default one and a host's own).
    res = Resources(ingresses=(_ing("a", ["a.test"], "a"),
                               _ing("c", ["c.test"], None, {P + "ssl-ciphers": AES256})),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def body(server: ProxyServer, port: int) -> None:
        for value in ("true", "false", "true"):
            server.settings = _settings(ssl_session_tickets=value)
            for sni in ("a.test", "c.test", None):
                obj = await _handshake(port, _client(None, tls12=True), sni)
                assert obj.session.has_ticket is (value == "true"), (value, sni)
    _run(res, ProxySettings(), body)


@pytest.mark.parametrize("tls12", [True, False])
def test_the_session_lifetime_the_warning_names(ca: trustme.CA, tls12: bool) -> None:
    # Guard: ssl-session-timeout's warning says OpenSSL's lifetime (7200 s) is used: so it is,
    # for TLS 1.2 sessions and TLS 1.3 tickets alike.
    warning = parse_config_data({"ssl-session-timeout": "5m"}).warnings
    assert any("7200 s" in w for w in warning), warning
    res = Resources(ingresses=(_ing("a", ["a.test"], "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))

    async def body(server: ProxyServer, port: int) -> None:
        client = _client(ca, tls12=tls12)
        sess, _ = await asyncio.to_thread(_tls_session, port, client, "a.test")
        assert sess is not None and sess.timeout == 7200
    _run(res, _settings(ssl_session_timeout="5m"), body)
