"""htpasswd password hashes, as nginx's ``auth_basic_user_file`` accepts them, verified with
the standard library only.

ngx_http_auth_basic_module: "The following password types are supported: encrypted with the
crypt() function ...; hashed with the Apache variant of the MD5-based password algorithm
(apr1); specified by the "{scheme}data" syntax (1.0.3+) as described in RFC 2307; currently
implemented schemes include PLAIN (an example one, should not be used), SHA (1.3.13) (plain
SHA-1 hashing, should not be used) and SSHA (salted SHA-1 hashing...)". Verified here:
``{PLAIN}``, ``{SHA}``, ``{SSHA}``, ``$apr1$`` and ``$1$`` (MD5-crypt, Poul-Henning Kamp's
algorithm; apr1 differs by its magic string only), ``$5$`` and ``$6$`` (SHA-crypt, Ulrich
Drepper's "Unix crypt using SHA-256 and SHA-512" specification), and traditional DES crypt
(13 characters, ``htpasswd -d``, ``openssl passwd -crypt``: ngx_crypt hands every other format
to crypt(3), ``ngx_libc_crypt``, and musl's crypt reads one without ``$`` as DES). Anything
else (bcrypt ``$2y$``, yescrypt ``$y$``, BSDi's extended DES ``_...``) is ``None``: not
verifiable here, so the user is refused (never accepted), with a warning where the Secret is
read.

Every comparison of a computed hash with the stored one is ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["verify", "supported", "hashes", "rounds_over_limit", "md5_crypt", "sha_crypt",
           "des_crypt",
           "SHA_KEY_MAX", "MD5_KEY_MAX", "ROUNDS_LIMIT"]

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(value: int, n: int) -> str:
    out = []
    for _ in range(n):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)


def md5_crypt(password: bytes, salt: str, magic: str = "$1$") -> str:
    """MD5-crypt (FreeBSD ``crypt-md5.c``; Apache's apr1 with ``magic="$apr1$"``)."""
    salt = salt[:8]
    s = salt.encode("ascii")
    m = magic.encode("ascii")
    alt = hashlib.md5(password + s + password).digest()
    ctx = hashlib.md5(password + m + s)
    n = len(password)
    while n > 0:
        ctx.update(alt[:min(16, n)])
        n -= 16
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = hashlib.md5(password if i & 1 else final)
        if i % 3:
            c.update(s)
        if i % 7:
            c.update(password)
        c.update(final if i & 1 else password)
        final = c.digest()
    f = final
    out = "".join(_to64((f[a] << 16) | (f[b] << 8) | f[c], 4)
                  for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)))
    return f"{magic}{salt}${out}{_to64(f[11], 2)}"


# Drepper's specification: the byte order of the final encoding, per algorithm.
_SHA256_ORDER = [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5),
                 (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)]
