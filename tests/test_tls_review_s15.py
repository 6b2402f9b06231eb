"""Review of the session-15 TLS changes (certificate store split into ``_select``, the tenancy
rule for ``tls.hosts`` listings, the from-to-www twin, the consumers): defects found, each with
the test that failed before its fix."""

from __future__ import annotations

import trustme

from test_tls_tenant_s15 import (  # noqa: E402
    HOST, _agree, _routing, _secret, _store, _subject, _tls_only, ca)
from ingresslib._load import parse_manifests
from ingresslib._tls import DEFAULT_CERT_NAME

__all__ = ["ca"]   # the fixture, shared with test_tls_tenant_s15


def _two_wildcard_listings(ca: trustme.CA, shop_secret: str = "w") -> str:
    # evil (older) and shop both list *.example.test without a rule; shop routes HOST.
    return (_routing("shop", "shop", HOST)
            + _tls_only("evil", "squat", ["*.example.test"], "w", created="2019-01-01T00:00:00Z")
            + _secret("evil", "w", ca, "*.example.test", "evil.marker.test")
            + _tls_only("shop", "certs", ["*.example.test"], shop_secret)
            + _secret("shop", "w", ca, "*.example.test", "shop.marker.test"))


def test_another_namespaces_wildcard_listing_does_not_serve_a_host_whose_namespace_lists_one(
        ca: trustme.CA) -> None:
    # Before: the suffix had one certificate, the oldest listing's (evil's), and shop's host
    # got it, although a listed *. name "does not stand for the exact hosts other namespaces
    # route (neither their certificate nor TLS hosts through it)" (update(), 3.). Now shop's
    # own listing serves its host; hosts nobody routes still get the oldest listing's.
    res = parse_manifests(_two_wildcard_listings(ca))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST, "other.example.test") == {
        HOST: True, "other.example.test": True}
    assert _subject(store, HOST) == "*.example.test,shop.marker.test"
    assert _subject(store, "other.example.test") == "*.example.test,evil.marker.test"
    # The expiry metric follows: HOST's series names shop's Secret.
    assert dict((h, s) for h, s, _ in store.certificates()) == {
        "*.example.test": "evil/w", HOST: "shop/w"}


def test_and_is_no_fallback_when_its_own_namespaces_listing_is_broken(ca: trustme.CA) -> None:
    # shop's listing names a Secret that does not exist: HOST gets the default certificate,
    # not evil's wildcard (as test_a_listed_wildcard_is_no_fallback_for_another_namespaces_...).
    res = parse_manifests(_two_wildcard_listings(ca, shop_secret="missing"))
    store, problems = _store(res)
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress shop/certs", "spec.tls[0].secretName", False)]
    assert _agree(res, store, HOST) == {HOST: True}
    assert store.context_for(HOST) is store.default_context
    assert _subject(store, "other.example.test") == "*.example.test,evil.marker.test"
    assert _subject(store, HOST) == DEFAULT_CERT_NAME


def test_its_own_namespaces_listing_not_covering_the_host_is_reported(ca: trustme.CA) -> None:
    # shop's listed Secret names *.other.test only: HOST gets the default certificate (not
    # evil's), and that is said, as a listing alone in its suffix says it.
    res = parse_manifests(
        _routing("shop", "shop", HOST)
        + _tls_only("evil", "squat", ["*.example.test"], "w", created="2019-01-01T00:00:00Z")
        + _secret("evil", "w", ca, "*.example.test", "evil.marker.test")
        + _tls_only("shop", "certs", ["*.example.test"], "w")
        + _secret("shop", "w", ca, "*.other.test"))
    store, problems = _store(res)
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress shop/certs", "spec.tls[0].hosts[0]", False)]
    assert "does not cover 'shop.example.test' (it names *.other.test)" in problems[0].message
    assert _subject(store, HOST) == DEFAULT_CERT_NAME
    assert _agree(res, store, HOST) == {HOST: True}
