"""Session 24 (O1): basic auth's password hashing off the event loop.

A ``$6$`` verification costs milliseconds of pure Python; it ran on the proxy's event loop
(``access_answer`` -> ``BasicAuth.check``), stalling every other connection meanwhile. The
sans-IO core now hands it to its driver (``Offload``, ``ClientConnection.offload_done``) when
the driver opted in (``Proxy.connection(offload=True)``: ProxyServer does), and IngressASGI
runs it with ``asyncio.to_thread``. A driver that did not opt in gets no new action.

The tests marked DEFECT failed on the tree before this change (they waited on the loop).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ingresslib._load import parse_manifests
from ingresslib._models import ServicePort
from ingresslib._router import Router
from ingresslib.proxy import _basicauth, _htpasswd

sys.path.insert(0, str(Path(__file__).parent))
from _router_helpers import P, ingress, resources, service, slice_  # noqa: E402

SALT = "$6$saltsalt$"


SIX_PW = _htpasswd.sha_crypt(b"pw", SALT) or ""  # made before any test counts hashing


def _basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


def _secret_yaml(data: dict[str, bytes]) -> str:
    enc = ", ".join(f"{k!r}: {base64.b64encode(v).decode()!r}" for k, v in data.items())
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\n"
            f"type: Opaque\ndata: {{{enc}}}\n")


def _resources(port: int) -> Any:
    """a.test behind basic auth (``six``: a ``$6$`` hash of ``pw``; ``plain``: {PLAIN}pw),
    b.test open, c.test's /x behind basic auth (its other paths: the server's location /, with
    the same basic auth); all to 127.0.0.1:``port``."""
    ann = {P + "auth-type": "basic", P + "auth-secret": "users"}
    res = resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann),
                    ingress("open", [("b.test", "/", "Prefix", "web", 80)]),
                    ingress("part", [("c.test", "/x", "Prefix", "web", 80)], ann),
                    service("web", [ServicePort(port=80, target_port=port)]),
                    slice_("web-1", "web", ["127.0.0.1"], ports=((None, port),)))
    htpasswd = f"six:{SIX_PW}\nplain:{{PLAIN}}pw\n".encode()
    return dataclasses.replace(
        res, secrets=parse_manifests(_secret_yaml({"auth": htpasswd})).secrets)


@pytest.fixture
def counted(monkeypatch: Any) -> list[bytes]:
    """Fresh verdict caches, and the passwords ``sha_crypt`` hashes."""
    monkeypatch.setattr(_basicauth, "_GOOD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    monkeypatch.setattr(_basicauth, "_BAD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    calls: list[bytes] = []
    real = _htpasswd.sha_crypt

    def counting(password: bytes, setting: str) -> str | None:
        calls.append(password)
        return real(password, setting)

    monkeypatch.setattr(_htpasswd, "sha_crypt", counting)
    return calls


def _get(host: bytes, auth: bytes | None = None, close: bool = False) -> bytes:
    return (b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n"
            + (b"" if auth is None else b"Authorization: " + auth + b"\r\n")
            + (b"Connection: close\r\n" if close else b"") + b"\r\n")


# -- the sans-IO core -------------------------------------------------------------------------------

def _conn(offload: bool) -> Any:
    from ingresslib.proxy import Proxy

    proxy = Proxy(Router(_resources(8080), seed=0))
    conn = proxy.connection(("127.0.0.1", 5000), now=0.0, offload=offload)
    conn.start(0.0)
    return conn


def _types(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def _status_of(actions: list[Any]) -> bytes | None:
    from ingresslib.proxy import SendDownstream

    for a in actions:
        if isinstance(a, SendDownstream) and a.data.startswith(b"HTTP/1.1 "):
            return a.data.split(b" ", 2)[1]
    return None


def test_core_hands_the_hashing_to_a_driver_that_opted_in(counted: list[bytes]) -> None:
    from ingresslib.proxy import Offload, OpenUpstream

    conn = _conn(True)
    # A first login: an Offload, nothing hashed, nothing answered or opened yet.
    out = conn.receive_data(_get(b"a.test", _basic(b"six", b"pw")), 0.0)
    assert _types(out) == ["Offload"] and counted == []
    assert not conn.idle
    out[0].job()
    assert counted == [b"pw"]
    out = conn.offload_done(0.1)
    assert any(isinstance(a, OpenUpstream) for a in out) and counted == [b"pw"]
    # The verdict is remembered: the same credentials again go straight on, hashing nothing.
    conn2 = _conn(True)
    out = conn2.receive_data(_get(b"a.test", _basic(b"six", b"pw")), 0.0)
    assert any(isinstance(a, OpenUpstream) for a in out)
    assert not any(isinstance(a, Offload) for a in out) and counted == [b"pw"]
    # A wrong password: hashed off the loop, then the 401 with its challenge.
    conn3 = _conn(True)
    out = conn3.receive_data(_get(b"a.test", _basic(b"six", b"nope")), 0.0)
    assert _types(out) == ["Offload"]
    out[0].job()
    out = conn3.offload_done(0.1)
    assert _status_of(out) == b"401" and counted == [b"pw", b"nope"]
    # Nothing to hash (none, an unknown user, {PLAIN}): no Offload at all.
    for auth, want in ((None, b"401"), (_basic(b"who", b"pw"), b"401"),
                       (_basic(b"plain", b"pw"), None)):
        out = _conn(True).receive_data(_get(b"a.test", auth), 0.0)
        assert "Offload" not in _types(out)
        assert _status_of(out) == want
    assert counted == [b"pw", b"nope"]


def test_core_hashes_inline_for_a_driver_that_did_not_opt_in(counted: list[bytes]) -> None:
    """A user's own driver (no ``offload=True``) never sees the new action: as before."""
    from ingresslib.proxy import OpenUpstream

    out = _conn(False).receive_data(_get(b"a.test", _basic(b"six", b"pw")), 0.0)
    assert "Offload" not in _types(out) and counted == [b"pw"]
    assert any(isinstance(a, OpenUpstream) for a in out)
    out = _conn(False).receive_data(_get(b"a.test", _basic(b"six", b"bad")), 0.0)
    assert _status_of(out) == b"401" and counted == [b"pw", b"bad"]


