"""The sans-IO reverse-proxy core (no socket, asyncio, ssl or logging handlers), and the asyncio
server that drives it (``ProxyServer``, imported on first use so the core stays importable
without asyncio).

See ``API.md`` in this folder for the driver's contract.
"""

from typing import Any

from ._actions import (
    Action,
    CloseDownstream,
    CloseUpstream,
    OpenUpstream,
    RequestDone,
    RequestRecord,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
)
from ._annotations import RouteOptions
from ._connection import ClientConnection, Proxy
from ._errors import LocalProxyError, ProxyError, RemoteProxyError
from ._settings import ProxySettings

__all__ = [
    "Action",
    "ClientConnection",
    "CloseDownstream",
    "CloseUpstream",
    "LocalProxyError",
    "OpenUpstream",
    "Proxy",
    "ProxyError",
    "ProxyServer",
    "ProxySettings",
    "RemoteProxyError",
    "RequestDone",
    "RequestRecord",
    "RouteOptions",
    "SendDownstream",
    "SendUpstream",
    "SetTimer",
    "TimerKind",
    "TunnelEstablished",
]


def __getattr__(name: str) -> Any:
    if name in ("ProxyServer", "UpstreamPool"):
        # Lazy: the asyncio server is not part of the sans-IO core.
        import importlib

        return getattr(importlib.import_module(f"{__name__}._server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
