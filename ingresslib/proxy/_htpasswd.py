"""htpasswd password hashes, as nginx's ``auth_basic_user_file`` accepts them, verified with
the standard library only.

ngx_http_auth_basic_module: "The following password types are supported: encrypted with the
crypt() function ...; hashed with the Apache variant of the MD5-based password algorithm
(apr1); specified by the "{scheme}data" syntax (1.0.3+) as described in RFC 2307; currently
implemented schemes include PLAIN (an example one, should not be used), SHA (1.3.13) (plain
SHA-1 hashing, should not be used) and SSHA (salted SHA-1 hashing...)". Verified here:
``{PLAIN}``, ``{SHA}``, ``{SSHA}``, ``$apr1$`` and ``$1$`` (MD5-crypt, Poul-Henning Kamp's
algorithm; apr1 differs by its magic string only), ``$5$`` and ``$6$`` (SHA-crypt, Ulrich
Drepper's "Unix crypt using SHA-256 and SHA-512" specification). Anything else (bcrypt
``$2y$``, yescrypt ``$y$``, DES crypt) is ``None``: not verifiable here, so the user is
refused (never accepted), with a warning where the Secret is read.

Every comparison of a computed hash with the stored one is ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["verify", "supported", "hashes", "rounds_over_limit", "md5_crypt", "sha_crypt",
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
    return verify(stored, b"") is not None  # {PLAIN}, {SHA}, {SSHA}: one cheap hash at most


def hashes(stored: str, password: bytes) -> bool:
    """``verify(stored, password)`` runs a crypt loop (MD5-crypt's 1,000 rounds, SHA-crypt's
    rounds): a verdict worth remembering. False for the schemes of one cheap hash at most and
    for a password refused without hashing (over musl's KEY_MAX)."""
    if stored.startswith("$5$") or stored.startswith("$6$"):
        return len(password) <= SHA_KEY_MAX
    if stored.startswith("$1$"):
        return len(password) <= MD5_KEY_MAX
    return stored.startswith("$apr1$")


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
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None
