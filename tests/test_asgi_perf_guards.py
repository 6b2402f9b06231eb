"""IngressASGI's fast paths give what its general path gives.

The adapter reads a request's headers in one pass with a per-settings cache of what each header
name is (``_scan_headers``), remembers the canonical path of a ``raw_path`` (``_TARGETS``) and
what a route implies (``_plan``); the general path (``_read_headers`` + ``_backend_headers``,
which asks ``request_header_kind`` about every special header with the Connection tokens) is
what any other request takes. These tests send the same requests through an adapter on the fast
paths and through one held on the general path, and compare everything the app and the client
get; then they check that the caches follow a change of settings and of rules.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingresslib import _asgi
from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings

P = "nginx.ingress.kubernetes.io/"

MANIFESTS = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations: {{'{P}x-forwarded-prefix': '/pre', '{P}rewrite-target': '/v1',
                '{P}proxy-body-size': '64'}}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: sticky, namespace: default, annotations: {{'{P}affinity': cookie}}}}
spec:
  rules:
  - host: sticky.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [10.0.0.1]}}]
"""

#: Header names: ordinary, special (hop-by-hop, forwarded, Host, X-Request-ID), in upper case
#: (a server that does not lower-case them), odd (``_``, ``.``), names Connection may list, and
#: names nginx reads once (``UNIQUE_REQUEST``: the scan's ``_UNIQUE`` -- passed, a second line
#: 400 -- and ``_UNIQUE_DROP`` -- hop-by-hop like Expect, dropped, a second line 400 too).
NAMES = [b"host", b"Host", b"content-length", b"transfer-encoding", b"connection",
         b"Connection", b"upgrade", b"keep-alive", b"te", b"proxy", b"expect",
         b"authorization", b"Authorization", b"if-none-match",
         b"x-forwarded-for", b"X-Forwarded-For", b"x-forwarded-host", b"x-forwarded-proto",
         b"x-forwarded-port", b"x-real-ip", b"x-request-id", b"x-client-ip", b"accept",
         b"Accept", b"user-agent", b"x-custom", b"x_custom", b"x_forwarded_for", b"x.dot",
         b"close", b"cookie"]
VALUES = [b"shop.test", b"SHOP.test", b"sticky.test", b"keep-alive", b"close", b"upgrade",
          b"x-custom", b"keep-alive, x-custom", b"host", b"x-request-id", b"Keep-Alive, TE",
          b"10.0.0.9", b"198.51.100.7, 127.0.0.2", b"12", b"100", b"abc-123", b"bad id", b""]

SETTINGS = [
    ProxySettings(),
    ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",),
                  compute_full_forwarded_for=True),
    ProxySettings(enable_real_ip=True, proxy_real_ip_cidr=("127.0.0.0/8",),
                  forwarded_for_header="X-Client-IP"),
    ProxySettings(enable_underscores_in_headers=True, ignore_invalid_headers=False),
    ProxySettings(ignore_invalid_headers=False, generate_request_id=False, hsts=True),
]


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"{next(counter):032x}"


def adapter(settings: ProxySettings, *, general: bool = False, **kw: Any) -> IngressASGI:
    # Seeded: the affinity cookie's value is the same from both adapters.
    app = IngressASGI(Router(parse_manifests(MANIFESTS), seed=1), {"default/web": _app},
                      settings=settings, request_id=_ids(), **kw)
    if general:
        app._names = None  # every request on the general path
    return app


async def _app(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def call(app: IngressASGI, scope: dict[str, Any], body: list[bytes] | None = None
         ) -> tuple[Any, ...]:
    """Drive one call (receive and send never suspend): (what the client got, the scope the
    app saw without its Decision, whether it raised BodyTooLarge)."""
    sent: list[Any] = []
    seen: list[Any] = []
    chunks = list(body or [b""])

    async def receive() -> dict[str, Any]:
        if chunks:
            part = chunks.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def spy(s: Any, r: Any, snd: Any) -> None:
        seen.append({k: v for k, v in s.items() if k != DECISION_KEY})
        await _app(s, r, snd)

    app.backends["default/web"] = spy
    coro = app(dict(scope), receive, send)
    too_large = False
    try:
        coro.send(None)
    except StopIteration:
        pass
    except _asgi.BodyTooLarge:
        too_large = True
    else:
        raise AssertionError("the call suspended")
    return sent, seen, too_large


def scope_of(headers: list[tuple[bytes, bytes]], *, method: str = "GET",
             raw_path: bytes = b"/api/users", scheme: str = "http",
             client: str = "127.0.0.1", version: str = "1.1") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": version,
            "server": ("127.0.0.1", 8000), "client": (client, 5000), "scheme": scheme,
            "method": method, "root_path": "", "path": raw_path.decode(), "raw_path": raw_path,
            "query_string": b"a=1", "headers": headers}


