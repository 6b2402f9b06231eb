"""A model-based property test of the sans-IO core with several routes (brief x40, session 35).

Client connections to three routes on distinct hosts and paths, each to its own endpoints (c has
two: a failed try goes on to the next), every other connection with keep_alive_requests 2, and
random steps: client requests (valid, or with one hostile piece), pipelined and split at random
points, a body left unfinished (its rest sent later, with requests pipelined behind it or
not: session 35's x43), upstream answers of every shape (Content-Length, chunked, after a
1xx, held mid-body while other steps happen, with bytes after them, closing before or mid-body,
101 asked for or not), timers firing and a client close. A model predicts, step by step, which
request each endpoint must see and which answer the client must get; after every step:

* the requests the fake upstreams parsed (h11 as a server, strictly) are exactly the ones the
  model routed there, in order, with their bodies: never a byte of another request, nothing of a
  refused one nor of what follows it;
* the client's bytes parse (h11 as a client) as one answer per request, in order, each from the
  endpoint its request went to (its body names it) or the local answer the model predicts; a
  malformed request gets a 4xx and the connection closes after it; the connection is closed
  exactly when the model says;
* no exception escapes the core, and one record is written per answered request, with its
  status.

A connection the model says is over is checked once more and replaced by a new one, so a run
covers several. The mission's rules it checks: "nothing a client sends may reach a backend it
was not routed to" and "malformed HTTP gets a 4xx and the connection closed".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import h11
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ingresslib.proxy import ProxySettings, TimerKind

from _budget import examples
from _proxy_harness import FakeUpstream, ProxyPair, Route

#: name -> (host, path prefix, endpoints): each route on its own host and its own endpoints;
#: c has two, so that a failed try goes on to the next (proxy_next_upstream).
_ROUTES = {
    b"a": (b"a.test", b"/a", (("10.0.0.1", 81),)),
    b"b": (b"b.test", b"/b", (("10.0.0.2", 82),)),
    b"c": (b"c.test", b"/c", (("10.0.0.3", 83), ("10.0.0.4", 84))),
}
#: The name an endpoint puts in its answers' bodies.
_NAME_OF = {ep: b"%s%d" % (name, i) for name, (_, _, eps) in _ROUTES.items()
            for i, ep in enumerate(eps)}
#: nginx's proxy_next_upstream_tries default (ProxySettings): tries per request.
_TRIES = 3

#: A request for route b hidden in a hostile request's body: it must never reach b.
_SMUGGLED = b"GET /b/smuggled HTTP/1.1\r\nHost: b.test\r\n\r\n"

#: Request shapes the core forwards, answers itself (404), or refuses (400 and close).
_VALID = ("get", "head", "post_cl", "post_chunked", "absolute", "upgrade")
_UNROUTED = ("unrouted", "unrouted_body", "outside_path")
_HOSTILE = ("dup_cl", "cl_te", "te_list", "obs_fold", "bare_lf", "authority", "two_hosts")


@dataclass
class _Req:
    """One request the client sent, and what the model expects of it."""

    raw: bytes
    method: bytes
    path: bytes  # the target the upstream must see
    endpoint: tuple[str, int] | None  # where it is routed; None: answered by the proxy
    body: bytes
    local: int | None = None  # the status the proxy answers itself
    closes: bool = False  # a refused request: the connection closes after its answer
    expect: bool = False
    upgrade: bool = False
    reached: bool = False  # the model put it in the endpoint's expected log
    route: bytes = b""
    tried: int = 1  # endpoints tried (a pooled connection found closed is not a try)


def _chunked(body: bytes, cuts: list[int]) -> bytes:
    out, last = b"", 0
    for c in sorted({c % (len(body) + 1) for c in cuts}) + [len(body)]:
        if c > last:
            out += b"%x\r\n%s\r\n" % (c - last, body[last:c])
            last = c
    return out + b"0\r\n\r\n"


def _build(kind: str, route: bytes, serial: int, body: bytes, cuts: list[int],
           expect: bool) -> _Req:
    """The bytes of a request of shape ``kind`` for ``route``, and the model's prediction."""
    req = _build_raw(kind, route, serial, body, cuts, expect)
    req.route = route
    return req


