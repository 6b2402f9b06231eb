"""Differential property test: the proxy core and IngressASGI handle the same request alike.

ingresslib implements its ingress behaviour on two request paths: the h11 sans-IO proxy core
(ingresslib/proxy/) and the in-process ASGI adapter (ingresslib/_asgi.py). Hypothesis makes
small manifest sets (hosts with wildcards, Exact/Prefix paths, canary Ingresses by header,
cookie and weight, redirect / rewrite / body-size / affinity annotations, spec.tls hosts) and
requests (method, Host with port/case/trailing dot, empty or nothing but a dot, paths with
escapes and dot-segments, query, hostile forwarded and hop-by-hop headers, header lines sent
twice, a peer inside or outside the trusted CIDR, http or https), sends each through both
paths with the same settings (tests/_agree_s13.py) and checks they agree on the status,
Location, backend, the target the backend saw, the forwarded headers it saw, the other
header names it saw (hop-by-hop removal), HSTS and the affinity cookie.

Where docs/asgi.md documents a difference, the comparison says so next to the doc line it
follows (``_documented``, and the bare ``?`` in ``check_agree``); the differences found that
no doc line explains were fixed, each with a regression test at the end; any other difference
fails.

What is not generated, and why:

- a trusted hop's ``X-Forwarded-Proto`` that contradicts the scope's scheme, repeats, or comes
  with an ``https_port`` other than 443 (``scheme_as_scope``: the adapter's redirects follow
  the scope's scheme by design, the proxy's follow the trusted header);
- header names that are not RFC 9110 tokens (``X@Bad``): the ASGI server's parser (h11,
  httptools) refuses them before any app ("The request head's framing and limits ... are the
  ASGI server's job"); names with ``_`` or ``.`` are generated;
- WebSocket scopes, ``Expect: 100-continue``, HTTP/2, a server ``root_path`` and servers that
  give no ``raw_path``: the scope is the one uvicorn's h11 protocol builds;
- access-control annotations and settings other than ``auth-type: basic`` (being changed by
  another session); basic auth is generated for the Authorization header sent twice;
- ``Content-Length`` or ``Transfer-Encoding`` sent twice: uvicorn's h11 merges or refuses
  their repetition before any app (both paths' 400 for them: tests/test_unique_headers_s14.py);
- more than one endpoint per Service: the endpoint the proxy connects to names the Service.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from ingresslib._normalize import canonical_path
from ingresslib.proxy import ProxySettings

from _agree_s13 import (
    P,
    SERVICES,
    IngressSpec,
    Outcome,
    PathSpec,
    RequestSpec,
    manifests_text,
    tls_hosts_of,
    via_asgi,
    via_proxy,
)

# -- manifests -------------------------------------------------------------------------------

RULE_HOSTS = ("a.test", "www.a.test", "*.b.test", "c.b.test", "")
RULE_PATHS = ("/", "/", "/api", "/api", "/api/", "/app", "/x/y", "/.well-known/acme-challenge",
              "/api(/|$)(.*)")

#: Each annotation group: drawn or not, then one of its values.
ANNOTATIONS: tuple[tuple[tuple[tuple[str, str], ...], ...], ...] = (
    (((P + "ssl-redirect", "false"),),),
    (((P + "force-ssl-redirect", "true"),),),
    (((P + "app-root", "/app"),),),
    (((P + "permanent-redirect", "https://perm.test/p"),),
     ((P + "permanent-redirect", "https://perm.test/p"), (P + "permanent-redirect-code", "308"))),
    (((P + "temporal-redirect", "http://temp.test/t"),),),
    (((P + "from-to-www-redirect", "true"),),),
    (((P + "rewrite-target", "/"),), ((P + "rewrite-target", "/new"),),
     ((P + "rewrite-target", "https://rw.test/z"),)),
    (((P + "x-forwarded-prefix", "/pre"),),),
    (((P + "proxy-body-size", "4"),), ((P + "proxy-body-size", "0"),),
     ((P + "proxy-body-size", "1k"),)),
    (((P + "affinity", "cookie"), (P + "session-cookie-name", "sid")),),
    (((P + "preserve-trailing-slash", "true"),),),
    (((P + "use-regex", "true"),), ((P + "use-regex", "true"), (P + "rewrite-target", "/r/$1")),
     ((P + "rewrite-target", "/new/$2"),)),
    (((P + "temporal-redirect", "https://temp.test/r?a=1"),
      (P + "temporal-redirect-code", "307")),),
    # The Secret every generated set holds (tests/_agree_s13.py USERS_SECRET).
    (((P + "auth-type", "basic"), (P + "auth-secret", "users")),),
)

CANARY = (
    ((P + "canary-by-header", "X-Canary"),),
    ((P + "canary-by-cookie", "cv"),),
    ((P + "canary-weight", "0"),),
    ((P + "canary-weight", "50"),),
    ((P + "canary-weight", "100"),),
    ((P + "canary-by-header", "X-Canary"), (P + "canary-weight", "50")),
    ((P + "canary-by-header", "X-Canary"), (P + "canary-by-header-value", "other")),
    ((P + "canary-by-header", "X-Canary"), (P + "canary-by-header-pattern", "^o.*")),
    ((P + "canary-by-cookie", "cv"), (P + "canary-weight", "100"),
     (P + "canary-weight-total", "200")),
)

services = st.sampled_from(SERVICES)


@st.composite
def annotation_sets(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for group in ANNOTATIONS:
        # Rarely each: most Ingresses carry one or two annotations, as in life.
        if draw(st.integers(0, 5)) == 0:
            out += draw(st.sampled_from(group))
    return tuple(out)


# What ``ingress_sets`` draws from, made once: made inside the composite, the list strategy
# (with its ``unique_by`` lambda, new at each draw) was made, validated and missed in
# hypothesis's strategy cache at every draw. Same arguments, same examples.
_N_INGRESSES = st.integers(1, 3)
_KINDS = st.sampled_from(("Exact", "Prefix", "Prefix", "ImplementationSpecific"))
_PATH_LISTS = st.lists(st.tuples(st.sampled_from(RULE_PATHS), _KINDS, services),
                       min_size=1, max_size=2, unique_by=lambda t: (t[0], t[1]))
_RULE_HOST = st.sampled_from(RULE_HOSTS)


@st.composite
def ingress_sets(draw: st.DrawFn) -> tuple[IngressSpec, ...]:
    count = draw(_N_INGRESSES)
    out: list[IngressSpec] = []
    for i in range(count):
        paths = draw(_PATH_LISTS)
        out.append(IngressSpec(f"i{i}", draw(_RULE_HOST),
                               tuple(PathSpec(*p) for p in paths), draw(annotation_sets()),
                               draw(st.booleans()),
                               draw(services) if draw(st.integers(0, 5)) == 0 else None))
    # A canary Ingress: a base Ingress's host and first path, another Service.
    for j in range(draw(st.integers(0, 2)) // 2 + draw(st.integers(0, 1))):
        base = draw(st.sampled_from(out[:count]))
        first = base.paths[0]
        ann = ((P + "canary", "true"), *draw(st.sampled_from(CANARY)))
        out.append(IngressSpec(f"c{j}", base.host,
                               (PathSpec(first.path, first.path_type, draw(services)),), ann))
    return tuple(out)


# -- requests --------------------------------------------------------------------------------

REQUEST_HOSTS = ("a.test", "www.a.test", "x.b.test", "c.b.test", "www.c.b.test", "b.test",
                 "other.test", "[::1]", "10.0.0.1", "", "a.test:", "a.test:abc", "a_b.test",
                 "a..test", "-a.test")
SEGMENTS = ("api", "API", "app", "x", "y", "new", ".", "..", "%61pi", "%2e", "%2E%2E",
            "a%20b", "%7E", ".well-known", "acme-challenge", "", "%2F", "%25", "%C3%A9", "..;",
            "x;p=1", "%41PI")


#: Host values with no host in them: nginx's ngx_http_validate_host declines them (400).
NO_HOST = ("", ".", ":80", ".:80")


@st.composite
def hosts(draw: st.DrawFn, rule_hosts: tuple[str, ...]) -> str | None:
    if draw(st.integers(0, 9)) == 0:
        return None  # HTTP/1.0 without Host
    if draw(st.integers(0, 14)) == 0:
        return draw(st.sampled_from(NO_HOST))
    # Mostly a host some rule names (a wildcard's "x." member; "www." twins come from
    # REQUEST_HOSTS), so that most requests reach a rule.
    named = [h.replace("*", "x") for h in rule_hosts if h]
    use_named = bool(draw(st.integers(0, 2)))
    host = draw(st.sampled_from(named)) if named and use_named else \
        draw(st.sampled_from(REQUEST_HOSTS))
    if draw(st.booleans()):
        host = host.upper() if draw(st.booleans()) else host.capitalize()
    if draw(st.integers(0, 3)) == 0:
        host += "."
    port = draw(st.sampled_from(("", "", "", ":80", ":443", ":8080")))
    return host + port


@st.composite
def targets(draw: st.DrawFn, rule_paths: tuple[str, ...]) -> str:
    segs = draw(st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=3))
    path = "/" + "/".join(segs)
    if draw(st.integers(0, 3)):  # under a rule's path, mostly
        base = draw(st.sampled_from(rule_paths)).replace("(/|$)(.*)", "")
        keep_slash = draw(st.booleans())
        path = base.rstrip("/") + (path if segs or keep_slash else "")
        path = path or "/"
    if draw(st.integers(0, 3)) == 0:
        path += "/"
    query = draw(st.sampled_from((None, None, "", "a=1", "x=%20&y=/")))
    target = path if query is None else f"{path}?{query}"
    if draw(st.integers(0, 9)) == 0:
        # absolute-form (docs/asgi.md: "routed on its path when its authority equals `Host`,
        # else `400`, as by the proxy"); the authority is fixed up in ``requests``.
        target = "http://AUTHORITY" + target
    return target


HOSTILE = st.sampled_from((
    ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "1.2.3.4, 10.9.9.9"),
    ("X-Forwarded-For", "junk"), ("X-Forwarded-For", "5.6.7.8"),
    ("X-Forwarded-Host", "evil.test"), ("X-Forwarded-Host", "bad host"),
    ("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Port", "1"), ("X-Forwarded-Prefix", "/evil"), ("X-Real-IP", "6.6.6.6"),
    ("X-Scheme", "https"), ("X-Original-URI", "/evil"), ("X-Original-Forwarded-For", "7.7.7.7"),
    ("X-Request-ID", "abc-123"), ("X-Request-ID", "bad id!"), ("X-Request-ID", "second"),
    ("Connection", "close"), ("Connection", "keep-alive, x-foo"), ("Connection", "x-real-ip"),
    ("X-Foo", "1"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy", "http://p"),
    ("Proxy-Authorization", "Basic eA=="), ("Upgrade", "h2c"), ("X_Under", "1"),
    ("X-Canary", "always"), ("X-Canary", "never"), ("X-Canary", "other"),
    ("Cookie", "cv=always"), ("Cookie", "cv=never"), ("Cookie", "sid=junk"),
    ("Accept", "*/*"), ("X-Client-IP", "9.9.9.9"), ("X.Dot", "1"), ("x-forwarded-for", "8.8.8.8"),
    ("X-Forwarded-Host", "a.test"), ("Expect", "nothing"), ("Trailer", "x"),
    ("Host", "a.test"), ("Host", "other.test"), ("Connection", "host"),
    ("Connection", "x-forwarded-for"), ("Connection", "x-request-id, cookie"),
    ("Connection", "X-Canary"), ("Connection", "upgrade"),
))


#: Header lines that may come twice: the ones nginx reads once (ngx_http_headers_in[]'s
#: ngx_http_process_unique_header_line entries: a second line is 400) and some it reads as
#: lists. Authorization with alice's good and bad password (the basic-auth annotation).
REPEATABLE = st.sampled_from((
    ("Authorization", "Basic YWxpY2U6cHc="), ("Authorization", "Basic YWxpY2U6bm9wZQ=="),
    ("If-None-Match", '"v1"'), ("If-Match", '"v1"'), ("If-Range", '"v1"'),
    ("If-Modified-Since", "Sat, 29 Oct 1994 19:43:31 GMT"),
    ("If-Unmodified-Since", "Sat, 29 Oct 1994 19:43:31 GMT"),
    ("Content-Range", "bytes 0-1/2"), ("Expect", "nothing"), ("Accept", "text/html"),
    ("Cookie", "a=1"), ("Range", "bytes=0-1"), ("X-Foo", "2"),
))


@st.composite
def requests(draw: st.DrawFn, ingresses: tuple[IngressSpec, ...]) -> RequestSpec:
    host = draw(hosts(tuple(i.host for i in ingresses)))
    target = draw(targets(tuple(p.path for i in ingresses for p in i.paths)))
    canaries = [i for i in ingresses if i.name.startswith("c")]
    focus_canary = draw(st.booleans())
    if canaries and focus_canary:
        # A canary's own host and path, so that its rules are exercised.
        focus = draw(st.sampled_from(canaries))
        host = focus.host.replace("*", "x") or host
        target = focus.paths[0].path.replace("(/|$)(.*)", "/x")
    if "AUTHORITY" in target:
        target = target.replace("AUTHORITY", host if host and draw(st.booleans())
                                else draw(st.sampled_from(REQUEST_HOSTS)))
    # One of them, sent twice now and then (rarely: most examples should reach a route).
    repeated = draw(st.lists(REPEATABLE, max_size=1))
    if repeated and draw(st.integers(0, 5)) == 0:
        repeated.append(repeated[0])
    return RequestSpec(
        method=draw(st.sampled_from(("GET", "GET", "HEAD", "POST", "DELETE", "TRACE"))),
        target=target, host=host, http10=draw(st.integers(0, 9)) == 0,
        chunked=draw(st.integers(0, 4)) == 0,
        headers=tuple(draw(st.permutations(draw(st.lists(HOSTILE, max_size=5)) + repeated)))
        + draw(st.sampled_from(((), (("X-Canary", "always"),), (("Cookie", "cv=always"),)))),
        body=draw(st.sampled_from((b"", b"", b"abcdef", b"z" * 1500))),
        https=draw(st.booleans()),
        peer=draw(st.sampled_from(("127.0.0.1", "203.0.113.7"))))


@st.composite
def proxy_settings(draw: st.DrawFn) -> ProxySettings:
    return ProxySettings(
        use_forwarded_headers=draw(st.booleans()),
        compute_full_forwarded_for=draw(st.booleans()),
        proxy_real_ip_cidr=draw(st.sampled_from(((), ("127.0.0.0/8",)))),
        enable_real_ip=draw(st.booleans()),
        proxy_add_original_uri_header=draw(st.booleans()),
        hsts=draw(st.booleans()),
        preserve_trailing_slash=draw(st.booleans()),
        http_redirect_code=draw(st.sampled_from((308, 301))),
        forwarded_for_header=draw(st.sampled_from(("X-Forwarded-For", "X-Client-IP"))),
        enable_underscores_in_headers=draw(st.booleans()),
        ignore_invalid_headers=draw(st.booleans()),
        generate_request_id=draw(st.booleans()),
        ssl_redirect=draw(st.booleans()),
        force_ssl_redirect=draw(st.integers(0, 5)) == 0,
        proxy_body_size=draw(st.sampled_from((1048576, 1048576, 5, 0))),
        hsts_preload=draw(st.booleans()))


# -- the comparison --------------------------------------------------------------------------


def _documented(req: RequestSpec, proxy: Outcome, asgi: Outcome,
                rewrite: bool) -> tuple[Outcome, Outcome]:
    """The two outcomes with each difference docs/asgi.md documents taken out, each quoting
    its line (the bare `?` is handled in ``check_agree``). What is left must be equal."""
    # "`rewrite-target` is not applied: the app gets the canonical path."
    if rewrite and proxy.backend is not None and asgi.backend is not None:
        path, _, query = req.target.partition("?")
        if "://" in path:
            path = "/" + path.split("/", 3)[3]  # absolute-form: its path
        assert asgi.target == (canonical_path(path) + (f"?{query}" if query else "")).encode()
        asgi = replace(asgi, target=proxy.target)
    # "A body without `Content-Length` (chunked, HTTP/2) is counted as the app reads it. When
    # it goes over the limit before the app has started its response, the client gets the
    # `413`": the app was called (the proxy refuses before any upstream sees the head).
    if req.chunked and proxy.status == asgi.status == 413 and proxy.backend is None:
        asgi = replace(asgi, backend=None, target=None, forwarded={}, names=[], host=None)
    # "hop-by-hop headers (`Connection` and the headers it names, ...) are removed. `Upgrade`
    # stays on a WebSocket scope, with `connection: upgrade`" (docs/asgi.md, "What the mounted
    # app sees"): on an http scope it goes, while the proxy forwards a non-WebSocket upgrade
    # (`Upgrade: h2c` + `Connection: upgrade`) as nginx.tmpl's "Upgrade $http_upgrade" does --
    # ASGI has no protocol switch but WebSocket's.
    if b"upgrade" in proxy.names and b"upgrade" not in asgi.names:
        proxy = replace(proxy, names=[n for n in proxy.names if n != b"upgrade"])
    # "A request without `Host` gets no `Host` header (the proxy sends the endpoint address)."
    if req.host is None:
        asgi = replace(asgi, host=proxy.host)
    return proxy, asgi


def trusted(req: RequestSpec, settings: ProxySettings) -> bool:
    """The proxy reads this peer's X-Forwarded-* (use-forwarded-headers, peer in the CIDR)."""
    return settings.use_forwarded_headers and req.peer.startswith("127.") \
        and bool(settings.proxy_real_ip_cidr)


