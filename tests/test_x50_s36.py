"""Session 36, x50: review of x46 (round-robin cycles carried across route-table rebuilds)
and x47 (``explain --default-ssl-certificate`` / ``--no-auth-secrets``).

Defects fixed (each ``test_fix_*`` failed before the fix):

* a rule's carried cycle (``_Backend.carry``) was the Rotation of the last route table in which
  the rule had a request, however many rebuilds ago: that Rotation holds its Decisions, its
  ``_Backend``, its Match and the whole Ingress object of that generation. With traffic sparse
  across the rules of an often edited Ingress, every generation's Ingress stayed alive (one
  per rule at most: 31 versions of a 30-rule Ingress after 30 edits). A side that had no
  request in the table it is carried out of now hands on the index of its turn (taken then),
  so only the previous table's objects are ever held.
* two routes of one rule key (an Ingress's defaultBackend as the global default and as the
  host-less group's default: only one reachable per table) were looked up first-come: the
  unreachable one, still carrying an old cycle, gave that cycle to the route that served,
  whose own position was lost (the same endpoint twice in a row). The side whose cycle
  requests built is now preferred.
* ``explain`` without ``--default-ssl-certificate`` changed its text for the default
  certificate (a generated one named where serve may have its own): the text is the one
  before the flag again, byte for byte.

Pinned (right before, checked here): a cycle handed on through rebuilds without requests and
across an endpoint-only update; the keep-alive race retry stays on the request's own backend
(a real Router, two routes), and a sticky session's race retry goes to another endpoint
(SEMANTICS §8), moving the session only with ``session-cookie-change-on-failure``.
"""

from __future__ import annotations

import gc
from typing import Any

from ingresslib._models import Ingress
from ingresslib._router import Router

from _proxy_harness import ProxyPair, ingress_yaml, service_yaml, status_of
from _router_helpers import P, ingress, resources, simple_backend

IPS = ["10.0.0.1", "10.0.0.2"]
N = 20


def _many_rules(gen: int, key: str = "x/gen") -> tuple[Any, ...]:
    """Ingress ``web`` with N host rules on one Service (two endpoints), its annotation
    ``key`` ``gen``: each edit is a new Ingress object and a new route table."""
    rules = [(f"h{i}.test", "/", "Prefix", "web", 80) for i in range(N)]
    return (ingress("web", rules, {key: str(gen)}), *simple_backend("web", IPS))


#: The annotation of the memory test's Ingresses (other tests' Ingresses may still be alive).
MEM = "x50/memory-test-gen"


def _web_versions() -> set[str]:
    gc.collect()
    return {o.metadata.annotations[MEM] for o in gc.get_objects()
            if type(o) is Ingress and MEM in o.metadata.annotations}


def test_fix_carried_cycles_do_not_keep_every_generation_alive() -> None:
    """Rule i has its one request in generation i, then the Ingress is edited: only the
    table in use and the previous one may be held, not one Ingress version per rule."""
    router = Router(resources(*_many_rules(0, MEM)))
    for gen in range(N):
        assert router.route("GET", f"h{gen}.test", "/") is not None
        router.update(resources(*_many_rules(gen + 1, MEM)))
    versions = _web_versions()
    assert versions <= {str(N - 1), str(N)}, sorted(versions, key=int)


def test_a_cycle_goes_on_across_rebuilds_without_requests() -> None:
    """Pinned: k requests, three Ingress edits with no request between them, more requests:
    still one cycle, never the same endpoint twice in a row (the turn handed on as an index
    through the tables in which the rule had no request)."""
    for before in range(1, 5):
        router = Router(resources(*_many_rules(0)))
        seq = [router.route("GET", "h0.test", "/") for _ in range(before)]
        for gen in range(1, 4):
            router.update(resources(*_many_rules(gen)))
        seq += [router.route("GET", "h0.test", "/") for _ in range(4)]
        endpoints = [d.endpoint for d in seq if d is not None]
        assert len(endpoints) == len(seq)
        assert all(a != b for a, b in zip(endpoints, endpoints[1:])), (before, endpoints)


# --- x47: explain without the new flags says what it said before them ---------------------------

_MANIFEST = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""

#: The default certificate in explain's text before ``--default-ssl-certificate`` existed
#: (HEAD of session 36): without the flag explain cannot know whether serve has one.
_BEFORE = "the default certificate (serve's --default-ssl-certificate, else a generated one)"


def test_fix_text_without_the_flag_is_unchanged(
        tmp_path: Any, capsys: Any) -> None:
    from ingresslib._cli import main

    files = tmp_path / "m.yaml"
    files.write_text(_MANIFEST)
    assert main(["explain", "-f", str(files), "https://unknown.test/"]) == 0
    out = capsys.readouterr().out
    assert ("  TLS (SNI unknown.test): no Secret's certificate covers it (check says why when a "
            f"tls entry names it): {_BEFORE}\n") in out, out
    assert main(["explain", "-f", str(files), "https://127.0.0.1/"]) == 0
    out = capsys.readouterr().out
    assert f"  TLS (no SNI: an IP address): {_BEFORE}\n" in out, out


# --- x46: two routes of one rule key (the global default and the host-less group's) -------------

API = ["10.0.1.1", "10.0.1.2"]


def _with_default(hostless: bool, edit: str = "/x") -> tuple[Any, ...]:
    """Ingress ``web`` (a.test, defaultBackend Service api) and, when ``hostless``, Ingress
    ``other`` with a host-less rule ``edit``: the host-less group then takes every other host,
    its misses answered by web's defaultBackend through a route of its own, whose rule key
    (Ingress, host None, no path) is the global default's."""
    web = ingress("web", [("a.test", "/", "Prefix", "web", 80)], default=("api", 80))
    other = ingress("other", [(None, edit, "Exact", "web", 80)], age=5)
    return (web, *((other,) if hostless else ()), *simple_backend("web", IPS),
            *simple_backend("api", API))


