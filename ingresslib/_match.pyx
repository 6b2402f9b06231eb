# cython: language_level=3, autotestdict=False, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
#
# The hot lookup only; behaviour, docs and types live in _match_py.py / _match.pyi (same
# results, same exceptions). Per host group a compressed radix tree over the canonical path's
# bytes, flattened into C arrays; payloads are indices into one tuple.
from collections import deque
from os.path import commonprefix

from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int32_t, uint64_t
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


ctypedef struct _Node:
    const unsigned char* label
    int32_t label_len
    int32_t exact         # payload index, -1: none
    int32_t prefix        # payload index, -1: none
    int32_t first_child   # children are contiguous, sorted by first byte
    int32_t nchildren
    int32_t dense         # many children: offset of a first byte -> child table, else -1
    unsigned char lo      # dense table range
    unsigned char hi

ctypedef struct _Group:
    int32_t root
    int32_t default       # payload index, -1: None

ctypedef struct _HostEntry:
    uint64_t hash
    const unsigned char* key
    Py_ssize_t len
    Py_ssize_t group      # -1: empty slot

ctypedef struct _HostTable:
    _HostEntry* entries
    uint64_t mask

# Nodes with more children than this get a dense first-byte index.
DEF _DENSE_MIN = 5
# Longer hosts take the slow path (a DNS name is at most 253 characters).
DEF _HOST_MAX = 256


# Path bytes: 1 = pchar other than "%", 2 = "/", 3 = "?" (end of path), 0 = slow path.
cdef unsigned char _PATH_CLASS[256]
# Host bytes: 1 = [a-z0-9-], 2 = ".", 3 = [A-Z], 4 = ":", 0 = slow path.
cdef unsigned char _HOST_CLASS[256]
cdef const unsigned char* _ROOT = <const unsigned char*>"/"


cdef void _init_tables():
    cdef int c
    for c in range(256):
        _PATH_CLASS[c] = 0
        _HOST_CLASS[c] = 0
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@":
        _PATH_CLASS[c] = 1
    _PATH_CLASS[ord("/")] = 2
    _PATH_CLASS[ord("?")] = 3
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789-":
        _HOST_CLASS[c] = 1
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        _HOST_CLASS[c] = 3
    _HOST_CLASS[ord(".")] = 2
    _HOST_CLASS[ord(":")] = 4


_init_tables()


cdef inline bint _ends_dot_segment(unsigned char c) noexcept nogil:
    return c == 47 or c == 63 or c == 59 or c == 0   # "/", "?", ";", end


