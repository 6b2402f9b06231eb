"""The controller ConfigMap keys ``add-headers`` and ``hide-headers`` (proxy/_header_sets.py).

Expected values are written from ingress-nginx: internal/ingress/controller/config/config.go
(``AddHeaders string `json:"add-headers"```, ``HideHeaders []string `json:"hide-headers"```),
controller.go (``addHeaders``: ``n.store.GetConfigMap(cfg.AddHeaders)``, a missing one warned
and nothing added), nginx.tmpl (http block: ``more_set_headers "K: V";`` for each entry,
``proxy_hide_header NAME;`` for each hidden name) and headers-more's merge_loc_conf (the http
block's commands run before the location's: a location's CORS / custom-headers win a name).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from ingresslib import IngressASGI, Resources, Router, ValidationError, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX
from ingresslib.proxy._header_sets import hidden_names, parse_add_headers

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

P = PREFIX
GET = b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n"


def config_map_yaml(name: str = "global", data: dict[str, str] | None = None,
                    namespace: str = "ingress") -> str:
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in (data or {}).items())
    return f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data: {{{body}}}
"""


GLOBAL = config_map_yaml(data={"X-Site": "main", "X-Frame-Options": "SAMEORIGIN"})
ADD = ProxySettings(add_headers="ingress/global")


def headers_of(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def pair(settings_: ProxySettings, extra: str = GLOBAL, app: Any = None,
         annotations: dict[str, str] | None = None) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations or {}) + extra + WEB_SERVICE_YAML
    kw = {} if app is None else {"app": app}
    return ProxyPair(router=Router(parse_manifests(docs)), settings=settings_, **kw)


def upstream(*lines: bytes, status: bytes = b"200 OK") -> Any:
    head = b"HTTP/1.1 " + status + b"\r\n" + b"".join(line + b"\r\n" for line in lines)
    return lambda req, body, up: Reply(head + b"Content-Length: 2\r\n\r\nok")


# --- the ConfigMap keys -----------------------------------------------------------------------

def test_keys_are_read_and_no_longer_warn_not_implemented() -> None:
    cfg = parse_config_data({"add-headers": " ingress/global ", "hide-headers":
                             "X-Powered-By, Server ,,X-Powered-By"})
    assert cfg.warnings == ()
    assert cfg.settings.add_headers == "ingress/global"
    assert cfg.settings.hide_headers == ("X-Powered-By", "Server")
    assert parse_config_data({"add-headers": ""}).settings.add_headers == ""


@pytest.mark.parametrize("value", ["global", "ingress/a/b", "ingress/$x", "/global", "ingress/"])
def test_an_add_headers_value_that_names_no_configmap_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_config_data({"add-headers": value})
    with pytest.raises(ValueError):
        ProxySettings(add_headers=value)


def test_an_invalid_hidden_name_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_config_data({"hide-headers": "X-A, X B"})
    with pytest.raises(ValueError):
        ProxySettings(hide_headers=("X:A",))
    assert parse_add_headers("  ") is None


# --- add-headers through the proxy core -------------------------------------------------------

def test_add_headers_on_every_answer_replacing_the_upstreams() -> None:
    p = pair(ADD, app=upstream(b"X-Frame-Options: DENY", status=b"404 Not Found"))
    out = p.send(GET)
    assert out.startswith(b"HTTP/1.1 404 ")
    h = headers_of(out)
    assert h[b"x-site"] == [b"main"]
    assert h[b"x-frame-options"] == [b"SAMEORIGIN"]  # more_set_headers replaces
    assert b"\r\nX-Site: main\r\n" in out  # as the ConfigMap spells it


def test_add_headers_on_the_proxys_own_answers_too() -> None:
    # http block: the unrouted 404 and a denied location's 503 carry them (custom-headers,
    # a location's, do not).
    p = pair(ADD)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and headers_of(out)[b"x-site"] == [b"main"]
    p = pair(ADD, annotations={P + "auth-type": "basic", P + "auth-secret": "missing"})
    out = p.send(GET)
    assert out.startswith(b"HTTP/1.1 503 ") and headers_of(out)[b"x-site"] == [b"main"]


