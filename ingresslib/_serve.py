"""``ingresslib serve``: manifests on disk -> a running proxy that follows the files.

SEMANTICS §11: "Reloads (file changes, API watch) build a new table off the hot path and swap it
atomically: requests in flight finish on the old one, nothing is dropped, an invalid update keeps
the last good table and reports why."

The files are polled (mtime, size, inode and ctime, about once a second: no inotify dependency,
and it works for ConfigMap volume mounts, whose symlink swap an inotify watch on the file
misses); SIGHUP reads them at once (one that comes while ``serve`` starts is kept until it
can be acted on). A folder that cannot be listed fails the reload (the last
good table stays) instead of being read as empty. A change
loads and builds the new Router and TLS contexts in a worker thread, then swaps one attribute on
the event loop thread. The ``--config`` ConfigMap file is polled the same way (with
``--kubernetes`` too) and applied live, as ingress-nginx applies edits of its ConfigMap; an
invalid edit keeps the settings serving and logs why; invalid manifests keep the last good
table but do not hold back a valid ConfigMap edit. What ``check`` warns of a table that builds
(shadowed rules, Ingresses left out, ignored annotation values) is logged once per line.

SIGTERM and SIGINT stop accepting and let requests in flight finish for up to
``--shutdown-timeout`` seconds (exit 0); a second SIGINT aborts what is left at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import logging
import os
import pickle
import re
import signal
import socket
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from operator import is_ as _is
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._errors import ValidationError
from ._fields import fresh_lines
from ._models import EMPTY_MAP, ObjectMeta
from ._resources import Resources
# The URL of a socket, one function for serve's lines and ProxyServer.urls (serve runs the
# proxy server anyway: importing it here costs ``serve`` nothing).
from .proxy._server import _socket_urls
from .proxy._server import _url as _url  # (re-exported: tests read _serve._url)

__all__ = ["serve_main", "Reloader", "build_router"]

_log = logging.getLogger("ingresslib.serve")


#: A namespace name (``--namespace``): an RFC 1123 label, the API server's
#: ValidateNamespaceName.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)


# --- building ---------------------------------------------------------------------------------


def build_router(
    res: Resources, *, ingress_class: str | None, controller: str | None,
    load_balance: str | None = None, seed: int | None = None,
) -> Any:
    """A new Router for ``res`` (``load_balance`` from the ConfigMap, default round-robin)."""
    from ._router import Router

    return Router(res, ingress_class=ingress_class, controller=controller, seed=seed,
                  load_balance=load_balance or "round_robin")


def _served(res: Resources, ingress_class: str | None, controller: str | None) -> list[Any]:
    from ._table import served_ingresses

    return served_ingresses(res, ingress_class, controller)[0]


def _served_by(router: Any, res: Resources, ingress_class: str | None,
               controller: str | None) -> list[Any]:
    """The Ingresses ``router`` serves right after it was built or updated from ``res``: its
    table's own list (the build worked it out; working it out again is a second pass over
    every Ingress, a sort by age included), else (a router without a table) from ``res``.
    Call it with the swap lock held, or before anyone else can swap."""
    table = getattr(router, "table", None)
    if table is not None:
        return list(table.served)
    return _served(res, ingress_class, controller)


def config_digest(res: Resources, served: Sequence[Any], config: Any = None, *,
                  cache: _DigestCache | None = None) -> str:
    """The ``config_hash`` metric's value: a SHA-256 of what the routes are built from - the
    served Ingresses, the IngressClasses, the Services, the TLS Secrets and the ConfigMap
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


#: A file's state as the poller compares it: ``(mtime_ns, size, inode, ctime_ns)``; a missing
#: file is ``_MISSING``, a folder that cannot be listed ``(_UNREADABLE, errno)``.
_State = tuple[int, ...]
_MISSING: _State = (-1, -1)
_UNREADABLE = -2


def _snapshot(paths: Sequence[str]) -> dict[str, _State]:
    """``{file: state}`` of every manifest file under ``paths`` (missing ones too, so a deletion
    is a change), found the way ``load_manifests`` finds them (``_load._walk``: hidden files and
    folders skipped, symlinked folders not followed), and a folder that cannot be listed as
    ``(_UNREADABLE, errno)`` (so that it becoming listable again is a change).

    The state holds the inode and the ctime besides mtime and size: a file replaced by another
    of the same size whose timestamp was kept (``cp -p``, ``tar``, ``rsync -t``, a ConfigMap's
    ``..data`` swap onto files written in one clock tick) has a new inode, and an in-place
    rewrite whose mtime was set back still moves the ctime, which no one can set. Never raises:
    a folder removed while it is walked (``rm -rf``, a checkout) is a change like any other."""
    from ._load import manifest_files

    out: dict[str, _State] = {}

    def add(f: str) -> None:
        try:
            st = os.stat(f)
            out[f] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        except OSError:
            out[f] = _MISSING

    def unreadable(e: OSError) -> None:
        # os.walk skips what it cannot list; so does load_manifests, which would then swap in
        # a table without that folder's Ingresses. Recorded here, refused by the reloader. A
        # folder that vanished meanwhile is a deletion, seen through its files.
        if not isinstance(e, FileNotFoundError) and e.filename is not None:
            out[os.fspath(e.filename)] = (_UNREADABLE, e.errno or 0)

    for p in paths:
        if not os.path.isdir(p):
            add(str(Path(p)))
            continue
        for f in manifest_files(p, unreadable):
            add(f)
    return out


def _invalid_text(*errors: BaseException) -> str:
    """What to print or log of a refused load: every error, then, as ``check`` prints them,
    the unknown or duplicate fields the same files hold (``ValidationError.warnings``: a typo is
    often why a field is missing, ``pathtype`` -> ``pathType: Required value``)."""
    lines = [str(e) for e in errors]
    warned = dict.fromkeys(f"warning: {w}" for e in errors
                           for w in getattr(e, "warnings", ()))
    return "\n".join([*lines, *warned])


def _notes_of(router: Any) -> tuple[Any, Any]:
    """The router's table and warnings, taken together (with the swap lock held) for
    ``_table_notes``, which may run after the next swap."""
    return getattr(router, "table", None), getattr(router, "warnings", ())


