"""ingresslib: Kubernetes Ingress semantics as an embeddable Python library.

>>> import ingresslib
>>> res = ingresslib.parse_manifests('''
... apiVersion: networking.k8s.io/v1
... kind: Ingress
... metadata: {name: web}
... spec:
...   rules:
...   - host: "*.example.test"
...     http:
...       paths:
...       - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
... ''')
>>> ingresslib.RouteTable.build(res).match("shop.example.test", "/cart").service
'web'
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._asgi import BodyTooLarge, IngressASGI
from ._balance import Balancer, BalancerOptions, RequestContext, register_balancer
from ._endpoints import EndpointSet
from ._errors import BadRequestError, FieldError, ValidationError
from ._kube import ClusterWatcher, watch_cluster
from ._load import load_manifests, parse_manifests
from ._matcher import MATCHER
from ._resources import Resources
from ._router import Decision, Router
from ._store import ResourceStore
from ._table import Diagnostic, Match, RouteTable
from .proxy import ClientConnection, Proxy, ProxySettings, RequestRecord, TimerKind

if _TYPE_CHECKING:
    from ._accesslog import AccessLog, configure_access_log
    from ._metrics import Metrics, MetricsServer

#: Observability names, imported on first use (PEP 562): prometheus-client and the access log
#: stay out of ``import ingresslib`` for the embedders that route only.
_LAZY = {
    "AccessLog": "._accesslog",
    "configure_access_log": "._accesslog",
    "Metrics": "._metrics",
    "MetricsServer": "._metrics",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ingresslib' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value

# Library etiquette: never configure output; only the CLI adds handlers.
_logging.getLogger("ingresslib").addHandler(_logging.NullHandler())

__all__ = [
    "AccessLog",
    "BadRequestError",
    "Balancer",
    "BalancerOptions",
    "BodyTooLarge",
    "ClientConnection",
    "ClusterWatcher",
    "Decision",
    "Diagnostic",
    "EndpointSet",
    "FieldError",
    "IngressASGI",
    "MATCHER",
    "Match",
    "Metrics",
    "MetricsServer",
    "Proxy",
    "ProxySettings",
    "RequestContext",
    "RequestRecord",
    "ResourceStore",
    "Resources",
    "RouteTable",
    "Router",
    "TimerKind",
    "ValidationError",
    "configure_access_log",
    "load_manifests",
    "parse_manifests",
    "register_balancer",
    "watch_cluster",
]

__version__ = "0.1.0"
