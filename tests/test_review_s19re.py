"""Review of the S19 landings (R19e): ``--default-ssl-certificate`` (CertificateStore's
``default_secret``) and the balancer changes (retry keys, the two-set ring cache, EWMA's
members, the hash retry's owner-first check)."""

from __future__ import annotations

import base64
import functools
import logging
import random
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

import ingresslib._tls as tls_mod
from ingresslib._models import ObjectMeta, Secret, freeze_map
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore

from _router_helpers import ingress, resources, simple_backend

REF = "ingresslib/default-cert"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_secret(name: str, ns: str, leaf: trustme.LeafCert) -> Secret:
    return Secret(metadata=ObjectMeta(name=name, namespace=ns), type="kubernetes.io/tls",
                  data=freeze_map({
                      "tls.crt": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
                      "tls.key": base64.b64encode(leaf.private_key_pem.bytes()).decode()}))


# -- --default-ssl-certificate ------------------------------------------------------------------


def test_a_lasting_default_secret_problem_is_logged_once_not_at_every_update(
        ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    """``serve --kubernetes`` updates the store at every cluster snapshot (endpoint churn:
    every few seconds). A missing default Secret logged its warning at each of them; it is
    logged once per change, as serve's other notes: again after it was fixed and went
    missing again. The problems are still returned by every update."""
    store = CertificateStore(default_secret=REF)
    caplog.set_level(logging.WARNING, logger="ingresslib.tls")

    def logged() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "ingresslib.tls"]
        caplog.clear()
        return lines

    for _ in range(5):
        problems = store.update(Resources())
        assert len(problems) == 1 and "not found" in str(problems[0])
    assert len(logged()) == 1
    leaf = ca.issue_cert("default.example")
    assert store.update(Resources(secrets=(_tls_secret("default-cert", "ingresslib", leaf),))) \
        == []
    assert logged() == []
    store.update(Resources())
    store.update(Resources())
    assert len(logged()) == 1  # gone again: a change, said once


