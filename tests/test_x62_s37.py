"""Session 37 (x62): an explicit ``proxy-request-buffering: "off"`` as nginx's.

ingresslib's default streams a request body and keeps a copy (up to 1 MiB) that a retry sends
again, standing in for ingress-nginx's default "on". An explicit "off" (the annotation, or the
ConfigMap key) is nginx's ``proxy_request_buffering off``: ngx_http_proxy_handler sets
``r->request_body_no_buffering``, which ngx_http_read_client_request_body clears when there is
no body ("content_length_n < 0 && !chunked"), when the whole body was pre-read ("rb->rest == 0
&& rb->last_saved": an empty one too) or read at once (``done:`` "if (rc == NGX_OK) {
r->request_body_no_buffering = 0; }"); else ngx_http_upstream_next and
ngx_http_upstream_test_next refuse the next server once "u->request_sent &&
r->request_body_no_buffering" (``request_sent``: the request began to be written upstream),
whatever the method or the condition.
"""

from __future__ import annotations

from typing import Any, Callable

import h11

from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy._annotations import PREFIX, parse_route_options
from tests._proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

_EPS = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
_RETRY_502 = {PREFIX + "proxy-next-upstream": "error timeout http_502"}
_OFF = {PREFIX + "proxy-request-buffering": "off"}
_HEAD = b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"