def test_no_key_no_header() -> None:
    out = pair(ProxySettings()).send(GET)
    assert b"x-site" not in headers_of(out)


def test_a_locations_custom_headers_win_a_shared_name() -> None:
    extra = GLOBAL + config_map_yaml("hdrs", {"X-Frame-Options": "DENY"}, "default")
    settings_ = ProxySettings(add_headers="ingress/global",
                              global_allowed_response_headers=("X-Frame-Options",))
    out = pair(settings_, extra, annotations={P + "custom-headers": "default/hdrs"}).send(GET)
    h = headers_of(out)
    assert h[b"x-frame-options"] == [b"DENY"] and h[b"x-site"] == [b"main"]


def test_cors_wins_a_shared_name() -> None:
    extra = config_map_yaml(data={"Access-Control-Allow-Origin": "https://other.test"})
    p = pair(ADD, extra, annotations={P + "enable-cors": "true"})
    out = p.send(b"GET /x HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test\r\n\r\n")
    assert headers_of(out)[b"access-control-allow-origin"] == [b"*"]


def test_missing_configmap_warns_once_and_a_reload_that_brings_it_applies(
        caplog: pytest.LogCaptureFixture) -> None:
    base = ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML
    router = Router(parse_manifests(base))
    p = ProxyPair(router=router, settings=ADD)
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        out = p.send(GET)
        p.send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and b"x-site" not in headers_of(out)
    said = [r.getMessage() for r in caplog.records if "add-headers" in r.getMessage()]
    assert len(said) == 1 and "ConfigMap 'ingress/global' not found" in said[0]
    router.update(parse_manifests(base + GLOBAL))
    assert headers_of(p.send(GET))[b"x-site"] == [b"main"]
    router.update(parse_manifests(base + config_map_yaml(data={"X-Site": "edited"})))
    assert headers_of(p.send(GET))[b"x-site"] == [b"edited"]


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: s=1", "a\x00b", "caf\u00e9", "", "$host"])
def test_values_that_could_inject_or_expand_refuse_the_set(value: str) -> None:
    out = pair(ADD, config_map_yaml(data={"X-Site": value, "X-Other": "ok"})).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ")
    h = headers_of(out)
    assert b"x-site" not in h and b"x-other" not in h and b"set-cookie" not in h


def test_add_headers_need_no_allowed_list() -> None:
    # global-allowed-response-headers limits custom-headers only (the template writes
    # add-headers' entries unchecked).
    out = pair(ProxySettings(add_headers="ingress/global",
                             global_allowed_response_headers=("X-Other",))).send(GET)
    assert headers_of(out)[b"x-site"] == [b"main"]


# --- hide-headers through the proxy core ------------------------------------------------------

def test_hide_headers_drop_the_upstreams_headers_of_those_names() -> None:
    app = upstream(b"X-Powered-By: PHP", b"x-powered-by: again", b"X-Kept: 1",
                   b"X-Secret: s")
    out = pair(ProxySettings(hide_headers=("X-Powered-By", "x-SECRET")), app=app).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nok")
    h = headers_of(out)
    assert b"x-powered-by" not in h and b"x-secret" not in h and h[b"x-kept"] == [b"1"]


def test_hide_headers_never_hide_this_hops_own_headers() -> None:
    # proxy_hide_header acts on the upstream's headers; more_set_headers come after it.
    settings_ = ProxySettings(add_headers="ingress/global", hide_headers=("X-Site",))
    out = pair(settings_, app=upstream(b"X-Site: upstream")).send(GET)
    assert headers_of(out)[b"x-site"] == [b"main"]


def test_hide_headers_leave_the_framing_alone() -> None:
    assert hidden_names(("Content-Length", "Transfer-Encoding", "X-A")) == {b"x-a"}
    out = pair(ProxySettings(hide_headers=("Content-Length",))).send(GET)
    assert b"content-length" in headers_of(out)


