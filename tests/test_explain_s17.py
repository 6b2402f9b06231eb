"""``explain`` tells what the proxy answers the request a client sends for the URL (session 17).

Before:

1. A URL no browser or curl sends a request for was explained as a request the proxy refuses or
   routes: ``http://h:80x/``, ``http://h:65536/``, ``http:h/x`` (a port ``h/x``), ``http:///x``
   (routed as a request without Host, to the host-less rules), ``http://h\\x/`` or a host with a
   space or ``%00`` (``400 rejected: invalid Host header``, exit 0). They are usage errors now
   (exit 2), as curl refuses them.
2. The host was not the one clients send: a percent-encoded host (``open%2Etest``: browsers
   decode it) was routed as written (404), an empty port (``h:``) and a zone (``[fe80::1%25lo]``)
   were 400s where curl sends ``h`` and ``[fe80::1]``, and the scheme's default port stayed in
   the Host (``http://h:80/``), which the proxy writes into its redirects' ``Location``
   (``http://h:80/app`` where curl gets ``http://h/app``).
3. A non-ASCII ``-H 'Host: ...'`` was IDNA-encoded and routed (or refused as a usage error when
   IDNA refused it); curl sends the header's UTF-8 bytes, which the proxy answers 400.
4. ``-X CONNECT``/``-X TRACE`` were answered 405 even when the proxy refuses the head first
   (nginx's order, the proxy's: Content-Length with Transfer-Encoding, an unknown
   Transfer-Encoding, a header over the size limit (431), a request line over it (414)).
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from ingresslib._cli import main
from ingresslib._explain import UsageError, explain_url
from ingresslib._explain_url import split_url
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import WEB, explain_json, prod_ingress  # noqa: E402
from _proxy_harness import ProxyPair, status_of  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
MANIFESTS = (
    prod_ingress("open", "open.test", "{}")
    # The IDNA form of "ópen.test": a -H Host written in Unicode was routed here.
    + prod_ingress("idn", "xn--pen-fna.test", "{}")
    + prod_ingress("app", "app.test", "{" + f"{P}app-root: /app" + "}")
    + prod_ingress("catchall", None, "{}", path="/c")
    + WEB)
RES = parse_manifests(MANIFESTS)
TABLE = RouteTable.build(RES)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(MANIFESTS)
    return p


def _proxy(head: bytes) -> bytes:
    """The proxy core's answer to ``head`` from 127.0.0.1 (what ``serve`` answers)."""
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=("127.0.0.1", 4000))
    return pair.send(head)


def _get(host: str, target: str = "/", method: str = "GET", *lines: str) -> bytes:
    return "\r\n".join([f"{method} {target} HTTP/1.1", f"Host: {host}", *lines, "", ""]).encode()


def _location(data: bytes) -> str | None:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"location":
            return value.strip().decode("latin-1")
    return None


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["explain", *args])
    return code, out.getvalue(), err.getvalue()


# -- 1. URLs no client sends a request for ---------------------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("http://open.test:80x/", "bad port '80x'"),
    ("http://open.test:65536/", "bad port '65536'"),
    ("http://open.test:0/", "bad port '0'"),
    ("http://open.test:\u0663/", "bad port"),           # ARABIC-INDIC DIGIT THREE: no port
    ("http:open.test/x", "bad port 'open.test'"),        # curl: host "http", port "open.test"
    ("http://open.test:8080:9/", "one ':' before the port"),
    ("http:///x", "no host"),
    ("http://open.test\\x/", "'\\\\' cannot be in a host name"),
    ("http://open test/", "' ' cannot be in a host name"),
    ("http://open.test%00/", "'\\x00' cannot be in a host name"),
    ("http://open%25test/", "'%' cannot be in a host name"),
    ("http://%ff/", "not UTF-8"),
    ("http://[fe80::zz]/", "does not appear to be an IPv4 or IPv6 address"),
    ("http://[::1]x/", "bad host"),
])
def test_a_url_clients_refuse_is_a_usage_error(files: Path, url: str, says: str) -> None:
    code, out, err = _cli("-f", str(files), url)
    assert code == 2 and out == "" and says in err and "Traceback" not in err
    code, out, _ = _cli("-f", str(files), "-o", "json", url)
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["error"] == "usage"
    with pytest.raises(UsageError):
        split_url(url)