def _table_notes(of: tuple[Any, Any], res: Resources,
                 paths: Sequence[str] = ()) -> dict[str, str]:
    """What ``ingresslib check`` prints of a table that builds, ``{line: severity}``: the
    table's diagnostics (shadowed rules, Ingresses the class filter leaves out, canaries
    without a main rule...), the router's warnings (annotation values it ignores:
    ``canary: maybe``) and, for ``paths``, that no Ingress was found. SEMANTICS §2: ignored
    values are reported, "never silently"; ``serve`` logged the router's at debug level only
    and the table's not at all, so a server answering 404 for a filtered-out or shadowed
    Ingress said nothing about why. Worked out in the worker thread that built the table (one
    ``str()`` per note: 12 ms at 8,000 notes), logged on the loop by ``_log_fresh_notes``."""
    table, warnings = of
    notes: list[Any] = [*getattr(table, "diagnostics", ()), *warnings]
    lines = {str(d): getattr(d, "severity", "warning") for d in notes}
    if paths and not res.ingresses:
        from ._load import no_ingress_warning

        lines["warning: " + no_ingress_warning(paths)] = "warning"
    return lines


#: At most this many table notes are logged per table update, then one line saying how many
#: more: this runs on the event loop, and 8,000 fresh notes (a generated table whose rules all
#: shadow one another) took ~160 ms of it to log.
MAX_NOTES_LOGGED = 100


class _LoggedNotes(set[str]):
    """The notes logged already (``_log_fresh_notes``), and the number of the swap whose table
    they are: the ConfigMap reloader and the cluster watch swap in turn (under one lock) but
    log afterwards, on the loop, each when its own worker thread is done."""

    swap = 0


def _log_fresh_notes(lines: Mapping[str, str], logged: set[str],
                     swap: int | None = None) -> None:
    """Log the ``_table_notes`` not in ``logged``, which becomes ``lines``: each line once, as
    ``fresh_lines`` logs the field warnings, not again at every reload, again if it comes back
    after it was fixed. Past ``MAX_NOTES_LOGGED`` fresh lines, one line counts the rest (they
    count as logged: ``check`` lists them all).

    ``swap``, the number of the swap that made the table (with a ``_LoggedNotes``): the notes
    of a table older than the ones logged last are not logged at all. With ``--kubernetes
    --config`` a ConfigMap reload whose digest took longer than a later cluster snapshot's
    logged its older table's notes after the newer one's: lines fixed since came back, and
    the next snapshot logged its own again."""
    if swap is not None and isinstance(logged, _LoggedNotes):
        if swap < logged.swap:
            return
        logged.swap = swap
    fresh = 0
    for line, severity in lines.items():
        if line not in logged:
            fresh += 1
            if fresh > MAX_NOTES_LOGGED:
                continue
            # The log line has its level: "WARNING ...: Ingress default/web: ...", as check's
            # "warning: Ingress default/web: ..." without the word twice.
            text = line.removeprefix(f"{severity}: ")
            _log.log(logging.INFO if severity == "info" else logging.WARNING, "%s", text)
    if fresh > MAX_NOTES_LOGGED:
        _log.warning("... and %d more notes on this table, not logged (ingresslib check -f ... "
                     "lists them all)", fresh - MAX_NOTES_LOGGED)
    logged.clear()
    logged.update(lines)


def _log_route_warnings(server: Any) -> None:
    """Log the new table's annotation warnings now (ignored or denying annotations), as the
    server does at start, not at each route's first request. ``router.update`` keeps the router
    object, so the server's router setter, which does this, is not involved."""
    log = getattr(getattr(server, "proxy", None), "log_annotation_warnings", None)
    if log is not None:
        log()


