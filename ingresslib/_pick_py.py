"""The per-route counters of ``Router.route``: the documented behaviour, and the pure twin of
the compiled ``_pick`` (same sequences, same errors).

``Rotation(items, start)`` is a strict round-robin over a non-empty tuple that starts at
``items[start % n]`` and never ends; ``Interleave(weight, total)`` is the smooth canary split:
call k (0-based) yields True iff ``floor((k+1)w/T) > floor(kw/T)``, so over any window of n
calls it yields True ``floor`` or ``ceil`` of ``n*w/T`` times. ``next()`` on either is atomic
under the GIL: concurrent requests never share a tick. Either's ``give_back`` hands a turn
taken by a request that never reached an upstream to the next ``next()`` (nginx takes a
round-robin turn at the connect). ``http_header(items, name)`` reads a
request header from ``h11.Headers._full_items`` as nginx's ``$http_NAME`` does (every line of
the name, joined by ``", "``).

>>> r = Rotation(("a", "b", "c"), start=2)
>>> [next(r) for _ in range(4)]
['c', 'a', 'b', 'c']
>>> http_header([(b"X-A", b"x-a", b"1"), (b"X-B", b"x-b", b"2"), (b"x-a", b"x-a", b"3")], b"x-a")
b'1, 3'
>>> s = Interleave(2, 5)
>>> "".join("C" if next(s) else "." for _ in range(10))
'..C.C..C.C'
>>> r.give_back("b")
True
>>> [next(r) for _ in range(3)]
['b', 'a', 'b']
"""

from __future__ import annotations

import itertools
import operator
import threading
from array import array
from bisect import bisect_left
from zlib import crc32
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

#: The ``array``/``memoryview`` code of a native 32-bit unsigned int (HashPick's ring points).
U32 = next(code for code in "IL" if array(code).itemsize == 4)

__all__ = ["CanaryPick", "FastRoute", "HashPick", "U32", "Interleave", "ROTATION_TYPE", "Rotation",
           "http_header"]

T = TypeVar("T")

#: Guards the turns given back (``give_back``, rare: a request that never reached an
#: upstream) against two threads taking the same one; the common ``next()`` never takes it.
_BACK_LOCK = threading.Lock()


class Rotation(itertools.cycle, Generic[T]):  # type: ignore[type-arg]
    """A strict round-robin over ``items``, starting at ``items[start % len(items)]``: an
    ``itertools.cycle`` (one C-level ``next()``, atomic), whose type is
    :data:`ROTATION_TYPE`. While turns given back (:meth:`give_back`) wait, the object is a
    ``_RotationGivingBack`` (same slots), whose ``next()`` serves them first: the common
    ``next()`` pays nothing for them."""

    __slots__ = ("_back", "_items")
    _items: tuple[T, ...]
    #: Turns given back, served before the cycle goes on (``_RotationGivingBack``).
    _back: list[T]

    def __new__(cls, items: tuple[T, ...], start: int = 0) -> Rotation[T]:
        if not isinstance(items, tuple):
            raise TypeError("Rotation needs a tuple")
        if not items:
            raise ValueError("Rotation needs at least one item")
        k = operator.index(start) % len(items)
        self: Rotation[T] = super().__new__(cls, items[k:] + items[:k])
        self._items = items
        self._back = []
        return self

    if TYPE_CHECKING:
        def __init__(self, items: tuple[T, ...], start: int = 0) -> None: ...
        def __next__(self) -> T: ...

    def give_back(self, item: T) -> bool:
        """The turn ``item`` took goes to the next ``next()`` (before the cycle goes on):
        for a request that took it and never reached an upstream (nginx's round-robin turns
        are taken at the connect, ingress-nginx ``balancer.balance()``), so the requests
        that do are served in the rotation's order, whatever other turns were taken
        meanwhile. False (nothing given back) when ``item`` is none of the items (identity)."""
        if not any(x is item for x in self._items):
            return False
        with _BACK_LOCK:
            self._back.append(item)
            self.__class__ = _RotationGivingBack
        return True


