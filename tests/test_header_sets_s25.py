"""Header sets from ConfigMaps: the ``custom-headers`` annotation (proxy/_header_sets.py), the
ConfigMap key ``global-allowed-response-headers``, and ConfigMaps kept in ``Resources``.

Expected values are written from ingress-nginx: internal/ingress/annotations/customheaders/
main.go (``customHeaders.Parse``: ``a.r.GetConfigMap(name)``; ``ValidHeader``
``^[a-zA-Z\\d\\-_]+$``; ``ValidValue``; "header %s is not allowed, defined allowed headers inside
global-allowed-response-headers"), nginx.tmpl (``more_set_headers "{{ $k }}: {{ $v }}";`` in
the location: every answer, the upstream's header of that name replaced) and Kubernetes' core
ValidateConfigMap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Resources, Router, ValidationError, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib._models import ConfigMap, ObjectMeta
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from ingresslib.proxy._header_sets import (CustomHeaders, parse_allowed_headers,
                                           valid_header_value)

from _budget import examples
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml, ok

P = PREFIX
ALLOWED = ProxySettings(global_allowed_response_headers=("X-Frame-Options", "X-Team"))
ANN = {P + "custom-headers": "default/hdrs"}


def config_map_yaml(name: str = "hdrs", data: dict[str, str] | None = None,
                    namespace: str = "default") -> str:
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in (data or {}).items())
    return f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data: {{{body}}}
"""


HDRS = config_map_yaml(data={"X-Frame-Options": "DENY", "X-Team": "web; owner=ops"})


def headers_of(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def pair(annotations: dict[str, str], extra: str = HDRS, app: Any = None,
         settings_: ProxySettings = ALLOWED) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations) + extra + WEB_SERVICE_YAML
    kw = {} if app is None else {"app": app}
    return ProxyPair(router=Router(parse_manifests(docs)), settings=settings_, **kw)


GET = b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n"


# --- ConfigMaps in Resources ------------------------------------------------------------------

def test_config_maps_are_decoded_and_still_kept_aside() -> None:
    res = parse_manifests(HDRS)
    assert [o["kind"] for o in res.ignored] == ["ConfigMap"]  # as before: it routes nothing
    assert res.warnings == ()
    assert res.config_maps == (ConfigMap(ObjectMeta(name="hdrs", namespace="default"),
                                         data={"X-Frame-Options": "DENY",
                                               "X-Team": "web; owner=ops"}),)
    # the official client's snake_case form and binaryData (base64, kept as text)
    res = Resources.from_dicts([{"api_version": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "b"}, "binary_data": {"k": "Zm9v"}}])
    assert res.config_maps[0].binary_data == {"k": "Zm9v"}
    assert res.config_maps[0].metadata.namespace == "default"


def test_invalid_config_maps_are_kept_aside_with_the_api_servers_words() -> None:
    doc = """
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {'a b': x, k: v, num: 1}
binaryData: {k: Zm9}
"""
    res = parse_manifests(doc)  # not refused: a ConfigMap routes nothing (CONTRACT)
    assert res.config_maps == () and len(res.ignored) == 1
    text = "\n".join(str(w) for w in res.warnings)
    assert "ConfigMap default/c: data[num]: Invalid value: 1: expected string, got integer" \
        in text
    assert "not used by custom-headers" in text
    res = parse_manifests(doc.replace(", num: 1", ""))
    assert res.config_maps == () and len(res.ignored) == 1
    text = "\n".join(str(w) for w in res.warnings)
    assert "data[a b]: Invalid value" in text
    assert 'data[k]: Invalid value: "k": duplicate of key present in binaryData' in text
    assert "binaryData[k]: Invalid value: must be valid base64" in text


def test_another_api_version_is_not_read() -> None:
    res = parse_manifests(HDRS.replace("apiVersion: v1", "apiVersion: example.test/v1"))
    assert res.config_maps == () and len(res.ignored) == 1


# --- global-allowed-response-headers ----------------------------------------------------------

def test_allowed_headers_key_is_read_from_the_configmap() -> None:
    cfg = parse_config_data({"global-allowed-response-headers": " X-A, X-B ,, X-A"})
    assert cfg.settings.global_allowed_response_headers == ("X-A", "X-B")
    assert cfg.warnings == ()
    with pytest.raises(ValidationError):
        parse_config_data({"global-allowed-response-headers": "X-A, X B"})
    with pytest.raises(ValueError):
        ProxySettings(global_allowed_response_headers=("X:A",))
    assert parse_allowed_headers("") == ()


# --- the annotation ---------------------------------------------------------------------------

def test_custom_headers_no_longer_warns_not_implemented() -> None:
    assert "custom-headers" in IMPLEMENTED
    opts = parse_route_options(ANN, "/", ALLOWED, where="Ingress default/web",
                               namespace="default")
    assert opts.warnings == ()
    assert opts.custom_headers == CustomHeaders("default", "hdrs",
                                                ("X-Frame-Options", "X-Team"), "")


