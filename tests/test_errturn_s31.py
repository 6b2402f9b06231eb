"""Session 31, ``errturn``: the error page of ``custom-http-errors`` takes a round-robin turn of
the default backend only when its upstream (IngressASGI: its app) is reached.

nginx picks the peer in the balancer phase, at the connect (ingress-nginx ``balancer.lua``
``balance()``, run by ``balancer_by_lua`` from ngx_http_upstream_connect). An intercepted
answer (``proxy_intercept_errors``) moves the request to the named location
``@custom_<upstream>_<code>`` (nginx.tmpl ``CUSTOM_ERRORS``), whose ``proxy_pass`` connects to
the default backend: its peer is picked then. ``Router.error_page`` picks (a turn of the
default backend's rotation) when the answer is intercepted, so an error page that never
reaches its upstream gives that turn back (``Router.give_back``).

Defects fixed (each ``test_fix_*`` failed before):

* IngressASGI: an intercepted answer whose error page's app was never called (the client got
  a 413 first, the request cancelled while the app still ran, the default backend's Service
  played by no app) kept the turn its pick took: with every other error page abandoned, every
  served error page came from one endpoint.

Checked and found right (tests kept as guards): in the proxy core the error page's pick and
its connect are one step (``ClientConnection._error_page`` calls ``_open``, which records the
try, right after ``router.error_page``): a client gone before the intercepted head takes no
turn (nothing is picked), one gone after the error page's connect took it as nginx does; the
original request's turn is never given back (it connected); an error page app that raises
was reached (its turn kept).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._router import Decision

from _proxy_harness import FakeUpstream, ProxyPair, Reply, status_of
from test_custom_errors_s25 import ANN, P, _docs

# Every test below runs once per implementation of the counters (the autouse fixture).
from _counters import counters  # noqa: F401

WEB1, WEB2 = ("10.0.0.1", 80), ("10.0.0.2", 80)
ERR1, ERR2 = ("10.9.0.1", 9090), ("10.9.0.2", 9090)
#: The served ones' error pages, by nginx: the abandoned ones took no turn.
ALTERNATE = [ERR1, ERR2] * 3


def _router(annotations: dict[str, str] | None = None) -> Router:
    """a.test/ to ``web`` (two endpoints), custom-http-errors 404,503 answered by ``errors``
    (two endpoints)."""
    return Router(parse_manifests(_docs(annotations, web=("10.0.0.1", "10.0.0.2"),
                                        errors=("10.9.0.1", "10.9.0.2"))))


# ---------------------------------------------------------------- IngressASGI


class _Web:
    """``default/web``: answers 404 (intercepted), remembering each request's Decision. Path
    ``/big``: reads the whole body first (over proxy-body-size: the client gets 413); path
    ``/hang``: sends its 404 head, then waits (cancelled by the test)."""

    def __init__(self) -> None:
        self.seen: list[Decision] = []
        self.hanging = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope["ingresslib.decision"])
        if scope["path"] == "/big":
            while True:
                m = await receive()
                if m["type"] != "http.request" or not m.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 404, "headers": []})
        if scope["path"] == "/hang":
            self.hanging.set()
            await asyncio.Event().wait()
        await send({"type": "http.response.body", "body": b"nf"})


class _Errors:
    """``default/errors``: the error page (418), remembering each one's Decision; raises
    after its answer when ``fail``."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Decision] = []
        self.fail = fail

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope["ingresslib.decision"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"EP"})
        if self.fail:
            raise RuntimeError("the error page's app failed")


def _call(asgi: IngressASGI, web: _Web, path: str = "/x",
          chunks: tuple[bytes, ...] = (b"x",)) -> int | None:
    """One POST to a.test ``path``: the status the client got (None: cancelled first)."""
    sent: list[Any] = []
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}

    async def main() -> None:
        web.hanging = asyncio.Event()
        task = asyncio.ensure_future(asgi(scope, receive, send))
        if path == "/hang":
            # The ASGI server cancels the request (its client gone) while the app waits.
            await asyncio.wait_for(web.hanging.wait(), 5)
            task.cancel()
        try:
            await asyncio.wait_for(task, 5)
        except RuntimeError:
            pass  # an app's own exception, passed on to the ASGI server

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        return None
    starts = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    return int(starts[0])


ABANDONED = [
    # The app read a body over proxy-body-size (the client got 413), then answered 404.
    pytest.param("/big", (b"a" * 8, b"b" * 8, b"c" * 8), 413, id="413-first"),
    # The request cancelled after the app's 404 head, before its error page.
    pytest.param("/hang", (b"x",), None, id="cancelled"),
]


