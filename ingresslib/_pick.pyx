# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
#
# The two per-route counters on Router.route's hot path, as iterators whose state lives inside
# the object. Behaviour, docs and types: _pick_py.py / _pick.pyi (same sequences, same errors).
# Why compiled: on a large table most routes are cold in the CPU caches. An itertools.cycle is
# three objects (the cycle, its saved list, the list's item array) and a canary counter is an
# itertools.count plus a fresh int per request; each cold object costs a cache miss. Here a
# request reads one small object (plus the tuple slot and the Decision it returns), and
# next() holds the GIL throughout, so concurrent requests never share a tick.

cimport cython
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.exc cimport PyErr_Clear
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.sequence cimport PySequence_Fast_ITEMS
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcmp

import zlib as _zlib
from operator import index as _index
from types import MemberDescriptorType as _MemberDescriptor
from zlib import crc32 as _crc32


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) noexcept


cdef extern from *:
    """
    /* zlib's own crc32(), found at run time in the library the interpreter's zlib module
       already loaded (no zlib header or link at build time); NULL where that is not possible,
       and then the key goes through zlib.crc32 from Python. Same function, same result. */
    typedef unsigned long (*ingresslib_crc32_fn)(unsigned long, const unsigned char*, unsigned int);
    #if defined(__unix__) || defined(__APPLE__)
    #include <dlfcn.h>
    static ingresslib_crc32_fn ingresslib_find_crc32(const char* module_path) {
        void* handle = NULL;
        void* sym = NULL;
        if (module_path != NULL) {
            handle = dlopen(module_path, RTLD_NOW | RTLD_NOLOAD);
            if (handle != NULL) {
                sym = dlsym(handle, "crc32");
                dlclose(handle);
            }
        }
        if (sym == NULL)
            sym = dlsym(RTLD_DEFAULT, "crc32");
        return (ingresslib_crc32_fn)sym;
    }
    #else
    static ingresslib_crc32_fn ingresslib_find_crc32(const char* module_path) {
        (void)module_path;
        return NULL;
    }
    #endif
    """
    ctypedef unsigned long (*ingresslib_crc32_fn)(unsigned long, const unsigned char*, unsigned int)
    ingresslib_crc32_fn ingresslib_find_crc32(const char* module_path)


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ingresslib_prefetch(p) __builtin_prefetch((const void*)(p))
    #else
    #define ingresslib_prefetch(p) ((void)(p))
    #endif
    """
    void ingresslib_prefetch(const void* p) noexcept nogil


cdef ingresslib_crc32_fn _zlib_crc32 = NULL


cdef void _find_crc32() except *:
    global _zlib_crc32
    path = getattr(_zlib, "__file__", None)
    encoded = path.encode() if isinstance(path, str) else None
    _zlib_crc32 = ingresslib_find_crc32(<const char*>encoded if encoded is not None else NULL)
    # Trust it only if it computes what zlib.crc32 computes.
    if _zlib_crc32 != NULL and _zlib_crc32(0, <const unsigned char*>b"ingresslib", 10) != _crc32(b"ingresslib"):
        _zlib_crc32 = NULL


_find_crc32()


def native_crc32():
    """True when HashPick calls zlib's crc32 directly (else through zlib.crc32)."""
    return _zlib_crc32 != NULL


def _use_native_crc32(bint on):
    """Tests only: switch HashPick between zlib's crc32 from C and zlib.crc32 from Python."""
    global _zlib_crc32
    if on:
        _find_crc32()
    else:
        _zlib_crc32 = NULL
    return _zlib_crc32 != NULL

__all__ = ["CanaryPick", "FastRoute", "HashPick", "native_crc32", "Rotation", "ROTATION_TYPE", "Interleave",
           "http_header"]


def http_header(items, bytes name not None):
    # A request header as nginx's $http_NAME reads it (ngx_http_variable_unknown_header, nginx
    # >= 1.23): one line's value as is, repeated lines joined by ", " ("; " for cookie). One C
    # loop over h11's (raw name, lower-case name, value) triples instead of a Python loop of
    # ~40 ns per header; anything that is not such a triple is skipped, as the pure twin does.
    # h11 keeps a list, but its Headers stores whatever its constructor was given (a tuple):
    # any other iterable is read as a list of it, as the pure twin's ``for`` and _items_of do.
    if not PyList_CheckExact(items):
        items = list(items)
    return _http_header(<list>items, name)


