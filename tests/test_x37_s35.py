"""Session 35's review of the lead's small changes (x37): what the keep-alive race retry
(7a3ab68) and the auth-keepalive pool do under ``proxy-next-upstream``, checked against nginx.

- ``ngx_http_upstream_next`` (src/http/ngx_http_upstream.c): a cached connection's
  ``NGX_HTTP_UPSTREAM_FT_ERROR`` gives its try back (``u->peer.tries++``), then the same test as
  any failure: ``(u->conf->next_upstream & ft_type) != ft_type`` or ``timeout &&
  ngx_current_msec - u->peer.start_time >= timeout`` finalizes with the 502. The mask had a test
  (tests/test_review_s19g.py); the time budget is tested here.
- The auth subrequest runs in its own location (ingress-nginx nginx.tmpl ``location =
  {{ $authPath }}``), which sets no ``proxy_next_upstream*``, nor does the ``http`` or ``server``
  block: nginx's defaults apply there (``error timeout``, no time limit), whatever the route's
  ``proxy-next-upstream`` says. So the auth pool's retry of a connection the auth service closed
  while idle follows no route setting, in the core as in IngressASGI.

- serve's warning of an object of a misspelt kind (a009aaa) is one of the table's notes: logged
  once, not again at each reload that keeps it, again once it comes back after a fix.

(setup.py's stale ``.c`` check: tests/test_packaging.py.)
"""

from __future__ import annotations

import logging

import h11
import pytest

from ingresslib import RouteTable, parse_manifests
from ingresslib._serve_notes import _log_fresh_notes, _LoggedNotes, _table_notes

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

P = "nginx.ingress.kubernetes.io/"
H = b"Host: example.test\r\n"
EP = ("10.0.0.1", 80)
AUTH = ("10.5.0.1", 4180)


def _answer_first_only(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
    # A backend that answers /first and leaves /slow waiting (the test closes the connection).
    return ok() if request.target == b"/first" else None


@pytest.mark.parametrize(("waited", "retried"), [(2.0, True), (3.0, False), (5.0, False)])
def test_keepalive_race_retry_stops_at_the_next_upstream_timeout(waited: float,
                                                                 retried: bool) -> None:
    """A GET sent on a pooled connection that the upstream closes, unanswered, ``waited``
    seconds later: within ``proxy-next-upstream-timeout`` it goes once more on a fresh
    connection; once the budget is spent (``>=``, nginx's test) it is answered 502, not
    retried, though a cached connection's failure counts as no try."""
    pair = ProxyPair([Route("/", endpoints=[EP], annotations={
        P + "proxy-next-upstream-timeout": "3"})], app=_answer_first_only)
    assert status_of(pair.send(b"GET /first HTTP/1.1\r\n" + H + b"\r\n")) == 200
    out = pair.send(b"GET /slow HTTP/1.1\r\n" + H + b"\r\n")
    assert out == b"" and len(pair.upstreams) == 1  # sent on the pooled connection
    pair.now += waited
    out = pair.upstream_send(pair.upstreams[0], b"", close=True)
    if retried:
        # The retry's upstream holds /slow unanswered, as the first one did.
        assert out == b"" and len(pair.upstreams) == 2
        assert [o.pooled for o in pair.opens] == [True, True, False]
        assert pair.upstreams[1].requests[0][0].target == b"/slow"
    else:
        assert status_of(out) == 502 and len(pair.upstreams) == 1
        assert pair.records[-1].upstream_statuses == (502,)


OK_AUTH = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _auth_pair(annotations: dict[str, str]) -> ProxyPair:
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
        return Reply(OK_AUTH) if up.endpoint == AUTH else ok(b"backend " + request.target)
    return ProxyPair([Route(endpoints=[EP], annotations={
        P + "auth-url": f"http://{AUTH[0]}:{AUTH[1]}/auth", P + "auth-keepalive": "4",
        **annotations})], app=app)


@pytest.mark.parametrize("conditions", ["off", "timeout http_502"])
def test_auth_keepalive_retry_is_not_the_routes_proxy_next_upstream(conditions: str) -> None:
    """The route's ``proxy-next-upstream`` (``off``, or a list without ``error``) stops the
    backend's keep-alive race retry (7a3ab68), not the auth subrequest's: the auth location
    keeps nginx's default ``error timeout``. A pooled auth connection the auth service closed
    while idle carries the subrequest once more on a new connection; the request gets through."""
    pair = _auth_pair({P + "proxy-next-upstream": conditions})
    assert status_of(pair.send(b"GET /1 HTTP/1.1\r\n" + H + b"\r\n")) == 200
    [pooled] = pair.pool[AUTH]
    pooled.closed = True
    out = pair.send(b"GET /2 HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200 and out.endswith(b"backend /2")
    assert [o.pooled for o in pair.opens if o.endpoint == AUTH] == [True, True, False]


_WEB = """\
apiVersion: networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
spec:
  rules:
  - host: {name}.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""
MISSPELT = ("Ingres default/old: kind Ingres is not read (did you mean Ingress?); the object "
            "is ignored")


def test_misspelt_kind_warning_is_logged_once_across_reloads(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each reload works out the table's notes again (``_table_notes``) and logs the fresh ones
    (``_log_fresh_notes``): files edited elsewhere keep the misspelt object, whose warning is
    not said again; fixed, then misspelt again, it is."""
    caplog.set_level(logging.INFO, logger="ingresslib.serve")
    logged = _LoggedNotes()

    def reload(*kinds_names: tuple[str, str]) -> int:
        res = parse_manifests("---\n".join(_WEB.format(kind=k, name=n) for k, n in kinds_names))
        caplog.clear()
        _log_fresh_notes(_table_notes((RouteTable.build(res), ()), res, ["deploy/"]), logged)
        return [r.getMessage() for r in caplog.records].count(MISSPELT)

    assert reload(("Ingres", "old"), ("Ingress", "a")) == 1
    assert reload(("Ingres", "old"), ("Ingress", "b")) == 0   # another edit: not again
    assert reload(("Ingres", "old"), ("Ingress", "c")) == 0
    assert reload(("Ingress", "old"), ("Ingress", "c")) == 0  # fixed
    assert reload(("Ingres", "old"), ("Ingress", "c")) == 1   # back: said again
