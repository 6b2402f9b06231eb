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

from ._errors import BadRequestError, FieldError, ValidationError
from ._load import load_manifests, parse_manifests
from ._matcher import MATCHER
from ._resources import Resources
from ._table import Diagnostic, Match, RouteTable

__all__ = [
    "BadRequestError",
    "Diagnostic",
    "FieldError",
    "MATCHER",
    "Match",
    "Resources",
    "RouteTable",
    "ValidationError",
    "load_manifests",
    "parse_manifests",
]

__version__ = "0.1.0"