def test_fix_a_repeated_rule_key_carries_the_cycle_that_served() -> None:
    """The global default serves k requests; a host-less rule is added (its group's default
    route goes on from the global default's cycle, the same backend); m requests; an unrelated
    edit; more requests: one cycle throughout, never the same endpoint twice in a row. (The
    old global default route, unreachable now, still carried its first cycle: the lookup of
    old sides by rule key took it, the first of the two, for the route that served.)"""
    for k in range(1, 4):
        for m in range(1, 4):
            router = Router(resources(*_with_default(False)))
            seq = [router.route("GET", "b.test", "/") for _ in range(k)]
            router.update(resources(*_with_default(True)))
            seq += [router.route("GET", "b.test", "/") for _ in range(m)]
            router.update(resources(*_with_default(True, "/y")))
            seq += [router.route("GET", "b.test", "/") for _ in range(4)]
            assert all(d is not None and d.match.is_default_backend for d in seq)
            endpoints = [d.endpoint for d in seq if d is not None]
            assert all(a != b for a, b in zip(endpoints, endpoints[1:])), (k, m, endpoints)


# --- x46: the keep-alive race retry with a real Router --------------------------------------------

WEB = [("10.0.0.1", 80), ("10.0.0.2", 80)]
API_EPS = [("10.0.1.1", 80), ("10.0.1.2", 80), ("10.0.1.3", 80)]


def _real_pair(*docs: str) -> ProxyPair:
    from ingresslib import parse_manifests

    return ProxyPair(router=Router(parse_manifests("".join(docs) + service_yaml(
        "web", ["10.0.0.1", "10.0.0.2"]) + service_yaml(
        "api", ["10.0.1.1", "10.0.1.2", "10.0.1.3"]))))


def _get(host: str, cookie: str = "") -> bytes:
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    return f"GET /g HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def _close_pool(pair: ProxyPair) -> None:
    for up in pair.upstreams:
        up.closed = True  # every idle pooled connection closed by its upstream meanwhile


def test_race_retry_stays_on_the_routes_backend() -> None:
    """Pinned: the fresh connection after the race goes to another endpoint of the request's
    own backend (the decision's), never to one of another route's, with every pooled
    connection of both routes dead."""
    pair = _real_pair(ingress_yaml("web", "a.test"), ingress_yaml("api", "b.test", service="api"))
    for host in ("a.test", "b.test") * 3:  # a pooled connection to every endpoint
        assert status_of(pair.send(_get(host))) == 200
    for host, eps in (("a.test", WEB), ("b.test", API_EPS), ("a.test", WEB)):
        _close_pool(pair)
        assert status_of(pair.send(_get(host))) == 200
        rec = pair.records[-1]
        assert len(rec.upstreams) == 2 and set(rec.upstreams) <= set(eps), (host, rec.upstreams)
        assert rec.upstreams[0] != rec.upstreams[1]


def test_race_retry_of_a_session_moves_it_only_with_change_on_failure() -> None:
    """Pinned: a sticky session's race retry goes to another endpoint (SEMANTICS §8, as any
    retry); with ``session-cookie-change-on-failure`` the session moves there (a new cookie
    naming it, sticky.lua's ``get_last_failure`` then ``pick_new_upstream``), without it the
    cookie is left as it was (the next request goes back to the session's endpoint)."""
    for change in (False, True):
        ann = {P + "affinity": "cookie"}
        if change:
            ann[P + "session-cookie-change-on-failure"] = "true"
        pair = _real_pair(ingress_yaml("web", "a.test", ann))
        out = pair.send(_get("a.test"))
        assert status_of(out) == 200
        first = pair.records[-1].upstreams[0]
        cookie = out.split(b"set-cookie: ", 1)[1].split(b";", 1)[0].decode()
        _close_pool(pair)
        out = pair.send(_get("a.test", cookie))
        assert status_of(out) == 200
        rec = pair.records[-1]
        assert rec.upstreams[0] == first and rec.upstreams[1] != first, rec.upstreams
        assert (b"set-cookie: " in out) is change, out
        after = pair.send(_get("a.test", cookie))
        assert status_of(after) == 200
        assert pair.records[-1].upstreams == (first,)


def test_an_endpoint_only_update_keeps_a_pending_carry() -> None:
    """Pinned: k requests, an Ingress edit (the rule's new side carries the old cycle, no
    request yet), then an endpoint-only update of another Service (the table and this
    backend kept whole, its carry with it): the cycle still goes on."""
    def objs(gen: int, api_ip: str) -> tuple[Any, ...]:
        return (ingress("web", [("a.test", "/", "Prefix", "web", 80)], {"x/gen": str(gen)}),
                ingress("api", [("b.test", "/", "Prefix", "api", 80)]),
                *simple_backend("web", IPS), *simple_backend("api", [api_ip]))

    for before in range(1, 4):
        router = Router(resources(*objs(0, "10.0.1.1")))
        seq = [router.route("GET", "a.test", "/") for _ in range(before)]
        router.update(resources(*objs(1, "10.0.1.1")))
        table = router.table
        router.update(resources(*objs(1, "10.0.1.2")))
        assert router.table is table  # endpoint-only
        seq += [router.route("GET", "a.test", "/") for _ in range(4)]
        endpoints = [d.endpoint for d in seq if d is not None]
        assert all(a != b for a, b in zip(endpoints, endpoints[1:])), (before, endpoints)
