"""ProxySettings: the documented defaults and the ConfigMap-key naming rule."""

from __future__ import annotations

import dataclasses

import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._errors import LocalProxyError, ProxyError, RemoteProxyError

CONFIGMAP_KEYS = [
    "use-forwarded-headers", "compute-full-forwarded-for", "forwarded-for-header",
    "proxy-real-ip-cidr", "enable-real-ip", "generate-request-id", "ssl-redirect", "hsts",
    "hsts-max-age", "hsts-include-subdomains", "proxy-connect-timeout", "proxy-read-timeout",
    "proxy-send-timeout", "proxy-next-upstream", "proxy-next-upstream-tries", "proxy-body-size",
    "keep-alive", "keep-alive-requests", "upstream-keepalive-connections",
    "large-client-header-buffers", "enable-underscores-in-headers", "ignore-invalid-headers",
    "http-redirect-code", "force-ssl-redirect", "proxy-next-upstream-timeout",
    "retry-non-idempotent", "upstream-keepalive-time", "upstream-keepalive-timeout",
    "upstream-keepalive-requests",
]


@pytest.mark.parametrize("key", CONFIGMAP_KEYS)
def test_configmap_keys_map_mechanically_to_fields(key: str) -> None:
    assert key.replace("-", "_") in ProxySettings.field_names()


def test_defaults() -> None:
    s = ProxySettings()
    assert (s.max_request_line, s.max_header_line, s.max_headers_size, s.max_headers) == (
        8192, 8192, 32768, 100)
    assert s.proxy_body_size == 1048576 and s.proxy_next_upstream_tries == 3
    assert s.proxy_real_ip_cidr == () and not s.use_forwarded_headers
    assert s.hsts_max_age == 31536000 and s.hsts_include_subdomains


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProxySettings().hsts = False  # type: ignore[misc]


def test_errors_split_at_the_trust_boundary() -> None:
    with pytest.raises(TypeError):
        ProxyError("x")
    assert RemoteProxyError("x", 431).status_hint == 431
    assert isinstance(LocalProxyError("x"), ProxyError)


# --- large_client_header_buffers (review item: the keyword was accepted but did nothing) --------
def test_large_client_header_buffers_alone_sets_the_enforced_limits() -> None:
    # CONTRACT: "The same settings are keyword arguments of the Python server API": the nginx
    # value alone must change the three limits that check_raw_head enforces.
    s = ProxySettings(large_client_header_buffers="4 16k")
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (16384, 16384, 65536)
    s = dataclasses.replace(ProxySettings(), large_client_header_buffers="2 1K")
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (1024, 1024, 2048)


def test_large_client_header_buffers_via_proxy_server_keyword() -> None:
    import asyncio

    from ingresslib.proxy import ProxyServer

    from _proxy_harness import FakeRouter, Route

    async def build() -> ProxySettings:
        return ProxyServer(FakeRouter([Route()]), large_client_header_buffers="4 16k").settings

    s = asyncio.run(build())
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (16384, 16384, 65536)


def test_explicit_limits_win_over_large_client_header_buffers() -> None:
    s = ProxySettings(large_client_header_buffers="4 16k", max_header_line=1000)
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (8192, 1000, 32768)
    # The default value derives nothing: the defaults stay what they are.
    assert ProxySettings(max_request_line=100).max_request_line == 100


@pytest.mark.parametrize("bad", ["4", "x 8k", "0 8k", "4 0", "4 8q", "-1 8k", "4 8k 8k", "",
                                 # nginx refuses sizes past 2^63-1 (ngx_parse_size); these
                                 # were accepted, and the overflowing limit enforced nothing.
                                 "4 99999999999g", "99999999999 1g"])
def test_invalid_large_client_header_buffers_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="large_client_header_buffers"):
        ProxySettings(large_client_header_buffers=bad)


@pytest.mark.parametrize("value", ["4 8k", "4 16k", "2 1K", "8 1m", "+2 512", "1 1g", "x 8k",
                                   "0 8k", "4 8q", "4", "-1 8k", "4 99999999999g"])
def test_parse_header_buffers_agrees_with_the_configmap_parser(value: str) -> None:
    # Guards the two parsers of the one nginx syntax against drifting apart (``_config`` may
    # reuse ``parse_header_buffers``): same accepted values, same limits.
    from ingresslib import _config
    from ingresslib.proxy._settings import parse_header_buffers

    try:
        want = _config._header_buffers(value)
    except _config._Bad:
        with pytest.raises(ValueError):
            parse_header_buffers(value)
        return
    assert parse_header_buffers(value) == (
        want["max_request_line"], want["max_header_line"], want["max_headers_size"])
    cfg = _config.parse_config_data({"large-client-header-buffers": value}).settings
    assert cfg.max_headers_size == want["max_headers_size"]


@pytest.mark.parametrize("value", ["\u0664 8k", "4 \u0668k", "+4 8k", "4 8x", "4", "0 8k"])
def test_header_buffers_refuse_what_nginx_would(value: str) -> None:
    # ngx_atoi and ngx_parse_size read ASCII digits only (no sign); str.isdigit-style digits
    # from other scripts would otherwise pass int() and \d.
    from ingresslib.proxy._settings import parse_header_buffers

    with pytest.raises(ValueError):
        parse_header_buffers(value)


def test_http_redirect_code_default_and_range() -> None:
    # ingress-nginx: "http-redirect-code ... Supported codes are 301,302,307 and 308" (308).
    assert ProxySettings().http_redirect_code == 308
    assert ProxySettings(http_redirect_code=301).http_redirect_code == 301
    for bad in (200, 303, 399):
        with pytest.raises(ValueError, match="http_redirect_code"):
            ProxySettings(http_redirect_code=bad)


def test_ignore_invalid_headers_defaults_on() -> None:
    # ingress-nginx `ignore-invalid-headers: true` -> nginx `ignore_invalid_headers on`.
    assert ProxySettings().ignore_invalid_headers


def test_next_upstream_timeout_and_retry_non_idempotent_defaults() -> None:
    # ingress-nginx defaults: ProxyNextUpstreamTimeout 0 (no limit), RetryNonIdempotent false.
    s = ProxySettings()
    assert s.proxy_next_upstream_timeout == 0.0 and s.retry_non_idempotent is False


def test_proxy_ignore_client_abort_is_nginx_off_and_no_configmap_key() -> None:
    from ingresslib._config import KNOWN_KEYS

    # nginx "proxy_ignore_client_abort off" (default); ingress-nginx has no ConfigMap key.
    assert ProxySettings().proxy_ignore_client_abort is False
    assert "proxy-ignore-client-abort" not in KNOWN_KEYS


def test_upstream_keepalive_time_default_and_validation() -> None:
    # ingress-nginx config.go: UpstreamKeepaliveTime "1h" (nginx keepalive_time's default too).
    s = ProxySettings()
    assert s.upstream_keepalive_time == 3600.0
    assert (s.upstream_keepalive_timeout, s.upstream_keepalive_requests) == (60.0, 10000)
    assert ProxySettings(upstream_keepalive_time=0).upstream_keepalive_time == 0
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="upstream_keepalive_time"):
            ProxySettings(upstream_keepalive_time=bad)
