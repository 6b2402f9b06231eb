"""Proxy errors, split at the trust boundary (h11's ``LocalProtocolError``/``RemoteProtocolError``).

Each carries a ``status_hint`` so the place that answers needs no mapping table.
"""

from __future__ import annotations

__all__ = ["ProxyError", "LocalProxyError", "RemoteProxyError"]


class ProxyError(Exception):
    """Base class; never raised itself."""

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        if type(self) is ProxyError:
            raise TypeError("raise LocalProxyError or RemoteProxyError, not ProxyError")
        super().__init__(msg)
        self.status_hint = status_hint


class LocalProxyError(ProxyError):
    """The driver misused the core (unknown upstream id, input after close...)."""


class RemoteProxyError(ProxyError):
    """A peer (client or upstream) sent something the proxy must refuse."""
