"""The messages a new user meets first (session 18's new-user walkthrough): each says what is
wrong and what to do. Machine-read output keeps its shape: ``-o json`` gains keys, loses none.

Each test asserts on the message text or stream a user reads; each failed before its fix.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import textwrap
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from ingresslib import ValidationError, parse_manifests
from ingresslib._cli import main
from ingresslib._config import parse_config_data
from ingresslib.proxy._annotations import PREFIX, parse_route_options
from ingresslib.proxy._settings import ProxySettings

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "deploy" / "example-ingress.yaml")


def _ingress(annotations: str = "", ingress_class: str = "nginx") -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: web
          annotations: {annotations or "{}"}
        spec:
          ingressClassName: {ingress_class}
          rules:
          - host: a.example
            http:
              paths:
              - path: /
                pathType: Prefix
                backend:
                  service: {{name: web, port: {{number: 80}}}}
        """)


# --- 1. a misspelt annotation or ConfigMap key: "did you mean ...?" -----------------------------


def _route_warnings(annotations: dict[str, str]) -> tuple[str, ...]:
    return parse_route_options(annotations, "/", ProxySettings(),
                               where="Ingress default/web").warnings


def test_a_misspelt_annotation_is_named_as_a_typo_with_the_right_name() -> None:
    # Before: "annotation ...rewrite-targt: not implemented by ingresslib; ignored", read as
    # "ingresslib has no rewrite-target".
    assert _route_warnings({PREFIX + "rewrite-targt": "/"}) == (
        f"Ingress default/web: annotation {PREFIX}rewrite-targt: unknown annotation, ignored; "
        f"did you mean {PREFIX}rewrite-target?",)


def test_a_misspelt_unimplemented_annotation_gets_its_ingress_nginx_name() -> None:
    # Known to ingress-nginx, not implemented here: the suggestion still helps.
    (w,) = _route_warnings({PREFIX + "proxy-buffer-sise": "8k"})
    assert w.endswith(f"did you mean {PREFIX}proxy-buffer-size?")


def test_a_real_unimplemented_annotation_gets_no_false_guess() -> None:
    # proxy-busy-buffers-size is ingress-nginx's own, close to proxy-buffers-number: no "did
    # you mean" (proxy-buffer-size, this test's example until session 30, is implemented now).
    assert _route_warnings({PREFIX + "proxy-busy-buffers-size": "8k"}) == (
        f"Ingress default/web: annotation {PREFIX}proxy-busy-buffers-size: not implemented by "
        "ingresslib; ignored",)


def test_check_prints_the_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ing.yaml"
    f.write_text(_ingress(f"{{{PREFIX}rewrite-targt: /}}"))
    assert main(["check", "-f", str(f)]) == 0
    assert f"did you mean {PREFIX}rewrite-target?" in capsys.readouterr().err


def test_a_misspelt_configmap_key_gets_the_key_it_resembles() -> None:
    cfg = parse_config_data({"use-forwarded-header": "true"})
    assert cfg.warnings == ("ConfigMap: data.use-forwarded-header: unknown key, ignored; did "
                            "you mean use-forwarded-headers?",)


def test_a_real_ingress_nginx_configmap_key_gets_no_false_guess() -> None:
    # ssl-session-ticket-key is close to ssl-session-tickets (implemented), but a key of its
    # own (not implemented; proxy-stream-responses, this test's example until session 30, is
    # implemented now: UDP services).
    cfg = parse_config_data({"ssl-session-ticket-key": "x", "worker-processes": "2"})
    assert cfg.warnings == ("ConfigMap: data.ssl-session-ticket-key: an ingress-nginx key ingresslib does not implement, ignored",
                            "ConfigMap: data.worker-processes: an ingress-nginx key ingresslib does not implement, ignored")


# --- 2. an unquoted annotation or label value: "quote the value" --------------------------------


