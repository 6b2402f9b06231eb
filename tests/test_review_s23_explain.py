"""Session 23 review of ``ingresslib check`` and ``ingresslib explain`` (Z3): a file named
twice is read once; what curl sends for a URL with dot segments; why the canary or the main
backend; which size limit; a host byte that is not UTF-8."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import ingresslib
from ingresslib._cli import main
from ingresslib._explain_url import split_url

WEB = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /x, pathType: Exact, backend: {service: {name: x, port: {number: 80}}}}
"""
OTHER = WEB.replace("name: web,", "name: other,").replace("shop.test", "other.test")


def _check_json(capsys: pytest.CaptureFixture[str], *files: str) -> dict:
    argv = ["check", "-o", "json"]
    for f in files:
        argv += ["-f", f]
    assert main(argv) == 0
    doc: dict = json.loads(capsys.readouterr().out)
    return doc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    m = tmp_path / "m"
    (m / "sub").mkdir(parents=True)
    (m / "a.yaml").write_text(WEB)
    (m / "sub" / "b.yaml").write_text(OTHER)
    return m


@pytest.mark.parametrize("given", [
    ["{m}", "{m}/a.yaml"],          # a file, then through its folder
    ["{m}/a.yaml", "{m}"],          # its folder after it
    ["{m}", "{m}"],                 # a folder twice
    ["{m}", "{m}/sub"],             # a folder inside another
    ["{m}/a.yaml", "{m}/a.yaml", "{m}/sub/b.yaml"],
    ["{m}/a.yaml", "{m}/link.yaml", "{m}/sub"],   # a symlink to a file given too
])
def test_a_file_named_twice_is_read_once(folder: Path, given: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    os.symlink(folder / "a.yaml", folder / "link.yaml")
    files = [g.format(m=folder) for g in given]
    doc = _check_json(capsys, *files)
    # Before: "ingresses": 3 and "Ingress default/web: defined 2 times; the last definition is
    # used" for one Ingress written once.
    assert doc["ingresses"] == 2 and doc["served"] == 2
    assert doc["warnings"] == [] and doc["diagnostics"] == []
    argv = [a for f in files for a in ("-f", f)]
    assert main(["check", *argv]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 2 Ingress(es), 2 served, 4 route(s), 0 warning(s)\n" and err == ""
    # explain reads the files as check does: no warning of a duplicate on the route.
    assert main(["explain", *argv, "-o", "json", "http://shop.test/api"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["match"]["ingress"] == "default/web" and "shadowed" not in d


def test_two_files_defining_one_ingress_still_warn(folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text(WEB)
    doc = _check_json(capsys, str(folder), str(copy))
    assert doc["ingresses"] == 3
    assert doc["warnings"] == ["Ingress default/web: defined 2 times; the last definition is used"]


def test_missing_path_given_twice_is_still_an_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    gone = str(tmp_path / "gone.yaml")
    assert main(["check", "-f", gone, "-f", gone]) == 2
    assert "no such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(("path", "sent"), [
    # What curl 7.88 sends (`curl -v http://h<path>`: "> GET <sent>"), RFC 3986 §5.2.4.
    ("/a/../api", "/api"),
    ("/../api", "/api"),
    ("/a/..", "/"),
    ("/a/.", "/a/"),
    ("/a/./b/", "/a/b/"),
    ("/a/b/../../..", "/"),
    ("//a/../b", "//b"),
    ("/a//../b", "/a/b"),
    ("/a/.b/..", "/a/"),
    ("/.", "/"),
])
def test_explain_says_what_curl_sends_for_dot_segments(path: str, sent: str) -> None:
    res = ingresslib.parse_manifests(WEB)
    doc = ingresslib.explain(res, "http://shop.test" + path + "?q=/../x")
    # Sent as written (curl --path-as-is: the proxy's own answer), and, before: nothing said
    # that curl and browsers send another path (a 400 curl never meets, or another route).
    assert doc["path"] == path + "?q=/../x"
    assert doc["clients_send"] == sent + "?q=/../x"
    from ingresslib._explain import render_text

    assert ("  note: the path is sent as written (curl --path-as-is); curl and browsers remove "
            f"its dot segments and send {sent + '?q=/../x'!r}") in render_text(doc).splitlines()


@pytest.mark.parametrize("url", ["http://shop.test/a/...", "http://shop.test/api/%2e%2e/x",
                                 "http://shop.test/api?x=/../y", "/../x", "/a/./b"])
def test_no_note_when_clients_send_the_path_as_written(url: str) -> None:
    # "..." is no dot segment; curl sends %2e%2e as written; the query is never touched; a
    # target alone (no host) is sent as written by every client.
    doc = ingresslib.explain(ingresslib.parse_manifests(WEB), url)
    assert "clients_send" not in doc


def test_old_answers_stay_for_the_path_as_written() -> None:
    res = ingresslib.parse_manifests(WEB)
    doc = ingresslib.explain(res, "http://shop.test/../api")
    assert doc["status"] == 400 and doc["reason"] == "rejected: '..' above the root: '/../api'"
    doc = ingresslib.explain(res, "http://shop.test" + doc["clients_send"])
    assert doc["status"] == 503 and doc["match"]["service"] == "api"


# -- why the router took the canary's side or the main one ----------------------------------

def _svc(name: str, port: int) -> str:
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints: [{{addresses: ["10.0.0.1"]}}]
ports: [{{port: {port}}}]
"""


def _canary(annotations: str) -> ingresslib.Resources:
    main_ing = WEB
    canary = WEB.replace("name: web,", "name: web-canary,").replace(
        "namespace: default}", "namespace: default, annotations: {nginx.ingress.kubernetes.io/"
        "canary: 'true', " + annotations + "}}").replace("name: api,", "name: can,")
    return ingresslib.parse_manifests(main_ing + "---\n" + canary + _svc("api", 8081)
                                      + _svc("can", 8082))


_P = "nginx.ingress.kubernetes.io/"


@pytest.mark.parametrize(("annotations", "headers", "canary", "why"), [
    (f"{_P}canary-by-header: X-Canary", [("X-Canary", "always")], True,
     "the request's x-canary header is always"),
    (f"{_P}canary-by-header: X-Canary, {_P}canary-weight: '100'", [("X-Canary", "never")],
     False, "the request's x-canary header is never"),
    (f"{_P}canary-by-header: X-Canary, {_P}canary-by-header-value: beta",
     [("X-Canary", "beta")], True,
     "the request's x-canary header equals canary-by-header-value 'beta'"),
    (f"{_P}canary-by-cookie: c", [("Cookie", "a=1; c=always")], True,
     "the request's cookie c is always"),
    # A header that does not decide falls through to the cookie, then the weight.
    (f"{_P}canary-by-header: X-Canary, {_P}canary-by-cookie: c",
     [("X-Canary", "maybe"), ("Cookie", "c=never")], False, "the request's cookie c is never"),
    (f"{_P}canary-by-header: X-Canary", [], False,
     "no header or cookie decides: weight 0 of 100, no request goes to the canary"),
    (f"{_P}canary-weight: '100'", [], True,
     "no header or cookie decides: weight 100 of 100, every request goes to the canary"),
    (f"{_P}canary-weight: '30'", [], None,
     "no header or cookie decides: weight 30 of 100, a random draw for each request"),
])
def test_explain_says_why_the_canary_or_the_main_backend(
        annotations: str, headers: list[tuple[str, str]], canary: bool | None, why: str,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = _canary(annotations)
    doc = ingresslib.explain(res, "http://shop.test/api", headers=headers)
    d = doc["decision"]
    # The side the router really takes for this request.
    routed = ingresslib.Router(res).route("GET", "shop.test", "/api", headers=headers)
    if canary is not None:
        assert routed.canary is canary and d["canary"] is canary
    assert d["canary_reason"] == why
    assert d["endpoint"] == ("10.0.0.1:8082" if d["canary"] else "10.0.0.1:8081")
    # Before: no line said why ("router picks canary ..." alone).
    from ingresslib._explain import render_text

    side = "canary" if d["canary"] else "main"
    assert f"     why {side}: {why}" in render_text(doc).splitlines()


def test_no_canary_reason_without_a_canary() -> None:
    res = ingresslib.parse_manifests(WEB + _svc("api", 8081))
    assert "canary_reason" not in ingresslib.explain(res, "http://shop.test/api")["decision"]


@pytest.mark.parametrize(("url", "headers", "status", "words"), [
    ("http://shop.test/api/" + "a" * 9000, [], 414,
     "the request line is longer than one large-client-header-buffers buffer"),
    ("http://shop.test/api/", [("X-Big", "b" * 9000)], 431,
     "the request's header lines are over large-client-header-buffers"),
])
def test_size_limits_say_which_limit(url: str, headers: list[tuple[str, str]], status: int,
                                     words: str) -> None:
    res = ingresslib.parse_manifests(WEB + _svc("api", 8081))
    doc = ingresslib.explain(res, url, headers=headers)
    # Before: "the proxy answers 414 itself", which names no cause.
    assert doc["status"] == status and doc["verdict"]["status"] == status
    assert doc["verdict"]["reason"].startswith(words)


def test_a_host_byte_that_is_not_utf8_is_named_as_typed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "web.yaml"
    f.write_text(WEB)
    url = b"http://\xff.test/".decode("utf-8", "surrogateescape")  # as Python reads argv
    assert main(["explain", "-f", str(f), url]) == 2
    err = capsys.readouterr().err
    # Before: "host '\udcff.test' is not a valid internationalised domain name (encoding with
    # 'idna' codec failed ...)": a character no one typed.
    assert err == ("ingresslib explain: error: bad host '\\xff.test' in 'http://\\xff.test/': "
                   "it is not UTF-8 (browsers and curl refuse the URL)\n")
    assert main(["explain", "-f", str(f), "-o", "json", url]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"][0]["message"].startswith("bad host '\\xff.test' in")
    assert doc["url"] == "http://\\xff.test/"


def test_a_chosen_side_without_endpoints_is_said() -> None:
    # The canary's Service is missing: the router sends the header's requests to the main
    # backend (router.md R2), and says why; before, explain printed "router picks main" alone
    # for a request whose header asks for the canary.
    res = _canary(f"{_P}canary-by-header: X-Canary")
    res = ingresslib.Resources(ingresses=res.ingresses, services=tuple(
        s for s in res.services if s.metadata.name != "can"), endpoint_slices=tuple(
        e for e in res.endpoint_slices if not e.metadata.name.startswith("can")))
    doc = ingresslib.explain(res, "http://shop.test/api", headers=[("X-Canary", "always")])
    assert doc["decision"]["canary"] is False
    assert doc["decision"]["canary_reason"] == (
        "the request's x-canary header chooses the canary, but canary backend can port 80: "
        "the main backend serves its requests: Service default/can not found")
    # The main side without endpoints: a "never" request goes to the canary.
    res = _canary(f"{_P}canary-by-header: X-Canary")
    res = ingresslib.Resources(ingresses=res.ingresses, services=res.services,
                               endpoint_slices=tuple(e for e in res.endpoint_slices
                                                     if not e.metadata.name.startswith("api")))
    doc = ingresslib.explain(res, "http://shop.test/api", headers=[("X-Canary", "never")])
    assert doc["decision"]["canary"] is True
    assert doc["decision"]["canary_reason"].startswith(
        "the request's x-canary header chooses the main backend, but backend api port 80: "
        "the canary backend serves its requests: ")


def test_a_host_less_target_says_it_is_an_http10_request() -> None:
    from ingresslib._explain import render_text

    res = ingresslib.parse_manifests(WEB)
    lines = render_text(ingresslib.explain(res, "/api")).splitlines()
    # Before: "host ''" alone, where the proxy answers an HTTP/1.1 request without Host 400.
    assert lines[1] == ("  host '' (no Host header: an HTTP/1.0 request; HTTP/1.1 without Host "
                        "gets 400), path '/api' (canonical '/api')")
    # An empty Host header is one: refused, and not said to be missing.
    lines = render_text(ingresslib.explain(res, "/api", headers=[("Host", "")])).splitlines()
    assert lines[1] == "  host '', path '/api'" and lines[2].startswith("  -> 400: rejected")


TLS_WEB = WEB.replace("spec:\n", "spec:\n  tls: [{hosts: [shop.test], secretName: shop-tls}]\n", 1)


@pytest.mark.parametrize(("annotations", "kwargs", "expected"), [
    ("", {}, {"status": 308, "location": "https://shop.test/api?q=1"}),
    ("", {"tls": True}, None),                        # asked with TLS: the verdict says it
    ("{nginx.ingress.kubernetes.io/ssl-redirect: 'false'}", {}, None),
])
def test_a_tls_host_says_the_redirect_an_https_listener_answers(
        annotations: str, kwargs: dict, expected: dict | None) -> None:
    text = TLS_WEB if not annotations else TLS_WEB.replace(
        "namespace: default}", f"namespace: default, annotations: {annotations}}}")
    res = ingresslib.parse_manifests(text + _svc("api", 8081))
    doc = ingresslib.explain(res, "http://shop.test/api?q=1", **kwargs)
    # Before: "proxied to 10.0.0.1:8081" alone, where serve --tls-listen (and ingress-nginx,
    # which always listens for HTTPS) redirects this request.
    assert doc.get("with_tls") == expected
    if kwargs:
        assert doc["verdict"]["status"] == 308
    else:
        assert doc["verdict"]["proxied"] is True
    if expected is not None:
        from ingresslib._explain import render_text

        assert ("     with an HTTPS listener (serve --tls-listen; ingress-nginx always has one): "
                "308 (redirect to https://shop.test/api?q=1); give --tls or --tls-listen to "
                "explain that") in render_text(doc).splitlines()


def test_no_redirect_note_for_a_host_without_tls() -> None:
    res = ingresslib.parse_manifests(TLS_WEB + OTHER + _svc("api", 8081))
    assert "with_tls" not in ingresslib.explain(res, "http://other.test/api")
    assert "with_tls" not in ingresslib.explain(res, "https://shop.test/api")
