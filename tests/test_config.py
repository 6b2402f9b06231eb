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
        ("proxy-read-timeout", "120", "proxy_read_timeout", 120.0),
        ("proxy-send-timeout", "+7", "proxy_send_timeout", 7.0),
        ("proxy-next-upstream", "error timeout http_502", "proxy_next_upstream",
         ("error", "timeout", "http_502")),
        ("proxy-next-upstream", "off", "proxy_next_upstream", ("off",)),
        ("proxy-next-upstream-tries", "5", "proxy_next_upstream_tries", 5),
        ("proxy-body-size", "8m", "proxy_body_size", 8 * 1024 * 1024),
        ("proxy-body-size", "512K", "proxy_body_size", 512 * 1024),
        ("proxy-body-size", "0", "proxy_body_size", 0),
        ("keep-alive", "10", "keep_alive", 10.0),
        ("client-body-timeout", "30", "client_body_timeout", 30.0),
        ("keep-alive", "0", "keep_alive", 0.0),
        ("hsts-max-age", "0", "hsts_max_age", 0),
        ("keep-alive-requests", "50", "keep_alive_requests", 50),
        ("upstream-keepalive-connections", "0", "upstream_keepalive_connections", 0),
        ("enable-underscores-in-headers", "true", "enable_underscores_in_headers", True),
        ("ignore-invalid-headers", "false", "ignore_invalid_headers", False),
        ("force-ssl-redirect", "true", "force_ssl_redirect", True),
        ("http-redirect-code", "301", "http_redirect_code", 301),
        ("http-redirect-code", "307", "http_redirect_code", 307),
        ("proxy-next-upstream-timeout", "15", "proxy_next_upstream_timeout", 15.0),
        ("proxy-next-upstream-timeout", "0", "proxy_next_upstream_timeout", 0.0),
        ("retry-non-idempotent", "true", "retry_non_idempotent", True),
        ("upstream-keepalive-timeout", "5", "upstream_keepalive_timeout", 5.0),
        ("upstream-keepalive-requests", "0", "upstream_keepalive_requests", 0),
        ("upstream-keepalive-time", "1h", "upstream_keepalive_time", 3600.0),
        ("upstream-keepalive-time", "30", "upstream_keepalive_time", 30.0),
    ],
)
def test_each_key(key: str, value: str, field: str, want: object) -> None:
    cfg = parse_config_data({key: value})
    assert getattr(cfg.settings, field) == want
    if key in ("use-forwarded-headers", "enable-real-ip") and want is True:
        # Turned on without proxy-real-ip-cidr: no peer is trusted (a divergence), said once.
        assert len(cfg.warnings) == 1 and "proxy-real-ip-cidr" in cfg.warnings[0]
    else:
        assert cfg.warnings == ()


def test_large_client_header_buffers_sets_limits() -> None:
    s = parse_config_data({"large-client-header-buffers": "2 16k"}).settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (16384, 16384, 32768)
    assert s.large_client_header_buffers == "2 16k"


def test_load_balance() -> None:
    assert parse_config_data({"load-balance": "ewma"}).load_balance == "ewma"


def test_unknown_keys_warn() -> None:
    cfg = parse_config_data({"worker-processes": "4", "hsts": "true"})
    assert cfg.warnings == ("ConfigMap: data.worker-processes: an ingress-nginx key ingresslib does not implement, ignored",)


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


# ingress-nginx decodes the ConfigMap with mapstructure (WeaklyTypedInput) into
# config.Configuration, where these keys are Go ints: strconv.ParseInt(s, 0, 64). "60s", "1m",
# "500ms", "2.5" fail there (the default is kept, with a log line); accepting them here would
# silently configure something ingress-nginx does not, so they are rejected, loudly.
@pytest.mark.parametrize("key", ["proxy-connect-timeout", "proxy-read-timeout",
                                 "proxy-send-timeout", "keep-alive", "upstream-keepalive-timeout",
                                 "client-header-timeout", "client-body-timeout",
                                 "proxy-next-upstream-timeout"])
