"""Review of x21's header shaping fixes (session 34, x24): a ConfigMap value of only spaces.

x21 strips the spaces around an ``add-headers`` / ``custom-headers`` / ``proxy-set-headers``
value; a value of only spaces became empty, which refused the whole add/custom set and left a
proxy-set-headers entry unsent. nginx (the spec) does neither:

1. ``more_set_headers "X-Powered-By:   "`` (nginx.tmpl writes each add-headers and
   custom-headers entry so): headers-more's parser skips the spaces before the value, the
   value is then empty, and an empty value *clears* the header
   (ngx_http_headers_more_headers_out.c ``ngx_http_set_header_helper``: "if (value->len == 0
   || matched) { ... h[i].hash = 0; }", and no new header is sent); the set's other entries
   still apply. ingress-nginx's custom-headers check lets the value through (``ValidValue``'s
   class holds the space). Refusing the whole set dropped every other header of it (the
   security headers a ConfigMap usually holds) for one entry meant to remove a header.
2. ``proxy_set_header X-Env "   ";`` (nginx.tmpl quotes each proxy-set-headers value): only a
   value of length 0 is not passed (ngx_http_proxy_module.c ``ngx_http_proxy_create_request``:
   "if (val_len == 0) { continue; }"); three spaces are sent, and the endpoint reads an empty
   field. x21 sent nothing: the endpoint lost a header it had before session 34.
"""

from __future__ import annotations

import json
from typing import Any

import h11

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX

from _asgi_call import asgi_exchange
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

GET = b"GET /x HTTP/1.1\r\nHost: example.test\r\nX-Env: client\r\n\r\n"
#: An upstream answer carrying the header a ConfigMap entry of only spaces clears.
POWERED = b"HTTP/1.1 200 OK\r\nX-Powered-By: php\r\nContent-Length: 5\r\n\r\nhello"
#: An entry of only spaces beside an ordinary one.
CLEARING = {"X-Powered-By": "   ", "X-Site": "main"}


def config_map_yaml(name: str, namespace: str, data: dict[str, str]) -> str:
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items())
    return (f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"{namespace}}}\ndata: {{{body}}}\n")


def _pair(settings: ProxySettings, extra: str, annotations: dict[str, str] | None = None
          ) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations or {}) + extra + WEB_SERVICE_YAML
    return ProxyPair(router=Router(parse_manifests(docs)), settings=settings,
                     app=lambda req, body, up: Reply(POWERED))


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """A head's (lower-case name, value without the spaces around it) pairs."""
    lines = head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(b":") for line in lines)]


#: A body the gzip filter compresses (over gzip-min-length, a gzip-types type).
LONG = b"hello " * 100


