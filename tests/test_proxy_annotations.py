"""Per-route options from ingress-nginx annotations: valid values apply, invalid ones warn and
fall back to the settings (never silently)."""

from __future__ import annotations

import logging

import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options, parse_size


def opts(rule_path: str | None = "/", *, path_type: str | None = None,  # type: ignore[no-untyped-def]
         **ann: str):
    return parse_route_options({PREFIX + k.replace("_", "-"): v for k, v in ann.items()},
                               rule_path, ProxySettings(), path_type=path_type)


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
    # proxy/main.go reads proxy-next-upstream-timeout with GetIntAnnotation (strconv.Atoi).
    ("proxy-next-upstream-timeout", "10s"), ("proxy-next-upstream-timeout", "-1"),
    ("proxy-next-upstream-timeout", "1.5"),
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
            o.x_forwarded_prefix, o.next_upstream_timeout) == (
        default.body_size, default.read_timeout, default.connect_timeout, default.next_upstream,
        default.next_upstream_tries, default.ssl_redirect, default.app_root,
        default.force_ssl_redirect, default.x_forwarded_prefix, default.next_upstream_timeout)


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


def test_rewrite_target_equal_to_the_rule_path_is_no_rewrite() -> None:
    # ingress-nginx template.go buildProxyPass: "if the path in the ingress rule is equals to
    # the target: no special rewrite" (`if path == location.Rewrite.Target { return
    # defProxyPass }`): the path is forwarded untouched, not replaced by the target.
    # The rules whose location is the rule path as written: ImplementationSpecific, and a
    # Prefix `/` or one ending in `/`. (A Prefix `/api` is compared as its location `/api/`
    # and rewrites: README row "a `rewrite-target` equal to a Prefix rule's path", x54 s36.)
    spec = "ImplementationSpecific"
    o = opts("/", path_type="Prefix", rewrite_target="/")
    assert o.rewrite("/a/b") == "/a/b" and o.rewrite("/") == "/"
    o = opts("/api", path_type=spec, rewrite_target="/api")
    assert o.rewrite("/api/v1") == "/api/v1"
    o = opts("/api/", path_type="Prefix", rewrite_target="/api/")
    assert o.rewrite("/api/v1") == "/api/v1"
    o = opts("/api(/|$)(.*)", path_type=spec, rewrite_target="/api(/|$)(.*)", use_regex="true")
    assert o.rewrite("/api/x") == "/api/x"
    # The comparison is on the rule path as written: a different target still rewrites.
    assert opts("/api", path_type=spec, rewrite_target="/api/").rewrite("/api/v1") == "/api/"


def test_force_ssl_redirect_default_comes_from_the_configmap() -> None:
    # ingress-nginx rewrite/main.go: `config.ForceSSLRedirect, err =
    # parser.GetBoolAnnotation("force-ssl-redirect", ing); if err != nil {
    # config.ForceSSLRedirect = a.r.GetDefaultBackend().ForceSSLRedirect }` (ConfigMap key
    # force-ssl-redirect, default false).
    s = ProxySettings(force_ssl_redirect=True)
    assert parse_route_options({}, "/", s).force_ssl_redirect
    assert not parse_route_options({PREFIX + "force-ssl-redirect": "false"}, "/",
                                   s).force_ssl_redirect
    assert not opts().force_ssl_redirect