@pytest.mark.parametrize("value", ["60s", "1m", "500ms", "2.5", " 60", "6_0", "\u0666\u0660"])
def test_timeouts_are_whole_seconds(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as ei:
        parse_config_data({key: value})
    assert f"data.{key}" in str(ei.value) and "seconds" in str(ei.value)


# Base 0: Go reads "010" as octal 8 and "0x10" as 16. Rejected with the reason, never read as 10.
@pytest.mark.parametrize("key", ["keep-alive-requests", "proxy-next-upstream-tries",
                                 "upstream-keepalive-connections", "proxy-read-timeout"])
@pytest.mark.parametrize("value", ["010", "0x10", "0o10", "0b1", "+010"])
def test_ints_ingress_nginx_reads_in_another_base_are_rejected(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as ei:
        parse_config_data({key: value})
    assert f"data.{key}" in str(ei.value)


def test_non_ascii_digits_are_rejected() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_config_data({"keep-alive-requests": "\u0661\u0660", "proxy-body-size": "\uff11m",
                           "hsts-max-age": "\u0661"})
    assert len(ei.value.errors) == 3


def test_hsts_max_age_is_a_string_in_ingress_nginx() -> None:
    # config.go: ``HSTSMaxAge string``, written as "max-age=<value>"; "010" is 10 seconds to a
    # browser (RFC 6797 delta-seconds), so it is read in decimal, unlike the Go int keys.
    assert parse_config_data({"hsts-max-age": "010"}).settings.hsts_max_age == 10


# Booleans: Go strconv.ParseBool through mapstructure, nothing trimmed.
@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_true_spellings(value: str) -> None:
    assert parse_config_data({"use-forwarded-headers": value}).settings.use_forwarded_headers


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_false_spellings(value: str) -> None:
    assert parse_config_data({"hsts": value}).settings.hsts is False


@pytest.mark.parametrize("value", [" false", "false ", "tRuE", "yes", "off", ""])
def test_other_boolean_spellings_are_rejected(value: str) -> None:
    # ingress-nginx keeps the default for " false" (ParseBool error) and reads "" as false
    # (mapstructure); both would be a silent surprise, so both are errors here.
    with pytest.raises(ValidationError) as ei:
        parse_config_data({"hsts": value})
    assert "data.hsts" in str(ei.value)


def test_sizes() -> None:
    for value, want in [("1024", 1024), ("1k", 1024), ("1K", 1024), ("1m", 1 << 20),
                        ("1M", 1 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("0", 0),
                        (" 8m ", 8 << 20)]:
        assert parse_config_data({"proxy-body-size": value}).settings.proxy_body_size == want
    for bad in ("1.5m", "1mb", "1 m", "-1", "m", "", "1t"):
        with pytest.raises(ValidationError):
            parse_config_data({"proxy-body-size": bad})


def test_cidr_list_with_spaces_and_an_invalid_entry() -> None:
    s = parse_config_data({"proxy-real-ip-cidr": " 10.0.0.0/8 ,fd00::/8,, 192.168.1.7/24"})
    assert s.settings.proxy_real_ip_cidr == ("10.0.0.0/8", "fd00::/8", "192.168.1.0/24")
    with pytest.raises(ValidationError) as ei:
        parse_config_data({"proxy-real-ip-cidr": "10.0.0.0/8, 10.0.0.300/32"})
    assert "10.0.0.300/32" in str(ei.value)


def test_unknown_key_warning_names_the_configmap() -> None:
    cfg = parse_configmap({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "namespace": "ingress"},
                           "data": {"worker-processes": "4"}})
    assert cfg.warnings == ("ConfigMap ingress/c: data.worker-processes: an ingress-nginx key ingresslib does not implement, ignored",)


def test_header_buffers_need_ascii_digits() -> None:
    # A string passed to nginx by ingress-nginx; nginx's ngx_atoi/ngx_parse_size read ASCII only.
    with pytest.raises(ValidationError):
        parse_config_data({"large-client-header-buffers": "\u0664 8k"})
    with pytest.raises(ValidationError):
        parse_config_data({"large-client-header-buffers": "4 \u0668k"})


@pytest.mark.parametrize("value", ["200", "303", "308s", "0x134", "", " 308"])
def test_http_redirect_code_must_be_a_redirect_ingress_nginx_accepts(value: str) -> None:
    # ingress-nginx configmap.go: strconv.Atoi, then `validRedirectCodes` (301, 302, 307, 308);
    # anything else keeps the default there, with a log line: an error here.
    with pytest.raises(ValidationError) as ei:
        parse_config_data({"http-redirect-code": value})
    assert "data.http-redirect-code" in str(ei.value)


# upstream-keepalive-time is a string in ingress-nginx (config.go "UpstreamKeepaliveTime string",
# default "1h") written as is into nginx's "keepalive_time": nginx time syntax (ngx_parse_time),
# not the whole seconds of the int timeout keys.
@pytest.mark.parametrize(("value", "seconds"), [
    ("1h", 3600.0), ("3600", 3600.0), ("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0),
    ("1h30m", 5400.0), ("500ms", 0.5), ("1s500ms", 1.5), ("2d", 172800.0), ("1w", 604800.0),
    ("0", 0.0),
])
def test_upstream_keepalive_time_reads_nginx_time(value: str, seconds: float) -> None:
    cfg = parse_config_data({"upstream-keepalive-time": value})
    assert cfg.settings.upstream_keepalive_time == seconds and cfg.warnings == ()


@pytest.mark.parametrize("value", ["", "1x", "h", "-1", "1.5h", "30m1h", "1h1h", "3600 1h",
                                   "1y", "1M", "25d", "1 h", "\u0661h"])
def test_upstream_keepalive_time_refuses_what_nginx_would(value: str) -> None:
    # Units out of order or twice, a bare number not last, years/months (not allowed in a
    # millisecond setting), over 2147483647 ms (NGX_PARSE_LARGE_TIME): nginx -t fails on them.
    with pytest.raises(ValidationError) as ei:
        parse_config_data({"upstream-keepalive-time": value})
    assert "data.upstream-keepalive-time" in str(ei.value)


def test_a_config_file_that_is_not_utf8_is_a_validation_error(tmp_path: Path) -> None:
    p = tmp_path / "cm.yaml"
    p.write_bytes(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  ssl-redirect: \"\xff\"\n")
    with pytest.raises(ValidationError) as info:
        load_config(p)
    assert "not valid UTF-8" in str(info.value) and str(p) in str(info.value)


# --- session 10 review ----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["proxy-connect-timeout", "proxy-read-timeout",
                                 "proxy-send-timeout", "client-header-timeout",
                                 "client-body-timeout"])
def test_zero_timeout_is_an_error_naming_the_key(key: str) -> None:
    # nginx.tmpl: "proxy_read_timeout {{ $location.Proxy.ReadTimeout }}s;" -> "0s", a timer
    # of 0 ms in nginx (every wait times out at once); ingresslib's timers read 0 as "not
    # armed", so accepting it would silently mean "no timeout at all".
    with pytest.raises(ValidationError) as e:
        parse_config_data({key: "0"})
    assert f"data.{key}" in str(e.value)


def test_zero_keeps_its_nginx_meaning_where_nginx_gives_one() -> None:
    cfg = parse_config_data({"keep-alive": "0", "proxy-next-upstream-timeout": "0",
                             "proxy-next-upstream-tries": "0", "proxy-body-size": "0"})
    s = cfg.settings
    assert (s.keep_alive, s.proxy_next_upstream_timeout) == (0.0, 0.0)
    assert (s.proxy_next_upstream_tries, s.proxy_body_size) == (0, 0)


def test_defaults_equal_ingress_nginx_newdefault() -> None:
    # internal/ingress/controller/config/config.go NewDefault(): ClientHeaderTimeout: 60,
    # ClientBodyTimeout: 60, HTTPRedirectCode: 308, HSTSIncludeSubdomains: true, HSTSPreload:
    # false, KeepAlive: 75, KeepAliveRequests: 1000, LargeClientHeaderBuffers: "4 8k",
    # ProxyBodySize "1m", ProxyConnectTimeout: 5, ProxyReadTimeout: 60, ProxySendTimeout: 60,
    # ProxyNextUpstream: "error timeout", ProxyNextUpstreamTimeout: 0, ProxyNextUpstreamTries:
    # 3, SSLRedirect: true, UpstreamKeepaliveConnections: 320, UpstreamKeepaliveTime: "1h",
    # UpstreamKeepaliveTimeout: 60, UpstreamKeepaliveRequests: 10000, GenerateRequestID: true,
    # IgnoreInvalidHeaders: true, EnableUnderscoresInHeaders: false.
    s = ProxySettings()
    assert (s.client_header_timeout, s.client_body_timeout, s.http_redirect_code) == (60, 60, 308)
    assert (s.hsts, s.hsts_max_age, s.hsts_include_subdomains, s.hsts_preload) == \
        (True, 31536000, True, False)
    assert (s.keep_alive, s.keep_alive_requests, s.large_client_header_buffers) == \
        (75, 1000, "4 8k")
    assert s.proxy_body_size == 1 << 20
    assert (s.proxy_connect_timeout, s.proxy_read_timeout, s.proxy_send_timeout) == (5, 60, 60)
    assert s.proxy_next_upstream == ("error", "timeout")
    assert (s.proxy_next_upstream_timeout, s.proxy_next_upstream_tries) == (0, 3)
    assert s.ssl_redirect and not s.force_ssl_redirect
    assert (s.upstream_keepalive_connections, s.upstream_keepalive_time,
            s.upstream_keepalive_timeout, s.upstream_keepalive_requests) == (320, 3600, 60, 10000)
    assert s.generate_request_id and s.ignore_invalid_headers
    assert not s.enable_underscores_in_headers and not s.use_forwarded_headers
    assert not s.compute_full_forwarded_for and s.forwarded_for_header == "X-Forwarded-For"


def test_keep_alive_requests_zero_is_nginx_one_request_per_connection() -> None:
    # nginx ngx_http_update_location_config: "r->connection->requests >=
    # clcf->keepalive_requests" -> no keep-alive, requests counting from 1: 0 closes after the
    # first response, like 1 (the core reads keep_alive_requests=0 so too).
    assert parse_config_data({"keep-alive-requests": "0"}).settings.keep_alive_requests == 1
    assert parse_config_data({"keep-alive-requests": "1"}).settings.keep_alive_requests == 1
    assert parse_config_data({"keep-alive-requests": "7"}).settings.keep_alive_requests == 7


def test_keep_alive_requests_zero_closes_after_one_response_through_the_core() -> None:
    from _proxy_harness import ProxyPair

    settings = parse_config_data({"keep-alive-requests": "0"}).settings
    out = ProxyPair(settings=settings).send(b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert b"connection: close\r\n" in out.lower()


@pytest.mark.parametrize("value", ["9223372036854775808", "8589934592g", "99999999999999999999m"])
def test_body_size_nginx_refuses_is_an_error(value: str) -> None:
    # ngx_parse_offset: "if (offset == NGX_ERROR || offset > max) { return NGX_ERROR; }" with
    # "max = NGX_MAX_OFF_T_VALUE / scale".
    with pytest.raises(ValidationError) as e:
        parse_config_data({"proxy-body-size": value})
    assert "data.proxy-body-size" in str(e.value)
    ok = parse_config_data({"proxy-body-size": "8589934591g"}).settings.proxy_body_size
    assert ok == 8589934591 << 30