class Reloader:
    """Polls ``paths`` and swaps the server's router (and certificates) when they change."""

    def __init__(
        self, server: Any, paths: Sequence[str], *, ingress_class: str | None,
        controller: str | None, load_balance: str | None = None, interval: float = 1.0,
        on_reload: Callable[[bool, str], None] | None = None, settle: float | None = None,
        config: Any = None, config_path: str | None = None, lock: threading.Lock | None = None,
        snapshot: dict[str, _State] | None = None, swaps: Iterator[int] | None = None,
    ) -> None:
        self.server = server
        #: How long a change must stay still before it is read (default: a quarter of the
        #: interval, at most 0.25 s). A file caught mid-write (a shell's ``>`` truncates first,
        #: an editor may write in pieces) can be valid YAML holding only part of the objects:
        #: loading it would drop the missing routes until the next poll.
        self.settle = min(0.25, interval / 4) if settle is None else settle
        self.paths = list(paths)
        #: The ``--config`` ConfigMap file, polled with the manifests and applied live.
        self.config_path = config_path
        #: Held while the router is rebuilt (shared with the cluster watch's swaps).
        self.lock = lock if lock is not None else threading.Lock()
        self.ingress_class = ingress_class
        self.controller = controller
        self.load_balance = load_balance
        self.interval = interval
        self.on_reload = on_reload
        #: The files' state when they were last read. ``serve`` passes the state taken *before*
        #: its first load, so an edit landing while it starts up is not mistaken for the
        #: state already loaded (and never applied until the next edit).
        self.snapshot = snapshot if snapshot is not None else _snapshot(self._watched())
        #: Unknown/duplicate field warnings already logged (``serve`` shares its start-up set).
        self.logged_fields: set[str] = set()
        #: The table's diagnostics and the router's warnings already logged (``serve``'s).
        self.logged_notes: set[str] = _LoggedNotes()
        #: Successful and failed reloads, for tests and metrics.
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        #: The Resources of the last successful reload.
        self.last_resources: Resources | None = None
        #: The Ingresses its table serves (oldest first), as the router's build found them.
        self.last_served: list[Any] | None = None
        #: The ConfigMap settings, part of the configuration's digest.
        self.config = config
        #: ``_table_notes`` of the last successful reload (worked out in the worker thread).
        self.last_notes: dict[str, str] = {}
        #: ``config_digest`` of the last successful reload (computed in the worker thread).
        self.last_digest: str | None = None
        #: The ConfigMap settings the router was last built with, set under ``lock`` with the
        #: swap (``config`` follows on the loop thread, a moment later): what a cluster swap
        #: running meanwhile must put in its digest.
        self.built_config = config
        #: Numbers the swaps made under ``lock`` (shared with the cluster watch): a report of an
        #: older swap that comes late must not overwrite a newer one's (``last_swap``).
        self.swaps = swaps if swaps is not None else itertools.count(1)
        self.last_swap = 0
        self._config_error: Exception | None = None
        #: The manifests' error of a reload that applied a ConfigMap edit without them.
        self._manifests_error: Exception | None = None
        #: Set by ``request_reload``: the next poll runs now and reads the files.
        self._wake = asyncio.Event()
        self._force = False

    def _watched(self) -> list[str]:
        return self.paths + ([self.config_path] if self.config_path else [])

    def _build(self) -> tuple[list[Any], Resources, Any]:
        # Runs in a worker thread: parsing, validation and the table build are all done here,
        # away from the loop that is proxying. ``Router.update`` builds the new state aside and
        # swaps it in with one assignment (balancer state and canary counters carry over); a
        # request routes on the state it read first, so in-flight requests finish on the old
        # table. A ValidationError of the manifests is raised before anything is swapped
        # (unless a valid ConfigMap edit goes in with the last good ones): SEMANTICS §11, "an
        # invalid update keeps the last good table".
        from ._config import load_config
        from ._load import load_manifests

        # The ConfigMap and the manifests are separate inputs: an invalid ConfigMap keeps the
        # settings in use but does not hold back valid manifest edits (ingress-nginx also goes
        # on syncing Ingresses whatever its ConfigMap holds). Its error is reported by check().
        self._config_error = self._manifests_error = None
        cfg = self.config
        if self.config_path:
            try:
                cfg = load_config(self.config_path)
            except ValidationError as e:
                self._config_error = e
        res = None
        if self.paths:
            try:
                res = load_manifests(*self.paths)
            except ValidationError as e:
                # The other way round too: invalid manifests keep the last good table but do
                # not hold back a valid ConfigMap edit, which goes in with the manifests
                # serving (as with --kubernetes below). Reported by check().
                if (cfg is None or cfg == self.config
                        or not hasattr(self.server.router, "resources")):
                    raise
                self._manifests_error = e
        with self.lock:
            router = self.server.router
            if res is None:
                # --kubernetes: only the ConfigMap is read here; the cluster gives the resources.
                res = router.resources
            old_lb = getattr(router, "load_balance", None)
            if cfg is not None and cfg != self.config and old_lb is not None:
                # ingress-nginx's ``load-balance`` is the router's default balancer: a new
                # value takes effect with this build (balancers are keyed by their spec).
                router.load_balance = cfg.load_balance or "round_robin"
            try:
                if hasattr(router, "update"):
                    router.update(res)
                else:  # pragma: no cover - a user-supplied router without update()
                    self.server.router = build_router(
                        res, ingress_class=self.ingress_class, controller=self.controller,
                        load_balance=cfg.load_balance if cfg is not None else self.load_balance)
            except BaseException:
                if old_lb is not None:
                    router.load_balance = old_lb
                raise
            _log_route_warnings(self.server)
            # The router just worked out which Ingresses it serves; reuse that (TLS needs it).
            served = _served_by(self.server.router, res, self.ingress_class, self.controller)
            store = self.server.cert_store
            if store is not None:
                # Under the lock, with the router: certificates of another snapshot (a cluster
                # update swapped in meanwhile) must not overwrite these, nor these them.
                # Builds SSLContexts for new certificates only (unchanged ones are reused).
                store.update(res, served)
            self.built_config = cfg
            swap = next(self.swaps)
            notes_of = _notes_of(self.server.router)
        if cfg is not None:
            self.load_balance = cfg.load_balance
        self.last_notes = _table_notes(notes_of, res, self.paths)
        self.last_digest = config_digest(res, served, cfg)
        self.last_swap = swap
        return served, res, cfg

    async def check(self, *, force: bool = False) -> bool | None:
        """One poll: None when nothing changed, else whether the reload succeeded. ``force``
        (SIGHUP) reads the files now, changed or not."""
        loop = asyncio.get_running_loop()
        watched = self._watched()
        snap = await loop.run_in_executor(None, _snapshot, watched)
        if snap == self.snapshot and not force:
            return None
        if self.settle > 0 and not force:
            await asyncio.sleep(self.settle)
            if await loop.run_in_executor(None, _snapshot, watched) != snap:
                return None  # still being written: look again at the next poll
        self.snapshot = snap
        try:
            # A folder the snapshot could not list is not refused here on its own: the load
            # refuses it too (``_load._walk``), with every other error of the files besides.
            served, res, cfg = await loop.run_in_executor(None, self._build)
        except ValidationError as e:
            # Every error: the ConfigMap's too when both are invalid (it was left out).
            both = (e,) if self._config_error is None else (self._config_error, e)
            message = "\n".join(str(x) for x in both)
            self.failures += 1
            self.last_error = message
            _log.error("reload failed; keeping the last good configuration:\n%s",
                       _invalid_text(*both))
            if self.on_reload:
                self.on_reload(False, message)
            return False
        except Exception as e:  # a bug must not kill the server: keep serving the old table
            self.failures += 1
            self.last_error = repr(e)
            _log.exception("reload failed; keeping the last good configuration")
            if self.on_reload:
                self.on_reload(False, repr(e))
            return False
        if cfg is not None and cfg != self.config:
            # On the loop thread: the proxy reads its settings there, so a request never sees
            # half of the old settings and half of the new.
            self.server.settings = cfg.settings
            for w in cfg.warnings:
                _log.warning("%s", w)
            _log.info("configuration %s applied", self.config_path)
            self.config = cfg
        self.reloads += 1
        self.last_error = None
        self.last_resources = res
        self.last_served = served
        for line in fresh_lines(res.warnings, self.logged_fields):
            _log.warning("%s", line)
        _log_fresh_notes(self.last_notes, self.logged_notes, self.last_swap)
        _log.info("reloaded: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        if self.on_reload:
            self.on_reload(True, "")
        err = self._config_error
        if err is not None:
            self.failures += 1
            self.last_error = str(err)
            _log.error("ConfigMap %s rejected; keeping the settings in use "
                       "(reload failed; keeping the last good configuration):\n%s",
                       self.config_path, err)
            if self.on_reload:
                self.on_reload(False, str(err))
            return False
        err = self._manifests_error
        if err is not None:
            self.failures += 1
            self.last_error = str(err)
            _log.error("reload failed; keeping the last good configuration (the ConfigMap "
                       "%s applied to it):\n%s", self.config_path, _invalid_text(err))
            if self.on_reload:
                self.on_reload(False, str(err))
            return False
        return True

    def request_reload(self) -> None:
        """Read the files at once, changed or not (``serve``'s SIGHUP, nginx's reload signal)."""
        self._force = True
        self._wake.set()

    async def run(self) -> None:
        """Poll every ``interval`` seconds (0: only when ``request_reload`` asks), until
        cancelled. A poll that fails (a folder removed while it is walked, a bug) is logged,
        once while it keeps failing the same way, and polling goes on: an exception must not
        end the task, which would stop every later reload without a word."""
        logged: str | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval if self.interval > 0 else None):
                    await self._wake.wait()
            self._wake.clear()
            force, self._force = self._force, False
            try:
                await (self.check(force=True) if force else self.check())
            except Exception as e:  # noqa: BLE001 - see above
                if repr(e) != logged:
                    _log.error("polling the files failed; trying again: %r", e,
                               exc_info=True)
                    logged = repr(e)
            else:
                logged = None


