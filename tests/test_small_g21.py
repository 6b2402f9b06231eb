"""Session 21, G21: a lone surrogate in explain's URL or headers, ``async with`` after
``start(None)``, and check's unread-apiVersion warning for a file named twice."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import ingresslib
from ingresslib._cli import main
from ingresslib._explain_url import url_credentials

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: x.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""

OLD = """\
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old}
spec:
  backend: {serviceName: web, servicePort: 80}
---
"""


# -- 1. a lone surrogate (no surrogateescape byte) reads as U+FFFD, as browsers read it ------


def test_explain_url_with_a_lone_surrogate_sends_u_fffd() -> None:
    res = ingresslib.parse_manifests(INGRESS)
    # Was a bare UnicodeEncodeError from _percent_encode.
    doc = ingresslib.explain(res, "http://x.test/a\ud800?q=\udfff")
    assert doc["path"] == "/a%EF%BF%BD?q=%EF%BF%BD"
    assert doc["match"]["ingress"] == "default/web"
    assert ingresslib.explain(res, "/\ud800")["path"] == "/%EF%BF%BD"
    # A surrogateescape stand-in is still the byte it stands for (a command-line URL that
    # is not UTF-8), and a surrogate pair the character it encodes.
    assert ingresslib.explain(res, "http://x.test/\udcff")["path"] == "/%FF"
    assert ingresslib.explain(res, "http://x.test/\ud83d\ude00")["path"] == "/%F0%9F%98%80"


def test_url_credentials_with_a_lone_surrogate() -> None:
    expected = "Basic " + base64.b64encode(b"u:\xef\xbf\xbd").decode("ascii")
    assert url_credentials("http://u:\ud800@x.test/") == expected
    assert url_credentials("http://u:\udcff@x.test/") == (
        "Basic " + base64.b64encode(b"u:\xff").decode("ascii"))


def test_explain_header_value_with_a_lone_surrogate() -> None:
    res = ingresslib.parse_manifests(INGRESS)
    doc = ingresslib.explain(res, "http://x.test/", headers={"X-A": "\ud800"})
    same = ingresslib.explain(res, "http://x.test/", headers={"X-A": "\ufffd"})
    assert doc == same
    assert doc["match"]["ingress"] == "default/web"


# -- 2. async with after start(None) binds nothing ------------------------------------------


@pytest.mark.asyncio
async def test_async_with_after_start_none_binds_no_listener() -> None:
    from ingresslib.proxy._server import ProxyServer

    server = ProxyServer(ingresslib.Router(ingresslib.parse_manifests(INGRESS), seed=0))
    await server.start(None)
    async with server:
        # Was the default 127.0.0.1:8080, though start had been called.
        assert server.servers == []
        assert server.addresses == []


# -- 3. check: the unread-apiVersion warning once for a file named twice --------------------


def test_check_file_named_twice_warns_unread_version_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(OLD + INGRESS)
    assert main(["check", "-f", str(f), "-f", str(f)]) == 0
    err = capsys.readouterr().err
    note = ("warning: Ingress default/old: apiVersion extensions/v1beta1 is not read "
            "(ingresslib reads networking.k8s.io/v1 Ingress objects); the object is ignored")
    assert err.count(note) == 1
    unread = [d for d in ingresslib.check(ingresslib.load_manifests(f, f))
              if d.field == "apiVersion"]
    assert [d.object for d in unread] == ["Ingress default/old"]
