"""``explain`` refuses what the proxy refuses before routing (session 14).

Before: the proxy answered 400 to an empty Host header (``Host:``) and to a second line of a
header nginx reads once (``UNIQUE_REQUEST``: Authorization, Expect, If-Match...), but explain
reported a route: ``Host:`` was routed as a request without Host (the host-less rules, status
200 "rule"), and two Authorization lines were described with the route, its endpoint and the
first credentials (table-only explain: 200). The verdict's head dropped an empty Host line.
A head the proxy refuses for another reason (Content-Length with Transfer-Encoding, a header
too large) was also described with a route, the proxy's 400/431 added as a verdict.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ingresslib._explain import explain_url
from ingresslib._explain_verdict import ask_proxy
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable
from ingresslib.proxy._headers import UNIQUE_REQUEST, duplicate_header

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import (WEB, explain_json, explain_text, prod_ingress,  # noqa: E402
                             users_secret)
from _proxy_harness import ProxyPair, status_of  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
PASSWORD = "queen-of-hearts-71"


def _ingress(name: str, host: str | None, annotations: str = "{}") -> str:
    return prod_ingress(name, host, annotations)


MANIFESTS = (
    # A host-less rule: what a request without Host reaches (and ``Host:`` reached before).
    _ingress("catchall", None)
    + _ingress("open", "open.test")
    + _ingress("basic", "basic.test", "{" + f"{P}auth-type: basic, {P}auth-secret: users" + "}")
    + "\n" + users_secret("{PLAIN}" + PASSWORD) + WEB)

RES = parse_manifests(MANIFESTS)
TABLE = RouteTable.build(RES)
GOOD = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
#: The names of UNIQUE_REQUEST as a client writes them (explain takes ``-H`` lines as str).
UNIQUE = sorted(n.decode("latin-1").title() for n in UNIQUE_REQUEST)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(MANIFESTS)
    return p


def _proxy_status(head: bytes) -> int:
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=("127.0.0.1", 4000))
    return status_of(pair.send(head))


def _refused(doc: dict[str, Any], reason: str) -> None:
    """The shape of explain's other refusals (a bad Host, CONNECT): no route claimed."""
    assert doc["status"] == 400
    assert doc["reason"] == f"rejected: {reason}"
    assert doc["match"] is None
    assert "decision" not in doc and "verdict" not in doc and "access" not in doc


# -- an empty Host header -------------------------------------------------------------------


@pytest.mark.parametrize("res", [None, RES], ids=["table", "with-resources"])
def test_empty_host_header_is_400_not_the_hostless_rules(res: Any) -> None:
    info = explain_url(TABLE, "/x", res=res, headers=[("Host", "")])
    _refused(info, "empty Host header")
    # ... as the proxy answers it.
    assert _proxy_status(b"GET /x HTTP/1.1\r\nHost: \r\n\r\n") == 400


@pytest.mark.parametrize(("value", "reason"), [
    ("", "empty Host header"), (".", "empty host in Host header"),
    (".:80", "empty host in Host header"),
])
def test_empty_host_cli(files: Path, capsys: pytest.CaptureFixture[str], value: str,
                        reason: str) -> None:
    doc = explain_json(capsys, files, "-H", f"Host: {value}", "http://open.test/")
    _refused(doc, reason)
    out = explain_text(capsys, files, "-H", f"Host:{value}", "http://open.test/")
    assert f"-> 400: rejected: {reason}" in out
    assert "Ingress" not in out and "router picks" not in out
    assert _proxy_status(f"GET / HTTP/1.1\r\nHost: {value}\r\n\r\n".encode()) == 400


