"""Session 17: the sans-IO proxy core and its server.

Every test here failed on the code before this session (checked against copies of the old
``proxy/_connection.py``, ``proxy/_server.py``, ``_accesslog.py`` and ``_asgi.py`` in /tmp),
unless its docstring says "guard"."""

from __future__ import annotations

from dataclasses import replace

from ingresslib._accesslog import DEFAULT_UPSTREAM, upstream_names
from ingresslib.proxy import ProxySettings
from tests._agree_s13 import (
    P,
    SERVICES,
    IngressSpec,
    PathSpec,
    RequestSpec,
    manifests_text,
    via_asgi,
    via_proxy,
)
from tests._proxy_harness import PEER, ProxyPair, Route, status_of

_BODY = b"400 Bad Request\nrefused here\n"


def _refusing(routes: list[Route] | None = None) -> ProxyPair:
    """A pair whose core refuses every request whose head passes the checks."""
    p = ProxyPair(routes)
    p.conn = p.proxy.connection(PEER, now=p.now, refuse_requests=(400, _BODY))
    p._run(p.conn.start(p.now))
    return p


# 1. ``refuse_requests``: the core's hook for plain HTTP on the TLS listener ----------------


def test_refuse_requests_answers_every_routable_request_and_closes() -> None:
    p = _refusing()
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    head, _, body = out.partition(b"\r\n\r\n")
    assert status_of(out) == 400 and body == _BODY
    assert b"\r\nconnection: close" in head.lower()
    assert p.closed and not p.opens and p.router.calls == []
    assert [r.status for r in p.records] == [400]