# --- output ------------------------------------------------------------------------------------


_HANDLERS: list[tuple[logging.Logger, logging.Handler]] = []


def _setup_logging(access_log: str, level: str) -> None:
    # Only the CLI configures output (library etiquette); calling it again (tests call main()
    # several times in one process) replaces what it added before.
    from ._accesslog import configure_access_log

    for lg, hd in _HANDLERS:
        lg.removeHandler(hd)
    _HANDLERS.clear()
    root = logging.getLogger("ingresslib")
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    _HANDLERS.append((root, h))
    if access_log == "off":
        logging.getLogger("ingresslib.access").disabled = True
    else:
        configure_access_log(sys.stdout, "json" if access_log == "json" else "text")


# --- main ------------------------------------------------------------------------------------


def _record_sink(access: str, metrics: Any) -> Callable[[Any], None] | None:
    """One callable per finished request: the access log and/or the metrics."""
    from ._accesslog import AccessLog

    log = AccessLog() if access != "off" else None
    if log is not None and metrics is not None:
        observe = metrics.observe

        def both(rec: Any) -> None:
            # The access log whatever the metrics do: an entry lost to a metrics bug (a
            # label value prometheus-client refuses) is a request no one can trace.
            try:
                observe(rec)
            finally:
                log(rec)

        return both
    if metrics is not None:
        return metrics.observe  # type: ignore[no-any-return]
    return log


