"""Session 24 (H1): basic auth against nginx's auth_basic and ingress-nginx's auth annotations.

References (search corpus "code"):
- nginx src/http/modules/ngx_http_auth_basic_module.c ``ngx_http_auth_basic_handler``: the
  htpasswd reader's states (sw_login, sw_passwd, sw_skip). A byte differing from the header's
  ``user:`` switches to sw_skip, which waits for the next LF, even when that byte WAS the LF
  ending the line: a line without ':' that begins the user makes nginx skip the line after it
  unread, and a user holding an LF is compared on across the line's end.
- nginx src/http/ngx_http_core_module.c ``ngx_http_auth_basic_user`` ("auth.data[auth.len] =
  '\\0';") and src/core/ngx_crypt.c (``ngx_crypt_plain``/``_apr1``/``_sha``/``_ssha``:
  "ngx_strlen(key)"), ``ngx_http_auth_basic_crypt_handler`` ("ngx_strcmp(encrypted,
  passwd->data)"): the password and the stored hash are C strings, ending at a NUL byte.
- ingress-nginx rootfs/etc/nginx/template/nginx.tmpl: ``auth_basic {{ $location.BasicDigestAuth.
  Realm | quote }};`` then ``proxy_set_header Authorization "";`` (the backend never gets it).

The tests marked DEFECT failed on the tree before this change.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingresslib._load import parse_manifests
from ingresslib._models import ServicePort
from ingresslib._router import Router
from ingresslib.proxy import _basicauth

sys.path.insert(0, str(Path(__file__).parent))
from _budget import examples  # noqa: E402
from _router_helpers import P, ingress, resources, service, slice_  # noqa: E402

APR1 = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"  # Apache's htpasswd documentation: myPassword
SSHA = "{SSHA}" + base64.b64encode(hashlib.sha1(b"s3cret" + b"NaCl").digest() + b"NaCl").decode()
SHA = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()


def _secret_yaml(data: dict[str, bytes]) -> str:
    enc = ", ".join(f"{k!r}: {base64.b64encode(v).decode()!r}" for k, v in data.items())
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\n"
            f"type: Opaque\ndata: {{{enc}}}\n")


def _auth(data: dict[str, bytes], map_type: bool = False) -> _basicauth.BasicAuth:
    secrets = parse_manifests(_secret_yaml(data)).secrets
    auth = _basicauth.BasicAuth("r", "default", "users", map_type, lambda: secrets, None, "")
    auth.load()
    return auth


def _basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


def _status(auth: _basicauth.BasicAuth, user: bytes, password: bytes) -> int:
    return auth.check(_basic(user, password))[0]


# -- the password and the stored hash are C strings in nginx -------------------------------------

def test_password_ends_at_its_first_nul_byte() -> None:
    """DEFECT: nginx hashes the password up to its first NUL (ngx_strlen(key)); ingresslib
    hashed every byte, so ``s3cret\\0anything`` was refused where nginx lets it in."""
    auth = _auth({"auth": (f"plain:{{PLAIN}}pw\nsha:{SHA}\nssha:{SSHA}\napr:{APR1}\n"
                           f"six:{_six(b'pw')}\n").encode()})
    for user, pw in ((b"plain", b"pw"), (b"sha", b"pw"), (b"ssha", b"s3cret"),
                     (b"apr", b"myPassword"), (b"six", b"pw")):
        assert _status(auth, user, pw) == 0
        assert _status(auth, user, pw + b"\0anything") == 0, user
        assert _status(auth, user, pw[:-1] + b"\0" + pw[-1:]) == 401, user
    # A password that is only a NUL is the empty password.
    assert _status(_auth({"auth": b"e:{PLAIN}\n"}), b"e", b"\0x") == 0


def test_stored_hash_ends_at_a_nul_byte() -> None:
    """DEFECT: nginx's strcmp (and crypt's setting) end the stored hash at a NUL; ingresslib
    compared the bytes after it too."""
    auth = _auth({"auth": b"bob:{PLAIN}pw\0junk\n"})
    assert _status(auth, b"bob", b"pw") == 0
    assert _status(auth, b"bob", b"pw\0junk") == 0  # the password ends at its NUL as well
    # auth-map: the value of the key is the hash (dumpSecretAuthMap's "user:value").
    amap = _auth({"bob": b"{PLAIN}pw\0junk"}, map_type=True)
    assert _status(amap, b"bob", b"pw") == 0


def test_colon_in_password_and_non_utf8_user_as_nginx() -> None:
    # No defect: the user ends at the first ':' of the decoded credentials (the password may
    # hold more), and user bytes are compared as bytes whatever their encoding.
    auth = _auth({"auth": b"bob:{PLAIN}a:b\n\xff\xfe:{PLAIN}pw\n"})
    assert _status(auth, b"bob", b"a") == 0  # the stored hash ends at its ':' (a comment)
    assert _status(auth, b"bob", b"a:b") == 401
    assert _status(_auth({"auth": b"bob:{PLAIN}x\n"}), b"bob:x", b"") == 401  # user "bob", pw "x:"
    assert _status(_auth({"auth": b"bob:{PLAIN}x:\n"}), b"bob", b"x:") == 401
    assert _status(auth, b"\xff\xfe", b"pw") == 0
    assert _status(auth, "\xff\xfe".encode(), b"pw") == 401  # U+00FF U+00FE in UTF-8


# -- nginx's htpasswd reader: a line without ':' ------------------------------------------------

def test_a_line_without_colon_beginning_the_user_hides_the_next_line() -> None:
    """DEFECT: nginx compares the LF ending ``bob`` with the ':' after the header's user, goes
    to sw_skip on it and skips the whole next line; ingresslib read ``bob:{PLAIN}first``."""
    auth = _auth({"auth": b"bob\nbob:{PLAIN}first\nbob:{PLAIN}second\n"})
    assert _status(auth, b"bob", b"first") == 401
    assert _status(auth, b"bob", b"second") == 0
    # ``bo`` begins ``bobby`` too: the line after it is skipped for bobby only.
    auth = _auth({"auth": b"bo\nbobby:{PLAIN}a\nbob:{PLAIN}b\n"})
    assert _status(auth, b"bobby", b"a") == 401
    assert _status(auth, b"bob", b"b") == 0
    # A line the user does not begin skips nothing; nor does a comment.
    auth = _auth({"auth": b"carol\n#bob\nbob:{PLAIN}c\n"})
    assert _status(auth, b"bob", b"c") == 0


def test_a_user_holding_lf_is_compared_across_lines() -> None:
    """DEFECT: the header's user ``a\\nb`` matches the lines ``a`` and ``b:{PLAIN}pw`` in nginx
    (the LF is compared like any byte); ingresslib refused it."""
    auth = _auth({"auth": b"a\nb:{PLAIN}pw\n"})
    assert _status(auth, b"a\nb", b"pw") == 0
    assert _status(auth, b"b", b"pw") == 0  # "a" differs from "b" within its line: read on
    assert _status(auth, b"a", b"pw") == 401  # the LF ending "a" is not its ':'
    assert auth.check(_basic(b"a\nb", b"pw"))[1] == "a\nb"


def _nginx_lookup(file: bytes, user: bytes) -> bytes | None:
    """ngx_http_auth_basic_handler's reader, byte by byte (the stored hash as the crypt
    handler reads it: up to a NUL)."""
    wanted = user + b":"
    state, login, start = "login", 0, 0
    for i, c in enumerate(file):
        if state == "login":
            if login == 0:
                if c in b"#\r":
                    state = "skip"
                    continue
                if c == 0x0A:
                    continue
            if c != wanted[login]:
                state = "skip"
                continue
            if login == len(user):
                state, start = "passwd", i + 1
            login += 1
        elif state == "passwd":
            if c in b"\n\r:":
                return file[start:i].split(b"\0", 1)[0]
        elif c == 0x0A:
            state, login = "login", 0
    return file[start:].split(b"\0", 1)[0] if state == "passwd" else None


_TOKENS = st.sampled_from([b"a", b"b", b"#", b":", b"\r", b"\n", b"\xff", b"ab", b"\0",
                           b"{PLAIN}p", b"{PLAIN}q"])


@settings(max_examples=examples(1), deadline=None)
@given(st.lists(_TOKENS, max_size=30).map(b"".join),
       st.lists(st.sampled_from([b"a", b"b", b"#", b"\xff", b"\r", b"\n"]), min_size=1,
                max_size=3).map(b"".join),
       st.sampled_from([b"p", b"q", b""]))
@example(b"a\nab:{PLAIN}p", b"ab", b"p")
@example(b"ab\nab:{PLAIN}p\nab:{PLAIN}q", b"ab", b"q")
@example(b"a\nb:{PLAIN}p", b"a\nb", b"p")
def test_verdicts_agree_with_nginxs_reader(file: bytes, user: bytes, password: bytes) -> None:
    stored = _nginx_lookup(file, user)
    want = 0 if stored is not None and stored == b"{PLAIN}" + password else 401
    if user.startswith(b"\n"):
        want = 401  # an LF at login 0 is an empty line: never the user's first byte
    got = _status(_auth({"auth": file}), user, password)
    assert got == want, (file, user, password, stored)


def test_lookup_reads_the_hash_nginx_reads() -> None:
    assert _basicauth.lookup(b"x:1\nbob:{SHA}abc:comment\r\n", b"bob") == b"{SHA}abc"
    assert _basicauth.lookup(b"bob:{PLAIN}end", b"bob") == b"{PLAIN}end"
    assert _basicauth.lookup(b"bob", b"bob") is None
    assert _basicauth.odd_lines("#c\n\rx\nbob\nal:ice\n\n") == (b"bob",)


# -- through a real ProxyServer on 127.0.0.1 ------------------------------------------------------

def _six(password: bytes) -> str:
    from ingresslib.proxy import _htpasswd

    return _htpasswd.sha_crypt(password, "$6$saltsalt$") or ""


def _proxy_run(htpasswd: bytes, requests: list[bytes | None]
               ) -> tuple[list[bytes], list[bytes], list[str | None]]:
    """(response heads, request heads the backend got, access records' remote_user) of a
    ProxyServer on 127.0.0.1 serving a.test with basic auth from an ``auth`` Secret holding
    ``htpasswd``; each request carries the Authorization value given (None: none)."""
    from ingresslib.proxy import ProxyServer

    async def run() -> tuple[list[bytes], list[bytes], list[str | None]]:
        got: list[bytes] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                got.append(await r.readuntil(b"\r\n\r\n"))
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await w.drain()
            finally:
                w.close()

        up = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        ann = {P + "auth-type": "basic", P + "auth-secret": "users",
               P + "auth-realm": " Admin area "}
        res = resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann),
                        service("web", [ServicePort(port=80, target_port=port)]),
                        slice_("web-1", "web", ["127.0.0.1"], ports=((None, port),)))
        res = dataclasses.replace(
            res, secrets=parse_manifests(_secret_yaml({"auth": htpasswd})).secrets)
        users: list[str | None] = []
        server = ProxyServer(Router(res, seed=0),
                             on_record=lambda rec: users.append(rec.remote_user))
        await server.start(("127.0.0.1", 0))
        heads: list[bytes] = []
        try:
            listen = server.addresses[0][2]
            for value in requests:
                r, w = await asyncio.open_connection("127.0.0.1", listen)
                extra = b"" if value is None else b"Authorization: " + value + b"\r\n"
                w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n" + extra
                        + b"\r\n")
                data = await asyncio.wait_for(r.read(), 2)
                w.close()
                heads.append(data.partition(b"\r\n\r\n")[0])
        finally:
            await server.shutdown(1)
            up.close()
        return heads, got, users

    return asyncio.run(run())


def test_through_a_proxy_server() -> None:
    """Status, challenge, what the backend receives and ``$remote_user``, as ingress-nginx:
    the realm trimmed and quoted, no Authorization upstream, the header's user logged whether
    or not it was let in; the NUL-ended password (DEFECT) let in as nginx does."""
    htpasswd = (f"# made by htpasswd\r\nalice:{APR1}\r\nbob:{SSHA}:comment\r\n"
                f"eve:$2y$05$abcdefghijklmnopqrstuu5VpYZ5v5d8JfG0Y7p2v3K4mQ9X0u\r\n").encode()
    requests: list[bytes | None] = [
        None,
        _basic(b"alice", b"myPassword"),
        b"bAsIc   " + base64.b64encode(b"bob:s3cret").rstrip(b"="),  # any case, no padding
        _basic(b"bob", b"wrong"),
        _basic(b"eve", b"x"),  # bcrypt: not verifiable here, refused
        _basic(b"alice", b"myPassword\0tail"),
    ]
    heads, got, users = _proxy_run(htpasswd, requests)
    statuses = [h.split(b" ", 2)[1] for h in heads]
    assert statuses == [b"401", b"200", b"200", b"401", b"401", b"200"]
    for h in heads[:1] + heads[3:5]:
        fields = [line.split(b": ", 1) for line in h.split(b"\r\n")[1:]]
        assert [v for n, v in fields if n.lower() == b"www-authenticate"] == [
            b'Basic realm="Admin area"']
    assert len(got) == 3
    for head in got:
        assert b"authorization" not in head.lower()  # proxy_set_header Authorization "";
    assert users == [None, "alice", "bob", "bob", "eve", "alice"]


# -- the hashing off the event loop: BasicAuth.unsettled -------------------------------------------

def test_unsettled_hands_the_hashing_to_another_thread(monkeypatch: Any) -> None:
    """``unsettled`` gives what ``check`` would hash (None when it would not): run in a worker
    thread, the verdict is remembered and ``check`` then hashes nothing on the loop."""
    import concurrent.futures

    from ingresslib.proxy import _htpasswd

    monkeypatch.setattr(_basicauth, "_GOOD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    monkeypatch.setattr(_basicauth, "_BAD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    calls: list[bytes] = []
    real = _htpasswd.sha_crypt

    def counting(password: bytes, setting: str) -> str | None:
        calls.append(password)
        return real(password, setting)

    auth = _auth({"auth": f"six:{_six(b'pw')}\nplain:{{PLAIN}}pw\n".encode()})
    monkeypatch.setattr(_htpasswd, "sha_crypt", counting)
    for pw, want in ((b"pw", 0), (b"nope", 401)):
        job = auth.unsettled(_basic(b"six", pw))
        assert job is not None and calls == []
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(job).result()
        assert calls == [pw]
        assert auth.unsettled(_basic(b"six", pw)) is None  # remembered now
        assert _status(auth, b"six", pw) == want and calls == [pw]
        calls.clear()
    # Nothing to hash: no credentials, an unknown user, a cheap format.
    assert auth.unsettled(None) is None
    assert auth.unsettled(_basic(b"who", b"pw")) is None
    assert auth.unsettled(_basic(b"plain", b"pw")) is None
