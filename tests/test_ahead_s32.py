"""proxy-buffering's read-ahead budget (``ProxyServer.ahead_held``) when ``send_timeout`` cuts a
client that never reads.

A whole-suite run on a loaded machine once saw the connection gone from ``server.connections``
with its 3.4 MB still counted. The mechanism: ``_Downstream._send_timed_out`` closes the
connection for the core (``_close``: out of ``connections``) and aborts its transport, which drops
the write buffer at once, but gave the budget back only in ``_teardown``, from
``connection_lost``, which ``transport.abort()`` schedules for the loop's next turn. A task whose
wake-up was queued before that (a loop running late: its sleep and the send timer due in the same
turn) saw the state in between. Not a leak (given back one turn later) but a budget that counted
bytes already dropped, shared by every connection reading ahead. These tests look at the state
right after the timer's callback returns, which is what any callback queued before
``connection_lost`` sees: deterministic, no load needed.
"""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings
from tests.test_proxy_buffering_review_s30 import _slow_client, _until, _upstream


@pytest.mark.asyncio
async def test_send_timeout_gives_the_budget_back_before_connection_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two clients that never read, each cut by send_timeout in turn: right after each cut (what
    # the loop's next callbacks see, before ``connection_lost``) the cut one counts nothing and
    # the server's sum is the other open connections' shares, untouched.
    from ingresslib.proxy import _server
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    monkeypatch.setattr(_server, "_SEND_TIMEOUT", 0.4)
    seen: list[tuple[bool, bool, int, int]] = []
    timed_out = _server._Downstream._send_timed_out

    def observed(down: _server._Downstream) -> None:
        timed_out(down)
        srv = down.server
        others = sum(c.held for c in srv.connections)
        t = down.transport
        seen.append((down in srv.connections, t is not None and t.is_closing(), down.held,
                     srv.ahead_held - others))

    monkeypatch.setattr(_server._Downstream, "_send_timed_out", observed)
    srv, uport, _ = await _upstream()
    settings = ProxySettings(proxy_buffering="on")
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), settings=settings)
    clients = [_slow_client(port), _slow_client(port)]
    try:
        assert await _until(lambda: server.pool.idle_count() == 2)
        # Both read whole ahead of their clients, both counted (what the kernel's socket
        # buffers did not take).
        held = [c.held for c in server.connections]
        assert len(held) == 2 and all(held) and server.ahead_held == sum(held)
        assert await _until(lambda: not server.connections, 3.0)
        # Each cut: out of ``connections``, its transport aborted, its share given back (the
        # calls that found the client had taken bytes since only started the timer again).
        cuts = [x for x in seen if not x[0]]
        assert cuts == [(False, True, 0, 0), (False, True, 0, 0)]
        assert await _until(lambda: not server.lingering)
        assert server.ahead_held == 0
    finally:
        for s in clients:
            s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()
