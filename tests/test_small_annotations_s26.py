"""Session 26 (SA2): small annotations, and two ssl-passthrough / PROXY protocol nits.

- ssl-passthrough never goes to a canary (ingress-nginx dials the root location's Service,
  the primary: controller.go ``getConfiguration``, tcpproxy ``TCPProxy.Handle``).
- PROXY protocol v1 ``UNKNOWN``: nginx's ``ngx_proxy_protocol_read`` skips to the first CRLF
  ("goto skip"), a bare LF included.
"""

from __future__ import annotations

import pytest

from ingresslib._router import Router
from ingresslib.proxy._passthrough import CLOSE, PassthroughRoutes
from ingresslib.proxy._proxy_protocol import ProxyHeader, ProxyProtocolError, ProxyProtocolReader
from tests.test_passthrough_s26 import _ingress, _res, _service

_PT = "nginx.ingress.kubernetes.io/ssl-passthrough"
_CANARY = {"nginx.ingress.kubernetes.io/canary": "true",
           "nginx.ingress.kubernetes.io/canary-weight": "100"}


# --- ssl-passthrough and a canary ---------------------------------------------------------------

def test_passthrough_never_picks_the_canary() -> None:
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}), _service("svc", 9443),
               _ingress("c", "x.test", "cny", annotations=_CANARY), _service("cny", 9444))
    router = Router(res)
    # a request is the canary's (weight 100) ...
    assert router.route("GET", "x.test", "/").endpoint == ("127.0.0.1", 9444)
    # ... the passthrough connection is the primary's, every time
    routes = PassthroughRoutes(True)
    assert {routes.decide(router, b"x.test", "10.0.0.1") for _ in range(5)} == {
        ("127.0.0.1", 9443)}


def test_passthrough_primary_without_endpoint_closes_even_with_a_ready_canary() -> None:
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}), _service("svc", None),
               _ingress("c", "x.test", "cny", annotations=_CANARY), _service("cny", 9444))
    router = Router(res)
    assert router.route("GET", "x.test", "/").endpoint == ("127.0.0.1", 9444)
    assert PassthroughRoutes(True).decide(router, b"x.test", None) == CLOSE


def test_guard_passthrough_without_canary_unchanged() -> None:
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}), _service("svc", 9443))
    assert PassthroughRoutes(True).decide(Router(res), b"x.test", None) == ("127.0.0.1", 9443)


# --- PROXY protocol v1 UNKNOWN --------------------------------------------------------------------

def test_proxy_protocol_unknown_skips_a_bare_lf() -> None:
    r = ProxyProtocolReader()
    assert r.feed(b"PROXY UNKNOWN\n\r\nxxxxxxxx") == ProxyHeader(1, "UNKNOWN")
    assert r.rest == b"xxxxxxxx"
    # the bare LF does not end it: the header waits for its CRLF, byte by byte
    r = ProxyProtocolReader()
    for b in b"PROXY UNKNOWN junk\nmore\r":
        assert r.feed(bytes([b])) is None
    assert r.feed(b"\nGET") == ProxyHeader(1, "UNKNOWN") and r.rest == b"GET"


def test_proxy_protocol_unknown_without_crlf_in_107_bytes_is_broken() -> None:
    r = ProxyProtocolReader()
    assert r.feed(b"PROXY UNKNOWN" + b"\n" * 93) is None         # 106 bytes
    with pytest.raises(ProxyProtocolError, match="107"):
        r.feed(b"\n")
    # a TCP4 line still ends at its LF (and needs the CR before it)
    with pytest.raises(ProxyProtocolError):
        ProxyProtocolReader().feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n")


# --- helpers for the annotations -----------------------------------------------------------------

import logging  # noqa: E402
from typing import Any  # noqa: E402

import h11  # noqa: E402

from ingresslib._accesslog import AccessLog  # noqa: E402
from ingresslib._metrics import Metrics  # noqa: E402
from ingresslib.proxy import ProxySettings  # noqa: E402
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options  # noqa: E402

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of  # noqa: E402
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

P = PREFIX
GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


def _pair(annotations: dict[str, str], **kw: Any) -> ProxyPair:
    return ProxyPair([Route(annotations=annotations)], **kw)


def _warnings(annotations: dict[str, str]) -> str:
    opts = parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/a")
    return "\n".join(opts.warnings)


@pytest.mark.parametrize("name", ["enable-access-log", "connection-proxy-header",
                                  "proxy-http-version", "use-port-in-redirects",
                                  "enable-rewrite-log"])
def test_annotations_are_implemented(name: str) -> None:
    assert name in IMPLEMENTED
    good = {"enable-access-log": "false", "connection-proxy-header": "close",
            "proxy-http-version": "1.0", "use-port-in-redirects": "true",
            "enable-rewrite-log": "true"}[name]
    assert _warnings({P + name: good}) == ""


@pytest.mark.parametrize("name,bad", [("enable-access-log", "no"),
                                      ("connection-proxy-header", "Close"),
                                      ("connection-proxy-header", "upgrade"),
                                      ("proxy-http-version", "2"),
                                      ("proxy-http-version", "HTTP/1.0"),
                                      ("use-port-in-redirects", "yes"),
                                      ("enable-rewrite-log", "on")])
