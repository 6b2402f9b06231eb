"""Review of what the proxy answers itself (session 20, Q20a): redirect Locations, app-root,
from-to-www-redirect, the answers before routing.

A redirect's Location is built from the request's target and query where ingress-nginx writes
``$request_uri``: those parts must reach the client byte for byte (percent-encoded where a
header cannot carry them), never re-encoded, and never steer the client to another host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from _asgi_call import asgi_get
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, location, status_of
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests

A = "nginx.ingress.kubernetes.io/"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _asgi(*docs: str, **kw: Any) -> IngressASGI:
    router = Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML))
    return IngressASGI(router, backends={"default/web": _app}, **kw)


def _get(asgi: IngressASGI, host: bytes, path: str, query: bytes) -> tuple[int, bytes | None]:
    """One GET through ``asgi`` as an ASGI server hands it over (``raw_path`` and
    ``query_string`` as the bytes received): status and Location."""
    status, headers = asgi_get(asgi, host.decode("ascii"), path, query)
    return status, headers.get(b"location")


# A UTF-8 "é" in the query, as httptools (uvicorn's default parser) passes it: raw bytes.
QUERY = b"x=\xc3\xa9&y=1"
QUERY_ESCAPED = b"x=%C3%A9&y=1"


# -- the Location keeps the query's bytes (ASGI) -----------------------------------------------


def test_asgi_ssl_redirect_keeps_query_bytes() -> None:
    """Before: the adapter's latin-1 text of the query was encoded as UTF-8, each byte over
    0x7F written as two: ``?x=\\xc3\\x83\\xc2\\xa9`` (a client following it asks for
    ``x=Ã©``)."""
    asgi = _asgi(ingress_yaml("a", "h.test", {A + "force-ssl-redirect": "true"}))
    assert _get(asgi, b"h.test", "/p", QUERY) == (308, b"https://h.test/p?" + QUERY_ESCAPED)


def test_asgi_ssl_redirect_of_unrouted_path_keeps_query_bytes() -> None:
    """The same Location for a path no rule of the TLS host covers (the server's ``location
    /``, ``RouteOptionsSource._unrouted_answer``)."""
    asgi = _asgi(ingress_yaml("a", "h.test", path="/api"), tls_hosts={"h.test"})
    assert _get(asgi, b"h.test", "/other", QUERY) == (
        308, b"https://h.test/other?" + QUERY_ESCAPED)


def test_asgi_rewrite_target_url_redirect_with_non_ascii_query() -> None:
    """Before: ``location.encode("ascii")`` raised UnicodeEncodeError out of the adapter (the
    ASGI server's 500) for a rewrite-target URL whose request had such a query."""
    asgi = _asgi(ingress_yaml("a", "h.test", {A + "rewrite-target": "https://o.test/n"}))
    assert _get(asgi, b"h.test", "/p", QUERY) == (302, b"https://o.test/n?" + QUERY_ESCAPED)


def test_asgi_www_twin_redirect_keeps_query_bytes() -> None:
    """Before: the www twin's Location re-encoded the query as the ssl-redirect's did."""
    asgi = _asgi(ingress_yaml("a", "h.test", {A + "from-to-www-redirect": "true"}))
    assert _get(asgi, b"www.h.test", "/p", QUERY) == (308, b"http://h.test/p?" + QUERY_ESCAPED)


def test_asgi_ascii_query_unchanged() -> None:
    """Printable ASCII passes as it came, ``%`` escapes and all (no second encoding)."""
    asgi = _asgi(ingress_yaml("a", "h.test", {A + "force-ssl-redirect": "true"}))
    query = b"a=%C3%A9&b=%2F/?c=~!$'()*+,;="
    assert _get(asgi, b"h.test", "/p", query) == (308, b"https://h.test/p?" + query)


_QUERY_BYTES = st.binary(max_size=40).filter(lambda b: b"#" not in b)


@given(query=_QUERY_BYTES)
def test_asgi_redirect_location_is_the_query_percent_encoded(query: bytes) -> None:
    """Property: whatever bytes the query holds, the Location is printable ASCII, names the
    host, and its query is the request's once percent-decoding is applied to both (the same
    URI); a printable-ASCII query comes back unchanged."""
    for asgi, want_status, prefix in _REDIRECTING:
        status, loc = _get(asgi, b"h.test" if prefix != b"http://h.test/p" else b"www.h.test",
                           "/p", query)
        assert status == want_status
        assert loc is not None and all(0x21 <= b <= 0x7E for b in loc)
        if not query:
            assert loc == prefix
            continue
        assert loc.startswith(prefix + b"?")
        got = loc[len(prefix) + 1:]
        want = query
        if want.endswith(b"/") and prefix != b"https://o.test/n":
            want = want[:-1]  # one final "/" of $request_uri dropped (lua_ingress.lua)
        assert unquote_to_bytes(got) == unquote_to_bytes(want)
        if all(0x21 <= b <= 0x7E for b in want):
            assert got == want


_REDIRECTING = [
    (_asgi(ingress_yaml("a", "h.test", {A + "force-ssl-redirect": "true"})), 308,
     b"https://h.test/p"),
    (_asgi(ingress_yaml("a", "h.test", {A + "rewrite-target": "https://o.test/n"})), 302,
     b"https://o.test/n"),
    (_asgi(ingress_yaml("a", "h.test", {A + "from-to-www-redirect": "true"})), 308,
     b"http://h.test/p"),
]


# -- no Location built from client input names another host (proxy core) -----------------------

_PCHARS = "abcXYZ019-._~!$&'()*+,;=:@%/\\"
_TARGETS = st.text(alphabet=_PCHARS, max_size=30).map(lambda t: "/" + t)
_QUERIES = st.none() | st.text(alphabet=_PCHARS + "?", max_size=20)


def _pair(annotations: dict[str, str], host: str = "h.test", **kw: Any) -> ProxyPair:
    router = Router(parse_manifests(ingress_yaml("a", host, annotations) + WEB_SERVICE_YAML))
    return ProxyPair(router=router, **kw)


@given(target=_TARGETS, query=_QUERIES)
def test_ssl_redirect_location_stays_on_the_host(target: str, query: str | None) -> None:
    """Property: the ssl-redirect's Location is ``https://`` + the Host + the target as sent
    (``//evil.test/`` included: a path on this host, never a network-path reference), one
    final ``/`` dropped; a target the proxy refuses is a 400, never a redirect elsewhere."""
    p = _pair({A + "force-ssl-redirect": "true"})
    uri = target if query is None else f"{target}?{query}"
    out = p.send(b"GET %s HTTP/1.1\r\nHost: h.test\r\n\r\n" % uri.encode("ascii"))
    if status_of(out) == 400:
        return
    assert status_of(out) == 308
    loc = location(out)
    assert loc is not None
    want = uri[:-1] if uri.endswith("/") else uri
    assert loc == b"https://h.test" + want.encode("ascii")
    parts = urlsplit(loc.decode("ascii").replace("\\", "/"))
    assert (parts.scheme, parts.netloc) == ("https", "h.test")


@given(target=_TARGETS)
def test_www_twin_location_stays_on_the_host(target: str) -> None:
    """The www twin's Location: the rule host + the target as sent, whatever the target."""
    p = _pair({A + "from-to-www-redirect": "true"})
    out = p.send(b"GET %s HTTP/1.1\r\nHost: www.h.test\r\n\r\n" % target.encode("ascii"))
    if status_of(out) == 400:
        return
    assert status_of(out) == 308
    loc = location(out)
    assert loc is not None
    parts = urlsplit(loc.decode("ascii").replace("\\", "/"))
    assert (parts.scheme, parts.netloc) == ("http", "h.test")


# -- from-to-www-redirect: only an Ingress whose path makes a location asks ---------------------

WWW = {A + "from-to-www-redirect": "true"}
OLD, NEW = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"


def _twin_status(*docs: str) -> tuple[int, bytes | None]:
    router = Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML))
    out = ProxyPair(router=router).send(b"GET /x HTTP/1.1\r\nHost: www.h.test\r\n\r\n")
    return status_of(out), location(out)


