"""Review of the www twin / hooks landing (R18e, session 18).

- IngressASGI called its ``request_id`` callable unguarded: a raise became the ASGI server's
  500 for every request without a usable X-Request-ID. It now does as the proxy core
  (``Proxy._request_id_failed``): the app is still called with a generated id, and the
  failure is logged on ``ingresslib.asgi`` at most once a minute (``HookFailures``).
- Property: the proxy core, IngressASGI and ``explain`` agree on which hosts a
  ``from-to-www-redirect`` twin's own server answers, over random tables with twins, ``*.``
  rules, host-less rules, rules without the annotation and a catch-all default backend, and
  over request hosts in upper case, with a trailing dot, a port or an IPv6 literal.
"""

from __future__ import annotations

import logging
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, parse_manifests
from ingresslib._explain import explain_url
from ingresslib._router import Router
from ingresslib.proxy import _actions

sys.path.insert(0, str(Path(__file__).parent))
from _asgi_call import asgi_get  # noqa: E402
from _proxy_harness import ingress_yaml  # noqa: E402
from test_www_twin_s18 import CATCH_ALL, WWW, _core  # noqa: E402


class _Clock:
    """Stands in for the ``time`` module where ``HookFailures`` reads it."""

    def __init__(self, now: list[float]) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now[0]


_asgi_call = asgi_get


# -- IngressASGI: a raising request_id ----------------------------------------------------------

