"""``explain``'s session-affinity cookie is the one the proxy sends (session 14).

Before: explain took the cookie from a router call of its own whenever the URL matched a
sticky route, so it said "the response sets INGRESSCOOKIE=..." for a head the proxy refuses
before it routes (a header too large: 431, a request line too long: 414), where no balancer
pick happens and no Set-Cookie is sent. And with no cookie to set (a backend without a ready
endpoint: the proxy answers 503 itself) it said "the request's cookie keeps this endpoint",
for a request that carried no cookie, to a backend with no endpoint.

Each case is checked against the real proxy core (``tests/_proxy_harness.ProxyPair`` over a
``Router`` with explain's seed): explain's ``decision.affinity.set_cookie`` (JSON) and its
"session affinity" line (text) must say exactly what the proxy's response carries.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib._explain import explain_url, render_text
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import WEB, prod_ingress, users_secret  # noqa: E402
from _proxy_harness import ProxyPair, status_of  # noqa: E402

P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, host: str, annotations: dict[str, str], service: str = "web") -> str:
    ann = ", ".join(f"{P}{k}: {v!r}" for k, v in {"affinity": "cookie", **annotations}.items())
    return prod_ingress(name, host, "{" + ann + "}", service=service)


MANIFESTS = (
    _ingress("open", "open.test", {})
    + _ingress("ranges", "ranges.test", {"whitelist-source-range": "10.1.0.0/16"})
    + _ingress("basic", "basic.test", {"auth-type": "basic", "auth-secret": "users"})
    + _ingress("redir", "redir.test", {"permanent-redirect": "https://elsewhere.test/"})
    + _ingress("noep", "noep.test", {}, service="gone")
    + "\n" + users_secret("{PLAIN}pw") + WEB)

RES = parse_manifests(MANIFESTS)
TABLE = RouteTable.build(RES)
BIG = "a" * 9000  # one header line over nginx's 8k buffer: 431
LONG = "/" + "a" * 70000  # a request line over every buffer: 414


def _proxy(host: str, path: str, headers: list[tuple[str, str]], client_ip: str
           ) -> tuple[int, str | None]:
    """The real proxy's status and Set-Cookie value (None: none) for the request."""
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=(client_ip, 4000))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in headers)]
    out = pair.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    cookies = [line.split(b":", 1)[1].strip().decode() for line in head[1:]
               if line.lower().startswith(b"set-cookie:")]
    assert len(cookies) <= 1
    return status_of(out), cookies[0] if cookies else None


def _explain(host: str, path: str, headers: list[tuple[str, str]], client_ip: str
             ) -> dict[str, Any]:
    return explain_url(TABLE, f"http://{host}{path}", res=RES, headers=headers,
                       client_ip=client_ip)


CASES = [
    # (host, path, headers, client address, the proxy's status)
    pytest.param("open.test", "/", [], "127.0.0.1", 200, id="proxied"),
    pytest.param("ranges.test", "/", [], "10.1.2.3", 200, id="ranges-allow"),
    pytest.param("ranges.test", "/", [], "192.0.2.9", 403, id="ranges-refuse"),
    pytest.param("basic.test", "/", [], "127.0.0.1", 401, id="basic-401"),
    pytest.param("redir.test", "/", [], "127.0.0.1", 301, id="redirect-301"),
    pytest.param("noep.test", "/", [], "127.0.0.1", 503, id="no-endpoint-503"),
    pytest.param("open.test", "/", [("X-Big", BIG)], "127.0.0.1", 431, id="header-431"),
    pytest.param("open.test", LONG, [], "127.0.0.1", 414, id="uri-414"),
]


@pytest.mark.parametrize(("host", "path", "headers", "client_ip", "status"), CASES)
def test_the_cookie_explain_names_is_the_one_the_proxy_sends(
        host: str, path: str, headers: list[tuple[str, str]], client_ip: str,
        status: int) -> None:
    proxy_status, proxy_cookie = _proxy(host, path, headers, client_ip)
    assert proxy_status == status
    info = _explain(host, path, headers, client_ip)
    assert info["status"] == status
    # JSON: the sticky backend's affinity keeps its shape; ``set_cookie`` is what the
    # response carries (null: no Set-Cookie).
    affinity = info["decision"]["affinity"]
    assert set(affinity) == {"cookie", "set_cookie"}
    assert affinity["cookie"] == "INGRESSCOOKIE"
    assert affinity["set_cookie"] == proxy_cookie
    # Text: "the response sets ..." exactly when it does.
    text = render_text(info)
    if proxy_cookie is not None:
        assert f"the response sets {proxy_cookie})" in text
    else:
        assert "the response sets" not in text


@pytest.mark.parametrize(("host", "path", "headers", "client_ip", "status"),
                         [c for c in CASES if c.values[4] not in (200,)])
def test_a_local_answer_without_a_cookie_claims_no_session(
        host: str, path: str, headers: list[tuple[str, str]], client_ip: str,
        status: int) -> None:
    # The proxy answers itself and sends no Set-Cookie: no request cookie "keeps" an
    # endpoint the request never reaches, and none is set.
    _, proxy_cookie = _proxy(host, path, headers, client_ip)
    text = render_text(_explain(host, path, headers, client_ip))
    if proxy_cookie is None:
        assert "session affinity" not in text
    else:
        assert "keeps this endpoint" not in text


def test_a_session_the_request_already_has_is_still_described() -> None:
    # The proxied request with a valid session cookie: no Set-Cookie, the endpoint is kept.
    _, first = _proxy("open.test", "/", [], "127.0.0.1")
    assert first is not None
    cookie = [("Cookie", first.split(";", 1)[0])]
    assert _proxy("open.test", "/", cookie, "127.0.0.1") == (200, None)
    info = _explain("open.test", "/", cookie, "127.0.0.1")
    assert info["decision"]["affinity"] == {"cookie": "INGRESSCOOKIE", "set_cookie": None}
    assert ("session affinity: cookie INGRESSCOOKIE (the request's cookie keeps this "
            "endpoint)") in render_text(info)


def test_without_a_client_address_the_cookie_is_set_only_if_allowed() -> None:
    # No --client-ip: the source ranges decide. The proxied answer sets the cookie, the
    # refused one does not (checked above per address); explain names it, with the condition.
    info = explain_url(TABLE, "http://ranges.test/", res=RES)
    assert info["verdict"]["depends_on_client_ip"] is True
    _, sent = _proxy("ranges.test", "/", [], "10.1.2.3")
    assert sent is not None and info["decision"]["affinity"]["set_cookie"] == sent
    assert (f"(none valid in the request: if the source ranges allow the client, the response "
            f"sets {sent})") in render_text(info)
    assert _proxy("ranges.test", "/", [], "192.0.2.9") == (403, None)
