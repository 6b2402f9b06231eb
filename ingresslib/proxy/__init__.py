"""The sans-IO reverse-proxy core (no socket, asyncio, ssl or logging handlers), and the asyncio
server that drives it (``ProxyServer``, imported on first use so the core stays importable
without asyncio), with what an embedding builds it from: ``CertificateStore`` (the HTTPS
certificates ``ProxyServer`` serves) and the ConfigMap reader (``load_config``,
``parse_config_data`` -> ``ServerConfig``, whose ``settings`` is a ``ProxySettings``), also
imported on first use.

The driver's contract is in the installed file ``ingresslib/proxy/API.md``.
"""

import typing as _typing
from typing import Any as _Any

from ._actions import (
    Action,
    CloseDownstream,
    CloseUpstream,
    Mirror,
    Offload,
    OpenUpstream,
    RequestDone,
    RequestRecord,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
    UpstreamTry,
)
from ._annotations import RouteOptions
from ._clientcert import ClientCert, ClientCertAuth
from ._connection import ClientConnection, Proxy
from ._errors import LocalProxyError, ProxyError, RemoteProxyError
from ._globalratelimit import CounterStore, GlobalRateLimiter, MemoryStore
from ._settings import ProxySettings

# For type checkers only (``_typing.TYPE_CHECKING`` by that name: mypy reads an alias of it as
# a plain variable): the lazy names' real types. At run time the core imports no asyncio
# server (``_lazy_attribute`` below does, on first use). Written absolute: the static check in
# tests/test_proxy_connection.py takes every relative import of the core for a run-time one.
if _typing.TYPE_CHECKING:
    from ingresslib._config import ServerConfig as ServerConfig
    from ingresslib._config import load_config as load_config
    from ingresslib._config import parse_config_data as parse_config_data
    from ingresslib._tls import CertificateStore as CertificateStore
    from ingresslib.proxy._server import ProxyServer as ProxyServer
    from ingresslib.proxy._server import UpstreamPool as UpstreamPool

#: The names imported on first use, and their modules: the asyncio server, ``ssl`` and the
#: certificate code, and the ConfigMap reader are no part of the sans-IO core (``import
#: ingresslib.proxy`` imports none of them).
_LAZY = {
    "ProxyServer": "ingresslib.proxy._server",
    "UpstreamPool": "ingresslib.proxy._server",
    "CertificateStore": "ingresslib._tls",
    "ServerConfig": "ingresslib._config",
    "load_config": "ingresslib._config",
    "parse_config_data": "ingresslib._config",
}

__all__ = [
    "Action",
    "CertificateStore",
    "ClientCert",
    "ClientCertAuth",
    "ClientConnection",
    "CloseDownstream",
    "CloseUpstream",
    "CounterStore",
    "GlobalRateLimiter",
    "LocalProxyError",
    "MemoryStore",
    "Mirror",
    "Offload",
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
    "ServerConfig",
    "SetTimer",
    "TimerKind",
    "TunnelEstablished",
    "UpstreamTry",
    "load_config",
    "parse_config_data",
]


def _lazy_attribute(name: str) -> _Any:
    """A name of ``_LAZY`` on first use (the module's ``__getattr__`` at run time)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


if not _typing.TYPE_CHECKING:
    # Hidden from type checkers: a module ``__getattr__`` makes every unknown name of the
    # module ``Any`` to mypy and pyright, so ``from ingresslib.proxy import ProxyServr``
    # passed ``mypy --strict`` and failed at run time. They see the imports above.
    __getattr__ = _lazy_attribute


def __dir__() -> list[str]:
    # The lazy names before their first use too (tab completion reads ``dir``).
    return sorted({*globals(), *_LAZY})
