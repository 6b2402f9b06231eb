"""Review of the s21 landings (R21c): ``ingresslib.check()`` puts every proxy warning about an
annotation on that annotation's field, including the basic-auth texts its parser did not read
(``annotation KEY 'value': ...`` for an auth-secret reference or type the proxy refuses, and
``auth-secret NS/NAME: ...`` for the Secret it names)."""

from __future__ import annotations

from typing import Any

import pytest

import ingresslib

P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
            "spec": {"rules": [{"host": f"{name}.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}


NO_AUTH_KEY = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "noauth", "namespace": "ns"}, "data": {"x": "eA=="}}


@pytest.mark.parametrize(("annotations", "key", "words"), [
    # The proxy's texts: proxy/_basicauth.py basic_auth_config and BasicAuth._deny.
    ({"auth-secret": "a/b/c"}, "auth-secret", "not \"name\" or \"namespace/name\""),
    ({"auth-secret": "other/x"}, "auth-secret", "a Secret of another namespace"),
    ({"auth-secret": "x", "auth-secret-type": "weird"}, "auth-secret-type",
     "invalid auth-secret-type"),
    ({"auth-secret": "missing"}, "auth-secret", "no such Secret"),
    ({"auth-secret": "noauth"}, "auth-secret", "has no key \"auth\""),
    # Already read before: the field of an ``annotation KEY: ...`` text.
    ({}, "auth-type", "basic without"),
], ids=["bad-ref", "other-namespace", "bad-type", "no-secret", "no-auth-key", "no-secret-ref"])
def test_basic_auth_warnings_name_their_annotation(annotations: dict[str, str], key: str,
                                                   words: str) -> None:
    objects = [_ingress("web", {P + "auth-type": "basic",
                                **{P + k: v for k, v in annotations.items()}}), NO_AUTH_KEY]
    found = [d for d in ingresslib.check(ingresslib.Resources.from_dicts(objects))
             if words in str(d)]
    assert len(found) == 1, [str(d) for d in ingresslib.check(
        ingresslib.Resources.from_dicts(objects))]
    (d,) = found
    assert d.severity == "warning"
    assert d.object == "Ingress ns/web"
    # Before: field "" for all but the last (the parser read "annotation KEY: " and
    # "annotation KEY (" only).
    assert d.field == f"metadata.annotations[{P}{key}]"
    assert words in d.message
    # str() stays the line check prints.
    assert str(d).startswith("warning: Ingress ns/web: ")
