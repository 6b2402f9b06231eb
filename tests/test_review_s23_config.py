"""Session 23 fresh-eyes review of the ConfigMap reader (``serve --config``) and ProxySettings.

Each test names the defect it pins; every one failed before the fix.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _proxy_harness import ProxyPair, status_of

from ingresslib import ValidationError
from ingresslib.proxy import ProxySettings, load_config, parse_config_data

GET = b"GET /a HTTP/1.1\r\nHost: example.test\r\nX-Client-IP: 192.0.2.7\r\n\r\n"


# --- forwarded_for_header as a keyword argument ---------------------------------------------

@pytest.mark.parametrize("name", ["", "X Client IP", " X-Client-IP ", "X-Client-\u0130P",
                                  "X-Client-IP\r\n"])
def test_forwarded_for_header_keyword_must_be_a_header_name(name: str) -> None:
    # The ConfigMap refused these (data.forwarded-for-header: must be a valid HTTP header
    # name); the keyword argument took them: "" or one with spaces never named a request
    # header (the client address was silently the peer's), and one outside Latin-1 failed
    # every request with a UnicodeEncodeError naming no setting.
    with pytest.raises(ValueError, match="forwarded_for_header"):
        ProxySettings(use_forwarded_headers=True, forwarded_for_header=name)


def test_a_valid_forwarded_for_header_keyword_is_still_read() -> None:
    s = ProxySettings(use_forwarded_headers=True, forwarded_for_header="X-Client-IP",
                      proxy_real_ip_cidr=("0.0.0.0/0",))
    pair = ProxyPair(settings=s)
    assert status_of(pair.send(GET)) == 200
    head = pair.upstream_bytes.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nx-real-ip: 192.0.2.7" in head


# --- numbers past what the proxy can use ------------------------------------------------------

@pytest.mark.parametrize("field", ["proxy_read_timeout", "proxy_connect_timeout",
                                   "client_header_timeout", "keep_alive"])
def test_a_duration_int_past_a_float_is_refused_naming_the_field(field: str) -> None:
    # proxy_read_timeout=10**400 was taken; each request then failed with OverflowError
    # ("int too large to convert to float") when its timer was armed.
    with pytest.raises(ValueError, match=field) as info:
        ProxySettings(**{field: 10**400})
    assert len(str(info.value)) < 200  # (not the 401 digits)


def test_large_durations_a_float_holds_are_still_taken() -> None:
    s = ProxySettings(proxy_read_timeout=math.inf, keep_alive=10**300)
    assert s.proxy_read_timeout == math.inf and s.keep_alive == 10**300


@pytest.mark.parametrize("field", ["hsts_max_age", "proxy_body_size", "max_headers",
                                   "keep_alive_requests", "upstream_keepalive_requests"])
def test_a_count_past_int64_is_refused_naming_the_field(field: str) -> None:
    # The ConfigMap's bound (2^63-1, Go's and nginx's); hsts_max_age=10**5000 was taken and
    # every answer over TLS failed ("Exceeds the limit (4300 digits) for integer string
    # conversion").
    ProxySettings(**{field: 2**63 - 1})
    for value in (2**63, 10**5000):
        with pytest.raises(ValueError, match=f"{field}: .*at most 2\\^63-1"):
            ProxySettings(**{field: value})


def test_a_huge_negative_or_mistyped_int_is_refused_naming_the_field() -> None:
    # Its repr is a ValueError of its own past 4,300 digits: the message named no field.
    with pytest.raises(ValueError, match="proxy_body_size: an int of .* bits must be 0 or more"):
        ProxySettings(proxy_body_size=-10**5000)
    with pytest.raises(TypeError, match="hsts: an int of .* bits is not a bool"):
        ProxySettings(hsts=10**5000)  # type: ignore[arg-type]


# --- upstream-keepalive-time with spaces inside -----------------------------------------------

@pytest.mark.parametrize(("value", "hint"), [("1h 30m", "1h30m"), ("1s 500ms", "1s500ms"),
                                             ("1h\t30m", "1h30m")])
def test_upstream_keepalive_time_with_a_space_inside_is_refused(value: str, hint: str) -> None:
    # nginx.tmpl writes it unquoted ("keepalive_time {{ $cfg.UpstreamKeepaliveTime }};"), and
    # keepalive_time takes one argument (NGX_CONF_TAKE1): "1h 30m" fails nginx -t and
    # ingress-nginx applies nothing; it was read here as 5400 s.
    with pytest.raises(ValidationError) as info:
        parse_config_data({"upstream-keepalive-time": value})
    text = str(info.value)
    assert "data.upstream-keepalive-time" in text and f'write "{hint}"' in text


@pytest.mark.parametrize(("value", "seconds"), [(" 1h ", 3600.0), ("\t90s\n", 90.0),
                                                ("1h30m", 5400.0)])
def test_upstream_keepalive_time_spaces_around_are_separators(value: str, seconds: float) -> None:
    cfg = parse_config_data({"upstream-keepalive-time": value})
    assert cfg.settings.upstream_keepalive_time == seconds and cfg.warnings == ()


# --- use-forwarded-headers without proxy-real-ip-cidr -----------------------------------------

@pytest.mark.parametrize("key", ["use-forwarded-headers", "enable-real-ip"])
def test_forwarded_headers_on_without_trusted_cidrs_is_warned(key: str) -> None:
    # ingress-nginx reads a missing proxy-real-ip-cidr as 0.0.0.0/0 (ReadConfig); ingresslib
    # trusts no peer then, so the switch silently did nothing.
    cfg = parse_config_data({key: "true"})
    assert cfg.settings.proxy_real_ip_cidr == ()
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith(f"ConfigMap: data.{key}: on, but no proxy-real-ip-cidr")


@pytest.mark.parametrize("data", [
    {"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8"},
    {"use-forwarded-headers": "true", "proxy-real-ip-cidr": ""},  # said so: none
    {"use-forwarded-headers": "false"},
    {"enable-real-ip": "false", "use-forwarded-headers": "false"},
])
def test_no_forwarded_headers_warning_when_the_list_is_given_or_off(
        data: dict[str, str]) -> None:
    assert parse_config_data(data).warnings == ()


def test_no_forwarded_headers_warning_when_the_base_lists_cidrs() -> None:
    base = ProxySettings(proxy_real_ip_cidr=("10.0.0.0/8",))
    cfg = parse_config_data({"use-forwarded-headers": "true"}, base=base)
    assert cfg.warnings == () and cfg.settings.proxy_real_ip_cidr == ("10.0.0.0/8",)


# --- fields of the ConfigMap object that are not read --------------------------------------------

def _config_file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "cm.yaml"
    p.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: ingress}\n"
                 + body, encoding="utf-8")
    return p


def test_a_misspelt_data_field_is_warned_not_silently_the_defaults(tmp_path: Path) -> None:
    # "Data:" (or "date:") held every setting; they were all silently the defaults. kubectl
    # apply's strict field validation refuses the object: the API server never has it.
    cfg = load_config(_config_file(tmp_path, 'Data:\n  hsts: "false"\n'))
    assert cfg.settings == ProxySettings()
    assert cfg.warnings == ('ConfigMap ingress/cfg: unknown field "Data", ignored; the settings '
                            "go in data",)


def test_binary_data_keys_are_warned_as_not_read(tmp_path: Path) -> None:
    # ingress-nginx reads the ConfigMap's data only; a setting in binaryData is not applied
    # there either, but here it was not said.
    cfg = load_config(_config_file(tmp_path, 'data:\n  hsts: "false"\n'
                                             "binaryData:\n  proxy-body-size: OG0=\n"))
    assert cfg.settings.hsts is False and cfg.settings.proxy_body_size == 1048576
    assert cfg.warnings == ("ConfigMap ingress/cfg: binaryData.proxy-body-size: not read "
                            "(ingress-nginx reads data only), ignored",)


def test_the_fields_of_a_configmap_are_not_warned(tmp_path: Path) -> None:
    cfg = load_config(_config_file(tmp_path, 'immutable: true\ndata:\n  hsts: "false"\n'))
    assert cfg.warnings == () and cfg.settings.hsts is False


# --- timeouts nginx refuses -------------------------------------------------------------------

@pytest.mark.parametrize("key", ["proxy-connect-timeout", "proxy-read-timeout",
                                 "proxy-send-timeout", "client-header-timeout",
                                 "client-body-timeout", "keep-alive",
                                 "upstream-keepalive-timeout"])
def test_a_timeout_nginx_refuses_is_an_error_naming_the_key(key: str) -> None:
    # nginx.tmpl writes these as "<value>s"; ngx_parse_time refuses more than
    # NGX_MAX_INT32_VALUE / 1000 seconds with a unit ("invalid value"): nginx -t fails and
    # ingress-nginx applies nothing. "3000000" was taken here (a 35-day timer).
    field = key.replace("-", "_")
    assert getattr(parse_config_data({key: "2147483"}).settings, field) == 2147483.0
    with pytest.raises(ValidationError) as info:
        parse_config_data({key: "3000000"})
    assert f"data.{key}" in str(info.value) and "at most 2147483 seconds" in str(info.value)


def test_proxy_next_upstream_timeout_is_written_bare_and_not_bound_so() -> None:
    # nginx.tmpl: "proxy_next_upstream_timeout {{ $location.Proxy.NextUpstreamTimeout }};"
    # (no unit: ngx_parse_time does not check a bare number against the int32 bound).
    cfg = parse_config_data({"proxy-next-upstream-timeout": "3000000"})
    assert cfg.settings.proxy_next_upstream_timeout == 3000000.0


@pytest.mark.parametrize("value", ["\u00a08m", "8m\u2028", "\x1c8m", "8m\x85"])
def test_a_size_with_a_unicode_space_is_refused(value: str) -> None:
    # nginx's separators are space, tab, CR and LF; any other space is part of the value,
    # which nginx refuses. Python's str.strip() removed them, and "8m" was read.
    with pytest.raises(ValidationError) as info:
        parse_config_data({"proxy-body-size": value})
    assert "data.proxy-body-size" in str(info.value)


@pytest.mark.parametrize("value", [" 8m", "8m ", "\t8m\r\n"])
def test_a_size_with_nginx_separators_around_is_read(value: str) -> None:
    assert parse_config_data({"proxy-body-size": value}).settings.proxy_body_size == 8 << 20
