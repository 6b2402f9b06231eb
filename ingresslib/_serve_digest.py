"""``config_digest``: the ``config_hash`` metric's value, a SHA-256 of what ``serve``'s routes
are built from, the same in every process for equal configurations.

Each object is hashed once, from its canonical encoding (``_encode``: ``_canon``'s nested tuples
pickled, with one encoder generated per model class by ``_make_encoder``), and the per-object
digests are kept between calls (``_DigestCache``): a reload that changed one Ingress out of
thousands hashes that one Ingress again.
"""

from __future__ import annotations

import io
import pickle
import threading
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from operator import is_ as _is
from types import MappingProxyType
from typing import Any

from ._models import EMPTY_MAP, ObjectMeta
from ._resources import Resources

__all__ = ["config_digest"]


def config_digest(res: Resources, served: Sequence[Any], config: Any = None, *,
                  cache: _DigestCache | None = None) -> str:
    """The ``config_hash`` metric's value: a SHA-256 of what the routes are built from - the
    served Ingresses, the IngressClasses, the Services, the TLS Secrets, the ConfigMaps (custom-headers) and the ConfigMap
    settings - and not of the endpoints, which change without a reload, as in ingress-nginx
    (its hash leaves ``Endpoints`` out: ``Backend.HashInclude``). Equal configurations give
    equal digests in every process, so replicas can be compared.

    The digest depends on the set of objects, not on how they were listed, as the table does:
    a ``ResourceStore`` snapshot (key order) and the same manifests read from files (file order)
    give the same digest, so switching sources is no reload. So each kind is hashed in key order
    with one object per key (the later definition, as ``RouteTable`` uses it), maps with sorted
    keys (the API server sorts them, a file need not), and without what a table never reads:
    ``resourceVersion`` and ``uid`` (a status update bumps the first), and the creation
    timestamps, which count only through the order of the served Ingresses (oldest first,
    ``_table._age_key``), and that order is hashed. ingress-nginx compares the configuration
    built from the objects, not the objects (controller.go, syncIngress: "if
    n.runningConfig.Equal(pcfg) { ... No configuration change detected, skipping backend
    reload").

    How: each object is hashed once, into the SHA-256 of its canonical encoding (``_encode``),
    and the digest is the SHA-256 of those 32-byte digests in the order above, each kind's run
    prefixed by its count (parts of one size and counts: the concatenation reads one way only).
    The per-object digests are kept until the next call (in ``cache``, by default the module's
    ``_DIGESTS``), keyed by the model object itself, with the object's sort key: models are
    immutable, and a ``ResourceStore`` snapshot keeps the objects of the keys that did not
    change, so a reload that changed one Ingress out of thousands hashes that one Ingress
    again. A reload from files builds new objects: all of them are hashed again.

    Per kind, the objects of the last call are kept in their order too: a kind given as the
    very same objects in the same order (what a store snapshot gives for the kinds an event did
    not touch) reuses its part of the digest after one identity check per object at C speed.

    Costs (benchmarks/bench_reload.py, benchmarks/README.md "Reload"), at 10,000 rules in 100
    Ingresses: about 25 ms from cold (0.4 times the table build; repr() took 77 ms) and
    0.3 ms after one Ingress changed; at 10,000 one-rule Ingresses and 10,000 Services (cost
    per object): about 290 ms from cold (1.4 times the build; repr() took 690 ms) and 16 ms
    after one Ingress changed. Still, call it off the event loop."""
    import hashlib

    from ._table import _age_key, _class_key, _namespaced_key

    store = _DIGESTS if cache is None else cache
    known = store.runs
    seen: dict[str, _Run] = {}
    sha256 = hashlib.sha256

    def run(kind: str, objs: Sequence[Any], sort_key: Callable[[Any], Any],
            one_per_key: bool) -> bytes:
        """The count and the digests of ``objs`` in order, for one kind."""
        prev = known.get(kind)
        if prev is not None and len(prev.objs) == len(objs) and all(map(_is, objs, prev.objs)):
            # The very objects of the last call, in the same order (a store snapshot of the kinds
            # an event did not touch): the same part. A check at C speed, no Python loop.
            seen[kind] = prev
            return prev.part
        old = prev.entries if prev is not None else _NO_ENTRIES
        new: dict[int, _Entry] = {}
        got = []
        for obj in objs:
            key = id(obj)
            entry = old.get(key)
            # The entry holds the object, so while it is cached its id() cannot be reused by
            # another one; ``is`` checks it anyway.
            if entry is None or entry[0] is not obj:
                entry = (obj, sort_key(obj), sha256(_encode(obj)).digest())
            new[key] = entry
            got.append(entry)
        if one_per_key:  # one object per key (the later definition), in key order
            last = {e[1]: e for e in got}
            ordered = [last[k] for k in sorted(last)]
        else:  # oldest first; a stable sort: as given among equal keys
            ordered = sorted(got, key=_sort_key)
        part = b"".join([f"{kind} {len(ordered)}\n".encode(), *[e[2] for e in ordered]])
        seen[kind] = _Run(tuple(objs), new, part)
        return part

    parts = [run("served", served, _age_key, False),
             run("classes", res.ingress_classes, _class_key, True),
             run("services", res.services, _namespaced_key, True),
             run("secrets", res.secrets, _namespaced_key, True),
             # custom-headers reads them: an edit of one alone changes what is served.
             run("config_maps", res.config_maps, _namespaced_key, True),
             b"config\n", _encode(config)]
    # Only the objects of this call stay cached: an object replaced or deleted is let go at the
    # next call. (Two calls at once from two threads: the last one's set is kept, and the
    # other's objects are hashed again if they come back; never a wrong digest.)
    store.runs = seen
    return sha256(b"".join(parts)).hexdigest()