async def _serve(args: argparse.Namespace, res: Resources, cfg: Any,
                 kube_config: Any = None,
                 files_state: dict[str, _State] | None = None,
                 early_hup: _EarlyHangup | None = None) -> int:
    from ._tls import CertificateStore
    from .proxy._server import ProxyServer, parse_listen

    kube_client: Any = None
    if kube_config is not None:
        # Made before listening: a configuration that cannot be used (a CA file that does not
        # exist...) is the user's to fix, not something to retry (exit 2, nothing served).
        from lightkube import AsyncClient

        try:
            kube_client = AsyncClient(config=kube_config)
        except Exception as e:  # noqa: BLE001 - lightkube raises OSError, ConfigError, ...
            print(f"ingresslib serve: --kubernetes: cannot use the cluster configuration: {e}",
                  file=sys.stderr)
            return 2

    listen = parse_listen(args.listen, 8080)
    tls_listen = parse_listen(args.tls_listen, 8443) if args.tls_listen else None
    metrics_listen = parse_listen(args.metrics_listen, 10254) if args.metrics_listen else None
    router = build_router(res, ingress_class=args.ingress_class, controller=args.controller,
                          load_balance=cfg.load_balance)
    served = _served_by(router, res, args.ingress_class, args.controller)
    store = None
    if tls_listen is not None:
        store = CertificateStore()
        store.update(res, served)
    from ._metrics import Metrics, MetricsServer, certificates_of, hosts_of

    metrics: Metrics | None = None
    metrics_server: MetricsServer | None = None
    mport = 0
    if metrics_listen is not None:
        metrics = Metrics()
        # The store's own list when there is one: a broken update's last good certificate
        # is still served, so it keeps its series.
        metrics.set_certificates(store.certificates() if store is not None
                                 else certificates_of(res, served))
        # Requests for hosts no served rule names are not counted per host (ingress-nginx).
        metrics.set_hosts(hosts_of(res, served))
    access = getattr(args, "access_log", "text")
    server = ProxyServer(
        router, cfg.settings, cert_store=store,
        max_connections=getattr(args, "max_connections", 10000),
        on_record=_record_sink(access, metrics),
    )
    # /healthz is ready once the first table is loaded: at once from files, after the first
    # complete list of every kind with --kubernetes.
    synced = asyncio.Event()
    if not getattr(args, "kubernetes", False):
        synced.set()
    # SIGTERM and SIGINT stop gracefully from the moment a client can connect: the handlers go
    # in before the listener opens (and before "listening on" is printed), not after the first
    # digest, which runs while requests are already served. A signal in between used to meet
    # the default action: SIGTERM killed the process with requests in flight, SIGINT raised
    # KeyboardInterrupt and cut them. Now it sets ``stop`` and the drain below runs.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP, nginx's reload signal, re-reads the files and the ConfigMap now. Left to its
    # default action it killed the process on the spot, requests in flight included (`kill
    # -HUP`, out of habit, or the terminal of a foreground `serve` closing).
    reloader: Reloader | None = None
    #: Files to read (manifests, or the --config file with --kubernetes): a SIGHUP that comes
    #: before the reloader exists (while the listeners open and the first digest runs) is kept
    #: for it, not dropped as if nothing were watched. One sent before the loop ran too.
    reads_files = not getattr(args, "kubernetes", False) or bool(args.config)
    hup_pending = early_hup is not None and early_hup.received

    def on_hup() -> None:
        nonlocal hup_pending
        if reloader is not None:
            _log.info("SIGHUP: reading the files now")
            reloader.request_reload()
        elif reads_files:
            _log.info("SIGHUP: reading the files once started")
            hup_pending = True
        else:
            _log.info("SIGHUP: nothing to read (the cluster is watched); ignored")

    handlers: list[tuple[int, Callable[[], None]]] = [(signal.SIGINT, stop.set),
                                                      (signal.SIGTERM, stop.set)]
    if hasattr(signal, "SIGHUP"):  # not on Windows
        handlers.append((signal.SIGHUP, on_hup))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows / non-main thread
            pass
    try:
        await server.start(listen, tls_listen)
        if metrics is not None and metrics_listen is not None:
            # Unready from the moment stopping starts (``stop``), before the watch tasks are
            # cancelled (bounded, but not instant) and the drain begins: as ingress-nginx,
            # whose Stop() first sets isShuttingDown, which its healthz Check() answers with
            # "the ingress controller is shutting down".
            metrics_server = MetricsServer(
                metrics, metrics_listen[0], metrics_listen[1],
                healthy=lambda: synced.is_set() and not stop.is_set() and not server.draining)
            mport = await metrics_server.start()
    except (OSError, ValueError) as e:
        # Which listener: the proxy binds --listen, then --tls-listen, each recorded in
        # ``addresses`` once bound, and the metrics listener comes last. The bare message
        # ("address already in use") did not say which of up to three it was.
        which = _failed_listener(args, len(server.addresses), metrics_server is not None)
        print(f"ingresslib serve: {which}: cannot listen: {e}", file=sys.stderr)
        await server.shutdown(0)
        if kube_client is not None:  # (its connection pool: an embedding's process goes on)
            with contextlib.suppress(Exception):
                await kube_client.close()
        return 1
    if early_hup is not None:
        early_hup.serving = True
    for url in _listening_urls(server):
        print(f"listening on {url}", file=sys.stderr, flush=True)
    if metrics_server is not None:
        assert metrics_listen is not None
        for url in _socket_urls("http", getattr(metrics_server, "_server", None),
                                (metrics_listen[0], mport)):
            print(f"metrics on {url}/metrics", file=sys.stderr, flush=True)

    # The digest of the configuration serving, and whether the last attempt failed: an update
    # that leaves the digest as it was (an endpoint change from the cluster, a file touched
    # without a change) is not a reload, as ingress-nginx only counts nginx reloads.
    serving_digest: str | None = None
    last_failed = False
    #: The swap the metrics describe. A ConfigMap reload and a cluster snapshot build in two
    #: worker threads: the later swap can report first (its digest was quicker), and the older
    #: report must not then put back a configuration that no longer serves.
    reported_swap = 0

    def on_reload(ok: bool, message: str, res: Resources | None = None,
                  digest: str | None = None, served: Sequence[Any] | None = None,
                  swap: int | None = None) -> None:
        # ``res`` and ``served``: the snapshot swapped in and the Ingresses its table serves
        # (the router's build worked them out; a file reload leaves them on the reloader).
        nonlocal serving_digest, last_failed, reported_swap
        if metrics is None:
            return
        if not ok:
            last_failed = True
            metrics.on_reload(False, message)
            return
        if swap is None and reloader is not None:
            swap = reloader.last_swap
        if swap is not None:
            if swap < reported_swap:
                return  # a newer swap has reported already
            reported_swap = swap
        if res is None and reloader is not None:
            res, served = reloader.last_resources, reloader.last_served
        if digest is None and reloader is not None:
            digest = reloader.last_digest
        if digest is None or digest != serving_digest or last_failed:
            metrics.reload_succeeded(time.time(), digest)
            serving_digest, last_failed = digest, False
        if res is not None:
            if served is None:  # pragma: no cover - every caller passes the table's own
                served = _served(res, args.ingress_class, args.controller)
            metrics.set_certificates(store.certificates() if store is not None
                                     else certificates_of(res, served))
            metrics.set_hosts(hosts_of(res, served))
            # The series of Ingresses no longer served go (ingress-nginx's RemoveMetrics of
            # the removed Ingresses on each sync): series would pile up as Ingresses come
            # and go, one per preview environment.
            metrics.set_ingresses(served)

    if not getattr(args, "kubernetes", False):
        # The configuration loaded at start is the first one serving (ingress-nginx's first
        # sync is its first reload); with --kubernetes that is the first complete snapshot.
        on_reload(True, "", res, await asyncio.get_running_loop().run_in_executor(
            None, config_digest, res, served, cfg), served)

    kube = getattr(args, "kubernetes", False)
    interval = getattr(args, "reload_interval", 1.0)
    #: One swap at a time: a ConfigMap edit rebuilds the router from its current resources, which
    #: must not undo a cluster snapshot swapped in meanwhile.
    swap_lock = threading.Lock()
    #: Numbers the swaps, under ``swap_lock`` (``on_reload`` keeps the newest).
    swaps = itertools.count(1)
    #: Unknown/duplicate field warnings already logged: each definition's once.
    logged_fields: set[str] = set()
    for line in fresh_lines(res.warnings, logged_fields):
        _log.warning("%s", line)
    #: The table's diagnostics and the router's warnings already logged (``_table_notes``).
    logged_notes: set[str] = _LoggedNotes()
    if not kube:  # with --kubernetes: once the first snapshot is in (``_watch``)
        _log_fresh_notes(await loop.run_in_executor(
            None, _table_notes, _notes_of(router), res, list(args.files)), logged_notes)
    if not kube or args.config:
        # With --kubernetes, only the ConfigMap file is polled (no manifest paths).
        reloader = Reloader(server, [] if kube else list(args.files),
                            ingress_class=args.ingress_class, controller=args.controller,
                            load_balance=cfg.load_balance, interval=interval,
                            on_reload=on_reload, config=cfg, config_path=args.config,
                            lock=swap_lock, snapshot=files_state, swaps=swaps)
        reloader.logged_fields = logged_fields
        reloader.logged_notes = logged_notes
        # ``received`` read again: a SIGHUP could land after ``hup_pending`` was first set
        # and before the loop's handler (and its wakeup fd) took over.
        if hup_pending or (early_hup is not None and early_hup.received):
            reloader.request_reload()
    tasks: list[asyncio.Task[Any]] = []
    if reloader is not None:  # interval 0: no polling, but SIGHUP still reads the files
        tasks.append(loop.create_task(reloader.run()))
    failed: list[str] = []
    if kube:
        tasks.append(loop.create_task(_watch(
            args, server, store, metrics, stop, synced, on_reload=on_reload,
            config=(lambda: reloader.built_config) if reloader is not None else (lambda: cfg),
            kube_client=kube_client, lock=swap_lock, failed=failed, swaps=swaps,
            logged_notes=logged_notes)))
    try:
        await stop.wait()
    finally:
        # A second Ctrl-C cuts the drain short. SIGINT's handler above only sets ``stop``
        # again: the drain went on for the whole --shutdown-timeout whatever was pressed.
        again = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, again.set)
            if hasattr(signal, "SIGHUP"):
                # The reloader is cancelled below: a SIGHUP now reads nothing. Said so, not
                # "reading the files now"; still caught (its default action would end the
                # process and cut the drain).
                loop.add_signal_handler(signal.SIGHUP, _log.info,
                                        "SIGHUP while stopping: nothing is read again")
        for t in tasks:
            t.cancel()
        if tasks:
            # Let the watcher close its connections (bounded). asyncio.wait raises nothing for
            # the tasks' own outcomes.
            done, _ = await asyncio.wait(tasks, timeout=5)
            for t in done:
                if not t.cancelled():
                    t.exception()  # retrieved: nothing it raised while stopping matters
        _log.info("stopping: finishing in-flight requests")
        await _drain(server, getattr(args, "shutdown_timeout", 10.0), again)
        if metrics_server is not None:
            await metrics_server.close()
        if kube_client is not None:
            with contextlib.suppress(Exception):
                await kube_client.close()
    # _cli's exit codes: 1 is a runtime failure (the watch could not go on).
    return 1 if failed else 0


