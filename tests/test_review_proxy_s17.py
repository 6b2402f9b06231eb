"""Review (R17d) of session 17's proxy core change (d2f31cc) and two findings of other reviews.

1. A request no rule routes: nginx answers it in the phase its server gives, and the access
   log names the upstream from there: the host's server-level app-root for ``/`` is the
   server block's ``"-"`` (it logged ``upstream-default-backend``); the from-to-www-redirect
   twin is a server of its own that sets no ``$proxy_upstream_name`` (logged empty).
2. (Section numbers as the report: the 413 of a request no rule routes is proposed, not
   here: it needs the ASGI adapter's change too.)
3. ``from ingresslib.proxy import ProxyServr`` (misspelt) is a ``mypy --strict`` error: the
   lazy ``__getattr__`` typed every unknown name ``Any``.
4. ``ProxyServer.urls``: every socket of each listener, an IPv6 zone as ``%25`` (RFC 6874),
   the same function as ``serve``'s lines.
5. Guards of the bare-LF chunk-line check: valid bodies split at every byte, pipelined
   after; the bytes it scans are linear in the line's length when it arrives byte by byte.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import DEFAULT_UPSTREAM, upstream_names
from ingresslib.proxy import _chunked
from ingresslib.proxy._headers import has_control
from tests._proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, routed_pair, status_of

from _serve_helpers import localhost_is_both, zone_scoped_ipv6_names

ROOT = Path(__file__).resolve().parent.parent
P = "nginx.ingress.kubernetes.io/"

_SERVICE = WEB_SERVICE_YAML


def _pair(*ingresses: str) -> ProxyPair:
    """A core over a real router of ``ingresses`` (no request here reaches an upstream)."""
    return routed_pair(*ingresses)


def _logged(p: ProxyPair) -> list[tuple[int, str]]:
    return [(r.status, upstream_names(r)[0]) for r in p.records]


# 1. Where an unrouted request is answered names its upstream -----------------------------------


def test_unrouted_app_root_logs_the_servers_dash() -> None:
    """nginx.tmpl's server-level "if ($uri = /) { return 302 ..." runs for every request to
    the server, after its ``set $proxy_upstream_name "-";``: a host whose rules do not cover
    ``/`` still gets it, and nginx never reaches the default backend's location."""
    p = _pair(ingress_yaml("a", "a.test", {P + "app-root": "/app"}, path="/foo"))
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 302 and b"location: http://a.test/app" in out.lower()
    assert _logged(p) == [(302, "-")]


def test_www_twin_redirect_logs_no_upstream_name() -> None:
    """The twin's server (nginx.tmpl ``RedirectServers``: "server_name {{ $redirect.From
    }}; ... return {{ $all.Cfg.HTTPRedirectCode }} $redirect_to;") never sets
    ``$proxy_upstream_name``: logged empty, not as the default backend."""
    p = _pair(ingress_yaml("a", "a.test", {P + "from-to-www-redirect": "true"}))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: www.a.test\r\n\r\n")
    assert status_of(out) == 308
    assert _logged(p) == [(308, "")]


def test_unrouted_ssl_redirect_still_logs_the_default_backend() -> None:
    """guard: the server's ``location /`` redirects (lua_ingress.lua in that location) run
    after its ``set $proxy_upstream_name``."""
    p = _pair(ingress_yaml("a", "a.test", {P + "force-ssl-redirect": "true"}, path="/foo"))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 308
    assert _logged(p) == [(308, DEFAULT_UPSTREAM)]


# 3. mypy: a misspelt name of ingresslib.proxy ------------------------------------------------

_USER = """\
from ingresslib.proxy import ProxyServer, ProxySettings
import ingresslib.proxy

server: ProxyServer = ingresslib.proxy.ProxyServer(None, ProxySettings())
reveal_type(ingresslib.proxy.UpstreamPool)
from ingresslib.proxy import ProxyServr
ingresslib.proxy.UpstreamPol
"""


def test_mypy_strict_refuses_a_misspelt_name_of_the_proxy_package(
        tmp_path: Path, mypy_cache_dir: Path) -> None:
    # Regression: the module ``__getattr__`` (PEP 562) of the lazy ProxyServer returned Any,
    # and mypy and pyright type every name the module does not define by it.
    (tmp_path / "user.py").write_text(_USER, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache_dir),
                          "--follow-imports=silent", "user.py"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "MYPYPATH": str(ROOT)})
    text = out.stdout + out.stderr
    assert [line for line in text.splitlines() if line.startswith("user.py:5: note: Revealed")
            and "ingresslib.proxy._server.UpstreamPool" in line], text
    assert 'user.py:6: error: Module "ingresslib.proxy" has no attribute "ProxyServr"' in text, \
        text
    assert 'user.py:7: error: Module has no attribute "UpstreamPol"' in text, text
    assert "Found 2 errors in 1 file" in text, text


def test_the_proxy_server_is_still_imported_on_first_use() -> None:
    """guard: the core imports without the asyncio server; the names still resolve."""
    code = ("import sys, ingresslib.proxy as p\n"
            "print('ingresslib.proxy._server' in sys.modules)\n"
            "print(p.ProxyServer.__name__, p.UpstreamPool.__name__)\n"
            "try:\n    p.ProxyServr\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout == ("False\nProxyServer UpstreamPool\n"
                          "module 'ingresslib.proxy' has no attribute 'ProxyServr'\n"), out.stderr


# 4. ProxyServer.urls ---------------------------------------------------------------------------


