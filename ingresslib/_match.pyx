# cython: language_level=3, autotestdict=False, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
#
# The hot lookup only; behaviour, docs and types live in _match_py.py / _match.pyi (same
# results, same exceptions). Per host group a compressed radix tree over the canonical path's
# bytes, flattened into C arrays; payloads are indices into one tuple.
from collections import deque
from os.path import commonprefix

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy

from ._normalize import canonical_path as _canonical_path
from ._normalize import normalize_host as _normalize_host

__all__ = ["Matcher"]

cdef extern from "Python.h":
    int PyUnicode_READY(object) except -1
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_ssize_t PyLong_AsSsize_t(object) except? -1


ctypedef struct _Node:
    const unsigned char* label
    int32_t label_len
    int32_t exact         # payload index, -1: none
    int32_t prefix        # payload index, -1: none
    int32_t first_child   # children are contiguous, sorted by first byte
    int32_t nchildren

ctypedef struct _Group:
    int32_t root
    int32_t default       # payload index, -1: None


# Path bytes: 1 = pchar other than "%", 2 = "/", 3 = "?" (end of path), 0 = slow path.
cdef unsigned char _PATH_CLASS[256]
cdef unsigned char _HOST_OK[256]
cdef const unsigned char* _ROOT = <const unsigned char*>"/"


cdef void _init_tables():
    cdef int c
    for c in range(256):
        _PATH_CLASS[c] = 0
        _HOST_OK[c] = 0
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@":
        _PATH_CLASS[c] = 1
    _PATH_CLASS[ord("/")] = 2
    _PATH_CLASS[ord("?")] = 3
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789-.":
        _HOST_OK[c] = 1


_init_tables()


cdef inline bint _ends_dot_segment(unsigned char c) noexcept nogil:
    return c == 47 or c == 63 or c == 59   # "/", "?", ";"


