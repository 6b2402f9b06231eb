"""The tenancy rule counts a ``from-to-www-redirect`` twin as routed (session 15, T15c).

``CertificateStore.update`` rule 3 applies a ``tls.hosts`` name listed without a rule of its own
Ingress only to hosts no other namespace routes. Before, a twin the proxy redirects was routed
by nobody for that rule: namespace ``shop`` routes ``example.test`` with
``from-to-www-redirect: "true"`` and a certificate that does not cover ``www.example.test``;
namespace ``evil`` lists ``*.example.test`` (or ``www.example.test``) in a tls-only Ingress.
``https://www.example.test`` was then served evil's certificate, made a TLS host (ssl-redirect,
HSTS), and the "twin uncovered" warning was silenced.

Now the twin is routed by the Ingress asking for it (after real rule hosts: a host a rule names
is no twin): another namespace's listing is refused, or its ``*.`` does not stand for the twin,
with the existing warnings, which say that the owner's redirect is what routes it. The twin
keeps its host's certificate when that covers it, else the default one and the warning.
"""

from __future__ import annotations

import pytest
import trustme

from test_tls_tenant_s15 import (  # noqa: E402
    _agree, _routing, _secret, _store, _subject, _tls_only, ca)
from ingresslib._load import parse_manifests
from ingresslib._tls import DEFAULT_CERT_NAME, certificate_problems

__all__ = ["ca"]   # the fixture, shared with test_tls_tenant_s15

APEX, WWW = "example.test", "www.example.test"
REDIRECT = "{nginx.ingress.kubernetes.io/from-to-www-redirect: 'true'}"
BY_SHOP = ("namespace shop (Ingress shop/shop, whose nginx.ingress.kubernetes.io/"
           "from-to-www-redirect redirects it to 'example.test')")
UNCOVERED = ("Ingress shop/shop", "metadata.annotations[nginx.ingress.kubernetes.io/"
             "from-to-www-redirect]", True)


def _shop(ca: trustme.CA, *names: str) -> str:
    """shop routes APEX with the redirect and its own certificate for ``names``."""
    own = f"\n  tls:\n  - hosts: [{APEX}]\n    secretName: s"
    return (_routing("shop", "shop", APEX, tls=own, annotations=REDIRECT)
            + _secret("shop", "s", ca, *names))


def _evil(ca: trustme.CA, listed: str) -> str:
    """evil lists ``listed`` without a rule; its certificate covers the twin."""
    return (_tls_only("evil", "squat", [listed], "w")
            + _secret("evil", "w", ca, listed, "evil.marker.test"))


def _fields(problems: list) -> list[tuple[str, str, bool]]:  # type: ignore[type-arg]
    return [(p.object, p.field, p.warning) for p in problems]


def test_another_namespaces_wildcard_does_not_serve_the_uncovered_twin(ca: trustme.CA) -> None:
    # Failed before: www got evil's certificate, was a TLS host, and nothing was said.
    res = parse_manifests(_shop(ca, APEX) + _evil(ca, "*.example.test"))
    store, problems = _store(res)
    assert _fields(problems) == [("Ingress evil/squat", "spec.tls[0].hosts[0]", True), UNCOVERED]
    assert str(problems[0]) == (
        "Ingress evil/squat: spec.tls[0].hosts[0]: '*.example.test' does not stand for "
        f"'www.example.test': it is routed by {BY_SHOP} and no rule of this Ingress names it; "
        "a tls.hosts name without a rule applies only to hosts no other namespace routes: no "
        "certificate from this entry, no ssl-redirect or HSTS for that host")
    assert "does not cover its twin 'www.example.test'" in problems[1].message
    assert _subject(store, WWW) == DEFAULT_CERT_NAME
    assert store.context_for(WWW) is store.default_context
    assert _agree(res, store, WWW, APEX, "other.example.test") == {
        WWW: False, APEX: True, "other.example.test": True}
    # Hosts nobody routes still get the wildcard, as before.
    assert _subject(store, "other.example.test") == "*.example.test,evil.marker.test"
    # ``ingresslib check`` says the same.
    assert [str(p) for p in certificate_problems(res)] == [str(p) for p in problems]


def test_another_namespaces_exact_listing_of_the_twin_is_refused(ca: trustme.CA) -> None:
    # Failed before: www got evil's certificate and was a TLS host, nothing said.
    res = parse_manifests(_shop(ca, APEX) + _evil(ca, WWW))
    store, problems = _store(res)
    assert _fields(problems) == [("Ingress evil/squat", "spec.tls[0].hosts[0]", True), UNCOVERED]
    assert problems[0].message == (
        f"ignored: 'www.example.test' is routed by {BY_SHOP} and no rule of this Ingress names "
        "it; a tls.hosts name without a rule applies only to a host no other namespace routes: "
        "no certificate from this entry, no ssl-redirect or HSTS for it")
    assert _subject(store, WWW) == DEFAULT_CERT_NAME
    assert _agree(res, store, WWW, APEX) == {WWW: False, APEX: True}
    assert store.hosts == {APEX}