def _urls(listen: tuple[str, int], tls_listen: tuple[str, int] | None = None) -> list[str]:
    from ingresslib.proxy import ProxyServer

    async def run() -> list[str]:
        server = ProxyServer(Router(parse_manifests(ingress_yaml("a", "a.test"))))
        await server.start(listen=listen, tls_listen=tls_listen)
        try:
            return server.urls
        finally:
            await server.shutdown(0)

    return asyncio.run(run())


@pytest.mark.network
def test_urls_lists_every_socket_of_a_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: ``localhost:0`` binds 127.0.0.1 and ::1, each on a free port of its own;
    # ``urls`` named the first socket only (in the order of a set: either one).
    localhost_is_both(monkeypatch)
    urls = _urls(("localhost", 0))
    assert [u.rpartition(":")[0] for u in urls] == ["http://127.0.0.1", "http://[::1]"], urls
    assert all(u.rpartition(":")[2] != "0" for u in urls)


@pytest.mark.network
def test_urls_of_one_socket_is_its_one_url() -> None:
    """guard: ``urls[0]`` of a single-address listener, as docs/observability.md reads it."""
    [url] = _urls(("127.0.0.1", 0))
    assert url.startswith("http://127.0.0.1:") and int(url.rpartition(":")[2]) > 0


@pytest.mark.network
def test_urls_write_an_ipv6_zone_as_percent_25(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: RFC 6874 section 2, 'IPv6addrz = IPv6address "%25" ZoneID'; urls wrote
    # "http://[fe80::1%lo]:P", which curl refuses. (No link-local listening here: the ::1
    # socket reports a zone-scoped name.)
    zone_scoped_ipv6_names(monkeypatch)
    [url] = _urls(("::1", 0))
    assert url.startswith("http://[fe80::1%25lo]:"), url


# 5. The bare-LF chunk-line check: guards -------------------------------------------------------

_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
_NEXT = b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
_VALID = (
    b"5\r\nhello\r\n0\r\n\r\n",
    b'5;a="b;c\\"d"\r\nhello\r\n0\r\n\r\n',  # a quoted-string extension, quoted-pair too
    b'5;\ta="x\ty"\r\nhello\r\n0\r\n\r\n',  # HTAB (BWS, qdtext)
    b'5;q="\xc3\xa9"\r\nhello\r\n0;z\r\nX-T: 1\r\nY: 2\r\n\r\n',  # obs-text, trailers
    b"3\r\nabc\r\n2\r\nde\r\n0\r\nTrailer-A: v\r\n\r\n",
)


@pytest.mark.parametrize("body", _VALID)
def test_valid_chunked_bodies_pass_at_every_split(body: bytes) -> None:
    """guard: a CRLF split between its CR and LF, extensions, trailers, a 0 line and its
    trailers byte by byte, and the request pipelined after: none is refused."""
    data = _HEAD + body + _NEXT
    p = ProxyPair()
    out = b"".join(p.send(data[i:i + 1]) for i in range(len(data)))
    assert out.count(b"HTTP/1.1 200 ") == 2 and b"/second" in p.upstream_bytes
    for k in range(len(_HEAD), len(data)):
        p = ProxyPair()
        out = p.send(data[:k]) + p.send(data[k:])
        assert out.count(b"HTTP/1.1 200 ") == 2, (k, data[k - 2:k + 2])


def test_a_chunk_line_arriving_byte_by_byte_is_scanned_linearly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """guard: the bytes the check looks at, counted, grow with the line, not its square."""
    scanned = [0]
    real = has_control

    def counting(value: bytes) -> bool:
        scanned[0] += len(value)
        return real(value)

    monkeypatch.setattr(_chunked, "has_control", counting)
    totals = []
    for n in (1_000, 8_000):
        scanned[0] = 0
        p = ProxyPair()
        p.send(_HEAD)
        line = b"5;" + b"a" * n + b"\r\nhello\r\n0\r\n\r\n"
        out = b"".join(p.send(line[i:i + 1]) for i in range(len(line)))
        assert status_of(out) == 200
        totals.append(scanned[0])
    # The check did look at the line (a patch of a name the code no longer reads counts 0).
    assert totals[1] >= 8_000, totals
    assert totals[1] < 4 * (8_000 + 100), totals  # a few passes over each byte, at most


# 6. Guards: the 413 before the 100, the refusal hook under pipelining --------------------------


def test_routed_413_never_follows_a_100_continue() -> None:
    """guard: the find_config 413 is answered before the core's own ``100 Continue``."""
    p = _pair(ingress_yaml("a", "a.test", {P + "proxy-body-size": "4",
                                           P + "force-ssl-redirect": "true"}))
    out = p.send(b"PUT /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ") and b" 100 " not in out and not p.opens


def test_refuse_requests_answers_once_under_pipelining_and_expect() -> None:
    """guard: the hook's refusal closes: no 100, no second answer, nothing routed."""
    p = _pair(ingress_yaml("a", "a.test"))
    p.conn = p.proxy.connection(("198.51.100.7", 5000), now=p.now,
                                refuse_requests=(400, b"refused\n"))
    p._run(p.conn.start(p.now))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                 b"Expect: 100-continue\r\n\r\nGET /y HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.count(b"HTTP/1.1 ") == 1 and out.startswith(b"HTTP/1.1 400 ")
    assert out.endswith(b"refused\n") and p.closed and not p.opens
    assert _logged(p) == [(400, "")]
