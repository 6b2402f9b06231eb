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
import typing as _typing
from typing import Any as _Any

# ``_typing.TYPE_CHECKING``: mypy knows the condition by that name only (an alias such as
# ``_TYPE_CHECKING`` is a plain variable to it, and both branches are read).
if _typing.TYPE_CHECKING:
    from ._accesslog import AccessLog, configure_access_log
    from ._asgi import BodyTooLarge, IngressASGI
    from ._balance import Balancer, BalancerOptions, RequestContext, register_balancer
    from ._endpoints import EndpointSet
    from ._errors import BadRequestError, FieldError, ValidationError
    from ._explain_api import check, explain
    from ._kube import ClusterWatcher, watch_cluster
    from ._load import load_manifests, parse_manifests
    from ._matcher import MATCHER
    from ._metrics import Metrics, MetricsServer
    from ._resources import Resources
    from ._router import Decision, Router
    from ._store import ResourceStore
    from ._table import Diagnostic, Match, RouteTable
    from .proxy import ClientConnection, Proxy, ProxySettings, RequestRecord, TimerKind

#: Every public name, imported on first use (PEP 562), from the module that defines it.
#: ``import ingresslib`` itself imports none of them: the router, the proxy, the ASGI adapter
#: and the cluster client took 0.3-0.9 s, all before ``python -m ingresslib serve`` could
#: catch a Ctrl-C (a traceback from the middle of an import), and ``serve`` from files
#: never needs the cluster client. ``from ingresslib import Router`` is as before.
_LAZY = {
    **dict.fromkeys(("AccessLog", "configure_access_log"), "._accesslog"),
    **dict.fromkeys(("BodyTooLarge", "IngressASGI"), "._asgi"),
    **dict.fromkeys(("Balancer", "BalancerOptions", "RequestContext", "register_balancer"),
                    "._balance"),
    "EndpointSet": "._endpoints",
    **dict.fromkeys(("BadRequestError", "FieldError", "ValidationError"), "._errors"),
    **dict.fromkeys(("check", "explain"), "._explain_api"),
    **dict.fromkeys(("ClusterWatcher", "watch_cluster"), "._kube"),
    **dict.fromkeys(("load_manifests", "parse_manifests"), "._load"),
    "MATCHER": "._matcher",
    **dict.fromkeys(("Metrics", "MetricsServer"), "._metrics"),
    "Resources": "._resources",
    **dict.fromkeys(("Decision", "Router"), "._router"),
    "ResourceStore": "._store",
    **dict.fromkeys(("Diagnostic", "Match", "RouteTable"), "._table"),
    **dict.fromkeys(("ClientConnection", "Proxy", "ProxySettings", "RequestRecord", "TimerKind"),
                    ".proxy"),
}


def _lazy_attribute(name: str) -> _Any:
    """``ingresslib.<name>`` on first use (the module's ``__getattr__`` at run time)."""
    import importlib
    import importlib.util

    module = _LAZY.get(name)
    if module is None:
        # A submodule not imported yet (``ingresslib.proxy``, ``ingresslib._kube``): the
        # eager imports made every one of them an attribute of the package. Not a folder
        # without code (``examples``: a namespace package, whose spec has no origin).
        if name.isidentifier() and not name.startswith("__"):
            spec = importlib.util.find_spec(f"{__name__}.{name}")
            if spec is not None and spec.origin is not None:
                return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'ingresslib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


if not _typing.TYPE_CHECKING:
    # Hidden from type checkers: a module ``__getattr__`` makes every unknown name of the
    # module ``Any`` to mypy and pyright, so ``ingresslib.Routr`` or ``from ingresslib import
    # Rooter`` passed ``mypy --strict`` and failed at run time. They see the imports above.
    __getattr__ = _lazy_attribute


def __dir__() -> list[str]:
    # ``proxy``: the public subpackage (README's ``ingresslib.proxy.ProxyServer``), listed
    # before its first use as the eager imports listed it (tab completion reads ``dir``).
    return sorted({*globals(), *_LAZY, "proxy"})


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
    "check",
    "configure_access_log",
    "explain",
    "load_manifests",
    "parse_manifests",
    "register_balancer",
    "watch_cluster",
]

__version__ = "0.1.0"