cdef inline Py_ssize_t _fast_path_len(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # The length of the path before "?" when that path is already canonical, else -1.
    cdef Py_ssize_t i = 1, j
    cdef unsigned char k
    if n == 0 or p[0] != 47:
        return -1
    while i < n:
        k = _PATH_CLASS[p[i]]
        if k == 1:
            i += 1
        elif k == 2:
            i += 1
            if i < n:
                if p[i] == 47:                 # "//"
                    return -1
                if p[i] == 46:                 # a segment starting with "."
                    j = i + 1
                    if j == n or _ends_dot_segment(p[j]):
                        return -1
                    if p[j] == 46:
                        j += 1
                        if j == n or _ends_dot_segment(p[j]):
                            return -1
        elif k == 3:
            return i
        else:
            return -1
    return n


cdef inline Py_ssize_t _walk(const _Node* nodes, const unsigned char* firsts, Py_ssize_t root,
                             const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Payload index of the exact key == p, else of the longest prefix key k with p == k or
    # p starting with k + "/", else -1.
    cdef const _Node* node = nodes + root
    cdef Py_ssize_t best = -1, i = 0, k, end, child
    cdef unsigned char c
    while True:
        if node.prefix >= 0 and (i == n or p[i] == 47):
            best = node.prefix
        if i == n:
            if node.exact >= 0:
                return node.exact
            return best
        c = p[i]
        k = node.first_child
        end = k + node.nchildren
        child = -1
        while k < end:
            if firsts[k] >= c:
                if firsts[k] == c:
                    child = k
                break
            k += 1
        if child < 0:
            return best
        node = nodes + child
        if n - i < node.label_len or memcmp(node.label, p + i, node.label_len) != 0:
            return best
        i += node.label_len


cdef class Matcher:
    cdef _Node* _nodes
    cdef unsigned char* _firsts
    cdef unsigned char* _labels
    cdef _Group* _groups
    cdef Py_ssize_t _n_nodes
    cdef Py_ssize_t _n_groups
    cdef Py_ssize_t _hostless
    cdef dict _hosts
    cdef dict _wild
    cdef tuple _payloads
    cdef object _default

    def __cinit__(self):
        self._nodes = NULL
        self._firsts = NULL
        self._labels = NULL
        self._groups = NULL

    def __dealloc__(self):
        free(self._nodes)
        free(self._firsts)
        free(self._labels)
        free(self._groups)

    def __init__(self, groups, default=None):
        cdef list payloads = []
        cdef list node_rows = []          # [label, exact, prefix, first_child, nchildren]
        cdef list group_rows = []         # (root, default)
        cdef dict hosts = {}
        cdef dict wild = {}
        cdef Py_ssize_t hostless = -1
        queue = deque()
        for host, exact, prefix, group_default in groups:
            gi = len(group_rows)
            if host is None:
                if hostless >= 0:
                    raise ValueError("two host-less groups")
                hostless = gi
            else:
                if host.startswith("*."):
                    table, key = wild, host[2:]
                else:
                    table, key = hosts, host
                if key in table:
                    raise ValueError(f"duplicate host group {host!r}")
                table[key] = gi
            # bytes key -> [exact payload index, prefix payload index]. Keys that are not ASCII
            # can never equal a canonical path: leave them out of the tree.
            keys = {}
            for path, payload in exact.items():
                if path.isascii():
                    keys.setdefault(path.encode("ascii"), [-1, -1])[0] = len(payloads)
                    payloads.append(payload)
            for path, payload in prefix.items():
                if path.isascii():
                    keys.setdefault(path.encode("ascii"), [-1, -1])[1] = len(payloads)
                    payloads.append(payload)
            if group_default is None:
                group_rows.append((len(node_rows), -1))
            else:
                group_rows.append((len(node_rows), len(payloads)))
                payloads.append(group_default)
            node_rows.append([b"", -1, -1, 0, 0])
            queue.append((len(node_rows) - 1, sorted(keys), keys, 0))
        # Breadth first, so that the children of a node are contiguous.
        while queue:
            ni, sorted_keys, keys, depth = queue.popleft()
            row = node_rows[ni]
            i, hi = 0, len(sorted_keys)
            if hi and len(sorted_keys[0]) == depth:
                row[1], row[2] = keys[sorted_keys[0]]
                i = 1
            row[3] = len(node_rows)
            while i < hi:
                c = sorted_keys[i][depth]
                j = i + 1
                while j < hi and sorted_keys[j][depth] == c:
                    j += 1
                lcp = len(commonprefix([sorted_keys[i], sorted_keys[j - 1]]))
                node_rows.append([sorted_keys[i][depth:lcp], -1, -1, 0, 0])
                queue.append((len(node_rows) - 1, sorted_keys[i:j], keys, lcp))
                row[4] += 1
                i = j
        self._build_arrays(node_rows, group_rows)
        self._hosts = hosts
        self._wild = wild
        self._hostless = hostless
        self._payloads = tuple(payloads)
        self._default = default

    cdef _build_arrays(self, list node_rows, list group_rows):
        cdef Py_ssize_t n = len(node_rows), i, off = 0
        cdef bytes arena = b"".join([row[0] for row in node_rows])
        self._nodes = <_Node*>malloc(max(n, 1) * sizeof(_Node))
        self._firsts = <unsigned char*>malloc(max(n, 1))
        self._labels = <unsigned char*>malloc(max(len(arena), 1))
        self._groups = <_Group*>malloc(max(len(group_rows), 1) * sizeof(_Group))
        if not (self._nodes and self._firsts and self._labels and self._groups):
            raise MemoryError()
        memcpy(self._labels, <const char*>arena, len(arena))
        for i in range(n):
            label, exact, prefix, first_child, nchildren = node_rows[i]
            self._nodes[i].label = self._labels + off
            self._nodes[i].label_len = len(label)
            self._nodes[i].exact = exact
            self._nodes[i].prefix = prefix
            self._nodes[i].first_child = first_child
            self._nodes[i].nchildren = nchildren
            self._firsts[i] = label[0] if label else 0
            off += len(label)
        for i in range(len(group_rows)):
            self._groups[i].root = group_rows[i][0]
            self._groups[i].default = group_rows[i][1]
        self._n_nodes = n
        self._n_groups = len(group_rows)

    cdef Py_ssize_t _group_of(self, str host) except -2:
        cdef PyObject* hit = PyDict_GetItem(self._hosts, host)
        cdef Py_ssize_t n, i, dot = -1
        cdef const unsigned char* h
        if hit is not NULL:
            return PyLong_AsSsize_t(<object>hit)
        n = PyUnicode_GET_LENGTH(host)
        if n == 0:
            return self._hostless
        name = host
        if PyUnicode_KIND(host) == 1:
            # Already normal ([a-z0-9.-], no trailing dot): it missed the dict as it is.
            h = <const unsigned char*>PyUnicode_DATA(host)
            i = 0
            while i < n and _HOST_OK[h[i]]:
                if h[i] == 46 and dot < 0:
                    dot = i
                i += 1
            if i < n or h[n - 1] == 46:
                dot = -2
        else:
            dot = -2
        if dot == -2:
            name = _normalize_host(host)
            if name is None or name.startswith("["):
                return self._hostless
            hit = PyDict_GetItem(self._hosts, name)
            if hit is not NULL:
                return PyLong_AsSsize_t(<object>hit)
            dot = name.find(".")
        if dot > 0 and self._wild:
            hit = PyDict_GetItem(self._wild, name[dot + 1:])
            if hit is not NULL:
                return PyLong_AsSsize_t(<object>hit)
        return self._hostless

    def lookup(self, str host not None, str path not None):
        cdef Py_ssize_t n, g, idx
        cdef const unsigned char* p
        cdef object canon
        PyUnicode_READY(path)
        n = PyUnicode_GET_LENGTH(path)
        if n == 0:
            p = _ROOT
            n = 1
        elif PyUnicode_KIND(path) == 1:
            p = <const unsigned char*>PyUnicode_DATA(path)
            n = _fast_path_len(p, n)
        else:
            n = -1
        if n < 0:
            canon = path.partition("?")[0] or "/"
            if canon != "/":
                canon = _canonical_path(canon)
            # A canonical path is ASCII: its buffer is one byte per character.
            p = <const unsigned char*>PyUnicode_DATA(canon)
            n = PyUnicode_GET_LENGTH(canon)
        elif n == 0:
            p = _ROOT
            n = 1
        g = self._group_of(host)
        if g < 0:
            return self._default
        idx = _walk(self._nodes, self._firsts, self._groups[g].root, p, n)
        if idx < 0:
            idx = self._groups[g].default
            if idx < 0:
                return None
        return <object>PyTuple_GET_ITEM(self._payloads, idx)

    def _check_invariants(self):
        """Raise AssertionError unless the flattened trees are well formed (tests only)."""
        cdef Py_ssize_t i, k, g
        cdef _Node* node
        seen = [0] * self._n_nodes
        npay = len(self._payloads)
        roots = {self._groups[g].root for g in range(self._n_groups)}
        assert len(roots) == self._n_groups, "groups share a root"
        for i in range(self._n_nodes):
            node = &self._nodes[i]
            assert -1 <= node.exact < npay and -1 <= node.prefix < npay, f"node {i}: payload"
            assert node.nchildren >= 0, f"node {i}: nchildren"
            assert node.first_child + node.nchildren <= self._n_nodes, f"node {i}: children"
            if i in roots:
                assert node.label_len == 0, f"root {i} has a label"
            else:
                assert node.label_len > 0, f"node {i}: empty label"
                assert self._firsts[i] == node.label[0], f"node {i}: first byte index"
                # Compressed: a node without a payload exists only to branch.
                assert node.exact >= 0 or node.prefix >= 0 or node.nchildren >= 2, (
                    f"node {i}: one child and no payload")
            for k in range(node.first_child, node.first_child + node.nchildren):
                assert k not in roots and k > i, f"node {i}: child {k} out of order"
                seen[k] += 1
                if k > node.first_child:
                    assert self._firsts[k - 1] < self._firsts[k], f"node {i}: children unsorted"
        for i in range(self._n_nodes):
            assert seen[i] == (0 if i in roots else 1), f"node {i} reached {seen[i]} times"