def test_an_unchanged_default_secret_is_loaded_once_among_5000_secrets(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each update reads the default Secret by name; its PEM is parsed (``_load``) only when
    its content changed, however many Secrets and updates."""
    leaf = ca.issue_cert("default.example")
    secrets = tuple(_tls_secret(f"s{i}", "other", leaf) for i in range(4999))
    res = Resources(secrets=(*secrets, _tls_secret("default-cert", "ingresslib", leaf)))
    loads = [0]
    original = tls_mod._load

    def counting(*args: Any, **kwargs: Any) -> Any:  # (crt, key[, tls]): session 28 added tls
        loads[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(tls_mod, "_load", counting)
    store = CertificateStore(default_secret=REF)
    for _ in range(10):
        assert store.update(res) == []
    assert loads[0] == 1


def _web(host: str, tls: dict[str, Any] | None) -> Any:
    res = resources(ingress("web", [(host, "/", "Prefix", "web", 80)]),
                    *simple_backend("web", ["10.0.0.1"]))
    if tls is None:
        return res
    d = [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
          "metadata": {"name": "web", "namespace": "default"},
          "spec": {"tls": [tls], "rules": [{"host": host, "http": {"paths": [
              {"path": "/", "pathType": "Prefix",
               "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}]
    return Resources.from_dicts(d)


def test_default_secret_also_named_by_an_ingress_keeps_that_host_a_tls_host(
        ca: trustme.CA) -> None:
    """The default Secret named by an Ingress too: the host still has a certificate of its
    own (``hosts``, told apart from the default by identity) and TLS (ssl-redirect)."""
    leaf = ca.issue_cert("app.test")
    sec = _tls_secret("default-cert", "default", leaf)
    res = _web("app.test", {"hosts": ["app.test"], "secretName": "default-cert"})
    res = Resources(ingresses=res.ingresses, secrets=(sec,))
    store = CertificateStore(default_secret="default/default-cert")
    assert store.update(res) == []
    assert store.hosts == frozenset({"app.test"})
    assert store.has_tls("app.test") and not store.has_tls("other.test")
    assert store.context_for("app.test") is not store.default_context


def test_a_default_certificate_covering_a_host_without_tls_does_not_make_it_a_tls_host(
        ca: trustme.CA) -> None:
    """ingress-nginx's ssl-redirect and HSTS follow the Ingress's ``tls`` section, never the
    catch-all certificate: a default certificate for ``*.test`` leaves ``plain.test`` (no
    ``tls``) plain HTTP."""
    leaf = ca.issue_cert("*.test", "plain.test")
    res = _web("plain.test", None)
    res = Resources(ingresses=res.ingresses,
                    secrets=(_tls_secret("default-cert", "ingresslib", leaf),))
    store = CertificateStore(default_secret=REF)
    assert store.update(res) == []
    assert not store.has_tls("plain.test") and store.hosts == frozenset()


# -- balancers ----------------------------------------------------------------------------------


def _set(n: int, salt: int = 0) -> Any:
    from ingresslib._endpoints import EndpointSet
    eps = tuple((f"10.{salt}.{i // 200}.{i % 200 + 1}", 8080) for i in range(n))
    return EndpointSet("default", "web", 8080, eps, (1,) * n, None, False)


def _old_pick_point(bal: Any, start: int, backend: Any, tried: Any) -> int | None:
    """``ConsistentHash.pick_point`` before 5317601 (no subset): the oracle."""
    eps = backend.endpoints
    if not eps:
        return None
    ring = bal._cache.get(backend)
    if not tried:
        return int(ring.lookup(start))
    skip = {k for k, ep in enumerate(eps) if ep in tried}
    found = ring.lookup_skipping(start, skip)
    return None if found < 0 else int(found)


_SETS = {n: _set(n) for n in (1, 2, 3, 7, 40, 300)}


@functools.cache
def _hash_balancer(n: int) -> Any:
    """One balancer per set, its ring built once: pick_point only reads the ring, and the
    ring's build is no part of what the test compares (most of its cost when built per
    example)."""
    from ingresslib._balance import BalancerOptions, BalancerSpec, ConsistentHash
    bal = ConsistentHash(BalancerOptions(spec=BalancerSpec("chash", hash_by="$request_uri"),
                                         rng=random.Random(1)))
    ring = bal._cache.get(_SETS[n])
    if n > 20:
        ring.build_table()  # the bucket-table lookup path as well as the bisect one
    return bal


@settings(max_examples=300, deadline=None)
@given(n=st.sampled_from(sorted(_SETS)), start=st.integers(0, 2**32 - 1),
       tried_idx=st.sets(st.integers(0, 299), max_size=12))
def test_hash_retry_owner_first_answers_as_before(n: int, start: int,
                                                   tried_idx: set[int]) -> None:
    bal = _hash_balancer(n)
    e = _SETS[n]
    tried = tuple(e.endpoints[i % n] for i in tried_idx)
    assert bal.pick_point(start, e, tried) == _old_pick_point(bal, start, e, tried)


def test_retry_keys_stay_bounded_when_no_cookie_is_asked() -> None:
    """``pick`` remembers a retry's key for ``cookie_for``; retries whose answer never asks
    for a cookie (the endpoint failed too) must not grow it: 100,000 retries."""
    from ingresslib._balance import (AffinityConfig, BalancerOptions, BalancerSpec,
                                     CookieAffinity, RequestContext)
    e = _set(100)
    bal = CookieAffinity(BalancerOptions(
        spec=BalancerSpec("sticky", affinity=AffinityConfig()), rng=random.Random(4)),
        "", "default-web-80")
    ctx = RequestContext(path="/")
    most = 0
    for i in range(100_000):
        got = bal.pick(ctx, e, (e.endpoints[i % 100],))
        assert got is not None
        most = max(most, len(bal._retry_keys[1]))
    assert 0 < most <= CookieAffinity.MAX_RETRY_KEYS


def test_ring_cache_keeps_two_rings_and_rebuilds_for_a_third_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sets alternating build each ring once; a third set in the rotation evicts the
    oldest (memory: two rings at most), so three alternating sets rebuild - bounded work per
    get, never a growing cache."""
    import ingresslib._balance_hash as bh
    from ingresslib._hashing import HashRing
    built = [0]
    original = HashRing.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(HashRing, "__init__", counting)
    cache = bh._RingCache()
    a, b, c = _set(5, 1), _set(5, 2), _set(5, 3)
    built[0] = 0
    for _ in range(10):
        cache.get(a)
        cache.get(b)
    assert built[0] == 2
    rings = {id(cache.get(a)), id(cache.get(b))}
    assert len(rings) == 2
    built[0] = 0
    for _ in range(3):
        for s in (a, b, c):
            cache.get(s)
    assert built[0] <= 9
    assert len([x for x in cache.state if isinstance(x, HashRing)]) == 2