@pytest.mark.parametrize("listed", ["*.example.test", WWW])
def test_a_covered_twin_keeps_its_hosts_certificate_and_no_tls_from_the_squat(
        ca: trustme.CA, listed: str) -> None:
    # The certificate was shop's before too; failed before on has_tls (evil's listing made www
    # a TLS host: ssl-redirect, HSTS) and on the missing warning.
    res = parse_manifests(_shop(ca, APEX, WWW) + _evil(ca, listed))
    store, problems = _store(res)
    assert _fields(problems) == [("Ingress evil/squat", "spec.tls[0].hosts[0]", True)]
    assert BY_SHOP in problems[0].message
    assert _subject(store, WWW) == f"{APEX},{WWW}"
    assert _agree(res, store, WWW) == {WWW: False}


@pytest.mark.parametrize("names", [(APEX,), (APEX, WWW)])
def test_without_a_squat_the_twin_is_as_before(ca: trustme.CA, names: tuple[str, ...]) -> None:
    # Unchanged (passes before too): its host's certificate when it covers the twin, else the
    # default one and the warning; not a TLS host of its own.
    res = parse_manifests(_shop(ca, *names))
    store, problems = _store(res)
    covered = WWW in names
    assert _fields(problems) == ([] if covered else [UNCOVERED])
    assert _subject(store, WWW) == (f"{APEX},{WWW}" if covered else DEFAULT_CERT_NAME)
    assert _agree(res, store, WWW, APEX) == {WWW: False, APEX: True}


@pytest.mark.parametrize("listed", ["*.example.test", WWW])
def test_the_asking_namespaces_own_listing_of_the_twin_still_applies(
        ca: trustme.CA, listed: str) -> None:
    # Unchanged (passes before too): shop lists the twin (or a *. over it) in a tls-only
    # Ingress of its own; that certificate serves the twin, which is a TLS host, nothing said.
    res = parse_manifests(_shop(ca, APEX) + _tls_only("shop", "certs", [listed], "t")
                          + _secret("shop", "t", ca, listed, "shop.marker.test"))
    store, problems = _store(res)
    assert problems == []
    assert _subject(store, WWW) == f"{listed},shop.marker.test"
    assert _agree(res, store, WWW) == {WWW: True}


def _wildcard_router(ns: str) -> str:
    """``ns`` routes ``*.example.test`` (no tls), older than shop's Ingress."""
    return _routing(ns, "wild", "*.example.test", created="2019-01-01T00:00:00Z")


def test_the_twin_is_the_asking_ingress_not_a_wildcard_rule_of_another_namespace(
        ca: trustme.CA) -> None:
    # The redirect answers www before any *. rule (an exact server_name in ingress-nginx), so
    # the namespace routing *.example.test does not own the twin. Failed before: its listing of
    # www applied (served its certificate, TLS host).
    res = parse_manifests(_shop(ca, APEX) + _wildcard_router("other")
                          + _tls_only("other", "certs", [WWW], "o")
                          + _secret("other", "o", ca, WWW, "other.marker.test"))
    store, problems = _store(res)
    assert _fields(problems) == [("Ingress other/certs", "spec.tls[0].hosts[0]", True),
                                 UNCOVERED]
    assert BY_SHOP in problems[0].message
    assert _subject(store, WWW) == DEFAULT_CERT_NAME
    assert _agree(res, store, WWW) == {WWW: False}


def test_and_shops_own_listing_of_the_twin_applies_under_that_wildcard_rule(
        ca: trustme.CA) -> None:
    # Failed before: shop's listing of its own twin was refused as routed by namespace other.
    res = parse_manifests(_shop(ca, APEX) + _wildcard_router("other")
                          + _tls_only("shop", "certs", [WWW], "t")
                          + _secret("shop", "t", ca, WWW, "shop.marker.test"))
    store, problems = _store(res)
    assert problems == []
    assert _subject(store, WWW) == f"{WWW},shop.marker.test"
    assert _agree(res, store, WWW) == {WWW: True}


def test_a_host_a_rule_names_is_no_twin_and_stays_its_routers(ca: trustme.CA) -> None:
    # Rule hosts win (passes before too): namespace other routes www.example.test itself, so
    # shop's redirect makes no twin of it, and other's own listing of it applies.
    res = parse_manifests(_shop(ca, APEX) + _routing("other", "www", WWW)
                          + _tls_only("other", "certs", [WWW], "o")
                          + _secret("other", "o", ca, WWW, "other.marker.test"))
    store, problems = _store(res)
    assert problems == []
    assert _subject(store, WWW) == f"{WWW},other.marker.test"
    assert _agree(res, store, WWW) == {WWW: True}
