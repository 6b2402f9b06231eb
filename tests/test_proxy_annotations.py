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
    o = opts(proxy_connect_timeout="2", proxy_read_timeout="30", proxy_send_timeout="+4",
             proxy_next_upstream="error http_502 non_idempotent", proxy_next_upstream_tries="5")
    assert (o.connect_timeout, o.read_timeout, o.send_timeout) == (2.0, 30.0, 4.0)
    assert o.next_upstream == {"error", "http_502", "non_idempotent"}
    assert o.next_upstream_tries == 5


@pytest.mark.parametrize("name,value", [
    ("proxy-body-size", "1 m"), ("proxy-body-size", "-1"), ("proxy-read-timeout", "0"),
    ("proxy-read-timeout", "soon"), ("proxy-next-upstream", "error sometimes"),
    ("proxy-next-upstream-tries", "-2"), ("ssl-redirect", "yes"), ("app-root", "app"),
    ("force-ssl-redirect", "tRuE"), ("x-forwarded-prefix", "a\nb"),
    ("proxy-connect-timeout", "nan"),
    # ingress-nginx: "All timeout values are unitless and in seconds" (annotations.md); the
    # parser is strconv.Atoi (parser/main.go parseInt), so these fall back to the default there.
    ("proxy-read-timeout", "30s"), ("proxy-read-timeout", "4.5"), ("proxy-send-timeout", "1m"),
    ("proxy-connect-timeout", " 2"), ("proxy-connect-timeout", "2_0"),
    ("proxy-connect-timeout", "\u0662"), ("proxy-next-upstream-tries", " 5"),
    ("proxy-next-upstream-tries", "\u0665"),
    # validUpstreamAnnotation (proxy/main.go): one whitespace at most after each condition.
    ("proxy-next-upstream", "error  timeout"), ("proxy-next-upstream", " error"),
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


# Go's strconv.ParseBool, which ingress-nginx's annotation parser uses (parser/main.go parseBool,
# validators.go ValidateBool): exactly these spellings, nothing trimmed or lower-cased.
@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_true_spellings_of_go_parsebool(value: str) -> None:
    o = opts(force_ssl_redirect=value, use_regex=value, rewrite_target="/$1")
    assert o.force_ssl_redirect is True and o.warnings == ()
    assert o.rewrite_regex is not None and o.rewrite_regex.pattern == "/"


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_false_spellings_of_go_parsebool(value: str) -> None:
    o = opts(ssl_redirect=value)
    assert o.ssl_redirect is False and o.warnings == ()


@pytest.mark.parametrize("value", ["tRuE", "FaLsE", " true", "false ", "yes", "on", ""])
def test_other_boolean_spellings_warn_and_fall_back(value: str) -> None:
    o = opts(ssl_redirect=value, force_ssl_redirect=value)
    assert (o.ssl_redirect, o.force_ssl_redirect) == (True, False)
    assert len(o.warnings) == 2
    assert all("must be" in w for w in o.warnings)


def test_warning_names_object_key_and_the_default_used() -> None:
    o = parse_route_options({PREFIX + "proxy-read-timeout": "30s"}, "/",
                            ProxySettings(proxy_read_timeout=9), where="Ingress shop/web")
    assert o.read_timeout == 9.0
    (w,) = o.warnings
    assert w.startswith("Ingress shop/web: annotation nginx.ingress.kubernetes.io/"
                        "proxy-read-timeout: ")
    assert "'30s'" in w and w.endswith("using the default 9")


def test_annotation_over_configmap_over_default() -> None:
    from ingresslib._config import parse_config_data

    settings = parse_config_data({"proxy-read-timeout": "9", "proxy-body-size": "2m"}).settings
    o = parse_route_options({}, "/", settings)
    assert (o.read_timeout, o.body_size) == (9.0, 2 * 1024 * 1024)
    o = parse_route_options({PREFIX + "proxy-read-timeout": "20",
                             PREFIX + "proxy-body-size": "3k"}, "/", settings)
    assert (o.read_timeout, o.body_size) == (20.0, 3 * 1024)
    # An invalid annotation falls back to the ConfigMap's value (ingress-nginx's
    # defBackend.ProxyReadTimeout is the ConfigMap-merged default), not the built-in 60.
    o = parse_route_options({PREFIX + "proxy-read-timeout": "soon"}, "/", settings)
    assert o.read_timeout == 9.0 and o.warnings


def test_other_prefixes_are_not_read() -> None:
    # ingresslib reads nginx.ingress.kubernetes.io/ only (no --annotations-prefix).
    o = parse_route_options({"example.com/proxy-read-timeout": "5",
                             "nginx.org/proxy-read-timeout": "5"}, "/", ProxySettings())
    assert o.read_timeout == 60.0 and o.warnings == ()


def test_next_upstream_separators() -> None:
    assert opts(proxy_next_upstream="error\ttimeout ").next_upstream == {"error", "timeout"}
    assert opts(proxy_next_upstream="off error").next_upstream == {"off", "error"}  # off wins
