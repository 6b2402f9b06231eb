"""The sans-IO reverse-proxy core (no socket, asyncio, ssl or logging handlers), and the asyncio
server that drives it (``ProxyServer``, imported on first use so the core stays importable
without asyncio).

See ``API.md`` in this folder for the driver's contract.
"""

import typing as _typing
from typing import Any as _Any

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

# For type checkers only (``_typing.TYPE_CHECKING`` by that name: mypy reads an alias of it as
# a plain variable): the lazy names' real types. At run time the core imports no asyncio
# server (``_lazy_attribute`` below does, on first use). Written absolute: the static check in
# tests/test_proxy_connection.py takes every relative import of the core for a run-time one.
if _typing.TYPE_CHECKING:
    from ingresslib.proxy._server import ProxyServer as ProxyServer
    from ingresslib.proxy._server import UpstreamPool as UpstreamPool

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


def _lazy_attribute(name: str) -> _Any:
    """``ProxyServer``/``UpstreamPool`` on first use (the module's ``__getattr__`` at run
    time)."""
    if name in ("ProxyServer", "UpstreamPool"):
        # Lazy: the asyncio server is not part of the sans-IO core.
        import importlib

        return getattr(importlib.import_module(f"{__name__}._server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not _typing.TYPE_CHECKING:
    # Hidden from type checkers: a module ``__getattr__`` makes every unknown name of the
    # module ``Any`` to mypy and pyright, so ``from ingresslib.proxy import ProxyServr``
    # passed ``mypy --strict`` and failed at run time. They see the imports above.
    __getattr__ = _lazy_attribute