def test_invalid_values_are_warned_and_the_default_used(name: str, bad: str) -> None:
    text = _warnings({P + name: bad})
    assert P + name in text and "using the default" in text
    opts = parse_route_options({P + name: bad}, "/", ProxySettings(), where="Ingress default/a")
    assert (opts.access_log, opts.connection_header, opts.http_version,
            opts.port_in_redirects, opts.rewrite_log) == (True, None, "1.1", False, False)


def test_enable_rewrite_log_logs_each_rewrite(caplog: pytest.LogCaptureFixture) -> None:
    ann = {P + "rewrite-target": "/$2", P + "use-regex": "true",
           P + "enable-rewrite-log": "true"}
    p = ProxyPair([Route(path="/api", annotations=ann)])
    # (the FakeRouter's Prefix match; the rule path is the regex's text)
    p.router.routes[0].match = p.router.routes[0].match.__class__(
        **{**p.router.routes[0].match.__dict__, "path": "/api(/|$)(.*)"})
    with caplog.at_level(logging.INFO, logger="ingresslib.proxy"):
        assert status_of(p.send(b"GET /api/users?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")) == 200
    assert p.upstreams[0].requests[0][0].target == b"/users?x=1"
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("rewrite-target")]
    assert lines == ["rewrite-target of Ingress default/web: '/api/users?x=1' rewritten to "
                     "'/users?x=1'"]


def test_guard_no_rewrite_log_by_default(caplog: pytest.LogCaptureFixture) -> None:
    p = ProxyPair([Route(annotations={P + "rewrite-target": "/"})])
    with caplog.at_level(logging.INFO, logger="ingresslib.proxy"):
        p.send(GET)
    assert not [r for r in caplog.records if r.getMessage().startswith("rewrite-target")]


# --- enable-access-log ----------------------------------------------------------------------------

