"""``Resources``: the typed objects of one set of manifests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import FieldError
from ._models import ConfigMap, EndpointSlice, Endpoints, Ingress, IngressClass, Secret, Service, _own_tuples

__all__ = ["Resources"]

_FIELDS = ("ingresses", "ingress_classes", "services", "endpoint_slices", "endpoints", "secrets", "ignored",
           "config_maps")


@dataclass(frozen=True, slots=True)
class Resources:
    """Every understood object of a set of manifests, as immutable models.

    Build one with :func:`ingresslib.load_manifests`, :func:`ingresslib.parse_manifests` or
    :meth:`Resources.from_dicts`; invalid objects raise :class:`ingresslib.ValidationError`.

    >>> res = Resources.from_dicts([{"apiVersion": "v1", "kind": "Service",
    ...     "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}])
    >>> res.services[0].metadata.ref
    'default/web'
    """

    ingresses: tuple[Ingress, ...] = ()
    ingress_classes: tuple[IngressClass, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    #: v1 Endpoints (the legacy API); EndpointSlices win when both exist for a Service.
    endpoints: tuple[Endpoints, ...] = ()
    secrets: tuple[Secret, ...] = ()
    #: Objects of other kinds, kept aside as read and otherwise ignored.
    ignored: tuple[Mapping[str, Any], ...] = ()
    #: v1 ConfigMaps (read for the ``custom-headers`` annotation: proxy/_header_sets.py).
    #: After ``ignored`` so that positional construction keeps its meaning.
    config_maps: tuple[ConfigMap, ...] = ()
    #: What the API server would warn about and drop when these manifests are applied: fields
    #: no Kubernetes type has (``Ingress default/web: unknown field "spec.ingressClassname"``)
    #: and keys written twice in one YAML mapping or JSON object (``duplicate field "..."``), as
    #: :class:`FieldError` values (``field`` is the path, ``type`` ``"unknown field"`` or
    #: ``"duplicate field"``). Objects of other kinds are not checked. Not part of equality
    #: (nor of ``repr``): two loads that give the same objects route alike, whatever was
    #: dropped on the way.
    warnings: tuple[FieldError, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # "read-only sequences" (CONTRACT.md): a Resources built by hand from lists takes a
        # tuple copy of each, so mutating the caller's list afterwards changes nothing here (nor
        # a table or router built from it), and equal contents compare alike.
        # tuple() of a tuple is the same object: free for the decoder's and the store's output.
        _own_tuples(self, *_FIELDS, "warnings")

    @classmethod
    def from_dicts(cls, list_of_dicts: Iterable[Mapping[str, Any]]) -> Resources:
        """Decode already-parsed objects (camelCase API form or the official client's
        snake_case ``to_dict()`` form); ``kind: List`` unwraps."""
        from ._decode import decode_resources

        return decode_resources(list_of_dicts)