def _first_fails(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    """The first endpoint answers 502 once it has the whole request; the second 200."""
    if up.endpoint == _EPS[0]:
        return Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    return ok(b"got " + body)


def _closes_first(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    """The first endpoint closes without an answer (an ``error``); the second 200."""
    if up.endpoint == _EPS[0]:
        return Reply(b"", close=True)
    return ok(b"got " + body)


def _pair(annotations: dict[str, str], settings: ProxySettings | None = None,
          app: Callable[[h11.Request, bytes, FakeUpstream], Reply | None] = _first_fails,
          **kw: Any) -> ProxyPair:
    return ProxyPair([Route("/", endpoints=list(_EPS), annotations=annotations)], settings,
                     app=app, **kw)


def _streamed(p: ProxyPair) -> bytes:
    """A PUT whose body comes after the upstream was sent the request (still arriving)."""
    out = p.send(_HEAD)
    return out + p.send(b"hello")


def _tried(p: ProxyPair) -> list[tuple[str, int]]:
    return [up.endpoint for up in p.upstreams]


# -- the defect: an explicit "off" replayed a body nginx does not send again ------------------

def test_defect_annotation_off_no_retry_once_a_streamed_body_was_sent() -> None:
    p = _pair({**_RETRY_502, **_OFF})
    out = _streamed(p)
    assert status_of(out) == 502
    assert _tried(p) == [_EPS[0]]
    assert p.records[-1].status == 502


def test_defect_configmap_off_no_retry_once_a_streamed_body_was_sent() -> None:
    settings = parse_config_data({"proxy-request-buffering": "off"}).settings
    p = _pair(_RETRY_502, settings)
    out = _streamed(p)
    assert status_of(out) == 502
    assert _tried(p) == [_EPS[0]]


def test_defect_explicit_off_an_error_after_the_send_is_not_retried() -> None:
    p = _pair(_OFF, app=_closes_first)
    out = _streamed(p)
    assert status_of(out) == 502
    assert _tried(p) == [_EPS[0]]


# -- what stays: the default's replay, and what nginx still retries under "off" ---------------

def test_guard_default_replays_the_streamed_body() -> None:
    p = _pair(_RETRY_502)
    out = _streamed(p)
    assert status_of(out) == 200 and out.endswith(b"got hello")
    assert _tried(p) == _EPS
    assert p.upstreams[1].requests[0][1] == b"hello"


def test_guard_invalid_annotation_is_the_default() -> None:
    # proxy/main.go: an invalid value takes the ConfigMap's (here ingresslib's default).
    p = _pair({**_RETRY_502, PREFIX + "proxy-request-buffering": "Off"})
    assert status_of(_streamed(p)) == 200
    assert _tried(p) == _EPS


def test_defect_annotation_off_over_a_configmap_on() -> None:
    p = _pair({**_RETRY_502, **_OFF}, ProxySettings(proxy_request_buffering="on"))
    assert status_of(_streamed(p)) == 502
    assert _tried(p) == [_EPS[0]]


def test_guard_explicit_off_without_a_body_retries() -> None:
    # No Content-Length, not chunked: "r->request_body_no_buffering = 0".
    p = _pair({**_RETRY_502, **_OFF})
    out = p.send(b"GET /up HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 200
    assert _tried(p) == _EPS


def test_guard_explicit_off_an_empty_body_retries() -> None:
    # Content-Length: 0: "rb->rest == 0 && rb->last_saved", the whole (empty) body pre-read.
    p = _pair({**_RETRY_502, **_OFF})
    out = p.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert status_of(out) == 200
    assert _tried(p) == _EPS


def test_guard_explicit_off_a_body_whole_before_the_send_retries() -> None:
    # The body came with the head: read whole at once, "rc == NGX_OK" clears
    # request_body_no_buffering: buffered as with "on", sent again.
    p = _pair({**_RETRY_502, **_OFF})
    out = p.send(_HEAD + b"hello")
    assert status_of(out) == 200 and out.endswith(b"got hello")
    assert _tried(p) == _EPS


def test_guard_explicit_off_a_refused_connect_retries() -> None:
    # Nothing was written to the refused endpoint (u->request_sent is 0): the next one is tried,
    # and gets the body held meanwhile and the rest.
    p = _pair({**_RETRY_502, **_OFF}, refuse=[_EPS[0]])
    out = _streamed(p)
    assert status_of(out) == 200 and out.endswith(b"got hello")
    assert [o.endpoint for o in p.opens] == _EPS


def test_defect_explicit_off_any_method() -> None:
    # ``request_sent && request_body_no_buffering`` whatever the method: a POST with
    # non_idempotent listed is not retried either.
    p = _pair({PREFIX + "proxy-next-upstream": "error timeout http_502 non_idempotent", **_OFF})
    p.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    assert status_of(p.send(b"hello")) == 502
    assert _tried(p) == [_EPS[0]]


# -- the three values, parsed -------------------------------------------------------------------

def _mode(annotations: dict[str, str], settings: ProxySettings | None = None
          ) -> tuple[bool, bool]:
    opts = parse_route_options(annotations, "/", settings or ProxySettings(), where="ing")
    return opts.request_buffering, opts.request_buffering_off


def test_route_options_three_values() -> None:
    configmap_off = parse_config_data({"proxy-request-buffering": "off"}).settings
    assert configmap_off.proxy_request_buffering == "off"  # the public value as before
    assert not configmap_off.replay_streamed_body
    assert ProxySettings().replay_streamed_body
    assert parse_config_data({"proxy-request-buffering": "on"}).settings.replay_streamed_body
    assert _mode({}) == (False, False)  # the default: streamed, replayed
    assert _mode(_OFF) == (False, True)
    assert _mode({PREFIX + "proxy-request-buffering": " off "}) == (False, True)  # trimmed
    assert _mode({PREFIX + "proxy-request-buffering": "Off"}) == (False, False)
    assert _mode({}, configmap_off) == (False, True)
    assert _mode({PREFIX + "proxy-request-buffering": "on"}, configmap_off) == (True, False)
    assert _mode(_OFF, ProxySettings(proxy_request_buffering="on")) == (False, True)
    assert _mode({}, ProxySettings(proxy_request_buffering="on")) == (True, False)


def test_defect_explicit_off_no_keepalive_race_retry_once_sent() -> None:
    # A pooled connection the upstream closed as it was reused: nginx's ngx_http_upstream_next
    # ("u->peer.tries++" for a cached peer) still finalizes on "u->request_sent &&
    # r->request_body_no_buffering": 502, no fresh connection.
    p = _pair(_OFF, app=lambda rq, body, up: ok(b"got " + body))
    assert status_of(p.send(_HEAD + b"first")) == 200
    p.pool[_EPS[0]][0].closed = True  # closed while idle in the pool
    out = _streamed(p)
    assert status_of(out) == 502
    assert len(p.opens) == 2  # the first request's and the reused one: no third connect
    # Without the annotation the race is retried on a fresh connection (the body replayed).
    q = _pair({}, app=lambda rq, body, up: ok(b"got " + body))
    assert status_of(q.send(_HEAD + b"first")) == 200
    q.pool[_EPS[0]][0].closed = True
    assert _streamed(q).endswith(b"got hello") and len(q.opens) == 3


def test_defect_annotation_through_a_real_router() -> None:
    from ingresslib import Router, parse_manifests
    from tests._proxy_harness import ingress_yaml, web_service_yaml

    docs = ingress_yaml("up", "a", {**_RETRY_502, **_OFF}) + web_service_yaml(2)
    p = ProxyPair(router=Router(parse_manifests(docs)), app=_first_fails_80)
    assert status_of(_streamed(p)) == 502
    assert len(p.upstreams) == 1


def _first_fails_80(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    if up.endpoint == ("10.0.0.1", 80):
        return Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    return ok(b"got " + body)
