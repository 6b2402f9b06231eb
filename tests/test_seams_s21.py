"""Seams between session 21's landings (V21z): a Router subclass's own ``route`` (F21r) under
IngressASGI, which calls every Router with ``query=``."""

from __future__ import annotations

from typing import Any

from ingresslib import Decision, IngressASGI, Router, parse_manifests
from tests._asgi_call import asgi_exchange
from tests._proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml


class _Counted(Router):
    """A subclass written to CONTRACT.md's ``route`` signature (no ``query``), as the proxy
    calls it."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.calls: list[str] = []

    def route(self, method: str, host: str, path: str, headers: Any = (),  # type: ignore[override]
              client_ip: str | None = None) -> Decision | None:
        self.calls.append(path)
        return super().route(method, host, path, headers, client_ip)


def _resources() -> Any:
    return parse_manifests(ingress_yaml("a", "x.test") + WEB_SERVICE_YAML)


async def _web(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"web"})


def test_asgi_calls_a_subclass_route_without_query_as_the_proxy_does() -> None:
    # Was: TypeError "route() got an unexpected keyword argument 'query'" on every request
    # (IngressASGI passed query= to any Router; only wrappers were checked for it).
    router = _Counted(_resources())
    app = IngressASGI(router, {"default/web": _web})
    sent = asgi_exchange(app, "x.test", "/p")
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"web"
    assert router.calls == ["/p"]
    # The proxy core takes the same subclass (it never passes query=).
    p = ProxyPair(router=_Counted(_resources()))
    p.send(b"GET /q?a=1 HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert [o.endpoint for o in p.opens] == [("10.0.0.1", 80)]
    assert p.router.calls == ["/q"]


def test_asgi_still_passes_query_to_a_subclass_route_that_takes_it() -> None:
    seen: list[str | None] = []

    class WithQuery(Router):
        def route(self, method: str, host: str, path: str, headers: Any = (),
                  client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
            seen.append(query)
            return super().route(method, host, path, headers, client_ip, query=query)

    app = IngressASGI(WithQuery(_resources()), {"default/web": _web})
    assert asgi_exchange(app, "x.test", "/p", b"u=7")[0]["status"] == 200
    assert seen == ["u=7"]
