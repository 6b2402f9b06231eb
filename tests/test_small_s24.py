"""Session 24, X1: small known items, each checked against nginx / ingress-nginx.

1. TLS messages: a Secret whose key OpenSSL refuses at its security level (a 1024-bit RSA
   key) was reported in OpenSSL's words ("[SSL: EE_KEY_TOO_SMALL] ee key too small
   (_ssl.c:3905)"); now the key's type and size, the minimum and which certificate. A problem
   of the default certificate's Secret named that Secret twice ("default certificate: Secret
   d/s: Secret d/s: unusable certificate ...", and "... certificate of Secret d/s expires").
2. ``GET http://Other.test:81/a HTTP/1.0`` without Host: ingress-nginx sends $best_http_host,
   ``ngx.var.http_host or ngx.var.host`` (lua_ingress.lua ``rewrite``), $host being the request
   line's host lower-cased without its port (ngx_http_validate_host), as Host and
   X-Forwarded-Host. ingresslib sent the target's authority as written, ``Other.test:81``.
3. A trusted hop's empty X-Forwarded-Proto (or -Port): ``ngx.var.http_x_forwarded_proto`` is
   ``""`` for a header present with no value (nil only when absent: ngx_http_lua_ffi_var_get
   declines on ``not_found`` alone), and Lua takes ``""`` for true, so $pass_access_scheme is
   ``""``: proxy_set_header sends no X-Forwarded-Proto / X-Forwarded-Scheme / X-Scheme, and
   redirect_to_https() (which wants exactly "http") does not redirect. ingresslib sent its own
   scheme and redirected.
4. A client that closes while it still owes request body bytes: nginx's body reader
   (ngx_http_do_read_client_request_body, buffered or not) on recv() == 0 logs "client
   prematurely closed connection" and returns NGX_HTTP_BAD_REQUEST: logged 400 (nothing is
   sent). ingresslib logged 499, which nginx logs once the request is read.

Every test but the guards failed on the tree before this session.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).parent))

from _proxy_harness import ProxyPair, Route, status_of  # noqa: E402

from ingresslib._resources import Resources  # noqa: E402
from ingresslib._tls import CertificateStore, certificate_problems  # noqa: E402
from ingresslib.proxy import ProxySettings  # noqa: E402
from ingresslib.proxy._headers import redirect_scheme  # noqa: E402
from tests.test_tls import _ingress, _secret  # noqa: E402

H = b"Host: example.test\r\n"
NOW = dt.datetime.now(dt.timezone.utc)


# --- certificates --------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, public: Any, signer: Any, *, days: float = 30,
          ca: bool = False) -> bytes:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(public).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(hours=1))
         .not_valid_after(NOW + dt.timedelta(days=days)))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _self_signed(key: Any, host: str = "weak.test", days: float = 30) -> tuple[bytes, bytes]:
    return _cert(host, host, key.public_key(), key, days=days), _key_pem(key)


def _problem(crt: bytes, key: bytes) -> str:
    res = Resources(ingresses=(_ingress("w", [(("weak.test",), "s")],
                                        rule_hosts=("weak.test",)),),
                    secrets=(_secret("s", crt, key),))
    [p] = certificate_problems(res)
    return str(p)


def test_a_1024_bit_rsa_key_is_said_in_words(rsa1024: rsa.RSAPrivateKey) -> None:
    # Before: "... Secret default/s: unusable certificate: SSLError: [SSL: EE_KEY_TOO_SMALL]
    # ee key too small (_ssl.c:3905)".
    msg = _problem(*_self_signed(rsa1024))
    assert msg.startswith("Ingress default/w: spec.tls[0].secretName: Secret default/s: "
                          "unusable certificate: the certificate in tls.crt has a 1024-bit "
                          "RSA key, too small to serve: the minimum is 2048 bits"), msg
    assert "EE_KEY" not in msg and "_ssl.c" not in msg and "SSLError" not in msg


def test_a_small_ec_key_is_said_in_words() -> None:
    key = ec.generate_private_key(ec.SECP192R1())
    msg = _problem(*_self_signed(key))
    assert "the certificate in tls.crt has a 192-bit EC (secp192r1) key, too small to serve: " \
           "the minimum is 224 bits" in msg, msg
    assert "EE_KEY" not in msg


def test_a_chain_certificate_with_a_small_key_is_named(rsa1024: rsa.RSAPrivateKey) -> None:
    # A strong leaf issued by a CA whose key is 1024-bit RSA, the CA in the chain: OpenSSL's
    # "ca key too small" named no certificate.
    leaf = ec.generate_private_key(ec.SECP256R1())
    chain = (_cert("weak.test", "weak-ca", leaf.public_key(), rsa1024)
             + _cert("weak-ca", "weak-ca", rsa1024.public_key(), rsa1024, ca=True))
    msg = _problem(chain, _key_pem(leaf))
    assert "the chain's certificate 2 (in tls.crt) has a 1024-bit RSA key, too small to " \
           "serve: the minimum is 2048 bits" in msg, msg
    assert "CA_KEY" not in msg


@pytest.mark.parametrize("source, what", [
    (None, "Secret default/dflt"),
    ("--default-ssl-certificate", "--default-ssl-certificate default/dflt"),
])
def test_a_default_secret_problem_names_its_secret_once(rsa1024: rsa.RSAPrivateKey,
                                                        source: str | None, what: str) -> None:
    # Before: "default certificate: Secret default/dflt: Secret default/dflt: unusable ...".
    store = CertificateStore(default_secret="default/dflt", default_source=source)
    [p] = store.update(Resources(secrets=(_secret("dflt", *_self_signed(rsa1024)),)))
    assert str(p).startswith(f"default certificate: {what}: unusable certificate: the "
                             "certificate in tls.crt has a 1024-bit RSA key"), str(p)
    assert str(p).count("default/dflt") == 1, str(p)
    assert str(p).endswith("; serving the generated default certificate")
    # A Secret without tls.crt/tls.key: named once too.
    [p] = store.update(Resources(secrets=(_secret("dflt", b"", b""),)))
    assert str(p) == (f"default certificate: {what}: no usable tls.crt/tls.key; serving the "
                      "generated default certificate"), str(p)


def test_a_default_secret_date_warning_names_its_secret_once() -> None:
    # Before: "default certificate: Secret default/dflt: certificate of Secret default/dflt
    # expires on ...".
    key = ec.generate_private_key(ec.SECP256R1())
    store = CertificateStore(default_secret="default/dflt")
    [p] = store.update(Resources(secrets=(_secret("dflt", *_self_signed(key, days=3)),)))
    assert p.warning and str(p).count("default/dflt") == 1, str(p)
    assert str(p).startswith("default certificate: Secret default/dflt: its certificate "
                             "expires on "), str(p)


def test_guard_an_ingress_secret_date_warning_still_names_its_secret() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    res = Resources(ingresses=(_ingress("w", [(("weak.test",), "s")],
                                        rule_hosts=("weak.test",)),),
                    secrets=(_secret("s", *_self_signed(key, days=3)),))
    [p] = certificate_problems(res)
    assert "certificate of Secret default/s expires on" in str(p), str(p)


# --- the Host of an absolute-form HTTP/1.0 request without Host ----------------------------------


def _lines(pair: ProxyPair) -> list[tuple[bytes, bytes]]:
    head = pair.upstream_bytes.split(b"\r\n\r\n", 1)[0]
    out = []
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name.strip().lower(), value.strip()))
    return out


def _values(pair: ProxyPair, name: bytes) -> list[bytes]:
    return [v for n, v in _lines(pair) if n == name]


def test_absolute_form_without_host_sends_nginx_s_host() -> None:
    # Before: Host and X-Forwarded-Host "Other.test.:81" (the target's authority as written).
    pair = ProxyPair()
    assert status_of(pair.send(b"GET http://Other.test.:81/a HTTP/1.0\r\n\r\n")) == 200
    assert _values(pair, b"host") == [b"other.test"]
    assert _values(pair, b"x-forwarded-host") == [b"other.test"]
    # Routing still sees the authority as received (the router normalises it).
    assert pair.router.calls[0][1] == "Other.test.:81"


def test_absolute_form_ipv6_without_host_keeps_its_brackets() -> None:
    pair = ProxyPair()
    assert status_of(pair.send(b"GET http://[::1]:81/a HTTP/1.0\r\n\r\n")) == 200
    assert _values(pair, b"host") == [b"[::1]"]


def test_guard_a_host_header_passes_as_received() -> None:
    pair = ProxyPair()
    assert status_of(pair.send(b"GET /a HTTP/1.0\r\nHost: Other.test:81\r\n\r\n")) == 200
    assert _values(pair, b"host") == [b"Other.test:81"]
    assert _values(pair, b"x-forwarded-host") == [b"Other.test:81"]


# --- a trusted hop's empty X-Forwarded-Proto / -Port ---------------------------------------------

TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.0/24",))


def test_a_trusted_empty_forwarded_proto_sends_no_proto_headers() -> None:
    # Before: X-Forwarded-Proto, X-Forwarded-Scheme and X-Scheme "http" (our scheme).
    pair = ProxyPair(settings=TRUSTED)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Proto:\r\n\r\n")) == 200
    for name in (b"x-forwarded-proto", b"x-forwarded-scheme", b"x-scheme"):
        assert _values(pair, name) == [], name
    assert _values(pair, b"x-forwarded-port") == [b"80"]


def test_a_trusted_empty_forwarded_port_sends_no_port() -> None:
    # Before: X-Forwarded-Port "80" (our port).
    pair = ProxyPair(settings=TRUSTED)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Port: \r\n"
                               b"X-Forwarded-Proto: https\r\n\r\n")) == 200
    assert _values(pair, b"x-forwarded-port") == []
    assert _values(pair, b"x-forwarded-proto") == [b"https"]


def test_a_trusted_empty_forwarded_proto_is_not_redirected() -> None:
    # Before: force-ssl-redirect answered 308 (the empty value counted as absent: "http").
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    pair = ProxyPair([route], settings=TRUSTED)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Proto:\r\n\r\n")) == 200
    assert redirect_scheme("http", b"") == ""


def test_guard_absent_or_untrusted_forwarded_proto_keeps_our_scheme() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    pair = ProxyPair([route], settings=TRUSTED)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Port: 8\r\n\r\n")) \
        == 308
    # An untrusted peer's empty header is not read at all.
    pair = ProxyPair(settings=ProxySettings(use_forwarded_headers=True))
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Proto:\r\n\r\n")) == 200
    assert _values(pair, b"x-forwarded-proto") == [b"http"]
    assert _values(pair, b"x-scheme") == [b"http"]
    pair = ProxyPair(settings=TRUSTED)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")) == 200
    assert _values(pair, b"x-forwarded-proto") == [b"http"]
    assert redirect_scheme("http", None) == "http"


# --- a client gone mid-body ----------------------------------------------------------------------


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc",
    b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n",
    b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
])
def test_a_client_gone_mid_body_is_400(request_bytes: bytes) -> None:
    # Before: 499. Nothing is sent; the upstream connection is closed, not pooled.
    pair = ProxyPair()
    assert pair.send(request_bytes) == b""
    assert pair.eof() == b"" and pair.closed
    assert [r.status for r in pair.records] == [400]
    assert all(c.reuse is False for c in pair.closes)


def test_guard_a_client_gone_after_its_body_is_499() -> None:
    pair = ProxyPair(app=lambda r, b, u: None)
    assert pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc") == b""
    assert pair.eof() == b"" and pair.closed
    assert [r.status for r in pair.records] == [499]


def test_guard_a_host_named_in_connection_is_sent_as_received() -> None:
    # nginx drops no Connection-named header: $best_http_host is $http_host, as received.
    pair = ProxyPair()
    assert status_of(pair.send(b"GET /a HTTP/1.1\r\nHost: Other.test:81\r\n"
                               b"Connection: host\r\n\r\n")) == 200
    assert _values(pair, b"host") == [b"Other.test:81"]
    assert _values(pair, b"x-forwarded-host") == [b"Other.test:81"]