@given(headers=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)),
                        max_size=12),
       settings_index=st.integers(0, len(SETTINGS) - 1),
       host=st.sampled_from([b"shop.test", b"sticky.test", b"other.test", None]),
       scheme=st.sampled_from(["http", "https"]),
       version=st.sampled_from(["1.1", "2"]),
       raw_path=st.sampled_from([b"/api/users", b"/api/%7euser/./x", b"/", b"/a/../../x"]),
       body=st.sampled_from([None, [b"x" * 10], [b"x" * 40, b"x" * 40]]))
def test_fast_paths_match_the_general_path(headers: list[tuple[bytes, bytes]],
                                           settings_index: int, host: bytes | None,
                                           scheme: str, version: str, raw_path: bytes,
                                           body: list[bytes] | None) -> None:
    settings = SETTINGS[settings_index]
    if host is not None:
        headers = [(b"host", host), *headers]
    scope = scope_of(headers, scheme=scheme, version=version, raw_path=raw_path,
                     method="POST" if body else "GET")
    fast = adapter(settings)
    general = adapter(settings, general=True)
    # Twice on the fast paths: the first call fills the caches, the second takes them.
    got = [call(fast, scope, body), call(fast, scope, body)]
    want = []
    for _ in range(2):
        _asgi._TARGETS.clear()  # the general path computes the canonical path each time
        want.append(call(general, scope, body))
    assert got == want


def test_a_forwarded_for_header_named_like_a_header_read_for_routing() -> None:
    # Absurd settings, same answers: Host (or Content-Length) is then also the chain.
    for ff in ("Host", "Content-Length"):
        settings = ProxySettings(forwarded_for_header=ff, use_forwarded_headers=True,
                                 proxy_real_ip_cidr=("127.0.0.0/8",))
        assert adapter(settings)._names is None
        scope = scope_of([(b"host", b"shop.test"), (b"content-length", b"3")])
        assert call(adapter(settings), scope) == call(adapter(settings, general=True), scope)


def test_rewrite_headers_off_matches_the_general_path() -> None:
    for headers in ([(b"host", b"shop.test"), (b"connection", b"x-custom"), (b"x-custom", b"1")],
                    [(b"Host", b"shop.test"), (b"Content-Length", b"100")],
                    [(b"host", b"shop.test"), (b"host", b"shop.test")]):
        scope = scope_of(headers)
        fast = adapter(ProxySettings(), rewrite_headers=False)
        general = adapter(ProxySettings(), general=True, rewrite_headers=False)
        assert call(fast, scope) == call(general, scope)


