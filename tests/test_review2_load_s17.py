"""Session 17 second review (R17e) of the loading and validation review (R17a): a Service port
past int32 is no defaulted targetPort; a ``serve --config`` integer past int64 (or past int()'s
digit limit) is an error, not a traceback or a silent difference; a ``!!float`` tag on an integer
go-yaml keeps as a uint64 or a *big.Int fails the document, as go-yaml's resolve fails it."""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import Resources, ValidationError, parse_manifests
from ingresslib._config import parse_config_data

RANGE = "must be between 1 and 65535, inclusive"


def _service(ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": ports}}


def _from_dicts_errors(port: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([_service([port])])
    return [str(e) for e in info.value.errors]


# --- a Service port past int32 --------------------------------------------------------------


@pytest.mark.parametrize("number", [1 << 31, 3000000000, -(1 << 31) - 1, 10 ** 5000],
                         ids=["2^31", "3e9", "-2^31-1", "10^5000"])
def test_a_port_past_int32_is_told_once(number: int) -> None:
    # `Port int32`: the API server's decoder refuses the object ("json: cannot unmarshal number
    # 3000000000 into Go struct field ServicePort.spec.ports.port of type int32") before
    # SetDefaults_Service could copy it into the unset targetPort. Before: a second line,
    # "spec.ports[0].targetPort: Invalid value: 3000000000", about a field nobody wrote with a
    # value the API server never reports.
    errors = _from_dicts_errors({"port": number})
    assert len(errors) == 1 and errors[0].startswith("Service default/web: spec.ports[0].port: ")
    assert errors[0].endswith(RANGE)


def test_a_port_past_int32_in_a_manifest_is_told_once() -> None:
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
            "spec: {ports: [{port: 3000000000}]}\n")
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert [str(e) for e in info.value.errors] == [
        f"s.yaml: Service default/web: spec.ports[0].port: Invalid value: 3000000000: {RANGE}"]


@pytest.mark.parametrize("number", [(1 << 31) - 1, -(1 << 31), 70000, 0])
def test_a_port_inside_int32_still_defaults_the_target_port(number: int) -> None:
    # (it decodes, so the defaulted targetPort is validated and told too, as R17a made it)
    assert _from_dicts_errors({"port": number}) == [
        f"Service default/web: spec.ports[0].port: Invalid value: {number}: {RANGE}",
        f"Service default/web: spec.ports[0].targetPort: Invalid value: {number}: {RANGE}"]


# --- serve --config: integers past int64 ------------------------------------------------------

PAST = "must be at most 9223372036854775807 (ingress-nginx: strconv.ParseInt: value out of range)"


def _config_errors(key: str, value: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_config_data({key: value})
    return [e.detail for e in info.value.errors]


@pytest.mark.parametrize("key", [
    "upstream-keepalive-connections", "proxy-next-upstream-tries", "proxy-read-timeout",
    "keep-alive", "client-body-timeout"])
@pytest.mark.parametrize("value", ["9223372036854775808", "9" * 400, "9" * 5000])
def test_a_config_integer_past_int64_is_an_error(key: str, value: str) -> None:
    # ingress-nginx decodes these with mapstructure (strconv.ParseInt(s, 0, 64)): past int64 it
    # is an error and the default is kept. Before: 20 digits configured the value (a silent
    # difference), 400 digits of a timeout raised OverflowError (float()), 5,000 digits
    # raised ValueError (int()'s digit limit) out of parse_config_data / load_config.
    assert _config_errors(key, value) == [PAST]


def test_a_config_integer_at_int64_max_is_still_read() -> None:
    # (the last assertion failed before: ValueError out of int() for 5,000 digits)
    cfg = parse_config_data({"upstream-keepalive-connections": "9223372036854775807",
                             "proxy-read-timeout": "+60"})
    assert cfg.settings.upstream_keepalive_connections == (1 << 63) - 1
    assert cfg.settings.proxy_read_timeout == 60.0
    assert _config_errors("upstream-keepalive-connections", "-" + "9" * 5000) == [
        "must be greater than or equal to 0"]


@pytest.mark.parametrize("value", ["9" * 20, "9" * 5000, "0" * 5000 + "1"])
def test_hsts_max_age_past_int64_is_an_error_not_a_traceback(value: str) -> None:
    # Before: "9" * 5000 and 5,000 leading zeros raised ValueError out of parse_config_data;
    # "9" * 20 ... was kept, and so would a value str() cannot write into the header.
    if value.startswith("0"):
        assert parse_config_data({"hsts-max-age": value}).settings.hsts_max_age == 1
    else:
        assert _config_errors("hsts-max-age", value) == ["must be at most 9223372036854775807"]


@pytest.mark.parametrize("value, code", [("9" * 5000, None), ("0" * 5000 + "301", 301),
                                         ("+0307", 307), ("-301", None)])
def test_http_redirect_code_of_thousands_of_digits(value: str, code: int | None) -> None:
    # strconv.Atoi reads "+0307" as 307. Before: int() of 5,000 characters raised ValueError.
    if code is None:
        assert _config_errors("http-redirect-code", value) == [
            "supported codes: 301, 302, 307, 308"]
    else:
        settings = parse_config_data({"http-redirect-code": value}).settings
        assert settings.http_redirect_code == code


@pytest.mark.parametrize("value", ["9" * 5000, "1h" + "0" * 5000 + "1m", "9" * 5000 + "ms"])
def test_an_nginx_time_of_thousands_of_digits(value: str) -> None:
    # ngx_parse_time refuses a value past its cutoff; so does this parser, without converting
    # thousands of digits (before: ValueError out of parse_config_data).
    if value.startswith("1h"):
        assert parse_config_data({"upstream-keepalive-time": value}).settings \
            .upstream_keepalive_time == 3660.0
    else:
        assert _config_errors("upstream-keepalive-time", value) == [
            "must be at most 2147483647ms (about 24 days), as in nginx"]


# --- !!float on an integer go-yaml keeps as uint64 or *big.Int --------------------------------

YAML = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n"
        "  x: %s\n")


@pytest.mark.parametrize("number", [
    "9223372036854775808", "18446744073709551615", "0x100000000000000000000", "0b" + "1" * 70,
    "0o" + "7" * 30])
@pytest.mark.parametrize("where", ["value", "key"])
def test_a_float_tag_on_a_uint64_or_big_int_fails_as_in_go_yaml(number: str, where: str) -> None:
    # goyaml.v2 resolve (kubernetes-sigs/yaml goyaml.v2/resolve.go) turns only an int or int64
    # under !!float into a float64 ("case int64: ... case int: rtag = yaml_FLOAT_TAG"); a
    # uint64 or a *big.Int falls to `failf("cannot decode %s `%s` as a %s", ...)`, and kubectl
    # refuses the file. Before: read as the float (1.8446744073709552e19 -> 18446744073709551616).
    value = f"!!float {number}" if where == "value" else f"{{!!float {number}: 1}}"
    with pytest.raises(ValidationError) as info:
        parse_manifests(YAML % value, source="s.yaml")
    assert [str(e) for e in info.value.errors] == [
        f"s.yaml: line 6, column {6 if where == 'value' else 7}: Invalid value: YAML syntax "
        f"error: cannot decode !!int `{number}` as a !!float"]


@pytest.mark.parametrize("number", ["9223372036854775807", "-9223372036854775808",
                                    "18446744073709551616", "0x7fffffffffffffff", "1e3"])
def test_a_float_tag_on_an_int64_or_a_float_still_loads(number: str) -> None:
    # (2^64 in decimal is a float64 already: ParseUint fails, ParseFloat reads it)
    res = parse_manifests(YAML % f"!!float {number}" + "  y: {!!float %s: 1}\n" % number)
    assert [s.metadata.name for s in res.services] == ["web"]