def _asgi(extra: str, settings: ProxySettings, accept: bytes = b""
          ) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(the request headers the app got, the response headers handed the server) for
    ``GET /x`` to example.test with ``X-Env: client`` (and ``Accept-Encoding: accept``)."""
    got: list[tuple[bytes, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.extend((bytes(n), bytes(v)) for n, v in scope["headers"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-powered-by", b"app"), (b"content-type", b"text/plain"),
                                (b"content-length", b"%d" % len(LONG))]})
        await send({"type": "http.response.body", "body": LONG})

    res = parse_manifests(ingress_yaml("web", "example.test", {}) + extra)
    adapter = IngressASGI(res, backends={"default/web": app}, settings=settings)
    sent = asgi_exchange(adapter, "example.test", query=b"",
                         headers=[(b"x-env", b"client")]
                         + ([(b"accept-encoding", accept)] if accept else []))
    return got, [(bytes(n).lower(), bytes(v)) for n, v in sent[0]["headers"]]


# --- add-headers / custom-headers: an entry of only spaces clears its header ------------------

def test_add_headers_entry_of_only_spaces_clears_that_header_and_keeps_the_set() -> None:
    cm = config_map_yaml("global", "ingress", CLEARING)
    out = _pair(ProxySettings(add_headers="ingress/global"), cm).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"hello")
    fields = _fields(out)
    assert (b"x-site", b"main") in fields, out  # the set applied
    assert b"x-powered-by" not in [n for n, _ in fields], out  # the upstream's cleared


def test_custom_headers_entry_of_only_spaces_clears_that_header_and_keeps_the_set() -> None:
    cm = config_map_yaml("hdrs", "default", CLEARING)
    settings = ProxySettings(global_allowed_response_headers=("X-Powered-By", "X-Site"))
    out = _pair(settings, cm, {PREFIX + "custom-headers": "default/hdrs"}).send(GET)
    fields = _fields(out)
    assert (b"x-site", b"main") in fields, out
    assert b"x-powered-by" not in [n for n, _ in fields], out


def test_custom_headers_entry_of_only_spaces_clears_a_cors_header() -> None:
    # The location's custom-headers come after its CORS block in nginx.tmpl: a later
    # more_set_headers with an empty value clears what the earlier one set.
    cm = config_map_yaml("hdrs", "default", {"Access-Control-Max-Age": " ", "X-Site": "main"})
    settings = ProxySettings(global_allowed_response_headers=("Access-Control-Max-Age",
                                                              "X-Site"))
    out = _pair(settings, cm, {PREFIX + "custom-headers": "default/hdrs",
                               PREFIX + "enable-cors": "true"}).send(GET)
    names = [n for n, _ in _fields(out)]
    assert b"x-site" in names and b"access-control-allow-methods" in names, out
    assert b"access-control-max-age" not in names, out


def test_asgi_add_headers_entry_of_only_spaces_clears_that_header() -> None:
    _, headers = _asgi(config_map_yaml("global", "ingress", CLEARING),
                       ProxySettings(add_headers="ingress/global"))
    assert (b"x-site", b"main") in headers and b"x-powered-by" not in [n for n, _ in headers]
    h11.Response(status_code=200, headers=headers)  # (uvicorn's h11 takes every value)


def test_asgi_gzip_answer_add_headers_entry_of_only_spaces_clears_that_header() -> None:
    # (the gzip filter decides on the app's head with the ConfigMap's headers set)
    _, headers = _asgi(config_map_yaml("global", "ingress", CLEARING),
                       ProxySettings(add_headers="ingress/global", use_gzip=True), b"gzip")
    assert (b"content-encoding", b"gzip") in headers, headers
    assert (b"x-site", b"main") in headers and b"x-powered-by" not in [n for n, _ in headers]
    h11.Response(status_code=200, headers=headers)


# --- proxy-set-headers: an entry of only spaces is sent, read as empty ------------------------

def test_proxy_set_headers_entry_of_only_spaces_is_sent_empty() -> None:
    cm = config_map_yaml("upstream", "ingress", {"X-Env": "   ", "X-Team": "web"})
    p = _pair(ProxySettings(proxy_set_headers="ingress/upstream"), cm)
    assert p.send(GET).startswith(b"HTTP/1.1 200 ")
    fields = _fields(bytes(p.upstreams[0].raw))
    assert (b"x-team", b"web") in fields
    assert [v for n, v in fields if n == b"x-env"] == [b""], fields  # once, empty


def test_asgi_proxy_set_headers_entry_of_only_spaces_is_handed_on_empty() -> None:
    cm = config_map_yaml("upstream", "ingress", {"X-Env": "   ", "X-Team": "web"})
    got, _ = _asgi(cm, ProxySettings(proxy_set_headers="ingress/upstream"))
    assert (b"x-team", b"web") in got
    # as an ASGI server hands an app a field it read: the spaces around it gone
    assert [v for n, v in got if n == b"x-env"] == [b""], got


def test_proxy_set_headers_empty_entry_still_sends_nothing() -> None:
    # (the length-0 value: nginx passes no such field, and the client's is dropped)
    cm = config_map_yaml("upstream", "ingress", {"X-Env": "", "X-Team": "web"})
    p = _pair(ProxySettings(proxy_set_headers="ingress/upstream"), cm)
    p.send(GET)
    fields = _fields(bytes(p.upstreams[0].raw))
    assert (b"x-team", b"web") in fields and b"x-env" not in [n for n, _ in fields]
    got, _ = _asgi(cm, ProxySettings(proxy_set_headers="ingress/upstream"))
    assert (b"x-team", b"web") in got and b"x-env" not in [n for n, _ in got]


def test_auth_proxy_set_headers_entry_of_only_spaces_is_sent_empty() -> None:
    # auth-proxy-set-headers: proxy_set_header lines in the auth location, the same rule.
    from test_extauth_s26 import AUTH, P as AUTH_PREFIX, _headers, _router_pair, _ups
    from _proxy_harness import status_of

    cm = config_map_yaml("auth-headers", "default", {"X-Tenant": "   ", "X-Team": "web"})
    p = _router_pair({AUTH_PREFIX + "auth-proxy-set-headers": "default/auth-headers"}, cm)
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Tenant: mine\r\n\r\n")
    assert status_of(out) == 200
    h = _headers(_ups(p, AUTH)[0])
    assert h[b"x-team"] == [b"web"] and h.get(b"x-tenant") == [b""], h
