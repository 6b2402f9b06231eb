"""Per-route options from ingress-nginx annotations: valid values apply, invalid ones warn and
fall back to the settings (never silently)."""

from __future__ import annotations

import logging

import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options, parse_size


def opts(rule_path: str | None = "/", **ann: str):  # type: ignore[no-untyped-def]
    return parse_route_options({PREFIX + k.replace("_", "-"): v for k, v in ann.items()},
                               rule_path, ProxySettings())


def test_defaults_come_from_settings() -> None:
    o = parse_route_options({}, "/", ProxySettings(proxy_read_timeout=9, proxy_body_size=5))
    assert o.read_timeout == 9 and o.body_size == 5 and o.next_upstream == {"error", "timeout"}
    assert o.next_upstream_tries == 3 and o.ssl_redirect is True and not o.force_ssl_redirect


@pytest.mark.parametrize("value,expected", [("1m", 1048576), ("8k", 8192), ("8K", 8192),
                                            ("0", 0), ("512", 512), ("1g", 1 << 30)])
def test_sizes(value: str, expected: int) -> None:
    assert parse_size(value) == expected
    assert opts(proxy_body_size=value).body_size == expected


def test_timeouts_and_retries() -> None:
    o = opts(proxy_connect_timeout="2", proxy_read_timeout="30s", proxy_send_timeout="4.5",
             proxy_next_upstream="error http_502 non_idempotent", proxy_next_upstream_tries="5")
    assert (o.connect_timeout, o.read_timeout, o.send_timeout) == (2.0, 30.0, 4.5)
    assert o.next_upstream == {"error", "http_502", "non_idempotent"}
    assert o.next_upstream_tries == 5


@pytest.mark.parametrize("name,value", [
    ("proxy-body-size", "1 m"), ("proxy-body-size", "-1"), ("proxy-read-timeout", "0"),
    ("proxy-read-timeout", "soon"), ("proxy-next-upstream", "error sometimes"),
    ("proxy-next-upstream-tries", "-2"), ("ssl-redirect", "yes"), ("app-root", "app"),
    ("force-ssl-redirect", "1"), ("x-forwarded-prefix", "a\nb"), ("proxy-connect-timeout", "nan"),
])
def test_invalid_values_warn_and_fall_back(name: str, value: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    default = parse_route_options({}, "/", ProxySettings())
    log = logging.getLogger("test.annotations")
    with caplog.at_level(logging.WARNING, logger="test.annotations"):
        o = parse_route_options({PREFIX + name: value}, "/", ProxySettings(), log,
                                where="Ingress default/web")
    assert o.warnings and name in o.warnings[0] and "Ingress default/web" in o.warnings[0]
    assert any(name in r.getMessage() for r in caplog.records)
    assert (o.body_size, o.read_timeout, o.connect_timeout, o.next_upstream,
            o.next_upstream_tries, o.ssl_redirect, o.app_root, o.force_ssl_redirect,
            o.x_forwarded_prefix) == (
        default.body_size, default.read_timeout, default.connect_timeout, default.next_upstream,
        default.next_upstream_tries, default.ssl_redirect, default.app_root,
        default.force_ssl_redirect, default.x_forwarded_prefix)


def test_rewrite_with_regex_captures() -> None:
    o = opts("/something(/|$)(.*)", rewrite_target="/$2", use_regex="true")
    assert o.rewrite("/something/new/x") == "/new/x"
    assert o.rewrite("/something") == "/"
    assert o.rewrite("/SOMETHING/a") == "/a"  # ingress-nginx's "(?i)"
    assert o.rewrite("/other") == "/other"  # no match: unchanged


def test_rewrite_groups_and_missing_groups() -> None:
    o = opts("/api/(v[0-9])/(.*)", rewrite_target="/$2/$1/$3", use_regex="true")
    assert o.rewrite("/api/v2/users") == "/users/v2/"


def test_rewrite_without_regex_replaces_the_whole_path() -> None:
    o = opts("/api", rewrite_target="/")
    assert o.rewrite("/api/v1") == "/"
    o = opts("/a.b", rewrite_target="/x")  # the '.' is literal without use-regex
    assert o.rewrite("/aXb") == "/aXb"


def test_invalid_regex_disables_the_rewrite_with_a_warning() -> None:
    o = opts("/a(", rewrite_target="/$1", use_regex="true")
    assert o.rewrite_target is None and o.warnings
    assert o.rewrite("/a(") == "/a("


def test_rewrite_target_without_slash_gets_one() -> None:
    assert opts("/(.*)", rewrite_target="$1", use_regex="true").rewrite("/x") == "/x"


def test_backend_protocol() -> None:
    assert opts(backend_protocol="HTTPS").backend_tls is True
    assert opts(backend_protocol="http").backend_tls is False
    o = opts(backend_protocol="GRPC")
    assert o.backend_tls is False and o.warnings