def test_a_hidden_upstream_hsts_is_replaced_by_ours() -> None:
    docs = ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML
    p = ProxyPair(router=Router(parse_manifests(docs)), tls=True,
                  settings=ProxySettings(hide_headers=("Strict-Transport-Security",)),
                  app=upstream(b"Strict-Transport-Security: max-age=1"))
    h = headers_of(p.send(GET))
    assert h[b"strict-transport-security"] == [b"max-age=31536000; includeSubDomains"]


def test_hide_headers_on_a_switching_protocols_answer() -> None:
    app = lambda req, body, up: Reply(  # noqa: E731
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"X-Powered-By: ws\r\nX-Kept: 1\r\n\r\n")
    p = pair(ProxySettings(hide_headers=("X-Powered-By",)), app=app)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 101 ")
    h = headers_of(out)
    assert b"x-powered-by" not in h and h[b"x-kept"] == [b"1"]


# --- through IngressASGI ----------------------------------------------------------------------

async def _backend(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-frame-options", b"DENY"),
                            (b"x-powered-by", b"app"), (b"x-site", b"app")]})
    await send({"type": "http.response.body", "body": b"app"})


def asgi(res: Resources, settings_: ProxySettings, host: str = "example.test",
         method: str = "GET", origin: str | None = None) -> tuple[int, dict[bytes, list[bytes]]]:
    app = IngressASGI(res, backends={"default/web": _backend}, settings=settings_)
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": headers}
    asyncio.run(app(scope, receive, send))
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return sent[0]["status"], found


RES = parse_manifests(ingress_yaml("web", "example.test", {}) + GLOBAL)


def test_asgi_add_headers_on_the_apps_answer_and_its_own() -> None:
    status, h = asgi(RES, ADD)
    assert status == 200
    assert h[b"x-site"] == [b"main"] and h[b"x-frame-options"] == [b"SAMEORIGIN"]
    status, h = asgi(RES, ADD, host="nobody.test")
    assert status == 404 and h[b"x-site"] == [b"main"]
    status, h = asgi(parse_manifests(ingress_yaml("web", "example.test", {})), ADD)
    assert status == 200 and h[b"x-site"] == [b"app"]  # no ConfigMap: nothing added


def test_asgi_cors_wins_and_the_preflight_carries_add_headers() -> None:
    res = parse_manifests(ingress_yaml("web", "example.test", {P + "enable-cors": "true"})
                          + config_map_yaml(data={"X-Site": "main",
                                                  "Access-Control-Allow-Origin": "x"}))
    status, h = asgi(res, ADD, method="OPTIONS", origin="https://a.test")
    assert status == 204 and h[b"x-site"] == [b"main"]
    assert h[b"access-control-allow-origin"] == [b"*"]
    status, h = asgi(res, ADD, origin="https://a.test")
    assert status == 200 and h[b"x-site"] == [b"main"]
    assert h[b"access-control-allow-origin"] == [b"*"]


def test_asgi_hide_headers() -> None:
    status, h = asgi(RES, ProxySettings(hide_headers=("X-Powered-By", "X-SITE")))
    assert status == 200 and b"x-powered-by" not in h and b"x-site" not in h
    assert h[b"x-frame-options"] == [b"DENY"]
    # the hidden name set again by add-headers: this hop's, kept
    status, h = asgi(RES, ProxySettings(add_headers="ingress/global", hide_headers=("X-Site",)))
    assert h[b"x-site"] == [b"main"] and b"x-powered-by" in h


# --- proxy-set-headers ------------------------------------------------------------------------

SET = ProxySettings(proxy_set_headers="ingress/upstream")
SET_CM = config_map_yaml("upstream", {"X-Env": "prod", "X-Drop": "", "X-Team": "web"})
ASKED = (b"GET /x HTTP/1.1\r\nHost: example.test\r\nX-Env: client\r\nx-env: again\r\n"
         b"X-Drop: mine\r\nX-Kept: 1\r\n\r\n")


def recording() -> tuple[list[list[tuple[bytes, bytes]]], Any]:
    seen: list[list[tuple[bytes, bytes]]] = []

    def app(req: Any, body: bytes, up: Any) -> Reply:
        seen.append([(bytes(n), bytes(v)) for n, v in req.headers])
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return seen, app


