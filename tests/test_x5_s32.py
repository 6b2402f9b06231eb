"""Session 32 (x5): a second review of the per-try log variables (commit f05a12b) against
nginx's source, ``$request_completion`` and the upstream lists driven through the sans-IO
core (tests/_proxy_harness.py).

Defects found (each test named ``test_defect_*`` failed before its fix):

- ``$request_completion`` of a local answer whose request body was still being discarded when
  the client closed (or the connection was aborted) was empty; nginx sets
  ``r->request_complete`` in ngx_http_finalize_request before ngx_http_finalize_connection
  goes on discarding the body, so nothing that ends the discard unsets it: "OK".

Checked against nginx and found right (``test_guard_*`` pin some of them):

- lists in step with ``$upstream_addr``: a connect refused / timed out ("-" connect and header
  time, 0 bytes), a read timeout retried, an http_502 head retried (its header time kept,
  ngx_http_upstream_process_header sets it before ngx_http_upstream_test_next), the keep-alive
  race's fresh connection (a try of its own, as nginx's new upstream state), custom-http-errors'
  page (" : " before its tries, its own refused retries included; the intercepted head keeps
  its header time), a 502 after the head (one try), HEAD, pipelined requests on a reused
  connection (each request's own bytes: ngx_http_upstream_get_keepalive_peer zeroes
  ``c->sent``), WebSocket tunnels (both directions counted, not in
  ``$upstream_response_length``); auth-url subrequests and mirrors never reach ``_open``
  (their connections are the auth module's / the driver's), so they add no try; a body
  buffered (proxy-request-buffering "on", ``Router.repick``) or streamed, retried on http_502;
- a refused connect's ``-`` connect time: nginx sets connect_time in
  ngx_http_upstream_send_request before ngx_http_upstream_test_connect, but a synchronous
  refusal (ngx_event_connect_peer's NGX_DECLINED) and the epoll read handler's path
  (ngx_http_upstream_process_header's test_connect) never get there: "-" is nginx's usual
  answer; a TLS handshake that fails is "-" too (ngx_http_upstream_ssl_handshake);
- bytes sent: the request head re-sent on each retry, chunk framing as written, a streamed
  body's pieces (``_send_upstream``), the client bytes held when a tunnel opens;
- ``$request_completion``: a proxied or local answer "OK", a 502 before the head and an
  upstream cut short after it "OK" (ngx_http_upstream_finalize_request: "rc = NGX_ERROR;
  flush = 1;" then send_special(NGX_HTTP_FLUSH) and finalize with its NGX_OK), a WebSocket
  closed by either side "OK", the client gone before or during a proxied response, its head or
  body timed out (408), a send timeout (``abort``) empty; a malformed body after the response
  began: "OK" (finalize with 400 after header_sent is the flush path, no ``c->error``); the
  discard timer after a local answer "OK" (already complete); 400 / 413 answered and closed
  "OK" (ngx_http_special_response_handler: a special response finalized whole);
- the ASGI adapter builds no RequestRecord and formats no log-format line; ``ProxyServer``
  passes the core's records on (``_record``) and ends connections through ``receive_eof`` /
  ``abort``, which this module drives directly.

Noticed and left alone (not this commit's): a client that closes in the middle of its request
head gets no record here, where nginx logs a 400 (ngx_http_read_request_header: "c->error = 1;
... ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST)").
"""

from __future__ import annotations

import datetime
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import access_fields
from ingresslib._logformat import compile_format
from ingresslib.proxy import RequestDone, RequestRecord
from ingresslib.proxy._settings import ProxySettings

from _proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                            web_service_yaml)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 25, 1, 0, 0, tzinfo=UTC).timestamp()
RC = "[$status $request_completion]"
#: A POST no rule serves (404 here) whose body is still owed when the answer goes out.
UNROUTED_POST = b"POST /elsewhere HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n01"


def _render(fmt: str, record: RequestRecord) -> str:
    return compile_format(fmt, "default").render(record, access_fields(record, NOW, UTC), NOW)


def _answered_while_discarding() -> ProxyPair:
    p = ProxyPair([Route(path="/only")], ProxySettings(log_format_upstream=RC))
    assert p.send(UNROUTED_POST).startswith(b"HTTP/1.1 404 ")
    assert p.records == []  # (its body is being discarded: the request has not ended yet)
    return p


def test_defect_a_local_answer_stays_complete_when_the_client_closes_during_the_discard(
        ) -> None:
    # ngx_http_finalize_request: "r->done = 1; ... if (!r->post_action) {
    # r->request_complete = 1; }" and only then ngx_http_finalize_connection, which reads
    # and discards the rest of the body (r->discard_body): the client's close there ends a
    # request already complete.
    p = _answered_while_discarding()
    p.eof()
    assert [_render(RC, r) for r in p.records] == ["[404 OK]"]


def test_defect_a_local_answer_stays_complete_when_aborted_during_the_discard() -> None:
    p = _answered_while_discarding()
    done = [a.record for a in p.conn.abort(p.now) if isinstance(a, RequestDone)]
    assert [_render(RC, r) for r in done] == ["[404 OK]"]