def scheme_as_scope(req: RequestSpec, settings: ProxySettings,
                    https_port: int) -> RequestSpec:
    """Restriction: a trusted hop's X-Forwarded-Proto names the scope's scheme, and there is
    none when ``https_port`` is not 443.

    docs/asgi.md decides the adapter's redirects on the scope's scheme -- "a plain-http
    request (scope `scheme` `http`/`ws`) on a rule with `force-ssl-redirect`", "to
    `https://host[:https_port]`" -- and _asgi.py says why: "The scheme is the scope's: an ASGI
    server that trusts a hop's X-Forwarded-Proto (uvicorn --forwarded-allow-ips) has already
    set it". The proxy takes a trusted X-Forwarded-Proto as $pass_access_scheme and then
    writes no port ("The client spoke to the hop in front, whose https port is not ours").
    A trusted X-Forwarded-Proto that contradicts the scope (or two of them, which the proxy
    reads as "http, http": no scheme) describes a server that did not apply it: not generated
    (the report lists this restriction)."""
    if not trusted(req, settings):
        return req
    scheme = "https" if req.https else "http"
    headers = [(n, v) for n, v in req.headers if n.lower() != "x-forwarded-proto"]
    if https_port == 443 and len(headers) < len(req.headers):
        # One line: two make nginx's $http_x_forwarded_proto "http, http", no scheme at all.
        headers.append(("X-Forwarded-Proto", scheme))
    return replace(req, headers=tuple(headers))


