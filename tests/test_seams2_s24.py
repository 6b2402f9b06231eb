"""Session 24 (V2), the seams of the session's second round: where a change stopped at a module
boundary.

1. ``GET http://Other.test.:81/ HTTP/1.0`` without Host: X1 gave the backend nginx's ``$host``
   (``other.test``) as Host and X-Forwarded-Host, in the proxy core and in IngressASGI. The
   adapter normalised the host it routes and redirects with as well, so its app-root answered
   ``Location: http://other.test/app`` where the proxy (and the adapter before) answer
   ``http://Other.test.:81/app``, the authority as received (``redirect_for``'s ``host_raw``).
2. ``check -f FILES --config CM`` (V1) stopped at the manifests' errors: with both files
   invalid only the manifests' errors were printed (exit 2), the ConfigMap's came on the next
   run, and a valid ConfigMap's warnings were left out -- ``check`` promises "exit 0, or 2 with
   every error".
3. A streamed request body (no Content-Length) that no rule routes is read before the 404, as
   the proxy reads it; a client gone before its end (``http.disconnect``) still got the 404
   sent, where the proxy sends nothing (X1: it records 400). A server following www.rst raises
   OSError on a send to a closed connection: the adapter raised it for a client that left.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from ingresslib import IngressASGI, parse_manifests
from ingresslib._cli import main
from ingresslib.proxy import ProxySettings

sys.path.insert(0, str(Path(__file__).parent))
from _agree_s13 import (  # noqa: E402
    P,
    IngressSpec,
    PathSpec,
    RequestSpec,
    manifests_text,
    via_asgi,
    via_proxy,
)

_APP_ROOT = ((P + "app-root", "/app"),)


# -- 1. an absolute-form target without Host ---------------------------------------------------

@pytest.mark.parametrize("rule_path", ["/", "/b"])
def test_app_root_of_an_absolute_form_without_host_alike_in_proxy_and_asgi(
        rule_path: str) -> None:
    # "/": a routed request's app-root; "/b": the host's server-level app-root (no rule covers
    # "/"). Both name the authority as received, the Host a client would have sent.
    text = manifests_text((IngressSpec("o", "other.test", (PathSpec(rule_path, "Prefix", "s0"),),
                                       _APP_ROOT),))
    req = RequestSpec("GET", "http://Other.test.:81/", None, (), b"", False, "127.0.0.1")
    proxy = via_proxy(text, req, ProxySettings(), frozenset())
    assert (proxy.status, proxy.location) == (302, b"http://Other.test.:81/app")
    asgi = via_asgi(text, req, ProxySettings(), frozenset())
    assert (asgi.status, asgi.location) == (302, b"http://Other.test.:81/app")


def test_guard_the_app_still_gets_nginx_host_for_an_absolute_form_without_host() -> None:
    text = manifests_text((IngressSpec("o", "other.test", (PathSpec("/", "Prefix", "s0"),)),))
    req = RequestSpec("GET", "http://Other.test.:81/a", None, (), b"", False, "127.0.0.1")
    proxy = via_proxy(text, req, ProxySettings(), frozenset())
    asgi = via_asgi(text, req, ProxySettings(), frozenset())
    assert proxy.host == asgi.host == b"other.test"
    assert proxy.forwarded[b"x-forwarded-host"] == [b"other.test"]
    assert asgi == proxy


def test_guard_an_ssl_redirect_of_an_absolute_form_without_host_names_nginx_host() -> None:
    text = manifests_text((IngressSpec("o", "other.test", (PathSpec("/", "Prefix", "s0"),),
                                       ((P + "force-ssl-redirect", "true"),)),))
    req = RequestSpec("GET", "http://Other.test.:81/a/", None, (), b"", False, "127.0.0.1")
    proxy = via_proxy(text, req, ProxySettings(), frozenset())
    assert (proxy.status, proxy.location) == (308, b"https://other.test/a")
    assert via_asgi(text, req, ProxySettings(), frozenset()) == proxy


# -- 2. check --config: every error --------------------------------------------------------------

_BAD_INGRESS = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: Bad_Name}\n" \
               "spec: {}\n"
_BAD_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" \
                 'data: {proxy-read-timeout: "3000000"}\n'
_WARNED_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" \
                    'data: {no-such-key: "1"}\n'


def _write(tmp_path: Path, manifests: str, configmap: str) -> tuple[str, str]:
    m = tmp_path / "m.yaml"
    m.write_text(manifests, encoding="utf-8")
    cm = tmp_path / "cm.yaml"
    cm.write_text(configmap, encoding="utf-8")
    return str(m), str(cm)


def test_check_lists_the_configmap_errors_with_the_manifests_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, cm = _write(tmp_path, _BAD_INGRESS, _BAD_CONFIGMAP)
    assert main(["check", "-f", m, "--config", cm]) == 2
    err = capsys.readouterr().err
    assert f"{m}: Ingress default/Bad_Name: metadata.name: Invalid value" in err
    assert f"{cm}: ConfigMap default/c: data.proxy-read-timeout: Invalid value" in err
    assert err.endswith("3 error(s)\n")
    assert main(["check", "-f", m, "--config", cm, "-o", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert [(e["source"], e["field"]) for e in doc["errors"]] == [
        (m, "metadata.name"), (m, "spec"), (cm, "data.proxy-read-timeout")]


def test_check_lists_the_configmap_warnings_with_the_manifests_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, cm = _write(tmp_path, _BAD_INGRESS, _WARNED_CONFIGMAP)
    assert main(["check", "-f", m, "--config", cm, "-o", "json"]) == 2
    captured = capsys.readouterr()
    assert "warning: ConfigMap default/c: data.no-such-key: unknown key, ignored" in captured.err
    assert captured.err.endswith("2 error(s), 1 warning(s)\n")
    doc = json.loads(captured.out)
    assert len(doc["errors"]) == 2
    assert doc["warnings"] == ["ConfigMap default/c: data.no-such-key: unknown key, ignored"]


def test_guard_check_with_valid_manifests_and_an_invalid_configmap(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingress = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n"
               "spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n")
    m, cm = _write(tmp_path, ingress, _BAD_CONFIGMAP)
    assert main(["check", "-f", m, "--config", cm]) == 2
    err = capsys.readouterr().err
    assert f"{cm}: ConfigMap default/c: data.proxy-read-timeout: Invalid value" in err
    assert err.endswith("1 error(s)\n")


# -- 3. IngressASGI: a client gone before its unrouted streamed body ended --------------------

_ROUTES = manifests_text((IngressSpec("o", "a.test", (PathSpec("/", "Prefix", "s0"),)),))


def _streamed_unrouted(messages: list[dict[str, object]]) -> tuple[list[dict[str, object]],
                                                                   BaseException | None]:
    """POST /x to a host no rule names, a chunked body given as ``messages``, to an
    IngressASGI without a fallback; its sends, and what it raised. The send raises OSError
    once the client is gone, as www.rst asks of a server ("If send() is called on a closed
    connection the server should raise a server-specific subclass of OSError")."""
    app = IngressASGI(parse_manifests(_ROUTES), {})
    gone = False
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal gone
        message = messages.pop(0)
        gone = gone or message["type"] == "http.disconnect"
        return message

    async def send(message: dict[str, object]) -> None:
        if gone:
            raise OSError("the client is gone")
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"z.test"), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    try:
        asyncio.run(app(scope, receive, send))
    except OSError as exc:
        return sent, exc
    return sent, None


