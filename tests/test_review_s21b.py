"""Review of session 21's library landings (R21b): guards for what the review found.

- Two ``shutdown`` calls at once (``serve_until`` whose ``stop`` is set while an ``async with``
  block around it ends, or a cancelled ``serve_until`` beside an explicit ``shutdown()``): the
  second replaced the drain event the first waited on, so the first waited out its whole
  grace period (10 s by default) after the last request had finished.
- ``ProxyServer(router, load_balance=...)`` with a Router subclass whose ``load_balance``
  differs rebuilt it as a plain Router: the subclass's own ``route`` (called by the proxy
  since F21r, docs/router.md) was silently dropped. Now a TypeError says to pass
  ``load_balance`` to the subclass; a subclass already balancing that way is kept as it is.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxyServer

sys.path.insert(0, str(Path(__file__).parent))
from _server_helpers import StubRouter  # noqa: E402
from test_server_life_s21 import Upstream, fetch, port_of  # noqa: E402


@pytest.mark.asyncio
async def test_two_shutdowns_at_once_both_end_when_the_last_request_does() -> None:
    upstream = Upstream()
    async with upstream as ep:
        server = ProxyServer(StubRouter([ep]))
        await server.start(("127.0.0.1", 0))
        request = asyncio.create_task(fetch(port_of(server)))
        await asyncio.wait_for(upstream.got.wait(), 5)
        first = asyncio.create_task(server.shutdown(30))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(server.shutdown(30))
        await asyncio.sleep(0.01)
        assert not first.done() and not second.done()   # the request in flight is waited for
        upstream.release.set()
        out = await asyncio.wait_for(request, 5)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok")
        done, _ = await asyncio.wait({first, second}, timeout=5)
        assert done == {first, second}, "a shutdown went on waiting for a drained server"


class Mine(Router):
    def route(self, *args: Any, **kw: Any) -> Any:
        return super().route(*args, **kw)


WEB = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


@pytest.mark.asyncio
async def test_load_balance_never_drops_a_router_subclass() -> None:
    mine = Mine(parse_manifests(WEB))
    # Session 22: the value is applied to the subclass itself (kept, its own route called).
    kept = ProxyServer(mine, load_balance="ewma")
    assert kept.router is mine and type(kept.router) is Mine and mine.load_balance == "ewma"
    plain = ProxyServer(Router(parse_manifests(WEB)), load_balance="ewma")
    assert type(plain.router) is Router and plain.router.load_balance == "ewma"


def test_an_unread_apiversion_note_holds_no_lone_surrogate() -> None:
    # Ignored objects are kept as given, so a name read from a dict with a lone surrogate
    # reached the note check and explain print (UnicodeEncodeError on a UTF-8 stream).
    from ingresslib._decode import unread_versions

    (note,) = unread_versions([{"apiVersion": "extensions/v1beta1", "kind": "Ingress",
                                "metadata": {"name": "we\udce9b", "namespace": "ns"}}])
    note.encode("utf-8")
    assert note.startswith("Ingress ns/we\ufffdb: apiVersion extensions/v1beta1 is not read")
