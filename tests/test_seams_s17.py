"""Seams between this session's landings (review V17z): behaviour that each change kept on its
own but that two of them together broke."""

from __future__ import annotations

import asyncio
import io
import socket
from typing import Any

import pytest

from ingresslib._demo import run_demo
from tests._serve_helpers import localhost_is_both


def _ipv6_socket_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio.Server.sockets`` lists an IPv6 socket first: asyncio binds a host name's
    addresses in the order of a set, so which one comes first differs between runs."""
    real = asyncio.base_events.Server.sockets

    def sockets(self: Any) -> Any:
        return tuple(sorted(real.fget(self), key=lambda s: s.family != socket.AF_INET6))

    monkeypatch.setattr(asyncio.base_events.Server, "sockets", property(sockets))


@pytest.mark.network
def test_demo_on_localhost_talks_to_its_ipv4_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``demo --listen localhost:0``, where localhost is 127.0.0.1 and ::1: each address gets a
    # port of its own (both are printed, ProxyServer.urls). The self-check and the curl lines
    # go to 127.0.0.1, so they need 127.0.0.1's port; the first socket's (::1's here) was
    # taken, and the self-check's requests went to a port nothing listened on.
    localhost_is_both(monkeypatch)
    _ipv6_socket_first(monkeypatch)
    out = io.StringIO()
    code = asyncio.run(run_demo(listen=("localhost", 0), tls_listen=("localhost", 0),
                                once=True, out=out, seed=1))
    assert "self-check passed" in out.getvalue() and "BAD" not in out.getvalue()
    assert code == 0
