"""Session 24 (E1) of ``ingresslib explain``: why the main side serves a request whose canary
header pattern PCRE cannot compile (or whose non-ASCII pattern does not match the header's
bytes), as the proxy's router decides it; a second root canary (Prefix "/" paired with a
default backend) named among the shadowed rules, as ``check`` names it; IPv6 endpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main

SERVICES = """---
apiVersion: v1
kind: Service
metadata: {name: main, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: beta, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
"""


def _slices(main_port: int = 8080, beta_port: int = 8080, main_ip: str = "10.0.0.1",
            beta_ip: str = "10.0.0.2") -> str:
    out = ""
    for name, ip, port in (("main", main_ip, main_port), ("beta", beta_ip, beta_port)):
        family = "IPv6" if ":" in ip else "IPv4"
        out += f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: {family}
ports: [{{port: {port}}}]
endpoints: [{{addresses: ["{ip}"]}}]
"""
    return out


def _ingress(name: str, annotations: dict[str, str], host: str | None = "a.example",
             path: str = "/", service: str = "main", default_backend: bool = False) -> str:
    ann = json.dumps({f"nginx.ingress.kubernetes.io/{k}": v for k, v in annotations.items()})
    rule_host = "" if host is None else f"host: {host}\n    "
    default = ("  defaultBackend: {service: {name: main, port: {number: 80}}}\n"
               if default_backend else "")
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, annotations: {ann}}}
spec:
{default}  rules:
  - {rule_host}http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"""


def _canary(name: str, **annotations: str) -> str:
    return _ingress(name, {"canary": "true", **annotations}, service="beta")


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "m.yaml"
    f.write_text(text, encoding="utf-8")
    return f


def _json(capsys: pytest.CaptureFixture[str], f: Path, *args: str) -> dict[str, Any]:
    assert main(["explain", "-f", str(f), "-o", "json", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def _text(capsys: pytest.CaptureFixture[str], f: Path, *args: str) -> str:
    assert main(["explain", "-f", str(f), *args]) == 0
    return capsys.readouterr().out


# --- 1. canary-by-header-pattern that PCRE cannot compile ------------------------------------

#: A pattern with a \u escape: LinearRegex reads it, PCRE (ingress-nginx) does not compile it.
U_PATTERN = "^\\u0062eta$"


@pytest.mark.parametrize("value", ["beta", "other"])
def test_pattern_pcre_cannot_compile_keeps_the_main_side_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    # balancer.lua: ngx.re.match's error is logged and the main side kept, whatever the value
    # (the cookie and the weight, 100 here, not asked). explain said nothing (no "why"), or,
    # with another weight, "a random draw".
    f = _write(tmp_path, SERVICES + _slices() + _ingress("main", {}) + _canary(
        "beta", **{"canary-by-header": "X-Beta", "canary-by-header-pattern": U_PATTERN,
                   "canary-weight": "100"}))
    doc = _json(capsys, f, "-H", f"X-Beta: {value}", "http://a.example/")
    d = doc["decision"]
    assert d["canary"] is False and d["service"] == "main"
    why = d["canary_reason"]
    assert "does not compile in PCRE" in why and "keeps the main side" in why
    assert repr(U_PATTERN) in why
    text = _text(capsys, f, "-H", f"X-Beta: {value}", "http://a.example/")
    assert "     why main: the request carries the x-beta header, and canary-by-header-pattern" \
        in text


def test_pattern_pcre_cannot_compile_without_the_header_is_the_weight(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, SERVICES + _slices() + _ingress("main", {}) + _canary(
        "beta", **{"canary-by-header": "X-Beta", "canary-by-header-pattern": U_PATTERN,
                   "canary-weight": "100"}))
    d = _json(capsys, f, "http://a.example/")["decision"]
    assert d["canary"] is True
    assert d["canary_reason"] == ("no header or cookie decides: weight 100 of 100, every "
                                  "request goes to the canary")


def test_non_ascii_header_is_matched_on_its_bytes_as_the_proxy_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # "^.$" on the two UTF-8 bytes of "é" does not match (PCRE without "u"), so the weight
    # (0) keeps the main side; the "why" read the header as text, found a match, and said
    # nothing.
    f = _write(tmp_path, SERVICES + _slices() + _ingress("main", {}) + _canary(
        "beta", **{"canary-by-header": "X-E", "canary-by-header-pattern": "^.$"}))
    d = _json(capsys, f, "-H", "X-E: \u00e9", "http://a.example/")["decision"]
    assert d["canary"] is False
    assert d["canary_reason"] == ("no header or cookie decides: weight 0 of 100, no request "
                                  "goes to the canary")
    d = _json(capsys, f, "-H", "X-E: e", "http://a.example/")["decision"]
    assert d["canary"] is True
    assert d["canary_reason"] == "the request's x-e header matches canary-by-header-pattern '^.$'"


def test_non_ascii_header_value_matches_its_utf8(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, SERVICES + _slices() + _ingress("main", {}) + _canary(
        "beta", **{"canary-by-header": "X-N", "canary-by-header-value": "Jos\u00e9"}))
    d = _json(capsys, f, "-H", "X-N: Jos\u00e9", "http://a.example/")["decision"]
    assert d["canary"] is True
    assert d["canary_reason"] == "the request's x-n header equals canary-by-header-value 'Jos\u00e9'"


def _serve_once(text_for: Any, headers: list[tuple[str, str]]) -> tuple[dict[str, Any], bytes,
                                                                           bool]:
    """explain's document for http://a.example/ with ``headers``, and what a real ProxyServer
    on 127.0.0.1 answers it: the body (the backend's name) and its record's canary flag.
    ``text_for(main_port, beta_port)``: the manifests, endpoints on 127.0.0.1."""
    import ingresslib
    from ingresslib import Router
    from ingresslib.proxy import ProxyServer

    async def run() -> tuple[dict[str, Any], bytes, bool]:
        async def backend(name: bytes) -> asyncio.AbstractServer:
            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name))
                await w.drain()
                w.close()
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        ups = [await backend(b"main"), await backend(b"beta")]
        ports = [s.sockets[0].getsockname()[1] for s in ups]
        import yaml

        res = ingresslib.Resources.from_dicts(
            [d for d in yaml.safe_load_all(text_for(*ports)) if d])
        doc = ingresslib.explain(res, "http://a.example/", headers=headers)
        records: list[Any] = []
        server = ProxyServer(Router(res, seed=0), on_record=records.append)
        await server.start(listen=("127.0.0.1", 0))
        try:
            port = int(server.urls[0].rstrip("/").rsplit(":", 1)[1])
            r, w = await asyncio.open_connection("127.0.0.1", port)
            head = "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n" + "".join(
                f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
            w.write(head.encode("utf-8"))
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            for _ in range(100):
                if records:
                    break
                await asyncio.sleep(0.01)
        finally:
            await server.shutdown()
            for s in ups:
                s.close()
        return doc, data.partition(b"\r\n\r\n")[2], records[0].canary

    return asyncio.run(run())


@pytest.mark.parametrize("pattern,value,weight", [
    (U_PATTERN, "beta", "100"), (U_PATTERN, "other", "0"), ("^.$", "\u00e9", "0"),
    ("^.$", "e", "0"), ("^b", "beta", "0")])
def test_explain_says_what_a_real_proxy_does(pattern: str, value: str, weight: str) -> None:
    def text_for(main_port: int, beta_port: int) -> str:
        return SERVICES + _slices(main_port, beta_port, "127.0.0.1", "127.0.0.1") + _ingress(
            "main", {}) + _canary("beta", **{"canary-by-header": "X-P",
                                             "canary-by-header-pattern": pattern,
                                             "canary-weight": weight})

    doc, body, canary = _serve_once(text_for, [("X-P", value)])
    d = doc["decision"]
    assert d["canary"] is canary and body == (b"beta" if canary else b"main")
    why = d["canary_reason"]
    if pattern == U_PATTERN:
        assert not canary and "does not compile in PCRE" in why
    elif canary:
        assert why == f"the request's x-p header matches canary-by-header-pattern {pattern!r}"
    else:
        assert why.startswith("no header or cookie decides: weight 0 of 100")


# --- 4. a second root canary -----------------------------------------------------------------

def _root_canaries(host: str | None) -> str:
    main_ing = _ingress("main", {}, host=host, path="/api", default_backend=True)
    second = _canary("gamma", **{"canary-weight": "50"})
    first = _canary("beta", **{"canary-weight": "100"})
    if host is None:
        first = first.replace("host: a.example\n    ", "")
        second = second.replace("host: a.example\n    ", "")
    return SERVICES + _slices() + main_ing + first + second


@pytest.mark.parametrize("host,url", [("a.example", "http://a.example/x"),
                                      (None, "http://b.example/x")])
def test_a_second_root_canary_is_named_as_check_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str | None, url: str) -> None:
    # The canaries' Prefix "/" pairs with the default backend (ingress-nginx's root location);
    # the second is ignored. check warns; explain's shadowed list said nothing.
    f = _write(tmp_path, _root_canaries(host))
    assert main(["check", "-f", str(f), "-o", "json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    note = ("Ingress default/gamma: spec.rules[0].http.paths[0]: rule already has the canary "
            "default/beta; ignored")
    assert note in warnings
    doc = _json(capsys, f, url)
    assert doc["match"]["is_default_backend"] is True
    assert doc["match"]["canary"]["ingress"] == "default/beta"
    assert doc["shadowed"] == [note]
    assert f"     warning: {note}" in _text(capsys, f, url)


def test_a_default_backend_without_canary_shadows_no_canary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The host a.example's root canaries do not pair with another host's default backend.
    f = _write(tmp_path, _root_canaries("a.example"))
    doc = _json(capsys, f, "http://b.example/x")
    assert doc["match"]["is_default_backend"] is True and "canary" not in doc["match"]
    assert "shadowed" not in doc


# --- 5. IPv6 endpoints -----------------------------------------------------------------------

def test_ipv6_endpoint_is_written_in_brackets(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, SERVICES + _slices(main_ip="fd00::1") + _ingress("main", {}))
    text = _text(capsys, f, "http://a.example/")
    assert "endpoint [fd00::1]:8080" in text
    doc = _json(capsys, f, "http://a.example/")
    assert doc["verdict"]["reason"] == "proxied to [fd00::1]:8080"
    assert doc["decision"]["endpoint"] == "fd00::1:8080"  # (README: JSON keeps it so)


# --- fresh-eyes pass: the HTTPS listener's redirect and the "(503)" of a redirected request ---

def _tls_main(annotations: dict[str, str]) -> str:
    """Ingress main for a.example with a tls section (its Secret need not exist: the host has
    TLS all the same), Service main without endpoints."""
    return SERVICES + _ingress("main", annotations).replace(
        "spec:\n", "spec:\n  tls: [{hosts: [a.example], secretName: a-tls}]\n", 1)


def test_an_https_listener_redirects_before_the_no_endpoint_503(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The ssl-redirect comes before the endpoint's 503 (the proxy's order): the note was given
    # only for a proxied answer, and a 503 read as the cluster's answer.
    f = _write(tmp_path, _tls_main({}))
    doc = _json(capsys, f, "http://a.example/x")
    assert doc["status"] == 503
    assert doc["with_tls"] == {"status": 308, "location": "https://a.example/x"}
    assert _json(capsys, f, "--tls", "http://a.example/x")["verdict"]["status"] == 308
    assert ("     with an HTTPS listener (serve --tls-listen; ingress-nginx always has one): 308 "
            "(redirect to https://a.example/x); give --tls or --tls-listen to explain that"
            ) in _text(capsys, f, "http://a.example/x").splitlines()


def test_no_https_note_when_the_answer_is_the_same_redirect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # app-root's redirect of "/" comes first, with or without an HTTPS listener.
    f = _write(tmp_path, _tls_main({"app-root": "/app"}))
    plain = _json(capsys, f, "http://a.example/")
    with_tls = _json(capsys, f, "--tls", "http://a.example/")
    assert plain["verdict"]["location"] == with_tls["verdict"]["location"] == \
        "http://a.example/app"
    assert "with_tls" not in plain


def test_a_redirected_request_is_not_said_to_get_503(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, SERVICES + _ingress("main", {"app-root": "/app"}))
    lines = _text(capsys, f, "http://a.example/").splitlines()
    assert "     router picks main default/main target port 8080, endpoint none ready" in lines
    assert "     proxy answers: 302 (redirect to http://a.example/app)" in lines
    # Another path is the 503 the line says.
    lines = _text(capsys, f, "http://a.example/x").splitlines()
    assert ("     router picks main default/main target port 8080, endpoint none ready (503)"
            in lines)