def test_a_request_without_host_still_reaches_the_hostless_rules(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for res in (None, RES):
        info = explain_url(TABLE, "/x", res=res)
        assert info["status"] == 200 and info["match"]["ingress"] == "prod/catchall"
    doc = explain_json(capsys, files, "/x")
    assert doc["status"] == 200 and doc["verdict"]["proxied"] is True
    assert _proxy_status(b"GET /x HTTP/1.0\r\n\r\n") == 200


def test_the_verdicts_head_keeps_an_empty_host_line() -> None:
    # ask_proxy wrote no Host line for host "" and an HTTP/1.0 request: the proxy routed it to
    # the host-less rules where the client's request (``Host:``) is a 400.
    router = Router(RES, seed=0)
    answer = ask_proxy(router, None, method="GET", host="", target="/x",
                       headers=[("Host", "")], peer="127.0.0.1")
    assert answer is not None and answer.status == 400 and not answer.routed
    hostless = ask_proxy(router, None, method="GET", host="", target="/x", headers=[],
                         peer="127.0.0.1")
    assert hostless is not None and hostless.status == 0 and hostless.routed


# -- a second line of a header read once ----------------------------------------------------


def test_two_authorization_lines_are_400(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("-H", f"Authorization: {GOOD}", "-H", f"Authorization: {GOOD}", "http://basic.test/")
    doc = explain_json(capsys, files, *args)
    _refused(doc, "duplicate authorization header")
    out = explain_text(capsys, files, *args)
    assert "-> 400: rejected: duplicate authorization header" in out
    assert "Ingress" not in out and "proxied" not in out
    assert _proxy_status(b"GET / HTTP/1.1\r\nHost: basic.test\r\nAuthorization: " + GOOD.encode()
                         + b"\r\nAuthorization: " + GOOD.encode() + b"\r\n\r\n") == 400
    # One line is still verified and proxied.
    one = explain_json(capsys, files, "-H", f"Authorization: {GOOD}", "http://basic.test/")
    assert one["status"] == 200 and one["verdict"]["user"] == "alice"


@pytest.mark.parametrize("name", UNIQUE)
def test_every_unique_header_twice_is_400_in_the_proxys_words(name: str) -> None:
    headers = [(name, "a"), ("X-Other", "b"), (name.lower(), "a")]
    expected = str(duplicate_header(name.lower().encode()))
    for res in (None, RES):
        _refused(explain_url(TABLE, "http://open.test/", res=res, headers=headers), expected)
    # Once each, they route.
    once = explain_url(TABLE, "http://open.test/", headers=[(n, "a") for n in UNIQUE
                                                           if n.lower() not in (
                                                               "content-length",
                                                               "transfer-encoding")])
    assert once["status"] == 200 and once["match"] is not None


def test_the_first_refusal_in_the_proxys_order_gives_the_reason() -> None:
    # ``_parse_request`` walks the lines (a second Authorization) before it checks the Host.
    info = explain_url(TABLE, "http://open.test/", headers=[
        ("Host", "a:0"), ("Authorization", "x"), ("Authorization", "x")])
    _refused(info, "duplicate authorization header")
    info = explain_url(TABLE, "http://open.test/", headers=[
        ("Authorization", "x"), ("Host", "a"), ("Host", "b"), ("Authorization", "x")])
    _refused(info, "duplicate Host")


# -- any other head the proxy refuses before routing ----------------------------------------


def test_a_head_the_proxy_refuses_claims_no_route(files: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "-H", "Content-Length: 5", "-H", "Transfer-Encoding: chunked",
                       "http://open.test/")
    assert doc["status"] == 400 and doc["match"] is None and "decision" not in doc
    assert doc["reason"] == "rejected: the proxy refuses the request head (400)"
    # A size limit is the proxy's answer to a request that does route (tests/test_cli_review
    # keeps a 100 KB path's route): the verdict, not a refusal.
    big = explain_json(capsys, files, "-H", "X-Big: " + "a" * 20000, "http://open.test/")
    assert big["status"] == 431 and big["match"]["ingress"] == "prod/open"


# -- explain and the proxy agree ------------------------------------------------------------

_NAMES = st.sampled_from(["Host", "Authorization", "Expect", "If-Match", "If-None-Match",
                          "If-Range", "Content-Range", "X-Other", "Accept"])
_VALUES = st.sampled_from(["", ".", "open.test", "basic.test", "a", GOOD])


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
       url_host=st.sampled_from(["open.test", "basic.test", ""]))
def test_explain_agrees_with_the_proxy(lines: list[tuple[str, str]], url_host: str) -> None:
    """explain's status is the proxy's for the same head (refused or not), and a refused one
    claims no route. Values written with ``-H`` lose their surrounding blanks, as curl's."""
    url = f"http://{url_host}/x" if url_host else "/x"
    has_host = url_host != "" or any(n == "Host" for n, _ in lines)
    head = [f"GET /x HTTP/{'1.1' if has_host else '1.0'}"]
    if not any(n == "Host" for n, _ in lines) and url_host:
        head.append(f"Host: {url_host}")
    head += [f"{n}: {v}" for n, v in lines]
    got = _proxy_status(("\r\n".join(head) + "\r\n\r\n").encode())
    info = explain_url(TABLE, url, res=RES, headers=lines, client_ip="127.0.0.1")
    assert info["status"] == got
    if got == 400:
        assert info["match"] is None