cdef object _http_header(list items, bytes name):
    # items is never None here (http_header and _items_of see to it). Memory safety: creating
    # or growing ``more`` allocates, which may run the garbage collector, and so any finaliser,
    # which may mutate ``items`` and free the triples read so far. So the borrowed first value
    # and each further one are made strong references before anything allocates, and the
    # list's size is read again after each allocation (the pure twin's ``for item in items``
    # ends early the same way). One header line (the common case) allocates nothing: borrowed
    # throughout.
    cdef Py_ssize_t i = 0, n = PyList_GET_SIZE(items), size = PyBytes_GET_SIZE(name)
    cdef const char* want = PyBytes_AS_STRING(name)
    cdef PyObject* item
    cdef PyObject* key
    cdef PyObject* first = NULL
    cdef object held, value
    cdef list more = None
    while i < n:
        item = PyList_GET_ITEM(items, i)
        i += 1
        if not PyTuple_CheckExact(<object>item) or PyTuple_GET_SIZE(<object>item) != 3:
            continue
        key = PyTuple_GET_ITEM(<object>item, 1)
        if key == <PyObject*>name or (
                PyBytes_CheckExact(<object>key) and PyBytes_GET_SIZE(<object>key) == size
                and memcmp(PyBytes_AS_STRING(<object>key), want, size) == 0):
            if first == NULL:
                # Borrowed: ``items`` (held by the caller) keeps the triple alive for as long
                # as nothing allocates, and nothing does until ``more`` is made.
                first = PyTuple_GET_ITEM(<object>item, 2)
            elif more is None:
                held = <object>first
                value = <object>PyTuple_GET_ITEM(<object>item, 2)
                more = [held, value]
                n = PyList_GET_SIZE(items)
            else:
                value = <object>PyTuple_GET_ITEM(<object>item, 2)
                more.append(value)
                n = PyList_GET_SIZE(items)
    if more is not None:
        return (b"; " if name == b"cookie" else b", ").join(more)
    if first == NULL:
        return None
    return <object>first


cdef extern from "structmember.h":
    int T_OBJECT_EX


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef Py_ssize_t _items_offset(headers_type) except -1:
    # Where an h11 Headers object keeps its ``_full_items`` slot, or 0 (read it by name). The
    # attribute lookup by name (type dict, descriptor, PyMember_GetOne) is ~100 instructions
    # of a header read; a request whose headers are exactly this type reads the slot directly.
    if not isinstance(headers_type, type):
        return 0
    d = getattr(headers_type, "_full_items", None)
    if type(d) is not _MemberDescriptor:
        return 0
    # The offset is only valid in instances of the class that declared the slot (and its
    # subclasses): a descriptor copied onto an unrelated class ("_full_items =
    # Headers._full_items") would have us read past that class's instances. Python's own
    # descriptor refuses such an object (TypeError): the read by name then does the same.
    if not issubclass(headers_type, d.__objclass__):
        return 0
    m = (<PyMemberDescrObject*>d).d_member
    return m.offset if m.type == T_OBJECT_EX and m.offset > 0 else 0


cdef inline list _items_of(headers, Py_ssize_t offset):
    # headers._full_items as a list; offset from _items_offset(type(headers)). Anything else
    # in the slot (None, a tuple: h11 never puts one there) is read as the pure twin's loop
    # reads it: list() of it, which raises TypeError for None as the twin's ``for`` does; a
    # None must never reach _http_header's unchecked list reads.
    cdef PyObject* items
    cdef object found
    if offset:
        items = (<PyObject**>(<char*>(<PyObject*>headers) + offset))[0]
        if items != NULL and PyList_CheckExact(<object>items):
            return <list>items
    found = headers._full_items
    if PyList_CheckExact(found):
        return <list>found
    return list(found)


