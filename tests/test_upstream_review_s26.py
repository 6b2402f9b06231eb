"""Review of backend TLS (proxy-ssl-*) and round 4's location options (session 26, round 5).

The backend certificate's name check is OpenSSL's ``X509_check_host`` as nginx calls it
(ngx_event_openssl.c ``ngx_ssl_check_host``: flags 0), crypto/x509/v3_utl.c ``valid_star``,
``wildcard_match`` and ``equal_nocase``: byte for byte.
"""

from __future__ import annotations

from typing import Any

from ingresslib.proxy._proxy_ssl import name_matches


def _cert(*dns: str, cn: str | None = None, ips: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"subjectAltName": tuple(("DNS", d) for d in dns)
                           + tuple(("IP Address", i) for i in ips)}
    if cn is not None:
        out["subject"] = ((("commonName", cn),),)
    return out


# -- the name check: X509_check_host --------------------------------------------------------


def test_a_star_inside_a_label_is_no_wildcard() -> None:
    # valid_star: "No 'foo*bar' wildcards": the pattern is then compared literally.
    assert not name_matches(_cert("b*d.svc.test"), "bad.svc.test")
    assert not name_matches(_cert("b*d.svc.test"), "bd.svc.test")
    assert not name_matches(_cert(cn="we*b.svc.test"), "weeb.svc.test")
    # at the start or the end of the first label: a partial wildcard (OpenSSL's default)
    assert name_matches(_cert("w*.svc.test"), "web.svc.test")
    assert name_matches(_cert("w*.svc.test"), "w.svc.test")  # may match nothing
    assert name_matches(_cert("*b.svc.test"), "web.svc.test")
    assert not name_matches(_cert("*b.svc.test"), "web-a.svc.test")
    # a label valid_star refuses (a leading hyphen): the pattern is compared literally
    assert not name_matches(_cert("*.-a.test"), "b.-a.test")


def test_a_partial_wildcard_never_matches_an_idna_label() -> None:
    # wildcard_match: "IDNA labels cannot match partial wildcards"
    assert not name_matches(_cert("x*.svc.test"), "xn--bcher-kva.svc.test")
    assert not name_matches(_cert("*a.svc.test"), "xn--bcher-kva.svc.test")
    # a whole-label wildcard may
    assert name_matches(_cert("*.svc.test"), "xn--bcher-kva.svc.test")
    # nor is a star honoured inside an IDNA label of the pattern
    assert not name_matches(_cert("xn--*.svc.test"), "xn--bcher-kva.svc.test")


def test_case_is_folded_for_ascii_letters_only() -> None:
    # equal_nocase folds A-Z only: U+212A KELVIN SIGN (whose lower() is "k") is no "k",
    # nor U+0130 (whose lower() is "i" + a combining dot).
    assert not name_matches(_cert("\u212aube.test"), "kube.test")
    assert not name_matches(_cert(cn="\u212aube.test"), "kube.test")
    assert not name_matches(_cert("*.\u212aube.test"), "a.kube.test")
    assert not name_matches(_cert("\u0130.test"), "i\u0307.test")
    assert name_matches(_cert("KUBE.Test"), "kube.test")
    assert name_matches(_cert("*.SVC.test"), "Web.svc.TEST")


def test_guard_the_wildcard_rules_kept() -> None:
    assert name_matches(_cert("*.svc.test"), "web.svc.test")
    assert not name_matches(_cert("*.svc.test"), "a.web.svc.test")  # one label
    assert not name_matches(_cert("*.svc.test"), "svc.test")
    assert not name_matches(_cert("*.svc.test"), ".svc.test")
    assert not name_matches(_cert("*.test"), "backend.test")  # two dots after the star
    assert not name_matches(_cert("*.*.test"), "a.b.test")
    assert not name_matches(_cert("a.*.test"), "a.b.test")  # not in the first label
    # a NUL in the certificate's name never matches (equal_nocase)
    assert not name_matches(_cert("backend.test\x00.evil.test"), "backend.test")


def test_the_cn_only_without_dns_names_an_ip_only_as_text() -> None:
    assert name_matches(_cert(cn="backend.test", ips=("10.0.0.1",)), "backend.test")
    assert not name_matches(_cert("other.test", cn="backend.test"), "backend.test")
    assert not name_matches(_cert(ips=("10.0.0.1",)), "10.0.0.1")
    assert name_matches(_cert(cn="10.0.0.1", ips=("10.0.0.1",)), "10.0.0.1")
    assert not name_matches(_cert("backend.test"), "")


# -- end to end: a certificate whose star is no wildcard -----------------------------------


