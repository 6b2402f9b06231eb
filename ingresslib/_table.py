"""RouteTable: which served Ingress rule a (host, path) reaches.

All the Ingress semantics live here, in plain Python, at build time: which Ingresses are served
(classes), how rules from many Ingresses merge per host, which of two identical rules wins, which
default backend a host falls back to, and how canary Ingresses pair with main rules. The result is
handed to the matcher (``_matcher.Matcher``: compiled, or its pure twin) as plain dicts of
prebuilt ``Match`` objects, so a lookup is one call that allocates nothing.
"""

from __future__ import annotations

import gc
import itertools
import operator
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from ._errors import BadRequestError
from ._goparse import parse_bool
from ._models import (
    EMPTY_MAP,
    LEGACY_CLASS_ANNOTATION,
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressClass,
    TypedLocalObjectReference,
)
from ._normalize import (ascii_lower, canonical_path, canonical_rule_path, normalize_host,
                         rule_path_spelling, split_target)
from ._resources import Resources

CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"

_T = TypeVar("_T")

#: ``map(_rule_match, rules, _NO_CANARIES, ids)``: no canary for any rule of a host group.
_NO_CANARIES = itertools.repeat(None)

__all__ = ["Match", "Diagnostic", "RouteTable", "SERVER_ALIAS", "parse_server_alias", "server_aliases"]


@dataclass(frozen=True, slots=True, eq=False)
class Match:
    """The rule (or default backend) a request reaches. Prebuilt at table build time: a lookup
    returns one of these objects and allocates nothing.

    Identity is the route: two lookups that reach the same rule return the same object, so
    per-route state (balancer cycles, canary counters) can key on ``route_id``.
    """

    #: Backend Service name, or None for a ``resource`` backend.
    service: str | None
    #: Backend port as written in the Ingress: number, or port name.
    port: int | str | None
    #: The Ingress's namespace (its backends live there).
    namespace: str
    #: ``"namespace/name"`` of the Ingress that owns the rule.
    ingress: str
    #: The rule's host as written (``"foo.com"``, ``"*.foo.com"``), or None for host-less rules.
    host: str | None
    #: The rule's path as written, or None for a default backend.
    path: str | None
    #: ``"Exact"``, ``"Prefix"``, ``"ImplementationSpecific"``, or None for a default backend.
    path_type: str | None
    is_default_backend: bool
    #: The ``resource`` backend, when the backend is not a Service.
    resource: TypedLocalObjectReference | None = None
    #: The canary Ingress's backend for this same rule (host, path, pathType), if one exists;
    #: for a default backend, the canary Prefix ``/`` of its host (ingress-nginx's root location).
    canary: Match | None = None
    #: The whole Ingress object (annotations drive balancers, canary and proxy behaviour).
    ingress_object: Ingress | None = None
    #: Small integer unique to this route inside one table.
    route_id: int = -1
    #: The canonical form of ``path`` used for matching (None for default backends).
    match_path: str | None = None

    @property
    def annotations(self) -> Mapping[str, str]:
        """The owning Ingress's ``metadata.annotations`` (read-only; empty when the Match
        carries no Ingress object)."""
        if self.ingress_object is None:
            return EMPTY_MAP
        return self.ingress_object.metadata.annotations

    @property
    def is_canary(self) -> bool:
        """True for the Match objects found in another Match's ``canary`` slot."""
        return _is_canary_value(self.annotations.get(CANARY_ANNOTATION))


class _MatchInProgress:
    """A Match under construction: the same slots, minus the frozen ``__setattr__``."""

    __slots__ = Match.__slots__

    def __init__(
        self, service: str | None, port: int | str | None, namespace: str, ingress: str,
        host: str | None, path: str | None, path_type: str | None, is_default_backend: bool,
        resource: TypedLocalObjectReference | None, canary: Match | None, ingress_object: Ingress | None,
        route_id: int, match_path: str | None,
    ) -> None:
        self.service = service
        self.port = port
        self.namespace = namespace
        self.ingress = ingress
        self.host = host
        self.path = path
        self.path_type = path_type
        self.is_default_backend = is_default_backend
        self.resource = resource
        self.canary = canary
        self.ingress_object = ingress_object
        self.route_id = route_id
        self.match_path = match_path


