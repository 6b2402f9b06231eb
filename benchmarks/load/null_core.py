"""The asyncio server alone: ProxyServer with a canned core that parses nothing (it answers
every client read with one upstream round trip). Measures what the server, the event loop and
the socket calls cost per request, to set against the whole proxy. Usage: null_core.py PORT UPSTREAM_PORT"""
import asyncio, sys, itertools
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from ingresslib.proxy import _server
from ingresslib.proxy._actions import *
UP = int(sys.argv[2]); PORT = int(sys.argv[1])
REQ = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
class Conn:
    idle = True; closed = False
    reading_wanted = True  # never holds client bytes (the server asks after each batch)
    upstream_reading_wanted = True  # never holds response bytes (limit-rate: session 26)
    def plain_body(self, n): return False
    def __init__(self): self.ids = itertools.count(1); self.cur = 0
    def start(self, now): return [SetTimer(TimerKind.HEAD, 60.0)]
    def receive_data(self, data, now):
        self.cur = next(self.ids); self.idle = False
        return [SetTimer(TimerKind.HEAD, 60.0), OpenUpstream(self.cur, ("127.0.0.1", UP), False, 5.0, 60.0)]
    def upstream_connected(self, cid, now, reused=False):
        return [SendUpstream(cid, REQ), SetTimer(TimerKind.UPSTREAM_READ, 60.0)]
    def upstream_data(self, cid, data, now):
        self.idle = True
        return [SendDownstream(data), CloseUpstream(cid, True), SetTimer(TimerKind.IDLE, 75.0)]
    def upstream_eof(self, cid, now): return [CloseDownstream()]
    upstream_failed = upstream_eof
    def receive_eof(self, now): self.closed = True; return [CloseDownstream()]
    def abort(self, now): return [CloseDownstream()]
    def timer_expired(self, k, now): return []
class P:
    def __init__(self, router, settings, **kw):
        from ingresslib.proxy._settings import ProxySettings
        self.router = router; self.settings = settings or ProxySettings()
    def connection(self, peer, **kw): return Conn()
    def log_annotation_warnings(self): pass  # ProxyServer.start asks (since 5ce405f)
import ingresslib.proxy._connection as c
c.Proxy = P
async def main():
    s = _server.ProxyServer(None)
    await s.start(("127.0.0.1", PORT))
    await asyncio.Event().wait()
asyncio.run(main())