def test_unrouted_path_of_a_host_with_basic_auth(counted: list[bytes]) -> None:
    """A path no rule of c.test covers: its server location's basic auth, hashed off the loop
    too, then the default backend's 404 (right password) or the 401."""
    for pw, want in ((b"pw", b"404"), (b"nope", b"401")):
        conn = _conn(True)
        req = _get(b"c.test", _basic(b"six", pw)).replace(b"GET / ", b"GET /y ")
        out = conn.receive_data(req, 0.0)
        assert _types(out) == ["Offload"]
        out[0].job()
        assert _status_of(conn.offload_done(0.1)) == want
        # Remembered: no Offload the second time, the same answer.
        out = _conn(True).receive_data(req, 0.0)
        assert "Offload" not in _types(out) and _status_of(out) == want
    assert counted == [b"pw", b"nope"]


def test_pipelined_requests_wait_in_order(counted: list[bytes]) -> None:
    """A request behind the parked one is not answered before it: the 401 of the first
    (wrong password) comes first, then the second's answer (the open host's upstream)."""
    from ingresslib.proxy import OpenUpstream

    conn = _conn(True)
    out = conn.receive_data(_get(b"a.test", _basic(b"six", b"nope")) + _get(b"b.test"), 0.0)
    assert _types(out) == ["Offload"]
    out[0].job()
    out = conn.offload_done(0.1)
    types = _types(out)
    assert _status_of(out) == b"401"
    first_send = types.index("SendDownstream")
    opens = [i for i, a in enumerate(out) if isinstance(a, OpenUpstream)]
    assert opens and opens[0] > first_send  # b.test routed only after a.test's answer


def test_client_gone_while_the_job_runs(counted: list[bytes]) -> None:
    from ingresslib.proxy import CloseDownstream, RequestDone

    conn = _conn(True)
    out = conn.receive_data(_get(b"a.test", _basic(b"six", b"pw")), 0.0)
    assert _types(out) == ["Offload"]
    out_eof = conn.receive_eof(0.05)
    records = [a.record for a in out_eof if isinstance(a, RequestDone)]
    assert [r.status for r in records] == [499]
    assert any(isinstance(a, CloseDownstream) for a in out_eof) and conn.closed
    out[0].job()
    assert conn.offload_done(0.1) == []