def test_a_url_without_host_is_not_a_request_without_host(files: Path) -> None:
    # Before: http:///c was explained as "/c", the host-less rule's request (200), which no
    # client sends for it (curl: "No host part in the URL").
    assert _cli("-f", str(files), "http:///c")[0] == 2
    # The host-less request is written /c, and still reaches the host-less rule.
    assert explain_url(TABLE, "/c", res=RES)["match"]["ingress"] == "prod/catchall"


# -- 2. the Host clients send ----------------------------------------------------------------


@pytest.mark.parametrize(("url", "host"), [
    ("http://open%2Etest/", "open.test"),            # browsers percent-decode the host
    ("http://%6Fpen.test/", "open.test"),
    ("http://%C3%B3pen.test/", "xn--pen-fna.test"),  # ... then IDNA-encode it
    ("http://open.test:/", "open.test"),             # an empty port is the default one
    ("http://open.test:80/", "open.test"),           # the default port is not sent
    ("https://open.test:443/", "open.test"),
    ("http://open.test:443/", "open.test:443"),      # not http's default
    ("http://open.test:0080/", "open.test"),
    ("http://open.test:08080/", "open.test:8080"),
    ("http://[fe80::1%25eth0]/", "[fe80::1]"),       # the zone only picks the interface
    ("http://[fe80::1%eth0]:8080/", "[fe80::1]:8080"),
    ("http://[0:0::1]:8080/", "[::1]:8080"),
])
def test_the_host_is_the_one_clients_send(url: str, host: str) -> None:
    assert split_url(url)[0] == host
    info = explain_url(TABLE, url, res=RES, client_ip="127.0.0.1")
    assert info["host"] == host
    assert info["status"] == status_of(_proxy(_get(host)))


