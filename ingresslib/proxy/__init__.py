"""The sans-IO reverse-proxy core (no socket, asyncio, ssl or logging handlers).

See ``API.md`` in this folder for the driver's contract.
"""

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