cdef class Rotation:
    cdef tuple _items
    cdef Py_ssize_t _pos               # the next item; _n while turns given back wait
    cdef Py_ssize_t _n
    cdef list _back                    # turns given back, served first; None: none
    cdef Py_ssize_t _saved             # _pos while turns given back wait

    def __cinit__(self, items, start=0):
        if not isinstance(items, tuple):
            raise TypeError("Rotation needs a tuple")
        if PyTuple_GET_SIZE(items) == 0:
            raise ValueError("Rotation needs at least one item")
        # An exact tuple (the slot's type): a tuple subclass passes the check above.
        self._items = items if PyTuple_CheckExact(items) else tuple(items)
        self._n = PyTuple_GET_SIZE(items)
        # Python's remainder (never negative), on any int: start need not fit a C ssize_t.
        self._pos = _index(start) % self._n

    def __init__(self, items, start=0):
        # The work is in __cinit__ (it always runs, even from __new__ alone); this is the
        # signature Python sees.
        pass

    def __iter__(self):
        return self

    def __next__(self):
        return self._take()

    def give_back(self, item):
        # A turn taken by a request that never reached an upstream (_pick_py.py give_back).
        # While turns wait, _pos is _n: _take's one comparison then sends it to _take_back,
        # so the common next() pays nothing for this.
        cdef Py_ssize_t i
        for i in range(self._n):
            if PyTuple_GET_ITEM(self._items, i) == <PyObject*>item:
                if self._back is None:
                    self._back = [item]
                    self._saved = self._pos
                    self._pos = self._n
                else:
                    self._back.append(item)
                return True
        return False

    cdef object _take_back(self):
        back = self._back
        item = back.pop(0)
        if not back:
            self._back = None
            self._pos = self._saved
        return item

    cdef inline object _take(self):
        cdef Py_ssize_t i = self._pos
        if i + 1 < self._n:
            self._pos = i + 1
        elif i + 1 == self._n:
            self._pos = 0
        else:  # i == _n: turns given back wait
            return self._take_back()
        return <object>PyTuple_GET_ITEM(self._items, i)


ROTATION_TYPE = Rotation


cdef class Interleave:
    cdef uint64_t _k                   # calls so far, modulo total; _total while turns wait
    cdef uint64_t _weight
    cdef uint64_t _total
    cdef uint64_t _saved               # _k while turns given back wait
    cdef uint64_t _back_yes            # choices given back, served first (give_back)
    cdef uint64_t _back_no

    def __cinit__(self, weight, total):
        # Integers only (as the pure twin): a float would be truncated by the C conversion.
        weight, total = _index(weight), _index(total)
        # weight <= total < 2**32: (k + 1) * weight stays below 2**64.
        if not 0 < total < 2 ** 32:
            raise ValueError("total must be in 1 .. 2**32 - 1")
        if not 0 <= weight <= total:
            raise ValueError("weight must be in 0 .. total")
        self._weight = weight
        self._total = total
        self._k = 0

    def __init__(self, weight, total):
        pass

    def __iter__(self):
        return self

    def __next__(self):
        return self._take()

    def give_back(self, bint choice):
        # A choice taken by a request that never reached an upstream (_pick_py.py
        # give_back). While choices wait, _k is _total: _take's one comparison then sends it
        # to _take_back, so the common next() pays nothing for this.
        if not (self._back_yes or self._back_no):
            self._saved = self._k
            self._k = self._total
        if choice:
            self._back_yes += 1
        else:
            self._back_no += 1

    cdef bint _take_back(self):
        cdef bint choice = self._back_yes != 0
        if choice:
            self._back_yes -= 1
        else:
            self._back_no -= 1
        if not (self._back_yes or self._back_no):
            self._k = self._saved
        return choice

    cdef inline bint _take(self):
        cdef uint64_t k = self._k, w = self._weight, t = self._total
        if k + 1 < t:
            self._k = k + 1
        elif k + 1 == t:
            self._k = 0
        else:  # k == t: choices given back wait
            return self._take_back()
        return (k + 1) * w // t > k * w // t

    @property
    def weight(self):
        return self._weight

    @property
    def total(self):
        return self._total


@cython.auto_pickle(False)
cdef class FastRoute:
    # Router.route of one published state. The interpreter's own cost of a Python-level
    # ``route`` (the frame, five arguments, a dozen bytecodes) is ~1,700 instructions: more
    # than the match itself. Plain round-robin routes finish here; anything else goes to the
    # Router's Python code with the Match and the route's entry already looked up.
    # The entries are keyed by the Match itself: a Match hashes by identity, so finding its
    # entry reads the dict and nothing of the Match (its route_id slot is on the object's
    # second cache line, and the id is an int object of its own: two more misses on a cold
    # route, plus a generic attribute lookup).
    cdef object _match
    cdef dict _fast
    cdef object _slow

    def __init__(self, match, dict fast not None, slow):
        self._match = match
        self._fast = fast
        self._slow = slow

    def route(self, method, host, path, headers=(), client_ip=None, *, query=None):
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
        if type(e) is Rotation:
            return (<Rotation>e)._take()
        if type(e) is CanaryPick:
            d = (<CanaryPick>e)._pick(headers)
            if d is not None:
                return d
            e = (<CanaryPick>e).route
        elif type(e) is HashPick:
            d = (<HashPick>e)._pick(path, headers, client_ip)
            if d is not None:
                return d
            e = (<HashPick>e).backend
        return self._slow(m, e, self._fast, method, host, path, headers, client_ip, query)


