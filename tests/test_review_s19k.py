"""Review s19k: ingresslib/_config.py against ingress-nginx's ConfigMap reading."""

from __future__ import annotations

import pytest

from ingresslib import ValidationError
from ingresslib.proxy import ProxySettings, parse_config_data


@pytest.mark.parametrize("value", [" ewma", "ewma ", " round_robin ", "ewma\n"])
def test_load_balance_with_spaces_is_refused(value: str) -> None:
    # ingress-nginx's balancer.lua looks the value up verbatim (IMPLEMENTATIONS[name]) and
    # falls back to round_robin for " ewma": reading it as ewma balanced differently.
    with pytest.raises(ValidationError) as e:
        parse_config_data({"load-balance": value})
    err = e.value.errors[0]
    assert err.field == "data.load-balance"
    assert "without surrounding spaces" in err.detail


@pytest.mark.parametrize("value", ["ewma", "round_robin"])
def test_load_balance_exact_values_still_read(value: str) -> None:
    assert parse_config_data({"load-balance": value}).load_balance == value



@pytest.mark.parametrize(("key", "bare"), [
    ("nginx.ingress.kubernetes.io/proxy-body-size", "proxy-body-size"),
    ("nginx.ingress.kubernetes.io/ssl-redirect", "ssl-redirect"),
    ("nginx.ingress.kubernetes.io/load-balance", "load-balance"),
])
def test_annotation_name_as_configmap_key_gets_the_bare_key(key: str, bare: str) -> None:
    # ingress-nginx ignores the prefixed key (the ConfigMap's keys have no prefix): the
    # warning names the key that would have set it.
    (warning,) = parse_config_data({key: "8m"}).warnings
    assert warning.startswith(f"ConfigMap: data.{key}: ")
    assert f"did you mean {bare}?" in warning


def test_annotation_prefix_with_an_unknown_name_gets_no_guess() -> None:
    (warning,) = parse_config_data({"nginx.ingress.kubernetes.io/no-such-thing": "1"}).warnings
    assert "did you mean" not in warning

@pytest.mark.parametrize("value", ["4 100", "4 511", "8 256", "2 1"])
def test_header_buffers_below_connection_pool_size_refused(value: str) -> None:
    # nginx refuses large_client_header_buffers smaller than connection_pool_size (512 on
    # 64-bit), so ingress-nginx never runs with it; read here, it gave 100-byte header limits.
    with pytest.raises(ValidationError) as e:
        parse_config_data({"large-client-header-buffers": value})
    err = e.value.errors[0]
    assert err.field == "data.large-client-header-buffers"
    assert "connection_pool_size" in err.detail
    # The keyword argument takes the same values as the ConfigMap (one parser).
    with pytest.raises(ValueError, match="connection_pool_size"):
        ProxySettings(large_client_header_buffers=value)


@pytest.mark.parametrize(("value", "line", "total"), [
    ("4 512", 512, 2048), ("4 1k", 1024, 4096), ("4 8k", 8192, 32768), ("2 16k", 16384, 32768)])
def test_header_buffers_at_or_above_pool_size_read(value: str, line: int, total: int) -> None:
    s = parse_config_data({"large-client-header-buffers": value}).settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (line, line, total)
