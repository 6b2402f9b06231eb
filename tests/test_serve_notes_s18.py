"""serve: every Ingress left out by the class filter is a WARNING, not an INFO, with one line
saying that every request answers 404 (session 18)."""

from __future__ import annotations

import logging

import pytest

from ingresslib import RouteTable, parse_manifests
from ingresslib._serve_notes import _log_fresh_notes, _table_notes

_ING = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  rules:
  - host: a.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def _logged(res: object, table: RouteTable, caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    caplog.set_level(logging.INFO, logger="ingresslib.serve")
    _log_fresh_notes(_table_notes((table, ()), res), set())  # type: ignore[arg-type]
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ingresslib.serve"]


def test_every_ingress_left_out_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    res = parse_manifests(_ING)
    logged = _logged(res, RouteTable.build(res, ingress_class="other"), caplog)
    assert (logging.WARNING, 'Ingress default/web: spec.ingressClassName: IngressClass "nginx" '
            "is not among the objects given (SEMANTICS §3: a class that does not exist is never "
            "served; load the IngressClass too, or, watching a cluster, create it); not served") in logged
    assert (logging.WARNING, "none of the 1 Ingress(es) is served (the class filter left out "
            "every one, see above): every request answers 404") in logged


def test_some_ingress_served_keeps_the_notes_at_info(caplog: pytest.LogCaptureFixture) -> None:
    other = _ING.replace("name: web", "name: other").replace("ingressClassName: nginx",
                                                              "ingressClassName: mine")
    klass = ("---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: mine}\n"
             "spec: {controller: x.io/c}\n")
    res = parse_manifests(_ING + "---\n" + other + klass)
    logged = _logged(res, RouteTable.build(res, ingress_class="mine"), caplog)
    assert [lvl for lvl, msg in logged if msg.endswith("; not served")] == [logging.INFO]
    assert not any("none of the" in msg for _lvl, msg in logged)


def test_a_misspelt_kind_is_logged_as_check_prints_it(caplog: pytest.LogCaptureFixture) -> None:
    """``check`` warned of an object of a misspelt kind (its routes do not exist); ``serve``
    said only "no Ingress in ..." (session 34's x29 noticed; session 35)."""
    res = parse_manifests(_ING.replace("kind: Ingress", "kind: Ingres") + "---\n" + _ING)
    logged = _logged(res, RouteTable.build(res), caplog)
    assert (logging.WARNING, "Ingres default/web: kind Ingres is not read (did you mean "
            "Ingress?); the object is ignored") in logged