def test_ewma_retry_on_an_old_set_without_any_current_member_still_picks() -> None:
    """Every endpoint of the set a request was routed with is gone: the members preference has
    nothing to prefer and the old set's untried endpoints are still offered."""
    from ingresslib._balance import BalancerOptions, BalancerSpec, Ewma, RequestContext
    bal = Ewma(BalancerOptions(spec=BalancerSpec("ewma"), rng=random.Random(2)))
    old, new = _set(3, 1), _set(3, 2)
    ctx = RequestContext(path="/")
    assert bal.pick(ctx, old, ()) is not None
    assert bal.pick(ctx, new, ()) is not None
    tried = (old.endpoints[0],)
    got = {bal.pick(ctx, old, tried) for _ in range(50)}
    assert got == {1, 2}
    assert bal.pick(ctx, old, old.endpoints) is None


def test_endpoints_flapping_between_two_lists_reuse_both_rings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod's readiness flapping: each update brings a NEW set object holding all the
    endpoints, then all but one, then all again. The cache holds two rings, yet rebuilt one
    at every flip (~0.2 s of event loop at 1,000 endpoints): an equal set was only compared
    with the current one, never with the one before it."""
    import ingresslib._balance_hash as bh
    from ingresslib._hashing import HashRing
    from ingresslib._endpoints import EndpointSet
    built = [0]
    original = HashRing.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(HashRing, "__init__", counting)
    full = _set(30, 4).endpoints

    def fresh(eps: Any) -> Any:  # a new object each update, as Router.update builds them
        return EndpointSet("default", "web", 8080, eps, (1,) * len(eps), None, False)

    cache = bh._RingCache()
    built[0] = 0
    rings = []
    for flip in range(10):
        rings.append(cache.get(fresh(full if flip % 2 == 0 else full[:-1])))
    assert built[0] == 2
    assert rings[0] is rings[8] and rings[1] is rings[9]
    # An equal set in between does not push the other list's ring out.
    cache.get(fresh(full[:-1]))
    cache.get(fresh(full[:-1]))
    built[0] = 0
    cache.get(fresh(full))
    assert built[0] == 0


def test_a_lasting_ingress_secret_problem_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """The same for an Ingress's missing Secret: its warning said once while it lasts, and
    each update still returns it."""
    res = _web("app.test", {"hosts": ["app.test"], "secretName": "missing"})
    store = CertificateStore()
    caplog.set_level(logging.WARNING, logger="ingresslib.tls")
    for _ in range(4):
        assert len(store.update(res)) == 1
    assert len([r for r in caplog.records if r.name == "ingresslib.tls"]) == 1


def test_new_settings_on_an_open_connection_route_options_yes_head_limits_no() -> None:
    """What ``Proxy.settings``' docstring says (it said "connections and requests that start
    later see it", yet a request read later on an open connection keeps that connection's
    head limits): route options follow at once, the connection's own limits do not."""
    from ingresslib import Proxy, Router
    from ingresslib.proxy import ProxySettings

    r = Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
                         *simple_backend("web", ["10.0.0.1"])))
    p = Proxy(r, ProxySettings())
    head = b"GET / HTTP/1.1\r\nHost: a.test\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"

    def first_bytes(acts: list[Any]) -> bytes:
        return next((bytes(a.data)[:12] for a in acts if hasattr(a, "data")), b"")

    open_conn = p.connection(("127.0.0.1", 1000), now=0.0)
    open_conn.start(0.0)
    body_conn = p.connection(("127.0.0.1", 1001), now=0.0)
    body_conn.start(0.0)
    p.settings = ProxySettings(max_headers=2, proxy_body_size=10)
    assert first_bytes(open_conn.receive_data(head, 0.0)) != b"HTTP/1.1 431"
    post = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n"
    assert first_bytes(body_conn.receive_data(post, 0.0)) == b"HTTP/1.1 413"
    new_conn = p.connection(("127.0.0.1", 1002), now=0.0)
    new_conn.start(0.0)
    assert first_bytes(new_conn.receive_data(head, 0.0)) == b"HTTP/1.1 431"
    assert "already open" in (Proxy.settings.__doc__ or "")


def test_every_public_name_is_one_the_help_walk_reads_or_a_plain_value() -> None:
    """``tests/test_help_s19.py`` reads functions and classes and passes over the rest as
    constants and type aliases: a public callable of another kind (an ``lru_cache`` wrapper,
    a ``partial``, an instance) would be passed over without its docstring being checked."""
    import inspect

    import ingresslib
    import ingresslib.proxy
    for package in (ingresslib, ingresslib.proxy):
        for name in package.__all__:
            obj = getattr(package, name)  # the lazy names too
            walked = inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)
            assert walked or not callable(obj), f"{package.__name__}.{name}: {type(obj)}"