def _listening_urls(server: Any) -> list[str]:
    """``serve``'s ``listening on`` URLs: every socket of each listener, ``--listen``'s then
    ``--tls-listen``'s (``ProxyServer.urls``)."""
    return list(server.urls)


def _failed_listener(args: argparse.Namespace, bound: int, metrics_made: bool) -> str:
    """``--FLAG VALUE`` of the listener ``_serve`` failed to open: ``bound`` proxy listeners
    were open (``--listen`` first, then ``--tls-listen``), and the metrics server is made only
    once both are."""
    flags = [("--listen", args.listen)]
    if args.tls_listen is not None:
        flags.append(("--tls-listen", args.tls_listen))
    if bound < len(flags) and not metrics_made:
        flag, value = flags[bound]
    else:
        flag, value = "--metrics-listen", args.metrics_listen
    return f"{flag} {value}"


def _listener_conflict(values: Sequence[tuple[str, tuple[str, int]]]) -> str | None:
    """Two of ``(flag, (host, port))`` that can never both listen, a one-line reason, else
    None: the same port (not 0) on the same address, or on an address and the wildcard of its
    family (``0.0.0.0`` takes the port on every IPv4 address, ``::`` on every IPv6 one; asyncio
    sets IPV6_V6ONLY, so ``::`` leaves IPv4 alone). Addresses are compared as the bind reads
    them (``_bind_key``: ``[::0]`` is ``[::]``, ``0`` and ``127.1`` are ``0.0.0.0`` and
    ``127.0.0.1``); names as written: they are resolved at the bind, whose error names the
    option."""
    keys = [(flag, host, port, _bind_key(host)) for flag, (host, port) in values]
    for i, (flag_a, host_a, port_a, key_a) in enumerate(keys):
        for flag_b, host_b, port_b, key_b in keys[i + 1:]:
            if port_a != port_b or port_a == 0:
                continue
            if key_a == key_b or _covers(key_a, key_b) or _covers(key_b, key_a):
                return (f"{flag_b} {host_b}:{port_b} and {flag_a} {host_a}:{port_a} cannot "
                        "both listen (one port, one listener)")
    return None


#: A listen host as the bind reads it: ``(family, address, IPv6 scope id)`` for an address
#: literal, the host itself for a name.
_BindKey = tuple[int, str, int] | str


def _bind_key(host: str) -> _BindKey:
    """``host`` read as the bind reads it, with no lookup (``AI_NUMERICHOST``): the C
    library's spellings of an address are one key (``::0`` and ``::``; ``0``, ``127.1`` and
    ``0x7f.0.0.1`` are IPv4's ``inet_aton`` forms; a zone by name or by number). A name (or a
    zone the host does not have) is kept as written."""
    import ipaddress

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return host
    family, _, _, _, addr = infos[0]
    if family == socket.AF_INET6:
        # (address, port, flowinfo, scope id): the zone, by name or number, is its id. Only a
        # link-local address has a zone: Linux's bind drops the scope id of any other
        # (``__ipv6_addr_needs_scope_id``), so ``::1%1`` is ``::1`` and ``::%1`` the wildcard.
        scope: Any = addr[3]  # type: ignore[misc]
        address = str(addr[0]).partition("%")[0]
        if not ipaddress.IPv6Address(address).is_link_local:
            scope = 0
        return (6, address, int(scope))
    return (4, str(addr[0]), 0)


def _covers(wild: _BindKey, key: _BindKey) -> bool:
    """Whether ``wild`` is its family's wildcard and ``key`` an address of that family."""
    return (isinstance(wild, tuple) and isinstance(key, tuple) and wild[0] == key[0]
            and wild[1:] in (("0.0.0.0", 0), ("::", 0)))