@pytest.mark.parametrize(("path", "chunks", "status"), ABANDONED)
def test_fix_asgi_an_error_page_never_served_takes_no_turn(
        path: str, chunks: tuple[bytes, ...], status: int | None) -> None:
    web, errors = _Web(), _Errors()
    asgi = IngressASGI(_router({**ANN, P + "proxy-body-size": "10"}),
                       {"default/web": web, "default/errors": errors})
    for _ in range(6):
        assert _call(asgi, web) == 418
        assert _call(asgi, web, path, chunks) == status
    assert [d.endpoint for d in errors.seen] == ALTERNATE
    # The original requests all reached their app: their turns stand.
    assert [d.endpoint for d in web.seen] == [WEB1, WEB2] * 6


def test_fix_asgi_a_default_backend_no_app_plays_takes_no_turn() -> None:
    # The same router behind an adapter that mounts no app for default/errors: its
    # intercepted answers pass untouched (no error page), and take no turn of the errors'.
    router = _router()
    web, errors = _Web(), _Errors()
    asgi = IngressASGI(router, {"default/web": web, "default/errors": errors})
    unmounted = IngressASGI(router, {"default/web": web})
    for _ in range(6):
        assert _call(asgi, web) == 418
        assert _call(unmounted, web) == 404
    assert [d.endpoint for d in errors.seen] == ALTERNATE


def test_asgi_an_error_page_app_that_raises_was_reached() -> None:
    web, errors = _Web(), _Errors(fail=True)
    asgi = IngressASGI(_router(), {"default/web": web, "default/errors": errors})
    for _ in range(4):
        assert _call(asgi, web) == 418
    assert [d.endpoint for d in errors.seen] == [ERR1, ERR2] * 2


def test_asgi_a_failing_give_back_is_logged_and_the_answer_stands(
        caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Router):
        def give_back(self, *args: Any, **kw: Any) -> None:
            raise ValueError("give_back failed")

    web = _Web()
    router = Failing(parse_manifests(_docs(errors=("10.9.0.1", "10.9.0.2"))))
    unmounted = IngressASGI(router, {"default/web": web})
    with caplog.at_level(logging.ERROR):
        assert _call(unmounted, web) == 404
    assert any("router.give_back" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- the proxy core

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


def _app(errors_answer: bool = True, web_answers: bool = True) -> Any:
    """The upstreams: ``web`` answers 404 (or never), ``errors`` its page 418 (or never)."""
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint in (ERR1, ERR2):
            return Reply(b"HTTP/1.1 418 T\r\nContent-Length: 2\r\n\r\nEP") if errors_answer \
                else None
        return Reply(b"HTTP/1.1 404 X\r\nContent-Length: 2\r\n\r\nUP") if web_answers else None
    return app


def _served(router: Router) -> tuple[tuple[str, int], ...]:
    p = ProxyPair(router=router, app=_app())
    assert status_of(p.send(GET)) == 418
    [rec] = p.records
    assert rec.upstream_statuses == (404, 418)
    return rec.upstreams


def test_core_client_gone_before_the_intercepted_head_takes_no_error_page_turn() -> None:
    # Nothing intercepted, nothing picked: the error page's rotation never moved.
    router = _router()
    errs, webs = [], []
    for _ in range(6):
        web, err = _served(router)
        errs.append(err)
        webs.append(web)
        p = ProxyPair(router=router, app=_app(web_answers=False))
        p.send(GET)
        p.eof()
        [rec] = p.records
        assert rec.status == 499 and len(rec.upstreams) == 1
        webs.append(rec.upstreams[0])
    assert errs == ALTERNATE
    assert webs == [WEB1, WEB2] * 6  # the original requests connected: their turns stand


def test_core_client_gone_after_the_error_page_connect_keeps_its_turn() -> None:
    # The error page's try began (its connect: nginx's balancer picked there): the turn is
    # taken, whatever the client does next; the original request's is not given back either.
    router = _router()
    errs = []
    for _ in range(3):
        errs.append(_served(router)[1])
        p = ProxyPair(router=router, app=_app(errors_answer=False))
        p.send(GET)
        assert len(p.upstreams) == 2  # the error page's upstream opened
        p.eof()
        [rec] = p.records
        assert rec.status == 499 and rec.upstream_statuses[0] == 404
        errs.append(rec.upstreams[1])
    # Every error page connected took its turn: the served ones (even places) all ERR1.
    assert errs == [ERR1, ERR2] * 3