def test_asgi_sends_nothing_to_a_client_gone_before_its_unrouted_body_ended() -> None:
    sent, raised = _streamed_unrouted([
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.disconnect"}])
    assert raised is None
    assert sent == []


def test_guard_asgi_answers_404_once_the_unrouted_body_ended() -> None:
    sent, raised = _streamed_unrouted([
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False}])
    assert raised is None
    assert [m.get("status") for m in sent] == [404, None]


# -- the www twin's redirect after a trusted empty X-Forwarded-Proto ----------------------------

def test_www_twin_redirect_with_a_trusted_empty_forwarded_proto_uses_this_hop_s_scheme() -> None:
    # ingress-nginx writes "://www.other.test/a" (redirectScheme = the empty header), which no
    # client can follow; both front ends use this hop's scheme instead (README row).
    text = manifests_text((IngressSpec("w", "www.other.test", (PathSpec("/", "Prefix", "s0"),),
                                       ((P + "from-to-www-redirect", "true"),)),))
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",))
    req = RequestSpec("GET", "/a/", "other.test", (("X-Forwarded-Proto", ""),), b"", False,
                      "127.0.0.1")
    proxy = via_proxy(text, req, settings, frozenset())
    assert (proxy.status, proxy.location) == (308, b"http://www.other.test/a")
    asgi = via_asgi(text, req, settings, frozenset())
    assert (asgi.status, asgi.location) == (308, b"http://www.other.test/a")