def test_offload_is_public() -> None:
    import ingresslib.proxy as proxy

    assert "Offload" in proxy.__all__
    a = proxy.Offload(lambda: None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.job = print  # type: ignore[misc]


# -- ProxyServer on 127.0.0.1: a second connection is served while a hash runs ---------------------

def _held(monkeypatch: Any) -> tuple[threading.Event, threading.Event, list[bool]]:
    """``sha_crypt`` sets ``started``, then waits (at most 2 s) for ``release``: ``waited``
    says whether it came."""
    started = threading.Event()
    release = threading.Event()
    waited: list[bool] = []
    real = _htpasswd.sha_crypt

    def held(password: bytes, setting: str) -> str | None:
        started.set()
        waited.append(release.wait(2))
        return real(password, setting)

    monkeypatch.setattr(_htpasswd, "sha_crypt", held)
    return started, release, waited


async def _started(started: threading.Event) -> None:
    """Until the held hash began (waited for in a thread: on the old tree the loop itself
    is the one held)."""
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 3)
    started.clear()


async def _upstream() -> tuple[asyncio.base_events.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await w.drain()
        finally:
            w.close()

    up = await asyncio.start_server(handle, "127.0.0.1", 0)
    return up, up.sockets[0].getsockname()[1]


async def _ask(port: int, request: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(request)
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    return data.split(b" ", 2)[1]


def test_proxy_server_serves_others_while_a_password_is_hashed(counted: list[bytes],
                                                                 monkeypatch: Any) -> None:
    """DEFECT: the hashing ran on the loop, so b.test's response could not arrive while it
    ran (the held hash timed out waiting for it). Verdicts as before: 200 and 401, cached."""
    from ingresslib.proxy import ProxyServer

    started, release, waited = _held(monkeypatch)

    async def run() -> list[bytes]:
        up, port = await _upstream()
        server = ProxyServer(Router(_resources(port), seed=0))
        await server.start(("127.0.0.1", 0))
        listen = server.addresses[0][2]
        try:
            out = []
            for pw in (b"pw", b"nope"):
                slow = asyncio.ensure_future(
                    _ask(listen, _get(b"a.test", _basic(b"six", pw), close=True)))
                await _started(started)
                other = await _ask(listen, _get(b"b.test", close=True))
                out.append(other)
                release.set()
                out.append(await slow)
                release.clear()
            # Remembered: no hashing (a held hash would wait its 2 s and be counted).
            out.append(await _ask(listen, _get(b"a.test", _basic(b"six", b"pw"), close=True)))
            out.append(await _ask(listen, _get(b"a.test", _basic(b"six", b"nope"), close=True)))
            return out
        finally:
            await server.shutdown(1)
            up.close()

    statuses = asyncio.run(run())
    assert waited == [True, True]
    assert statuses == [b"200", b"200", b"200", b"401", b"200", b"401"]


# -- IngressASGI: asyncio.to_thread -------------------------------------------------------------

def test_ingress_asgi_hashes_in_a_thread(counted: list[bytes], monkeypatch: Any) -> None:
    """DEFECT: IngressASGI hashed on the loop: the other request could not be answered while
    the hash waited for it."""
    from ingresslib import IngressASGI

    started, release, waited = _held(monkeypatch)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(Router(_resources(8080), seed=0), {"default/web": app})

    async def call(host: bytes, auth: bytes | None) -> int:
        headers = [(b"host", host)] + ([] if auth is None else [(b"authorization", auth)])
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        await asgi(scope, receive, send)
        return int(sent[0]["status"])

    async def run() -> list[int]:
        out = []
        for pw in (b"pw", b"nope"):
            slow = asyncio.ensure_future(call(b"a.test", _basic(b"six", pw)))
            await _started(started)
            out.append(await call(b"b.test", None))
            release.set()
            out.append(await slow)
            release.clear()
        out.append(await call(b"a.test", _basic(b"six", b"pw")))
        out.append(await call(b"a.test", _basic(b"six", b"nope")))
        return out

    statuses = asyncio.run(run())
    assert waited == [True, True]
    assert statuses == [200, 200, 200, 401, 200, 401]