def _errors(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_manifests(text)
    return [str(e) for e in info.value.errors]


def test_an_unquoted_annotation_value_says_quote_it() -> None:
    assert _errors(_ingress(f"{{{PREFIX}ssl-redirect: false}}")) == [
        f"Ingress default/web: metadata.annotations[{PREFIX}ssl-redirect]: Invalid value: false: "
        "expected string, got boolean; quote the value"]


def test_an_unquoted_label_value_says_quote_it() -> None:
    text = _ingress().replace("  name: web\n", "  name: web\n  labels: {version: 2}\n")
    assert _errors(text) == [
        "Ingress default/web: metadata.labels[version]: Invalid value: 2: expected string, got "
        "integer; quote the value"]


def test_a_list_in_an_annotation_is_not_told_to_quote() -> None:
    (err,) = _errors(_ingress(f"{{{PREFIX}ssl-redirect: [a]}}"))
    assert err.endswith("expected string, got array")


# --- 3. explain: an Ingress the class filter left out -------------------------------------------


def _explain(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["explain", *args])
    return code, out.getvalue()


def test_explain_names_the_ingress_the_controller_filter_left_out() -> None:
    # The example names IngressClass "ingresslib", not in the file: check says so (info:);
    # explain said only "404: no rule and no default backend matched".
    code, text = _explain("-f", EXAMPLE, "--controller", "ingresslib.io/controller",
                          "http://hello.example.com/")
    assert code == 0
    assert ('     not served: Ingress default/hello matches this request, but '
            'IngressClass "ingresslib" is not among the objects given') in text


def test_explain_json_lists_the_ingresses_left_out(tmp_path: Path) -> None:
    f = tmp_path / "ing.yaml"
    f.write_text(_ingress())
    code, text = _explain("-f", str(f), "--ingress-class", "nginx", "http://a.example/",
                          "-o", "json")
    doc = json.loads(text)
    assert code == 0 and doc["status"] == 404 and doc["match"] is None  # unchanged keys
    assert doc["not_served"] == [{
        "ingress": "default/web",
        "reason": 'IngressClass "nginx" is not among the objects given (SEMANTICS §3: a class '
                  "that does not exist is never served; load the IngressClass too, or, watching a cluster, create it)"}]


def test_explain_names_an_ingress_without_a_class_when_none_is_the_default(
        tmp_path: Path) -> None:
    klass = ("---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
             "metadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n")
    f = tmp_path / "ing.yaml"
    f.write_text(_ingress().replace("  ingressClassName: nginx\n", "") + klass)
    _code, text = _explain("-f", str(f), "--ingress-class", "nginx", "http://a.example/x")
    assert ("not served: Ingress default/web matches this request, but names no class and no "
            "matching IngressClass is the default") in text


def test_explain_names_no_ingress_for_another_host(tmp_path: Path) -> None:
    f = tmp_path / "ing.yaml"
    f.write_text(_ingress())
    _code, text = _explain("-f", str(f), "--ingress-class", "nginx", "http://b.example/",
                           "-o", "json")
    assert "not_served" not in json.loads(text)


# --- 4. demo: a busy port names the option and the way out --------------------------------------


def test_demo_with_its_port_busy_names_the_option_and_a_fix(
        capsys: pytest.CaptureFixture[str]) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        assert main(["demo", "--once", "--listen", f"127.0.0.1:{port}"]) == 1
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert err.startswith(f"ingresslib demo: --listen 127.0.0.1:{port}: cannot listen: ")
    assert "choose another with --listen 127.0.0.1:PORT" in err


# --- 5. serve --help --------------------------------------------------------------------------


def _option_help(option: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    # The option's block: from its line to the next option's.
    block = text.split(f"\n  {option} ", 1)[1].split("\n  --", 1)[0]
    return " ".join(block.split())


def test_serve_help_gives_the_listen_default_and_port_zero(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = _option_help("--listen", capsys)
    assert "default: 127.0.0.1:8080" in text and "port 0: a free one" in text


def test_serve_help_explains_metrics_listen(capsys: pytest.CaptureFixture[str]) -> None:
    text = _option_help("--metrics-listen", capsys)
    assert "/metrics" in text and "/healthz" in text and "10254" in text


def test_serve_help_explains_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert "default: info" in _option_help("--log-level", capsys)


def test_serve_help_names_the_last_kubeconfig_fallback(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "~/.kube/config" in _option_help("--kubeconfig", capsys)


# --- 6. /healthz and /metrics: the reason phrase ------------------------------------------------


async def _status_line(server: Any, path: str) -> bytes:
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        line = await reader.readline()
        writer.close()
        return line
    finally:
        await server.close()


@pytest.mark.parametrize(("healthy", "path", "want"), [
    (True, "/healthz", b"HTTP/1.1 200 OK\r\n"),
    (False, "/healthz", b"HTTP/1.1 503 Service Unavailable\r\n"),
    (True, "/metrics", b"HTTP/1.1 200 OK\r\n"),
    (True, "/nope", b"HTTP/1.1 404 Not Found\r\n"),
])
def test_metrics_server_sends_the_reason_phrase(healthy: bool, path: str, want: bytes) -> None:
    from ingresslib._metrics import Metrics, MetricsServer

    server = MetricsServer(Metrics(), "127.0.0.1", 0, healthy=lambda: healthy)
    assert asyncio.run(_status_line(server, path)) == want


# --- 7. TLS log lines: "tls" once ---------------------------------------------------------------


def test_a_tls_problem_is_logged_without_a_second_tls_prefix(
        caplog: pytest.LogCaptureFixture) -> None:
    from ingresslib._tls import CertificateStore

    text = _ingress().replace("  rules:", "  tls:\n  - hosts: [a.example]\n"
                                          "    secretName: missing\n  rules:")
    caplog.set_level(logging.INFO, logger="ingresslib.tls")
    problems = CertificateStore().update(parse_manifests(text))
    assert problems
    logged = [r.getMessage() for r in caplog.records if r.name == "ingresslib.tls"]
    assert logged == [str(p) for p in problems]
    assert not any(m.startswith("tls: ") for m in logged)


# --- 8. the cluster: the API server named, KUBECONFIG="" read as unset -------------------------

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}"}}
users:
- name: u
  user: {{token: t}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"""


def test_an_empty_kubeconfig_variable_is_read_as_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # client-go NewDefaultClientConfigLoadingRules: "if len(envVarFiles) != 0 {...} else {
    # chain = append(chain, RecommendedHomeFile) }". lightkube opened "": "Configuration file
    # not found".
    pytest.importorskip("lightkube")
    from lightkube import KubeConfig
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import load_kube_config

    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(_KUBECONFIG.format(server="https://127.0.0.1:9"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", "")

    def not_in_a_pod(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("not in a pod")

    monkeypatch.setattr(KubeConfig, "from_service_account", not_in_a_pod)
    assert load_kube_config().cluster.server == "https://127.0.0.1:9"


def test_a_failed_list_names_the_api_server(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("lightkube")
    from lightkube import KubeConfig

    from ingresslib._kube import Backoff, ClusterWatcher

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: the connection is refused
    server = f"https://127.0.0.1:{port}"
    import yaml

    config = KubeConfig.from_dict(yaml.safe_load(_KUBECONFIG.format(server=server))).get()

    async def run() -> None:
        stop = asyncio.Event()
        watcher = ClusterWatcher(lambda res: None, config=config,
                                 backoff=Backoff(initial=0.5, maximum=0.5))
        task = asyncio.create_task(watcher.run(stop))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if any("list failed" in r.getMessage() for r in caplog.records):
                break
        stop.set()
        await asyncio.wait_for(task, 10)

    caplog.set_level(logging.WARNING, logger="ingresslib.kube")
    asyncio.run(run())
    failed = [r.getMessage() for r in caplog.records if "list failed" in r.getMessage()]
    assert failed
    assert all(f"; API server {server})" in m for m in failed)