cdef inline Py_ssize_t _fast_path_len(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # The length of the path before "?" when that path is already canonical, else -1.
    # p[n] is the NUL every str buffer ends with: _PATH_CLASS[0] == 0 stops the inner loop, so
    # it needs no bounds test (an embedded NUL also stops it, and is then rejected).
    cdef Py_ssize_t i = 0
    cdef unsigned char c
    if n == 0 or p[0] != 47:
        return -1
    while True:
        while _PATH_CLASS[p[i]] == 1:
            i += 1
        c = p[i]
        if c == 47:                        # "/": no "//", no "." or ".." segment after it
            i += 1
            c = p[i]
            if c == 47:
                return -1
            if c == 46:
                c = p[i + 1]
                if _ends_dot_segment(c):
                    return -1
                if c == 46 and _ends_dot_segment(p[i + 2]):
                    return -1
        elif c == 63:                      # "?": the query starts
            return i
        elif c == 0 and i == n:
            return n
        else:
            return -1


cdef inline Py_ssize_t _walk(const _Node* nodes, const unsigned char* firsts, const int32_t* dense,
                             Py_ssize_t root, const unsigned char* p, Py_ssize_t n) noexcept nogil:
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
        child = -1
        if node.dense >= 0:
            if node.lo <= c <= node.hi:
                child = dense[node.dense + c - node.lo]
        else:
            k = node.first_child
            end = k + node.nchildren
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


cdef inline uint64_t _hash(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    # A few multiplies per host; the table holds only the rule hosts, and a probe compares the
    # bytes, so a collision costs a probe, never a wrong answer.
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n, w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, s + i, 8)
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL
        h ^= h >> 29
        i += 8
    w = 0
    while i < n:
        w = (w << 8) | s[i]
        i += 1
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL
    return h ^ (h >> 32)


cdef inline Py_ssize_t _host_find(const _HostTable* t, const unsigned char* s,
                                  Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = _hash(s, n), i = h & t.mask
    cdef const _HostEntry* e
    while True:
        e = t.entries + i
        if e.group < 0:
            return -1
        if e.hash == h and e.len == n and memcmp(e.key, s, n) == 0:
            return e.group
        i = (i + 1) & t.mask


cdef int _host_table(_HostTable* t, dict keys, const unsigned char* arena) except -1:
    # keys: bytes -> group index; arena: the keys' bytes back to back, in dict order.
    cdef uint64_t size = 8, i
    cdef Py_ssize_t off = 0
    while size < 2 * <uint64_t>len(keys):
        size *= 2
    t.entries = <_HostEntry*>malloc(size * sizeof(_HostEntry))
    if t.entries == NULL:
        raise MemoryError()
    t.mask = size - 1
    for i in range(size):
        t.entries[i].group = -1
    for key, group in keys.items():
        h = _hash(arena + off, len(key))
        i = h & t.mask
        while t.entries[i].group >= 0:
            i = (i + 1) & t.mask
        t.entries[i].hash = h
        t.entries[i].key = arena + off
        t.entries[i].len = len(key)
        t.entries[i].group = group
        off += len(key)
    return 0


cdef class Matcher:
    cdef _Node* _nodes
    cdef unsigned char* _firsts
    cdef unsigned char* _labels
    cdef int32_t* _dense
    cdef _Group* _groups
    cdef unsigned char* _host_keys
    cdef _HostTable _exact_hosts
    cdef _HostTable _wild_hosts
    cdef Py_ssize_t _n_nodes
    cdef Py_ssize_t _n_dense
    cdef Py_ssize_t _n_groups
    cdef Py_ssize_t _hostless
    cdef tuple _payloads
    cdef object _default

    def __cinit__(self):
        self._nodes = NULL
        self._firsts = NULL
        self._labels = NULL
        self._dense = NULL
        self._groups = NULL
        self._host_keys = NULL
        self._exact_hosts.entries = NULL
        self._wild_hosts.entries = NULL

    def __dealloc__(self):
        free(self._nodes)
        free(self._firsts)
        free(self._labels)
        free(self._dense)
        free(self._groups)
        free(self._host_keys)
        free(self._exact_hosts.entries)
        free(self._wild_hosts.entries)

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
        self._build_hosts(hosts, wild)
        self._hostless = hostless
        self._payloads = tuple(payloads)
        self._default = default

    cdef _build_hosts(self, dict hosts, dict wild):
        # Host names as UTF-8 ("surrogatepass" keeps every str distinct), back to back.
        exact_keys = {h.encode("utf-8", "surrogatepass"): g for h, g in hosts.items()}
        wild_keys = {h.encode("utf-8", "surrogatepass"): g for h, g in wild.items()}
        cdef bytes arena = b"".join(list(exact_keys) + list(wild_keys))
        self._host_keys = <unsigned char*>malloc(max(len(arena), 1))
        if self._host_keys == NULL:
            raise MemoryError()
        memcpy(self._host_keys, <const char*>arena, len(arena))
        cdef Py_ssize_t exact_len = sum([len(k) for k in exact_keys])
        _host_table(&self._exact_hosts, exact_keys, self._host_keys)
        _host_table(&self._wild_hosts, wild_keys, self._host_keys + exact_len)

    cdef _build_arrays(self, list node_rows, list group_rows):
        cdef Py_ssize_t n = len(node_rows), i, k, off = 0
        cdef int lo, hi
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
        dense = []
        for i in range(n):
            first_child, nchildren = node_rows[i][3], node_rows[i][4]
            self._nodes[i].dense = -1
            self._nodes[i].lo = self._nodes[i].hi = 0
            if nchildren >= _DENSE_MIN:
                lo = self._firsts[first_child]
                hi = self._firsts[first_child + nchildren - 1]
                self._nodes[i].dense = len(dense)
                self._nodes[i].lo = lo
                self._nodes[i].hi = hi
                table = [-1] * (hi - lo + 1)
                for k in range(first_child, first_child + nchildren):
                    table[self._firsts[k] - lo] = k
                dense.extend(table)
        self._dense = <int32_t*>malloc(max(len(dense), 1) * sizeof(int32_t))
        if self._dense == NULL:
            raise MemoryError()
        for i in range(len(dense)):
            self._dense[i] = dense[i]
        self._n_dense = len(dense)
        for i in range(len(group_rows)):
            self._groups[i].root = group_rows[i][0]
            self._groups[i].default = group_rows[i][1]
        self._n_nodes = n
        self._n_groups = len(group_rows)

    cdef inline Py_ssize_t _group_of_name(self, const unsigned char* h, Py_ssize_t n,
                                          Py_ssize_t dot) noexcept nogil:
        # h[:n] is a normalised host; dot: its first "." (or -1).
        cdef Py_ssize_t g = _host_find(&self._exact_hosts, h, n)
        if g >= 0:
            return g
        # "*.foo.com matches bar.foo.com, not foo.com, not a.bar.foo.com": one non-empty label.
        if 0 < dot < n:
            g = _host_find(&self._wild_hosts, h + dot + 1, n - dot - 1)
            if g >= 0:
                return g
        return self._hostless

    cdef Py_ssize_t _group_of(self, str host) except -2:
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(host), i, end, dot = -1
        cdef const unsigned char* h
        cdef unsigned char buf[_HOST_MAX]
        cdef unsigned char k
        cdef bint upper = False
        cdef bytes encoded
        if n == 0:
            return self._hostless
        if PyUnicode_KIND(host) == 1 and n <= _HOST_MAX:
            # Fast path: lower-case ASCII letters, cut ":port", strip one trailing dot, in
            # one scan; anything else ("[", non-ASCII, odd bytes) goes to normalize_host.
            h = <const unsigned char*>PyUnicode_DATA(host)
            end = n
            for i in range(n):
                k = _HOST_CLASS[h[i]]
                if k == 1:
                    continue
                if k == 2:
                    if dot < 0:
                        dot = i
                elif k == 3:
                    upper = True
                elif k == 4:
                    end = i
                    break
                else:
                    end = -1
                    break
            if end >= 0:
                if end > 0 and h[end - 1] == 46:
                    end -= 1
                if end == 0:
                    return self._hostless
                if upper:
                    for i in range(end):
                        buf[i] = h[i] + 32 if _HOST_CLASS[h[i]] == 3 else h[i]
                    h = buf
                return self._group_of_name(h, end, dot)
        name = _normalize_host(host)
        if name is None or name.startswith("["):
            # Empty, or an IPv6 literal: it "never equal[s] a rule host".
            return self._hostless
        encoded = name.encode("utf-8", "surrogatepass")
        return self._group_of_name(<const unsigned char*><const char*>encoded, len(encoded),
                                   encoded.find(b"."))

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
        idx = _walk(self._nodes, self._firsts, self._dense, self._groups[g].root, p, n)
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
            if node.dense >= 0:
                assert node.nchildren >= _DENSE_MIN, f"node {i}: dense index for few children"
                for c in range(256):
                    k = self._dense[node.dense + c - node.lo] if node.lo <= c <= node.hi else -1
                    found = [j for j in range(node.first_child, node.first_child + node.nchildren)
                             if self._firsts[j] == c]
                    assert ([k] if k >= 0 else []) == found, f"node {i}: dense index for {c}"
            else:
                assert node.nchildren < _DENSE_MIN, f"node {i}: no dense index"
            for k in range(node.first_child, node.first_child + node.nchildren):
                assert k not in roots and k > i, f"node {i}: child {k} out of order"
                seen[k] += 1
                if k > node.first_child:
                    assert self._firsts[k - 1] < self._firsts[k], f"node {i}: children unsorted"
        for i in range(self._n_nodes):
            assert seen[i] == (0 if i in roots else 1), f"node {i} reached {seen[i]} times"
