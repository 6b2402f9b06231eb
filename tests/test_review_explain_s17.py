"""Review of explain's URL host and -H lines (R17g, session 17).

Before:

1. A host written as an IPv4 address in one of the forms URL parsers read (``127.1``,
``0x7f.1``, ``0177.0.0.1``, ``2130706433``) was routed and shown as written. Browsers and curl
connect to that address and send it as the Host in dotted-quad form (WHATWG URL "IPv4 parser";
curl lib/urlapi.c ``ipv4_normalize``): ``http://127.1/`` sends ``Host: 127.0.0.1``. An Ingress
host ``127.1`` (a valid DNS-1123 name, not an IP to the API server) was reported as matched
where the proxy answers the request curl sends with its 404.
2. A ``-H 'Host: ...'`` was stripped of every Unicode whitespace (``str.strip()``) before it was
   routed and written into the request: ``open.test\\f`` (a form feed; curl sends it) was routed
   to open.test and proxied (200) where the proxy answers 400.
3. A ``-H`` line with whitespace before its name (``' X-A: b'``: curl sends it as written, a
   folded line to the server, which answers 400) was explained as the request without it.
4. A ``|`` in the URL's host was a usage error "browsers and curl refuse the URL": curl sends
   it (its ``hostname_check`` list has no ``|``), and the proxy answers it 400, as explain did
   before session 17.
5. A command-line value that is not UTF-8 (``-H $'Host: \\xff'``; Python reads such argv
   bytes as lone surrogates) ended in a UnicodeEncodeError traceback (a ``-H Host`` was a usage
   error before session 17, through IDNA; a ``-H`` value, a path or userinfo byte already
   were). curl sends the bytes: explain sends them to the proxy as they are.
6. check's note that cert-manager creates a missing Secret read ``kubernetes.io/tls-acme`` as
   "true" only, and was given where cert-manager creates nothing (see the section below).
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib._cli import main
from ingresslib._explain import explain_url
from ingresslib._router import Router
from ingresslib._explain_url import split_url
from ingresslib._load import parse_manifests
from ingresslib._table import RouteTable

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import WEB, prod_ingress  # noqa: E402
from _proxy_harness import ProxyPair, status_of  # noqa: E402

MANIFESTS = prod_ingress("numeric", "'127.1'", "{}") + prod_ingress("open", "open.test", "{}") + WEB
RES = parse_manifests(MANIFESTS)
TABLE = RouteTable.build(RES)


@pytest.mark.parametrize(("url", "host"), [
    ("http://127.1/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0X7F.0.0.1/", "127.0.0.1"),
    ("http://0177.0.0.1:8080/", "127.0.0.1:8080"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://10.1.2/", "10.1.0.2"),
    ("https://0x0a.0x1.0x2.0x3:443/", "10.1.2.3"),
    # Not IPv4 to URL parsers: curl sends them as host names (browsers refuse them).
    ("http://1.2.3.09/", "1.2.3.09"),
    ("http://10.0.0.256/", "10.0.0.256"),
    ("http://1.2.3.4.5/", "1.2.3.4.5"),
    ("http://4294967296/", "4294967296"),
    ("http://" + "1" * 5000 + "/", "1" * 5000),
])
def test_an_ipv4_host_is_sent_as_four_decimals(url: str, host: str) -> None:
    assert split_url(url)[0] == host


def test_a_numeric_host_routes_as_the_request_curl_sends() -> None:
    info = explain_url(TABLE, "http://127.1/", res=RES)
    assert info["host"] == "127.0.0.1"
    assert info["match"] is None and info["status"] == 404
    # Written in the Host header, it is sent as written, and the rule matches.
    info = explain_url(TABLE, "http://127.1/", res=RES, headers=[("Host", "127.1")])
    assert info["match"] is not None


_PART = st.one_of(st.integers(0, 2**32).map(str), st.integers(0, 2**32).map(lambda n: f"0x{n:x}"),
                  st.integers(0, 2**32).map(lambda n: f"0{n:o}"),
                  st.sampled_from(["08", "0x", "", "a", "00", "0"]))


@hsettings(max_examples=500, deadline=None)
@given(parts=st.lists(_PART, min_size=1, max_size=5))
def test_ipv4_forms_read_as_inet_aton(parts: list[str]) -> None:
    """The forms read are the classic ``inet_aton`` ones (which WHATWG and curl follow), apart
    from ``0x`` alone (curl: a host name)."""
    name = ".".join(parts)
    host = split_url(f"http://{name}/")[0] if name.strip(".") and ".." not in name else None
    if host is None or "0x" in parts:
        return
    try:
        expected = socket.inet_ntoa(socket.inet_aton(name))
    except OSError:
        expected = name
    assert host == expected


def _proxy(head: str) -> int:
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=("127.0.0.1", 4000))
    data = pair.send(head.encode("utf-8"))
    return status_of(data) if data else 0


@pytest.mark.parametrize("value", ["open.test\f", "open.test\v", "\x1copen.test", "open.test\xa0",
                                   "open.test\u3000"])
def test_a_host_header_keeps_what_is_not_optional_whitespace(value: str) -> None:
    expected = _proxy(f"GET / HTTP/1.1\r\nHost: {value}\r\n\r\n")
    assert expected == 400
    info = explain_url(TABLE, "http://x/", res=RES, headers=[("Host", value)],
                       client_ip="127.0.0.1")
    assert info["status"] == 400 and info["match"] is None
    # SP and HTAB around the value are not part of it (the proxy strips them too).
    info = explain_url(TABLE, "http://x/", res=RES, headers=[("Host", " open.test\t")],
                       client_ip="127.0.0.1")
    assert info["host"] == "open.test" and info["status"] == 200


@pytest.mark.parametrize("line", [" X-A: b", "\tX-A: b", " Host: open.test"])
def test_a_folded_header_line_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               line: str) -> None:
    assert _proxy(f"GET / HTTP/1.1\r\nHost: open.test\r\n{line}\r\n\r\n") == 400
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    code = main(["explain", "-f", str(path), "http://open.test/", "-H", line, "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 2
    doc = json.loads(out)  # one document: the error
    assert doc["ok"] is False and "whitespace before the name" in doc["errors"][0]["message"]
    assert "whitespace before the name" in err


@pytest.mark.parametrize("url", ["http://a|b/", "http://open.test|/", "http://a%7Cb/"])
def test_a_pipe_in_the_host_is_what_the_proxy_answers(url: str) -> None:
    host, _ = split_url(url)  # curl sends it
    assert _proxy(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n") == 400
    info = explain_url(TABLE, url, res=RES, client_ip="127.0.0.1")
    assert info["status"] == 400 and info["match"] is None


_XFF = "\udcff"  # the byte 0xFF of argv, as Python decodes it (surrogateescape)


@pytest.mark.parametrize(("args", "head"), [
    (["http://open.test/", "-H", f"Host: {_XFF}"], b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n"),
    (["http://open.test/", "-H", f"Host: open.test{_XFF}"],
     b"GET / HTTP/1.1\r\nHost: open.test\xff\r\n\r\n"),
    (["http://open.test/", "-H", f"X-A: {_XFF}"],
     b"GET / HTTP/1.1\r\nHost: open.test\r\nX-A: \xff\r\n\r\n"),
    (["http://open.test/", "-H", f"Cookie: a={_XFF}"],
     b"GET / HTTP/1.1\r\nHost: open.test\r\nCookie: a=\xff\r\n\r\n"),
    ([f"http://open.test/{_XFF}"], b"GET /%FF HTTP/1.1\r\nHost: open.test\r\n\r\n"),
    ([f"http://open.test/?q={_XFF}"], b"GET /?q=%FF HTTP/1.1\r\nHost: open.test\r\n\r\n"),
    ([f"http://u{_XFF}:p@open.test/"],
     b"GET / HTTP/1.1\r\nHost: open.test\r\nAuthorization: Basic df86cA==\r\n\r\n"),
])
@pytest.mark.parametrize("output", ["json", "text"])
def test_a_value_that_is_not_utf8_is_sent_as_its_bytes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], head: bytes,
        output: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    code = main(["explain", "-f", str(path), *args, "-o", output])
    out, _err = capsys.readouterr()
    assert code == 0
    if output == "json":
        pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0),
                         peer=("127.0.0.1", 4000))
        data = pair.send(head)
        assert json.loads(out)["status"] == (status_of(data) if data else 503)
    else:  # written as its byte: a strict UTF-8 output would raise on the surrogate
        assert _XFF not in out
        if "/" + _XFF in args[0]:
            assert out.splitlines()[0] == "http://open.test/\\xff"


# -- check's cert-manager note: only where cert-manager creates the Secret -----------------------
# cert-manager/cert-manager pkg/controller/certificate-shim/sync.go: ``hasShimAnnotation`` (an
# issuer annotation present; ``tls-acme`` through ``strconv.ParseBool``), ``issuerForIngressLike``
# (an empty name, "both %q and %q may not be set": no Certificate), ``validateIngressLike`` (one
# secretName in two TLS entries: none), ``validateIngressTLSBlock`` (no hosts: "Skipped a TLS
# block").

CM = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {%s}
spec:
  tls: %s
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""
ONE_TLS = "[{hosts: [shop.example.com], secretName: shop-tls}]"


@pytest.mark.parametrize(("annotations", "tls", "asks"), [
    # Before: no note (only "true" was read).
    ('kubernetes.io/tls-acme: "True"', ONE_TLS, "kubernetes.io/tls-acme: True"),
    ('kubernetes.io/tls-acme: "1"', ONE_TLS, "kubernetes.io/tls-acme: 1"),
    # Before: a note, where cert-manager creates nothing.
    ("cert-manager.io/issuer: a, cert-manager.io/cluster-issuer: b", ONE_TLS, None),
    ("cert-manager.io/cluster-issuer: b, cert-manager.io/issuer-kind: Foo", ONE_TLS, None),
    ("cert-manager.io/cluster-issuer: b, cert-manager.io/issuer-group: x.io", ONE_TLS, None),
    ('kubernetes.io/tls-acme: "true", cert-manager.io/issuer: ""', ONE_TLS, None),
    ("cert-manager.io/cluster-issuer: b",
     "[{hosts: [shop.example.com], secretName: shop-tls}, {hosts: [b.example], secretName: shop-tls}]",
     None),
    ("cert-manager.io/cluster-issuer: b", "[{secretName: shop-tls}]", None),
    # As before.
    ("cert-manager.io/cluster-issuer: b", ONE_TLS, "cert-manager.io/cluster-issuer: b"),
    ("cert-manager.io/issuer: a, cert-manager.io/issuer-kind: Foo", ONE_TLS,
     "cert-manager.io/issuer: a"),
    ('kubernetes.io/tls-acme: "false"', ONE_TLS, None),
    ('kubernetes.io/tls-acme: "yes"', ONE_TLS, None),
])
def test_the_cert_manager_note_only_where_it_creates_the_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], annotations: str, tls: str,
        asks: str | None) -> None:
    from ingresslib._cli import main

    path = tmp_path / "cm.yaml"
    path.write_text(CM % (annotations, tls))
    main(["check", "-f", str(path)])
    lines = [line for line in capsys.readouterr().err.splitlines()
             if "spec.tls[0].secretName: Secret shop/shop-tls not found" in line]
    assert len(lines) == 1, lines
    if asks is None:
        assert "cert-manager" not in lines[0]
    else:
        assert lines[0].endswith(f"not found: cert-manager creates it once it has issued the "
                                 f"certificate this Ingress asks for ({asks}); until then its "
                                 "hosts get the default certificate")
