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

from ._asgi import BodyTooLarge, IngressASGI
from ._balance import Balancer, RequestContext, register_balancer
from ._errors import BadRequestError, FieldError, ValidationError
from ._kube import ClusterWatcher, watch_cluster
from ._load import load_manifests, parse_manifests
from ._matcher import MATCHER
from ._resources import Resources
from ._router import Decision, Router
from ._store import ResourceStore
from ._table import Diagnostic, Match, RouteTable
from .proxy import ClientConnection, Proxy, ProxySettings, RequestRecord, TimerKind

# Library etiquette: never configure output; only the CLI adds handlers.
_logging.getLogger("ingresslib").addHandler(_logging.NullHandler())

__all__ = [
    "BadRequestError",
    "Balancer",
    "BodyTooLarge",
    "ClientConnection",
    "ClusterWatcher",
    "Decision",
    "Diagnostic",
    "FieldError",
    "IngressASGI",
    "MATCHER",
    "Match",
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
    "load_manifests",
    "parse_manifests",
    "register_balancer",
    "watch_cluster",
]

__version__ = "0.1.0"
