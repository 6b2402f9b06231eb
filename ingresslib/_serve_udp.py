"""``serve --udp-services-configmap NAMESPACE/NAME``: TCP services' feed
(:class:`ingresslib._serve_tcp.TCPServicesFeed`: the ConfigMap of each snapshot, read and
resolved, the bad keys logged once and skipped) applied to UDP sockets
(:class:`ingresslib._udp_proxy.UDPServices`), the Service and endpoint ports resolved being the
UDP ones (``EndpointIndex.resolve(..., protocol="UDP")``, as getStreamServices' ``proto``)."""

from __future__ import annotations

from typing import Any

from ._serve_tcp import TCPServicesFeed
from ._udp_proxy import UDPServices

__all__ = ["UDPServicesFeed"]


class UDPServicesFeed(TCPServicesFeed):
    """The UDP services of ``serve``; ``services.responses`` is ``proxy-stream-responses``."""

    protocol = "UDP"
    services_class: Any = UDPServices