def _host_error(host: str) -> str | None:
    """Why ``host`` (of a ``HOST:PORT``) can never be looked up, else None: an IP literal, or
    a name the resolver can encode (IDNA: no empty label, none over 63 characters). Such a name
    reached the resolver at the bind and ended ``serve`` with a UnicodeError traceback."""
    import ipaddress

    try:
        ipaddress.ip_address(host.partition("%")[0])
        return None
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError as e:
        return f"{host!r} is not a host name: {e.__cause__ or e}"
    return None


async def _drain(server: Any, timeout: float, interrupt: asyncio.Event) -> None:
    """``server.shutdown(timeout)``: stop accepting, let in-flight requests finish for up to
    ``timeout`` seconds; ``interrupt`` (a second Ctrl-C) aborts what is left at once."""
    drain = asyncio.ensure_future(server.shutdown(timeout=timeout))
    cut = asyncio.ensure_future(interrupt.wait())
    try:
        await asyncio.wait({drain, cut}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            _log.warning("interrupted again: aborting the requests in flight")
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
            await server.shutdown(timeout=0)
        else:
            drain.result()
    finally:
        cut.cancel()
        drain.cancel()  # only when we are cancelled ourselves: it is done otherwise


async def _watch(args: argparse.Namespace, server: Any, store: Any, metrics: Any,
                 stop: asyncio.Event, synced: asyncio.Event, *, on_reload: Callable[..., None],
                 config: Callable[[], Any] = lambda: None, kube_client: Any = None,
                 lock: threading.Lock | None = None, failed: list[str] | None = None,
                 swaps: Iterator[int] | None = None,
                 logged_notes: set[str] | None = None) -> None:
    """``serve --kubernetes``: the cluster is the source (SEMANTICS §11). Each debounced snapshot
    is built off the loop and swapped in; an invalid object keeps its last valid version (the
    store's rule), so one bad edit never takes the table down."""
    from ._kube import AUTH_SECRETS, WATCHED_KINDS, ClusterWatcher, auth_secret_refs

    loop = asyncio.get_running_loop()
    swap = lock if lock is not None else threading.Lock()
    numbers = swaps if swaps is not None else itertools.count(1)
    notes = logged_notes if logged_notes is not None else _LoggedNotes()

    def apply(res: Resources) -> tuple[str, list[Any], int, dict[str, str]]:
        with swap:  # router and certificates of one snapshot, never mixed with a reload's
            server.router.update(res)
            _log_route_warnings(server)
            served = _served_by(server.router, res, args.ingress_class, args.controller)
            if store is not None:
                store.update(res, served)
            # The ConfigMap settings this router has: read with the swap, since a ConfigMap
            # reload may have rebuilt it a moment ago (its ``config`` is set a little later).
            cfg = config()
            number = next(numbers)
            notes_of = _notes_of(server.router)
        return config_digest(res, served, cfg), served, number, _table_notes(notes_of, res)

    async def on_snapshot(res: Resources) -> None:
        try:
            digest, served, number, lines = await loop.run_in_executor(None, apply, res)
        except Exception as e:  # keep serving the last good table
            _log.exception("cluster update failed; keeping the last good configuration")
            on_reload(False, repr(e))
            raise
        _log.info("cluster update: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        _log_fresh_notes(lines, notes, number)
        on_reload(True, "", res, digest, served, number)
        synced.set()

    # TLS Secrets are read for HTTPS only (certificates by SNI). Without --tls-listen they are
    # not watched at all: no certificate Secret is ever fetched (least privilege: the Role may
    # leave Secrets out), and a denied Secret list cannot hold back the first table.
    kinds = WATCHED_KINDS if store is not None else tuple(
        k for k in WATCHED_KINDS if k.kind != "Secret")
    if not getattr(args, "no_auth_secrets", False):
        # The Secrets of auth-type: basic, as from files: read only once a served Ingress names
        # one, and only those (every other Opaque Secret is dropped on receipt). Without it
        # (--no-auth-secrets) those routes answer 503, as for a missing Secret.
        kinds = (*kinds, AUTH_SECRETS)

    def auth_refs(res: Resources) -> frozenset[tuple[str, str]]:
        return auth_secret_refs(_served(res, args.ingress_class, args.controller))

    watcher = ClusterWatcher(on_snapshot, namespace=args.namespace, client=kube_client,
                             kubeconfig=args.kubeconfig, metrics=metrics, kinds=kinds,
                             auth_refs=auth_refs)
    try:
        await watcher.run(stop)
    except Exception as e:  # noqa: BLE001 - the watcher retries everything it can retry
        _log.error("cannot watch the cluster: %s", e, exc_info=True)
        if failed is not None:
            failed.append(str(e))
        stop.set()


class _Terminated(KeyboardInterrupt):
    """SIGTERM before ``serve`` listens (``_EarlyHangup``): raised as a Ctrl-C is, so the start
    stops where it is by the same paths; ``serve_main`` exits 143 (the shell's 128 + 15)."""


class _EarlyHangup:
    """SIGHUP from the start of ``serve`` until the event loop's own handler takes over.

    Its default action kills the process, and reading a large set of manifests takes a while:
    a ``kill -HUP`` sent after an edit while ``serve`` starts (a sidecar that signals on every
    ConfigMap change) ended it with nothing said. Caught here, it is remembered and the files
    are read again once the reloader runs (with ``--reload-interval 0`` nothing else would).
    Main thread only (``signal.signal``); the handler in place before is put back on exit,
    SIGINT's and SIGTERM's too: asyncio's loop, closing, leaves ``default_int_handler`` and
    SIG_DFL behind, and a program embedding ``serve_main`` lost its own handlers.

    SIGTERM too, while its action is the default one: it stops the start (``_Terminated``).
    In a container ``serve`` is often PID 1, and the kernel drops a signal PID 1 has no
    handler for: a ``docker stop`` or a pod deletion while the files were read was lost, the
    proxy went on to serve, and the SIGKILL that follows the grace period cut its requests."""

    def __init__(self) -> None:
        self.received = False
        #: Set by ``_serve`` once it listens: a KeyboardInterrupt before that is a Ctrl-C
        #: before serving (exit 130), not one while the loop closes.
        self.serving = False
        self._previous: Any = None
        self._installed = False
        #: SIGINT's and SIGTERM's handlers before ``serve`` (None: not set from Python).
        self._others: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received = True

    @staticmethod
    def _on_term(signum: int, frame: Any) -> None:
        raise _Terminated

    def __enter__(self) -> _EarlyHangup:
        if threading.current_thread() is threading.main_thread():
            self._others = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            if self._others[signal.SIGTERM] is signal.SIG_DFL:  # not an embedder's own
                signal.signal(signal.SIGTERM, self._on_term)
            if hasattr(signal, "SIGHUP"):
                self._previous = signal.signal(signal.SIGHUP, self._on_signal)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, before in self._others.items():
            if before is not None and signal.getsignal(sig) is not before:
                signal.signal(sig, before)
        if self._installed:
            # None: the handler before was not set from Python (signal.signal's own word).
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGHUP, previous)


def serve_main(args: argparse.Namespace) -> int:
    """``ingresslib serve``; returns the exit code (0, 1 runtime failure, 2 invalid input,
    130 for a Ctrl-C before it serves, 143 for a SIGTERM before it serves)."""
    with _EarlyHangup() as hup:
        try:
            return _serve_main(args, hup)
        except _Terminated:
            print("ingresslib serve: terminated before serving", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            # Ctrl-C while the files (or the cluster configuration) are read or the first
            # table is built: nothing serves yet, so nothing to drain; one line, not a
            # traceback from the middle of a parser.
            print("ingresslib serve: interrupted before serving", file=sys.stderr)
            return 130


def _serve_main(args: argparse.Namespace, hup: _EarlyHangup) -> int:
    from ._config import ServerConfig, load_config
    from ._load import load_manifests

    kube = getattr(args, "kubernetes", False)
    if not args.files and not kube:
        print("ingresslib serve: at least one -f PATH (or --kubernetes) is required", file=sys.stderr)
        return 2
    if args.files and kube:
        print("ingresslib serve: -f and --kubernetes are exclusive", file=sys.stderr)
        return 2
    if "-" in (args.files or ()):
        # check and explain read "-f -" once; serve re-reads its files on every change.
        print("ingresslib serve: -f - (standard input) cannot be watched for changes; "
              "give a file or folder", file=sys.stderr)
        return 2
    for flag, value in (("--namespace", getattr(args, "namespace", None)),
                        ("--kubeconfig", getattr(args, "kubeconfig", None))):
        if value is not None and not kube:
            print(f"ingresslib serve: {flag} needs --kubernetes", file=sys.stderr)
            return 2
    ns = getattr(args, "namespace", None)
    if ns is not None and not _DNS1123_LABEL.fullmatch(ns):
        # A namespace name is an RFC 1123 label (the API server's ValidateNamespaceName); any
        # other value would only ever be answered 404, and nothing would be served.
        print(f"ingresslib serve: --namespace {ns!r}: a namespace is a lower-case RFC 1123 "
              "label (a-z, 0-9, '-', at most 63 characters)", file=sys.stderr)
        return 2
    from .proxy._server import parse_listen

    listeners: list[tuple[str, tuple[str, int]]] = []
    for option, value, default in (("--listen", args.listen, 8080),
                                 ("--tls-listen", args.tls_listen, 8443),
                                 ("--metrics-listen", args.metrics_listen, 10254)):
        if value is None:
            continue
        try:
            where = parse_listen(value, default)
            problem = _host_error(where[0])
            if problem is not None:
                raise ValueError(problem)
        except ValueError as e:
            print(f"ingresslib serve: {option} {value!r}: expected HOST:PORT ({e})",
                  file=sys.stderr)
            return 2
        listeners.append((option, where))
    conflict = _listener_conflict(listeners)
    if conflict is not None:
        print(f"ingresslib serve: {conflict}", file=sys.stderr)
        return 2
    kube_config: Any = None
    if kube:
        # Read the cluster configuration now: a missing or broken kubeconfig (or no in-cluster
        # ServiceAccount) is an input error to report before listening (exit 2), not a watch
        # that fails in the background while the process serves nothing and exits 0.
        try:
            from ._kube import load_kube_config

            kube_config = load_kube_config(args.kubeconfig)
        except ImportError as e:
            print(f"ingresslib serve: --kubernetes: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - lightkube's ConfigError, OSError, YAML errors
            source = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else "--kubernetes"
            print(f"ingresslib serve: {source}: cannot load the cluster configuration: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            return 2
    # Before reading anything: what the reloader compares with (see Reloader.snapshot).
    files_state = _snapshot(([] if kube else list(args.files))
                            + ([args.config] if args.config else []))
    cfg = ServerConfig()
    # With --kubernetes the first table comes from the watch (empty until it has synced).
    res = Resources()
    # Every error at once, of the ConfigMap and of the manifests alike, as `check` reports
    # them: an operator fixing one should not have to restart to learn the next. A folder
    # that cannot be listed is refused by the load itself, among the others.
    invalid: list[ValidationError] = []
    if args.config:
        try:
            cfg = load_config(args.config)
        except ValidationError as e:
            invalid.append(e)
    if not kube:
        try:
            res = load_manifests(*args.files)
        except ValidationError as e:
            invalid.append(e)
    if invalid:
        print(_invalid_text(*invalid), file=sys.stderr)
        return 2
    _setup_logging(getattr(args, "access_log", "text"), getattr(args, "log_level", "info"))
    for w in cfg.warnings:
        _log.warning("%s", w)
    try:
        return asyncio.run(_serve(args, res, cfg, kube_config, files_state, hup))
    except KeyboardInterrupt:
        if not hup.serving:
            # A Ctrl-C while the table was built, before serve's own SIGINT handler was in:
            # asyncio's cancelled the start-up. Nothing listens: serve_main's exit 130.
            raise
        return 0  # pragma: no cover - a Ctrl-C as the loop closes (its handlers gone)
    except ValidationError as e:  # Router build found problems load_manifests did not
        print(str(e), file=sys.stderr)
        return 2
