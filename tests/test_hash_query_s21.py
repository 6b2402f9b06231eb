"""The proxy core routes with the request's query (V21z): ``upstream-hash-by`` on
``$arg_NAME``/``$args``/``$request_uri`` picks as ``Router.route(..., query=...)`` and as
IngressASGI do (the core called route without it: every request hashed an empty query)."""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import Decision, Router, parse_manifests
from tests._proxy_harness import ProxyPair, ingress_yaml, web_service_yaml

_FIVE = web_service_yaml(5)


def _router(hash_by: str, cls: type[Router] = Router) -> Router:
    return cls(parse_manifests(ingress_yaml(
        "a", "x.test", {"nginx.ingress.kubernetes.io/upstream-hash-by": hash_by}) + _FIVE))


@pytest.mark.parametrize("hash_by", ["$arg_u", "$args", "$request_uri"])
def test_proxy_hashes_the_query_as_the_router_does(hash_by: str) -> None:
    router = _router(hash_by)
    picked = []
    for i in range(12):
        want = router.route("GET", "x.test", "/p", (), None, query=f"u={i}")
        assert want is not None
        p = ProxyPair(router=router)
        p.send(f"GET /p?u={i} HTTP/1.1\r\nHost: x.test\r\n\r\n".encode())
        assert [o.endpoint for o in p.opens] == [want.endpoint], i
        picked.append(want.endpoint)
    assert len(set(picked)) > 1  # the query does move the key


def test_proxy_calls_a_route_without_query_as_before() -> None:
    class NoQuery(Router):
        def route(self, method: str, host: str, path: str, headers: Any = (),  # type: ignore[override]
                  client_ip: str | None = None) -> Decision | None:
            return super().route(method, host, path, headers, client_ip)

    p = ProxyPair(router=_router("$arg_u", NoQuery))
    p.send(b"GET /p?u=1 HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert len(p.opens) == 1


def test_explain_hashes_the_query_as_the_router_does() -> None:
    # explain asks the proxy core (its own route call): it showed 10.0.0.1 for every query.
    import ingresslib

    router = _router("$arg_u")
    got = [ingresslib.explain(router.resources, f"http://x.test/p?u={i}")["decision"]["endpoint"]
           for i in range(8)]
    want = []
    for i in range(8):
        d = router.route("GET", "x.test", "/p", (), None, query=f"u={i}")
        assert d is not None and d.endpoint is not None
        want.append("%s:%d" % d.endpoint)
    assert got == want and len(set(got)) > 1