def test_refuse_requests_refuses_options_star_too() -> None:
    p = _refusing()
    out = p.send(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 400 and out.endswith(_BODY) and p.closed
    assert b"allow:" not in out.lower()


def test_refuse_requests_leaves_the_head_checks_first() -> None:
    """A head the checks refuse gets its own answer (nginx: ngx_http_process_request_header
    runs before ngx_http_process_request's NGX_HTTP_TO_HTTPS)."""
    p = _refusing()
    out = p.send(b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 405 and not out.endswith(_BODY)
    p = _refusing()
    out = p.send(b"GET / HTTP/1.1\r\n\r\n")  # HTTP/1.1 without Host
    assert status_of(out) == 400 and not out.endswith(_BODY)


def test_no_refuse_requests_routes_as_before() -> None:
    """guard: the default proxies."""
    p = ProxyPair()
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 200 and p.opens


# 2. A chunk line ended by a bare LF ---------------------------------------------------------


def _chunked_head() -> bytes:
    return b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunk_size_line_ended_by_bare_lf_is_400_at_once() -> None:
    """nginx's ngx_http_parse_chunked: no LF case in ``sw_chunk_size`` ("default: goto
    invalid;"): 400 at the LF, not a wait for a CRLF (h11's) until client_body_timeout."""
    for line in (b"5\nhello", b"5;ext\nhello", b"0\n", b"5\n"):
        p = ProxyPair()
        out = p.send(_chunked_head() + line)
        assert status_of(out) == 400, line
        assert p.closed, line
        assert b"hello" not in p.upstream_bytes, line


def test_bare_lf_in_a_chunk_line_arriving_bytewise_is_400() -> None:
    p = ProxyPair()
    p.send(_chunked_head())
    out = b""
    for b in (b"1", b"0", b";", b"a", b"\n"):
        out += p.send(b)
    assert status_of(out) == 400 and p.closed


def test_chunk_line_split_after_its_cr_still_passes() -> None:
    """guard: a CR last in a read is half a CRLF, not a bare CR."""
    p = ProxyPair()
    p.send(_chunked_head())
    assert p.send(b"5;x\r") == b""
    out = p.send(b"\nhello\r\n0\r\n\r\n")
    assert status_of(out) == 200
    assert b"hello" in p.upstream_bytes


# 3. The 413 of a declared length: nginx's find_config phase ---------------------------------



def _both(annotations: tuple[tuple[str, str], ...], req: RequestSpec,
          tls: bool = False) -> tuple[int, int]:
    ing = IngressSpec("web", "a.test", (PathSpec("/", "Prefix", SERVICES[0]),),
                      ((P + "proxy-body-size", "4"), *annotations), tls=tls)
    text = manifests_text((ing,))
    hosts = frozenset({"a.test"}) if tls else frozenset()
    settings = ProxySettings()
    return (via_proxy(text, req, settings, hosts).status,
            via_asgi(text, req, settings, hosts).status)


def _post(target: str = "/x", https: bool = False, headers: tuple[tuple[str, str], ...] = ()
          ) -> RequestSpec:
    return RequestSpec("POST", target, "a.test", headers, b"0123456789", https, "198.51.100.9")


def test_413_comes_before_the_location_redirects() -> None:
    """``permanent-redirect`` / ``temporal-redirect`` are the location's ``return`` (its
    rewrite phase): the find_config phase's 413 answers first, in the core and the adapter."""
    for ann in (((P + "permanent-redirect", "https://perm.test/p"),),
                ((P + "temporal-redirect", "http://temp.test/t"),)):
        assert _both(ann, _post()) == (413, 413), ann


def test_413_comes_before_the_ssl_redirect() -> None:
    """lua_ingress.lua's redirect runs in the location's ``rewrite_by_lua_block``."""
    assert _both(((P + "force-ssl-redirect", "true"),), _post()) == (413, 413)
    assert _both((), _post(), tls=True) == (413, 413)  # ssl-redirect of a TLS host


def test_413_comes_before_source_ranges_and_basic_auth() -> None:
    """nginx's access phase (allow/deny 403, auth_basic 401) follows find_config."""
    assert _both(((P + "whitelist-source-range", "10.0.0.0/8"),), _post()) == (413, 413)
    assert _both(((P + "auth-type", "basic"), (P + "auth-secret", "users")),
                 _post()) == (413, 413)


def test_app_root_still_answers_before_413() -> None:
    """guard: app-root is nginx.tmpl's server-level ``return 302`` (the server rewrite phase,
    before find_config)."""
    assert _both(((P + "app-root", "/app"),), _post("/")) == (302, 302)
    assert _both(((P + "app-root", "/app"),), _post("/x")) == (413, 413)


# 4. The access log's upstream name follows where nginx answered ----------------------------


def _names(p: ProxyPair) -> list[tuple[int, str]]:
    return [(r.status, upstream_names(r)[0]) for r in p.records]


def test_413_of_a_content_length_logs_the_servers_dash() -> None:
    """ngx_http_core_find_config_phase answers before the location's ``set
    $proxy_upstream_name``; the server block's ``set $proxy_upstream_name "-";`` ran."""
    p = ProxyPair([Route(host="a.test", annotations={
        "nginx.ingress.kubernetes.io/proxy-body-size": "4"})])
    p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789")
    assert _names(p) == [(413, "-")]


def test_app_root_redirect_logs_the_servers_dash() -> None:
    """app-root is the server block's ``if ($uri = /) { return 302 ...; }``."""
    p = ProxyPair([Route(host="a.test", annotations={
        "nginx.ingress.kubernetes.io/app-root": "/app"})])
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 302 and _names(p) == [(302, "-")]


def test_unrouted_request_refused_for_its_body_logs_the_default_backend() -> None:
    """The server's ``location /`` (the default backend) ran: its upstream name, where the
    status alone (400, no rule) read as "refused before routing" and logged ``[]``."""
    p = ProxyPair([Route(host="a.test")])
    p.send(b"POST /x HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert [n for _, n in _names(p)] == [DEFAULT_UPSTREAM]


def test_head_refusals_still_log_no_name() -> None:
    """guard: refused while the head was read (TRACE's 405): the variable was never set."""
    p = ProxyPair([Route(host="a.test")])
    p.send(b"TRACE / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert _names(p) == [(405, "")]


def test_refuse_requests_logs_no_name() -> None:
    """The plain-HTTP-on-TLS refusal is nginx's ngx_http_process_request, before any phase
    (fails before only for want of ``refuse_requests``)."""
    p = _refusing([Route(host="a.test")])
    p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert _names(p) == [(400, "")]


def test_records_without_phase_keep_the_status_inference() -> None:
    """guard: ``phase`` is a new optional field; a record built elsewhere reads as before."""
    p = ProxyPair([Route(host="a.test")])
    p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: x\r\n\r\n")
    rec = replace(p.records[0], phase=None)
    assert rec.status == 400 and upstream_names(rec) == ("", "")
    assert upstream_names(replace(rec, status=404)) == (DEFAULT_UPSTREAM, "")