def test_www_twin_not_asked_by_a_duplicate_rule() -> None:
    """Before: the newer Ingress's ``/api`` (the older one's duplicate, which routes nothing)
    made ``www.h.test`` redirect. ingress-nginx's getBackendServers keeps the older location
    ("Location %q already configured") and never reaches "server.RedirectFromToWWW = true"
    for it: no twin server, so ``www.h.test`` is the default server's 404."""
    assert _twin_status(ingress_yaml("a", "h.test", path="/api", created=OLD),
                        ingress_yaml("b", "h.test", WWW, path="/api", created=NEW)) == (404, None)


def test_www_twin_asked_by_a_path_that_makes_a_location() -> None:
    """The same Ingress with one path of its own, a ``/`` replacing the server's root
    location, or the same path with another type: each makes a location, so it asks."""
    for b in (ingress_yaml("b", "h.test", WWW, path="/api", created=NEW, extra_paths=("/b",)),
              ingress_yaml("b", "h.test", WWW, path="/", created=NEW)):
        assert _twin_status(ingress_yaml("a", "h.test", path="/api", created=OLD), b) == (
            308, b"http://h.test/x")
    exact = ingress_yaml("a", "h.test", path="/api", created=OLD).replace(
        "pathType: Prefix", "pathType: Exact")
    assert _twin_status(exact, ingress_yaml("b", "h.test", WWW, path="/api", created=NEW)) == (
        308, b"http://h.test/x")