def _ca_and_leaf(dns: str, expired: bool = False) -> tuple[bytes, bytes, bytes]:
    """A CA and a leaf for the DNS name ``dns`` taken as it is (trustme would IDNA-encode
    it, and refuses a ``*`` inside a label): (ca PEM, leaf PEM, leaf key PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "review CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    end = now - datetime.timedelta(hours=1) if expired else now + datetime.timedelta(days=1)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), leaf.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _through_the_server(dns: str, name: str, verify: str = "on", expired: bool = False
                        ) -> tuple[int, int]:
    """One request through ProxyServer to a TLS backend on 127.0.0.1 whose certificate
    names ``dns``, with proxy-ssl-verify on and proxy-ssl-name ``name``: (status, the
    handshakes the backend completed)."""
    import asyncio
    import os
    import ssl
    import tempfile
    import types

    from ingresslib._models import ObjectMeta, Secret
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import Client, StubRouter

    ca_pem, leaf_pem, key_pem = _ca_and_leaf(dns, expired)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as d:
        cert_path, key_path = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        with open(cert_path, "wb") as f:
            f.write(leaf_pem)
        with open(key_path, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    secret = Secret(metadata=ObjectMeta(name="up-tls", namespace="default"),
                    string_data={"ca.crt": ca_pem.decode()})
    p = "nginx.ingress.kubernetes.io/"
    ann = {p + "backend-protocol": "HTTPS", p + "proxy-ssl-secret": "default/up-tls",
           p + "proxy-ssl-verify": verify, p + "proxy-ssl-name": name}

    async def run() -> tuple[int, int]:
        handshakes = 0

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            nonlocal handshakes
            handshakes += 1
            try:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
                pass
            w.close()

        backend = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        port = backend.sockets[0].getsockname()[1]
        router = StubRouter([("127.0.0.1", port)], annotations=ann)
        router.resources = types.SimpleNamespace(secrets=(secret,))  # type: ignore[attr-defined]
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                c = await Client.open(server.addresses[0][2])
                status = (await c.get("a.test")).status
                await c.close()
            return status, handshakes
        finally:
            await server.shutdown(0.5)
            backend.close()
    return asyncio.run(run())


def test_a_backend_certificate_for_b_star_d_is_refused_for_bad() -> None:
    # X509_check_host (nginx proxy_ssl_verify): "b*d.svc.test" is compared literally, so
    # the backend does not hold "bad.svc.test": a failed connect, 502.
    assert _through_the_server("b*d.svc.test", "bad.svc.test")[0] == 502
    assert _through_the_server("b*.svc.test", "bad.svc.test")[0] == 200  # a partial wildcard


def test_guard_an_expired_backend_certificate_fails_verification_only() -> None:
    assert _through_the_server("backend.test", "backend.test", expired=True)[0] == 502
    # proxy_ssl_verify off: nginx does not look at it
    assert _through_the_server("backend.test", "backend.test", "off", expired=True)[0] == 200


# -- enable-access-log and custom-http-errors' error page -----------------------------------


def test_an_error_page_answer_is_logged_as_nginx_logs_its_named_location() -> None:
    # nginx.tmpl writes "access_log off;" in the rule's location only; custom-http-errors'
    # "error_page 404 = @custom_..." moves the request to a named location without it, and
    # ngx_http_log_handler reads the location the request ends in (r->loc_conf).
    from test_custom_errors_s25 import ANN, P, _core, _docs

    get = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
    p = _core(_docs({**ANN, P + "enable-access-log": "false"}))
    assert p.send(get).startswith(b"HTTP/1.1 418 ")
    assert [(r.upstream_statuses, r.access_log) for r in p.records] == [((404, 418), True)]
    # a response the rule's location answers itself stays out of the log
    q = _core(_docs({**ANN, P + "enable-access-log": "false"}), status=200)
    assert q.send(get).startswith(b"HTTP/1.1 200 ")
    assert [(r.upstream_statuses, r.access_log) for r in q.records] == [((200,), False)]


# -- enable-rewrite-log: a hostile target stays on one line ---------------------------------


def test_guard_the_rewrite_log_line_holds_no_cr_or_lf(caplog: Any) -> None:
    import logging

    from _proxy_harness import ProxyPair, Route, status_of

    p_ = "nginx.ingress.kubernetes.io/"
    ann = {p_ + "rewrite-target": "/$2", p_ + "use-regex": "true",
           p_ + "enable-rewrite-log": "true"}
    p = ProxyPair([Route(path="/api", annotations=ann)])
    p.router.routes[0].match = p.router.routes[0].match.__class__(
        **{**p.router.routes[0].match.__dict__, "path": "/api(/|$)(.*)"})
    with caplog.at_level(logging.INFO, logger="ingresslib.proxy"):
        out = p.send(b"GET /api/x?q=%0d%0aFAKE:%20line HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 200
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("rewrite-target")]
    assert len(lines) == 1 and "\r" not in lines[0] and "\n" not in lines[0], lines