def _seen_headers(app: IngressASGI, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    _sent, seen, _ = call(app, scope_of(headers))
    return [n for n, _ in seen[0]["headers"]]


def test_a_connection_token_naming_an_ordinary_header_drops_it() -> None:
    # "Connection: x-custom" after the header it names: the scan had passed it already.
    app = adapter(ProxySettings())
    names = _seen_headers(app, [(b"host", b"shop.test"), (b"x-custom", b"1"),
                                (b"connection", b"close, x-custom")])
    assert b"x-custom" not in names and b"connection" not in names
    # The next request without that token passes it (the cache holds no Connection state).
    names = _seen_headers(app, [(b"host", b"shop.test"), (b"x-custom", b"1"),
                                (b"connection", b"keep-alive")])
    assert b"x-custom" in names


def test_upper_case_names_reach_the_app_lower_cased() -> None:
    app = adapter(ProxySettings())
    names = _seen_headers(app, [(b"Host", b"shop.test"), (b"Accept", b"*/*"),
                                (b"X-Forwarded-For", b"1.2.3.4")])
    assert names[:2] == [b"host", b"accept"]
    assert names.count(b"x-forwarded-for") == 1  # this hop's, not the client's


def test_the_name_cache_follows_a_change_of_settings() -> None:
    app = adapter(ProxySettings())
    headers = [(b"host", b"shop.test"), (b"x_custom", b"1")]
    assert b"x_custom" not in _seen_headers(app, headers)  # nginx: underscores_in_headers off
    app.settings = ProxySettings(enable_underscores_in_headers=True)
    assert b"x_custom" in _seen_headers(app, headers)
    # The forwarded-for header's name, too: X-Client-IP becomes the chain this hop rewrites.
    app.settings = ProxySettings(forwarded_for_header="X-Client-IP")
    names = _seen_headers(app, [(b"host", b"shop.test"), (b"x-client-ip", b"6.6.6.6")])
    assert b"x-client-ip" not in names


def test_the_name_cache_stays_bounded_and_right() -> None:
    app = adapter(ProxySettings())
    for i in range(600):
        names = _seen_headers(app, [(b"host", b"shop.test"), (b"x-n%d" % i, b"1"),
                                    (b"x_n%d" % i, b"1")])
        assert b"x-n%d" % i in names and b"x_n%d" % i not in names
    assert app._names is not None and len(app._names) <= 512
    assert len(app._plain) <= len(app._names)


def test_the_route_plan_follows_an_update() -> None:
    app = adapter(ProxySettings())
    _sent, seen, _ = call(app, scope_of([(b"host", b"shop.test")]))
    assert seen[0]["root_path"] == "/api"
    assert (b"x-forwarded-prefix", b"/pre") in seen[0]["headers"]
    app.update(parse_manifests(MANIFESTS.replace("path: /api,", "path: /api/users,")
                               .replace("x-forwarded-prefix': '/pre'",
                                        "x-forwarded-prefix': '/other'")))
    _sent, seen, _ = call(app, scope_of([(b"host", b"shop.test")]))
    assert seen[0]["root_path"] == "/api/users"
    assert (b"x-forwarded-prefix", b"/other") in seen[0]["headers"]
    app.mount_prefix = False  # read per request, not kept in the plan
    _sent, seen, _ = call(app, scope_of([(b"host", b"shop.test")]))
    assert seen[0]["root_path"] == ""


def test_the_path_cache_is_not_used_under_a_root_path() -> None:
    app = adapter(ProxySettings())
    call(app, scope_of([(b"host", b"shop.test")], raw_path=b"/api/users"))  # cached
    scope = scope_of([(b"host", b"shop.test")], raw_path=b"/api/users")
    scope["root_path"] = "/api"
    scope["path"] = "/api/users"
    _sent, seen, _ = call(app, scope)
    # raw_path under root_path "/api" (uvicorn >= 0.54 keeps it): routed on "/users", the
    # rule "/" serves it (root_path unchanged: a "/" Prefix adds nothing); the app's raw_path
    # keeps the root_path as its path does. The cached "/api/users" gives "/api/api/users".
    assert (seen[0]["root_path"], seen[0]["path"], seen[0]["raw_path"]) \
        == ("/api", "/api/users", b"/api/users")


def test_a_body_over_the_limit_is_answered_413_or_raises() -> None:
    app = adapter(ProxySettings())
    scope = scope_of([(b"host", b"shop.test")], method="POST")
    sent, _seen, too_large = call(app, scope, [b"x" * 65])
    assert sent[0]["status"] == 413 and not too_large
    sent, _seen, too_large = call(app, scope, [b"x" * 64])
    assert sent[0]["status"] == 200 and not too_large

    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"

    app2 = IngressASGI(parse_manifests(MANIFESTS), {"default/web": early})
    chunks = [b"x" * 40, b"x" * 40]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: Any) -> None:
        pass

    coro = app2(scope, receive, send)
    try:
        coro.send(None)
    except _asgi.BodyTooLarge:
        pass
    else:
        raise AssertionError("BodyTooLarge not raised")


def test_long_names_and_paths_are_served_without_being_kept() -> None:
    app = adapter(ProxySettings())
    long_name = b"x-" + b"n" * 100
    long_path = b"/api/" + b"p" * 300
    for _ in range(2):
        _sent, seen, _ = call(app, scope_of([(b"host", b"shop.test"), (long_name, b"1")],
                                            raw_path=long_path))
        assert long_name in [n for n, _ in seen[0]["headers"]]
        assert seen[0]["raw_path"] == long_path
    assert app._names is not None and long_name not in app._names
    assert long_path not in _asgi._TARGETS