def test_asgi_request_id_that_raises_gets_a_generated_id_and_one_log_a_minute(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[bytes | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"]).get(b"x-request-id"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    calls = 0

    def broken() -> str:
        nonlocal calls
        calls += 1
        raise RuntimeError("id service down")

    clock = [1000.0]
    monkeypatch.setattr(_actions, "time", _Clock(clock), raising=False)
    asgi = IngressASGI(parse_manifests(ingress_yaml("a", "a.test")),
                       backends={"default/web": app}, request_id=broken)
    with caplog.at_level(logging.ERROR, logger="ingresslib.asgi"):
        for _ in range(5):
            assert _asgi_call(asgi, "a.test")[0] == 200
        clock[0] += 61.0
        assert _asgi_call(asgi, "a.test")[0] == 200
    assert calls == 6
    # Each request still carries an id, nginx's $request_id form, and a fresh one.
    assert len(seen) == 6 and all(v is not None and re.fullmatch(rb"[0-9a-f]{32}", v)
                                  for v in seen)
    assert len(set(seen)) == 6
    logged = [r for r in caplog.records if r.name == "ingresslib.asgi"]
    # The first failure, then the one a minute later naming the four not logged between.
    assert [r.getMessage() for r in logged] == [
        "request_id failed; going on without it",
        "request_id failed (4 more times since the last report); going on without it"]
    assert all(r.exc_info is not None for r in logged)


def test_asgi_request_id_returning_non_ascii_gets_a_generated_id() -> None:
    seen: list[bytes | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"]).get(b"x-request-id"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(parse_manifests(ingress_yaml("a", "a.test")),
                       backends={"default/web": app}, request_id=lambda: "\u00e9t\u00e9")
    assert _asgi_call(asgi, "a.test")[0] == 204
    assert seen[0] is not None and re.fullmatch(rb"[0-9a-f]{32}", seen[0])


# -- the www twin: core, IngressASGI and explain agree -------------------------------------------

_RULE_HOSTS = ["a.test", "www.a.test", "*.a.test", "", "b.test", "www.b.test", "*.test"]
_REQUEST_HOSTS = ["a.test", "www.a.test", "WWW.A.test.", "www.a.test:81", "b.test",
                  "www.b.test", "WWW.B.TEST:8080", "c.a.test", "zz.test", "[::1]", "x"]


def _random_table(rnd: random.Random) -> str:
    # The first Ingress always asks for a twin of a plain host (it may still lose it to a
    # rule naming the twin): the property is not vacuous.
    docs = [ingress_yaml(f"i{i}", rnd.choice(_RULE_HOSTS[:2] if i == 0 else _RULE_HOSTS),
                         dict(WWW) if i == 0 or rnd.random() < 0.6 else {},
                         created=f"2024-01-0{i + 1}T00:00:00Z",
                         path=rnd.choice(["/", "/x", "/y"]))
            for i in range(rnd.randint(1, 4))]
    if rnd.random() < 0.3:
        docs.append(CATCH_ALL)
    return "".join(docs)


@pytest.mark.parametrize("seed", range(6))
def test_core_asgi_and_explain_agree_on_www_twins(seed: int) -> None:
    rnd = random.Random(seed)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    twins_seen = 0
    for _ in range(4):
        manifests = _random_table(rnd)
        table = Router(parse_manifests(manifests)).table
        asgi = IngressASGI(parse_manifests(manifests), backends={"default/web": app})
        for host in _REQUEST_HOSTS:
            core = _core(manifests, host)
            status, headers = _asgi_call(asgi, host)
            explained = explain_url(table, f"http://{host}/x?q=1")
            twin = core[0] == 308
            assert (status == 308, explained["status"] == 308) == (twin, twin), \
                (host, core, status, explained["status"], manifests)
            if twin:
                twins_seen += 1
                assert headers.get(b"location") == core[1]
                assert "from-to-www-redirect twin" in explained["reason"]
    assert twins_seen > 0


# -- IngressASGI: backends that fit no served rule are named (W18's suggestion) -----------------

SHOP = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {name: http}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _mount_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "ingresslib.asgi" and r.levelno == logging.WARNING]


def test_a_key_of_another_namespace_and_the_unmounted_backends_are_named(
        caplog: pytest.LogCaptureFixture) -> None:
    asgi = IngressASGI(parse_manifests(SHOP), backends={"default/site:http": _ok})
    with caplog.at_level(logging.WARNING, logger="ingresslib.asgi"):
        for _ in range(3):
            assert _asgi_call(asgi, "shop.test", "/")[0] == 503
    warnings = _mount_warnings(caplog)
    assert len(warnings) == 1  # once per table, not per request
    assert "'default/site:http' name no backend" in warnings[0]
    assert "'shop/api:80', 'shop/site:http' have no app" in warnings[0]


@pytest.mark.parametrize("keys", [
    ("shop/api:80", "shop/site:http"),      # the ports as written
    ("shop/api:8080", "shop/site"),         # the resolved target port; any port
    ("shop/api", "shop/site:http"),
])
def test_a_fully_mounted_set_is_silent(keys: tuple[str, ...],
                                       caplog: pytest.LogCaptureFixture) -> None:
    asgi = IngressASGI(parse_manifests(SHOP), backends=dict.fromkeys(keys, _ok))
    with caplog.at_level(logging.WARNING, logger="ingresslib.asgi"):
        assert _asgi_call(asgi, "shop.test", "/api/x")[0] == 200
        assert _asgi_call(asgi, "shop.test", "/")[0] == 200
    assert _mount_warnings(caplog) == []


def test_with_a_fallback_only_unused_keys_are_named(caplog: pytest.LogCaptureFixture) -> None:
    asgi = IngressASGI(parse_manifests(SHOP), backends={"shop/api:81": _ok}, fallback=_ok)
    with caplog.at_level(logging.WARNING, logger="ingresslib.asgi"):
        _asgi_call(asgi, "shop.test", "/")
    (warning,) = _mount_warnings(caplog)
    assert "'shop/api:81' name no backend" in warning and "no app" not in warning


def test_an_update_that_unmounts_a_backend_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    asgi = IngressASGI(parse_manifests(SHOP),
                       backends={"shop/api:8080": _ok, "shop/site": _ok})
    with caplog.at_level(logging.WARNING, logger="ingresslib.asgi"):
        _asgi_call(asgi, "shop.test", "/")
        assert _mount_warnings(caplog) == []
        # The Service now sends port 80 to 9090: the key naming 8080 no longer fits (the
        # table is kept: only a Service changed).
        asgi.update(parse_manifests(SHOP.replace("targetPort: 8080", "targetPort: 9090")
                                    .replace("[{port: 8080}]", "[{port: 9090}]")))
        _asgi_call(asgi, "shop.test", "/")
    (warning,) = _mount_warnings(caplog)
    assert "'shop/api:8080' name no backend" in warning
    assert "'shop/api:80' have no app" in warning