@cython.auto_pickle(False)
cdef class CanaryPick:
    # A canary route whose choice needs neither a session nor a cookie nor a pattern: the
    # inline header rule (on h11 headers), then the smooth split, then the chosen side's
    # round-robin; ``pick`` answers None when the request needs the Router's Python path
    # (the header rule on headers that are not h11's). ``route`` is the Router's object for
    # that path.
    cdef readonly object route
    cdef object _hname                 # bytes, or None: no header rule
    cdef object _hyes
    cdef object _hno
    cdef object _h11                   # the h11.Headers type
    cdef Py_ssize_t _items_off         # _items_offset(_h11)
    cdef Interleave _steps
    cdef Rotation _yes
    cdef Rotation _no

    def __init__(self, route, hname, hyes, hno, h11_headers, Interleave steps not None,
                 Rotation yes not None, Rotation no not None):
        if hname is not None and not (isinstance(hname, bytes) and isinstance(hyes, bytes)
                                      and (hno is None or isinstance(hno, bytes))):
            raise TypeError("header name and values must be bytes")
        # The offset first: _items_offset may run Python code (getattr), which must never see
        # a new _h11 with an old offset (a slot read past a smaller object).
        cdef Py_ssize_t items_off = _items_offset(h11_headers)
        self.route = route
        self._hname = hname
        self._hyes = hyes
        self._hno = hno
        self._h11 = h11_headers
        self._items_off = items_off
        self._steps = steps
        self._yes = yes
        self._no = no

    def pick(self, headers):
        return self._pick(headers)

    cdef object _pick(self, headers):
        cdef int choice = -1
        if self._steps is None:
            # Made by CanaryPick.__new__ alone: _steps._take() would write into None.
            raise TypeError("CanaryPick.__init__ was not called")
        if self._hname is not None:
            if type(headers) is not self._h11:
                return None
            v = _http_header(_items_of(headers, self._items_off), <bytes>self._hname)
            if v is not None:
                if v == self._hyes:
                    choice = 1
                elif v == self._hno:
                    choice = 0
        if choice < 0:
            choice = self._steps._take()
        return self._yes._take() if choice else self._no._take()