class _Sink(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logged(record: Any) -> list[str]:
    logger = logging.getLogger("test.sa2.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    sink = _Sink()
    logger.addHandler(sink)
    try:
        AccessLog(logger, clock=lambda: 0.0)(record)
    finally:
        logger.removeHandler(sink)
    return sink.lines


def test_access_log_off_writes_no_line_but_metrics_count() -> None:
    p = _pair({P + "enable-access-log": "false"})
    assert status_of(p.send(GET)) == 200
    (rec,) = p.records
    assert rec.access_log is False
    assert _logged(rec) == []
    metrics = Metrics()
    metrics.observe(rec)
    assert b"nginx_ingress_controller_requests{" in metrics.render()


def test_serve_sink_counts_the_request_and_logs_no_line() -> None:
    from ingresslib._serve import _record_sink

    p = _pair({P + "enable-access-log": "false"})
    p.send(GET)
    (rec,) = p.records
    metrics = Metrics()
    sink = _record_sink("text", metrics)
    assert sink is not None
    logger = logging.getLogger("ingresslib.access")
    handler = _Sink()
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        sink(rec)
        sink(p.records[0].__class__(**{**{f: getattr(rec, f) for f in rec.__slots__},
                                       "access_log": True}))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert len(handler.lines) == 1          # only the second record's line
    assert b'status="200"} 2.0' in metrics.render()


def test_access_log_on_by_default_and_with_true() -> None:
    for ann in ({}, {P + "enable-access-log": "true"}):
        p = _pair(ann)
        p.send(GET)
        (rec,) = p.records
        assert rec.access_log is True
        assert len(_logged(rec)) == 1


def test_access_log_off_covers_local_answers_of_the_route() -> None:
    # the route's own 503 (no endpoint): the location answered, its access_log off applies
    p = ProxyPair([Route(annotations={P + "enable-access-log": "false"}, endpoints=[])])
    assert status_of(p.send(GET)) == 503
    assert p.records[0].access_log is False
    # a request no rule routes is the server's: logged
    p = ProxyPair([Route(host="b.test", annotations={P + "enable-access-log": "false"})])
    assert status_of(p.send(GET)) == 404
    assert p.records[0].access_log is True


# --- connection-proxy-header ----------------------------------------------------------------------

def _upstream_head(p: ProxyPair, i: int = 0) -> bytes:
    return bytes(p.upstreams[i].raw).split(b"\r\n\r\n")[0]


def test_connection_close_is_sent_and_the_upstream_not_pooled() -> None:
    p = _pair({P + "connection-proxy-header": "close"})
    assert status_of(p.send(GET)) == 200
    head = _upstream_head(p)
    assert head.lower().count(b"\r\nconnection:") == 1
    assert b"\r\nconnection: close" in head
    assert p.closes[-1].reuse is False
    p.send(GET)
    assert len(p.upstreams) == 2            # a new connection for the second request


def test_connection_keep_alive_is_sent_and_pooled() -> None:
    p = _pair({P + "connection-proxy-header": "keep-alive"})
    assert status_of(p.send(GET)) == 200
    assert b"\r\nconnection: keep-alive" in _upstream_head(p)
    assert p.closes[-1].reuse is True
    p.send(GET)
    assert len(p.upstreams) == 1


def test_guard_default_sends_no_connection_header_and_pools() -> None:
    p = _pair({})
    p.send(GET)
    assert b"\r\nconnection:" not in _upstream_head(p).lower()
    assert p.closes[-1].reuse is True


def _ws_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    if (b"upgrade", b"websocket") in [(n.lower(), v.lower()) for n, v in request.headers]:
        return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
    return ok()


_WS = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.parametrize("annotations", [{P + "connection-proxy-header": "close"},
                                         {P + "connection-proxy-header": "keep-alive"},
                                         {P + "proxy-http-version": "1.0"}])
def test_guard_websocket_upgrade_keeps_working(annotations: dict[str, str]) -> None:
    p = _pair(annotations, app=_ws_app)
    assert status_of(p.send(_WS)) == 101
    head = _upstream_head(p)
    assert head.startswith(b"GET /ws HTTP/1.1\r\n")
    assert b"\r\nconnection: upgrade" in head and b"\r\nupgrade: websocket" in head.lower()
    assert p.send(b"ping") == b"echo:ping"


# --- proxy-http-version ---------------------------------------------------------------------------

def test_http_1_0_request_line_and_no_upstream_keepalive() -> None:
    p = _pair({P + "proxy-http-version": "1.0"})
    assert status_of(p.send(GET)) == 200
    head = _upstream_head(p)
    assert head.startswith(b"GET /x HTTP/1.0\r\n") and b"\r\nhost: a.test" in head.lower()
    assert p.closes[-1].reuse is False
    assert status_of(p.send(GET)) == 200
    assert len(p.upstreams) == 2


def test_http_1_0_with_a_content_length_body_forwards_it() -> None:
    p = _pair({P + "proxy-http-version": "1.0"})
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200
    assert p.upstreams[0].requests[0][1] == b"hello"
    head = _upstream_head(p)
    assert head.startswith(b"POST /x HTTP/1.0\r\n") and b"\r\ncontent-length: 5" in head.lower()


def test_http_1_0_with_a_chunked_body_answers_411() -> None:
    p = _pair({P + "proxy-http-version": "1.0"})
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n")
    assert status_of(out) == 411
    assert p.opens == []
    assert p.records[0].status == 411
    # the connection goes on: the next request is served
    assert status_of(p.send(GET)) == 200


def test_guard_http_1_1_chunked_body_streams() -> None:
    p = _pair({P + "proxy-http-version": "1.1"})
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n")
    assert status_of(out) == 200
    assert _upstream_head(p).startswith(b"POST /x HTTP/1.1\r\n")


# --- use-port-in-redirects ------------------------------------------------------------------------

def _tls_pair(annotations: dict[str, str], https_port: int = 443) -> ProxyPair:
    return ProxyPair([Route(host="a.test", annotations=annotations)], tls_hosts={"a.test"},
                     https_port=https_port)


def _location(out: bytes) -> bytes | None:
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"location":
            return value.strip()
    return None


@pytest.mark.parametrize("port,want", [(443, b"https://a.test:443/x"),
                                       (8443, b"https://a.test:8443/x")])
def test_use_port_in_redirects_names_the_https_port(port: int, want: bytes) -> None:
    p = _tls_pair({P + "use-port-in-redirects": "true"}, port)
    out = p.send(GET)
    assert status_of(out) == 308 and _location(out) == want


def test_guard_without_use_port_in_redirects_443_is_not_written() -> None:
    out = _tls_pair({}).send(GET)
    assert status_of(out) == 308 and _location(out) == b"https://a.test/x"


def test_use_port_in_redirects_behind_a_trusted_hop_names_our_https_port() -> None:
    # lua_ingress.lua: config.listen_ports.https, whatever X-Forwarded-Proto said
    p = ProxyPair([Route(host="a.test", annotations={P + "use-port-in-redirects": "true"})],
                  ProxySettings(use_forwarded_headers=True,
                                proxy_real_ip_cidr=("203.0.113.0/24",)),
                  tls_hosts={"a.test"}, https_port=8443)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http\r\n\r\n")
    assert status_of(out) == 308 and _location(out) == b"https://a.test:8443/x"


_ASGI_MANIFESTS = (
    "".join(__import__("_proxy_harness").ingress_yaml(
        "a", "a.test", {P + "use-port-in-redirects": "true"}))
    + __import__("_proxy_harness").WEB_SERVICE_YAML)


@pytest.mark.asyncio
async def test_use_port_in_redirects_in_ingress_asgi_as_in_the_core() -> None:
    head = "GET /x HTTP/1.1\r\nHost: a.test"
    want = proxy_answer(wire(head), manifests=_ASGI_MANIFESTS, tls_hosts={"a.test"})
    got = await asgi_call(head, manifests=_ASGI_MANIFESTS, tls_hosts={"a.test"})
    assert want.status == got.status == 308
    assert want.header(b"location") == got.header(b"location") == b"https://a.test:443/x"