@pytest.mark.parametrize("value", ["hdrs", "other/hdrs", "default/a/b", "default/h$x", "/hdrs",
                                   "default/"])
def test_a_reference_ingress_nginx_cannot_use_warns(value: str) -> None:
    opts = parse_route_options({P + "custom-headers": value}, "/", ALLOWED,
                               where="Ingress default/web", namespace="default")
    assert opts.custom_headers is None
    assert len(opts.warnings) == 1
    assert opts.warnings[0].startswith(
        "Ingress default/web: annotation nginx.ingress.kubernetes.io/custom-headers: ")


def test_a_canary_does_not_take_custom_headers() -> None:
    opts = parse_route_options({**ANN, P + "canary": "true"}, "/", ALLOWED,
                               where="Ingress default/c", namespace="default")
    assert opts.custom_headers is None


# --- through the proxy core -------------------------------------------------------------------

def test_headers_set_on_every_answer_replacing_the_upstream_ones() -> None:
    p = pair(ANN, app=lambda req, body, up: Reply(
        b"HTTP/1.1 404 Not Found\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Length: 0\r\n\r\n"))
    out = p.send(GET)
    assert out.startswith(b"HTTP/1.1 404 ")
    h = headers_of(out)
    assert h[b"x-frame-options"] == [b"DENY"]
    assert h[b"x-team"] == [b"web; owner=ops"]
    # written as the ConfigMap spells them
    assert b"\r\nX-Frame-Options: DENY\r\n" in out


def test_no_annotation_no_header() -> None:
    out = pair({}).send(GET)
    assert b"x-team" not in headers_of(out)


def test_a_header_not_allowed_refuses_the_whole_set_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    p = pair(ANN, settings_=ProxySettings(global_allowed_response_headers=("X-Team",)))
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        out = p.send(GET)
        p.send(GET)
    h = headers_of(out)
    assert out.startswith(b"HTTP/1.1 200 ") and b"x-team" not in h
    said = [r.getMessage() for r in caplog.records if "custom-headers" in r.getMessage()]
    assert len(said) == 1  # once per set of ConfigMaps, not per request
    assert "Ingress default/web" in said[0] and "'X-Frame-Options' is not listed" in said[0]


def test_nothing_is_allowed_by_default() -> None:
    out = pair(ANN, settings_=ProxySettings()).send(GET)
    assert b"x-team" not in headers_of(out)


def test_missing_config_map_warns_and_a_reload_that_brings_it_applies(
        caplog: pytest.LogCaptureFixture) -> None:
    router = Router(parse_manifests(ingress_yaml("web", "example.test", ANN) + WEB_SERVICE_YAML))
    p = ProxyPair(router=router, settings=ALLOWED)
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        out = p.send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and b"x-team" not in headers_of(out)
    assert any("ConfigMap 'default/hdrs' not found" in r.getMessage() for r in caplog.records)
    router.update(parse_manifests(ingress_yaml("web", "example.test", ANN) + HDRS
                                  + WEB_SERVICE_YAML))
    assert headers_of(p.send(GET))[b"x-team"] == [b"web; owner=ops"]
    # the ConfigMap edited: the new values
    router.update(parse_manifests(ingress_yaml("web", "example.test", ANN) + WEB_SERVICE_YAML
                                  + config_map_yaml(data={"X-Team": "db"})))
    h = headers_of(p.send(GET))
    assert h[b"x-team"] == [b"db"] and b"x-frame-options" not in h


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: s=1", "a\x00b", "caf\u00e9", "", "$host"])
def test_values_that_could_inject_or_expand_are_refused(value: str) -> None:
    out = pair(ANN, extra=config_map_yaml(data={"X-Team": value})).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ")
    h = headers_of(out)
    assert b"x-team" not in h and b"set-cookie" not in h


def test_an_invalid_header_name_is_refused() -> None:
    settings_ = ProxySettings(global_allowed_response_headers=("X-Team",))
    out = pair(ANN, extra=config_map_yaml(data={"X-Team": "a", "X.Other": "b"}),
               settings_=settings_).send(GET)
    assert b"x-team" not in headers_of(out)


def test_denied_location_gets_no_custom_headers() -> None:
    p = pair({**ANN, P + "auth-type": "basic", P + "auth-secret": "missing"})
    out = p.send(GET)
    assert out.startswith(b"HTTP/1.1 503 ") and b"x-team" not in headers_of(out)


def test_a_config_map_of_another_namespace_with_the_same_name_is_not_used() -> None:
    out = pair(ANN, extra=config_map_yaml(namespace="other",
                                          data={"X-Team": "x"})).send(GET)
    assert b"x-team" not in headers_of(out)


