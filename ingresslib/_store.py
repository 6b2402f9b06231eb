"""ResourceStore: a client-agnostic cache of cluster objects, fed by watch events.

Any Kubernetes client can feed it: lightkube (``ingresslib._kube``), the official client's
``Watch``/``SharedInformer`` (``obj.to_dict()``, snake_case with ``None`` for unset fields),
kr8s (``obj.raw``), or the JSON events of ``kubectl get -w --output-watch-events -o json``
(without ``--output-watch-events`` kubectl prints bare objects, a deleted one like any other,
so deletes cannot be told apart). The store only sees dicts.

Rules (docs/cluster.md repeats them for users):

- A v1 ConfigMap is held as ``Resources.from_dicts`` holds it: its dict in ``ignored`` and its
  model in ``config_maps`` (``custom-headers``, ``add-headers``, ``proxy-set-headers`` read
  them); one the decoder would not use is invalid, as below (its last valid version stays).
- Objects are keyed by ``(apiVersion/kind, namespace, name)``. Cluster-scoped kinds
  (IngressClass) have namespace ``""``; a missing namespace on a namespaced kind is
  ``"default"``, as for manifests on disk.
- ``resourceVersion`` is never compared. The Kubernetes API says clients "must not assume
  resource versions are numeric or collatable"; a watch delivers events in order, so the last
  event applied for a key wins. Two stores fed the same per-key event sequences hold the same
  objects whatever the interleaving between keys.
- An update that changes only ``resourceVersion`` (a status update: the models hold no status)
  is kept but does not move ``generation``: nothing to rebuild (see ``_put``). The next
  snapshot holds the newer object; ``Router.update`` compares Ingresses and IngressClasses
  without ``resource_version``, so it keeps its route table for it too.
- Each object is decoded and validated when it is applied (through ``Resources.from_dicts``).
  An invalid object never reaches the snapshot: the store keeps the **last valid version** of
  that key (or nothing, if it never had one), records the ``ValidationError`` in ``errors`` and
  counts it in ``invalid_total``. One bad object never takes the table down (SEMANTICS §11:
  "an invalid update keeps the last good table and reports why"); a later valid version or a
  DELETED clears the error (for a kind fed by several watches, one from the same watch:
  ``where``).
- Objects are read as the API server stored them. A few create-time rules of ``_validate``
  only mirror the API server's admission and say nothing about what ingresslib routes
  (``_ADMISSION_ONLY``: a Service's ``topology-mode`` annotation disagreeing with
  ``topology-aware-hints``; ``loadBalancerSourceRanges``, field or annotation, on a Service that
  is not ``type: LoadBalancer`` or holding a value that is not a CIDR; a node port two of a
  Service's port numbers share, with two protocols, which the node port allocator refuses on
  create and an update stores). The API server added them after objects breaking them were
  stored, and keeps admitting those on update (it ratchets: an unchanged invalid field of a
  stored object stays accepted). Such an object is
  held and served, the broken rules kept in ``warnings`` and logged once per object version;
  ingress-nginx likewise never re-validates what the API server stored. Every other rule (all
  a route, an endpoint or a certificate is built from) still sets the object aside. Files
  (``check``, ``serve -f``) keep every rule: they stand in for the API server.
- An event that cannot even be keyed (unknown event type, no ``metadata.name``, no kind) raises
  ``ValueError``: that is a broken feed, which the caller counts (the lightkube adapter does).
- ``snapshot()`` returns a ``Resources`` in key order, so equal contents give equal snapshots.
  A kind that did not change since the last snapshot keeps its tuple (the same object); the
  one that did is patched in key order where the keys changed (or sorted anew after a burst
  that changed many): a snapshot after one event costs a copy of that kind's tuple, not a sort
  of every key held (20 ms of CPU at 10,000 Services and their slices, against 0.4 ms for the
  Router to follow the change).

The store is thread-safe (one lock), because the official client's ``SharedInformer`` calls its
handlers from a thread while the event loop takes snapshots.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._decode import _KINDS, Collector, decode_resources
from ._errors import FieldError, ValidationError
from ._resources import Resources
from ._validate import (
    _CIDR_MSG,
    _LB_ONLY,
    _LB_SOURCE_RANGES,
    _NODE_PORT_TAKEN,
    _TOPOLOGY_HINTS,
    _TOPOLOGY_MODE,
    validate_service,
)

__all__ = ["ResourceStore", "ObjectKey", "KIND_API_VERSIONS", "EVENT_TYPES"]

_log = logging.getLogger("ingresslib.store")

#: ``(apiVersion/kind, namespace, name)``, e.g. ``("networking.k8s.io/v1/Ingress", "default", "web")``.
ObjectKey = tuple[str, str, str]

#: The kinds ingresslib understands and their API group/version, used to fill in objects that come
#: without ``apiVersion``/``kind`` (list items, the official client's ``to_dict()`` of list items).
KIND_API_VERSIONS: Mapping[str, str] = MappingProxyType(
    {
        "Ingress": "networking.k8s.io/v1",
        "IngressClass": "networking.k8s.io/v1",
        "Service": "v1",
        "Endpoints": "v1",
        "Secret": "v1",
        "EndpointSlice": "discovery.k8s.io/v1",
        "ConfigMap": "v1",
    }
)

#: Kinds with no namespace: their key's namespace is ``""``.
_CLUSTER_SCOPED = frozenset({"networking.k8s.io/v1/IngressClass"})

#: The watch event types (``k8s.io/apimachinery/pkg/watch``). ``ERROR`` is not here: it carries a
#: ``Status``, not an object, and is the watcher's business (410 Gone means re-list).
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")

#: ``Resources`` fields holding decoded objects, in snapshot order.
_FIELDS = ("ingresses", "ingress_classes", "services", "endpoint_slices", "endpoints", "secrets",
           "ignored", "config_maps")

#: The key kind of a v1 ConfigMap: held twice, as ``Resources.from_dicts`` holds it (its wire
#: dict in ``ignored``, its model in ``config_maps``), and set aside like any invalid object
#: when the decoder would not use it (``custom-headers`` and the controller ConfigMap's
#: ``add-headers`` / ``proxy-set-headers`` read ``config_maps``: proxy/_header_sets.py).
_CONFIG_MAP = "v1/ConfigMap"


#: ``_ordered``'s marker for a key no longer held.
_GONE: Any = object()


@dataclass(frozen=True, slots=True)
class _Entry:
    field: str
    model: Any
    #: More ``(field, model)`` pairs the key shows in a snapshot (a ConfigMap's model in
    #: ``config_maps``, its dict being ``field``/``model``: ``_CONFIG_MAP``).
    also: tuple[tuple[str, Any], ...] = ()


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    # camelCase is the wire form; snake_case is the official client's to_dict(). None = absent.
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    return value


def _split_kind(kind: str) -> tuple[str | None, str]:
    """``"Ingress"`` or ``"networking.k8s.io/v1/Ingress"`` -> (apiVersion or None, kind)."""
    api_version, _, name = kind.rpartition("/")
    return (api_version or None), name


class ResourceStore:
    """The current set of cluster objects, kept up to date by watch events.

    >>> store = ResourceStore()
    >>> store.apply("ADDED", {"apiVersion": "v1", "kind": "Service",
    ...     "metadata": {"name": "web", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}})
    >>> [s.metadata.ref for s in store.snapshot().services]
    ['shop/web']
    >>> store.apply("DELETED", {"apiVersion": "v1", "kind": "Service",
    ...     "metadata": {"name": "web", "namespace": "shop"}})
    >>> store.snapshot().services
    ()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[ObjectKey, _Entry] = {}
        self._errors: dict[ObjectKey, ValidationError] = {}
        #: The invalid objects behind each of ``errors`` (as applied) with their errors, one per
        #: watch of the kind (``where`` judges the object to tell which watch's it is), the
        #: shown one last: another watch's comes back when this one's is cleared.
        self._rejected: dict[ObjectKey, list[tuple[Mapping[str, Any], ValidationError]]] = {}
        #: For a kind fed by several watches (``where``): objects of the other watches under a
        #: key another watch wrote last, shown again if that one is deleted first. A Secret's
        #: type is immutable, so a same-named Secret of another type is a delete and a create,
        #: which the two watches may report in either order (a lagging watch replays its old
        #: object after the other watch's ADDED, then its DELETED). Usually empty.
        self._hidden: dict[ObjectKey, list[_Entry]] = {}
        #: Keys held although their latest version breaks an admission-only rule
        #: (``_ADMISSION_ONLY``), with those rules; and the version each was last logged for.
        self._warnings: dict[ObjectKey, tuple[FieldError, ...]] = {}
        self._warned: dict[ObjectKey, Any] = {}
        self._snapshot: Resources | None = None
        #: Per ``Resources`` field: its models by key (``_entries`` split by field), and the
        #: keys (sorted) and models of ``_last``, the last snapshot made; ``_pending`` holds
        #: the keys of each field set or removed since (``_set``/``_unset``: O(1) per event,
        #: the order is worked out by ``snapshot``, once per burst).
        self._by_field: dict[str, dict[ObjectKey, Any]] = {f: {} for f in _FIELDS}
        self._order: dict[str, list[ObjectKey]] = {f: [] for f in _FIELDS}
        self._models: dict[str, list[Any]] = {f: [] for f in _FIELDS}
        self._pending: dict[str, set[ObjectKey]] = {}
        self._last = Resources()
        #: Bumped on every change to the objects a snapshot holds, except a change of
        #: ``metadata.resourceVersion`` alone (a status update); a watcher compares it to skip
        #: rebuilding when a burst of events changed nothing (bookmarks, identical MODIFIEDs,
        #: status updates).
        self.generation = 0
        #: Invalid objects seen so far (each ADDED/MODIFIED/list item that failed validation).
        self.invalid_total = 0

    # -- reading -----------------------------------------------------------------------------

    @property
    def errors(self) -> Mapping[ObjectKey, ValidationError]:
        """The keys whose latest version is invalid, with why (a read-only copy)."""
        with self._lock:
            return MappingProxyType(dict(self._errors))

    @property
    def warnings(self) -> Mapping[ObjectKey, tuple[FieldError, ...]]:
        """The keys held (and served) although their latest version breaks a rule that only
        mirrors the API server's admission (see the module's rules), with those rules (a
        read-only copy)."""
        with self._lock:
            return MappingProxyType(dict(self._warnings))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[ObjectKey]:
        """The ``(apiVersion/kind, namespace, name)`` keys of the valid objects held, sorted."""
        with self._lock:
            return sorted(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` (``(apiVersion/kind, namespace, name)``) holds a valid object."""
        with self._lock:
            return key in self._entries

    def holds(self, key: ObjectKey, where: Callable[[Any], bool] | None = None) -> bool:
        """Whether ``key`` holds a valid object of the watch ``where`` describes (as in
        ``apply``), shown or kept behind another watch's; without ``where``, ``key in self``.
        ``in`` alone would answer for another watch's object under the same name (a stale
        TLS Secret shown where an Opaque one of that name is wanted)."""
        with self._lock:
            held = self._entries.get(key)
            if where is None:
                return held is not None
            return ((held is not None and where(held.model))
                    or any(where(e.model) for e in self._hidden.get(key, ())))

    def snapshot(self) -> Resources:
        """Every valid object as one immutable ``Resources``, in key order (cached until the next
        change, so calling it after a no-op burst costs nothing)."""
        with self._lock:
            if self._snapshot is None:
                # The unchanged kinds' tuples are the last snapshot's own: Router.update
                # tells them unchanged by identity (``_router_delta``, ``is`` first).
                last = self._last
                fields = {f: self._ordered(f) if f in self._pending else getattr(last, f)
                          for f in _FIELDS}
                self._pending.clear()
                self._snapshot = self._last = Resources(**fields)
            return self._snapshot

    # -- writing -----------------------------------------------------------------------------

    def apply(self, event_type: str, obj: Mapping[str, Any], *, kind: str | None = None,
              where: Callable[[Any], bool] | None = None) -> None:
        """Apply one watch event. ``kind`` (``"Ingress"`` or ``"networking.k8s.io/v1/Ingress"``)
        fills in objects that carry no ``apiVersion``/``kind``.

        ``ADDED`` and ``MODIFIED`` both mean "this is the object now" (an informer's resync
        re-sends ADDED for known objects); ``DELETED`` removes the key; ``BOOKMARK`` only moves a
        watcher's resourceVersion and changes nothing here.

        ``where`` says which objects of the kind are this watch's, for a kind fed by several
        watches (Secrets of type ``kubernetes.io/tls`` and ``Opaque``): a test on a stored
        object (the decoded model; for an invalid object recorded in ``errors``, the object as
        applied, a mapping). A watch removes only its own objects and errors. Its ADDED or
        MODIFIED over another watch's object under the same key (a Secret deleted and
        re-created with another type, reported by the two watches in either order) is shown,
        and the other object is kept behind it: shown again if this one is deleted first,
        dropped when its own watch deletes it. Resource versions of two watches are never
        compared.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown watch event type {event_type!r}")
        if event_type == "BOOKMARK":
            return
        if not isinstance(obj, Mapping):
            raise ValueError(f"watch event object is not a mapping: {type(obj).__name__}")
        filled, key = self._prepare(obj, kind)
        with self._lock:
            if event_type == "DELETED":
                self._drop_error(key, where)
                self._drop_warning(key)
                if self._remove(key, where):
                    self._changed()
                return
            entry = self._decode(filled, key, where)
            if entry is not None:
                self._put(key, entry, where)

    def replace_all(self, kind: str, objs: Iterable[Mapping[str, Any]], *,
                    namespace: str | None = None, unkeyable: list[str] | None = None,
                    where: Callable[[Any], bool] | None = None) -> None:
        """Make ``objs`` the complete set of ``kind`` objects (after a list), in ``namespace``
        only when given. Keys of that kind missing from ``objs`` are dropped: that is how deletes
        missed while a watch was down (410 Gone) are caught up. An invalid item keeps the key's
        last valid version, as in ``apply``.

        An item that cannot be keyed (no ``metadata.name``, not a mapping) raises ``ValueError``,
        unless ``unkeyable`` is given: then why is appended to it and the item is skipped, so
        one broken item does not make the whole list unusable (the watcher passes it).

        ``where`` (as in ``apply``): the list is complete only for the objects and errors that
        pass it, and only those are dropped when missing (two watches of one kind with
        different field selectors do not drop each other's objects, nor each other's errors).
        """
        api_version, name = _split_kind(kind)
        api_version = api_version or KIND_API_VERSIONS.get(name)
        if api_version is None:
            raise ValueError(f"unknown kind {kind!r}: pass it as 'apiVersion/Kind'")
        gvk = f"{api_version}/{name}"
        prepared = []
        for o in objs:
            try:
                prepared.append(self._prepare(o, gvk))
            except ValueError as exc:
                if unkeyable is None:
                    raise
                unkeyable.append(str(exc))
        with self._lock:
            seen: set[ObjectKey] = set()
            changed = False
            for filled, key in prepared:
                seen.add(key)
                entry = self._decode(filled, key, where)
                if entry is not None:
                    self._put(key, entry, where)
                elif _recreated(self._entries.get(key), filled, where):
                    # The name now holds another object (deleted and re-created while the
                    # watch was down: a new metadata.uid), and it is invalid. The watch would
                    # have removed the old one (DELETED) before leaving the new one out; so
                    # does the list, rather than serve an object the cluster no longer has.
                    changed = self._remove(key, where) or changed

            def missing(k: ObjectKey) -> bool:
                return k[0] == gvk and k not in seen and (namespace is None or k[1] == namespace)

            for k in [k for k in (*self._entries, *self._hidden) if missing(k)]:
                changed = self._remove(k, where) or changed
            for k in [k for k in self._errors if missing(k)]:
                self._drop_error(k, where)
            for k in [k for k in self._warnings if missing(k)]:
                self._drop_warning(k)
            if changed:
                self._changed()

    # -- internals ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        self._snapshot = None

    def _remove(self, key: ObjectKey, where: Callable[[Any], bool] | None) -> bool:
        """Remove the objects under ``key`` that ``where`` owns; True when the shown one
        changed (another watch's object kept behind it is shown again)."""
        # Without ``where`` the watch owns every object of the kind: nothing is left behind.
        hidden = self._hidden.pop(key, [])
        hidden = [] if where is None else [e for e in hidden if not where(e.model)]
        held = self._entries.get(key)
        if held is None or not (where is None or where(held.model)):
            if hidden:
                self._hidden[key] = hidden
            return False
        if hidden:
            self._set(key, hidden.pop())
            if hidden:
                self._hidden[key] = hidden
        else:
            self._unset(key)
        return True

    def _drop_error(self, key: ObjectKey, where: Callable[[Any], bool] | None) -> None:
        """Forget the error of ``key`` that ``where``'s watch recorded (another watch's
        error for that key, if any, is shown again)."""
        if key not in self._errors:
            return
        others = [] if where is None else [
            r for r in self._rejected.get(key, ()) if not where(r[0])]
        if others:
            self._rejected[key] = others
            self._errors[key] = others[-1][1]
        else:
            del self._errors[key]
            self._rejected.pop(key, None)

    def _drop_warning(self, key: ObjectKey) -> None:
        self._warnings.pop(key, None)
        self._warned.pop(key, None)

    def _put(self, key: ObjectKey, entry: _Entry,
             where: Callable[[Any], bool] | None = None) -> None:
        self._drop_error(key, where)
        old = self._entries.get(key)
        if where is None:
            self._hidden.pop(key, None)
        elif old is not None and not where(old.model):
            # Another watch's object: kept behind this one (see ``apply``), in place of any
            # older object of this watch kept there.
            self._hidden[key] = [e for e in self._hidden.get(key, ()) if not where(e.model)]
            self._hidden[key].append(old)
            self._set(key, entry)
            self._changed()
            return
        elif key in self._hidden:
            # This watch's object was behind another one: this watch speaks for it now.
            others = [e for e in self._hidden[key] if not where(e.model)]
            if others:
                self._hidden[key] = others
            else:
                del self._hidden[key]
        if old is not None and old == entry:
            return
        self._set(key, entry)
        if old is not None and _same_but_version(_typed(old), _typed(entry)):
            # Only resourceVersion moved: a status update (the API server bumps resourceVersion
            # on every write, `status.loadBalancer` included, and the models hold no status), or
            # a write that changed nothing ingresslib reads. The store keeps the newest object,
            # but ``generation`` stays: nothing a table, a router or a certificate is built
            # from changed, so the watcher has nothing to rebuild or reload. ingress-nginx
            # likewise rebuilds its model on such an event and then finds it equal
            # (internal/ingress/controller/controller.go, syncIngress: "if
            # n.runningConfig.Equal(pcfg) { ... No configuration change detected, skipping
            # backend reload"), so it does not reload either. The next snapshot (after a real
            # change, an endpoint update) holds this newer object: Router.update compares
            # Ingresses without resource_version (``_router._equal_but_versions``) and keeps
            # its table. The object is kept rather than the old one because the snapshot is
            # the cluster's objects as they are now (``resource_version`` included: tests and
            # users read it), and a caller feeding a Router without a store gets new objects
            # with moved versions as well, which only the Router's comparison covers.
            self._snapshot = None
            return
        self._changed()

    def _set(self, key: ObjectKey, entry: _Entry) -> None:
        """Hold ``entry`` under ``key`` (every change to ``_entries`` goes through here or
        ``_unset``, which keep the per-field view ``snapshot`` orders)."""
        old = self._entries.get(key)
        if old is not None and (old.field, [f for f, _ in old.also]) != (
                entry.field, [f for f, _ in entry.also]):  # pragma: no cover - kind is fixed
            self._unset(key)
        self._entries[key] = entry
        for field, model in ((entry.field, entry.model), *entry.also):
            self._by_field[field][key] = model
            self._pending.setdefault(field, set()).add(key)

    def _unset(self, key: ObjectKey) -> None:
        entry = self._entries.pop(key)
        for field in (entry.field, *(f for f, _ in entry.also)):
            del self._by_field[field][key]
            self._pending.setdefault(field, set()).add(key)

    def _ordered(self, field: str) -> tuple[Any, ...]:
        """The models of ``field`` in key order: the last snapshot's, patched where keys were
        set or removed since (a binary search each), or sorted anew when many were."""
        held = self._by_field[field]
        order, models = self._order[field], self._models[field]
        pending = self._pending[field]
        if len(pending) * 8 > len(order):
            # A burst (a first list, a re-list): one sort beats many shifts of long lists.
            order[:] = sorted(held)
            models[:] = map(held.__getitem__, order)
            return tuple(models)
        for key in pending:
            i = bisect_left(order, key)
            was = i < len(order) and order[i] == key
            model = held.get(key, _GONE)
            if model is _GONE:
                if was:
                    del order[i]
                    del models[i]
            elif was:
                models[i] = model
            else:
                order.insert(i, key)
                models.insert(i, model)
        return tuple(models)

    def _prepare(self, obj: Mapping[str, Any], kind: str | None) -> tuple[dict[str, Any], ObjectKey]:
        if not isinstance(obj, Mapping):
            raise ValueError(f"object is not a mapping: {type(obj).__name__}")
        default_version, default_kind = _split_kind(kind) if kind else (None, None)
        obj_kind = obj.get("kind") or default_kind
        if not isinstance(obj_kind, str) or not obj_kind:
            raise ValueError("object has no kind")
        api_version = _get(obj, "apiVersion", "api_version") or default_version
        if api_version is None:
            api_version = KIND_API_VERSIONS.get(obj_kind)
        if not isinstance(api_version, str) or not api_version:
            raise ValueError(f"{obj_kind} has no apiVersion")
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{obj_kind} has no metadata.name")
        # The key's parts by value, as the decoder reads a str subclass (``_decode._str``): an
        # old-style ``class K(str, Enum)`` formats as "K.SERVICE", a key that no DELETED or
        # re-list in plain strings matched (the object stayed in every snapshot).
        obj_kind, api_version, name = (str.__str__(obj_kind), str.__str__(api_version),
                                       str.__str__(name))
        gvk = f"{api_version}/{obj_kind}"
        if gvk in _CLUSTER_SCOPED:
            ns = ""
        else:
            raw_ns = meta.get("namespace") if isinstance(meta, Mapping) else None
            ns = str.__str__(raw_ns) if isinstance(raw_ns, str) and raw_ns else "default"
        filled = dict(obj)
        # Fill in what list items lack, in the object's own key style so the decoder sees one
        # spelling (snake_case objects come from the official client's to_dict()).
        snake = "api_version" in filled and "apiVersion" not in filled
        filled["api_version" if snake else "apiVersion"] = api_version
        filled["kind"] = obj_kind
        return filled, (gvk, ns, name)

    def _decode(self, filled: dict[str, Any], key: ObjectKey,
                where: Callable[[Any], bool] | None = None) -> _Entry | None:
        admitted: list[FieldError] = []
        try:
            # Objects from the API server carry no unknown field (it prunes them): the field
            # walk would cost ~15 % of the decode of a kubectl-get-shaped object for nothing.
            res = decode_resources([filled], check_fields=False)
        except ValidationError as err:
            lenient = _decode_admitted(filled, key, err, admitted)
            if not isinstance(lenient, Resources):
                self._reject(key, err if lenient is None else lenient, filled, where)
                return None
            res = lenient
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the feed either
            _log.exception("cannot decode %s %s/%s", key[0], key[1], key[2])
            self._reject(key, _wrap(key, exc), filled, where)
            return None
        if key[0] == _CONFIG_MAP and res.ignored:
            if not res.config_maps:
                # What the decoder warns of ("...; not used by custom-headers"): an object the
                # API server would refuse. Set aside as any invalid object (its last valid
                # version stays, so the headers in use stay): it never stops the table.
                self._reject(key, ValidationError(list(res.warnings) or [FieldError(
                    _ref(key), "", "Invalid value", "not a usable ConfigMap")]), filled, where)
                return None
            self._drop_warning(key)
            return _Entry("ignored", res.ignored[0], (("config_maps", res.config_maps[0]),))
        for field in _FIELDS:
            items = getattr(res, field)
            if items:
                # An object of another kind is the decoder's own deep copy of ``filled``
                # (``_prepare`` copies only the top level): a client that updates its object in
                # place and applies it again has not changed the stored one, so the comparison
                # in ``_put`` sees the change. (Decoded kinds are immutable models.)
                self._note_admitted(key, items[0], admitted)
                return _Entry(field, items[0])
        return None  # pragma: no cover - from_dicts of one object yields one object

    def _note_admitted(self, key: ObjectKey, model: Any, admitted: list[FieldError]) -> None:
        """Keep (or clear) the admission-only rules ``key``'s new version breaks; log them once
        per object version (an informer's resync re-sends the same version: not again)."""
        if not admitted:
            self._drop_warning(key)
            return
        rules = tuple(admitted)
        meta = getattr(model, "metadata", None)
        version = getattr(meta, "resource_version", None) or rules
        self._warnings[key] = rules
        if self._warned.get(key) == version:
            return
        self._warned[key] = version
        _log.warning(
            "%s breaks a rule the API server checks when an object is created, not on an "
            "object it already stored (stored before the rule, or kept on update): served "
            "as stored, since the rule does not change what ingresslib routes:\n%s",
            _ref(key), "\n".join(str(e) for e in rules))

    def _reject(self, key: ObjectKey, err: ValidationError, obj: Mapping[str, Any],
                where: Callable[[Any], bool] | None) -> None:
        self.invalid_total += 1
        self._errors[key] = err
        others = [] if where is None else [
            r for r in self._rejected.get(key, ()) if not where(r[0])]
        self._rejected[key] = [*others, (obj, err)]
        held = self._entries.get(key)
        kept = ("keeping its last valid version"
                if held is not None and (where is None or where(held.model)) else "left out")
        _log.warning("invalid %s (%s):\n%s", _ref(key), kept, err)


#: Service rules of ``_validate`` that only mirror the API server's admission: (field path or
#: its prefix before ``[``, detail). What each guards is a field ingresslib never reads (no
#: route, endpoint, port or certificate depends on it), so an object breaking it routes as it
#: would without it; ingress-nginx does not read these fields either.
#:
#: - ``metadata.annotations[service.kubernetes.io/topology-mode]`` "must match ..." (added to
#:   ValidateService in Kubernetes 1.27): kube-proxy's and the EndpointSlice controller's
#:   business (zone hints); ingresslib reads no topology annotation.
#: - ``spec.LoadBalancerSourceRanges`` / the ``load-balancer-source-ranges`` annotation:
#:   "may only be used when `type` is 'LoadBalancer'" and "must be a valid CIDR value": the
#:   cloud load balancer's firewall; ingresslib's own source ranges are Ingress annotations
#:   (whitelist-source-range), parsed strictly there.
#: - ``spec.ports[].nodePort`` "provided port is already allocated", within one Service (two
#:   port numbers, two protocols, one node port): the allocator refuses it on create only, an
#:   update stores it (``_validate.validate_service``'s ``stored``); ingresslib never uses
#:   node ports.
_ADMISSION_ONLY: frozenset[tuple[str, str]] = frozenset({
    (f"metadata.annotations[{_TOPOLOGY_MODE}]",
     f"must match annotations[{_TOPOLOGY_HINTS}] when both are specified"),
    ("spec.LoadBalancerSourceRanges", _LB_ONLY),
    ("spec.LoadBalancerSourceRanges", _CIDR_MSG),
    (f"metadata.annotations[{_LB_SOURCE_RANGES}]", _LB_ONLY),
    (f"metadata.annotations[{_LB_SOURCE_RANGES}]", _CIDR_MSG),
    ("spec.ports[].nodePort", _NODE_PORT_TAKEN),
})
_ADMISSION_ONLY_KINDS = frozenset({"v1/Service"})


def _admission_only(err: FieldError) -> bool:
    field = err.field
    if field.startswith("spec.LoadBalancerSourceRanges["):
        field = "spec.LoadBalancerSourceRanges"
    elif field.startswith("spec.ports[") and field.endswith("].nodePort"):
        field = "spec.ports[].nodePort"
    return (field, err.detail) in _ADMISSION_ONLY


def _decode_admitted(filled: Mapping[str, Any], key: ObjectKey, err: ValidationError,
                     admitted: list[FieldError]) -> Resources | ValidationError | None:
    """``filled`` decoded without the admission-only rules when those are among ``err``'s (the
    rules it breaks are appended to ``admitted``); or, when another rule sets it aside, the
    whole error of the object as stored (``validate_service``'s ``stored``: what sets it aside
    is told, not only the create-time refusal ``err`` may be); None: no admission-only rule."""
    if key[0] not in _ADMISSION_ONLY_KINDS or not any(map(_admission_only, err.errors)):
        return None
    api, kind = key[0].rpartition("/")[::2]
    decoder, _, attr, cluster_scoped = _KINDS[(api, kind)]
    found: list[FieldError] = []

    def lenient(model: Any, label: str) -> list[FieldError]:
        # Every admission-only kind is a Service, checked as a stored one: the allocator's
        # create-only refusal does not hide its other rules' errors.
        # (Set aside, the whole error is told, as for an object read from a file.)
        problems = validate_service(model, label, stored=True)
        if not all(map(_admission_only, problems)):
            return problems
        found.extend(problems)
        return []

    c = Collector(check_fields=False)
    c._decode_one(filled, kind, decoder, lenient, attr, cluster_scoped, None)
    try:
        res = c.result()
    except ValidationError as whole:
        return whole
    admitted.extend(found)
    return res


def _recreated(held: _Entry | None, obj: Mapping[str, Any],
               where: Callable[[Any], bool] | None) -> bool:
    """Whether ``obj`` is another object than the one ``held`` (of this watch) under its name:
    both carry a ``metadata.uid``, and they differ."""
    if held is None or not (where is None or where(held.model)):
        return False
    meta = obj.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    old = getattr(getattr(held.model, "metadata", None), "uid", None)
    return isinstance(uid, str) and bool(uid) and isinstance(old, str) and bool(old) and uid != old


def _typed(entry: _Entry) -> Any:
    """The decoded model of an entry (a ConfigMap's, not its dict in ``ignored``)."""
    return entry.also[0][1] if entry.also else entry.model


def _same_but_version(old: Any, new: Any) -> bool:
    """True when two decoded models differ in ``metadata.resource_version`` only."""
    meta = getattr(new, "metadata", None)
    if meta is None or type(old) is not type(new):
        return False  # an object of another kind: a dict, compared as a whole
    if old.metadata.resource_version == meta.resource_version:
        return False  # they differ elsewhere (the caller found them unequal)
    return bool(old == dataclasses.replace(
        new, metadata=dataclasses.replace(meta, resource_version=old.metadata.resource_version)))


def _ref(key: ObjectKey) -> str:
    """``Ingress shop/web``, ``IngressClass nginx``: how errors name objects."""
    kind = key[0].rpartition("/")[2]
    return f"{kind} {key[1]}/{key[2]}" if key[1] else f"{kind} {key[2]}"


def _wrap(key: ObjectKey, exc: Exception) -> ValidationError:
    from ._errors import FieldError

    return ValidationError([FieldError(_ref(key), "", "Internal error",
                                       f"{type(exc).__name__}: {exc}")])