def _build_raw(kind: str, route: bytes, serial: int, body: bytes, cuts: list[int],
               expect: bool) -> _Req:
    host, prefix, endpoints = _ROUTES[route]
    endpoint = endpoints[0]
    path = b"%s/r%d" % (prefix, serial)
    h = b"Host: " + host + b"\r\n"
    ex = b"Expect: 100-continue\r\n" if expect else b""
    if kind in ("get", "head"):
        method = kind.upper().encode()
        return _Req(method + b" " + path + b" HTTP/1.1\r\n" + h + b"\r\n", method, path,
                    endpoint, b"")
    if kind == "absolute":
        raw = b"GET http://" + host + path + b" HTTP/1.1\r\n" + h + b"\r\n"
        return _Req(raw, b"GET", path, endpoint, b"")
    if kind == "upgrade":
        raw = (b"GET " + path + b" HTTP/1.1\r\n" + h
               + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        return _Req(raw, b"GET", path, endpoint, b"", upgrade=True)
    if kind == "post_cl":
        raw = b"POST %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
            path, h, ex, len(body), body)
        return _Req(raw, b"POST", path, endpoint, body, expect=expect)
    if kind == "post_chunked":
        raw = (b"POST " + path + b" HTTP/1.1\r\n" + h + ex
               + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body, cuts))
        return _Req(raw, b"POST", path, endpoint, body, expect=expect)
    if kind in _UNROUTED:
        if kind == "outside_path":  # a known host, a path no rule covers
            raw = b"GET /z/r%d HTTP/1.1\r\n%s\r\n" % (serial, h)
        elif kind == "unrouted":
            raw = b"GET %s HTTP/1.1\r\nHost: d.test\r\n\r\n" % path
        else:  # a body the proxy discards, then keeps the connection; its Expect gets no
            # 100 Continue (the model's expect stays False), as nginx's "r->expect_tested = 1"
            raw = b"POST %s HTTP/1.1\r\nHost: d.test\r\n%sContent-Length: %d\r\n\r\n%s" % (
                path, ex, len(_SMUGGLED), _SMUGGLED)
        return _Req(raw, b"GET" if kind != "unrouted_body" else b"POST", path, None, b"",
                    local=404)
    return _Req(_hostile(kind, path, host), b"GET", path, None, b"", local=400, closes=True)


def _hostile(kind: str, path: bytes, host: bytes) -> bytes:
    """A request for ``path`` with one hostile piece; a body, where it has one, hides a
    request for route b."""
    line = b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
    chunked = _chunked(_SMUGGLED, [])
    cl = b"Content-Length: %d\r\n" % len(_SMUGGLED)
    if kind == "dup_cl":
        return line + cl + cl + b"\r\n" + _SMUGGLED
    if kind == "cl_te":
        return line + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    if kind == "te_list":
        return line + b"Transfer-Encoding: chunked, identity\r\n\r\n" + chunked
    if kind == "obs_fold":
        return line + b"X-A: 1\r\n " + cl + b"\r\n" + _SMUGGLED
    if kind == "bare_lf":
        return line + b"X-A: 1\n" + cl + b"\r\n" + _SMUGGLED
    if kind == "authority":  # the absolute-form target names another route's host
        other = b"a.test" if host == b"b.test" else b"b.test"
        return b"GET http://" + other + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    assert kind == "two_hosts"
    return line + b"Host: b.test\r\n\r\n"