def test_force_ssl_redirect_configmap_through_the_core() -> None:
    from _proxy_harness import ProxyPair, status_of

    out = ProxyPair(settings=ProxySettings(force_ssl_redirect=True)).send(
        b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert status_of(out) == 308 and b"location: https://example.test/a\r\n" in out


# "/a\ud800": a lone surrogate (JSON manifests can carry one) has no bytes for the Location
# header; before, it raised UnicodeEncodeError out of the core on every request to "/".
@pytest.mark.parametrize("value", ["/app\x00", "/a\x1bb", "/a\x7f", "/a\x01", "/a\ud800"])
def test_app_root_with_a_control_character_is_refused(value: str) -> None:
    # ingress-nginx rewrite/main.go: `u, err := url.ParseRequestURI(config.AppRoot); if err !=
    # nil { klog.Warningf("Annotation app-root contains an invalid value: %v", err);
    # config.AppRoot = "" }`; Go's URL parser refuses any ASCII control character ("net/url:
    # invalid control character in URL"). The value would otherwise reach the Location header.
    o = opts(app_root=value)
    assert o.app_root is None and o.warnings


@pytest.mark.parametrize(("target", "query", "uri"), [
    ("/x", "a=1", "/x?a=1"),            # no "?" in the target: the arguments stay
    ("/x", None, "/x"),
    ("/x?b=2", "a=1", "/x?b=2&a=1"),    # "the previous request arguments are appended"
    ("/x?b=2", None, "/x?b=2"),
    ("/x?b=2", "", "/x?b=2"),
    ("/x?b=2?", "a=1", "/x?b=2"),       # "a question mark at the end ... avoids" appending
    ("/x?", "a=1", "/x"),
])
def test_rewrite_uri_arguments_follow_nginx_rewrite(target: str, query: str | None,
                                                    uri: str) -> None:
    # nginx rewrite module docs: "If a replacement string includes the new request arguments,
    # the previous request arguments are appended after them. If this is undesired, putting a
    # question mark at the end of a replacement string avoids having them appended".
    o = opts("/p", rewrite_target=target)
    assert o.rewrite_uri("/p/q", query) == uri


def test_rewrite_uri_without_a_match_keeps_path_and_query() -> None:
    o = opts("/p(/|$)(.*)", rewrite_target="/$2?", use_regex="true")
    assert o.rewrite_uri("/other", "a=1") == "/other?a=1"
    assert opts("/").rewrite_uri("/a", None) == "/a"  # no rewrite-target at all


@pytest.mark.parametrize("target", ["/a b", "/a\tb"])
def test_rewrite_target_with_whitespace_is_refused(target: str) -> None:
    # ingress-nginx writes `rewrite "(?i)<path>" <target> break;` unquoted: a space splits the
    # directive and the nginx configuration test rejects the Ingress. Forwarded as is it would
    # break the upstream request line ("GET /a b HTTP/1.1").
    o = opts("/", rewrite_target=target)
    assert o.rewrite_target is None and o.warnings
    assert o.rewrite_uri("/z", None) == "/z"


def test_rewrite_target_non_ascii_is_percent_encoded() -> None:
    # nginx escapes the rewritten URI it proxies (ngx_escape_uri): a request target is ASCII.
    o = opts("/p", rewrite_target="/café/$1")
    assert o.rewrite("/p") == "/caf%C3%A9/"
    assert o.rewrite_uri("/p", "q").isascii()


@pytest.mark.parametrize(("target", "sent"), [("/x?b=2?", b"GET /x?b=2 HTTP/1.1\r\n"),
                                              ("/x?", b"GET /x HTTP/1.1\r\n")])
def test_rewrite_target_arguments_through_the_core(target: str, sent: bytes) -> None:
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route("/p", annotations={PREFIX + "rewrite-target": target})])
    pair.send(b"GET /p/q?a=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert bytes(pair.upstreams[0].raw).startswith(sent)


def test_rewrite_target_equal_to_the_rule_path_through_the_core() -> None:
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route("/", annotations={PREFIX + "rewrite-target": "/"})])
    pair.send(b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert bytes(pair.upstreams[0].raw).startswith(b"GET /a/b?x=1 HTTP/1.1\r\n")


def test_next_upstream_timeout_annotation_over_the_setting() -> None:
    # ingress-nginx proxy/main.go: "config.NextUpstreamTimeout, err =
    # parser.GetIntAnnotation(proxyNextUpstreamTimeoutAnnotation, ...); if err != nil {
    # config.NextUpstreamTimeout = defBackend.ProxyNextUpstreamTimeout }" (0 = no limit).
    assert parse_route_options({}, "/", ProxySettings()).next_upstream_timeout == 0.0
    s = ProxySettings(proxy_next_upstream_timeout=7)
    assert parse_route_options({}, "/", s).next_upstream_timeout == 7.0
    assert opts(proxy_next_upstream_timeout="12").next_upstream_timeout == 12.0
    o = parse_route_options({PREFIX + "proxy-next-upstream-timeout": "0"}, "/", s)
    assert o.next_upstream_timeout == 0.0 and not o.warnings
    o = parse_route_options({PREFIX + "proxy-next-upstream-timeout": "x"}, "/", s)
    assert o.next_upstream_timeout == 7.0 and "using the default 7" in o.warnings[0]


def test_retry_non_idempotent_appends_to_the_effective_conditions() -> None:
    # ingress-nginx buildNextUpstream(location.Proxy.NextUpstream, Cfg.RetryNonIdempotent):
    # "if retryNonIdempotent { nextUpstreamCodes = append(nextUpstreamCodes, nonIdempotent) }".
    s = ProxySettings(retry_non_idempotent=True)
    assert parse_route_options({}, "/", s).next_upstream == {"error", "timeout", "non_idempotent"}
    o = parse_route_options({PREFIX + "proxy-next-upstream": "http_502"}, "/", s)
    assert o.next_upstream == {"http_502", "non_idempotent"}
    assert parse_route_options({}, "/", ProxySettings()).next_upstream == {"error", "timeout"}


# --- session 10 review: values ingress-nginx's annotation validators refuse ----------------

@pytest.mark.parametrize("target", [
    "/$0",          # nginx: "$0" is a variable name, not a capture (captures are $1..$9)
    "/$uri/x",      # an nginx variable: ingress-nginx would expand it, not forward "$uri"
    "/x/${1}",      # "${...}" variable syntax; "{" also breaks nginx.conf
    "/x$",          # nginx: "invalid variable name"
    "/x;y",         # ";" ends the rewrite directive in nginx.conf
    "/a{b}", "/a\\b", '/a"b', "/a<b>", "/a|b", "/a^b", "/a`b", "/a#b", "/a[b]",
    "/a%zz", "/a%", "/a%4",  # "%" not starting a %XX escape: an invalid request target
])
def test_rewrite_target_characters_ingress_nginx_refuses(target: str) -> None:
    # parser/validators.go: rewrite-target's validator is "ValidateRegex(
    # parser.RegexPathWithCapture, false)", RegexPathWithCapture = `^/?[` + alphaNumericChars +
    # `\/\$]*$`; nginx ngx_http_script_compile reads only "$1".."$9" as captures.
    o = opts("/p(.*)", rewrite_target=target, use_regex="true")
    assert o.rewrite_target is None and len(o.warnings) == 1
    assert "rewrite-target" in o.warnings[0] and "using the default" in o.warnings[0]
    assert o.rewrite_uri("/p/q", "a=1") == "/p/q?a=1"


@pytest.mark.parametrize(("target", "path", "want"), [
    ("/$1/$2", "/p/a/b", "/a/b"),
    ("/$12", "/p/a/b", "/a2"),            # nginx: capture 1, then a literal "2"
    ("/x?a=1&b=$2", "/p/a/b", "/x?a=1&b=b"),
    # nginx escapes the "%" of the rewritten $uri (NGX_ESCAPE_URI; session 35 x35)
    ("/a%2Fb/$1", "/p/c/", "/a%252Fb/c"),
    ("/~user/a.b-c_d:e@f!'()*+,=", "/p/z/", "/~user/a.b-c_d:e@f!'()*+,="),
])
def test_rewrite_target_uri_characters_and_captures_stay_allowed(
        target: str, path: str, want: str) -> None:
    o = opts("/p/([^/]*)/?(.*)", rewrite_target=target, use_regex="true")
    assert o.warnings == () and o.rewrite(path) == want


@pytest.mark.parametrize("value", ["/\\evil.test", "/a;b", "/a{b}", "/$1", "/a b", "/a%zz",
                                   '/a"b', "/a<b>"])
def test_app_root_characters_ingress_nginx_refuses(value: str) -> None:
    # rewrite/main.go: app-root's validator is "ValidateRegex(parser.RegexPathWithCapture,
    # false)". "/\evil.test" matters most: without Host the Location is that relative
    # reference, which browsers resolve as "//evil.test" (another host).
    o = opts(app_root=value)
    assert o.app_root is None and len(o.warnings) == 1 and "app-root" in o.warnings[0]


def test_app_root_backslash_is_no_open_redirect_through_the_core() -> None:
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route("/", annotations={PREFIX + "app-root": "/\\evil.test"})])
    out = pair.send(b"GET / HTTP/1.0\r\n\r\n")
    assert b"location: /\\evil.test" not in out.lower()


