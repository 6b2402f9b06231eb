"""Session 37 (x63): review of x62's explicit ``proxy-request-buffering: "off"``.

x62 made an explicit "off" nginx's ``proxy_request_buffering off``: a request first written
upstream while its body still arrives is not retried (``u->request_sent &&
r->request_body_no_buffering``). What this module adds:

* the defect: a location with ``mirror-target`` (and ``mirror-request-body`` on, the default)
  is buffered in nginx whatever ``proxy_request_buffering`` says. ngx_http_mirror_module.c's
  ``ngx_http_mirror_handler`` (precontent phase, before the proxy's content handler) reads
  the whole body first (``ngx_http_read_client_request_body(r,
  ngx_http_mirror_body_handler)``), so when ngx_http_proxy_handler asks for it,
  ngx_http_read_client_request_body finds ``r->request_body`` and clears
  ``r->request_body_no_buffering`` ("if (r != r->main || r->request_body || r->discard_body)
  { r->request_body_no_buffering = 0; ...}"): such a request is retried. x62 refused it.
  Now ``_request_buffer.no_buffering`` reads it from the options the request has (a host's
  default backend takes the server's mirror: ``_actions._with_server_location``).
* guards for what x62 left as it was: canary traffic takes its main rule's mode
  (controller.go ``createServers``: "Ingress %v is marked as Canary, ignoring": a canary has
  no location of its own, its upstream joins the main's), the mode of the head's options (a
  ConfigMap change meanwhile binds the next request), a ``ProxySettings`` built by hand with
  ``proxy_request_buffering="off"`` is ingresslib's default (the field cannot tell a given
  "off" from its default; ``replay_streamed_body=False`` is nginx's "off"), the custom error
  page still gets the body; ``proxy-http-version: "1.0"`` with a chunked body is the 411
  before any try, as before;
* ``explain`` shows the mode where it is not ingresslib's default (``proxy_request_buffering``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import h11

import ingresslib
from ingresslib import Router, parse_manifests
from ingresslib._explain import render_text
from ingresslib.proxy import Mirror, ProxySettings, parse_config_data
from ingresslib.proxy._annotations import PREFIX, parse_route_options
from ingresslib.proxy._request_buffer import no_buffering
from tests._proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                                  service_yaml, status_of)

_EPS = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
_RETRY_502 = {PREFIX + "proxy-next-upstream": "error timeout http_502"}
_OFF = {PREFIX + "proxy-request-buffering": "off"}
_MIRROR = {PREFIX + "mirror-target": "http://10.9.9.9$request_uri"}
_HEAD = b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"


def _first_try_fails() -> Any:
    """An app whose first request (whichever endpoint gets it) is answered 502, the next
    ones 200 with the body they got."""
    seen: list[bytes] = []

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        seen.append(body)
        if len(seen) == 1:
            return Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        return ok(b"got " + body)
    return app


class _MirrorPair(ProxyPair):
    """The harness, keeping the ``Mirror`` actions (``mirrors``) it does not know."""

    mirrors: list[Mirror]

    def _perform(self, actions: list[Any], events: list[Callable[[], list[Any]]]) -> None:
        if not hasattr(self, "mirrors"):
            self.mirrors = []
        self.mirrors += [a for a in actions if type(a) is Mirror]
        super()._perform([a for a in actions if type(a) is not Mirror], events)


def _pair(annotations: dict[str, str], settings: ProxySettings | None = None,
          **kw: Any) -> _MirrorPair:
    return _MirrorPair([Route("/", endpoints=list(_EPS), annotations=annotations)], settings,
                     app=_first_try_fails(), **kw)


def _streamed(p: ProxyPair, head: bytes = _HEAD) -> bytes:
    """A request whose body comes after the upstream was sent the request."""
    out = p.send(head)
    return out + p.send(b"hello")


# -- the defect: a mirrored location reads the body whole first ----------------------------------

def test_defect_mirror_with_its_body_under_off_retries() -> None:
    p = _pair({**_RETRY_502, **_OFF, **_MIRROR})
    out = _streamed(p)
    assert status_of(out) == 200 and out.endswith(b"got hello")
    assert len(p.upstreams) == 2
    assert p.upstreams[1].requests[0][1] == b"hello"
    assert len(p.mirrors) == 1 and p.mirrors[0].data.endswith(b"hello")


def test_defect_mirror_read_from_the_requests_options() -> None:
    # The given "off" stays the location's (``request_buffering_off``); the mirror of the body
    # is read from the options the request has (``no_buffering``): a host's default backend
    # takes the server's mirror and its own Ingress's buffering (``_with_server_location``).
    mirrored = parse_route_options({**_OFF, **_MIRROR}, "/", ProxySettings())
    assert mirrored.request_buffering_off and not no_buffering(mirrored)
    configmap_off = parse_config_data({"proxy-request-buffering": "off"}).settings
    assert not no_buffering(parse_route_options(_MIRROR, "/", configmap_off))
    plain = parse_route_options(_OFF, "/", ProxySettings())
    assert no_buffering(plain)
    assert not no_buffering(dataclasses.replace(plain, mirror=mirrored.mirror))
    assert no_buffering(dataclasses.replace(mirrored, mirror=None))
    bodiless = parse_route_options({**_MIRROR, PREFIX + "mirror-request-body": "off"}, "/",
                                   configmap_off)
    assert no_buffering(bodiless)


def test_guard_mirror_without_its_body_under_off_is_not_retried() -> None:
    # mirror-request-body "off": ngx_http_mirror_handler reads nothing, the proxy's
    # no-buffering stands.
    p = _pair({**_RETRY_502, **_OFF, **_MIRROR, PREFIX + "mirror-request-body": "off"})
    assert status_of(_streamed(p)) == 502
    assert len(p.upstreams) == 1 and len(p.mirrors) == 1


# -- canary traffic: the main rule's location -----------------------------------------------------

def _canary_pair(main: dict[str, str], canary: dict[str, str]) -> ProxyPair:
    docs = (ingress_yaml("up", "a", main)
            + ingress_yaml("up-canary", "a", {PREFIX + "canary": "true",
                                              PREFIX + "canary-by-header": "X-Canary",
                                              **canary}, service="cnr")
            + service_yaml("web", ["10.0.0.1"])
            + service_yaml("cnr", ["10.0.1.1", "10.0.1.2"]))
    return ProxyPair(router=Router(parse_manifests(docs), seed=0), app=_first_try_fails())


_CANARY_HEAD = b"PUT /up HTTP/1.1\r\nHost: a\r\nX-Canary: always\r\nContent-Length: 5\r\n\r\n"


def test_guard_canary_traffic_takes_the_main_rules_off() -> None:
    p = _canary_pair({**_RETRY_502, **_OFF}, {})
    assert status_of(_streamed(p, _CANARY_HEAD)) == 502
    assert len(p.upstreams) == 1 and p.upstreams[0].endpoint[0] in ("10.0.1.1", "10.0.1.2")


def test_guard_a_canarys_own_off_is_ignored() -> None:
    p = _canary_pair(_RETRY_502, _OFF)
    out = _streamed(p, _CANARY_HEAD)
    assert status_of(out) == 200 and out.endswith(b"got hello")
    assert sorted(up.endpoint[0] for up in p.upstreams) == ["10.0.1.1", "10.0.1.2"]


# -- what binds a request, and a ProxySettings built by hand --------------------------------------

def test_guard_a_configmap_change_binds_the_next_request() -> None:
    # The head's options decide (nginx: a reload's old worker finishes the request).
    off = parse_config_data({"proxy-request-buffering": "off",
                             "proxy-next-upstream": "error timeout http_502"}).settings
    p = _pair({}, off, defer=[_EPS[0]])
    p.send(_HEAD)
    p.proxy.settings = ProxySettings(proxy_next_upstream=("error", "timeout", "http_502"))
    p.connect()
    assert status_of(p.send(b"hello")) == 502
    assert len(p.upstreams) == 1


def test_guard_hand_built_off_is_the_default_replay() -> None:
    # ProxySettings(proxy_request_buffering="off") is the field's default value: ingresslib's
    # default (replayed up to 1 MiB); replay_streamed_body=False is nginx's "off".
    p = _pair(_RETRY_502, ProxySettings(proxy_request_buffering="off"))
    assert status_of(_streamed(p)) == 200 and len(p.upstreams) == 2
    q = _pair(_RETRY_502, ProxySettings(replay_streamed_body=False))
    assert status_of(_streamed(q)) == 502 and len(q.upstreams) == 1


# -- explain ----------------------------------------------------------------------------------

def _explain(annotations: dict[str, str], settings: ProxySettings | None = None
             ) -> dict[str, Any]:
    res = parse_manifests(ingress_yaml("up", "a.test", annotations) + service_yaml("web",
                                                                                ["10.0.0.1"]))
    return ingresslib.explain(res, "http://a.test/x", method="PUT", settings=settings)


def test_explain_shows_the_mode_when_not_the_default() -> None:
    off = _explain(_OFF)
    assert off["proxy_request_buffering"] == "off"
    assert ("     proxy-request-buffering off: a request sent upstream while its body still "
            "arrives is not retried") in render_text(off)
    on = _explain({PREFIX + "proxy-request-buffering": "on"})
    assert on["proxy_request_buffering"] == "on"
    assert ("     proxy-request-buffering on: the body is read whole before the upstream is "
            "opened, and sent with its Content-Length") in render_text(on)
    configmap_off = parse_config_data({"proxy-request-buffering": "off"}).settings
    assert _explain({}, configmap_off)["proxy_request_buffering"] == "off"
    plain = _explain({})
    assert "proxy_request_buffering" not in plain
    assert "proxy-request-buffering" not in render_text(plain)
    # A mirrored location is buffered by the mirror in nginx (its retries as the default's).
    assert "proxy_request_buffering" not in _explain({**_OFF, **_MIRROR})


# -- custom-http-errors: the error page still gets the body ---------------------------------------

def test_guard_the_error_page_gets_the_body_under_off() -> None:
    # nginx's named location reads the body the request has (ngx_http_read_client_request_body:
    # "r->request_body" set, no-buffering cleared); ingresslib keeps the body (up to 1 MiB)
    # for the error page, not for a retry (``Unbuffered``).
    from tests.test_custom_errors_s25 import ANN, ERR, _app, _docs

    p = ProxyPair(router=Router(parse_manifests(_docs({**ANN, **_OFF}))), app=_app(404))
    p.send(b"PUT /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n")
    out = p.send(b"hello")
    assert status_of(out) == 418 and out.endswith(b"error page PUT / hello")
    assert [up.endpoint for up in p.upstreams][-1] == ERR


# -- proxy-http-version "1.0" and a chunked body ---------------------------------------------------

def test_guard_http_10_chunked_under_off_is_the_411_before_any_try() -> None:
    # nginx's ngx_http_proxy_handler sets no-buffering only "(!r->headers_in.chunked ||
    # plcf->http_version == NGX_HTTP_VERSION_11)": such a body is buffered there (and a retry
    # sends it again); ingresslib holds none and answers 411 (README's divergence), before any
    # upstream: the explicit "off" changes nothing.
    p = _pair({**_RETRY_502, **_OFF, PREFIX + "proxy-http-version": "1.0"})
    out = p.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert status_of(out) == 411 and not p.opens