def test_guard_the_discard_timing_out_after_a_local_answer_is_complete() -> None:
    # ngx_http_discarded_request_body_handler: "if (rev->timedout) { c->timedout = 1;
    # c->error = 1; ngx_http_finalize_request(r, NGX_ERROR);" -- after request_complete.
    p = _answered_while_discarding()
    p.fire()
    assert [_render(RC, r) for r in p.records] == ["[404 OK]"]


def test_guard_a_client_gone_mid_body_before_any_answer_is_not_complete() -> None:
    # ngx_http_do_read_client_request_body: "client prematurely closed connection" ...
    # "c->error = 1; return NGX_HTTP_BAD_REQUEST;" -> ngx_http_terminate_request: 400, empty.
    p = ProxyPair([Route()], ProxySettings(log_format_upstream=RC))
    p.send(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n01")
    p.eof()
    assert [_render(RC, r) for r in p.records] == ["[400 ]"]


# --- the per-try lists stay in step with $upstream_addr on every kind of retry --------------------

A, B = ("10.0.0.1", 8080), ("10.0.0.2", 8080)
GET = b"GET /p HTTP/1.1\r\nHost: a.test\r\n\r\n"
TRIES = ("$upstream_addr|$upstream_status|$upstream_connect_time|$upstream_header_time|"
         "$upstream_bytes_sent|$upstream_bytes_received")


def _pair(app: Any = None, **kw: Any) -> ProxyPair:
    settings = ProxySettings(log_format_upstream=TRIES,
                             proxy_next_upstream=("error", "timeout", "http_502"))
    extra = {} if app is None else {"app": app}
    return ProxyPair([Route(endpoints=[A, B])], settings, **extra, **kw)


def test_guard_a_read_timeout_retried() -> None:
    # ngx_http_upstream_next(NGX_HTTP_UPSTREAM_FT_TIMEOUT): A connected and was sent the
    # request (its connect time and bytes), no head (header time "-"), nothing read.
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
        return None if up.endpoint == A else ok(b"fine")

    p = _pair(app)
    p.send(GET)
    p.fire()
    (record,) = p.records
    sent_a, sent_b = (len(u.raw) for u in p.upstreams)
    assert sent_a == sent_b > 0
    assert _render(TRIES, record) == (
        f"10.0.0.1:8080, 10.0.0.2:8080|504, 200|0.000, 0.000|-, 0.000|{sent_a}, {sent_b}|"
        f"0, {len(ok(b'fine').data)}")


def test_guard_a_connect_timeout_retried() -> None:
    p = _pair(hang={A})
    p.send(GET)
    (record,) = p.records
    (served,) = p.upstreams
    assert _render(TRIES, record) == (
        f"10.0.0.1:8080, 10.0.0.2:8080|504, 200|-, 0.000|-, 0.000|0, {len(served.raw)}|"
        f"0, {len(ok(b'ok /p').data)}")


def test_guard_the_keep_alive_race_is_a_try_of_its_own() -> None:
    # The pooled connection died idle: nginx logs the dead connection as a try (a new upstream
    # state per connect), its connect time 0 (a cached connection), the request written to
    # it counted, nothing read. (x46 s36: the fresh connection goes to the balancer's next
    # endpoint, B, as nginx's get asks the balancer again.)
    p = _pair()
    p.send(GET)
    (up,) = p.upstreams
    first = len(up.raw)
    up.closed = True
    p.send(GET)
    record = p.records[-1]
    fresh = p.upstreams[-1]
    assert fresh is not up
    assert _render(TRIES, record) == (
        f"10.0.0.1:8080, 10.0.0.2:8080|502, 200|0.000, 0.000|-, 0.000|{first}, "
        f"{len(fresh.raw)}|0, {len(ok(b'ok /p').data)}")


def test_guard_an_error_pages_own_failed_tries_follow_the_colon() -> None:
    # custom-http-errors on A's and B's 502 (both tried: http_502), the error page's backend
    # refuses both its endpoints: every list "first group : error page's group", the refused
    # tries with "-" times and 0 bytes.
    bad = b"HTTP/1.1 502 Bad\r\nContent-Length: 3\r\n\r\nbad"

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(bad)

    prefix = "nginx.ingress.kubernetes.io/"
    yaml = ingress_yaml("a", "a.test", {prefix + "custom-http-errors": "502",
                                        prefix + "default-backend": "web2",
                                        prefix + "proxy-next-upstream": "error timeout http_502"})
    web2 = web_service_yaml(2).replace("web", "web2").replace("10.0.0.", "10.0.1.")
    p = ProxyPair(router=Router(parse_manifests(yaml + web_service_yaml(2) + web2)), app=app,
                  settings=ProxySettings(log_format_upstream=TRIES),
                  refuse={("10.0.1.1", 80), ("10.0.1.2", 80)})
    assert p.send(GET).startswith(b"HTTP/1.1 502 ")
    (record,) = p.records
    sent_1, sent_2 = (len(u.raw) for u in p.upstreams)
    assert _render(TRIES, record) == (
        "10.0.0.1:80, 10.0.0.2:80 : 10.0.1.1:80, 10.0.1.2:80|502, 502 : 502, 502|"
        "0.000, 0.000 : -, -|0.000, 0.000 : -, -|"
        f"{sent_1}, {sent_2} : 0, 0|{len(bad)}, {len(bad)} : 0, 0")
