"""Session 20, messages a user meets (helper U20).

1. A bad ``--listen``/``--tls-listen``/``--metrics-listen`` value said ``expected HOST:PORT (not
   HOST:PORT)``: ``parse_listen`` now says which part is wrong (no port, a port that is no
   number, brackets out of place, whitespace) and the callers print it once.
2. ``check``/``explain -o json``: an error of a whole file (not found, not YAML) had ``"source":
   null`` and the file only in ``"object"``; an object's errors have ``source`` = the file. Now
   both have it in ``source`` (``object`` and the text line unchanged).
3. ``--config FILE`` read errors were Python's OSError text (``Invalid value: [Errno 2] No such
   file or directory: ...``); now they read as ``-f``'s do.
4. ``ClusterWatcher(config=KubeConfig)`` with a context naming a cluster no file defines: a bare
   ``KeyError`` (fixed by helper R20c in ``_kube.py``: the context goes through
   ``select_context``; the test here checks both entry points).
"""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib._cli import main
from ingresslib.proxy import load_config
from ingresslib.proxy._server import parse_listen

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: default}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
"""

BAD_OBJECT = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: default}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: x, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
"""


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    m = tmp_path / "m.yaml"
    m.write_text(INGRESS)
    return m


# --- 1. parse_listen --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("host:abc", "port 'abc' is not a number (0-65535)"),
    ("localhost:-1", "port '-1' is not a number (0-65535)"),
    ("host:0x10", "port '0x10' is not a number (0-65535)"),
    ("host:\u0663", "port '\u0663' is not a number (0-65535)"),   # ARABIC-INDIC DIGIT THREE
    ("host:", "no port after ':'"),
    (":", "no port after ':'"),
    ("[::1]:", "no port after ':'"),
    ("[::1]:x", "port 'x' is not a number (0-65535)"),
    ("[::1]x", "'x' after ']' (expected :PORT or nothing)"),
    ("[::1", "'[' without a closing ']'"),
    ("[]:80", "no IPv6 address between the brackets (all interfaces: [::]:PORT or :PORT)"),
    ("a]:80", "brackets go only around an IPv6 address at the start: [::1]:8080"),
    ("a b:80", "contains whitespace"),
    (" 80", "contains whitespace"),
    ("", "empty; expected HOST:PORT, [IPV6]:PORT, :PORT, PORT or HOST"),
])
def test_parse_listen_says_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_listen(value, 8080)
    assert str(info.value) == message


@pytest.mark.parametrize(("value", "message"), [
    # Unchanged: these already said what was wrong.
    ("::1", "more than one ':' (an IPv6 address needs brackets: [::1]:8080)"),
    ("host:99999", "port 99999 out of range (0-65535)"),
    ("[foo]:80", "'foo' in brackets is not an IPv6 address"),
])
def test_parse_listen_messages_kept(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_listen(value, 8080)


@pytest.mark.parametrize(("value", "expected"), [
    ("[::1]:0", ("::1", 0)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("localhost", ("localhost", 8443)),
    (":8081", ("0.0.0.0", 8081)), ("8081", ("0.0.0.0", 8081)), ("[::1]", ("::1", 8443)),
    ("[fe80::1%lo]:9", ("fe80::1%lo", 9)),
])
def test_parse_listen_accepts_what_it_accepted(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value, 8443) == expected


@pytest.mark.parametrize("option", ["--listen", "--tls-listen", "--metrics-listen"])
def test_serve_bad_listen_says_it_once(option: str, manifest: Path) -> None:
    code, out, err = _run("serve", "-f", str(manifest), option, "host:abc")
    assert code == 2
    assert err == f"ingresslib serve: {option} 'host:abc': port 'abc' is not a number (0-65535)\n"
    code, out, err = _run("serve", "-f", str(manifest), option, "::1")
    assert code == 2
    assert err == (f"ingresslib serve: {option} '::1': more than one ':' (an IPv6 address needs "
                   "brackets: [::1]:8080)\n")


def test_serve_bad_host_name_not_called_host_port(manifest: Path) -> None:
    # The host check after parse_listen goes through the same print.
    code, out, err = _run("serve", "-f", str(manifest), "--listen", "x..y:80")
    assert code == 2 and "expected HOST:PORT" not in err
    assert err.startswith("ingresslib serve: --listen 'x..y:80': 'x..y' is not a host name")


def test_explain_bad_tls_listen_says_it_once(manifest: Path) -> None:
    code, out, err = _run("explain", "-f", str(manifest), "--tls-listen", "h:", "http://a.test/")
    assert code == 2
    assert err == "ingresslib explain: error: bad --tls-listen 'h:': no port after ':'\n"


@pytest.mark.parametrize("option", ["--listen", "--tls-listen"])
def test_demo_bad_listen_says_what_is_wrong(option: str) -> None:
    code, out, err = _run("demo", "--once", option, "127.0.0.1:notaport")
    assert code == 2
    assert err == (f"ingresslib demo: error: {option} '127.0.0.1:notaport': port 'notaport' is "
                   "not a number (0-65535)\n")


# --- 2. the file of a whole-file error in `source` ----------------------------------------------


@pytest.mark.parametrize("command", ["check", "explain"])
def test_json_whole_file_errors_have_the_file_in_source(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    gone = tmp_path / "gone.yaml"
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(BAD_OBJECT)
    url = ["http://a.test/"] if command == "explain" else []
    code, out, err = _run(command, "-f", str(bad), "-f", str(gone), "-f", str(invalid),
                          "-o", "json", *url)
    assert code == 2
    errors = json.loads(out)["errors"]
    by_file: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        by_file.setdefault(e["source"], []).append(e)
    assert set(by_file) == {str(bad), str(gone), str(invalid)}
    # `object` as before: the file for a whole-file error, the object otherwise.
    assert [e["object"] for e in by_file[str(bad)]] == [str(bad)]
    assert [e["object"] for e in by_file[str(gone)]] == [str(gone)]
    assert {e["object"] for e in by_file[str(invalid)]} == {"Ingress default/b"}
    # The text names the file once, as before.
    assert by_file[str(gone)][0]["message"] == f"{gone}: Not found: no such file or directory"
    assert by_file[str(bad)][0]["message"].startswith(
        f"{bad}: line 2, column 1: Invalid value: YAML syntax error: ")
    assert f"{gone}: Not found: no such file or directory" in err.splitlines()


def test_load_manifests_whole_file_error_source(tmp_path: Path) -> None:
    gone = tmp_path / "gone.yaml"
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.load_manifests(gone)
    (e,) = info.value.errors
    assert (e.source, e.object) == (str(gone), str(gone))
    assert str(e) == f"{gone}: Not found: no such file or directory"


def test_parse_manifests_named_text_error_source() -> None:
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.parse_manifests("- 1\n", source="x.yaml")
    (e,) = info.value.errors
    assert (e.source, e.object, e.field) == ("x.yaml", "x.yaml", "document 1")
    assert str(e) == "x.yaml: document 1: Invalid value: expected an object, got array"
    # No name given: no file to name.
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.parse_manifests("- 1\n")
    assert info.value.errors[0].source is None


def test_stdin_whole_file_error_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"apiVersion: v1\n")))
    code, out, err = _run("check", "-f", "-", "-o", "json")
    assert code == 2
    (e,) = json.loads(out)["errors"]
    assert (e["source"], e["object"]) == ("<stdin>", "<stdin>")
    assert e["message"].startswith("<stdin>: document 1: kind: Required value")


