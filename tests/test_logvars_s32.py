"""Session 32: ``log-format-upstream``'s per-try upstream variables as nginx writes them.

``$upstream_connect_time`` and ``$upstream_header_time`` list one value per try (``-`` for a
try without one), in step with ``$upstream_addr`` (ngx_http_upstream_response_time_variable);
``$upstream_bytes_sent`` / ``$upstream_bytes_received`` list the bytes written to / read from
each try's connection (ngx_http_upstream_bytes_variable). Requests are driven through the
sans-IO core (tests/_proxy_harness.py), retries included.

Tests named ``test_defect_*`` fail on the tree before this session; ``test_guard_*`` held.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import access_fields
from ingresslib._logformat import compile_format, unavailable
from ingresslib.proxy import RequestDone, RequestRecord, UpstreamTry
from ingresslib.proxy._settings import ProxySettings

from _proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                            silent_app, web_service_yaml)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 25, 0, 30, 0, tzinfo=UTC).timestamp()

A, B = ("10.0.0.1", 8080), ("10.0.0.2", 8080)
TIMES = "$upstream_connect_time|$upstream_header_time|$upstream_response_time"
BYTES = "$upstream_bytes_sent|$upstream_bytes_received"
FMT = "$upstream_addr|$upstream_status|" + TIMES + "|" + BYTES
GET = b"GET /p HTTP/1.1\r\nHost: a.test\r\n\r\n"
BAD = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"


def _render(fmt: str, record: RequestRecord, escape: str = "default") -> str:
    return compile_format(fmt, escape).render(record, access_fields(record, NOW, UTC), NOW)


def _pair(fmt: str = FMT, app: Any = None, **kw: Any) -> ProxyPair:
    settings = ProxySettings(log_format_upstream=fmt,
                             proxy_next_upstream=("error", "timeout", "http_502"))
    extra = {} if app is None else {"app": app}
    return ProxyPair([Route(endpoints=[A, B])], settings, **extra, **kw)


def _by_endpoint(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    # A answers 502 (retried: proxy_next_upstream http_502), B answers 200.
    return Reply(BAD) if up.endpoint == A else ok(b"fine")


# --- $upstream_connect_time and $upstream_header_time: one per try -----------------------------


def test_defect_a_refused_try_then_a_served_one() -> None:
    # A's connect fails after 0.5 s; B connects 0.25 s later and answers at once.
    p = _pair(defer={A, B})
    p.send(GET)
    p.now += 0.5
    p.fail_connect()
    p.now += 0.25
    p.connect()
    (record,) = p.records
    response = ok(b"ok /p").data
    sent_b = len(p.upstreams[1].raw)
    assert sent_b > 0 and p.upstreams[0].raw == b""
    assert _render(FMT, record) == (
        f"10.0.0.1:8080, 10.0.0.2:8080|502, 200|-, 0.250|-, 0.250|0.500, 0.250|"
        f"0, {sent_b}|0, {len(response)}")
    # The scalar fields stay the last try's (compatibility).
    assert record.upstream_connect_time == 0.25 and record.upstream_header_time == 0.25
    assert record.upstream_tries == (UpstreamTry(None, None, 0, 0),
                                     UpstreamTry(0.25, 0.25, sent_b, len(response)))


def _retried_502() -> tuple[ProxyPair, RequestRecord]:
    """A answers 502 after 0.1 s (retried for http_502), B 200 after 0.2 s."""
    p = _pair(app=_by_endpoint, defer={A, B})
    p.send(GET)
    p.now += 0.1
    p.connect()
    p.now += 0.2
    p.connect()
    (record,) = p.records
    return p, record


def test_defect_a_head_retried_by_its_status_keeps_its_header_time() -> None:
    # nginx sets a try's header_time once its head parsed (ngx_http_upstream_process_header),
    # before ngx_http_upstream_test_next retries it: "0.100, 0.200", not "-, 0.200".
    p, record = _retried_502()
    assert p.received.startswith(b"HTTP/1.1 200 ")
    sent_a, sent_b = len(p.upstreams[0].raw), len(p.upstreams[1].raw)
    assert sent_a == sent_b > 0
    assert _render(FMT, record) == (
        f"10.0.0.1:8080, 10.0.0.2:8080|502, 200|0.100, 0.200|0.100, 0.200|0.100, 0.200|"
        f"{sent_a}, {sent_b}|{len(BAD)}, {len(ok(b'fine').data)}")


def test_defect_times_and_bytes_with_escape_json_and_none() -> None:
    p, record = _retried_502()
    fmt = ('{"c": "$upstream_connect_time", "h": "$upstream_header_time", '
           '"s": "$upstream_bytes_sent", "r": "$upstream_bytes_received"}')
    n = len(p.upstreams[0].raw)
    doc = json.loads(_render(fmt, record, "json"))
    assert doc == {"c": "0.100, 0.200", "h": "0.100, 0.200", "s": f"{n}, {n}",
                   "r": f"{len(BAD)}, {len(ok(b'fine').data)}"}
    assert _render("$upstream_bytes_received", record, "none") == \
        f"{len(BAD)}, {len(ok(b'fine').data)}"


# --- $upstream_bytes_sent / $upstream_bytes_received ---------------------------------------------


def test_defect_bytes_of_a_streamed_request_body() -> None:
    p = _pair()
    p.send(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n01234")
    p.send(b"56789")
    (record,) = p.records
    (up,) = p.upstreams
    assert up.requests[0][1] == b"0123456789"
    response = ok(b"ok /p").data
    assert _render(BYTES, record) == f"{len(up.raw)}|{len(response)}"


def test_defect_bytes_per_request_on_a_reused_connection() -> None:
    # nginx counts a try's bytes_sent from its connection's ``sent``, which the keepalive
    # module zeroes when it hands a cached connection out (ngx_http_upstream_get_keepalive_peer:
    # "c->sent = 0;"): the second request's own bytes, not the connection's total.
    p = _pair()
    p.send(GET)
    first = len(p.upstreams[0].raw)
    p.send(b"GET /second HTTP/1.1\r\nHost: a.test\r\n\r\n")
    (up,) = p.upstreams
    assert up.uses == 2
    second = len(up.raw) - first
    lines = [_render(BYTES + "|" + TIMES, r) for r in p.records]
    assert lines == [f"{first}|{len(ok(b'ok /p').data)}|0.000|0.000|0.000",
                     f"{second}|{len(ok(b'ok /second').data)}|0.000|0.000|0.000"]


WS_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_defect_bytes_through_a_websocket_tunnel() -> None:
    # ngx_http_upstream_process_upgraded: "if (from_upstream) { u->state->bytes_received +=
    # n; }"; what it writes upstream is the connection's ``sent``.
    p = _pair(app=lambda r, b, u: Reply(WS_101))
    p.send(UPGRADE)
    assert p.tunnels
    assert p.send(b"\x81\x05hello") == b"echo:\x81\x05hello"
    p.eof()
    (record,) = p.records
    (up,) = p.upstreams
    assert up.raw.endswith(b"\x81\x05hello")
    assert _render(BYTES, record) == f"{len(up.raw)}|{len(WS_101) + len(b'echo:') + 7}"
    # (the tunnel's bytes are no part of $upstream_response_length, as in nginx)
    assert _render("$upstream_response_length", record) == "0"


def test_guard_a_local_answer_has_no_upstream_values() -> None:
    p = ProxyPair([Route(path="/only")], ProxySettings(log_format_upstream=FMT))
    p.send(b"GET /elsewhere HTTP/1.1\r\nHost: a.test\r\n\r\n")
    (record,) = p.records
    assert record.status == 404
    assert _render(FMT, record) == "-|-|-|-|-|-|-"
    assert _render(FMT, record, "json") == "||||||"


# --- records built elsewhere, the error page's groups, the unavailable list ----------------------


def _record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = dict(
        method="GET", host="a.test", path="/", query=None, rule_path="/", ingress="d/i",
        service="web", namespace="d", canary=False, status=200, bytes_in=40, bytes_out=80,
        upstreams=(A, B), upstream_status=200, upstream_statuses=(503, 200), start=10.0,
        upstream_connect=10.1, upstream_first_byte=10.2, end=10.5, request_id=None,
        client_ip="203.0.113.7", http_version="1.1", user_agent=None, referer=None,
        upstream_response_length=4)
    base.update(kw)
    return RequestRecord(**base)


def test_guard_a_record_without_the_lists_writes_the_last_try() -> None:
    record = _record(upstream_connect_time=0.004, upstream_header_time=0.02,
                     upstream_response_time=0.4)
    assert _render(TIMES, record) == "0.004|0.020|0.400"
    assert _render(BYTES, record) == "-|-"


def test_defect_the_new_lists_default_to_empty() -> None:
    assert _record().upstream_tries == ()


def test_defect_lists_of_another_length_than_the_tries_fall_back() -> None:
    # (the record's two upstreams, three tries)
    record = _record(upstream_connect_time=0.004,
                     upstream_tries=(UpstreamTry(0.004, None, 1, 0),) * 3)
    assert _render("$upstream_connect_time|$upstream_bytes_sent", record) == "0.004|-"


def test_defect_an_error_page_starts_a_group_after_a_colon() -> None:
    # custom-http-errors (RequestRecord.upstream_redirect): nginx's internal redirect gives
    # the error page's tries states of their own after an empty one, written " : " in every
    # upstream list (ngx_http_upstream_response_time_variable, _bytes_variable alike).
    record = _record(upstream_redirect=1, upstream_response_times=(0.003, 0.5),
                     upstream_tries=(UpstreamTry(0.001, 0.002, 40, 90),
                                     UpstreamTry(None, None, 41, 0)))
    assert _render(FMT, record) == ("10.0.0.1:8080 : 10.0.0.2:8080|503 : 200|0.001 : -|"
                                    "0.002 : -|0.003 : 0.500|40 : 41|90 : 0")


def test_defect_an_error_pages_try_through_the_core() -> None:
    # The intercepted 503's head parsed (its header_time is set, then nginx's
    # proxy_intercept_errors redirects to @custom_...): "0.000 : 0.000", not "- : 0.000".
    unavailable_503 = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
    page = b"HTTP/1.1 404 NF\r\nContent-Length: 4\r\n\r\npage"

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(unavailable_503 if up.endpoint[0] == "10.0.0.1" else page)

    prefix = "nginx.ingress.kubernetes.io/"
    yaml = ingress_yaml("a", "a.test", {prefix + "custom-http-errors": "503",
                                        prefix + "default-backend": "web2"})
    web2 = web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.1.1")
    p = ProxyPair(router=Router(parse_manifests(yaml + web_service_yaml() + web2)), app=app,
                  settings=ProxySettings(log_format_upstream=FMT))
    assert p.send(GET).endswith(b"page")
    record = p.records[-1]
    first, second = (len(u.raw) for u in p.upstreams)
    assert _render(FMT, record) == (
        f"10.0.0.1:80 : 10.0.1.1:80|503 : 404|0.000 : 0.000|0.000 : 0.000|0.000 : 0.000|"
        f"{first} : {second}|{len(unavailable_503)} : {len(page)}")


def test_defect_bytes_variables_are_no_longer_named_unavailable() -> None:
    assert unavailable(BYTES + " $ssl_client_s_dn") == ("ssl_client_s_dn",)


def test_guard_the_default_and_json_access_log_fields_are_unchanged() -> None:
    # (the JSON form writes every key of access_fields: no new keys there)
    fields = access_fields(_record(), NOW, UTC)
    for key in ("upstream_connect_time", "upstream_header_time", "upstream_bytes_sent",
                "upstream_bytes_received"):
        assert key not in fields


# --- $request_completion: "OK" unless the request was terminated --------------------------------
# nginx sets r->request_complete at the end of ngx_http_finalize_request (the response flushed,
# no error); ngx_http_terminate_request (the client closed, timed out, or the connection
# failed) never does: ngx_http_variable_request_completion writes "OK", else an empty value.

RC = "[$status $request_completion]"


def _completion(p: ProxyPair) -> list[str]:
    return [_render(RC, r) for r in p.records]


def test_defect_a_proxied_response_and_local_answers_are_complete() -> None:
    p = ProxyPair([Route(path="/p")], ProxySettings(log_format_upstream=RC))
    p.send(GET)
    p.send(b"GET /none HTTP/1.1\r\nHost: a.test\r\n\r\n")
    p.send(b"GET /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: x\r\n\r\n")
    assert _completion(p) == ["[200 OK]", "[404 OK]", "[400 OK]"]


def test_defect_a_client_gone_before_or_during_the_response_is_not_complete() -> None:
    p = _pair(fmt=RC, app=silent_app)
    p.send(GET)
    p.eof()
    q = _pair(fmt=RC, app=silent_app)
    q.send(GET)
    q.upstream_send(q.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    q.eof()
    # (ngx_http_terminate_request keeps the status of a response begun)
    assert _completion(p) + _completion(q) == ["[499 ]", "[200 ]"]
    assert _render(RC, p.records[0], "json") == "[499 ]"


def test_defect_client_timeouts_and_abort_are_not_complete() -> None:
    # client_body_timeout: ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT) ->
    # terminate; client_header_timeout: ngx_http_close_request; an abort (a stalled client,
    # shutdown): the connection closed under the request.
    body = _pair(fmt=RC)
    body.send(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n01")
    body.fire()
    head = _pair(fmt=RC)
    head.send(b"GET /p HTTP/1.1\r\nHost: a.te")
    head.fire()
    aborted = _pair(fmt=RC, app=silent_app)
    aborted.send(GET)
    done = [a.record for a in aborted.conn.abort(aborted.now) if isinstance(a, RequestDone)]
    assert _completion(body) + _completion(head) == ["[408 ]", "[408 ]"]
    assert [_render(RC, r) for r in done] == ["[000 ]"]


def test_defect_an_upstream_failure_or_cut_is_complete_as_nginx_counts_it() -> None:
    # ngx_http_upstream_finalize_request: before the head, the 502 is a special response
    # (sent whole: complete); after it, "rc = NGX_ERROR; flush = 1;" then "rc =
    # ngx_http_send_special(r, NGX_HTTP_FLUSH);" and ngx_http_finalize_request(r, rc) with
    # that NGX_OK: complete, the body cut short all the same.
    failed = _pair(fmt=RC, refuse={A, B})
    failed.send(GET)
    cut = _pair(fmt=RC, app=silent_app)
    cut.send(GET)
    cut.upstream_send(cut.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
                      close=True)
    assert _completion(failed) + _completion(cut) == ["[502 OK]", "[200 OK]"]


def test_defect_a_websocket_closed_by_either_side_is_complete() -> None:
    # ngx_http_upstream_process_upgraded: either side's EOF -> finalize(r, u, 0): the last
    # buffer sent, complete.
    lines: list[str] = []
    for side in ("client", "upstream"):
        p = _pair(fmt=RC, app=lambda r, b, u: Reply(WS_101))
        p.send(UPGRADE)
        if side == "client":
            p.eof()
        else:
            p.upstream_send(p.upstreams[0], b"", close=True)
        lines += _completion(p)
    assert lines == ["[101 OK]", "[101 OK]"]


def test_guard_a_record_without_the_field_writes_request_completion_unset() -> None:
    assert _render("[$request_completion]", _record()) == "[-]"
    assert _render("[$request_completion]", _record(), "json") == "[]"


def test_defect_request_completion_is_no_longer_named_unavailable() -> None:
    assert unavailable("$request_completion $pipe") == ("pipe",)


def test_the_per_try_lists_are_filled_for_log_format_upstream_only() -> None:
    # Their one reader is log-format-upstream: without a format the core spends nothing on
    # them (as on ``RequestRecord.connection``); the scalars and request_complete stay.
    for fmt, filled in (("", False), ("$status", True)):
        p = _pair(fmt, app=_by_endpoint)
        p.send(GET)
        (record,) = p.records
        assert record.upstreams == (A, B) and record.upstream_statuses == (502, 200)
        assert record.upstream_header_time is not None and record.request_complete is True
        assert len(record.upstream_tries) == (2 if filled else 0)