class _RotationGivingBack(Rotation[T]):
    """A :class:`Rotation` whose turns given back wait: served first, then it is a
    ``Rotation`` again."""

    __slots__ = ()

    def __next__(self) -> T:
        with _BACK_LOCK:
            back = self._back
            if back:
                item = back.pop(0)
                if not back:
                    self.__class__ = Rotation  # type: ignore[assignment]
                return item
        # Another thread took the last one: the cycle goes on. (Not ``super()``: the object
        # is a plain ``Rotation`` again, no longer an instance of this class.)
        nxt: T = Rotation.__next__(self)
        return nxt


#: The type of a :class:`Rotation` (the request path dispatches on it; one whose turns
#: given back wait is an instance of a subclass for that while).
ROTATION_TYPE: type = Rotation


class Interleave:
    """``next()`` is True for exactly ``weight`` of every ``total`` consecutive calls, as
    evenly spread as possible (the Bresenham line from (0, 0) to (total, weight)). While
    choices given back (:meth:`give_back`) wait, the object is an ``_InterleaveGivingBack``
    (same slots), whose ``next()`` serves them first: the common ``next()`` pays nothing."""

    __slots__ = ("_back", "_count", "total", "weight")

    def __init__(self, weight: int, total: int) -> None:
        # Integers only (a bool reads as its int), as the compiled twin stores them.
        weight, total = operator.index(weight), operator.index(total)
        if not 0 < total < 2**32:
            raise ValueError("total must be in 1 .. 2**32 - 1")
        if not 0 <= weight <= total:
            raise ValueError("weight must be in 0 .. total")
        self.weight = weight
        self.total = total
        self._count = itertools.count()
        #: Choices given back (``give_back``), served first: the canary's, the main side's.
        self._back = [0, 0]

    def __iter__(self) -> Iterator[bool]:
        return self

    def give_back(self, choice: bool) -> None:
        """The choice a request took and never used (it never reached an upstream) goes to
        the next ``next()``: the requests that do reach one see the split's sequence."""
        with _BACK_LOCK:
            self._back[0 if choice else 1] += 1
            self.__class__ = _InterleaveGivingBack

    def __next__(self) -> bool:
        t = self.total
        k = next(self._count) % t  # one atomic tick; the pattern repeats every total calls
        return (k + 1) * self.weight // t > k * self.weight // t


class _InterleaveGivingBack(Interleave):
    """An :class:`Interleave` whose choices given back wait: served first, then it is an
    ``Interleave`` again."""

    __slots__ = ()

    def __next__(self) -> bool:
        with _BACK_LOCK:
            back = self._back
            choice = back[0] != 0
            if choice or back[1]:
                back[0 if choice else 1] -= 1
                if not (back[0] or back[1]):
                    self.__class__ = Interleave  # type: ignore[assignment]
                return choice
        # Another thread took the last one: the split goes on. (Not ``super()``: the object
        # is a plain ``Interleave`` again, no longer an instance of this class.)
        return Interleave.__next__(self)


def http_header(items: list[Any], name: bytes) -> bytes | None:
    """A request header as nginx's ``$http_NAME`` reads it (what ingress-nginx's canary header
    and ``upstream-hash-by`` see): the value of the one ``(raw_name, name, value)`` triple of
    ``items`` named ``name`` (the very object), or, when the name repeats, every value joined by
    ``b", "`` (``b"; "`` for ``cookie``); None when absent. nginx >= 1.23
    (``ngx_http_variable_unknown_header``) chains every line of the name - "*ph = &header[i];
    ph = &header[i].next;" - and copies them with "*p++ = ','; *p++ = ' ';" in between.
    Items that are not such triples are skipped, and so are triples whose name is not
    ``bytes`` (h11 makes every name ``bytes``; one built by hand with a ``memoryview`` name is
    not read, as the compiled twin compares names as bytes only). ``name`` must be exactly
    ``bytes`` (``TypeError`` otherwise, as the compiled twin's typed argument refuses a ``str``,
    ``None`` or a ``bytes`` subclass)."""
    if type(name) is not bytes:
        raise TypeError(f"Argument 'name' has incorrect type (expected bytes, got "
                        f"{type(name).__name__})")
    return _http_header(items, name)


