"""A str or int subclass in a manifest dict reads as its VALUE, the text json.dumps sends
(``json.dumps(E.x) == '"http"'``), not its ``__str__``/``__int__`` (``str(E.x) == "E.x"`` for
``class E(str, Enum)`` on Python 3.11). Reviewer R20a of the Q20v landing (72e3876)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import ingresslib


class _Name(str, Enum):
    http = "http"
    snippet = "more_set_headers \"X-A: b\";"
    key = "nginx.ingress.kubernetes.io/configuration-snippet"


class _Port(int):
    """An int subclass whose int() lies: json.dumps sends 8080 (int.__repr__)."""

    def __int__(self) -> int:
        return 1


def _svc(target: Any, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "d", **meta},
            "spec": {"ports": [{"port": 80, "targetPort": target}]}}


def test_a_str_enum_value_in_a_map_is_its_value_as_json_sends_it() -> None:
    doc = _svc(80, annotations={_Name.key: _Name.snippet}, labels={"app": _Name.http})
    res = ingresslib.Resources.from_dicts([doc])
    sent = json.loads(json.dumps(doc))["metadata"]
    meta = res.services[0].metadata
    assert dict(meta.annotations) == sent["annotations"]
    assert dict(meta.labels) == sent["labels"] == {"app": "http"}


def test_a_str_enum_target_port_and_field_are_their_value() -> None:
    res = ingresslib.Resources.from_dicts([_svc(_Name.http)])
    assert res.services[0].spec.ports[0].target_port == "http"
    ing = ingresslib.Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "a", "namespace": "d"},
         "spec": {"ingressClassName": _Name.http,
                  "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}])
    assert ing.ingresses[0].spec.ingress_class_name == "http"


def test_an_int_subclass_target_port_is_its_value_not_its_int() -> None:
    res = ingresslib.Resources.from_dicts([_svc(_Port(8080))])
    assert res.services[0].spec.ports[0].target_port == json.loads(json.dumps(_Port(8080)))
    assert res.services[0].spec.ports[0].target_port == 8080