def check_agree(ingresses: tuple[IngressSpec, ...], req: RequestSpec,
                settings: ProxySettings, https_port: int = 443) -> None:
    req = scheme_as_scope(req, settings, https_port)
    text = manifests_text(ingresses)
    tls_hosts = tls_hosts_of(ingresses)
    note(f"request: {req.wire()!r}")
    # docs/asgi.md: "ASGI gives an empty `query_string` for both `/x` and `/x?`: a redirect's
    # `Location` has no `?` in both cases." The adapter cannot tell `/x?` from `/x`, so its
    # answer to `/x?` is compared with the proxy's answer to `/x` (Location, the target the
    # backend saw, X-Original-URI, and one final `/` dropped from `//?`'s Location alike).
    as_proxy = replace(req, target=req.target[:-1]) if req.target.endswith("?") else req
    proxy = via_proxy(text, as_proxy, settings, tls_hosts, https_port)
    asgi = via_asgi(text, req, settings, tls_hosts, https_port)
    rewrite = asgi.annotations.get(P + "rewrite-target") is not None
    proxy, asgi = _documented(req, proxy, asgi, rewrite)
    note(f"proxy: {proxy}")
    note(f"asgi:  {asgi}")
    event(f"status {proxy.status}")  # --hypothesis-show-statistics: what the examples reach
    if proxy.backend is not None:
        event(f"backend {'canary' if asgi.canary else 'main'}{' rewrite' if rewrite else ''}")
    assert proxy == asgi


