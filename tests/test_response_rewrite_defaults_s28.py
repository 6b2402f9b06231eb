"""The ConfigMap's proxy-redirect-from/-to and proxy-cookie-domain/-path (session 28, K1; the
patch to proxy/_annotations.py): defaults.Backend's values, the defaults of the annotations of
the same names (proxy/main.go "config.CookieDomain = defBackend.ProxyCookieDomain")."""

from __future__ import annotations

import pytest

from ingresslib import Router, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib._errors import ValidationError

from _proxy_harness import ProxyPair, Reply
from test_configmap_keys_s28 import manifests

P = "nginx.ingress.kubernetes.io/"
UP = (b"HTTP/1.1 302 Found\r\nLocation: http://internal.svc/x\r\n"
      b"Set-Cookie: a=1; Domain=internal.svc; Path=/app\r\nContent-Length: 0\r\n\r\n")


def answer(data: dict[str, str], ann: dict[str, str] | None = None) -> bytes:
    cfg = parse_config_data(data)
    assert cfg.warnings == ()

    def app(req, body, up):  # type: ignore[no-untyped-def]
        return Reply(UP)
    pair = ProxyPair(router=Router(parse_manifests(manifests(ann)), seed=1),
                     settings=cfg.settings, app=app)
    return pair.send(b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n")


def test_configmap_values_rewrite_locations_without_the_annotations() -> None:
    out = answer({"proxy-redirect-from": "http://internal.svc/", "proxy-redirect-to": "/",
                  "proxy-cookie-domain": "internal.svc app.test",
                  "proxy-cookie-path": "/app /"})
    assert b"\r\nlocation: /x\r\n" in out.lower()
    assert b"domain=app.test; path=/" in out.lower()


def test_an_annotation_beats_the_configmap() -> None:
    out = answer({"proxy-cookie-domain": "internal.svc app.test"},
                 {P + "proxy-cookie-domain": "off"})
    assert b"domain=internal.svc" in out.lower()


def test_defaults_change_nothing_and_bad_values_are_errors() -> None:
    out = answer({})
    assert b"location: http://internal.svc/x" in out.lower()
    with pytest.raises(ValidationError):
        parse_config_data({"proxy-cookie-domain": "a b c"})
    with pytest.raises(ValidationError):
        parse_config_data({"proxy-redirect-from": "~^http://x"})
