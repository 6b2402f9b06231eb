"""Review of the proxy core's upstream side (Q19g): retries, the keep-alive race, replay."""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings

from _proxy_harness import ProxyPair, Route, status_of

H = b"Host: example.test\r\n"
POST = b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
EP = ("10.0.0.1", 80)


@pytest.mark.parametrize("how", ["annotation", "setting"])
def test_stale_pooled_connection_retries_a_post_when_non_idempotent_is_listed(
        how: str) -> None:
    # nginx's ngx_http_upstream_next for a cached connection that fails: "if (u->peer.cached
    # && ft_type == NGX_HTTP_UPSTREAM_FT_ERROR) { u->peer.tries++; }", then "if
    # (u->request_sent && (r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))) {
    # ft_type |= NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT; }": with non_idempotent in
    # proxy_next_upstream the POST goes on (ingress-nginx's balancer picks again, the only
    # endpoint here). Before, the keep-alive race rule retried idempotent methods only and the
    # ordinary rule wants another endpoint: a single-endpoint backend answered 502 to a POST
    # whose pooled connection the upstream had just closed.
    if how == "annotation":
        pair = ProxyPair([Route("/", endpoints=[EP], annotations={
            "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout non_idempotent"})])
    else:
        pair = ProxyPair([Route("/", endpoints=[EP])], ProxySettings(retry_non_idempotent=True))
    assert status_of(pair.send(POST)) == 200
    pair.upstreams[0].closed = True  # the upstream closed the idle connection meanwhile
    out = pair.send(POST)
    assert status_of(out) == 200
    assert pair.opens[-1].pooled is False and len(pair.upstreams) == 2
    assert pair.upstreams[1].requests[0][1] == b"abc"
    rec = pair.records[-1]
    assert rec.upstreams == (EP, EP) and rec.upstream_statuses == (502, 200)


def test_stale_pooled_connection_does_not_resend_a_post_by_default() -> None:
    # The default conditions ("error timeout"): nginx adds the NON_IDEMPOTENT bit to a sent
    # POST and does not retry it; neither do we (502, the POST written once).
    pair = ProxyPair([Route("/", endpoints=[EP])])
    assert status_of(pair.send(POST)) == 200
    pair.upstreams[0].closed = True
    assert status_of(pair.send(POST)) == 502
    assert len(pair.upstreams) == 1 and len(pair.opens) == 2
    assert pair.records[-1].upstream_statuses == (502,)


GET = b"GET /g HTTP/1.1\r\n" + H + b"\r\n"


@pytest.mark.parametrize(("conditions", "retried"), [
    ("error timeout", True), ("error", True), ("off", False), ("timeout http_502", False),
])
def test_stale_pooled_connection_follows_proxy_next_upstream(conditions: str,
                                                             retried: bool) -> None:
    # nginx counts the cached connection's failure as no try but still asks the location's
    # mask (ngx_http_upstream_next: "((u->conf->next_upstream & ft_type) != ft_type)"), so
    # with `proxy-next-upstream: off`, or a list without `error`, the GET whose pooled
    # connection the upstream had just closed answers 502 (session 34's x18 noticed the
    # retry ran under `off`; session 35).
    pair = ProxyPair([Route("/", endpoints=[EP], annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": conditions})])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True
    out = pair.send(GET)
    assert status_of(out) == (200 if retried else 502)
    assert len(pair.upstreams) == (2 if retried else 1)
    assert pair.records[-1].upstream_statuses == ((502, 200) if retried else (502,))
