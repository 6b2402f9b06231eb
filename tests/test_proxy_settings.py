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
    "large-client-header-buffers", "enable-underscores-in-headers",
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
