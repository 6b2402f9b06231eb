"""The command line as a new user meets it: bad inputs to ``check``/``explain``/``demo``, the
``--output json`` shape on every path, ``--version``, and what ``explain`` tells about canary,
affinity and missing Services. Every test runs in-process or on 127.0.0.1 only."""

from __future__ import annotations

import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import __version__
from ingresslib._cli import main

ROOT = Path(__file__).resolve().parent.parent

ROUTES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: main, namespace: default}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: xn--bcher-kva.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: books, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: canary
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-by-cookie: beta
    nginx.ingress.kubernetes.io/canary-weight: "10"
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-v2, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sticky
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/affinity: cookie
    nginx.ingress.kubernetes.io/session-cookie-name: route
spec:
  rules:
  - host: sticky.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""

SERVICES = """
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}], ports: [{port: 8080}]}]
"""


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    return p


@pytest.fixture
def with_services(tmp_path: Path) -> Path:
    p = tmp_path / "all.yaml"
    p.write_text(ROUTES + SERVICES)
    return p


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(argv)`` as the console script runs it: argparse's exits become exit codes."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse (--help, --version, usage errors)
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


# -- explain: bad command-line values are usage errors (exit 2), never a traceback ----------


@pytest.mark.parametrize("header", ["no-colon", ":empty-name", "bad name: x", "X: a\r\nInjected: 1",
                                    "X: nul\x00"])
def test_bad_header_is_a_usage_error(routes: Path, header: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["explain", "-f", str(routes), "-H", header, "shop.test/"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("ingresslib explain: error: bad header ")


def test_bad_method_is_a_usage_error(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["explain", "-f", str(routes), "-X", "GE T", "shop.test/"], capsys)
    assert code == 2 and "bad method 'GE T'" in err and out == ""


@pytest.mark.parametrize("url", ["http://[::1/x", "", "   "])
def test_unparsable_url_is_a_usage_error(routes: Path, url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["explain", "-f", str(routes), url], capsys)
    assert code == 2 and out == ""
    assert err.startswith("ingresslib explain: error: ") and "Traceback" not in err


def test_url_forms_a_client_would_send(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Userinfo and the fragment never reach a server; a port stays in the Host header (and is
    # ignored for matching); an IPv6 literal keeps its brackets.
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json",
                        "http://user:pw@shop.test:8080/%61b?q=1#frag"], capsys)
    info = json.loads(out)
    assert code == 0 and info["host"] == "shop.test:8080" and info["path"] == "/%61b?q=1"
    assert info["canonical_path"] == "/ab"
    assert info["match"]["ingress"] == "default/main"
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "http://[::1]:8080/"], capsys)
    assert json.loads(out)["host"] == "[::1]:8080"
    # (session 17: the scheme's default port is left out, as curl and browsers send the Host)
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "http://[::1]:80/"], capsys)
    assert json.loads(out)["host"] == "[::1]"
    long_path = "/" + "a" * 100_000
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "shop.test" + long_path], capsys)
    assert code == 0 and json.loads(out)["match"]["ingress"] == "default/main"


def test_non_ascii_host_and_path_are_encoded_as_a_browser_sends_them(
        routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "http://Bücher.example/ä b"],
                       capsys)
    info = json.loads(out)
    assert code == 0
    assert info["host"] == "xn--bcher-kva.example" and info["path"] == "/%C3%A4%20b"
    assert info["status"] != 400 and info["match"]["service"] == "books"
    code, _, err = run(["explain", "-f", str(routes), "http://a..ü/"], capsys)
    assert code == 2 and "internationalised domain name" in err


def test_host_header_is_routed_on_as_with_curl(routes: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "-H", "Host: sticky.test",
                        "http://127.0.0.1/"], capsys)
    info = json.loads(out)
    assert code == 0 and info["host"] == "sticky.test"
    assert info["match"]["ingress"] == "default/sticky"


# -- --output json: one JSON document on stdout on every path --------------------------------


def test_explain_json_on_invalid_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["explain", "-f", str(tmp_path / "missing.yaml"), "-o", "json",
                          "shop.test/"], capsys)
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["error"] == "invalid manifests"
    assert doc["url"] == "shop.test/"
    assert doc["errors"][0]["type"] == "Not found" and "missing.yaml" in doc["errors"][0]["message"]
    assert "1 error(s)" in err  # the human form still goes to stderr