def _http_header(items: Any, name: bytes) -> bytes | None:
    """:func:`http_header` without the check of ``name`` (the per-route pickers pass the name
    they were built with, a ``bytes`` subclass too, as the compiled twin's do)."""
    found = False  # (not ``first is None``: a value of None, in a list made by hand, is found)
    first: bytes | None = None
    more: list[bytes] | None = None
    for item in items:
        if type(item) is tuple and len(item) == 3 and (
                item[1] is name or (type(item[1]) is bytes and item[1] == name)):
            if not found:
                found = True
                first = item[2]
            elif more is None:
                more = [first, item[2]]  # type: ignore[list-item]
            else:
                more.append(item[2])
    if more is None:
        return first
    return (b"; " if name == b"cookie" else b", ").join(more)


class FastRoute:
    """``Router.route`` of one published state: ``match``, the per-route entries ``fast``
    (keyed by the ``Match`` itself: Matches hash by identity) and ``slow``, the Router's Python path. A plain round-robin
    route (its entry a :data:`ROTATION_TYPE`) is answered here; any other entry goes to
    ``slow(match, entry, fast, method, host, path, headers, client_ip, query)``."""

    __slots__ = ("_fast", "_match", "_slow")

    def __init__(self, match: Callable[[str, str], Any], fast: dict[Any, Any],
                 slow: Callable[..., Any]) -> None:
        if not isinstance(fast, dict):
            raise TypeError("fast must be a dict")
        self._match = match
        self._fast = fast
        self._slow = slow

    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Any:
        """``router.route(method, host, path, headers=(), client_ip=None, *, query=None)``:
        the Decision for one request, or None when no rule and no default backend matched.

        ``path`` is the request path without the query (as received); ``query`` (optional)
        feeds ``$request_uri``/``$args``/``$arg_*`` in ``upstream-hash-by``; ``headers`` a
        mapping or an iterable of ``(name, value)`` pairs. Raises ``BadRequestError`` as
        ``RouteTable.match`` does (see ``Router.route``)."""
        m = self._match(host, path)
        if m is None:
            return None
        e = self._fast[m]
        if type(e) is ROTATION_TYPE:
            return next(e)  # type: ignore[call-overload]
        if type(e) is CanaryPick:
            d = e.pick(headers)
            if d is not None:
                return d
            e = e.route
        elif type(e) is HashPick:
            d = e.pick(path, headers, client_ip)
            if d is not None:
                return d
            e = e.backend
        elif type(e) is _RotationGivingBack:
            return next(e)
        return self._slow(m, e, self._fast, method, host, path, headers, client_ip, query)


class CanaryPick:
    """A canary route whose choice needs neither a session nor a cookie nor a pattern: the
    inline header rule ``hname`` (on ``h11_headers``: the value ``hyes`` means canary, ``hno``
    main; the header read as :func:`http_header`), then the smooth split ``steps``, then the chosen side's
    round-robin (``yes`` canary, ``no`` main). :meth:`pick` answers None when the request needs
    the Router's Python path (a header rule on headers of another type); ``route`` is the
    Router's object for that path."""

    __slots__ = ("_h11", "_hname", "_hno", "_hyes", "_no", "_steps", "_yes", "route")

    def __init__(self, route: Any, hname: bytes | None, hyes: bytes | None, hno: bytes | None,
                 h11_headers: Any, steps: Iterator[bool], yes: Iterator[Any],
                 no: Iterator[Any]) -> None:
        # Checked at run time as the compiled twin does (callers are not always type-checked).
        values: tuple[object, ...] = (hname, hyes) + (() if hno is None else (hno,))
        if hname is not None and not all(isinstance(v, bytes) for v in values):
            raise TypeError("header name and values must be bytes")
        self.route = route
        self._hname, self._hyes, self._hno, self._h11 = hname, hyes, hno, h11_headers
        self._steps, self._yes, self._no = steps, yes, no

    def pick(self, headers: Any) -> Any:
        choice: bool | None = None
        hname = self._hname
        if hname is not None:
            if type(headers) is not self._h11:
                return None
            v = _http_header(headers._full_items, hname)
            if v is not None:
                if v == self._hyes:
                    choice = True
                elif v == self._hno:
                    choice = False
        if choice is None:
            choice = next(self._steps)
        return next(self._yes) if choice else next(self._no)