# The edges of "printable" always, then random text (CI: 1,200 values; 12,000 checked nothing
# more: the property is per character, and each of these characters is an example of its own).
@settings(max_examples=examples(4), deadline=None)
@given(st.text(max_size=12))
@example("")
@example(" ")
@example("~")
@example(" a ~")
@example("\x1f")
@example("\x7f")
@example("a\r\nX-Evil: 1")
@example("a\nb")
@example("a\rb")
@example("\x00")
@example("\t")
@example("é")
@example("\x80")
@example("\u2028")
def test_only_printable_values_pass(value: str) -> None:
    if valid_header_value(value):
        assert value and all(" " <= c <= "~" for c in value)
    h = CustomHeaders("default", "hdrs", ("X-Team",), "Ingress default/web")
    cm = ConfigMap(ObjectMeta(name="hdrs", namespace="default"), data={"X-Team": value})
    found, problem = h.resolve((cm,))
    if found:
        # (the spaces around it dropped: session 34, tests/test_x21_s34.py)
        assert problem is None and found == ((b"X-Team", value.strip(" ").encode("ascii")),)
        assert b"\r" not in found[0][1] and b"\n" not in found[0][1]
    else:
        assert problem is not None


# --- through IngressASGI ----------------------------------------------------------------------

async def _backend(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-frame-options", b"ALLOW")]})
    await send({"type": "http.response.body", "body": b"app"})


def asgi(res: Resources, settings_: ProxySettings = ALLOWED, path: str = "/x",
         method: str = "GET", origin: str | None = None) -> tuple[int, dict[bytes, list[bytes]]]:
    app = IngressASGI(res, backends={"default/web": _backend}, settings=settings_)
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"host", b"example.test")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": headers}
    asyncio.run(app(scope, receive, send))
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return sent[0]["status"], found


def test_asgi_sets_the_headers_on_the_apps_response() -> None:
    status, h = asgi(parse_manifests(ingress_yaml("web", "example.test", ANN) + HDRS))
    assert status == 200
    assert h[b"x-frame-options"] == [b"DENY"]  # the app's replaced
    assert h[b"x-team"] == [b"web; owner=ops"]
    status, h = asgi(parse_manifests(ingress_yaml("web", "example.test", ANN)))
    assert status == 200 and h[b"x-frame-options"] == [b"ALLOW"] and b"x-team" not in h


def test_asgi_with_cors_both_sets_and_the_preflight_too() -> None:
    ann = {**ANN, P + "enable-cors": "true"}
    res = parse_manifests(ingress_yaml("web", "example.test", ann) + HDRS)
    status, h = asgi(res, method="OPTIONS", origin="https://a.test")
    assert status == 204 and h[b"x-team"] == [b"web; owner=ops"]
    assert h[b"access-control-allow-origin"] == [b"*"]
    status, h = asgi(res, origin="https://a.test")
    assert status == 200 and h[b"x-team"] == [b"web; owner=ops"]
    assert h[b"access-control-allow-origin"] == [b"*"]


def test_core_preflight_carries_them_as_asgi() -> None:
    p = pair({**ANN, P + "enable-cors": "true"})
    out = p.send(b"OPTIONS /x HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 204 ")
    assert headers_of(out)[b"x-team"] == [b"web; owner=ops"]


def test_ok_helper_still_used() -> None:
    # (the harness's ``ok`` reply through a custom-headers route: the body is untouched)
    out = pair(ANN, app=lambda req, body, up: ok(b"hi")).send(GET)
    assert out.endswith(b"\r\n\r\nhi")


def test_serve_files_read_the_config_maps(tmp_path: Any) -> None:
    # serve -f / check read the manifests with load_manifests: the ConfigMap of a file is there
    from ingresslib import load_manifests

    (tmp_path / "app.yaml").write_text(ingress_yaml("web", "example.test", ANN) + WEB_SERVICE_YAML)
    (tmp_path / "headers.yaml").write_text(HDRS)
    res = load_manifests(str(tmp_path))
    assert [c.metadata.ref for c in res.config_maps] == ["default/hdrs"]
    p = ProxyPair(router=Router(res), settings=ALLOWED)
    assert headers_of(p.send(GET))[b"x-team"] == [b"web; owner=ops"]


def test_a_config_map_only_edit_changes_the_config_hash() -> None:
    # config_hash left ConfigMaps out: an edit of a custom-headers ConfigMap alone was served
    # (the router's resources swapped) with the hash unchanged.
    from ingresslib._serve import config_digest
    from ingresslib._table import served_ingresses

    def digest(value: str) -> str:
        res = parse_manifests(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hdrs, namespace: default}\n"
            f"data: {{X-A: {value}}}\n")
        return config_digest(res, served_ingresses(res, None, None)[0])

    assert digest("one") != digest("two")
    assert digest("one") == digest("one")