@cython.auto_pickle(False)
cdef class HashPick:
    # A consistent-hash backend (no canary) with its ring's bucket table built: the key
    # (``kind`` 1: the path, 2: the client address, 3: one header of h11 headers), its CRC-32,
    # one table byte, the Decision; a bucket holding a ring point (DIRTY) bisects the packed
    # ring here (a bisect over the ring's Python ints costs ~10 cache misses on a cold route).
    # ``pick`` answers None whenever the Router's Python path must decide (a key that is not
    # plain UTF-8/ASCII, headers that are not h11's); ``backend`` is the Router's object for
    # that path.
    # A request reads this object's first fields, one table byte and one tuple slot, nothing
    # else of the route: the lengths and item addresses of the table and decisions are copied
    # here, so the cold route's bytes and tuple headers (other cache lines, and for the 8 KiB
    # table often another page) are never touched. Fields are laid out in this order.
    cdef const unsigned char* _tab     # the table's bytes (kept alive by _table)
    cdef PyObject** _dec               # _inline, or the decisions tuple's items
    # Up to four decisions' addresses copied into the object (kept alive by
    # _decisions): a request then reads no tuple, one cold line fewer on a cold route.
    cdef PyObject* _inline[4]
    cdef object _hname
    cdef object _h11
    cdef int _kind
    cdef int _shift
    cdef Py_ssize_t _items_off         # _items_offset(_h11)
    cdef Py_ssize_t _ntab
    cdef Py_ssize_t _ndec
    cdef readonly object backend
    cdef bytes _table
    cdef tuple _decisions
    cdef bytes _points                 # the ring's points (no sentinel), native uint32, sorted
    cdef bytes _owners                 # the owner of each point (a decision index)

    def __init__(self, backend, int kind, hname, bytes table not None, shift,
                 tuple decisions not None, h11_headers, bytes points not None,
                 bytes owners not None):
        cdef Py_ssize_t i
        if not isinstance(shift, int):
            # A C int parameter would take 24.0 (and 24.5) through __int__; the pure twin
            # cannot shift by a float: both refuse it.
            raise TypeError("shift must be an int")
        if kind not in (1, 2, 3) or not 0 <= shift <= 32:
            raise ValueError("kind must be 1, 2 or 3 and shift in 0 .. 32")
        if kind == 3 and not isinstance(hname, bytes):
            raise TypeError("a header key needs the header name as bytes")
        if (len(points) % 4 or len(points) // 4 != len(owners) or not owners
                or max(owners) >= len(decisions)):
            raise ValueError("points and owners must describe a non-empty ring over decisions")
        # __init__ may run again on a live object. _tab and _dec are raw pointers into
        # _table and _decisions: the old objects are held here until every field is
        # replaced, so no finaliser they trigger (a decision's __del__ may call pick) runs
        # while _dec still points into a freed tuple; and _items_offset (getattr: Python code)
        # runs before any field changes.
        cdef Py_ssize_t items_off = _items_offset(h11_headers)
        old = (self.backend, self._hname, self._table, self._decisions, self._h11,
               self._points, self._owners)
        self._points = points
        self._owners = owners
        self.backend = backend
        self._kind = kind
        self._hname = hname
        self._table = table
        self._tab = <const unsigned char*>PyBytes_AS_STRING(table)
        self._ntab = PyBytes_GET_SIZE(table)
        self._shift = shift
        self._decisions = decisions
        self._dec = PySequence_Fast_ITEMS(decisions)  # a tuple's own item array
        self._ndec = PyTuple_GET_SIZE(decisions)
        if self._ndec <= 4:
            for i in range(self._ndec):
                self._inline[i] = self._dec[i]
            self._dec = &self._inline[0]
        self._h11 = h11_headers
        self._items_off = items_off
        del old

    def pick(self, path, headers, client_ip):
        return self._pick(path, headers, client_ip)

    cdef object _pick(self, path, headers, client_ip):
        cdef unsigned long h
        cdef Py_ssize_t i, o, n
        cdef const char* buf
        # The decisions' item array is needed last, at an index the table byte gives; asking
        # for its cache line now overlaps that miss (a cold route's) with the key read, the
        # CRC and the table byte's own miss, instead of paying it after them. (Up to four
        # decisions live in this object: the line is then most likely here already.)
        ingresslib_prefetch(self._dec)
        if self._kind == 3:
            if type(headers) is not self._h11:
                return None
            kb = _http_header(_items_of(headers, self._items_off), <bytes>self._hname)
            if kb is None:
                kb = b""
            elif type(kb) is not bytes:
                return None
            buf = PyBytes_AS_STRING(kb)
            n = PyBytes_GET_SIZE(kb)
            for i in range(n):
                if <unsigned char>buf[i] >= 0x80:  # not ASCII: the Python path re-encodes it
                    return None
        else:
            key = path if self._kind == 1 else (client_ip or "")
            if type(key) is not str:
                return None
            # The str's UTF-8 in place (an ASCII str's own buffer): no bytes object per request.
            buf = PyUnicode_AsUTF8AndSize(key, &n)
            if buf == NULL:  # lone surrogates: the Python path encodes those
                PyErr_Clear()
                return None
            if self._kind == 1:
                # A path with an escape, "//" or "/." may not be canonical: the Python path
                # hashes nginx's $uri (its canonical form). One pass over the bytes.
                for i in range(n):
                    if buf[i] == b'%' or (buf[i] == b'/' and i + 1 < n
                                          and (buf[i + 1] == b'/' or buf[i + 1] == b'.')):
                        return None
        if _zlib_crc32 != NULL and n < 0x7FFFFFFF:
            h = _zlib_crc32(0, <const unsigned char*>buf, <unsigned int>n)
        else:
            h = _crc32(PyBytes_FromStringAndSize(buf, n))
        # 64 bits wide whatever unsigned long is: shift may be 32, which would be undefined
        # behaviour on a 32-bit unsigned long (Windows).
        i = <Py_ssize_t>((<uint64_t>h) >> self._shift)
        if i >= self._ntab:
            return None
        o = self._tab[i]
        if o >= self._ndec:                # DIRTY (255): a ring point in the bucket
            o = self._owner(<uint32_t>h)
        return <object>self._dec[o]

    cdef Py_ssize_t _owner(self, uint32_t h):
        # The owner of the first point >= h, wrapping to the first point (the ring's sentinel).
        cdef const uint32_t* pts = <const uint32_t*>PyBytes_AS_STRING(self._points)
        cdef Py_ssize_t lo = 0, hi = PyBytes_GET_SIZE(self._owners), mid
        cdef const unsigned char* owners = <const unsigned char*>PyBytes_AS_STRING(self._owners)
        while lo < hi:
            mid = (lo + hi) >> 1
            if pts[mid] < h:
                lo = mid + 1
            else:
                hi = mid
        return owners[lo] if lo < PyBytes_GET_SIZE(self._owners) else owners[0]
