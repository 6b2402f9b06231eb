# cython: language_level=3, autotestdict=False, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True
#
# The hot lookup only; behaviour, docs and types live in _match_py.py / _match.pyi (same
# results, same exceptions). Per host group a compressed radix tree over the canonical path's
# bytes, flattened into one C array of 32-byte nodes (two per cache line). Each group's nodes
# are contiguous and in depth-first order of their children blocks, so one lookup's nodes sit
# on one or two pages; a node holds its children's first bytes (a parallel byte array serves
# wide nodes) and its payload's address (the matcher's payload tuple keeps the payloads alive),
# so a lookup reads no tuple slot. Big node arrays get transparent huge pages where Linux
# offers them. The walk prefetches each node's children block as it reaches the node, so
# the next level's cache miss overlaps the work on this one.
# The fast path reads the str buffers in place: no substring, no encode, no allocation. It
# walks the raw path first and checks it is canonical afterwards, and then only the bytes the
# walk did not match against a key (every key in the tree is canonical); a path it cannot
# vouch for takes the slow path (canonical_path, then a second walk), as before.
# Memory comes from PyMem_Malloc, so tracemalloc accounts for the tree.

from cpython.object cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from cpython.mem cimport PyMem_Free as free
from cpython.mem cimport PyMem_Malloc as malloc
from cpython.mem cimport PyMem_Realloc as realloc
from libc.stdlib cimport qsort
from libc.string cimport memchr, memcmp, memcpy, memset

from ._normalize import canonical_path as _canonical_path, split_target as _split_target
from ._normalize import check_host as _check_host
from ._normalize import is_canonical as _is_canonical
from ._normalize import normalize_host as _normalize_host

__all__ = ["Matcher"]

cdef extern from *:
    # PyUnicode_READY is a no-op from 3.12 on (PEP 623: every str is "ready") and deprecated;
    # calling it only where it does something keeps the build working once headers drop it.
    """
    #if PY_VERSION_HEX >= 0x030C0000
    #define _ingresslib_unicode_ready(op) 0
    #else
    #define _ingresslib_unicode_ready(op) PyUnicode_READY(op)
    #endif
    """
    int PyUnicode_READY "_ingresslib_unicode_ready"(object) except -1

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_IS_ASCII(object)

# Children found by a linear scan of their first bytes up to this many, by bisection above.
DEF _SMALL = 8
# The first bytes of up to this many children live in the node itself (99 % of the nodes of a
# generated 100,000-rule table); a wider node's are in the parallel byte array.
DEF _FIRSTS = 5
# Labels and host names up to this long live inside their node / table entry.
DEF _INLINE = 12
DEF _HOST_INLINE = 32
# Longer hosts take the slow path (a DNS name is at most 253 characters).
DEF _HOST_MAX = 256
# The longest rule path the tree stores (_Node.label_len is a uint16_t).
DEF _MAX_KEY = 65535
# The most nodes, and bytes of rule paths, one matcher takes (node indexes and label offsets
# are int32_t).
DEF _INDEX_MAX = 2147483647

ctypedef union _Label:
    unsigned char chars[_INLINE]       # label_len <= _INLINE
    int32_t off                        # else: offset in the label pool


ctypedef struct _Node:                 # 32 bytes: two per cache line
    uintptr_t payload                  # tagged: see _EXACT, _PREFIX; 0: no payload
    int32_t first_child                # children are contiguous, sorted by first byte
    uint16_t label_len
    uint8_t nchildren                  # keys are ASCII: at most 128 children
    unsigned char firsts[_FIRSTS]      # the children's first bytes, when few (else: _firsts)
    _Label label

ctypedef struct _Group:
    int32_t root                       # root node index, -1: no group
    int32_t default                    # payload index, -1: None

ctypedef struct _HostEntry:            # 64 bytes
    uint64_t hash
    _Group group                       # group.root == -1: empty slot
    int32_t len
    int32_t index                      # position in the constructor's groups (tests only)
    const unsigned char* key           # -> inline_key, or the host arena
    unsigned char inline_key[_HOST_INLINE]

ctypedef struct _HostTable:
    _HostEntry* entries
    void* raw
    uint64_t mask


# A node's payload word: the payload object's address (objects are at least 4-byte aligned)
# plus _EXACT or _PREFIX; with both bits, the address of a (exact, prefix) pair in the
# matcher's pair array. The payloads themselves stay alive in the matcher's payload tuple.
# One word in the node instead of an index into that tuple: a lookup reads no tuple slot.
DEF _EXACT = 1
DEF _PREFIX = 2
DEF _BOTH = 3


# Path bytes: 1 = pchar other than "%", 2 = "/", 3 = "?" (end of path), 0 = slow path.
cdef unsigned char _PATH_CLASS[256]
# Host bytes: 1 = [a-z0-9-], 2 = ".", 3 = [A-Z], 4 = ":", 0 = slow path.
cdef unsigned char _HOST_CLASS[256]
# 1 for the bytes of a normalised host name: [a-z0-9-.] (_HOST_CLASS 1 or 2).
cdef unsigned char _HOST_PLAIN[256]
cdef const unsigned char* _ROOT = <const unsigned char*>"/"
# _LOW_MASK[k]: the word whose first k bytes in memory are 0xFF, the others 0 (built through
# _load8, so it holds on either byte order): selects a label's bytes in an 8-byte read.
cdef uint64_t _LOW_MASK[9]
cdef _Group _NO_GROUP
_NO_GROUP.root = -1
_NO_GROUP.default = -1
# The one slot of an empty host table (mask 0): what a matcher's tables are until __init__
# builds them, so a lookup on a matcher made by Matcher.__new__ alone (or whose __init__
# failed) finds no host instead of reading through a NULL table.
cdef _HostEntry _EMPTY_SLOT
memset(&_EMPTY_SLOT, 0, sizeof(_HostEntry))
_EMPTY_SLOT.group = _NO_GROUP


cdef void _init_tables():
    cdef int c
    for c in range(256):
        _PATH_CLASS[c] = 0
        _HOST_CLASS[c] = 0
        _HOST_PLAIN[c] = 0
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@":
        _PATH_CLASS[c] = 1
    _PATH_CLASS[ord("/")] = 2
    _PATH_CLASS[ord("?")] = 3
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789-":
        _HOST_CLASS[c] = 1
        _HOST_PLAIN[c] = 1
    _HOST_PLAIN[ord(".")] = 1
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        _HOST_CLASS[c] = 3
    _HOST_CLASS[ord(".")] = 2
    _HOST_CLASS[ord(":")] = 4
    cdef unsigned char ones[8]
    for c in range(9):
        memset(ones, 0, 8)
        memset(ones, 0xFF, c)
        _LOW_MASK[c] = _load8(ones)


_init_tables()


cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    /* Ask for transparent huge pages on a big, 2 MiB-aligned array (Linux with THP in
       "madvise" mode): a lookup's nodes then cost no TLB miss. A no-op elsewhere. */
    static void ingresslib_hugepages(void* p, size_t size) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        (void)madvise(p, size, MADV_HUGEPAGE);
    #else
        (void)p; (void)size;
    #endif
    }
    """
    void ingresslib_hugepages(void* p, size_t size) nogil


cdef extern from *:
    """
    /* A read hint for the four cache lines from p on (a node's children block and what
       follows it); a no-op where the compiler has no prefetch builtin. A prefetch never
       faults, and the address is computed as an integer: it may lie past the node array. */
    static inline void ingresslib_prefetch_block(const void* p) {
    #if defined(__GNUC__) || defined(__clang__)
        uintptr_t a = (uintptr_t)p;
        __builtin_prefetch((const void*)a);
        __builtin_prefetch((const void*)(a + 64));
        __builtin_prefetch((const void*)(a + 128));
        __builtin_prefetch((const void*)(a + 192));
    #else
        (void)p;
    #endif
    }
    """
    void ingresslib_prefetch_block(const void* p) nogil


cdef extern from *:
    """
    /* The 16-byte loads below may read up to 15 bytes past a str's NUL (never past the page
       that holds the NUL, and no byte after the NUL decides anything: see the proof at the
       load). That is safe on the hardware but outside the object, so an AddressSanitizer
       (or MemorySanitizer) build, and any build given -DINGRESSLIB_NO_OVERREAD (e.g. for
       valgrind), leaves every byte to the byte loop: tests/sanitize.sh then checks the rest
       of the code with no report to explain away. */
    #if defined(__SANITIZE_ADDRESS__)
    #define INGRESSLIB_NO_OVERREAD 1
    #elif defined(__has_feature)
    #if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
    #define INGRESSLIB_NO_OVERREAD 1
    #endif
    #endif
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) \
        && !defined(INGRESSLIB_NO_OVERREAD)
    #include <emmintrin.h>
    #define INGRESSLIB_PLAIN_SIMD 1
    /* 0xFF where lo <= byte <= hi: shifted so that lo lands on -128, the range is one signed
       compare (SSE2 has no unsigned byte compare). */
    static inline __m128i ingresslib_in_range(__m128i v, int lo, int hi) {
        return _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - lo))),
                              _mm_set1_epi8((char)(-128 + hi - lo + 1)));
    }
    #endif
    /* _plain_from's common case, 16 bytes at a time with no branch that depends on where the
       "/" fall (the byte loop exits at each one: about one mispredicted branch a lookup).
       It only ever proves the answer True: 1, or -1 and *pi where the byte loop must go on,
       having vouched for every byte before *pi (and for "/" pairs that end before it). It
       leaves to the byte loop whatever is rare or subtle: a "/" followed by "/" or "."
       ("/.env" is fine, "/./" is not), the rare pchar "!$=@~", "%" and the bytes that are
       no pchar, a NUL before p[n], a block that would cross a page. */
    static inline int ingresslib_plain_simd(const unsigned char* p, Py_ssize_t n,
                                            Py_ssize_t* pi) {
    #if defined(INGRESSLIB_PLAIN_SIMD)
        const unsigned char* q = p + *pi;
        unsigned int carry = 0;            /* 1: the previous block ended with a "/" */
        for (;;) {
            __m128i v, good;
            unsigned int stop, counted, slash, slash_dot, after;
            Py_ssize_t t;
            /* The load may read past the str's NUL: harmless on x86 while it stays in the
               page that holds q (faults are per page). Why it stays there and decides
               nothing: q <= p + n (q starts at p + *pi, *pi <= n, and moves on only past 16
               good bytes, none of them the NUL at p[n]), so q lies inside the str and the
               test below keeps q[0..15] in q's page. The first byte that is not good is at
               or before p[n] (NUL is not good); only bytes before it ("counted"), and that
               byte itself (through "after", where it is no "/" nor "." since both are good),
               feed a decision; "carry" is read only when all 16 bytes were good. */
            if (((uintptr_t)q & 4095) > 4096 - 16)
                break;
            v = _mm_loadu_si128((const __m128i*)q);
            /* [&-;] (holds "-./0-9"), letters (& 0xDF folds a-z onto A-Z, and nothing else
               onto them), "_": all pchar. The first other byte is the path's end ("?" or
               NUL), or one for the byte loop. */
            good = _mm_or_si128(_mm_or_si128(
                ingresslib_in_range(v, 0x26, 0x3B),
                ingresslib_in_range(_mm_and_si128(v, _mm_set1_epi8((char)0xDF)), 'A', 'Z')),
                _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
            stop = ~(unsigned int)_mm_movemask_epi8(good);   /* bit 16 on: none in this block */
            counted = (stop - 1u) & ~stop;                   /* the bytes before the first */
            slash = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')));
            slash_dot = slash | (unsigned int)_mm_movemask_epi8(
                _mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
            after = (slash & counted) << 1 | carry;          /* the bytes right after a "/" */
            if (after & slash_dot)
                break;
            if (counted != 0xFFFFu) {
                /* p[n] is NUL: the end, unless it comes first at a NUL before n. */
                t = (q - p) + __builtin_ctz(stop);
                /* A "#" in the query is rejected like one in the path (a fragment is never
                   sent: RFC 9112 §3.2): only the byte loop's answer can say so. */
                if (t == n || (p[t] == '?' && memchr(p + t, '#', (size_t)(n - t)) == NULL))
                    return 1;
                break;
            }
            carry = slash >> 15;
            q += 16;
        }
        /* The byte loop redoes this block, from its last "/" before it if it ended one. */
        *pi = (q - p) - carry;
    #else
        (void)p; (void)n; (void)pi;
    #endif
        return -1;
    }
    """
    int ingresslib_plain_simd(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pi) nogil


# Arrays at least this big go on 2 MiB-aligned memory with huge pages (the padding is small
# next to them; a 10,000-rule table stays far below).
DEF _HUGE = 4 << 20
DEF _HUGE_ALIGN = 2 << 20


cdef void* _aligned(void** raw, size_t size) noexcept:  # with the GIL (PyMem)
    # 64-byte aligned block (portable: no posix_memalign on Windows); free(*raw) releases it.
    cdef uintptr_t align = _HUGE_ALIGN if size >= _HUGE else 64
    cdef void* p
    raw[0] = malloc(size + align)
    if raw[0] == NULL:
        return NULL
    p = <void*>((<uintptr_t>raw[0] + align - 1) & ~(align - 1))
    if size >= _HUGE:
        ingresslib_hugepages(p, size & ~(<size_t>_HUGE_ALIGN - 1))
    return p


cdef inline bint _ends_dot_segment(unsigned char c) noexcept nogil:
    return c == 47 or c == 63 or c == 59 or c == 0   # "/", "?", ";", end


cdef inline bint _plain_from(const unsigned char* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    # True when p[i:] up to "?" (or the end) is made of pchar other than "%" and "/" with no
    # "//" and no "." or ".." segment after a "/" (RFC 3986 §5.2.4), nor ".;" / "..;" ones,
    # where the checks that look at a "/" start at i. p[n] is the NUL every str buffer ends
    # with: _PATH_CLASS[0] == 0 stops the inner loop, so it needs no bounds test (an embedded
    # NUL also stops it, and is then rejected). The SSE2 pass proves most paths plain alone;
    # the loop below judges the rest, from where that pass stopped vouching.
    cdef unsigned char c
    if ingresslib_plain_simd(p, n, &i) == 1:
        return True
    while True:
        while _PATH_CLASS[p[i]] == 1:
            i += 1
        c = p[i]
        if c == 47:                        # "/": no "//", no "." or ".." segment after it
            i += 1
            c = p[i]
            if c == 47:
                return False
            if c == 46:
                c = p[i + 1]
                if _ends_dot_segment(c):
                    return False
                if c == 46 and _ends_dot_segment(p[i + 2]):
                    return False
        elif c == 63:                      # "?": the query starts, with no "#" in it
            return memchr(p + i, 35, n - i) == NULL
        else:
            return c == 0 and i == n


cdef inline bint _canonical_after(const unsigned char* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    # p[0] == "/" and p[:i] equals the bytes of a node boundary of the tree: the start of a
    # canonical key (every key in the tree is canonical, see __init__), cut between two
    # canonical characters (a node ends where keys fork or one ends). True when p, up to "?",
    # is then certainly canonical: _plain_from holds for the rest, re-read from the "/" of a
    # "//", "/." or "/.." that the cut may split ("/." is the start of "/.env" as well as of
    # "/./"). A cut inside an escape ("%" or "%X" before it) is left to the slow path.
    cdef unsigned char c
    if i > 0:
        c = p[i - 1]
        if c > 47:                         # not "%", ".", "/" (all below "0"): i >= 2
            if p[i - 2] == 37:
                return False
        elif c == 47:                      # "/" (i == 1 always ends here: p[0] == "/")
            i -= 1
        elif c == 46:                      # ".": i >= 2
            if p[i - 2] == 47:
                i -= 2
            elif p[i - 2] == 46 and p[i - 3] == 47:   # "..": i >= 3
                i -= 3
        elif c == 37:
            return False
    return _plain_from(p, n, i)


cdef inline const unsigned char* _label(const _Node* node,
                                       const unsigned char* pool) noexcept nogil:
    if node.label_len <= _INLINE:
        return node.label.chars
    return pool + node.label.off


cdef inline PyObject* _exact_of(uintptr_t t) noexcept nogil:
    if (t & _BOTH) == _EXACT:
        return <PyObject*>(t - _EXACT)
    return (<PyObject**>(t - _BOTH))[0]


cdef inline PyObject* _prefix_of(const _Node* node) noexcept nogil:
    # node: the deepest prefix match seen, or NULL.
    cdef uintptr_t t
    if node == NULL:
        return NULL
    t = node.payload
    if (t & _BOTH) == _PREFIX:
        return <PyObject*>(t - _PREFIX)
    return (<PyObject**>(t - _BOTH))[1]


cdef inline PyObject* _walk(const _Node* nodes, const unsigned char* firsts,
                            const unsigned char* pool, Py_ssize_t root,
                            const unsigned char* p, Py_ssize_t n, Py_ssize_t* stop) noexcept nogil:
    # The path is p[:n] up to its first "?" or NUL (p[n] is NUL). The payload (borrowed) of
    # the exact key == path, else of the longest prefix key k with path == k or path starting
    # with k + "/", else NULL; *stop: how many bytes of p matched whole node labels. No label
    # holds "?" or NUL (keys are canonical), so the walk never passes the path's end; an
    # embedded NUL ends it too, and _canonical_after then sends the path to the slow path.
    cdef const _Node* node = nodes + root
    cdef const _Node* best = NULL
    cdef const unsigned char* f
    cdef Py_ssize_t i = 0, k, m, hi, mid, length
    cdef uintptr_t t
    cdef unsigned char c
    while True:
        t = node.payload
        # The next node is one of this node's children, which a wide node's search or the
        # label test keeps the CPU from loading until they are done. Ask for the children
        # block now, and for the lines after it: in the depth-first layout they hold the
        # first children's own blocks, a level further down (benchmarks/README.md,
        # "Session 6": 18-25 ns less per lookup at 10,000 rules, 65-77 at 100,000).
        ingresslib_prefetch_block(nodes + node.first_child)
        c = p[i]
        if c <= 63:                        # (letters skip the three tests)
            if c == 47:
                if t & _PREFIX:
                    best = node
            elif c == 63 or c == 0:        # the end of the path
                stop[0] = i
                if t & _EXACT:
                    return _exact_of(t)
                if t & _PREFIX:
                    return _prefix_of(node)
                return _prefix_of(best)
        m = node.nchildren
        if m <= _FIRSTS:
            f = &node.firsts[0]
        else:
            f = firsts + node.first_child
        k = 0
        if m <= _SMALL:
            while k < m and f[k] < c:
                k += 1
        else:
            hi = m
            while k < hi:
                mid = (k + hi) >> 1
                if f[mid] < c:
                    k = mid + 1
                else:
                    hi = mid
        if k == m or f[k] != c:
            stop[0] = i
            return _prefix_of(best)
        node = nodes + node.first_child + k
        length = node.label_len
        if length <= 8 and n - i >= 7:
            # One masked word: p[i:i + 8] is readable (the NUL after the path included). A
            # label longer than the rest of the path meets that NUL, which no label holds.
            if (_load8(node.label.chars) ^ _load8(p + i)) & _LOW_MASK[length]:
                stop[0] = i
                return _prefix_of(best)
        # (The first byte matched in firsts.)
        elif n - i < length or not _eq(_label(node, pool) + 1, p + i + 1, length - 1):
            stop[0] = i
            return _prefix_of(best)
        i += length


cdef inline uint64_t _load8(const unsigned char* p) noexcept nogil:
    cdef uint64_t x
    memcpy(&x, p, 8)
    return x


cdef inline uint32_t _load4(const unsigned char* p) noexcept nogil:
    cdef uint32_t x
    memcpy(&x, p, 4)
    return x


cdef inline uint16_t _load2(const unsigned char* p) noexcept nogil:
    cdef uint16_t x
    memcpy(&x, p, 2)
    return x


cdef inline bint _eq(const unsigned char* a, const unsigned char* b, Py_ssize_t n) noexcept nogil:
    # memcmp(a, b, n) == 0 inline: host keys and labels are short, a libc call costs more.
    # Up to 24 bytes in at most three overlapping words and one test; the bytes after the last
    # whole word of a longer string as one word that overlaps the bytes already compared: no
    # byte loop, no read outside a[:n] and b[:n].
    cdef Py_ssize_t i = 0
    if n > 24:
        while i + 8 <= n:
            if _load8(a + i) != _load8(b + i):
                return False
            i += 8
        return i == n or _load8(a + n - 8) == _load8(b + n - 8)
    if n > 16:
        return ((_load8(a) ^ _load8(b)) | (_load8(a + 8) ^ _load8(b + 8))
                | (_load8(a + n - 8) ^ _load8(b + n - 8))) == 0
    if n >= 8:
        return ((_load8(a) ^ _load8(b)) | (_load8(a + n - 8) ^ _load8(b + n - 8))) == 0
    if n >= 4:
        return ((_load4(a) ^ _load4(b)) | (_load4(a + n - 4) ^ _load4(b + n - 4))) == 0
    if n >= 2:
        return ((_load2(a) ^ _load2(b)) | (_load2(a + n - 2) ^ _load2(b + n - 2))) == 0
    return n == 0 or a[0] == b[0]


cdef inline uint64_t _hash(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    # Up to 24 bytes (most host names) in at most three overlapping words, multiplied apart
    # (no chain from one word to the next); longer names word by word. A collision costs a
    # probe, never a wrong answer: a probe compares the bytes.
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n, a, b = 0, c = 0
    cdef Py_ssize_t i = 0
    if n > 24:
        while i + 8 <= n:
            h = (h ^ _load8(s + i)) * 0xFF51AFD7ED558CCDULL
            h ^= h >> 29
            i += 8
        a = _load8(s + n - 8)
    elif n > 16:
        a = _load8(s)
        b = _load8(s + 8)
        c = _load8(s + n - 8)
    elif n >= 8:
        a = _load8(s)
        b = _load8(s + n - 8)
    elif n >= 4:
        a = (<uint64_t>_load4(s) << 32) | _load4(s + n - 4)
    elif n >= 2:
        a = (<uint64_t>_load2(s) << 16) | _load2(s + n - 2)
    elif n == 1:
        a = s[0]
    else:
        a = 0
    h = (h ^ a) * 0xFF51AFD7ED558CCDULL + (b ^ 0xC2B2AE3D27D4EB4FULL) * 0x165667B19E3779F9ULL \
        + (c ^ 0x27D4EB2F165667C5ULL) * 0xC4CEB9FE1A85EC53ULL
    # The sum alone spreads names that differ in one digit badly (a probe table of
    # "svc-00001.example.com"... averaged 72 probes): a finalizer mixes every bit into the low
    # ones the table uses.
    h ^= h >> 33
    h *= 0xFF51AFD7ED558CCDULL
    return h ^ (h >> 33)


cdef inline const _HostEntry* _host_find(const _HostTable* t, const unsigned char* s,
                                         Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = _hash(s, n), i = h & t.mask
    cdef const _HostEntry* e
    while True:
        e = t.entries + i
        if e.group.root < 0:
            return NULL
        if e.hash == h and e.len == n and _eq(e.key, s, n):
            return e
        i = (i + 1) & t.mask


cdef inline const _Group* _host_group(const _HostTable* exact, const _HostTable* wild,
                                     const _Group* hostless, bint wild_plain,
                                     const unsigned char* h, Py_ssize_t n) noexcept nogil:
    # The group of the ASCII host h[:n] (0 < n <= _HOST_MAX, NUL after it), or NULL when it
    # needs normalising (upper case, ":port", trailing dot, odd bytes) or checking (an empty
    # label): _group_of_slow. Every host it answers for is one check_host takes ([a-z0-9-.],
    # no "..", or a rule's own name), so the lookups that end here pay no host check.
    cdef const _HostEntry* e
    cdef Py_ssize_t i = 0, j
    # A rule host is normalised (lower case, no port, no trailing dot), so a raw host equal
    # to one is already normalised: try it before scanning.
    e = _host_find(exact, h, n)
    if e != NULL:
        return &e.group
    # The first label, up to the first ".".
    while _HOST_CLASS[h[i]] == 1:
        i += 1
    if h[i] == 46 and i > 0 and wild_plain:
        # When the rest equals a wildcard key it is [a-z0-9-.] and does not end with ".",
        # like every wildcard key (wild_plain): the host is then normalised as it stands,
        # its exact probe above missed, and this is its wildcard group. Else the rest must
        # be normalised for both probes to be the final answer.
        j = i + 1
        if j < n:
            e = _host_find(wild, h + j, n - j)
            if e != NULL:
                return &e.group
        # (h[j - 1] is the "." at h[i] at first.) A ".." is an empty label, which check_host
        # refuses: the slow path raises for it (nginx's ngx_http_validate_host, 400).
        while _HOST_PLAIN[h[j]] and not (h[j] == 46 and h[j - 1] == 46):
            j += 1
        if j == n and h[n - 1] != 46:
            return hostless
        return NULL
    if i == n:
        return hostless                    # [a-z0-9-]+: normalised, no ".": no wildcard
    return NULL


cdef int _host_table(_HostTable* t, list rows, const unsigned char* arena) except -1:
    # rows: (key bytes, root, default, index); arena: the keys' bytes back to back.
    cdef uint64_t size = 8, i, h
    cdef Py_ssize_t off = 0, n
    cdef _HostEntry* e
    while size < 2 * <uint64_t>len(rows):
        size *= 2
    t.entries = <_HostEntry*>_aligned(&t.raw, size * sizeof(_HostEntry))
    if t.entries == NULL:
        raise MemoryError()
    memset(t.entries, 0, size * sizeof(_HostEntry))
    t.mask = size - 1
    for i in range(size):
        t.entries[i].group.root = -1
    for key, root, default, index in rows:
        n = len(key)
        h = _hash(arena + off, n)
        i = h & t.mask
        while t.entries[i].group.root >= 0:
            i = (i + 1) & t.mask
        e = t.entries + i
        e.hash = h
        e.group.root = root
        e.group.default = default
        e.len = n
        e.index = index
        if n <= _HOST_INLINE:
            memcpy(e.inline_key, arena + off, n)
            e.key = e.inline_key
        else:
            e.key = arena + off
        off += n
    return 0


cdef bint _tree_key(str path, bint prefix) except -1:
    # Whether a key goes into the tree: canonical_path(path) == path, or the prefix key ""
    # (the rule "/"). A key that is not canonical can never equal a canonical path, nor be
    # one cut before a "/", so it is left out; the lookup relies on it (path bytes equal to a
    # node's key bytes need no canonical check). Most keys pass the lookup's own check, read
    # in place (no regex, no allocation), and never reach is_canonical.
    cdef const unsigned char* p
    cdef Py_ssize_t n
    PyUnicode_READY(path)
    n = PyUnicode_GET_LENGTH(path)
    if n == 0:
        return prefix
    if not PyUnicode_IS_ASCII(path):
        return False
    p = <const unsigned char*>PyUnicode_DATA(path)
    if p[0] != 47:
        return False
    if memchr(p, 63, n) == NULL and _plain_from(p, n, 0):
        return True
    return _is_canonical(path)


cdef bytes _exact_bytes(object b):
    # An exact bytes object with b's bytes (str.encode of a str subclass may return a bytes
    # subclass, whose len() could run Python code while the matcher is half published).
    if type(b) is bytes:
        return b
    if not isinstance(b, bytes):
        raise TypeError(f"a host must encode to bytes, not {type(b).__name__}")
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef bint _plain_host(bytes key) except -1:
    # A wildcard key that is a normalised name as it stands: [a-z0-9-.]+, no empty label (no
    # leading or trailing ".", no ".."), so that "label." + key is a host check_host takes.
    cdef const unsigned char* k = key
    cdef Py_ssize_t i, n = len(key)
    if n == 0 or k[0] == 46 or k[n - 1] == 46:
        return False
    for i in range(n):
        if not _HOST_PLAIN[k[i]] or (k[i] == 46 and k[i - 1] == 46):
            return False
    return True


cdef inline bint _port_ok(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # p[:n] (what follows a Host's ":") is 1-5 digits naming a port in 1-65535, as
    # _normalize.host_problem requires; else the caller lets check_host raise.
    cdef Py_ssize_t i
    cdef uint32_t port = 0
    if n < 1 or n > 5:
        return False
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return False
        port = port * 10 + (p[i] - 48)
    return 0 < port <= 65535


# The constructor builds every tree in C from these (no Python object per node or label).

ctypedef struct _Key:                  # a tree key of one group
    const unsigned char* s             # the key str's ASCII buffer (the str is kept alive)
    Py_ssize_t n
    PyObject* exact                    # payloads, borrowed (kept alive); NULL: none
    PyObject* prefix
    Py_ssize_t order                   # arrival: of two equal keys the later one wins

ctypedef struct _Keys:                 # a growing array of _Key
    _Key* items
    Py_ssize_t n
    Py_ssize_t cap
    Py_ssize_t nbytes                  # the keys' bytes in all: a bound for the label pool

ctypedef struct _Span:                 # a node whose children are still to be made: it covers
    Py_ssize_t node                    # keys[lo:hi], which all start with keys[lo].s[:depth]
    Py_ssize_t lo
    Py_ssize_t hi
    Py_ssize_t depth


cdef int _add_key(_Keys* keys, str path, object payload, bint prefix) except -1:
    # path: a tree key (_tree_key), so an ASCII str whose buffer is its bytes.
    cdef _Key* k
    if PyUnicode_GET_LENGTH(path) > _MAX_KEY:
        # A node's label length is 16 bits: a longer label would be stored wrongly, so such a
        # table is refused (RouteTable then uses the pure twin; see Matcher.max_key_length).
        raise ValueError(f"a path of {PyUnicode_GET_LENGTH(path)} bytes: the compiled matcher "
                         f"takes paths of at most {_MAX_KEY} bytes")
    if keys.n == keys.cap:
        keys.cap = max(2 * keys.cap, 64)
        k = <_Key*>realloc(keys.items, keys.cap * sizeof(_Key))
        if k == NULL:
            raise MemoryError()
        keys.items = k
    k = keys.items + keys.n
    k.s = <const unsigned char*>PyUnicode_DATA(path)
    k.n = PyUnicode_GET_LENGTH(path)
    k.exact = NULL if prefix else <PyObject*>payload
    k.prefix = <PyObject*>payload if prefix else NULL
    k.order = keys.n
    keys.n += 1
    keys.nbytes += k.n
    return 0


cdef int _key_cmp(const void* a, const void* b) noexcept nogil:
    # The keys' bytes in bytes order, then arrival.
    cdef const _Key* x = <const _Key*>a
    cdef const _Key* y = <const _Key*>b
    cdef int c = memcmp(x.s, y.s, min(x.n, y.n))
    if c != 0:
        return c
    if x.n != y.n:
        return -1 if x.n < y.n else 1
    return -1 if x.order < y.order else 1


cdef Py_ssize_t _sort_keys(_Key* keys, Py_ssize_t n) noexcept nogil:
    # Sorts keys[:n] and merges equal keys (an exact and a prefix rule on one path; the later
    # payload of a kind wins, as in a dict) into the first of them; returns how many remain.
    cdef Py_ssize_t i, m = 0
    if n == 0:
        return 0
    qsort(keys, n, sizeof(_Key), _key_cmp)
    for i in range(1, n):
        if keys[i].n == keys[m].n and memcmp(keys[i].s, keys[m].s, keys[m].n) == 0:
            if keys[i].exact != NULL:
                keys[m].exact = keys[i].exact
            if keys[i].prefix != NULL:
                keys[m].prefix = keys[i].prefix
        else:
            m += 1
            keys[m] = keys[i]
    return m + 1


cdef inline Py_ssize_t _lcp(const _Key* a, const _Key* b, Py_ssize_t i) noexcept nogil:
    # The length of the common prefix of two keys known to share their first i bytes.
    cdef Py_ssize_t n = min(a.n, b.n)
    while i < n and a.s[i] == b.s[i]:
        i += 1
    return i


cdef Py_ssize_t _build_tree(const _Key* keys, Py_ssize_t start, Py_ssize_t stop,
                            _Node* nodes, Py_ssize_t n_nodes, unsigned char* firsts,
                            unsigned char* pool, Py_ssize_t* n_pool, _Span* stack) noexcept nogil:
    # Writes the tree of the sorted, distinct keys[start:stop] from nodes[n_nodes] on (zeroed)
    # and returns the new node count: at most 2 * (stop - start) + 1, as every node but the
    # root holds a key or branches; stack has room for as many. Labels longer than _INLINE
    # are appended to pool (at *n_pool) in node order; a label is a slice of the first key
    # its node covers, and the slices cut from one key do not overlap, so the pool needs no
    # more than the keys' bytes. A node's payload word is left as its key's index + 1 (0: no
    # key), for _build_nodes to resolve.
    # Depth first over children blocks: a node's children are contiguous (one block, right
    # after the block of its previous sibling's subtree), and a path's nodes are near each
    # other.
    cdef Py_ssize_t top = 1, lo, hi, i, j, m, depth, end, length
    cdef _Span* span
    cdef _Span tmp
    cdef _Node* node
    cdef _Node* child
    cdef const _Key* k
    cdef unsigned char c
    firsts[n_nodes] = 0
    stack[0].node = n_nodes
    stack[0].lo = start
    stack[0].hi = stop
    stack[0].depth = 0
    n_nodes += 1
    while top > 0:
        top -= 1
        node = nodes + stack[top].node
        lo = stack[top].lo
        hi = stack[top].hi
        depth = stack[top].depth
        # Only keys[lo] can be exactly depth long: the node's own key.
        if lo < hi and keys[lo].n == depth:
            node.payload = lo + 1
            lo += 1
        node.first_child = n_nodes
        m = 0
        i = lo
        while i < hi:
            # The child for the next first byte c covers keys[i:j], which share k.s[:end].
            k = keys + i
            c = k.s[depth]
            j = i + 1
            while j < hi and keys[j].s[depth] == c:
                j += 1
            end = _lcp(k, keys + j - 1, depth + 1)
            length = end - depth
            child = nodes + n_nodes
            child.label_len = length
            if length <= _INLINE:
                memcpy(child.label.chars, k.s + depth, length)
            else:
                child.label.off = n_pool[0]
                memcpy(pool + n_pool[0], k.s + depth, length)
                n_pool[0] += length
            firsts[n_nodes] = c
            if m < _FIRSTS:
                node.firsts[m] = c
            span = stack + top + m
            span.node = n_nodes
            span.lo = i
            span.hi = j
            span.depth = end
            n_nodes += 1
            m += 1
            i = j
        node.nchildren = m
        if m > _FIRSTS:
            memset(node.firsts, 0, _FIRSTS)    # unused: the parallel array serves wide nodes
        # Reversed on the stack, so the first child's subtree gets the next block.
        for i in range(m // 2):
            tmp = stack[top + i]
            stack[top + i] = stack[top + m - 1 - i]
            stack[top + m - 1 - i] = tmp
        top += m
    return n_nodes


cdef class Matcher:
    #: The longest path (in bytes) a rule may have here: a node's label length is 16 bits.
    max_key_length = _MAX_KEY

    cdef _Node* _nodes
    cdef void* _nodes_raw
    cdef unsigned char* _labels
    cdef unsigned char* _firsts
    cdef PyObject** _pairs             # (exact, prefix) per node with both, in node order
    cdef Py_ssize_t _n_pairs
    cdef unsigned char* _host_keys
    cdef _HostTable _exact_hosts
    cdef _HostTable _wild_hosts
    cdef _Group _hostless
    cdef bint _wild_plain              # every wildcard key: [a-z0-9-.]+, not ending in "."
    cdef Py_ssize_t _n_nodes
    cdef Py_ssize_t _n_labels
    cdef tuple _roots
    cdef tuple _payloads
    cdef object _default
    cdef bint _initialised             # __init__ has started (it runs once)

    def __cinit__(self):
        self._nodes = NULL
        self._nodes_raw = NULL
        self._labels = NULL
        self._firsts = NULL
        self._pairs = NULL
        self._n_pairs = 0
        self._host_keys = NULL
        # A valid empty matcher (every lookup answers the default, None) until __init__ has
        # built and published its tables.
        self._exact_hosts.entries = &_EMPTY_SLOT
        self._exact_hosts.raw = NULL
        self._exact_hosts.mask = 0
        self._wild_hosts.entries = &_EMPTY_SLOT
        self._wild_hosts.raw = NULL
        self._wild_hosts.mask = 0
        self._hostless = _NO_GROUP
        self._wild_plain = False
        self._n_nodes = 0
        self._n_labels = 0
        self._roots = ()
        self._payloads = ()
        self._default = None
        self._initialised = False

    def __dealloc__(self):
        free(self._nodes_raw)
        free(self._labels)
        free(self._firsts)
        free(self._pairs)
        free(self._host_keys)
        free(self._exact_hosts.raw)
        free(self._wild_hosts.raw)

    def __init__(self, groups, default=None):
        # Every group's tree keys go into one C array (validated as they come), each group's
        # tree is then written in C into scratch arrays (_build_tree), and the final arrays
        # get their exact sizes (_build_nodes).
        # Memory safety: the nodes hold borrowed payload pointers, and a lookup reaches nodes
        # only through the host tables and the host-less group. So those are published last,
        # after the payload tuple that keeps the payloads alive, and nothing between runs
        # Python code; until then (and forever, if this raises) the matcher is the empty one
        # of __cinit__. Running __init__ again would free arrays a published table points
        # into: it is refused.
        if self._initialised:
            raise TypeError("Matcher.__init__ runs once: build a new Matcher instead")
        self._initialised = True
        cdef _Keys keys
        cdef list keep = []          # what the key array borrows: key strs and payloads
        cdef list spans = []         # per group: (lo, hi, host, default, index); keys[lo:hi]
        cdef list payloads = []
        cdef list exact_hosts = []   # (key, root, default, index)
        cdef list wild_hosts = []
        cdef list roots = []
        cdef _Group hostless = _NO_GROUP
        cdef _Node* nodes = NULL
        cdef unsigned char* firsts = NULL
        cdef unsigned char* pool = NULL
        cdef _Span* stack = NULL
        cdef Py_ssize_t lo, hi, bound, n_nodes = 0, n_pool = 0
        keys.items = NULL
        keys.n = keys.cap = keys.nbytes = 0
        seen = set()
        try:
            for index, (host, exact, prefix, group_default) in enumerate(groups):
                if host in seen:
                    raise ValueError(f"duplicate host group {host!r}")
                seen.add(host)
                lo = keys.n
                for is_prefix, mapping in ((False, exact), (True, prefix)):
                    for path, payload in mapping.items():
                        if _tree_key(path, is_prefix):
                            _add_key(&keys, path, payload, is_prefix)
                            keep.append(path)
                            keep.append(payload)
                spans.append((lo, keys.n, host, group_default, index))
            bound = len(spans) + 2 * keys.n          # nodes (see _build_tree)
            if bound > _INDEX_MAX or keys.nbytes > _INDEX_MAX:
                # Node indexes (first_child, roots) and label pool offsets are 32 bits: past
                # that they would wrap, and a lookup would read outside the arrays.
                raise ValueError(f"{bound} nodes, {keys.nbytes} bytes of rule paths: the compiled "
                                 f"matcher's 32-bit indexes hold at most {_INDEX_MAX} of each")
            nodes = <_Node*>malloc(max(bound, 1) * sizeof(_Node))
            firsts = <unsigned char*>malloc(max(bound, 1))
            stack = <_Span*>malloc(max(bound, 1) * sizeof(_Span))
            pool = <unsigned char*>malloc(max(keys.nbytes, 1))
            if nodes == NULL or firsts == NULL or stack == NULL or pool == NULL:
                raise MemoryError()
            memset(nodes, 0, max(bound, 1) * sizeof(_Node))
            for lo, hi, host, group_default, index in spans:
                roots.append(n_nodes)
                hi = lo + _sort_keys(keys.items + lo, hi - lo)
                n_nodes = _build_tree(keys.items, lo, hi, nodes, n_nodes, firsts, pool, &n_pool,
                                      stack)
            self._build_nodes(nodes, n_nodes, firsts, pool, n_pool, keys.items, payloads)
        finally:
            free(keys.items)
            free(nodes)
            free(firsts)
            free(stack)
            free(pool)
        for root, (lo, hi, host, group_default, index) in zip(roots, spans):
            gdefault = -1
            if group_default is not None:
                gdefault = len(payloads)
                payloads.append(group_default)
            if host is None:
                hostless.root = root
                hostless.default = gdefault
            elif host.startswith("*."):
                wild_hosts.append((_exact_bytes(host[2:].encode("utf-8", "surrogatepass")),
                                   root, gdefault, index))
            else:
                exact_hosts.append((_exact_bytes(host.encode("utf-8", "surrogatepass")),
                                    root, gdefault, index))
        # Publish: from here on no Python code runs (the rows hold exact bytes), and what a
        # published table reaches is already alive.
        self._roots = tuple(roots)
        self._payloads = tuple(payloads)
        self._default = default
        self._build_hosts(exact_hosts, wild_hosts)
        self._hostless = hostless

    cdef _build_hosts(self, list exact_hosts, list wild_hosts):
        # The rows' keys are exact bytes (_exact_bytes): nothing here runs Python code. Each
        # table is built aside and published whole.
        cdef bytes arena = b"".join([row[0] for row in exact_hosts + wild_hosts])
        cdef Py_ssize_t exact_len = 0
        cdef _HostTable exact, wild
        exact.entries = wild.entries = NULL
        exact.raw = wild.raw = NULL
        for row in exact_hosts + wild_hosts:
            if PyBytes_GET_SIZE(row[0]) > _INDEX_MAX:     # _HostEntry.len is an int32_t
                raise ValueError("a host name longer than the compiled matcher takes")
        for row in exact_hosts:
            exact_len += PyBytes_GET_SIZE(row[0])
        self._host_keys = <unsigned char*>malloc(max(PyBytes_GET_SIZE(arena), 1))
        if self._host_keys == NULL:
            raise MemoryError()
        memcpy(self._host_keys, <const char*>arena, PyBytes_GET_SIZE(arena))
        try:
            _host_table(&exact, exact_hosts, self._host_keys)
            _host_table(&wild, wild_hosts, self._host_keys + exact_len)
        except BaseException:
            free(exact.raw)
            free(wild.raw)
            raise
        self._wild_plain = all([_plain_host(row[0]) for row in wild_hosts])
        self._exact_hosts = exact
        self._wild_hosts = wild

    cdef _build_nodes(self, const _Node* nodes, Py_ssize_t n, const unsigned char* firsts,
                      const unsigned char* labels, Py_ssize_t n_labels, const _Key* keys,
                      list payloads):
        # The final arrays from _build_tree's, at their exact sizes, with each node's payload
        # word resolved from its key. payloads gets the payloads in node order (exact first):
        # it becomes the payload tuple, which keeps them alive (the nodes hold borrowed
        # pointers).
        cdef Py_ssize_t i, npairs = 0, pair = 0
        cdef const _Key* k
        cdef _Node* node
        cdef PyObject* obj
        cdef uintptr_t addr
        for i in range(n):
            if nodes[i].payload:
                k = keys + nodes[i].payload - 1
                if k.exact != NULL and k.prefix != NULL:
                    npairs += 1
        self._pairs = <PyObject**>malloc(max(npairs, 1) * 2 * sizeof(PyObject*))
        if self._pairs == NULL:
            raise MemoryError()
        self._n_pairs = npairs
        self._nodes = <_Node*>_aligned(&self._nodes_raw, max(n, 1) * sizeof(_Node))
        self._labels = <unsigned char*>malloc(max(n_labels, 1))
        self._firsts = <unsigned char*>malloc(max(n, 1))
        if self._nodes == NULL or self._labels == NULL or self._firsts == NULL:
            raise MemoryError()
        memset(self._nodes, 0, sizeof(_Node))     # the one node of an empty matcher
        memcpy(self._nodes, nodes, n * sizeof(_Node))
        memcpy(self._labels, labels, n_labels)
        memcpy(self._firsts, firsts, n)
        for i in range(n):
            node = &self._nodes[i]
            if node.payload == 0:
                continue
            k = keys + node.payload - 1
            if k.exact != NULL and k.prefix != NULL:
                self._pairs[2 * pair] = k.exact
                self._pairs[2 * pair + 1] = k.prefix
                node.payload = <uintptr_t>&self._pairs[2 * pair] | _BOTH
                pair += 1
                payloads.append(<object>k.exact)
                payloads.append(<object>k.prefix)
            else:
                obj = k.exact if k.exact != NULL else k.prefix
                addr = <uintptr_t>obj
                if addr & _BOTH:
                    raise SystemError("a payload object is not 4-byte aligned")
                node.payload = addr | (_EXACT if k.exact != NULL else _PREFIX)
                payloads.append(<object>obj)
        self._n_nodes = n
        self._n_labels = n_labels

    cdef const _Group* _group_of_slow(self, str host) except NULL:
        # Any host _host_group declined: upper case, ":port", a trailing dot (in one scan, into
        # a buffer), else check_host (raises BadRequestError for a Host the proxy refuses) then
        # normalize_host ("[", non-ASCII, odd bytes, very long names). The scan takes only
        # hosts check_host takes ([A-Za-z0-9-.], no "..", a valid port, something before the
        # port): any doubt goes to check_host, the one rule, which raises or lets it through.
        cdef const unsigned char* h
        cdef unsigned char buf[_HOST_MAX]
        cdef unsigned char k
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(host), i, end, dot = -1
        cdef bint upper = False
        cdef bytes encoded
        if PyUnicode_IS_ASCII(host) and n <= _HOST_MAX:
            h = <const unsigned char*>PyUnicode_DATA(host)
            end = n
            for i in range(n):
                k = _HOST_CLASS[h[i]]
                if k == 1:
                    continue
                if k == 2:
                    if i > 0 and h[i - 1] == 46:
                        end = -1           # an empty label: check_host
                        break
                    if dot < 0:
                        dot = i
                elif k == 3:
                    upper = True
                elif k == 4:
                    end = i if _port_ok(h + i + 1, n - i - 1) else -1
                    break
                else:
                    end = -1
                    break
            if end > 0 and h[end - 1] == 46:
                end -= 1
            # (end == 0: nothing before the port or the one dot, ":80", ".": check_host.)
            if end > 0:
                if upper:
                    for i in range(end):
                        buf[i] = h[i] + 32 if _HOST_CLASS[h[i]] == 3 else h[i]
                    h = buf
                if dot >= end:
                    dot = -1
                return self._group_of_name(h, end, dot, end == n and not upper)
        _check_host(host)
        name = _normalize_host(host)
        if name is None or name.startswith("["):
            # Empty, or an IPv6 literal: it "never equal[s] a rule host".
            return &self._hostless
        encoded = name.encode("utf-8", "surrogatepass")
        return self._group_of_name(<const unsigned char*><const char*>encoded, len(encoded),
                                   encoded.find(b"."), False)

    cdef const _Group* _group_of_name(self, const unsigned char* h, Py_ssize_t n,
                                      Py_ssize_t dot, bint raw) noexcept nogil:
        # h[:n] is a normalised host; dot: its first "." (or -1); raw: h is the request's
        # host itself, which the exact table already missed.
        cdef const _HostEntry* e
        if not raw:
            e = _host_find(&self._exact_hosts, h, n)
            if e != NULL:
                return &e.group
        # "*.foo.com matches bar.foo.com, not foo.com, not a.bar.foo.com": one non-empty label.
        if 0 < dot < n:
            e = _host_find(&self._wild_hosts, h + dot + 1, n - dot - 1)
            if e != NULL:
                return &e.group
        return &self._hostless

    cdef object _lookup_slow(self, str path, const _Group* g):
        # A path _canonical_after could not vouch for: its canonical form, or BadRequestError.
        cdef Py_ssize_t stop
        cdef PyObject* found
        canon = _split_target(path)[0] or "/"
        if canon != "/":
            canon = _canonical_path(canon)
        if g.root < 0:
            return self._default
        # A canonical path is ASCII: its buffer is one byte per character, then a NUL.
        found = _walk(self._nodes, self._firsts, self._labels, g.root,
                      <const unsigned char*>PyUnicode_DATA(canon), PyUnicode_GET_LENGTH(canon),
                      &stop)
        return self._result(found, g)

    cdef inline object _result(self, PyObject* found, const _Group* g):
        if found != NULL:
            return <object>found
        if g.default < 0:
            return None
        return <object>PyTuple_GET_ITEM(self._payloads, g.default)

    def lookup(self, str host not None, str path not None):
        """``table.match(host, path)``: the route of one request.

        ``host`` is the Host header as sent (any case, an optional ``:port``, ``[v6]``);
        ``path`` the request target's path, with its query if any. Returns the payload of the
        rule that matches (longest path wins), else that host's default, else the table's
        default, else None: in a ``RouteTable`` a :class:`Match`. Raises ``BadRequestError``
        (``status_hint`` 400) for a Host the proxy refuses (``_normalize.check_host``: a space,
        ``/``, ``@``, a bad port, an empty label...; ``""`` is no host) and for a path with no
        canonical form (SEMANTICS §5), the host first."""
        # Host first (SEMANTICS §4; a Host the proxy refuses raises BadRequestError in
        # _group_of_slow), then one walk over the raw path; a path that is not certainly
        # canonical goes to _lookup_slow, which raises or canonicalises it, whatever the
        # (valid) host ("regardless of host").
        cdef Py_ssize_t n, stop
        cdef PyObject* found
        cdef const unsigned char* p
        cdef const _Group* g
        PyUnicode_READY(host)
        n = PyUnicode_GET_LENGTH(host)
        g = NULL
        if n == 0:
            g = &self._hostless
        elif PyUnicode_IS_ASCII(host) and n <= _HOST_MAX:
            g = _host_group(&self._exact_hosts, &self._wild_hosts, &self._hostless,
                            self._wild_plain, <const unsigned char*>PyUnicode_DATA(host), n)
        if g == NULL:
            g = self._group_of_slow(host)
        PyUnicode_READY(path)
        n = PyUnicode_GET_LENGTH(path)
        if n == 0:
            # "" means "/".
            if g.root < 0:
                return self._default
            return self._result(_walk(self._nodes, self._firsts, self._labels, g.root,
                                      _ROOT, 1, &stop), g)
        if PyUnicode_KIND(path) == 1:
            p = <const unsigned char*>PyUnicode_DATA(path)
            if p[0] == 47:
                if g.root < 0:
                    if _plain_from(p, n, 0):
                        return self._default
                else:
                    found = _walk(self._nodes, self._firsts, self._labels, g.root, p, n, &stop)
                    if _canonical_after(p, n, stop):
                        if found != NULL:
                            return <object>found
                        if g.default < 0:
                            return None
                        return <object>PyTuple_GET_ITEM(self._payloads, g.default)
        return self._lookup_slow(path, g)

    def _host_probes(self):
        """(mean, max) probes that finding each rule host takes in its table (tests only)."""
        cdef uint64_t k, home
        cdef _HostTable* t
        total = count = longest = 0
        for which in range(2):
            t = &self._exact_hosts if which == 0 else &self._wild_hosts
            for k in range(t.mask + 1):
                if t.entries[k].group.root >= 0:
                    home = t.entries[k].hash & t.mask
                    probes = ((k - home) & t.mask) + 1
                    total += probes
                    count += 1
                    longest = max(longest, probes)
        return (total / count if count else 0.0), longest

    def _check_invariants(self):
        """Raise AssertionError unless the flattened trees are well formed (tests only)."""
        cdef Py_ssize_t i, k, c
        cdef uintptr_t w
        cdef _Node* node
        cdef _HostTable* t
        seen = [0] * self._n_nodes
        npay = len(self._payloads)
        # Every payload a node points to is held by the payload tuple, once.
        held = {id(x): 0 for x in self._payloads}
        pairs_seen = 0
        roots = set(self._roots)
        # The node index where each node's group ends: a group's nodes are contiguous.
        ends = list(self._roots[1:]) + [self._n_nodes]
        group_end = [0] * self._n_nodes
        for k in range(len(self._roots)):
            for i in range(self._roots[k], ends[k]):
                group_end[i] = ends[k]
        assert sizeof(_Node) == 32, "a node is not half a cache line"
        assert len(roots) == len(self._roots), "groups share a root"
        assert list(self._roots) == sorted(roots), "groups out of order"
        assert not self._roots or self._roots[0] == 0, "nodes before the first group"
        for which in range(2):
            t = &self._exact_hosts if which == 0 else &self._wild_hosts
            for k in range(<Py_ssize_t>t.mask + 1):
                if t.entries[k].group.root >= 0:
                    assert t.entries[k].group.root in roots, "host entry without a root"
                    assert t.entries[k].hash == _hash(t.entries[k].key, t.entries[k].len)
        for i in range(self._n_nodes):
            node = &self._nodes[i]
            w = node.payload
            if w:
                if (w & _BOTH) == _BOTH:
                    c = (w - _BOTH - <uintptr_t>self._pairs) // sizeof(PyObject*)
                    assert c == 2 * pairs_seen, f"node {i}: pair out of order"
                    pairs_seen += 1
                    ids = [<uintptr_t>self._pairs[c], <uintptr_t>self._pairs[c + 1]]
                else:
                    assert w & _BOTH, f"node {i}: untagged payload"
                    ids = [w & ~<uintptr_t>_BOTH]
                for x in ids:
                    assert x in held, f"node {i}: payload not held"
                    held[x] += 1
            assert node.first_child + node.nchildren <= self._n_nodes, f"node {i}: children"
            if node.label_len > _INLINE:
                assert 0 <= node.label.off <= self._n_labels - node.label_len, f"node {i}: label"
            if i in roots:
                assert node.label_len == 0, f"root {i} has a label"
                assert self._firsts[i] == 0, f"root {i}: first byte"
            else:
                assert node.label_len > 0, f"node {i}: empty label"
                assert self._firsts[i] == _label(node, self._labels)[0], f"node {i}: first byte"
                # Compressed: a node without a payload exists only to branch.
                assert node.payload != 0 or node.nchildren >= 2, (
                    f"node {i}: one child and no payload")
            firsts = [self._firsts[k]
                      for k in range(node.first_child, node.first_child + node.nchildren)]
            assert firsts == sorted(set(firsts)), f"node {i}: children unsorted or duplicated"
            if node.nchildren <= _FIRSTS:
                assert [node.firsts[k] for k in range(node.nchildren)] == firsts, (
                    f"node {i}: inline first bytes")
            for k in range(node.first_child, node.first_child + node.nchildren):
                assert k not in roots and k > i, f"node {i}: child {k} out of order"
                assert k < group_end[i], f"node {i}: child {k} in another group"
                seen[k] += 1
        for i in range(self._n_nodes):
            assert seen[i] == (0 if i in roots else 1), f"node {i} reached {seen[i]} times"
        assert pairs_seen == self._n_pairs, "unused pairs"
        assert sum(held.values()) <= npay, "a payload held once, pointed to twice"
