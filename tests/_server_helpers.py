"""Shared helpers for the asyncio server tests: a stub router and a keep-alive h11 client."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h11

from ingresslib._table import Match


def make_match(service: str = "svc", path: str = "/", annotations: dict[str, str] | None = None) -> Match:
    ing = None
    if annotations:
        from ingresslib._models import Ingress, IngressSpec, ObjectMeta, freeze_map

        ing = Ingress(metadata=ObjectMeta(name="ing", annotations=freeze_map(annotations)),
                      spec=IngressSpec())
    return Match(service=service, port=80, namespace="default", ingress="default/ing", host=None,
                 path=path, path_type="Prefix", is_default_backend=False, ingress_object=ing,
                 route_id=0, match_path=path)


@dataclass(frozen=True, slots=True)
class StubDecision:
    service: str
    namespace: str
    port: int
    endpoint: tuple[str, int] | None
    canary: bool
    match: Match


class StubRouter:
    """Every request whose Host is ``known`` goes to ``service``, round-robin over
    ``endpoints``; other hosts get no route (404)."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], *, service: str = "svc",
                 known: str | None = None, annotations: dict[str, str] | None = None) -> None:
        self.endpoints = list(endpoints)
        self.service = service
        self.known = known
        self.match = make_match(service, annotations=annotations)
        self._rr = itertools.count()
        self.observed: list[tuple[tuple[str, int], bool]] = []

    def route(self, method: str, host: str, path: str, headers: Any = (), client_ip: Any = None) -> StubDecision | None:
        if self.known is not None and host.split(":")[0] != self.known:
            return None
        ep = self.endpoints[next(self._rr) % len(self.endpoints)] if self.endpoints else None
        return StubDecision(self.service, "default", 80, ep, False, self.match)

    def next_endpoint(self, decision: StubDecision, tried: Sequence[tuple[str, int]]) -> tuple[str, int] | None:
        for ep in self.endpoints:
            if ep not in tried:
                return ep
        return None

    def observe(self, decision: Any, endpoint: tuple[str, int], seconds: float, ok: bool) -> None:
        self.observed.append((endpoint, ok))


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """A keep-alive HTTP/1.1 client on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self._target: tuple[int, ssl.SSLContext | None, str | None] | None = None

    @classmethod
    async def open(cls, port: int, *, tls: ssl.SSLContext | None = None, sni: str | None = None) -> Client:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname=sni if tls else None)
        client = cls(r, w)
        client._target = (port, tls, sni)
        return client

    async def get(self, host: str, path: str = "/", headers: Sequence[tuple[str, str]] = (),
                  method: str = "GET", body: bytes = b"") -> Resp:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        elif h11.MUST_CLOSE in (self.conn.our_state, self.conn.their_state) and self._target:
            # The server said "Connection: close" (keep-alive-requests reached): reconnect, as a
            # real client does.
            await self.close()
            port, tls, sni = self._target
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls, server_hostname=sni if tls else None)
            self.conn = h11.Connection(h11.CLIENT)
        hdrs = [("Host", host), *headers]
        if body:
            hdrs.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=path, headers=hdrs))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        status, rh, out = 0, {}, b""
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                chunk = await self.reader.read(65536)
                self.conn.receive_data(chunk)
                if not chunk and self.conn.their_state is not h11.DONE:
                    raise ConnectionError("closed mid-response")
            elif isinstance(ev, h11.Response):
                status = ev.status_code
                rh = {k.decode().lower(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h11.Data):
                out += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return Resp(status, rh, out)
            elif isinstance(ev, h11.ConnectionClosed):
                raise ConnectionError("closed")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
