"""Invariants the faster ``RouteTable.build`` relies on, each against a straightforward spec-level
computation on random hand-built Resources (duplicates, timestamps aware, naive and missing,
canary annotation values Go reads as true, false or an error, rules with and without canaries).

1. ``served_ingresses`` (no class filter): one Ingress per namespace/name, the last definition,
   oldest first by (creationTimestamp read as UTC, none = newest; namespace; name), and one
   "defined N times" warning per repeated key in name order. The build dedupes with
   ``dict(zip(keys, items))`` instead of a comprehension.
2. ``_split_canaries``: the served Ingresses whose canary annotation parses true (and only
   those) are canaries, both lists in served order (it replaced two ``_is_canary`` filters).
3. Route ids follow the build order: the paired canaries' Matches first, then the global
   default, then per host group its Exact rules, its Prefix rules and its default backend, as
   ``table.routes`` lists them (the rule Matches of a host are now made by ``map`` over the
   group's rules, drawing ids from one counter).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._models import (
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    ObjectMeta,
    ServiceBackendPort,
)
from ingresslib._resources import Resources
from ingresslib._table import CANARY_ANNOTATION, RouteTable, _split_canaries, served_ingresses

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
#: Values strconv.ParseBool reads as true, false, or rejects (an invalid one: not a canary).
CANARY_VALUES = ["true", "True", "1", "t", "false", "0", "F", "yes", "", " true"]


def _backend(name: str) -> IngressBackend:
    return IngressBackend(service=IngressServiceBackend(name, ServiceBackendPort(number=80)))


# The strategies the composites below draw from, made once: a strategy built inside a composite
# is built (and validated) again at every draw, which cost more than the tests' own work. The
# same arguments, so the same examples.
_KINDS = st.sampled_from(["none", "utc", "offset", "naive"])
_HOURS = st.integers(0, 3)
_OFFSETS = st.sampled_from([-2, 1])
_COUNT = st.integers(0, 12)
_BOOL = st.booleans()
_CANARY = st.sampled_from(CANARY_VALUES)
_RULE_HOST = st.sampled_from([None, "a.test", "b.test"])
_SERVICE = st.sampled_from(["s1", "s2"])
_PATH = st.sampled_from(["/", "/a", "/a/", "/b"])
_PATH_TYPE = st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])
_N_PATHS = st.integers(1, 3)
_N_RULES = st.integers(0, 2)
_DEFAULT = st.none() | st.sampled_from(["d1", "d2"])
_NAME = st.sampled_from(["a", "b", "c", "d"])
_NAMESPACE = st.sampled_from(["n1", "n2"])


@st.composite
def timestamps(draw: st.DrawFn) -> datetime | None:
    """None, aware (UTC or another offset), or naive (read as UTC): equal instants included."""
    kind = draw(_KINDS)
    if kind == "none":
        return None
    ts = T0 + timedelta(hours=draw(_HOURS))
    if kind == "offset":
        return ts.astimezone(timezone(timedelta(hours=draw(_OFFSETS))))
    if kind == "naive":
        return ts.replace(tzinfo=None)
    return ts


@st.composite
def ingress_lists(draw: st.DrawFn) -> list[Ingress]:
    """Up to 12 Ingresses on few names (so keys repeat), each with 0-2 rules on 3 hosts."""
    out = []
    stamps = timestamps()
    for _ in range(draw(_COUNT)):
        ann: dict[str, str] = {}
        if draw(_BOOL):
            ann[CANARY_ANNOTATION] = draw(_CANARY)
        rules = tuple(
            IngressRule(draw(_RULE_HOST), tuple(
                HTTPIngressPath(_backend(draw(_SERVICE)), draw(_PATH), draw(_PATH_TYPE))
                for _ in range(draw(_N_PATHS))))
            for _ in range(draw(_N_RULES)))
        default = draw(_DEFAULT)
        if not rules and default is None:
            default = "d0"
        meta = ObjectMeta(draw(_NAME), draw(_NAMESPACE),
                          annotations=ann, creation_timestamp=draw(stamps))
        out.append(Ingress(meta, IngressSpec(default_backend=None if default is None else _backend(default),
                                             rules=rules)))
    return out


def spec_served(ings: list[Ingress]) -> tuple[list[Ingress], list[str]]:
    """SEMANTICS §3/§4.3 written out: the last definition of each namespace/name, oldest first."""
    last: dict[tuple[str, str], Ingress] = {}
    count: dict[tuple[str, str], int] = {}
    for ing in ings:
        key = (ing.metadata.namespace, ing.metadata.name)
        last[key] = ing
        count[key] = count.get(key, 0) + 1

    def age(ing: Ingress) -> tuple[Any, ...]:
        ts = ing.metadata.creation_timestamp
        if ts is None:
            return (1, ing.metadata.namespace, ing.metadata.name)
        utc = (ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        return (0, utc, ing.metadata.namespace, ing.metadata.name)

    notes = [f"warning: Ingress {ns}/{name}: defined {n} times; the last definition is used"
             for (ns, name), n in sorted(count.items(), key=lambda kv: f"{kv[0][0]}/{kv[0][1]}") if n > 1]
    return sorted(last.values(), key=age), notes


def is_canary_spec(ing: Ingress) -> bool:
    return ing.metadata.annotations.get(CANARY_ANNOTATION) in {"1", "t", "T", "TRUE", "true", "True"}


@settings(max_examples=300, deadline=None)
@given(ings=ingress_lists(), order=st.randoms(use_true_random=False))
def test_served_is_the_last_definition_of_each_key_oldest_first(ings: list[Ingress], order: Any) -> None:
    served, notes = served_ingresses(Resources(ingresses=tuple(ings)), None, None)
    want, want_notes = spec_served(ings)
    assert [id(i) for i in served] == [id(i) for i in want]  # the very objects: the later ones
    assert [str(d) for d in notes] == want_notes
    # The set, not the listing order, decides (keys once each: any order gives the same list).
    unique = list({(i.metadata.namespace, i.metadata.name): i for i in ings}.values())
    order.shuffle(unique)
    assert [id(i) for i in served_ingresses(Resources(ingresses=tuple(unique)), None, None)[0]] == \
        [id(i) for i in want]


@settings(max_examples=300, deadline=None)
@given(ings=ingress_lists())
def test_split_canaries_is_the_two_filters(ings: list[Ingress]) -> None:
    served = spec_served(ings)[0]
    mains, canaries = _split_canaries(served)
    assert [id(i) for i in mains] == [id(i) for i in served if not is_canary_spec(i)]
    assert [id(i) for i in canaries] == [id(i) for i in served if is_canary_spec(i)]


@settings(max_examples=300, deadline=None)
@given(ings=ingress_lists())
def test_route_ids_follow_the_build_order(ings: list[Ingress]) -> None:
    table = RouteTable.build(Resources(ingresses=tuple(ings)))
    canaries = sorted({m.canary.route_id for m in table.routes if m.canary is not None})
    # Canary Matches first (ids 0..c-1; an unpaired canary rule takes none).
    assert canaries == list(range(len(canaries)))
    routes = list(table.routes)
    first = len(canaries)
    if table.default is not None:
        # The global default is listed last and takes the id after the canaries.
        assert routes.pop() is table.default and table.default.route_id == first
        first += 1
    # Then per host, in table.hosts order: Exact rules, Prefix rules, the host's default.
    assert [m.route_id for m in routes] == list(range(first, first + len(routes)))
    # Each host's Matches are one run, the runs in table.hosts order, and within a run: the
    # Exact rules, the other rules, then at most one default backend.
    runs: list[tuple[str | None, list[Any]]] = []
    for m in routes:
        if not runs or runs[-1][0] != m.host:
            runs.append((m.host, []))
        runs[-1][1].append(m)
    hosts = [h for h, _ in runs]
    assert len(set(hosts)) == len(hosts) and hosts == [h for h in table.hosts if h in hosts]
    for _, run in runs:
        kinds = [2 if m.is_default_backend else 0 if m.path_type == "Exact" else 1 for m in run]
        assert kinds == sorted(kinds) and kinds.count(2) <= 1
