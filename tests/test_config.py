"""ConfigMap ``data`` -> ProxySettings, with ingress-nginx key names and value syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingresslib._config import KNOWN_KEYS, load_config, parse_config_data, parse_configmap
from ingresslib._errors import ValidationError
from ingresslib.proxy._settings import ProxySettings

CONTRACT_KEYS = """use-forwarded-headers compute-full-forwarded-for forwarded-for-header
proxy-real-ip-cidr enable-real-ip generate-request-id ssl-redirect hsts hsts-max-age
hsts-include-subdomains proxy-connect-timeout proxy-read-timeout proxy-send-timeout
proxy-next-upstream proxy-next-upstream-tries proxy-body-size keep-alive keep-alive-requests
upstream-keepalive-connections large-client-header-buffers enable-underscores-in-headers
load-balance""".split()


def test_every_contract_key_is_known() -> None:
    assert set(CONTRACT_KEYS) <= KNOWN_KEYS


def test_empty_is_default() -> None:
    cfg = parse_config_data({})
    assert cfg.settings == ProxySettings()
    assert cfg.load_balance is None and cfg.warnings == ()


@pytest.mark.parametrize(
    ("key", "value", "field", "want"),
    [
        ("use-forwarded-headers", "true", "use_forwarded_headers", True),
        ("compute-full-forwarded-for", "True", "compute_full_forwarded_for", True),
        ("forwarded-for-header", "X-Client-IP", "forwarded_for_header", "X-Client-IP"),
        ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.1.7", "proxy_real_ip_cidr",
         ("10.0.0.0/8", "192.168.1.7/32")),
        ("enable-real-ip", "1", "enable_real_ip", True),
        ("generate-request-id", "false", "generate_request_id", False),
        ("proxy-add-original-uri-header", "true", "proxy_add_original_uri_header", True),
        ("ssl-redirect", "false", "ssl_redirect", False),
        ("hsts", "F", "hsts", False),
        ("hsts-max-age", "600", "hsts_max_age", 600),
        ("hsts-include-subdomains", "false", "hsts_include_subdomains", False),
        ("proxy-connect-timeout", "2", "proxy_connect_timeout", 2.0),
        ("proxy-read-timeout", "500ms", "proxy_read_timeout", 0.5),
        ("proxy-send-timeout", "1m", "proxy_send_timeout", 60.0),
        ("proxy-next-upstream", "error timeout http_502", "proxy_next_upstream",
         ("error", "timeout", "http_502")),
        ("proxy-next-upstream", "off", "proxy_next_upstream", ("off",)),
        ("proxy-next-upstream-tries", "5", "proxy_next_upstream_tries", 5),
        ("proxy-body-size", "8m", "proxy_body_size", 8 * 1024 * 1024),
        ("proxy-body-size", "512K", "proxy_body_size", 512 * 1024),
        ("proxy-body-size", "0", "proxy_body_size", 0),
        ("keep-alive", "10", "keep_alive", 10.0),
        ("client-body-timeout", "30s", "client_body_timeout", 30.0),
        ("keep-alive-requests", "50", "keep_alive_requests", 50),
        ("upstream-keepalive-connections", "0", "upstream_keepalive_connections", 0),
        ("enable-underscores-in-headers", "true", "enable_underscores_in_headers", True),
    ],
)
def test_each_key(key: str, value: str, field: str, want: object) -> None:
    cfg = parse_config_data({key: value})
    assert getattr(cfg.settings, field) == want
    assert cfg.warnings == ()


def test_large_client_header_buffers_sets_limits() -> None:
    s = parse_config_data({"large-client-header-buffers": "2 16k"}).settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (16384, 16384, 32768)
    assert s.large_client_header_buffers == "2 16k"


def test_load_balance() -> None:
    assert parse_config_data({"load-balance": "ewma"}).load_balance == "ewma"


def test_unknown_keys_warn() -> None:
    cfg = parse_config_data({"worker-processes": "4", "hsts": "true"})
    assert cfg.warnings == ("ConfigMap: data.worker-processes: unknown key, ignored",)


def test_every_invalid_value_reported() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_config_data({
            "hsts": "yes", "proxy-body-size": "lots", "proxy-next-upstream": "error sometimes",
            "proxy-real-ip-cidr": "10.0.0.0/33", "keep-alive-requests": "-1",
            "load-balance": "random", "large-client-header-buffers": "4",
            "proxy-read-timeout": "soon", "forwarded-for-header": "X Bad",
        }, object="ConfigMap ingress/cfg")
    fields = sorted(e.field for e in ei.value.errors)
    assert fields == sorted(f"data.{k}" for k in (
        "hsts", "proxy-body-size", "proxy-next-upstream", "proxy-real-ip-cidr",
        "keep-alive-requests", "load-balance", "large-client-header-buffers",
        "proxy-read-timeout", "forwarded-for-header"))
    assert 'ConfigMap ingress/cfg: data.hsts: Invalid value: "yes": must be "true" or "false"' in str(ei.value)


def test_off_cannot_combine() -> None:
    with pytest.raises(ValidationError):
        parse_config_data({"proxy-next-upstream": "off error"})


def test_configmap_object_and_file(tmp_path: Path) -> None:
    p = tmp_path / "cm.yaml"
    p.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-nginx-controller,"
                 " namespace: ingress-nginx}\ndata:\n  proxy-body-size: '2m'\n  hsts: 'false'\n")
    cfg = load_config(p)
    assert cfg.settings.proxy_body_size == 2 * 1024 * 1024 and cfg.settings.hsts is False
    with pytest.raises(ValidationError) as ei:
        parse_configmap({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert "kind" in str(ei.value)
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                                       "data: {keep-alive: forever}\n")
    with pytest.raises(ValidationError) as ei:
        load_config(tmp_path / "bad.yaml")
    assert "ConfigMap default/c: data.keep-alive" in str(ei.value)
    (tmp_path / "none.yaml").write_text("a: 1\n")
    with pytest.raises(ValidationError):
        load_config(tmp_path / "none.yaml")