@given(data=st.data(), ingresses=ingress_sets(), settings=proxy_settings(),
       https_port=st.sampled_from((443, 443, 8443)))
def test_proxy_and_asgi_agree(data: st.DataObject, ingresses: tuple[IngressSpec, ...],
                              settings: ProxySettings, https_port: int) -> None:
    check_agree(ingresses, data.draw(requests(ingresses), label="request"), settings,
                https_port)


# -- findings: regression tests, one per disagreement found (both fixed in the adapter) -------

PLAIN = (IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),)),)


def test_absolute_form_x_original_uri_is_the_path() -> None:
    settings = ProxySettings(proxy_add_original_uri_header=True)
    req = RequestSpec("GET", "http://a.test/x?q=1", "a.test", (), b"", False, "127.0.0.1")
    text = manifests_text(PLAIN)
    proxy = via_proxy(text, req, settings, frozenset())
    asgi = via_asgi(text, req, settings, frozenset())
    assert proxy.forwarded[b"x-original-uri"] == [b"/x?q=1"]  # nginx's $request_uri
    assert asgi.forwarded[b"x-original-uri"] == [b"/x?q=1"]


def test_absolute_form_with_empty_host_is_refused() -> None:
    req = RequestSpec("GET", "http://a.test/x", "", (), b"", False, "127.0.0.1")
    text = manifests_text(PLAIN)
    assert via_proxy(text, req, ProxySettings(), frozenset()).status == 400
    asgi = via_asgi(text, req, ProxySettings(), frozenset())
    assert (asgi.status, asgi.backend) == (400, None)


def test_authorization_twice_on_a_basic_auth_route_is_refused_alike() -> None:
    # Found by the property once it sent header lines twice (session 14, HYPOTHESIS_PROFILE=
    # thorough): the proxy read the two lines joined ("Basic ..., Basic ...": 401), the adapter
    # the first one (the app called). nginx answers 400 ("client sent duplicate header line").
    locked = (IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),),
                          ((P + "auth-type", "basic"), (P + "auth-secret", "users"))),)
    text = manifests_text(locked)
    good = ("Authorization", "Basic YWxpY2U6cHc=")  # alice:pw (tests/_agree_s13.py)
    once = RequestSpec("GET", "/", "a.test", (good,), b"", False, "127.0.0.1")
    assert via_proxy(text, once, ProxySettings(), frozenset()).backend == "s0"
    assert via_asgi(text, once, ProxySettings(), frozenset()).backend == "s0"
    twice = replace(once, headers=(good, good))
    for outcome in (via_proxy(text, twice, ProxySettings(), frozenset()),
                    via_asgi(text, twice, ProxySettings(), frozenset())):
        assert (outcome.status, outcome.backend) == (400, None)