def test_explain_json_on_usage_error(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "-H", "nocolon", "x/"], capsys)
    doc = json.loads(out)
    assert code == 2 and doc == {"ok": False, "error": "usage", "url": "x/",
                                 "errors": [{"message": "bad header 'nocolon': expected NAME:VALUE"}]}


def test_check_json(routes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", "-f", str(routes), "-o", "json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["ingresses"] == 3 and doc["served"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {name: x}\n"
                   "spec: {rules: [{host: Bad_Host}]}\n")
    code, out, _ = run(["check", "-f", str(bad), "-o", "json"], capsys)
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False
    assert doc["errors"][0]["object"] == "Ingress default/x"
    assert doc["errors"][0]["field"] == "spec.rules[0].host"


# -- -f: files, folders, standard input -----------------------------------------------------


def test_folder_of_non_manifests_and_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "README").write_text("# not YAML: [\n")
    (d / "notes.txt").write_text("x: [\n")
    (d / ".hidden.yaml").write_text("x: [\n")
    (d / "sub" / "ok.yaml").write_text(ROUTES)
    (d / "self").symlink_to(".")  # a folder loop: not followed
    (d / "loop1.yaml").symlink_to("loop2.yaml")
    (d / "loop2.yaml").symlink_to("loop1.yaml")
    code, _, err = run(["check", "-f", str(d)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == "2 error(s)"  # the two looping links, nothing else
    (d / "loop1.yaml").unlink()
    (d / "loop2.yaml").unlink()
    code, out, _ = run(["check", "-f", str(d)], capsys)
    assert code == 0 and out.startswith("ok: 3 Ingress(es)")


def test_check_warns_when_it_finds_no_ingress(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("hello\n")
    for target in (empty, docs):
        code, out, err = run(["check", "-f", str(target)], capsys)
        assert code == 0 and f"warning: no Ingress in {target}" in err
        assert out.strip().endswith("1 warning(s)")


def test_stdin_dash(routes: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    class _Stdin:
        buffer = io.BytesIO(ROUTES.encode())

    monkeypatch.setattr(sys, "stdin", _Stdin())
    code, out, _ = run(["check", "-f", "-"], capsys)
    assert code == 0 and out.startswith("ok: 3 Ingress(es)")
    code, _, err = run(["check", "-f", "-", "-f", str(routes)], capsys)
    assert code == 2 and "cannot be combined" in err


def test_stdin_errors_name_stdin(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class _Stdin:
        buffer = io.BytesIO(b"kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {}\n")

    monkeypatch.setattr(sys, "stdin", _Stdin())
    code, _, err = run(["explain", "-f", "-", "x/"], capsys)
    assert code == 2 and err.startswith("<stdin>: ")


# -- --version and --help -------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"ingresslib {__version__}"


@pytest.mark.parametrize("command,needle", [
    ("check", "validate manifests; exit 0, or 2 with every error"),
    ("explain", "which ingress, rule and backend a URL hits"),
])
def test_top_level_help_says_what_the_contract_says(command: str, needle: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    line = next(line for line in out.splitlines() if line.strip().startswith(command + " "))
    assert code == 0 and needle in line


# -- explain's human-readable account --------------------------------------------------------


def test_explain_tells_when_the_canary_serves(with_services: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(with_services), "shop.test/"], capsys)
    assert code == 0
    assert ("serves on header x-canary: always (never: the main backend), else cookie "
            "beta=always (never: the main backend), else weight 10 of 100 requests") in out
    code, out, _ = run(["explain", "-f", str(with_services), "-o", "json", "shop.test/"], capsys)
    assert json.loads(out)["match"]["canary"]["rules"] == {
        "header": "x-canary", "cookie": "beta", "weight": 10, "weight_total": 100}


def test_explain_tells_the_session_cookie(with_services: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(with_services), "-o", "json", "sticky.test/"], capsys)
    a = json.loads(out)["decision"]["affinity"]
    assert a["cookie"] == "route" and a["set_cookie"].startswith("route=")
    cookie = a["set_cookie"].split(";")[0]
    code, out, _ = run(["explain", "-f", str(with_services), "sticky.test/"], capsys)
    assert f"session affinity: cookie route (none valid in the request: the response sets {cookie}" in out
    code, out, _ = run(["explain", "-f", str(with_services), "-H", f"Cookie: {cookie}",
                        "sticky.test/"], capsys)
    assert "session affinity: cookie route (the request's cookie keeps this endpoint)" in out


def test_explain_without_services_says_how_to_see_endpoints(
        routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(routes), "shop.test/"], capsys)
    assert code == 0 and "(the files hold no Service: add the Services and EndpointSlices" in out
    code, out, _ = run(["explain", "-f", str(routes), "other.test/"], capsys)
    assert "default backend of Ingress default/main" in out
    code, out, _ = run(["explain", "-f", str(routes), "shop.test/a/../../x"], capsys)
    assert "-> 400: rejected: '..' above the root" in out and "files hold no Service" not in out


# -- demo and the examples -------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--listen", "--tls-listen"])
def test_demo_bad_listen_is_a_usage_error(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Values parse_listen refuses before any socket or name lookup.
    code, out, err = run(["demo", "--once", option, "127.0.0.1:notaport"], capsys)
    assert code == 2 and err == f"ingresslib demo: error: {option} '127.0.0.1:notaport': port 'notaport' is not a number (0-65535)\n"


@pytest.mark.parametrize("value", ["localhost:9000", "[::1]:9000", "9000", "127.0.0.1:70000"])
def test_sansio_example_refuses_what_it_cannot_use(value: str) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "sansio_blocking_proxy.py"),
                        "--backend", value, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "argument --backend:" in p.stderr


def test_sansio_example_never_listens_on_every_interface() -> None:
    # Checked on the argument parser, in-process: a regression must not open a listener on
    # every interface, even for the length of a test.
    import argparse

    ns = runpy.run_path(str(ROOT / "examples" / "sansio_blocking_proxy.py"))
    for value in (":0", "0", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected IPv4:PORT"):
            ns["_hostport"](value)
    assert ns["_hostport"]("127.0.0.1:0") == ("127.0.0.1", 0)


def test_asgi_example_as_a_script_serves_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python examples/asgi_app.py`` (the docstring's first command): uvicorn on 127.0.0.1:8000."""
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(sys, "argv", ["asgi_app.py"])  # not pytest's own arguments
    ns = runpy.run_path(str(ROOT / "examples" / "asgi_app.py"), run_name="__main__")
    assert calls == [(ns["app"], {"host": "127.0.0.1", "port": 8000})]


def test_python_dash_m_version_and_usage() -> None:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "ingresslib", "--version"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0 and p.stdout.strip() == f"ingresslib {__version__}"
    p = subprocess.run([sys.executable, "-m", "ingresslib", "explain", "-f", "/nonexistent/x.yaml",
                        "http://[::1/"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2 and "Traceback" not in p.stderr


@pytest.mark.parametrize("command,needle", [
    ("check", "Validate manifests; exit 0, or 2 with every error."),
    ("explain", "Which ingress, rule and backend a URL hits"),
    ("demo", "The embedded demo (see README)"),
])
def test_subcommand_help_says_what_the_contract_says(command: str, needle: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and needle in " ".join(out.split())
    # CONTRACT.md's synopsis: `[--ingress-class NAME] [--controller NAME]`.
    if command != "demo":
        assert "[--ingress-class NAME]" in out and "[--controller NAME]" in out


@pytest.mark.parametrize("argv", [["check", "-o", "json"], ["explain", "shop.test/"]])
def test_a_closed_stdout_is_no_traceback(routes: Path, argv: list[str]) -> None:
    """``ingresslib check ... | head -1``: the reader is gone before the output is written."""
    r, w = os.pipe()
    os.close(r)  # every write to w now fails with EPIPE
    try:
        p = subprocess.run([sys.executable, "-m", "ingresslib", *argv[:1], "-f", str(routes),
                            *argv[1:]], stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_no_ingress_warning_for_a_file_does_not_talk_about_folders(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "services.yaml"
    f.write_text(SERVICES)
    code, _, err = run(["check", "-f", str(f)], capsys)
    assert code == 0 and err == f"warning: no Ingress in {f}\n"