#: A cache entry: the object, its sort key within its kind, and its digest.
_Entry = tuple[Any, Any, bytes]
_NO_ENTRIES: dict[int, _Entry] = {}


class _Run(typing.NamedTuple):
    """What ``config_digest`` keeps of one kind: the objects as given, their entries by
    ``id()``, and the kind's part of the digest (count and digests in order)."""

    objs: tuple[Any, ...]
    entries: dict[int, _Entry]
    part: bytes


def _sort_key(entry: _Entry) -> Any:
    return entry[1]


class _DigestCache:
    """What ``config_digest`` keeps between calls, per kind (``_Run``): the objects of the last
    call with their digests, ``{id(obj): (obj, sort key, digest)}``.

    Keyed by ``id()``: models are not hashable (their maps are not), and comparing for equality
    would walk the object, the cost being saved. Slotted dataclasses take no weak references,
    so the entry holds the object, which is also what keeps its ``id()`` from being reused."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}

    def __len__(self) -> int:
        """How many objects are cached."""
        return sum(len(r.entries) for r in self.runs.values())

    def clear(self) -> None:
        self.runs = {}


#: ``serve``'s cache: the objects of the configuration hashed last, and their digests.
_DIGESTS = _DigestCache()


def _encode(value: Any) -> bytes:
    """The canonical bytes of ``value``: ``_canon(value)`` pickled without a memo.

    ``_canon`` gives nested tuples (and lists) of str, int, bool, float, bytes and None only, and
    pickle writes each of those one way: the same bytes in every process. The memo is off
    (``fast``): it would write a string seen twice as a back-reference only when both are the
    same object, which depends on how the objects were built. Protocol 3 has no framing. About
    six times as fast as repr() of the same tuples (which scans every string for quotes). One
    pickler per thread, reused (making one costs as much as pickling a small object)."""
    canon = _canon(value)  # first: it may call _encode itself (set elements)
    buf: io.BytesIO
    pickler: pickle.Pickler
    try:
        buf, pickler = _PICKLERS.current
    except AttributeError:
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=3)
        pickler.fast = True  # no memo (no PUT/GET): see above
        _PICKLERS.current = buf, pickler
    buf.seek(0)
    buf.truncate()
    pickler.dump(canon)
    return buf.getvalue()


_PICKLERS = threading.local()


#: Fields left out of a model's encoding: what a table never reads (see ``config_digest``).
_SKIPPED_FIELDS: dict[type, frozenset[str]] = {
    ObjectMeta: frozenset({"resource_version", "uid", "creation_timestamp"}),
}

#: Values encoded as themselves: pickle writes each of them one way.
_PLAIN: frozenset[type] = frozenset({str, int, bool, float, bytes, type(None)})

#: ``_canon`` of an empty map.
_NO_ITEMS = ("map", ())

#: One generated encoder per dataclass type (``_make_encoder``).
_ENCODERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _canon(value: Any) -> Any:
    """``value`` as nested tuples of plain values (``_PLAIN``), for hashing: a dataclass as its
    class name and fields (``_make_encoder``; ``ObjectMeta`` without ``resource_version``,
    ``uid`` and ``creation_timestamp``), a map as its items sorted by key, a set sorted, any
    other object as ``("repr", repr(value))``."""
    t = type(value)
    enc = _ENCODERS.get(t)
    if enc is not None:
        return enc(value)
    if t in _PLAIN:
        return value
    if t is tuple:
        return tuple([_canon(v) for v in value])
    if t is list:
        return [_canon(v) for v in value]
    if t is MappingProxyType or t is dict or isinstance(value, Mapping):
        if not value:
            return _NO_ITEMS
        if t is MappingProxyType or t is dict:
            # The models' maps: str to str. Sorted as they are (what the general case below
            # gives for plain keys and values), without a _canon call per key and value.
            items = sorted(value.items()) if all(type(k) is str for k in value) else None
            if items is not None and all(type(v) in _PLAIN for _, v in items):
                return ("map", tuple(items))
        items = [(_canon(k), _canon(v)) for k, v in value.items()]
        try:
            return ("map", tuple(sorted(items)))
        except TypeError:  # keys of several types: by their encoding (one per distinct key)
            return ("map", tuple(sorted(items, key=lambda kv: _encode(kv[0]))))
    if isinstance(value, (set, frozenset)):
        # A set's iteration order follows the per-process str hash: sort the encodings.
        return ("set", tuple(sorted(_encode(v) for v in value)))
    if is_dataclass(value) and not isinstance(value, type):
        return _make_encoder(t)(value)
    return ("repr", repr(value))


def _make_encoder(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """``_canon`` for instances of the dataclass ``cls``, written out for the class the way
    dataclasses writes ``__repr__``: one function, one attribute read per field, a nested model
    of its declared type encoded by that type's encoder directly, a plain value as itself
    (anything else, or a value that does not match the annotation, goes through ``_canon``).
    A hand-written walk per model would be no faster but would miss a field added to a model
    later; this one follows ``fields(cls)``.

    The encoding is ``(class name, field, ...)``, each field encoded as ``_canon`` encodes it."""
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(cls)
        if enc is not None:
            return enc
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # an annotation that does not resolve: that field goes through _canon
            hints = {}
        env: dict[str, Any] = {"_canon": _canon, "_plain": _PLAIN, "tuple": tuple, "type": type,
                               "_empty": EMPTY_MAP, "_no_items": _NO_ITEMS}
        skipped = _SKIPPED_FIELDS.get(cls, frozenset())
        parts = [repr(cls.__name__)]
        _BUILDING.add(cls)
        try:
            for f in fields(cls):
                if f.name not in skipped:
                    parts.append(_field_code(f.name, hints.get(f.name), env))
        finally:
            _BUILDING.discard(cls)
        # The text is made of field names (identifiers) and the repr() of a str only.
        exec(f"def encode(v):\n    return ({', '.join(parts)},)\n", env)
        made: Callable[[Any], tuple[Any, ...]] = env["encode"]
        _ENCODERS[cls] = made
        return made


#: Types whose encoder is being written (under ``_ENCODERS_LOCK``): a model that holds its own
#: type encodes that field through ``_canon``.
_BUILDING: set[type] = set()
_ENCODERS_LOCK = threading.RLock()


def _field_code(name: str, hint: Any, env: dict[str, Any]) -> str:
    """The expression that encodes field ``name`` (declared ``hint``) of the instance ``v``.
    Each fast path checks the value's type, so it gives what ``_canon`` would give."""
    x = f"v.{name}"
    args: tuple[Any, ...] = (hint,)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
    args = tuple(a for a in args if a is not type(None))
    if hint is None or not args:
        return f"_canon({x})"
    if all(a in _PLAIN for a in args):
        # str, int, bool, float or None: itself (what _canon returns for a plain value).
        return f"(_x if type(_x := {x}) in _plain else _canon(_x))"

    def model(tp: Any, var: str, value: str) -> str | None:
        # A model of the declared type: that type's encoder, called directly.
        if not (isinstance(tp, type) and is_dataclass(tp)) or tp in _BUILDING:
            return None
        n = len(env)
        env[f"_c{n}"], env[f"_e{n}"] = tp, _make_encoder(tp)
        return f"(_e{n}({var}) if type({value}) is _c{n} else _canon({var}))"

    if len(args) == 1:
        (a,) = args
        one = model(a, "_x", f"_x := {x}")
        if one is not None:
            return one
        targs = typing.get_args(a)
        origin = typing.get_origin(a)
        if isinstance(origin, type) and issubclass(origin, Mapping):
            # Most maps of most objects are empty: the models share one empty map.
            return f"(_no_items if (_x := {x}) is _empty else _canon(_x))"
        if origin is tuple and len(targs) == 2 and targs[1] is Ellipsis:
            each = model(targs[0], "_y", "_y")
            if each is not None:  # a tuple of models (the model's own: ``_own_tuples``)
                return f"(tuple([{each} for _y in _x]) if type(_x := {x}) is tuple " \
                       f"else _canon(_x))"
    return f"_canon({x})"