@pytest.mark.parametrize("value", ["/a;b", "/a{b}", "/$1", "/a%20b", '/a"b', "/a\\b", "/a?b"])
def test_x_forwarded_prefix_characters_ingress_nginx_refuses(value: str) -> None:
    # xforwardedprefix/main.go: "Validator: parser.ValidateRegex(parser.BasicCharsRegex, true)",
    # BasicCharsRegex = "^[/" + alphaNumericChars + "]*$" (spaces removed before the check).
    o = opts(x_forwarded_prefix=value)
    assert o.x_forwarded_prefix is None and len(o.warnings) == 1
    assert "x-forwarded-prefix" in o.warnings[0]


@pytest.mark.parametrize("value", ["/svc", "/a-b.c_d~e:f/g", "/a b", "/pr€"])
def test_x_forwarded_prefix_basic_characters_stay_allowed(value: str) -> None:
    o = opts(x_forwarded_prefix=value)
    assert o.x_forwarded_prefix == value and o.warnings == ()


@pytest.mark.parametrize("value", ["9223372036854775808", "8589934592g"])
def test_body_size_nginx_refuses_warns_and_falls_back(value: str) -> None:
    # ngx_parse_offset refuses an offset above NGX_MAX_OFF_T_VALUE / scale.
    with pytest.raises(ValueError):
        parse_size(value)
    o = opts(proxy_body_size=value)
    assert o.body_size == ProxySettings().proxy_body_size and len(o.warnings) == 1
    assert parse_size("9223372036854775807") == (1 << 63) - 1