class HashPick:
    """A consistent-hash backend (no canary) with its ring's bucket table built: the key
    (``kind`` 1: the path, 2: the client address, 3: header ``hname`` of ``h11_headers``), its
    CRC-32, the byte ``table[crc >> shift]``, the Decision ``decisions[byte]``; a byte that is no
    decision index (DIRTY: a ring point in the bucket) bisects the ring: ``points`` (native
    uint32, sorted, no sentinel) and the decision index of each, ``owners``; past the last
    point the first point's owner. :meth:`pick` answers None whenever the Router's Python path
    must decide (a key that does not encode as UTF-8, or a header value that is not ASCII;
    headers of another type); ``backend`` is the Router's object for that path."""

    __slots__ = ("_decisions", "_h11", "_hname", "_kind", "_owners", "_points", "_shift",
                 "_table", "backend")

    def __init__(self, backend: Any, kind: int, hname: bytes | None, table: bytes, shift: int,
                 decisions: tuple[Any, ...], h11_headers: Any, points: bytes,
                 owners: bytes) -> None:
        if not isinstance(shift, int):
            raise TypeError("shift must be an int")  # as the compiled twin
        if kind not in (1, 2, 3) or not 0 <= shift <= 32:
            raise ValueError("kind must be 1, 2 or 3 and shift in 0 .. 32")
        if kind == 3 and not isinstance(hname, bytes):
            raise TypeError("a header key needs the header name as bytes")
        if not all(isinstance(v, t) for v, t in ((table, bytes), (decisions, tuple))):
            raise TypeError("table must be bytes and decisions a tuple")  # as the compiled twin
        if (len(points) % 4 or len(points) // 4 != len(owners) or not owners
                or max(owners) >= len(decisions)):
            raise ValueError("points and owners must describe a non-empty ring over decisions")
        self._points = array(U32)
        self._points.frombytes(points)
        self._owners = owners
        self.backend = backend
        self._kind, self._hname, self._table, self._shift = kind, hname, table, shift
        self._decisions, self._h11 = decisions, h11_headers

    def pick(self, path: Any, headers: Any, client_ip: Any) -> Any:
        if self._kind == 3:
            if type(headers) is not self._h11:
                return None
            kb = _http_header(headers._full_items, self._hname)  # type: ignore[arg-type]
            if kb is None:
                kb = b""
            elif type(kb) is not bytes or not kb.isascii():
                return None  # (not bytes: an h11.Headers built by hand; as the compiled twin)
        else:
            key = path if self._kind == 1 else (client_ip or "")
            if type(key) is not str:
                return None
            if self._kind == 1 and ("%" in key or "//" in key or "/." in key):
                return None  # maybe not canonical: the Python path hashes nginx's $uri
            try:
                kb = key.encode("utf-8")
            except UnicodeEncodeError:
                return None
        i = crc32(kb) >> self._shift
        if i >= len(self._table):
            return None
        o = self._table[i]
        if o >= len(self._decisions):  # DIRTY (255): a ring point in the bucket
            j = bisect_left(self._points, crc32(kb))
            o = self._owners[j] if j < len(self._owners) else self._owners[0]
        return self._decisions[o]