#: A request's shape, route, body, chunk cuts and Expect; a few pipelined in one stream.
_Spec = tuple[str, bytes, bytes, list[int], bool]
_SPEC = st.tuples(st.sampled_from(_VALID * 3 + _UNROUTED + _HOSTILE),
                  st.sampled_from(sorted(_ROUTES)), st.binary(max_size=12),
                  st.lists(st.integers(0, 20), max_size=3), st.booleans())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]
    out, last = [], 0
    for p in points:
        if p > last:
            out.append(data[last:p])
            last = p
    return out


@dataclass
class _Answer:
    """A complete answer the client must get: the upstream's (status, body), or a local status
    (body None: the proxy's own text)."""

    req: _Req
    status: int
    body: bytes | None


def _client_answers(received: bytes, answers: list[_Answer], partial: _Req | None
                    ) -> tuple[list[tuple[int, bytes]], int, h11.Connection]:
    """The answers ``received`` holds, parsed as the client would (h11), for the requests of
    ``answers`` then ``partial`` (one not answered yet, or whose answer was cut short); and the
    status of the answer begun for ``partial`` (0: none)."""
    client = h11.Connection(h11.CLIENT)
    if received:  # (b"" would be the end of the stream)
        client.receive_data(received)
    got: list[tuple[int, bytes]] = []
    reqs = [a.req for a in answers] + ([partial] if partial is not None else [])
    for req in reqs:
        headers = [("Host", "x")]
        if req.upgrade:
            headers += [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        client.send(h11.Request(method=req.method, target="/", headers=headers))
        client.send(h11.EndOfMessage())
        status, body = 0, b""
        while True:
            ev = client.next_event()
            if isinstance(ev, h11.InformationalResponse):
                if ev.status_code == 101:
                    got.append((101, b""))
                    return got, 0, client
                # 1xx other than 101 are dropped; the proxy's own 100 answers an Expect.
                assert ev.status_code == 100 and req.expect, (ev, received)
            elif isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                got.append((status, body))
                break
            else:
                assert ev is h11.NEED_DATA and req is partial, (ev, received, answers)
                return got, status, client
        if client.their_state is h11.MUST_CLOSE:
            break
        client.start_next_cycle()
    return got, 0, client


class CoreWithRoutes(RuleBasedStateMachine):
    """The core, three routes, a client connection at a time, a model of what must happen."""

    @initialize()
    def start(self) -> None:
        self.connections = 0
        self._fresh()

    def _fresh(self) -> None:
        """A new core and client connection (a run goes on after a connection is over)."""
        self.connections += 1
        event(f"connections >= {self.connections}")
        #: Every other connection ends after its second answer (nginx keepalive_requests).
        self.keep_alive_requests = 2 if self.connections % 2 == 0 else 1000
        #: Every request the fake upstreams parsed completely, in order: (endpoint, method,
        #: target, body); their app answers nothing, the rules answer.
        self.log: list[tuple[tuple[str, int], bytes, bytes, bytes]] = []
        routes = [Route(p.decode(), host=h.decode(), endpoints=list(eps), service=n.decode())
                  for n, (h, p, eps) in _ROUTES.items()]
        self.pair = ProxyPair(routes, ProxySettings(keep_alive_requests=self.keep_alive_requests),
                              app=self._record)
        self.serial = 0
        self.queue: list[_Req] = []  # sent, not answered yet, oldest first
        self.expected_log: list[tuple[tuple[str, int], bytes, bytes, bytes]] = []
        self.answers: list[_Answer] = []
        self.owed = b""  # the rest of the last request (its body, or its head), not sent yet
        self.owed_req: _Req | None = None  # ... that request
        self.owed_head = False  # ... whose head is not all sent
        self.finished = False  # the model says the connection is over (closed or tunnel)
        self.closing = False  # ... and closed by the proxy
        #: A request whose answer was cut short or never came (the connection is over).
        self.truncated: _Req | None = None
        self.truncated_status = 0  # ... and its status
        self.tunnel: FakeUpstream | None = None  # the upstream of a live tunnel
        self.switched = False  # a 101 was forwarded: the client's bytes after it are not HTTP
        self.extra_records = 0  # records of requests aborted (no complete answer)
        self.unrecorded = 0  # answers whose record waits for their discarded body
        #: An upstream answer begun, not all sent: (upstream, bytes still to send, shape,
        #: status, body, where stray bytes after it begin).
        self.responding: tuple[FakeUpstream, bytes, str, int, bytes, int | None] | None = None

    def _record(self, request: h11.Request, body: bytes, up: FakeUpstream) -> None:
        self.log.append((up.endpoint, request.method, request.target, body))

    # ------------------------------------------------------------------ the model
    def _advance(self) -> None:
        """The proxy takes up the oldest unanswered request: answers it itself, or forwards it
        (complete at the upstream once all its bytes were sent)."""
        while self.queue and not self.finished:
            head = self.queue[0]
            if head.local is None:
                if not head.reached and head is not self.owed_req:
                    head.reached = True
                    assert head.endpoint is not None
                    self.expected_log.append((head.endpoint, head.method, head.path,
                                              head.body))
                return
            self.queue.pop(0)
            self._answer(_Answer(head, head.local, None))
            if head.closes:
                self._close()

    def _answer(self, answer: _Answer) -> None:
        """An answer the client gets in full; the last one keep_alive_requests allows closes
        the connection (nginx: "r->connection->requests >= clcf->keepalive_requests"), and
        nothing pipelined behind it is read."""
        self.answers.append(answer)
        if len(self.answers) >= self.keep_alive_requests:
            self._close()

    def _cut_short(self) -> None:
        """The answer begun is never finished: recorded, and the connection closed."""
        assert self.responding is not None
        self.truncated, self.truncated_status = self.queue[0], self.responding[3]
        self.extra_records = 1
        self._close()

    def _close(self) -> None:
        self.finished = self.closing = True
        self.queue.clear()
        self.tunnel = None  # (a tunnel ends with the connection)
        self.responding = None
        self.unrecorded = 0  # (a body being discarded too: its record is written)

    def _current(self) -> FakeUpstream | None:
        """The upstream connection holding the oldest unanswered request's head."""
        if self.finished or not self.queue or self.queue[0].local is not None:
            return None
        head = self.queue[0]
        for up in self.pair.live.values():
            if (up.endpoint == head.endpoint and not up.closed
                    and up._req is not None and up._req.target == head.path):
                return up
        return None

    # ------------------------------------------------------------------ client steps
    @precondition(lambda self: not self.finished and not self.owed)
    @rule(specs=st.lists(_SPEC, min_size=1, max_size=3),
          cuts=st.lists(st.integers(0, 400), max_size=4))
    def send_requests(self, specs: list[_Spec], cuts: list[int]) -> None:
        """Pipelined requests in one stream, split at random points."""
        event("requests sent behind one in flight" if self.queue else "requests sent")
        reqs = self._built(specs)
        self.queue += reqs
        self._send(b"".join(r.raw for r in reqs), cuts)
        self._advance()
        self._next_if_over()

    def _built(self, specs: list[_Spec]) -> list[_Req]:
        reqs = []
        for kind, route, body, chunk_cuts, expect in specs:
            self.serial += 1
            event("request " + kind)
            reqs.append(_build(kind, route, self.serial, body, chunk_cuts, expect))
        return reqs

    @precondition(lambda self: not self.finished and not self.owed and not self.queue)
    @rule(route=st.sampled_from(sorted(_ROUTES)), body=st.binary(min_size=2, max_size=12),
          chunked=st.booleans(), expect=st.booleans(), keep=st.integers(1, 30))
    def send_unfinished(self, route: bytes, body: bytes, chunked: bool, expect: bool,
                        keep: int) -> None:
        """A request whose body is not all sent yet."""
        self.serial += 1
        req = _build("post_chunked" if chunked else "post_cl", route, self.serial, body, [],
                     expect)
        owed = 1 + keep % (len(body) - 1 + (5 if chunked else 0))
        self._send_unfinished(req, len(req.raw) - owed, head=False)

    @precondition(lambda self: not self.finished and not self.owed)
    @rule(kind=st.sampled_from(("get", "head", "post_cl", "post_chunked")),
          route=st.sampled_from(sorted(_ROUTES)), body=st.binary(max_size=12),
          cut=st.integers(0, 200))
    def send_unfinished_head(self, kind: str, route: bytes, body: bytes, cut: int) -> None:
        """A request whose head is not all sent yet (behind requests in flight, or not)."""
        self.serial += 1
        req = _build(kind, route, self.serial, body, [], False)
        self._send_unfinished(req, 1 + cut % (req.raw.index(b"\r\n\r\n") - 1), head=True)

    def _send_unfinished(self, req: _Req, sent: int, head: bool) -> None:
        self.owed, self.owed_req, self.owed_head = req.raw[sent:], req, head
        event("head unfinished" if head else "body unfinished")
        self.queue.append(req)
        self._send(req.raw[:sent], [])
        self._advance()
        self._next_if_over()

    def _head_owes(self) -> bool:
        """Bytes of the oldest unanswered request are still to come."""
        return bool(self.owed) and bool(self.queue) and self.queue[0] is self.owed_req

    @precondition(lambda self: not self.finished and bool(self.owed))
    @rule(cuts=st.lists(st.integers(0, 60), max_size=2), behind=st.lists(_SPEC, max_size=3))
    def finish_body(self, cuts: list[int], behind: list[_Spec]) -> None:
        """The rest of the unfinished request, and with ``behind`` requests pipelined after it
        in the same stream (x43: behind a body still coming, and behind one whose answer
        began early, which closes the connection after that answer: they are never read)."""
        if behind:
            event("requests pipelined behind an unfinished "
                  + ("body answered early" if self.responding and self._head_owes() else
                     "body answered locally" if self.owed_req not in self.queue else "body"))
        owed, self.owed, self.owed_req = self.owed, b"", None
        self.unrecorded = 0
        reqs = self._built(behind)
        self.queue += reqs
        self._send(owed + b"".join(r.raw for r in reqs), cuts)
        self._advance()
        self._next_if_over()

    @precondition(lambda self: not self.finished or self.tunnel is not None)
    @rule()
    def client_close(self) -> None:
        event("client closes" + (" mid-request" if self.queue else ""))
        self.pair.eof()
        if self.responding is not None:
            self._cut_short()
        else:
            # A request sent but not answered is recorded as aborted (499, or 400 mid-body).
            self.extra_records = 1 if self.queue else 0
            self.truncated = self.queue[0] if self.queue else None  # (a 100 Continue at most)
            self._close()
        self._next_if_over()

    @precondition(lambda self: self.tunnel is not None and not self.pair.closed)
    @rule(data=st.binary(min_size=1, max_size=20))
    def tunnel_bytes(self, data: bytes) -> None:
        """After a 101 the client's bytes go to the upgraded upstream, and only there."""
        assert self.tunnel is not None
        others = [(u, len(u.raw)) for u in self.pair.upstreams if u is not self.tunnel]
        out = self.pair.send(data)
        assert bytes(self.tunnel.raw).endswith(data)
        assert out == b"echo:" + data
        assert all(len(u.raw) == n for u, n in others)

    def _next_if_over(self) -> None:
        """Once the model says the connection is over (closed, not a tunnel), check it as it
        ends, then go on with a new one."""
        if self.finished and self.tunnel is None:
            self.upstreams_saw_exactly_their_requests()
            self.client_got_its_answers_in_order()
            self.one_record_per_answer()
            self._fresh()

    def _send(self, data: bytes, cuts: list[int]) -> None:
        for piece in _split(data, cuts):
            if self.pair.closed:
                break
            self.pair.send(piece)

    # ------------------------------------------------------------------ upstream steps
    @precondition(lambda self: self._current() is not None and self.responding is None)
    @rule(shape=st.sampled_from(["cl", "chunked", "1xx", "close_after", "close_mid",
                                 "close_before", "extra", "unasked_101"]),
          status=st.sampled_from([200, 201, 403, 500]),
          informational=st.sampled_from([100, 103]),
          cuts=st.lists(st.integers(0, 200), max_size=3), hold=st.integers(0, 3))
    def upstream_answers(self, shape: str, status: int, informational: int,
                         cuts: list[int], hold: int) -> None:
        """The upstream answers; with ``hold``, the last bytes of the body come later
        (``upstream_finishes``), so that other steps happen mid-response."""
        up = self._current()
        assert up is not None
        head = self.queue[0]
        event(f"upstream answers {shape}" + (" early" if self._head_owes() else ""))
        if head.method == b"HEAD" and shape == "close_mid":
            shape = "cl"  # (no body to cut)
        if shape == "close_before":
            self._upstream_closes_before_answering(up, head)
            return
        if shape == "unasked_101" and not head.upgrade:
            # A 101 to a request that asked for no upgrade is an invalid head: 502, not
            # retried (proxy_next_upstream has no invalid_header by default).
            self.pair.upstream_send(up, b"HTTP/1.1 101 Switching Protocols\r\n"
                                        b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\nxyz")
            self._answer_locally(502)
            self._next_if_over()
            return
        body = _NAME_OF[up.endpoint] + b"|" + head.path
        if head.method == b"HEAD":  # the head announces the body a GET would get
            data = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
            body = b""
        elif shape == "chunked":
            data = (b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status
                    + _chunked(body, cuts))
        else:
            data = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (
                status, len(body), b"Connection: close\r\n" if shape == "close_after" else b"",
                body)
        held = 0 if not body or shape == "close_mid" else 1 + hold % (len(data) - data.index(
            b"\r\n\r\n") - 4)  # some body bytes, never any of the head
        if shape == "1xx":
            data = b"HTTP/1.1 %d Info\r\nLink: </x>\r\n\r\n" % informational + data
        if shape == "close_mid":
            data = data[:-3]
        rest = b""
        if hold and held:
            event("answer held mid-body")
            data, rest = data[:-held], data[-held:]
        glued = None  # where the stray bytes begin: they arrive with the answer's last byte
        if shape == "extra":  # bytes after the answer: never the answer to a next request
            glued = len(rest) if hold and held else len(data) + len(rest)
            rest += b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nFAKE"
        if hold and held:
            # (an answer begun before the request's body ended closes the connection, however
            # the body goes on: "early" stays in the shape)
            self.responding = (up, rest, shape + (" early" if self._head_owes() else ""),
                               status, body, glued)
            glued = None
        else:
            data += rest
        self._upstream_writes(up, data, cuts, glued)
        if shape == "close_mid":  # the answer is cut short: the client connection closes
            if up in self.pair.live.values():
                self.pair.upstream_send(up, b"", close=True)
            self.truncated, self.truncated_status = head, status
            self.extra_records = 1
            self._close()
        elif self.responding is None:
            self._answered(shape, status, body)
        self._next_if_over()

    @precondition(lambda self: self.responding is not None and not self.finished)
    @rule(cuts=st.lists(st.integers(0, 60), max_size=2))
    def upstream_finishes(self, cuts: list[int]) -> None:
        assert self.responding is not None
        up, rest, shape, status, body, glued = self.responding
        self.responding = None
        self._upstream_writes(up, rest, cuts, glued)
        self._answered(shape, status, body)
        self._next_if_over()

    def _upstream_writes(self, up: FakeUpstream, data: bytes, cuts: list[int],
                         glued: int | None = None) -> None:
        """``data`` in pieces cut at ``cuts``, but not at ``glued``: stray bytes after an
        answer that came in a later read than its last byte would reach a connection the proxy
        rightly pooled and reused meanwhile, as the answer to the request it sent there (nginx
        reuses it as well: only bytes read with the answer, or while it idles, close it)."""
        if glued is not None:
            cuts = [c for c in cuts if c % (len(data) + 1) != glued]
        for piece in _split(data, cuts):
            if up not in self.pair.live.values():
                break  # the proxy closed it (what follows an answer is not read)
            self.pair.upstream_send(up, piece)

    def _answered(self, shape: str, status: int, body: bytes) -> None:
        """The upstream's answer to the oldest request is all sent."""
        up = self._current()
        if shape.startswith("close_after") and up is not None:
            self.pair.upstream_send(up, b"", close=True)
        early = self._head_owes() or shape.endswith(" early")
        self._answer(_Answer(self.queue.pop(0), status, body))
        if early:  # an answer begun before the request's body ended: closed after it
            self._close()
        self._advance()

    def _upstream_closes_before_answering(self, up: FakeUpstream, head: _Req) -> None:
        """A pooled connection found closed is tried again, once, on a fresh connection for a
        request that may be sent twice (Go's Transport rule), without counting as a try: to the
        route's next untried endpoint, as nginx asks its balancer again (session 36's x46), the
        same one when none is untried; otherwise, with no other endpoint to try, 502 (nginx's
        proxy_next_upstream error)."""
        reused = up.uses > 1
        self.pair.upstream_send(up, b"", close=True)
        if reused and head.method in (b"GET", b"HEAD") and not self._head_owes():
            event("pooled connection closed: retried")
            endpoints = _ROUTES[head.route][2]
            if head.tried < len(endpoints):
                head.endpoint = endpoints[head.tried]
                head.tried += 1
            assert head.endpoint is not None
            self.expected_log.append((head.endpoint, head.method, head.path, head.body))
        else:
            self._try_failed(head, 502)
        self._next_if_over()

    def _try_failed(self, head: _Req, status: int) -> None:
        """A try failed before any answer: the next endpoint of the route for a request that
        may be sent again (nginx's ngx_http_upstream_next: idempotent once sent, and the body
        held), else ``status`` answered locally."""
        endpoints = _ROUTES[head.route][2]
        if (head.method in (b"GET", b"HEAD") and head.tried < min(len(endpoints), _TRIES)):
            event("failed try: next endpoint")
            head.endpoint = endpoints[head.tried]
            head.tried += 1
            self.expected_log.append((head.endpoint, head.method, head.path, head.body))
            return
        self._answer_locally(status)

    def _answer_locally(self, status: int) -> None:
        """The proxy answers the oldest request itself after a failed try. The rest of its
        body, if any, is read and discarded (its record is written once the body is: nginx
        logs a request as it ends)."""
        self.unrecorded = 1 if self._head_owes() else 0
        self._answer(_Answer(self.queue.pop(0), status, None))
        self._advance()

    @precondition(lambda self: self._current() is not None and self.queue[0].upgrade
                  and self.responding is None)
    @rule()
    def upstream_switches(self) -> None:
        up = self._current()
        assert up is not None
        up.tunnel = True  # the fake upstream echoes from now on
        self.pair.upstream_send(
            up, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")
        event("101: tunnel")
        self.answers.append(_Answer(self.queue.pop(0), 101, b""))
        # What the client sent behind the Upgrade request belongs to the new protocol: it
        # goes to the upgraded upstream, as nginx's ngx_http_upstream_upgrade sends what
        # header_in holds past the request; the requests in it are never answered over HTTP.
        behind = b"".join(r.raw for r in self.queue)
        behind = behind[:len(behind) - len(self.owed)]  # (what was sent of it)
        self.owed = b""  # (the rest would be tunnel bytes too)
        if behind:
            event("101 with requests pipelined behind")
        assert bytes(up.raw).endswith(behind), (bytes(up.raw), behind)
        self.queue.clear()
        self.tunnel = up
        self.switched = self.finished = True

    @precondition(lambda self: self.pair.timer is not None and not self.pair.closed)
    @rule()
    def timer_fires(self) -> None:
        assert self.pair.timer is not None
        kind = self.pair.timer[0]
        event(f"timer {kind.value}")
        self.pair.fire()
        if self.tunnel is not None:  # proxy_read_timeout ends a tunnel too
            assert kind is TimerKind.UPSTREAM_READ, kind
            self._close()
        elif self.responding is not None:  # an answer begun: cut short, closed
            assert kind is (TimerKind.BODY if self._head_owes() else TimerKind.UPSTREAM_READ), kind
            self._cut_short()
        elif self._head_owes():  # client_header_timeout / client_body_timeout: 408 and close
            assert kind is (TimerKind.HEAD if self.owed_head else TimerKind.BODY), kind
            req = self.queue.pop(0)
            # (a head not all read is answered as nginx does, body included, even for HEAD)
            self.answers.append(_Answer(replace(req, method=b"GET") if self.owed_head else req,
                                        408, None))
            self._close()
        elif self.owed and not self.queue:  # a discarded body's timeout: closed
            assert kind is TimerKind.BODY, kind
            self._close()
        elif self.queue:  # proxy_read_timeout: the next endpoint, or 504; the connection stays
            assert kind is TimerKind.UPSTREAM_READ, kind
            self._try_failed(self.queue[0], 504)
        else:  # keep-alive (first request: header) timeout: closed, nothing answered
            assert kind in (TimerKind.IDLE, TimerKind.HEAD), kind
            self._close()
        self._next_if_over()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def upstreams_saw_exactly_their_requests(self) -> None:
        if not hasattr(self, "pair"):
            return
        assert self.log == self.expected_log, (self.log, self.expected_log)
        current = self._current()
        for up in self.pair.upstreams:
            if up.tunnel or up.closed or up is current:
                continue
            # An idle connection holds nothing half-parsed: no byte of another request.
            assert up._parser.their_state is h11.IDLE, bytes(up.raw)
            assert up._parser.trailing_data[0] == b"", bytes(up.raw)

    @invariant()
    def client_got_its_answers_in_order(self) -> None:
        if not hasattr(self, "pair"):
            return
        partial = self.truncated or (self.queue[0] if self.queue else None)
        got, begun, client = _client_answers(bytes(self.pair.received), self.answers, partial)
        # Only an answer cut short or still coming may be seen begun and not ended.
        begun_status = self.responding[3] if self.responding else self.truncated_status
        assert begun == begun_status, (begun, bytes(self.pair.received))
        want = [(a.status, a.body) for a in self.answers]
        assert [s for s, _ in got] == [s for s, _ in want], (got, want)
        for (_, body), (_, expected) in zip(got, want):
            assert expected is None or body == expected, (body, expected)
        if not self.switched:
            assert client.trailing_data[0] == b"", bytes(self.pair.received)
        if self.closing:
            assert self.pair.closed
        else:
            assert not self.pair.closed
        if any(a.req.closes for a in self.answers):
            assert 400 <= self.answers[-1].status < 500 and self.answers[-1].req.closes

    @invariant()
    def one_record_per_answer(self) -> None:
        if not hasattr(self, "pair"):
            return
        # The 101's record is written when the tunnel ends.
        answered = len(self.answers) - (1 if self.tunnel is not None else 0)
        answered -= self.unrecorded
        assert len(self.pair.records) == answered + self.extra_records, (
            self.pair.records, self.answers)
        # ... each with the status its answer had, in order.
        assert [r.status for r in self.pair.records[:answered]] == [
            a.status for a in self.answers[:answered]], (self.pair.records, self.answers)


CoreWithRoutes.TestCase.settings = settings(
    max_examples=examples(2.0), stateful_step_count=30, deadline=None)
test_core_with_routes = CoreWithRoutes.TestCase