# --- 3. --config read errors as -f's --------------------------------------------------------


def _config_error(path: Path) -> str:
    with pytest.raises(ingresslib.ValidationError) as info:
        load_config(path)
    return str(info.value).splitlines()[0]


def _manifest_error(path: Path) -> str:
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.load_manifests(path)
    return str(info.value).splitlines()[0]


def test_config_missing_file_reads_as_manifests(tmp_path: Path) -> None:
    gone = tmp_path / "gone.yaml"
    assert _config_error(gone) == f"{gone}: Not found: no such file or directory"
    assert _config_error(gone) == _manifest_error(gone)


def test_config_bad_utf8_reads_as_manifests(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"a: \xff\n")
    assert _config_error(f) == (f"{f}: line 1, column 4: Invalid value: not valid UTF-8: "
                                "byte 0xFF at offset 3")
    assert _config_error(f) == _manifest_error(f)


def test_config_unreadable_reads_as_manifests(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # (Tests may run as root, for whom a mode 000 file is readable: the error is made.)
    f = tmp_path / "c.yaml"
    f.write_text("kind: ConfigMap\n")

    def denied(self: pathlib.Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    assert _config_error(f) == f"{f}: Invalid value: Permission denied"
    assert _config_error(f) == _manifest_error(f)


def test_config_directory(tmp_path: Path) -> None:
    # (-f walks a folder; --config takes one file.)
    assert _config_error(tmp_path) == f"{tmp_path}: Invalid value: Is a directory"


def test_explain_config_missing_cli(manifest: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone.yaml"
    code, out, err = _run("explain", "-f", str(manifest), "--config", str(gone), "http://a.test/")
    assert code == 2
    assert err.splitlines()[0] == f"{gone}: Not found: no such file or directory"
    assert "Errno" not in err


# --- 4. fixed by R20c in _kube.py (select_context); checked here too ----------------------------------------

_MISSING_CLUSTER = {
    "apiVersion": "v1", "kind": "Config", "current-context": "c",
    "contexts": [{"name": "c", "context": {"cluster": "nope", "user": "u"}}],
    "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "u", "user": {"token": "x"}}],
}


@pytest.mark.parametrize("api", ["ClusterWatcher", "watch_cluster"])
def test_cluster_watcher_kubeconfig_missing_cluster_is_named(api: str) -> None:
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    conf = KubeConfig.from_dict(_MISSING_CLUSTER)

    async def go() -> None:
        if api == "ClusterWatcher":
            await ingresslib.ClusterWatcher(lambda snapshot: None, config=conf).run(
                asyncio.Event())
        else:
            await ingresslib.watch_cluster(lambda snapshot: None, config=conf)

    # As --kubeconfig names it (select_context, client-go's words); nothing is connected to.
    with pytest.raises(ConfigError, match='cluster "nope" was not found for context "c"'):
        asyncio.run(go())


# -- demo: a host name the resolver cannot encode (lead, from U20's report) --------------------

@pytest.mark.parametrize("option", ["--listen", "--tls-listen"])
def test_demo_bad_host_name_is_a_usage_error_not_a_traceback(
        option: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main as cli_main

    code = cli_main(["demo", "--once", option, "x..y:80"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"ingresslib demo: error: {option} 'x..y:80': 'x..y' is not a host name")
    assert "Traceback" not in err