def test_www_twin_of_the_older_duplicate_stays() -> None:
    """The older Ingress's location is the one kept: its annotation asks, whoever duplicates
    the path later."""
    assert _twin_status(ingress_yaml("a", "h.test", WWW, path="/api", created=OLD),
                        ingress_yaml("b", "h.test", path="/api", created=NEW)) == (
        308, b"http://h.test/x")


# -- the owner of a host's server location: its invalid annotations are reported ---------------

_OWNER = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: owner
  namespace: default
  creationTimestamp: '2023-01-01T00:00:00Z'
  annotations:
    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/33
    nginx.ingress.kubernetes.io/ssl-redirect: 'no'
spec:
  rules:
  - host: h.test
"""


def _owner_pair() -> ProxyPair:
    """``owner`` (oldest, a host-only rule: no route of its own) makes the server of h.test,
    whose ``location /`` carries its annotations; ``b`` routes ``/api`` there."""
    router = Router(parse_manifests(_OWNER + ingress_yaml("b", "h.test", path="/api")
                                    + WEB_SERVICE_YAML))
    return ProxyPair(router=router, tls_hosts={"h.test"})


def _warnings(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_owner_without_route_warns_at_start(caplog: Any) -> None:
    """Before: nothing at start (only routes were parsed), nothing at the request, and every
    path of h.test no rule covers answered 503 (the invalid allowlist denies the server's
    ``location /``, as ingress-nginx does) with no line saying why."""
    p = _owner_pair()
    p.proxy.log_annotation_warnings()
    got = _warnings(caplog)
    assert any(w.startswith("Ingress default/owner: annotation nginx.ingress.kubernetes.io/"
                            "whitelist-source-range: '10.0.0.0/33'") for w in got), got
    assert any(w.startswith("Ingress default/owner: annotation nginx.ingress.kubernetes.io/"
                            "ssl-redirect: invalid boolean 'no'") for w in got), got
    out = p.send(b"GET /other HTTP/1.1\r\nHost: h.test\r\n\r\n")
    assert status_of(out) == 503
    assert _warnings(caplog) == got  # once per table


def test_owner_without_route_warns_at_the_request(caplog: Any) -> None:
    """Without the start-up walk (a caller that never asks for it), the first request the
    owner's location answers reports it."""
    p = _owner_pair()
    out = p.send(b"GET /other HTTP/1.1\r\nHost: h.test\r\n\r\n")
    assert status_of(out) == 503
    assert sum("default/owner" in w for w in _warnings(caplog)) == 2


def test_owner_with_routes_warns_once(caplog: Any) -> None:
    """An owner with routes of its own: its warnings once, whether its rules or the server's
    ``location /`` (a path no rule covers) meet them first."""
    ann = {A + "ssl-redirect": "no", A + "proxy-read-timeout": "30s"}
    router = Router(parse_manifests(ingress_yaml("a", "h.test", ann, path="/api")
                                    + WEB_SERVICE_YAML))
    p = ProxyPair(router=router)
    p.send(b"GET /other HTTP/1.1\r\nHost: h.test\r\n\r\n")
    p.proxy.log_annotation_warnings()
    got = _warnings(caplog)
    assert len(got) == 2 and len(set(got)) == 2, got


def test_www_twin_not_asked_by_a_resource_backend_path() -> None:
    """A path whose backend is a ``resource`` makes no location in ingress-nginx
    (getBackendServers: "if path.Backend.Service == nil { // skip non-service backends"), so
    it asks for no twin. Before: redirected."""
    doc = ingress_yaml("a", "h.test", WWW).replace(
        "backend: {service: {name: web, port: {number: 80}}}",
        "backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: b}}")
    assert "resource" in doc
    assert _twin_status(doc) == (404, None)
