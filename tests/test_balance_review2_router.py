"""Persistent affinity cookies through the Router, once ``_router.py`` passes the backend to
``make_balancer`` (session 12, second balancer review; see tests/test_balance_review2.py for the
quoted ingress-nginx code). The salt is ingress-nginx's upstream name of the rule's backend,
``<namespace>-<service>-<port as written in the Ingress>`` (util.go ``upstreamName``), and the
value is ``md5(salt .. "ip:port") .. "|" .. md5(md5(salt) .. salt)`` (nodemap.lua, sticky.lua).
Each test failed before that change (the Router wrote the unsalted ``md5("ip:port")``)."""

from __future__ import annotations

import hashlib

import pytest

from ingresslib._models import ServicePort
from ingresslib._router import Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, service, simple_backend, slice_

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
PERSISTENT = {P + "affinity": "cookie", P + "affinity-mode": "persistent",
              P + "session-cookie-name": "sid"}


def ngx_md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def lua_value(backend_name: str, ip: str, port: int) -> str:
    return (ngx_md5(backend_name + f"{ip}:{port}") + "|"
            + ngx_md5(ngx_md5(backend_name) + backend_name))


@pytest.mark.parametrize(("port", "name"), [(80, "shop-web-80"), ("http", "shop-web-http")])
def test_router_persistent_cookie_is_salted_with_the_upstream_name(port: int | str,
                                                                    name: str) -> None:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", port)], PERSISTENT, ns="shop")
    svc = service("web", [ServicePort(port=80, target_port=8080, name="http")], ns="shop")
    r = Router(resources(ing, svc, slice_("web-1", "web", IPS, (("http", 8080),), ns="shop")), seed=1)
    for _ in range(3):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is not None and d.set_cookie is not None
        value = d.set_cookie.split(";")[0].split("=", 1)[1]
        assert value == lua_value(name, *d.endpoint)
        # ... and a request carrying it (or ingress-nginx's cookie for the same backend) sticks.
        again = r.route("GET", "a.test", "/", {"Cookie": f"sid={value}"})
        assert again is not None and again.endpoint == d.endpoint and again.set_cookie is None


def test_router_canary_side_is_salted_with_the_canary_upstream() -> None:
    # ingress-nginx: the canary backend is its own upstream, "<ns>-<canary service>-<port>",
    # whose sticky balancer salts with that name.
    res = resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)], PERSISTENT),
        canary("web-c", "a.test", "/", "web-canary", 80, {P + "canary-weight": "100"}),
        *simple_backend("web", IPS), *simple_backend("web-canary", ["10.1.0.1"]))
    r = Router(res, seed=1)
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.canary and d.set_cookie is not None
    value = d.set_cookie.split(";")[0].split("=", 1)[1]
    assert value == lua_value("default-web-canary-80", "10.1.0.1", 8080)