_SHA512_ORDER = [(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
                 (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10),
                 (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57),
                 (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41)]
#: musl's (src/crypt/crypt_sha256.c, crypt_sha512.c: "#define ROUNDS_DEFAULT 5000", "#define
#: ROUNDS_MIN 1000", "#define ROUNDS_MAX 9999999"; "if (u < ROUNDS_MIN) r = ROUNDS_MIN; else if
#: (u > ROUNDS_MAX) return 0;": a count over the maximum is "*", never a match). glibc clamps
#: at 999,999,999 instead; ingress-nginx's nginx is musl's.
_ROUNDS_DEFAULT, _ROUNDS_MIN, _ROUNDS_MAX = 5000, 1000, 9_999_999
#: The most rounds verified here, far below musl's 9,999,999: a ``$6$`` round costs ~0.6 µs of
#: Python (glibc's C crypt ~0.25 µs; benchmarks/bench_basicauth.py), in a worker thread of the
#: proxy (``Offload``) but holding the GIL, so the event loop keeps about a third of its pace;
#: and EVERY client can make it hash, a wrong password each time (only the verdict is
#: remembered, per password): 9,999,999 rounds would slow all traffic ~6 s per guess, passlib's
#: default 656,000 ~0.4 s. 20,000 rounds cost ~12 ms. Past this the user is refused (``verify``
#: -> None), with a warning naming the rounds where the Secret is read (``rounds_over_limit``).
ROUNDS_LIMIT = 20_000
#: The longest password crypt(3) hashes, as ingress-nginx's nginx has it: its image is Alpine's
#: (kubernetes/ingress-nginx images/nginx/README.md: "NGINX base image using alpine"), whose musl
#: crypt refuses longer keys "for DoS protection" (src/crypt/crypt_sha256.c and crypt_sha512.c:
#: "#define KEY_MAX 256", "runtime is O(klen^2 + klen*rounds)"; crypt_md5.c: "#define KEY_MAX
#: 30000") with "*", which never equals a stored hash. The CLIENT picks the password, so here
#: it is refused before any hashing: unbounded, one header line's password (~6 KB with the
#: default 8k buffers) hashed ~92 MB, ~0.5 s of Python per guess at a ``$6$`` user.
#: nginx's own ``$apr1$`` (ngx_crypt_apr1) has no such limit; its cost is linear.
SHA_KEY_MAX, MD5_KEY_MAX = 256, 30_000


def sha_crypt(password: bytes, setting: str) -> str | None:
    """SHA-crypt (``$5$`` SHA-256, ``$6$`` SHA-512) of ``password`` with ``setting``
    (``$5$[rounds=N$]salt[$...]``), Drepper's specification steps; None when the setting is
    not one (or asks for more than ROUNDS_LIMIT rounds)."""
    parsed = _sha_setting(setting)
    if parsed is None:
        return None
    rounds, custom, salt_s = parsed
    if setting.startswith("$5$"):
        algo, size, order = hashlib.sha256, 32, _SHA256_ORDER
    else:
        algo, size, order = hashlib.sha512, 64, _SHA512_ORDER
    magic = setting[:3]
    salt = salt_s.encode("ascii")
    pw = password
    b = algo(pw + salt + pw).digest()
    a = algo(pw + salt)  # unlike MD5-crypt, no magic string in digest A
    n = len(pw)
    while n > size:
        a.update(b)
        n -= size
    a.update(b[:n])
    i = len(pw)
    while i:
        a.update(b if i & 1 else pw)
        i >>= 1
    da = a.digest()
    dp = algo(pw * len(pw)).digest()
    p = (dp * (len(pw) // size + 1))[:len(pw)]
    ds = algo(salt * (16 + da[0])).digest()
    s = (ds * (len(salt) // size + 1))[:len(salt)]
    c = da
    for r in range(rounds):
        h = algo(p if r & 1 else c)
        if r % 3:
            h.update(s)
        if r % 7:
            h.update(p)
        h.update(c if r & 1 else p)
        c = h.digest()
    out = "".join(_to64((c[x] << 16) | (c[y] << 8) | c[z], 4) for x, y, z in order)
    if size == 32:
        out += _to64((c[31] << 8) | c[30], 3)
    else:
        out += _to64(c[63], 2)
    head = f"{magic}rounds={rounds}$" if custom else magic
    return f"{head}{salt_s}${out}"


# -- traditional DES crypt(3) ------------------------------------------------------------------
# FIPS 46-3's tables (bit 1 is the most significant); musl src/crypt/crypt_des.c (FreeSec)
# ``_crypt_extended_r_uut``'s "old"-style branch: the key is the password's first 8 bytes, each
# shifted left by one bit ("*q++ = *key << 1;"), zero-padded; the salt is two characters
# ("salt = (ascii_to_bin(setting[1]) << 6) | ascii_to_bin(setting[0]);"), its bit j swapping
# bits j+1 and j+25 of each round's expansion (``setup_salt``: "obit = 0x800000"); a zero block
# is encrypted 25 times ("count = 25"), and the salt's two characters and the 64 bits (two zero
# bits appended) in 11 characters of ``_ITOA64`` are the result.
_IP = (58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
       62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
       57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7)
_FP = tuple(_IP.index(i) + 1 for i in range(1, 65))
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)
_PC1 = (57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
        10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
        14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4)
_PC2 = (14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8,
        16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
        44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32)
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)
_SBOX = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)


def _permute(value: int, table: tuple[int, ...], width: int) -> int:
    out = 0
    for pos in table:
        out = (out << 1) | ((value >> (width - pos)) & 1)
    return out


#: Each S-box's output for each 6-bit input (row: the outer bits, column: the inner four),
#: already through the P permutation, so a round ORs eight lookups.
_SP = tuple(tuple(_permute(box[(((six >> 4) & 2) | (six & 1)) * 16 + ((six >> 1) & 15)]
                           << (28 - 4 * i), _P, 32) for six in range(64))
            for i, box in enumerate(_SBOX))


def _des_subkeys(key: int) -> list[int]:
    cd = _permute(key, _PC1, 64)
    c, d = cd >> 28, cd & 0xFFFFFFF
    keys = []
    for s in _SHIFTS:
        c = ((c << s) | (c >> (28 - s))) & 0xFFFFFFF
        d = ((d << s) | (d >> (28 - s))) & 0xFFFFFFF
        keys.append(_permute((c << 28) | d, _PC2, 56))
    return keys


def _des_rounds(left: int, right: int, keys: list[int], salt_mask: int) -> tuple[int, int]:
    """DES's 16 rounds (no IP/FP), the expansion's bits swapped where ``salt_mask`` says."""
    sp0, sp1, sp2, sp3, sp4, sp5, sp6, sp7 = _SP
    for k in keys:
        # E: eight 6-bit groups of R rotated, bit 32 before bit 1 and bit 1 after bit 32.
        ext = ((right & 1) << 33) | (right << 1) | (right >> 31)
        e = 0
        for shift in (28, 24, 20, 16, 12, 8, 4, 0):
            e = (e << 6) | ((ext >> shift) & 63)
        t = ((e >> 24) ^ e) & salt_mask
        x = e ^ t ^ (t << 24) ^ k
        f = (sp0[x >> 42] | sp1[(x >> 36) & 63] | sp2[(x >> 30) & 63] | sp3[(x >> 24) & 63]
             | sp4[(x >> 18) & 63] | sp5[(x >> 12) & 63] | sp6[(x >> 6) & 63] | sp7[x & 63])
        left, right = right, left ^ f
    return left, right


def des_crypt(password: bytes, salt: str) -> str:
    """Traditional DES crypt(3) of ``password`` (its first 8 bytes) with the first two
    characters of ``salt`` (each of ``_ITOA64``): 13 characters."""
    key = 0
    for i in range(8):
        key = (key << 8) | (((password[i] << 1) & 0xFF) if i < len(password) else 0)
    value = _ITOA64.index(salt[0]) | (_ITOA64.index(salt[1]) << 6)
    salt_mask = 0
    for j in range(12):
        if value >> j & 1:
            salt_mask |= 1 << (23 - j)
    keys = _des_subkeys(key)
    left = right = 0  # IP(0): the zero block; IP and FP cancel out between the 25 passes
    for _ in range(25):
        left, right = _des_rounds(left, right, keys, salt_mask)
        left, right = right, left
    out = _permute((left << 32) | right, _FP, 64) << 2
    return salt[:2] + "".join(_ITOA64[(out >> shift) & 63] for shift in range(60, -6, -6))


def _is_des(stored: str) -> bool:
    """``stored`` is a traditional DES crypt(3) result: 13 characters of ``_ITOA64`` (what
    musl's crypt gives for any setting not starting with ``$`` or ``_`` whose salt is two
    such characters; ``crypt`` and ``htpasswd -d`` write these)."""
    return len(stored) == 13 and all(c in _ITOA64 for c in stored)


def _sha_setting(setting: str) -> tuple[int, bool, str] | None:
    """``(rounds, rounds given, salt)`` of a ``$5$``/``$6$`` setting; None when it is not one
    or asks for more than ROUNDS_LIMIT rounds."""
    parsed = _sha_parse(setting)
    return None if parsed is None or parsed[0] > ROUNDS_LIMIT else parsed


def _sha_parse(setting: str) -> tuple[int, bool, str] | None:
    """``_sha_setting`` without ROUNDS_LIMIT: musl's reading (None where its crypt is "*")."""
    if not (setting.startswith("$5$") or setting.startswith("$6$")):
        return None
    rest = setting[3:]
    rounds, custom = _ROUNDS_DEFAULT, False
    if rest.startswith("rounds="):
        num, sep, rest = rest[7:].partition("$")
        # ASCII digits only (crypt's strtoul; ``int`` also reads "²" as a digit and then
        # raises, as it does past 4,300 digits): the Secret's text must not break its reading.
        # Past seven significant digits the count is over _ROUNDS_MAX.
        digits = num.lstrip("0")
        if not sep or not (num.isascii() and num.isdigit()) or len(digits) > 7:
            return None
        rounds, custom = max(int(digits or "0"), _ROUNDS_MIN), True
        if rounds > _ROUNDS_MAX:
            return None
    salt_s = rest.split("$", 1)[0][:16]
    return (rounds, custom, salt_s) if salt_s.isascii() else None


def rounds_over_limit(stored: str) -> int | None:
    """The rounds of a ``$5$``/``$6$`` hash musl's crypt would verify but that asks for more
    than ROUNDS_LIMIT (its user is refused here), else None."""
    parsed = _sha_parse(stored)
    return parsed[0] if parsed is not None and parsed[0] > ROUNDS_LIMIT else None


def supported(stored: str) -> bool:
    """``verify`` can check a password against ``stored``. Without hashing: a Secret of many
    SHA-crypt users is read where the Router is built (~3 ms per ``$6$`` verification)."""
    if stored.startswith("$5$") or stored.startswith("$6$"):
        return _sha_setting(stored) is not None
    if stored.startswith("$apr1$") or stored.startswith("$1$"):
        md5_salt, sep, _ = stored[6 if stored.startswith("$apr1$") else 3:].partition("$")
        return bool(sep) and md5_salt.isascii()
    if _is_des(stored):
        return True
    return verify(stored, b"") is not None  # {PLAIN}, {SHA}, {SSHA}: one cheap hash at most


def hashes(stored: str, password: bytes) -> bool:
    """``verify(stored, password)`` runs a crypt loop (MD5-crypt's 1,000 rounds, SHA-crypt's
    rounds, DES crypt's 25 encryptions): a verdict worth remembering. False for the schemes of
    one cheap hash at most and for a password refused without hashing (over musl's KEY_MAX)."""
    if stored.startswith("$5$") or stored.startswith("$6$"):
        return len(password) <= SHA_KEY_MAX
    if stored.startswith("$1$"):
        return len(password) <= MD5_KEY_MAX
    return stored.startswith("$apr1$") or _is_des(stored)


def verify(stored: str, password: bytes) -> bool | None:
    """True / False when ``password`` does / does not match the htpasswd hash ``stored``;
    None when the format is not one verifiable here (the caller refuses the user)."""
    if stored.startswith("{PLAIN}"):
        return hmac.compare_digest(stored[7:].encode("utf-8", "surrogateescape"), password)
    # {SHA} and {SSHA}: nginx encodes the computed value again and compares the TEXT
    # (ngx_crypt_sha / ngx_crypt_ssha: "ngx_encode_base64(&encoded, &decoded);", then
    # ngx_http_auth_basic_crypt_handler's "ngx_strcmp(encrypted, passwd->data)"), so a stored
    # value in another base64 spelling of the same bytes (nonzero padding bits) never matches.
    if stored.startswith("{SHA}"):
        if _b64(stored[5:]) is None:
            return None
        computed = "{SHA}" + base64.b64encode(hashlib.sha1(password).digest()).decode()
        return hmac.compare_digest(computed.encode(), stored.encode("utf-8", "surrogateescape"))
    if stored.startswith("{SSHA}"):
        raw = _b64(stored[6:])
        # Twenty bytes is a digest with an empty salt, which nginx accepts
        # (ngx_crypt_ssha: "ngx_sha1_update(&sha1, decoded.data + 20, decoded.len - 20);");
        # fewer never match there ("if (rc != NGX_OK || decoded.len < 20) { decoded.len = 20; }"
        # then the 28-character re-encoding is compared with the stored text).
        if raw is None or len(raw) < 20:
            return None
        salt = raw[20:]
        computed = "{SSHA}" + base64.b64encode(
            hashlib.sha1(password + salt).digest() + salt).decode()
        return hmac.compare_digest(computed.encode(), stored.encode("utf-8", "surrogateescape"))
    if stored.startswith("$apr1$") or stored.startswith("$1$"):
        magic = "$apr1$" if stored.startswith("$apr1$") else "$1$"
        md5_salt, sep, _ = stored[len(magic):].partition("$")
        if not sep or not md5_salt.isascii():
            return None
        if magic == "$1$" and len(password) > MD5_KEY_MAX:
            return False  # musl's crypt: "*"
        return hmac.compare_digest(md5_crypt(password, md5_salt, magic).encode(),
                                   stored.encode("utf-8", "surrogateescape"))
    if stored.startswith("$5$") or stored.startswith("$6$"):
        if _sha_setting(stored) is None:
            return None
        if len(password) > SHA_KEY_MAX:
            return False  # musl's crypt: "*", before any hashing (the cost is O(n^2))
        crypted = sha_crypt(password, stored)
        if crypted is None:
            return None
        return hmac.compare_digest(crypted.encode(), stored.encode("utf-8", "surrogateescape"))
    if _is_des(stored):
        # ngx_crypt's fallback, ngx_libc_crypt: crypt(3), whose DES reads 8 bytes at most.
        return hmac.compare_digest(des_crypt(password, stored).encode(), stored.encode())
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None