def test_proxy_set_headers_key_is_read() -> None:
    cfg = parse_config_data({"proxy-set-headers": "ingress/upstream"})
    assert cfg.warnings == () and cfg.settings.proxy_set_headers == "ingress/upstream"
    with pytest.raises(ValidationError):
        parse_config_data({"proxy-set-headers": "upstream"})
    with pytest.raises(ValueError):
        ProxySettings(proxy_set_headers="a/b/c")


def test_proxy_set_headers_replace_the_clients_and_an_empty_one_drops_it() -> None:
    seen, app = recording()
    out = pair(SET, SET_CM, app=app).send(ASKED)
    assert out.startswith(b"HTTP/1.1 200 ")
    h = seen[0]
    assert [v for n, v in h if n == b"x-env"] == [b"prod"]
    assert [v for n, v in h if n == b"x-team"] == [b"web"]
    assert not [v for n, v in h if n == b"x-drop"]  # nginx sends no empty proxy_set_header
    assert [v for n, v in h if n == b"x-kept"] == [b"1"]
    # this hop's own headers are still there, once
    assert [v for n, v in h if n == b"host"] == [b"example.test"]
    assert len([v for n, v in h if n == b"x-forwarded-for"]) == 1


def test_a_name_ingresslib_writes_itself_refuses_the_set(
        caplog: pytest.LogCaptureFixture) -> None:
    # nginx.tmpl's proxy_set_header Host/X-Forwarded-For lines come first: a ConfigMap entry of
    # the same name would send the header twice.
    for name in ("Host", "X-Forwarded-For", "x-real-ip", "X-Request-ID", "Connection",
                 "Content-Length", "Transfer-Encoding"):
        seen, app = recording()
        extra = config_map_yaml("upstream", {name: "evil.test", "X-Env": "prod"})
        with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
            out = pair(SET, extra, app=app).send(GET)
        assert out.startswith(b"HTTP/1.1 200 "), name
        h = seen[0]
        assert not [n for n, _ in h if n == b"x-env"], name
        assert [v for n, v in h if n == b"host"] == [b"example.test"], name
        assert b"evil.test" not in b"".join(v for _, v in h), name
    said = [r.getMessage() for r in caplog.records if "proxy-set-headers" in r.getMessage()]
    assert said and "writes or drops itself" in said[-1]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\x00b", "$remote_addr", "caf\u00e9"])
def test_proxy_set_header_values_that_could_inject_or_expand_refuse_the_set(value: str) -> None:
    seen, app = recording()
    pair(SET, config_map_yaml("upstream", {"X-Env": value, "X-Team": "web"}), app=app).send(GET)
    names = [n for n, _ in seen[0]]
    assert b"x-env" not in names and b"x-team" not in names and b"x-injected" not in names


def test_missing_proxy_set_headers_configmap_sets_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    seen, app = recording()
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        pair(SET, "", app=app).send(ASKED)
    assert [v for n, v in seen[0] if n == b"x-env"] == [b"client", b"again"]
    assert any("ConfigMap 'ingress/upstream' not found" in r.getMessage()
               for r in caplog.records)


def test_asgi_proxy_set_headers() -> None:
    got: list[list[tuple[bytes, bytes]]] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        got.append([(bytes(n), bytes(v)) for n, v in scope["headers"]])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    res = parse_manifests(ingress_yaml("web", "example.test", {}) + SET_CM)
    app = IngressASGI(res, backends={"default/web": backend}, settings=SET)

    async def send(m: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    for connection in ([], [(b"connection", b"x-kept")]):  # the scan's path, the general one
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
                 "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
                 "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"example.test"), (b"x-env", b"client"),
                             (b"x-drop", b"mine"), (b"x-kept", b"1")] + connection}
        asyncio.run(app(scope, receive, send))
        h = got[-1]
        assert [v for n, v in h if n == b"x-env"] == [b"prod"]
        assert [v for n, v in h if n == b"x-team"] == [b"web"]
        assert not [v for n, v in h if n == b"x-drop"]
        assert [v for n, v in h if n == b"host"] == [b"example.test"]
