"""Seams between session 20's landings (V20z): two changes that each saw one side of an
agreement.

1. c9e4d59 reads a lone surrogate escape of a JSON manifest as U+FFFD, as Go's encoding/json
   stores it (72e3876 did the same for Secret stringData through ``_models.go_utf8``), but
   ``Resources.from_dicts`` still hands lone surrogates over, and the ``upstream-hash-by``
   template encoded its key per request: ``"$request_uri\\ud800"`` raised UnicodeEncodeError
   out of ``Router.route`` on every request of the route (``surrogateescape`` only covers
   U+DC80-U+DCFF), and ``"$request_uri\\udce9"`` hashed the byte 0xE9 where the same object
   written as a manifest hashes U+FFFD's bytes: another endpoint for the same request. The
   template is now read as the API server stores it.
2. The same for ``canary-by-header-pattern``: its byte form (the pattern's UTF-8, as PCRE runs
   it) raised UnicodeEncodeError out of ``Router(...)`` itself for ``"v\\ud800.*"``.
3. c9e4d59 reads str subclasses by value (``str.__str__``: an old-style ``class K(str, Enum)``
   stored ``K.x``), but ``ResourceStore`` keyed objects by ``f"{apiVersion}/{kind}"``: such a
   kind or apiVersion made the key ``v1/K.SERVICE``, which no DELETED or re-list in plain
   strings matched, so the object stayed in every snapshot (and routed) for good.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest

from ingresslib import Resources, ResourceStore, Router, parse_manifests


_P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, service: str, annotations: dict[str, str]) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"rules": [{"host": "a.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def _service(name: str, net: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [f"10.0.{net}.{i}"]} for i in range(1, 9)],
         "ports": [{"port": 8080}]},
    ]


def _objects(hash_by: str) -> list[dict[str, Any]]:
    return [_ingress("a", "s", {_P + "upstream-hash-by": hash_by}), *_service("s", 0)]


def _both(objs: list[dict[str, Any]]) -> tuple[Router, Router]:
    """A Router of ``objs`` as given, and one of the manifest a client sends for them
    (json.dumps writes a lone surrogate as its escape)."""
    given = Router(Resources.from_dicts(objs))
    sent = Router(parse_manifests(json.dumps({"apiVersion": "v1", "kind": "List",
                                              "items": objs})))
    return given, sent


@pytest.mark.parametrize("hash_by", ["$request_uri\ud800", "$request_uri\udce9",
                                     "\udfff$uri"])
def test_a_hash_key_template_with_a_lone_surrogate_reads_as_its_manifest_does(
        hash_by: str) -> None:
    given, sent = _both(_objects(hash_by))
    picked = set()
    for i in range(64):
        a = given.route("GET", "a.example", f"/p{i}")
        b = sent.route("GET", "a.example", f"/p{i}")
        assert a is not None and b is not None
        assert a.endpoint == b.endpoint, i
        picked.add(a.endpoint)
    assert len(picked) > 1  # the key spreads requests: the comparison is not trivial


def test_a_canary_header_pattern_with_a_lone_surrogate_reads_as_its_manifest_does() -> None:
    objs = [_ingress("a", "s", {}), *_service("s", 0),
            _ingress("c", "c", {_P + "canary": "true", _P + "canary-by-header": "X-C",
                                _P + "canary-by-header-pattern": "v\ud800.*"}),
            *_service("c", 1)]
    given, sent = _both(objs)
    # The stored pattern holds U+FFFD (its UTF-8 bytes, as PCRE reads it).
    seen = set()
    value: str | bytes
    for value in ("v\ufffdx", b"v\xef\xbf\xbd", "vx", "w\ufffd", b"v\xed\xa0\x80"):
        a = given.route("GET", "a.example", "/", headers=[("X-C", value)])
        b = sent.route("GET", "a.example", "/", headers=[("X-C", value)])
        assert a is not None and b is not None
        assert a.canary == b.canary, value
        seen.add(a.canary)
    assert seen == {True, False}


class _Kind(str, Enum):
    SERVICE = "Service"


class _Version(str, Enum):
    V1 = "v1"


class _Name(str, Enum):
    WEB = "web"


def _svc(kind: str = "Service", api_version: str = "v1", name: str = "web"
         ) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "prod"}, "spec": {"ports": [{"port": 80}]}}


def test_a_store_object_of_an_enum_kind_is_deleted_by_its_plain_name() -> None:
    store = ResourceStore()
    store.apply("ADDED", _svc(kind=_Kind.SERVICE))
    assert store.keys() == [("v1/Service", "prod", "web")]
    store.apply("DELETED", _svc())
    assert store.snapshot().services == ()


def test_a_store_object_of_an_enum_api_version_is_dropped_by_a_relist_without_it() -> None:
    store = ResourceStore()
    store.apply("ADDED", _svc(api_version=_Version.V1))
    store.replace_all("v1/Service", [])
    assert store.snapshot().services == () and len(store) == 0


def test_the_store_keys_hold_plain_strings() -> None:
    store = ResourceStore()
    store.apply("ADDED", _svc(kind=_Kind.SERVICE, api_version=_Version.V1, name=_Name.WEB))
    assert all(type(part) is str for key in store.keys() for part in key)
