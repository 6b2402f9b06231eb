"""Session 24 (V1), the seams of the session's first round: where a change stopped at a module
boundary.

1. ``ingresslib check --config``: the ConfigMap type checks (metadata, immutable, binaryData)
   and the timeout bound reached ``serve --config`` and ``explain --config`` only; ``check``,
   the validation command, took no ConfigMap at all, and its annotation warnings named the
   built-in defaults ("using the default 60") where serve, given the ConfigMap, logs its own.
2. The proxy core and IngressASGI agree on what the round changed on both (an absolute-form
   target naming the Host's host written differently, an IPv6 client from a trusted
   X-Forwarded-For, ``OPTIONS *``): guards, the two front ends side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib.proxy import ProxySettings

sys.path.insert(0, str(Path(__file__).parent))
from _agree_s13 import (  # noqa: E402
    IngressSpec,
    PathSpec,
    RequestSpec,
    manifests_text,
    via_asgi,
    via_proxy,
)

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "3000000"
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def _files(tmp_path: Path, configmap: str) -> tuple[str, str]:
    m = tmp_path / "m.yaml"
    m.write_text(INGRESS, encoding="utf-8")
    cm = tmp_path / "cm.yaml"
    cm.write_text(configmap, encoding="utf-8")
    return str(m), str(cm)


# -- 1. check --config ----------------------------------------------------------------------

def test_check_config_names_file_and_field_of_a_configmap_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, cm = _files(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n"
                             'immutable: "yes"\ndata: {}\n')
    assert main(["check", "-f", m, "--config", cm]) == 2
    err = capsys.readouterr().err
    # As serve --config and explain --config say it: the file, the object, the field.
    assert f"{cm}: ConfigMap default/?: metadata: Invalid value: expected object, got array" in err
    assert f'{cm}: ConfigMap default/?: immutable: Invalid value: "yes": expected boolean' in err
    assert "2 error(s)" in err


def test_check_config_timeout_past_nginx_bound_is_an_error_with_its_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, cm = _files(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                             'data: {proxy-read-timeout: "3000000"}\n')
    assert main(["check", "-f", m, "--config", cm, "-o", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    [error] = doc["errors"]
    assert (error["source"], error["object"], error["field"]) == (
        cm, "ConfigMap default/c", "data.proxy-read-timeout")
    assert "must be at most 2147483 seconds" in error["message"]


def test_check_config_annotation_warning_names_the_configmap_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # serve --config with this ConfigMap logs "using the default 120" for the annotation past
    # nginx's bound; check said 60 (the built-in default) and took no --config.
    m, cm = _files(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                             'data: {proxy-read-timeout: "120", no-such-key: "1"}\n')
    assert main(["check", "-f", m, "--config", cm, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [timeout] = [w for w in doc["warnings"] if "proxy-read-timeout" in w]
    assert timeout.startswith("Ingress default/web: annotation "
                              "nginx.ingress.kubernetes.io/proxy-read-timeout: invalid timeout")
    assert timeout.endswith("using the default 120")
    # The ConfigMap's own warnings are check's, counted and listed with the others.
    assert doc["warnings"][0] == "ConfigMap default/c: data.no-such-key: unknown key, ignored"
    assert doc["diagnostics"][0] == "warning: " + doc["warnings"][0]


def test_check_without_config_keeps_the_builtin_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, _ = _files(tmp_path, "")
    assert main(["check", "-f", m]) == 0
    captured = capsys.readouterr()
    assert "using the default 60" in captured.err
    assert captured.out == "ok: 1 Ingress(es), 1 served, 1 route(s), 1 warning(s)\n"


# -- 2. the proxy core and IngressASGI, side by side -------------------------------------------

_TEXT = manifests_text((IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),)),))


@pytest.mark.parametrize(("target", "host", "status"), [
    ("http://A.TEST:80/x", "a.test", 200),
    ("http://a.test./x", "a.test:80", 200),
    ("https://a.test:443/x", "A.test.", 200),
    ("http://a.test:443/x", "a.test", 400),
    ("http://b.test/x", "a.test", 400),
    ("http://a..test/x", "a..test", 400),
])
def test_absolute_form_alike_in_proxy_and_asgi(target: str, host: str, status: int) -> None:
    req = RequestSpec("GET", target, host, (), b"", target.startswith("https"), "127.0.0.1")
    settings = ProxySettings(proxy_add_original_uri_header=True)
    proxy = via_proxy(_TEXT, req, settings, frozenset())
    assert proxy.status == status
    assert via_asgi(_TEXT, req, settings, frozenset()) == proxy


@pytest.mark.parametrize(("sent", "shown"), [
    ("2001:DB8:0:0::7", b"2001:db8::7"),
    ("0:0:0:0:0:ffff:102:304", b"::ffff:1.2.3.4"),
])
def test_ipv6_client_text_alike_in_proxy_and_asgi(sent: str, shown: bytes) -> None:
    req = RequestSpec("GET", "/x", "a.test", (("X-Forwarded-For", sent),), b"", False,
                      "127.0.0.1")
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",))
    proxy = via_proxy(_TEXT, req, settings, frozenset())
    assert proxy.forwarded[b"x-real-ip"] == [shown]
    assert via_asgi(_TEXT, req, settings, frozenset()) == proxy


@pytest.mark.parametrize(("host", "status"), [("a.test", 200), (None, 200), ("a b", 400)])
def test_options_star_alike_in_proxy_and_asgi(host: str | None, status: int) -> None:
    req = RequestSpec("OPTIONS", "*", host, (), b"", False, "127.0.0.1")
    proxy = via_proxy(_TEXT, req, ProxySettings(), frozenset())
    assert proxy.status == status
    assert via_asgi(_TEXT, req, ProxySettings(), frozenset()) == proxy


def test_check_api_takes_the_configmap_settings() -> None:
    # ``ingresslib.check`` is what ``check`` prints; ``check --config`` gives it the settings.
    import ingresslib

    res = ingresslib.parse_manifests(INGRESS)
    [line] = [str(d) for d in ingresslib.check(res, settings=ProxySettings(
        proxy_read_timeout=120)) if "proxy-read-timeout" in str(d)]
    assert line.endswith("using the default 120")
    with pytest.raises(TypeError, match="settings must be an ingresslib.ProxySettings"):
        ingresslib.check(res, settings={"proxy-read-timeout": "120"})  # type: ignore[arg-type]