def _new_match(
    service: str | None, port: int | str | None, namespace: str, ingress: str, host: str | None,
    path: str | None, path_type: str | None, is_default_backend: bool,
    resource: TypedLocalObjectReference | None, canary: Match | None, ingress_object: Ingress | None,
    route_id: int, match_path: str | None,
) -> Match:
    """``Match(...)`` with every field given positionally, in a third of the time.

    A build creates one Match per rule (10,000 for a large table), and the frozen dataclass
    ``__init__`` was its dearest part: per field it calls ``object.__setattr__(self, name,
    value)``, a generic lookup by name. Plain attribute stores on an unfrozen object with the
    same slots are specialised by the interpreter; the object then becomes a real Match by
    ``__class__`` assignment, which CPython allows between classes with identical slots and
    layout (and checks: it raises TypeError otherwise). The result is indistinguishable from
    ``Match(...)``: same type, same values, and frozen for everyone from then on.
    tests/test_table.py checks that every field is filled.
    """
    m = _MatchInProgress(service, port, namespace, ingress, host, path, path_type, is_default_backend, resource,
                         canary, ingress_object, route_id, match_path)
    m.__class__ = Match  # type: ignore[assignment]
    return m  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A build-time finding that is not an error: a shadowed or duplicate rule, a canary with no
    main rule, a rule path that can never match, an unknown class..."""

    #: ``"Ingress default/web"``.
    object: str
    #: ``spec.rules[0].http.paths[1]``.
    field: str
    message: str
    severity: str = "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.object}: {self.field}: {self.message}" if self.field else (
            f"{self.severity}: {self.object}: {self.message}")




# --- which Ingresses are served (SEMANTICS §3) ------------------------------------------------


#: How a note on an Ingress the class filter leaves out ends (``explain`` and ``serve`` find
#: those notes by it).
NOT_SERVED = "; not served"


def served_ingresses(
    res: Resources, ingress_class: str | None, controller: str | None
) -> tuple[list[Ingress], list[Diagnostic]]:
    """The Ingresses a controller with this filter serves, oldest first, and why the others are
    not (in the same order).

    The answer depends on the set of objects, not on the order they were given in: a table built
    from a ``ResourceStore`` snapshot (key order) equals one built from the same manifests read
    in any order. An object given twice (same kind, namespace and name: two files defining
    ``default/web``) counts once, the later definition winning with a warning, as a store fed
    both versions (or ``kubectl apply`` of both files) would leave it; serving both would merge
    two versions of one object, which no cluster can hold.
    """
    ingresses, notes = _last_definitions(res.ingresses, _namespaced_key, "Ingress")
    ingresses.sort(key=_age_key)
    if ingress_class is None and controller is None:
        # "With neither given every Ingress is served."
        return ingresses, notes

    def class_matches(c: IngressClass) -> bool:
        return (ingress_class is None or c.metadata.name == ingress_class) and (
            controller is None or c.spec.controller == controller
        )

    # Deduplicated before filtering: a later definition of a class that no longer matches
    # the filter must hide the earlier one that did.
    classes, class_notes = _last_definitions(res.ingress_classes, _class_key, "IngressClass")
    notes = class_notes + notes
    matching = {c.metadata.name: c for c in classes if class_matches(c)}
    # "An Ingress naming no class is served iff a matching class has
    # ingressclass.kubernetes.io/is-default-class: "true" (exactly "true")."
    has_default = any(c.is_default for c in matching.values())
    served: list[Ingress] = []
    for ing in ingresses:
        name = ing.class_name
        obj = f"Ingress {ing.metadata.ref}"
        if name is None:
            if has_default:
                served.append(ing)
            else:
                notes.append(Diagnostic(obj, "spec.ingressClassName",
                                        "names no class and no matching IngressClass is the "
                                        f"default{NOT_SERVED}", "info"))
        elif name in matching:
            served.append(ing)
        else:
            # "A named class that does not exist is never served."
            why = (f'IngressClass "{name}" is not among the objects given (SEMANTICS §3: a '
                   "class that does not exist is never served; load the IngressClass too, or, "
                   "watching a cluster, create it)"
                   if all(c.metadata.name != name for c in classes)
                   else f'class "{name}" does not match this controller')
            if ing.spec.ingress_class_name is None:
                # The note's field stays spec.ingressClassName (``explain`` finds the notes by
                # it); the message says the name came from the legacy annotation, which the
                # user has to edit instead.
                why = (f"named by the annotation {LEGACY_CLASS_ANNOTATION} (spec.ingressClassName "
                       f"is unset): {why}")
            notes.append(Diagnostic(obj, "spec.ingressClassName", f"{why}{NOT_SERVED}", "info"))
    return served, notes


#: A namespaced object's identity (an Ingress, a Service, a Secret): (namespace, name).
#: attrgetter: C speed, for 10,000 Ingresses a build.
_namespaced_key: Callable[[Any], Hashable] = operator.attrgetter("metadata.namespace", "metadata.name")
#: Cluster-scoped: the name alone identifies an IngressClass, whatever namespace a manifest
#: wrote in its metadata.
_class_key: Callable[[Any], Hashable] = operator.attrgetter("metadata.name")


def _last_definitions(items: Sequence[_T], key: Callable[[_T], Hashable], kind: str
                      ) -> tuple[list[_T], list[Diagnostic]]:
    """``items`` with only the last definition of each key, and a warning per repeated key
    (in name order, so the notes do not depend on the input order)."""
    last = {key(item): item for item in items}
    if len(last) == len(items):  # the usual case: every object once
        return list(items), []
    counts: dict[Hashable, int] = {}
    for item in items:
        k = key(item)
        counts[k] = counts.get(k, 0) + 1
    notes = sorted((
        Diagnostic(f"{kind} {_ref_of(last[k])}", "", f"defined {n} times; the last definition is used")
        for k, n in counts.items() if n > 1
    ), key=lambda d: d.object)
    return list(last.values()), notes


def _ref_of(obj: Any) -> str:
    meta = obj.metadata
    return meta.name if isinstance(obj, IngressClass) else f"{meta.namespace}/{meta.name}"


def _age_key(ing: Ingress) -> tuple[int, datetime | int, str, str]:
    """Oldest first: creationTimestamp, then namespace/name. Objects without a timestamp (files
    on disk) count as the newest, since the API server would stamp them on create. A naive
    timestamp (a model built by hand) is read as UTC, as the decoder reads one: comparing it
    with an aware one would raise TypeError and take the whole build down."""
    ts = ing.metadata.creation_timestamp
    if ts is None:
        return (1, 0, ing.metadata.namespace, ing.metadata.name)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return (0, ts, ing.metadata.namespace, ing.metadata.name)


def _is_canary_value(raw: str | None) -> bool:
    # ingress-nginx canary/main.go: "config.Enabled, err = parser.GetBoolAnnotation(
    # canaryAnnotation, ...)" -- strconv.ParseBool, so "True", "1" and "t" make a canary too;
    # an invalid value is an error there and the Ingress is served as a normal one.
    return raw is not None and parse_bool(raw) is True


def _is_canary(ing: Ingress) -> bool:
    return _is_canary_value(ing.metadata.annotations.get(CANARY_ANNOTATION))


_annotations_of: Callable[[Ingress], Mapping[str, str]] = operator.attrgetter("metadata.annotations")


def _split_canaries(served: Sequence[Ingress]) -> tuple[list[Ingress], list[Ingress]]:
    """``served`` split into main and canary Ingresses (``_is_canary``), each in order.

    One read of the annotation per Ingress, and nothing more when none has it (the usual case):
    two filters calling ``_is_canary`` cost two Python calls per Ingress.
    """
    raws = [a.get(CANARY_ANNOTATION) for a in map(_annotations_of, served)]
    if raws.count(None) == len(raws):
        return list(served), []
    mains: list[Ingress] = []
    canaries: list[Ingress] = []
    for ing, raw in zip(served, raws):
        (canaries if _is_canary_value(raw) else mains).append(ing)
    return mains, canaries


# --- building --------------------------------------------------------------------------------

# Precedence among the candidates for one slot (host, Exact or not, matcher key); lower wins
# (``_Entry.rank``). "Prefix /foo/ beats Prefix /foo" (the same key once the slash is dropped):
# a trailing slash in the canonical rule path adds 0, none adds _NO_SLASH_RANK; then at equal
# length Prefix beats ImplementationSpecific (documented choice: the stricter type wins, as
# Exact does). All Exact rules of one slot are identical rules (rank 0). The last tie-break,
# "for identical rules the oldest Ingress, then namespace/name, then spec order", is the order
# the build meets the candidates in (see ``_group_rules``), so a later candidate takes a slot
# only with a strictly lower rank.
_TYPE_RANK = {"Prefix": 0, "ImplementationSpecific": 1}
_OTHER_TYPE_RANK = 2  # no pathType (the validator requires one; kept last as before)
_NO_SLASH_RANK = 3  # above every type rank: the slash is compared first


@dataclass(slots=True)
class _Source:
    """A served Ingress with what every one of its rules needs, computed once per Ingress."""

    ingress: Ingress
    #: ``"namespace/name"``.
    ref: str
    namespace: str

    @classmethod
    def of(cls, ing: Ingress) -> _Source:
        meta = ing.metadata
        return cls(ing, meta.ref, meta.namespace)


@dataclass(slots=True)
class _Entry:
    """One candidate rule during the build."""

    source: _Source
    rule_index: int
    path_index: int
    host: str | None
    path: HTTPIngressPath
    canonical: str
    exact: bool
    #: The matcher key: a Prefix rule's trailing "/" is ignored (/foo/ and /foo match the same
    #: requests), an Exact rule's is kept.
    key: str

    @property
    def field(self) -> str:
        # Built only for diagnostics: most builds never need it.
        return f"spec.rules[{self.rule_index}].http.paths[{self.path_index}]"

    def rank(self) -> int:
        """Precedence among the candidates for this entry's slot: lower wins (see _TYPE_RANK).

        Computed only when two candidates meet: most keys are unique.
        """
        if self.exact:
            return 0
        rank = _TYPE_RANK.get(self.path.path_type or "", _OTHER_TYPE_RANK)
        # The canonical path's slash, not the written one's: "/foo/%2e" (a valid Prefix path)
        # and "/foo/." are "/foo/", and beat "/foo" as "/foo/" does (the rules are compared
        # and matched in their canonical form; a dot segment never removes the last slash).
        # "/" needs no case of its own: it is the only canonical path of its slot (key "",
        # repeated slashes are resolved), so whatever it adds, it adds to every candidate there.
        if not self.canonical.endswith("/"):
            rank += _NO_SLASH_RANK
        return rank


@dataclass(slots=True)
class _Group:
    """One host's rules during the build. Made by ``_new_group``: a build makes one per host
    (10,000 for 10,000 one-rule Ingresses), and five ``default_factory`` calls each cost more
    than the literals."""

    host: str | None
    exact: dict[str, _Entry]
    prefix: dict[str, _Entry]
    #: The canary Matches paired with rules of ``exact`` and ``prefix``, under the same keys;
    #: None until the first one is paired (most hosts have none: two dicts fewer per host).
    exact_canary: dict[str, Match] | None
    prefix_canary: dict[str, Match] | None
    #: Served Ingresses with rules for this host, oldest first (for the default backend).
    owners: list[Ingress]
    #: The canary Prefix ``/`` paired with the host's default backend (its implicit root
    #: location, see ``_root_pairing``), if any.
    root_canary: Match | None = None


def _new_group(host: str | None) -> _Group:
    return _Group(host, {}, {}, None, None, [], None)


def _canonical_or_error(written: str) -> str | BadRequestError:
    try:
        return canonical_rule_path(written)
    except BadRequestError as exc:
        return exc


def _entries(src: _Source, diags: list[Diagnostic],
             canonical_cache: dict[str, str | BadRequestError]) -> Iterator[_Entry]:
    """The candidate rules of one Ingress, in spec order.

    A generator, not a list: a rule path that can never match is reported when it is met, so
    its diagnostic keeps its place among the shadowing diagnostics of the rules around it.
    """
    for ri, rule in enumerate(src.ingress.spec.rules):
        host = rule.host or None
        for pi, p in enumerate(rule.paths or ()):
            e = _entry(src, ri, pi, host, p, diags, canonical_cache)
            if e is not None:
                yield e


def _entry(src: _Source, ri: int, pi: int, host: str | None, p: HTTPIngressPath, diags: list[Diagnostic],
           canonical_cache: dict[str, str | BadRequestError]) -> _Entry | None:
    """The candidate for ``spec.rules[ri].http.paths[pi]`` (``p``), or None, reported in
    ``diags``, when its path can never match."""
    written = p.path or "/"  # an empty ImplementationSpecific path matches everything
    # Hosts repeat the same paths (/, /api, /static): canonicalise each once per build.
    canonical = canonical_cache.get(written)
    if canonical is None:
        canonical = canonical_cache[written] = _canonical_or_error(written)
    if isinstance(canonical, BadRequestError):
        diags.append(Diagnostic(f"Ingress {src.ref}", f"spec.rules[{ri}].http.paths[{pi}].path",
                                f"{written!r} can never match a request: {canonical}"))
        return None
    if canonical != written and canonical != rule_path_spelling(written):
        diags.append(_stands_for(src, ri, pi, host, p, written, canonical))
    if p.path_type == "Exact":
        return _Entry(src, ri, pi, host, p, canonical, True, canonical)
    return _Entry(src, ri, pi, host, p, canonical, False, canonical.rstrip("/"))


def _stands_for(src: _Source, ri: int, pi: int, host: str | None, p: HTTPIngressPath, written: str,
                canonical: str) -> Diagnostic:
    """The note on a rule path whose canonical form resolves dot segments (``%2e`` included)
    or repeated slashes: it is matched as another path than the one written (Exact
    ``/a/%2e%2e`` is Exact ``/``). Spelling alone (``%7e`` for ``~``, ``/café`` encoded)
    changes nothing a request can tell, and is not noted."""
    return Diagnostic(
        f"Ingress {src.ref}", f"spec.rules[{ri}].http.paths[{pi}].path",
        f"{p.path_type} {written!r} on host {host or '*'} matches as {p.path_type} {canonical!r} "
        "(its canonical form: dot segments and repeated slashes resolved as in request paths); "
        "ingress-nginx compares the path as written with the normalised request path")


#: The place of a shadowed rule's note in the diagnostics until its slot's winner is known.
_PENDING = Diagnostic("", "", "")


def _shadowed(loser: _Entry, winner: _Entry) -> Diagnostic:
    p = loser.path
    return Diagnostic(
        f"Ingress {loser.source.ref}", loser.field,
        f"{p.path_type} {p.path or '/'!r} on host {loser.host or '*'} is shadowed by "
        f"Ingress {winner.source.ref} {winner.field} and never matches")


def _group_rules(mains: list[Ingress], diags: list[Diagnostic],
                 canonical_cache: dict[str, str | BadRequestError]) -> dict[str | None, _Group]:
    """The main rules of every host, one winner per slot; ``mains`` is oldest first.

    "All served Ingresses merge into one table per host." Candidates are met oldest Ingress
    first, then in spec order, which is the last tie-break of the precedence (see _TYPE_RANK).
    """
    groups: dict[str | None, _Group] = {}
    #: (index in ``diags``, losing rule): the notes on shadowed rules are written once every
    #: slot is settled, so that each names the rule that kept the slot (a later rule of lower
    #: rank can take it from the one a loser met, which then never matches either). Meanwhile
    #: each holds its place in ``diags``. One entry per loser, and one note, as before.
    beaten: list[tuple[int, _Entry]] = []
    # One pass over each Ingress's rules (``_entries`` inlined): a generator per Ingress and a
    # second loop over its rules are paid per object, which shows with one rule per Ingress.
    # Making a rule's host group just before its candidates are placed, instead of every group
    # of the Ingress first, changes nothing: placing a candidate reads its own group only.
    for ing in mains:
        src = _Source.of(ing)
        for ri, rule in enumerate(ing.spec.rules):
            host = rule.host or None
            g = groups.get(host)
            if g is None:
                g = groups[host] = _new_group(host)
            owners = g.owners
            if not owners or owners[-1] is not ing:
                owners.append(ing)
            if not rule.paths:
                continue
            for pi, p in enumerate(rule.paths):
                e = _entry(src, ri, pi, host, p, diags, canonical_cache)
                if e is None:
                    continue
                slot = g.exact if e.exact else g.prefix
                # One dict operation for the usual case, a key no other rule has.
                prev = slot.setdefault(e.key, e)
                if prev is e:
                    continue
                if e.rank() < prev.rank():
                    slot[e.key] = e
                    loser = prev
                else:
                    loser = e
                beaten.append((len(diags), loser))
                diags.append(_PENDING)
    for i, loser in beaten:
        g = groups[loser.host]
        diags[i] = _shadowed(loser, (g.exact if loser.exact else g.prefix)[loser.key])
    return groups


def _backend_fields(backend: IngressBackend) -> tuple[str | None, int | str | None, TypedLocalObjectReference | None]:
    if backend.service is not None:
        return backend.service.name, backend.service.port.value, None
    return None, None, backend.resource


def _rule_match(e: _Entry, canary: Match | None, route_id: int) -> Match:
    p = e.path
    src = e.source
    svc = p.backend.service  # ``_backend_fields``, inlined: one call per rule
    if svc is not None:
        return _new_match(svc.name, svc.port.value, src.namespace, src.ref, e.host, p.path, p.path_type, False,
                          None, canary, src.ingress, route_id, e.canonical)
    return _new_match(None, None, src.namespace, src.ref, e.host, p.path, p.path_type, False,
                      p.backend.resource, canary, src.ingress, route_id, e.canonical)


def _rule_matches(entries: dict[str, _Entry], canaries: dict[str, Match] | None,
                  route_ids: Iterator[int]) -> dict[str, Match]:
    """A Match per entry, under its key, with its paired canary if any, each taking the next id.

    map/zip run the loop at C speed, which counts with one host per Ingress (a comprehension
    per host was a function made and called, twice). ``map`` stops at its first exhausted
    argument, the entries: it takes no id past the last one.
    """
    if not entries:
        return {}
    return dict(zip(entries, map(_rule_match, entries.values(),
                                 _NO_CANARIES if canaries is None else map(canaries.get, entries),
                                 route_ids)))


def _default_match(ing: Ingress, host: str | None, route_id: int, canary: Match | None = None) -> Match:
    assert ing.spec.default_backend is not None
    service, port, resource = _backend_fields(ing.spec.default_backend)
    return Match(
        service=service, port=port, namespace=ing.metadata.namespace, ingress=ing.metadata.ref,
        host=host, path=None, path_type=None, is_default_backend=True, resource=resource,
        canary=canary, ingress_object=ing, route_id=route_id,
    )


def _pair_canaries(canaries: list[Ingress], groups: dict[str | None, _Group], diags: list[Diagnostic],
                   canonical_cache: dict[str, str | BadRequestError], route_ids: Iterator[int],
                   any_default: bool) -> Match | None:
    """Store each canary rule's Match in its main rule's group: "a second Ingress with the same
    host, path and pathType as a main rule"; a canary Prefix ``/`` with no main rule of its
    own pairs with the host's default backend where ingress-nginx's implicit root location has
    it (``_root_pairing``). Returns the host-less canary ``/`` paired with the table's default
    (no host-less rules: the catch-all server's root location is the table's default)."""
    global_root: Match | None = None
    for ing in canaries:
        src = _Source.of(ing)
        obj = f"Ingress {src.ref}"
        if ing.spec.default_backend is not None:
            diags.append(Diagnostic(obj, "spec.defaultBackend",
                                    "a canary Ingress's defaultBackend is ignored (canaries apply to rules)"))
        for e in _entries(src, diags, canonical_cache):
            cgroup = groups.get(e.host)
            main = None if cgroup is None else (cgroup.exact if e.exact else cgroup.prefix).get(e.key)
            if main is None and not e.exact and e.key == "" and e.path.path_type == "Prefix":
                why = _root_pairing(cgroup, e.host, any_default)
                if why is None:
                    written = e.path.path or "/"
                    held = global_root if cgroup is None else cgroup.root_canary
                    if held is not None:
                        diags.append(Diagnostic(obj, e.field, f"rule already has the canary {held.ingress}; ignored"))
                        continue
                    paired_root = _rule_match(e, None, next(route_ids))
                    if cgroup is None:
                        global_root = paired_root
                    else:
                        cgroup.root_canary = paired_root
                    if written != "/":
                        diags.append(Diagnostic(obj, e.field, f"canary Prefix {written!r} on host {e.host or '*'}: "
                                                "paired with the host's default backend (its root location "
                                                "'/'), which matches the same requests; ingress-nginx pairs a "
                                                "canary only with a location of the identical path and drops "
                                                "this one: write '/'"))
                    continue
                if why:
                    diags.append(Diagnostic(obj, e.field, f"canary Prefix {e.path.path or '/'!r} on host "
                                            f"{e.host or '*'} matches no main rule; ignored ({why})"))
                    continue
            if cgroup is None or main is None:
                diags.append(Diagnostic(obj, e.field, f"canary {e.path.path_type} {e.path.path or '/'!r} on host "
                                        f"{e.host or '*'} matches no main rule; ignored"))
                continue
            if main.path.path_type != e.path.path_type:
                # A main rule of this host and path exists (a main rule of the canary's own
                # pathType, if any, lost to it): name the rule that serves the path.
                diags.append(Diagnostic(obj, e.field, f"canary {e.path.path_type} {e.path.path or '/'!r} on host "
                                        f"{e.host or '*'}: the main rule serving that path is "
                                        f"{main.path.path_type} {main.path.path or '/'!r} (Ingress "
                                        f"{main.source.ref} {main.field}), not {e.path.path_type}; ignored"))
                continue
            paired = cgroup.exact_canary if e.exact else cgroup.prefix_canary
            if paired is None:
                paired = {}
                if e.exact:
                    cgroup.exact_canary = paired
                else:
                    cgroup.prefix_canary = paired
            if e.key in paired:
                diags.append(Diagnostic(obj, e.field, f"rule already has the canary {paired[e.key].ingress}; ignored"))
                continue
            paired[e.key] = _rule_match(e, None, next(route_ids))
            written, main_written = e.path.path or "/", main.path.path or "/"
            if written != main_written:
                # Paired here by the canonical path (the two rules match the same requests:
                # "/foo/" and "/foo" as Prefix, "/café" and "/caf%C3%A9"), but ingress-nginx's
                # mergeAlternativeBackends merges a canary only into a location with
                # "loc.Path == path.Path && *loc.PathType == *path.PathType" (an empty path
                # read as "/" by the store) and deletes it otherwise: said, as a divergence.
                diags.append(Diagnostic(obj, e.field, f"canary {e.path.path_type} {written!r} on host "
                                        f"{e.host or '*'}: paired with the main rule {main.path.path_type} "
                                        f"{main_written!r} (Ingress {main.source.ref} {main.field}), which "
                                        "matches the same requests; ingress-nginx pairs a canary only with "
                                        f"a rule of the identical path and drops this one: write {main_written!r}"))
    return global_root


def _root_pairing(group: _Group | None, host: str | None, any_default: bool) -> str | None:
    """Whether a canary Prefix ``/`` with no main rule of that path pairs with the default
    backend of its host: None if it does, else why not ("" when no more than "matches no main
    rule" is to be said).

    ingress-nginx (controller.go) gives every server an implicit root location: createServers
    adds ``Path: "/", PathType: &pathTypePrefix, IsDefBackend: true`` with ``Backend: un``, the
    upstream of the ``defaultBackend`` of the first (oldest) Ingress with a rule for the host,
    or the controller's default upstream when that Ingress has none; the catch-all server
    ``_`` (host-less rules, and every host no rule names) takes the backend of any main
    Ingress's ``defaultBackend``. A main Prefix ``/`` rule takes that location over (it is then
    the main rule). mergeAlternativeBackends merges a canary into a location on ``loc.Path ==
    path.Path && *loc.PathType == *path.PathType`` with no look at ``IsDefBackend``, but
    canMergeBackend refuses the controller's default upstream (``primary.Name !=
    defUpstreamName``). So the canary pairs with the host's default backend when that is the
    oldest owner's own (a named host), or when any default backend exists (host-less). A host
    with no group (no main rule names it) has no server: no pairing.
    """
    if host is None:
        return None if any_default else ""
    if group is None:
        return ""
    first = group.owners[0]
    if first.spec.default_backend is not None:
        return None
    if not any_default:
        return ""
    return (f"ingress-nginx pairs a canary Prefix '/' with the host's default backend only when it is "
            f"the defaultBackend of the oldest Ingress with rules for the host, here Ingress "
            f"{first.metadata.ref}, which has none: its root location has the controller's default "
            "backend, which takes no canary")


# --- server-alias (ingress-nginx annotations/alias, controller.go createServers) ----------------

#: The annotation (ingress-nginx's name).
SERVER_ALIAS = "nginx.ingress.kubernetes.io/server-alias"


def parse_server_alias(raw: str) -> tuple[list[str], list[str]]:
    """The names a ``server-alias`` value gives, and why each name refused is refused.

    ingress-nginx alias/main.go: ``strings.Split(val, ",")``, each ``strings.TrimSpace``-d,
    empty ones skipped, duplicates dropped (``sets.NewString``), sorted. nginx's server_name
    is case-insensitive: names are compared in lower case here. Only the names the router can
    match are kept: a host name (DNS-1123 subdomain) or a ``*.`` wildcard, which stands for one
    first label as a ``*.`` rule host does (SEMANTICS §4.1). nginx's other server_name forms
    (a regex ``~...``, ``.example.com``, ``www.example.*``) and anything else are refused with
    a warning; ingress-nginx writes them into ``server_name`` as they are."""
    from ._validate import is_dns1123_subdomain, is_wildcard_dns1123_subdomain

    names: set[str] = set()
    refused: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        low = ascii_lower(name)  # nginx's server_name compares A-Z only (a Kelvin sign is no k)
        if low.startswith("~"):
            refused.append(f"{name!r}: a regex server name (nginx's '~') is not supported; ignored")
        elif (is_wildcard_dns1123_subdomain(low) if low.startswith("*") else is_dns1123_subdomain(low)):
            refused.append(f"{name!r} is not a host name or a '*.' wildcard; ignored")
        else:
            names.add(low)
    return sorted(names), refused


def alias_servers(ingresses: Iterable[Ingress]) -> list[tuple[str, str | None]]:
    """``(alias, its server's host)`` for each ``server-alias`` name the route table keeps,
    of the non-canary Ingresses ``ingresses`` (oldest first; the server of the host-less
    rules: None): :func:`server_aliases` with the rule hosts as the host groups, what the TLS
    readers of a server's settings (client certificates, ciphers) extend to its aliases."""
    mains = list(ingresses)
    if not any(SERVER_ALIAS in ing.metadata.annotations for ing in mains):
        return []
    hosts = dict.fromkeys(rule.host or None for ing in mains for rule in ing.spec.rules)
    return [(alias, server) for alias, (server, _ing) in server_aliases(mains, hosts)[0].items()]


def server_aliases(mains: Sequence[Ingress], hosts: Iterable[str | None]
                   ) -> tuple[dict[str, tuple[str | None, Ingress]], list[Diagnostic]]:
    """alias -> (the host group it stands for, the Ingress giving it), and the notes on the
    aliases dropped. ``mains``: the served non-canary Ingresses, oldest first; ``hosts``: the
    host groups (rule hosts, None for the host-less rules).

    ingress-nginx controller.go ``createServers``: canary Ingresses are skipped ("is marked as
    Canary, ignoring"); per rule host (``_`` for a host-less rule) the first Ingress, oldest
    first, with aliases sets the server's aliases, a later one is skipped ("Aliases already
    configured for server %q, skipping"); then each server's aliases drop "alias == host" and
    any alias that is a server's host name ("if _, ok := servers[alias]; ok { continue }").
    An alias two servers both claim is written in both server_name lists; nginx keeps the
    first server block (the servers are sorted by host name, ``_`` among them) and warns
    "conflicting server name": here the server whose host sorts first keeps it."""
    host_list = list(hosts)
    servers = {h for h in host_list if h is not None}
    diags: list[Diagnostic] = []
    given: dict[str | None, tuple[Ingress, list[str]]] = {}
    for ing in mains:
        raw = ing.metadata.annotations.get(SERVER_ALIAS)
        if raw is None:
            continue
        obj, fld = f"Ingress {ing.metadata.ref}", f"metadata.annotations[{SERVER_ALIAS}]"
        names, refused = parse_server_alias(raw)
        diags.extend(Diagnostic(obj, fld, why) for why in refused)
        if not names:
            continue
        for host in dict.fromkeys(rule.host or None for rule in ing.spec.rules):
            had = given.setdefault(host, (ing, names))
            if had[0] is not ing:
                diags.append(Diagnostic(obj, fld, f"ignored for host {host or '*'}: its aliases are "
                                        f"already set by the older Ingress {had[0].metadata.ref} "
                                        "(ingress-nginx: the first Ingress with the annotation "
                                        "sets a server's aliases)"))
    claimed: dict[str, tuple[str | None, Ingress]] = {}
    for host in sorted(given, key=lambda h: "_" if h is None else h):
        ing, names = given[host]
        obj, fld = f"Ingress {ing.metadata.ref}", f"metadata.annotations[{SERVER_ALIAS}]"
        for name in names:
            if name == host:
                diags.append(Diagnostic(obj, fld, f"alias {name!r} is the host itself; ignored", "info"))
            elif name in servers:
                diags.append(Diagnostic(obj, fld, f"alias {name!r} of host {host or '*'} dropped: "
                                        f"{name!r} is a rule host, with rules of its own"))
            elif name in claimed:
                diags.append(Diagnostic(obj, fld, f"alias {name!r} of host {host or '*'} dropped: it is "
                                        f"already an alias of host {claimed[name][0] or '*'} (Ingress "
                                        f"{claimed[name][1].metadata.ref}), whose server comes first "
                                        "(nginx: conflicting server name, the first server keeps it)"))
            else:
                claimed[name] = (host, ing)
    return claimed, diags


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, if it runs, for a bulk build.

    A large build allocates ~100,000 objects in one go, which sets off dozens of collections
    that walk the whole young heap (and the older generations, holding the Resources) and free
    nothing: the build makes no reference cycles; its temporaries are freed by reference
    counting. Pausing it is the usual remedy for bulk object creation, and saved about a fifth
    of the build time. It is only a pause: collection resumes on exit, exception or not, and a
    collector the caller disabled stays disabled. (The switch is process-wide: other threads
    run paused meanwhile too, and a thread that disables the collector during a build finds it
    enabled again after.)
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _default_matcher(groups: Sequence[tuple[str | None, Mapping[str, Match], Mapping[str, Match], Match | None]],
                     default: Match | None) -> Any:
    """The matcher ``_matcher`` picks, or the pure twin for a table the compiled one refuses.

    The compiled matcher has fixed-width fields: a rule path's label length is 16 bits (at most
    ``max_key_length``, 64 KiB), node indexes and label offsets are 32 bits (at most 2 GiB of
    rule paths; a host name's length is 32 bits). Past them its ``__init__`` raises ValueError
    before the tree is built (the 2 GiB check before its arrays are allocated). Such a table is
    valid, if odd, so it is served by the pure twin, the reference, rather than refused;
    ``RouteTable.matcher`` then says ``"python"``. The compiled matcher's one other ValueError
    (a duplicate host group, which a build never makes) the twin raises too, so it still
    propagates. Its own check of the bounds is the only one: the table used to measure every
    rule path before the build as well (``_longest_key``), a second pass over all the keys.
    """
    from . import _match_py
    from ._matcher import Matcher

    if Matcher is _match_py.Matcher:
        return Matcher(groups, default)
    try:
        return Matcher(groups, default)
    except ValueError:
        pass  # out of the compiled layout's bounds: the twin has none
    return _match_py.Matcher(groups, default)


class _MatchFunction(Protocol):
    """``table.match``'s type: the contract's argument names (``host``, ``path``) are part of
    it, so ``table.match(host=..., path=...)`` type-checks as it runs."""

    def __call__(self, host: str, path: str) -> Match | None: ...


class RouteTable:
    """The merged routing rules of every served Ingress, ready for lookups.

    >>> from ingresslib import parse_manifests
    >>> res = parse_manifests('''
    ... apiVersion: networking.k8s.io/v1
    ... kind: Ingress
    ... metadata: {name: web}
    ... spec:
    ...   rules:
    ...   - host: foo.example
    ...     http:
    ...       paths:
    ...       - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
    ... ''')
    >>> table = RouteTable.build(res)
    >>> m = table.match("Foo.Example:8080", "/api/v1")
    >>> (m.service, m.port, m.path, m.path_type)
    ('api', 80, '/api', 'Prefix')
    >>> table.match("foo.example", "/apiv1") is None
    True

    ``match`` raises :class:`BadRequestError` (``status_hint`` 400) for a path with no
    canonical form (SEMANTICS §5), and first for a Host the proxy and ``IngressASGI`` answer 400
    before routing (a space, ``/``, ``@``, a port that is no number in 1-65535, an empty label,
    non-ASCII: nginx's ``ngx_http_validate_host``), never a route for it; ``""`` is no host
    (the host-less rules).

    >>> for host, path in [("foo.example", "/../api"), ("foo.example:abc", "/api")]:
    ...     try:
    ...         table.match(host, path)
    ...     except BadRequestError as exc:
    ...         print(exc.status_hint, exc)
    400 '..' above the root: '/../api'
    400 invalid Host header: 'foo.example:abc'
    """

    #: ``match(host, path) -> Match | None`` (bound straight to the matcher's lookup: no extra
    #: Python frame on the hot path). Raises :class:`BadRequestError` for hosts and paths to
    #: reject.
    match: _MatchFunction

    def __init__(
        self,
        groups: Sequence[tuple[str | None, Mapping[str, Match], Mapping[str, Match], Match | None]],
        default: Match | None,
        routes: Sequence[Match],
        diagnostics: Sequence[Diagnostic],
        served: Sequence[Ingress],
        matcher_class: Any = None,
    ) -> None:
        if matcher_class is None:
            self._matcher = _default_matcher(groups, default)
        else:
            self._matcher = matcher_class(groups, default)
        self.match = self._matcher.lookup
        #: The implementation doing lookups: ``"cython"`` or ``"python"``.
        self.matcher = "cython" if type(self._matcher).__module__.endswith("._match") else "python"
        self.default: Match | None = default
        #: Every Match a lookup can return (main rules, default backends), canaries not included.
        self.routes: tuple[Match, ...] = tuple(routes)
        #: Shadowed and duplicate rules, unpaired canaries, unmatchable paths, unserved Ingresses.
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        #: The served Ingresses, oldest first.
        self.served: tuple[Ingress, ...] = tuple(served)
        #: Every host key of the matcher: rule hosts (None for the host-less rules), then the
        #: ``server-alias`` names.
        self.hosts: tuple[str | None, ...] = tuple([g[0] for g in groups])
        #: ``server-alias`` name -> (the rule host it stands for, None for the host-less rules;
        #: the Ingress giving it): the aliases kept (see ``server_aliases``).
        self.aliases: Mapping[str, tuple[str | None, str]] = {}

    @classmethod
    def build(
        cls,
        res: Resources,
        ingress_class: str | None = None,
        controller: str | None = None,
        *,
        matcher_class: Any = None,
    ) -> RouteTable:
        """Merge the served Ingresses of ``res`` into one table (SEMANTICS §3-§4).

        ``matcher_class`` picks the matcher implementation (tests run both); by default the
        compiled one when it is available.
        """
        with _gc_paused():
            return cls._build(res, ingress_class, controller, matcher_class)

    @classmethod
    def _build(cls, res: Resources, ingress_class: str | None, controller: str | None,
               matcher_class: Any) -> RouteTable:
        served, diags = served_ingresses(res, ingress_class, controller)  # oldest first
        mains, canaries = _split_canaries(served)

        canonical_cache: dict[str, str | BadRequestError] = {}
        groups = _group_rules(mains, diags, canonical_cache)
        # Route ids are handed out in build order: canaries, the global default, then per host
        # its Exact rules, Prefix rules and default backend.
        route_ids = itertools.count()
        with_default = [i for i in mains if i.spec.default_backend is not None]
        global_root = _pair_canaries(canaries, groups, diags, canonical_cache, route_ids, bool(with_default))

        # --- default backends (SEMANTICS §4.5) ---
        global_default = (_default_match(with_default[0], None, next(route_ids), global_root)
                          if with_default else None)
        # The oldest default answers the requests that reach no host group: there are such
        # requests only when no host-less rule exists (a host-less group takes every host no
        # rule names). Otherwise it serves only the host groups without a default of their own.
        used_defaults = {id(with_default[0])} if with_default and None not in groups else set()
        #: The Ingress whose default backend answers the host-less group's misses.
        hostless_default = ""
        #: id(Ingress) -> the Ingresses whose default backend took a host group it has rules in.
        beaten_by: dict[int, set[str]] = {}
        #: The ids of the Ingresses whose default backend answers some request: the oldest one's
        #: for the hosts of no host group, and those of the groups without a catch-all rule.
        reached = set(used_defaults)
        #: id(Ingress) -> the catch-all rules (a Prefix ``/``: matcher key "") in front of its
        #: default backend in the host groups it serves.
        caught: dict[int, list[_Entry]] = {}

        routes: list[Match] = []
        built: list[tuple[str | None, Mapping[str, Match], Mapping[str, Match], Match | None]] = []
        for host, g in groups.items():
            exact = _rule_matches(g.exact, g.exact_canary, route_ids)
            prefix = _rule_matches(g.prefix, g.prefix_canary, route_ids)
            # "the defaultBackend of the oldest served Ingress with rules in that host group that
            # has one; else the oldest served Ingress's defaultBackend; else no match"
            owner = None
            for o in g.owners:
                if o.spec.default_backend is not None:
                    owner = o
                    break
            if owner is not None:
                used_defaults.add(id(owner))
                gdefault: Match | None = _default_match(owner, host, next(route_ids), g.root_canary)
                for other in g.owners:
                    if other is not owner and other.spec.default_backend is not None:
                        beaten_by.setdefault(id(other), set()).add(owner.metadata.ref)
            elif global_default is not None:
                used_defaults.add(id(with_default[0]))
                gdefault = _default_match(with_default[0], host, next(route_ids), g.root_canary)
            else:
                gdefault = None
            routes.extend(exact.values())
            routes.extend(prefix.values())
            if gdefault is not None:
                default_of = id(owner if owner is not None else with_default[0])
                catch_all = g.prefix.get("")
                if catch_all is None:
                    reached.add(default_of)
                else:
                    caught.setdefault(default_of, []).append(catch_all)
                routes.append(gdefault)
                if host is None:
                    hostless_default = gdefault.ingress
            built.append((host, exact, prefix, gdefault))
        if global_default is not None:
            routes.append(global_default)
        aliases: dict[str, tuple[str | None, Ingress]] = {}
        if any(SERVER_ALIAS in a for a in map(_annotations_of, served)):
            alias_groups, aliases = _alias_groups(mains, canaries, groups, built, diags)
            built.extend(alias_groups)
        for extra in with_default:
            if id(extra) not in used_defaults and extra is with_default[0]:
                # The oldest default, with no rules of its own, when the host-less rules catch
                # every host no rule names and every host group has a default of its own.
                diags.append(Diagnostic(
                    f"Ingress {extra.metadata.ref}", "spec.defaultBackend",
                    "never used: the host-less rules answer every host no rule names (their misses "
                    f"go to the default backend of Ingress {hostless_default}), and every "
                    "host with rules has a default backend of its own"))
            elif id(extra) not in used_defaults:
                # A shadowed default backend, reported like a shadowed rule: naming what shadows
                # it (the oldest default, which answers hosts without one of their own, and the
                # older defaults of the host groups this Ingress has rules in), in name order.
                winners = sorted(beaten_by.get(id(extra), set()) | {with_default[0].metadata.ref})
                whose = ("backend of the older Ingress {} serves" if len(winners) == 1
                         else "backends of the older Ingresses {} serve").format(", ".join(winners))
                diags.append(Diagnostic(f"Ingress {extra.metadata.ref}", "spec.defaultBackend",
                                        f"never used: the default {whose} every host it could"))
            elif id(extra) not in reached:
                diags.append(_caught_default(extra, caught[id(extra)]))
        table = cls(built, global_default, routes, diags, served, matcher_class)
        table.aliases = {alias: (host, ing.metadata.ref) for alias, (host, ing) in aliases.items()}
        return table

    def explain(self, host: str, path: str) -> dict[str, Any]:
        """A JSON-ready account of what ``match`` does with this request (for ``explain``)."""
        out: dict[str, Any] = {"host": host, "path": path}
        try:
            raw, _query = split_target(path)
            out["canonical_path"] = canonical_path(raw or "/")
            m = self.match(host, path)
        except BadRequestError as exc:
            out.update(status=exc.status_hint, reason=f"rejected: {exc}", match=None)
            return out
        if m is None:
            out.update(status=404, reason="no rule and no default backend matched", match=None)
            return out
        out.update(status=200, reason="default backend" if m.is_default_backend else "rule", match=match_to_dict(m))
        if self.aliases:
            via = self.alias_of(host)
            if via is not None:
                out["server_alias"] = via
        return out

    def alias_of(self, host: str) -> dict[str, Any] | None:
        """The ``server-alias`` a request's Host reaches its server by (exact, else the ``*.``
        alias over it), as ``{"alias", "host", "ingress"}``; None when it is no alias (a rule
        host routes it first)."""
        name = normalize_host(host)
        if not name or name.startswith("["):
            return None
        got = self.aliases.get(name)
        alias = name
        if got is None:
            if name in self.hosts:
                return None  # a rule host
            dot = name.find(".")
            alias = "*" + name[dot:] if dot > 0 else ""
            if alias in self.hosts and alias not in self.aliases:
                return None  # a ``*.`` rule host routes it
            got = self.aliases.get(alias)
        if got is None:
            return None
        return {"alias": alias, "host": got[0], "ingress": got[1]}


def _alias_groups(mains: Sequence[Ingress], canaries: Sequence[Ingress], groups: Mapping[str | None, _Group],
                  built: Sequence[tuple[str | None, Mapping[str, Match], Mapping[str, Match], Match | None]],
                  diags: list[Diagnostic]
                  ) -> tuple[list[tuple[str | None, Mapping[str, Match], Mapping[str, Match], Match | None]],
                             dict[str, tuple[str | None, Ingress]]]:
    """A matcher group per ``server-alias`` name: another key to its host's group, with the
    same Match objects (the same rules, default backend, canaries and route ids), so an alias
    request routes exactly as a request to the host. Notes on what is dropped go to ``diags``."""
    for ing in canaries:
        if SERVER_ALIAS in ing.metadata.annotations:
            diags.append(Diagnostic(f"Ingress {ing.metadata.ref}", f"metadata.annotations[{SERVER_ALIAS}]",
                                    "ignored on a canary Ingress (ingress-nginx: a canary makes no server; "
                                    "the main Ingress's aliases apply to it)"))
    claimed, notes = server_aliases(mains, groups)
    diags.extend(notes)
    by_host = {g[0]: g for g in built}
    return [(alias, *by_host[host][1:]) for alias, (host, _ing) in claimed.items()], claimed


#: How the note on a default backend behind catch-all rules begins (``explain`` tells it from
#: the notes on default backends another one shadows by it).
CAUGHT_DEFAULT = "never used: every request it could answer matches the catch-all rule"


def _caught_default(ing: Ingress, rules: Sequence[_Entry]) -> Diagnostic:
    """The note on a default backend that serves host groups only where a catch-all rule
    (Prefix ``/``) answers every request first: "the default backend serves requests no rule
    matches", and there are none. Names the rules, three at most."""
    shown = [f"{e.path.path_type} {e.path.path or '/'!r} on host {e.host or '*'} "
             f"(Ingress {e.source.ref} {e.field})" for e in rules[:3]]
    more = f" and {len(rules) - 3} more" if len(rules) > 3 else ""
    return Diagnostic(f"Ingress {ing.metadata.ref}", "spec.defaultBackend",
                      f"{CAUGHT_DEFAULT}{'s' if len(rules) > 1 else ''} {', '.join(shown)}{more}")


def match_to_dict(m: Match) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ingress": m.ingress,
        "namespace": m.namespace,
        "host": m.host,
        "path": m.path,
        "path_type": m.path_type,
        "is_default_backend": m.is_default_backend,
        "service": m.service,
        "port": m.port,
    }
    if m.resource is not None:
        d["resource"] = {"kind": m.resource.kind, "name": m.resource.name, "api_group": m.resource.api_group}
    if m.canary is not None:
        d["canary"] = match_to_dict(m.canary)
    return d