def test_a_percent_encoded_host_routes_as_browsers_send_it(files: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://open%2Etest/x")
    assert doc["status"] == 200 and doc["match"]["ingress"] == "prod/open"


def test_the_default_port_is_not_in_the_redirect(files: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # curl sends "Host: app.test" for http://app.test:80/ (lib/http.c: "If (HTTPS on port 443)
    # OR (non-HTTPS on port 80) then don't include the port number in the host string"), and
    # the proxy's app-root redirect names the Host it got.
    doc = explain_json(capsys, files, "--client-ip", "127.0.0.1", "http://app.test:80/")
    expected = _location(_proxy(_get("app.test")))
    assert expected == "http://app.test/app"
    assert doc["status"] == 302 and doc["verdict"]["location"] == expected
    # A port that is not the default is sent, and named.
    doc = explain_json(capsys, files, "--client-ip", "127.0.0.1", "http://app.test:8080/")
    assert doc["verdict"]["location"] == _location(_proxy(_get("app.test:8080")))
    assert doc["verdict"]["location"] == "http://app.test:8080/app"


# -- 3. a -H Host is sent as written ---------------------------------------------------------


@pytest.mark.parametrize("value", ["ópen.test", "open.tést:8080", "a\u200db.test", "ß"])
def test_a_non_ascii_host_header_is_what_the_proxy_refuses(files: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           value: str) -> None:
    # curl -H 'Host: ópen.test' sends the UTF-8 bytes; the proxy answers them 400.
    assert status_of(_proxy(_get(value))) == 400
    doc = explain_json(capsys, files, "-H", f"Host: {value}", "http://open.test/")
    assert doc["status"] == 400 and doc["match"] is None
    assert doc["reason"] == "rejected: invalid Host header"
    assert doc["host"] == value
    for res in (None, RES):
        assert explain_url(TABLE, "http://x/", res=res, headers=[("Host", value)])["status"] == 400


def test_the_url_host_is_still_idna_encoded(files: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # A URL's host is what browsers and curl encode (the header is not).
    doc = explain_json(capsys, files, "http://ópen.test/")
    assert doc["host"] == "xn--pen-fna.test" and doc["match"]["ingress"] == "prod/idn"
    assert status_of(_proxy(_get("xn--pen-fna.test"))) == 200


# -- 4. CONNECT and TRACE after the head's checks --------------------------------------------


@pytest.mark.parametrize(("method", "lines", "target"), [
    ("TRACE", ["Content-Length: 5", "Transfer-Encoding: chunked"], "/"),
    ("CONNECT", ["Transfer-Encoding: websocket"], "/"),
    ("TRACE", ["Content-Length: x"], "/"),
    ("TRACE", ["X-Big: " + "a" * 20000], "/"),
    ("CONNECT", [], "/" + "a" * 9000),
    # A path the table rejects (400), in a request line over the limit (414).
    ("GET", [], "/../" + "a" * 9000),
    ("GET", [], "/%zz" + "a" * 9000),
    ("GET", ["X-Big: " + "a" * 20000], "/.."),
])
def test_the_proxys_head_refusal_comes_first(method: str, lines: list[str], target: str) -> None:
    """... and before the table's own refusal of a path (a 400)."""
    expected = status_of(_proxy(_get("open.test", target, method, *lines)))
    assert expected != 405
    headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    for res in (None, RES):
        info = explain_url(TABLE, "http://open.test" + target, res=res, method=method,
                           headers=headers, client_ip="127.0.0.1")
        assert info["status"] == expected
        assert info["reason"] == f"rejected: the proxy refuses the request head ({expected})"
        assert info["match"] is None


@pytest.mark.parametrize(("method", "lines"), [
    ("GET", [("Expect", ""), ("Expect", "a" * 9000)]),       # a duplicate, over the line limit
    ("GET", [("Host", "open.test"), ("Host", "b" * 9000)]),  # a second Host, over the limit
    ("GET", [("Host", "\u00f3" * 5000)]),                     # not a host, over the limit
    ("get", [("X-Big", "a" * 20000)]),                       # a bad method, a too large head
    ("GET", [("Authorization", "x"), ("Authorization", "x")] + [(f"X-{i}", "a" * 1000)
                                                               for i in range(40)]),
])
def test_a_size_limit_comes_before_the_400s(method: str, lines: list[tuple[str, str]]) -> None:
    # The proxy checks the head's size as it reads it (414/431), before it parses a line:
    # explain answered its own 400 (duplicate header, invalid Host, invalid method).
    head = [f"{method} / HTTP/1.1"] + ([] if any(n == "Host" for n, _ in lines)
                                       else ["Host: open.test"])
    expected = status_of(_proxy(("\r\n".join(head + [f"{n}: {v}" for n, v in lines])
                                 + "\r\n\r\n").encode()))
    assert expected == 431
    for res in (None, RES):
        info = explain_url(TABLE, "http://open.test/", res=res, method=method, headers=lines,
                           client_ip="127.0.0.1")
        assert info["status"] == 431 and info["match"] is None
        assert info["reason"] == "rejected: the proxy refuses the request head (431)"


@pytest.mark.parametrize(("method", "reason"), [("TRACE", "TRACE is not allowed"),
                                                ("CONNECT", "CONNECT is not supported")])
def test_a_well_formed_connect_or_trace_keeps_its_405(method: str, reason: str) -> None:
    assert status_of(_proxy(_get("open.test", "/", method))) == 405
    info = explain_url(TABLE, "http://open.test/", res=RES, method=method)
    assert info["status"] == 405 and info["reason"] == f"rejected: {reason}"


# -- explain and the proxy agree; no traceback -----------------------------------------------

_HOST_PIECES = st.sampled_from(
    list("ab.:[]%_-~!$&'()*+,;=\"{} é\\@") + ["open.test", "app.test", ":80", ":8080", "%2e",
                                               "%2E", "OPEN.TEST", "[::1]", "\x01", "\x7f", "ß",
                                               "%25", "%C3%A9", "%00", "\u3002", "\uff0f"])
_PATH_PIECES = st.sampled_from(list("/ab.%?#;&=é \\\"<>{}|^`~\x7f\x01\t")
                               + ["%2e", "%2F", "..", "%00", "%zz", "/c", "/app", "%25", "//", "b" * 9000])
_LINES = st.lists(st.tuples(
    st.sampled_from(["Expect", "Content-Length", "Transfer-Encoding", "Cookie", "Authorization",
                     "Connection", "Upgrade", "X-Big"]),
    st.sampled_from(["", "100-continue", "5", "x", "chunked", "websocket", "close", "a=b",
                     "a" * 9000])), max_size=3)


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(url_host=st.lists(_HOST_PIECES, max_size=5).map("".join),
       path=st.lists(_PATH_PIECES, max_size=8).map("".join),
       host_header=st.none() | st.lists(_HOST_PIECES, max_size=4).map("".join),
       method=st.sampled_from(["GET", "POST", "OPTIONS", "TRACE", "CONNECT", "get"]),
       lines=_LINES)
# Unrouted with a body to come: the proxy reads it before its 404 (found by the search once).
@example(url_host="a", path="", host_header=None, method="GET",
         lines=[("Transfer-Encoding", "chunked")])
@example(url_host="a", path="", host_header=None, method="GET", lines=[("Content-Length", "5")])
def test_explain_answers_as_the_proxy(url_host: str, path: str, host_header: str | None,
                                      method: str, lines: list[tuple[str, str]]) -> None:
    """For every URL explain accepts, its status is the proxy's for the request explain says
    a client sends (the Host and target of ``split_url``, or the ``-H Host``)."""
    url = f"http://{url_host}/{path}"
    headers = list(lines)
    if host_header is not None:
        host_header = host_header.strip(" \t")
        if "\x00" in host_header:
            return  # refused by -H itself (usage error)
        headers.append(("Host", host_header))
    try:
        host, target = split_url(url)
        info = explain_url(TABLE, url, res=RES, headers=headers, method=method,
                           client_ip="127.0.0.1")
    except UsageError:
        return
    sent = host if host_header is None else host_header
    head = [f"{method} {target} HTTP/1.1", f"Host: {sent}", *(f"{n}: {v}" for n, v in lines)]
    data = _proxy(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
    if data and status_of(data) == 100:  # Expect: 100-continue: the answer that follows
        data = data.split(b"\r\n\r\n", 1)[1]
    if not data:
        # Someone waits for the body (Transfer-Encoding: chunked, Content-Length): either the
        # upstream (explain says proxied) or, since session 21, the proxy itself, which reads an
        # unrouted request's body before its local answer; then that answer must come once the
        # body is sent.
        assert any(n.lower() in ("transfer-encoding", "content-length") for n, _ in lines)
        if "verdict" in info:
            assert info["verdict"]["proxied"] is True, (url, headers, method, info["reason"])
            return
        if any(n.lower() == "transfer-encoding" for n, _ in lines):
            body = b"0\r\n\r\n"
        else:
            body = b"x" * max(int(v) for n, v in lines if n.lower() == "content-length")
        data = _proxy(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body)
        if data and status_of(data) == 100:
            data = data.split(b"\r\n\r\n", 1)[1]
    assert info["status"] == status_of(data), (url, headers, method, info["reason"])


_ANY = st.text(max_size=24) | st.lists(_HOST_PIECES | _PATH_PIECES, max_size=10).map("".join)


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(url=st.one_of(_ANY, _ANY.map(lambda s: "http://" + s), _ANY.map(lambda s: "https://" + s)),
       values=st.lists(st.tuples(st.sampled_from(["Host", "X-A", "Authorization", "Cookie"]),
                                 _ANY), max_size=2),
       output=st.sampled_from(["text", "json"]))
def test_no_traceback_on_any_url_or_header(tmp_path_factory: Any, url: str,
                                           values: list[tuple[str, str]], output: str) -> None:
    f = tmp_path_factory.getbasetemp() / "s17-any.yaml"
    if not f.exists():
        f.write_text(MANIFESTS)
    args = ["-f", str(f), "-o", output, "--client-ip", "10.1.1.1"]
    for name, value in values:
        args += ["-H", f"{name}: {value}"]
    code, out, err = _cli(*args, "--", url)
    assert code in (0, 2) and "Traceback" not in err
    if output == "json":
        doc = json.loads(out)
        assert doc["ok"] is (code == 0)


# -- 5. the verdict's reason for a resource backend ------------------------------------------

RESOURCE_DEFAULT = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bucket, namespace: prod}
spec:
  defaultBackend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: b}}
"""


def test_a_resource_backends_verdict_does_not_blame_endpoints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: verdict.reason said "the backend has no ready endpoint" for a backend that is
    # no Service at all (the router's line and the top reason said so correctly).
    f = tmp_path / "r.yaml"
    f.write_text(RESOURCE_DEFAULT)
    doc = explain_json(capsys, f, "http://any.test/")
    assert doc["status"] == 503 and doc["verdict"]["status"] == 503
    assert doc["verdict"]["reason"] == "a resource backend is not a Service: nothing to proxy to"
    assert doc["reason"].endswith("; " + doc["verdict"]["reason"])
    assert main(["explain", "-f", str(f), "http://any.test/"]) == 0
    text = capsys.readouterr().out
    assert "nothing to proxy to (503)" in text
    assert text.count("nothing to proxy to") == 1  # one line, not the verdict again
