"""Session 19, review R19f of c0b041d (route table), 08658b2 (default certificate series),
d07964e (clear errors) and 2b1dc14 (explain's canary warnings).

1. Defect: ``IngressASGI(res, backends)`` with an object that has ``keys()`` and ``[]`` but is
   no ``collections.abc.Mapping`` (what ``dict()`` reads, and what d07964e's check lets
   through on purpose) failed with ``KeyError: 0``: the key check iterated the object itself
   (Python's old sequence protocol asks for item 0). It is now copied as ``dict()`` copies it
   before its keys are checked.
2. Guards for what the review checked and found right: a rule whose canonical path ends in a
   slash (``Prefix /foo/%2e``) matches as ``/foo/`` does (the Kubernetes table: Prefix
   ``/aaa/bbb/`` matches ``/aaa/bbb``, "ignores trailing slash"), wins over an older
   ``/foo``, and pairs with a canary written ``/foo/``; a chain of shadowed rules leaves no
   placeholder note; an unquoted ConfigMap value in a file is reported once; a date warning
   of a certificate reads the same on every day it lasts (logged once).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, KeysView
from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, Resources, RouteTable, ValidationError, parse_manifests
from ingresslib.proxy import load_config

_MANIFEST = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  rules:
  - http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
"""


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app (never called here)."""


class _KeysOnly:
    """Not a ``collections.abc.Mapping``: ``keys()`` and ``[]``, what ``dict()`` reads."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def __getitem__(self, key: str) -> Any:
        return self._items[key]


def test_backends_with_keys_and_getitem_are_read_as_dict_reads_them() -> None:
    # Before: KeyError: 0 (the key check iterated the object, which asked it for item 0).
    app = IngressASGI(parse_manifests(_MANIFEST),
                      _KeysOnly({"default/api": _app}))  # type: ignore[arg-type]
    assert app.backends == {"default/api": _app}
    assert app.backend_for(app.router.route("GET", "example.test", "/api/x")) is _app


def test_backends_with_keys_still_refuse_a_non_str_key() -> None:
    with pytest.raises(TypeError, match="backend key 1 is not a str"):
        IngressASGI(parse_manifests(_MANIFEST), _KeysOnly({1: _app}))  # type: ignore[arg-type, dict-item]


# --- route table (c0b041d) ------------------------------------------------------------------

def _ingress(name: str, ts: str, paths: list[tuple[str, str]], annotations: dict[str, str] | None = None
             ) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": ts,
                         "annotations": annotations or {}},
            "spec": {"rules": [{"host": "a.test", "http": {"paths": [
                {"path": p, "pathType": t,
                 "backend": {"service": {"name": f"{name}{i}", "port": {"number": 80}}}}
                for i, (p, t) in enumerate(paths)]}}]}}


def _table() -> RouteTable:
    return RouteTable.build(Resources.from_dicts([
        _ingress("old", "2020-01-01T00:00:00Z", [("/foo", "Prefix")]),
        # Two newer rules of the slot: the second takes it from the first, which had taken
        # it from the older /foo (three candidates, two notes).
        _ingress("new", "2020-01-02T00:00:00Z", [("/foo/.", "ImplementationSpecific"),
                                                 ("/foo/%2e", "Prefix")]),
        _ingress("can", "2020-01-03T00:00:00Z", [("/foo/", "Prefix")],
                 {"nginx.ingress.kubernetes.io/canary": "true"}),
    ]))


@pytest.mark.parametrize("path,hit", [("/foo", True), ("/foo/", True), ("/foo/x", True),
                                      ("/foobar", False)])
def test_canonical_slash_rule_matches_as_a_slash_rule(path: str, hit: bool) -> None:
    m = _table().match("a.test", path)
    if not hit:
        assert m is None
        return
    assert m is not None and (m.ingress, m.path, m.path_type) == ("default/new", "/foo/%2e", "Prefix")
    assert m.canary is not None and m.canary.ingress == "default/can"


def test_shadowed_chain_leaves_no_placeholder_and_names_the_final_winner() -> None:
    notes = [d for d in _table().diagnostics if "shadowed" in d.message]
    assert all(d.object and d.field and d.message for d in _table().diagnostics)
    assert len(notes) == 2
    assert all("by Ingress default/new spec.rules[0].http.paths[1]" in d.message for d in notes)


# --- ConfigMap files (d07964e) ----------------------------------------------------------------

def test_unquoted_value_in_a_file_is_reported_once(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  hsts: false\n")
    with pytest.raises(ValidationError) as info:
        load_config(f)
    assert len(info.value.errors) == 1
    assert str(info.value).count("data.hsts") == 1


# --- the default certificate's date warnings (08658b2) --------------------------------------------

def _days(now: datetime.datetime) -> Iterator[datetime.datetime]:
    for d in range(4):
        yield now + datetime.timedelta(days=d)


@pytest.mark.parametrize("not_before,not_after", [
    (-30, 5),     # expiring within 10 days, for the 4 days checked
    (-30, -1),    # expired
    (5, 400),     # not yet valid
])
def test_a_date_warning_reads_the_same_every_day_it_lasts(not_before: int, not_after: int) -> None:
    # The store logs a problem whose line it did not report at the previous update: a text
    # holding "in N days" would be logged again every day.
    from ingresslib._tls import _Cert, _date_problems

    t0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    cert = _Cert(None, frozenset(), t0 + datetime.timedelta(days=not_before),  # type: ignore[arg-type]
                 t0 + datetime.timedelta(days=not_after))
    texts = {tuple(str(p) for p in _date_problems("default certificate", "Secret ns/d", "ns/d",
                                                  cert, now)) for now in _days(t0)}
    assert len(texts) == 1 and all(len(t) == 1 for t in texts)


def test_a_host_whose_certificate_labels_change_always_has_a_series() -> None:
    """A scrape between the removal and the set (MetricsServer renders in a worker thread) found
    no ``host="_"`` series when the default Secret was deleted (``default/dflt`` -> ``""``):
    the new series are set before the ones that go are removed."""
    import datetime

    from ingresslib import Metrics

    m = Metrics()
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    m.set_certificates([("_", "default/dflt", when), ("a.test", "default/a", when)])
    seen: list[set[str]] = []
    gauge = m._ssl_expire
    real_remove = gauge.remove

    def spying_remove(*labels: str) -> None:
        hosts = {s.labels["host"] for fam in gauge.collect() for s in fam.samples}
        seen.append(hosts)
        real_remove(*labels)

    gauge.remove = spying_remove  # type: ignore[method-assign]
    m.set_certificates([("_", "", when), ("a.test", "default/a2", when)])
    assert seen, "a series went"
    assert all({"_", "a.test"} <= hosts for hosts in seen), seen
