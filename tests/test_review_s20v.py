"""Session 20 review (Q20v) of validation parity with the Kubernetes API server."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ingresslib
from ingresslib import ValidationError
from ingresslib._models import ObjectMeta, Secret
from ingresslib._validate import (
    _parse_ip_sloppy,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    is_wildcard_dns1123_subdomain,
    validate_secret,
)

# --- a lone surrogate in a Secret's stringData: validated and served, not a traceback --------
#
# A JSON manifest may write any UTF-16 code unit as an escape, "\udce9" included, and
# ``json.loads`` gives the str a lone surrogate; so does ``from_dicts`` of a str that holds one
# (the official client sends it as that escape). Go's encoding/json, the API server's decoder,
# replaces it: "invalid UTF-16 surrogate pairs are not treated as an error. Instead, they are
# replaced by the Unicode replacement character U+FFFD". ``Secret.get_bytes`` encoded the
# value with ``str.encode()``: UnicodeEncodeError out of ``parse_manifests`` (the docker config
# check reads the value) and out of the TLS store (``get_bytes("tls.crt")``).


def _secret_json(type_: str, string_data: dict[str, str]) -> str:
    # json.dumps writes the surrogate as the escape "\\udce9", as a JSON file would hold it.
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                       "type": type_, "stringData": string_data})


def test_docker_config_json_with_an_escaped_lone_surrogate_loads() -> None:
    # '{"auths": {"r.example": {"auth": "\uFFFD"}}}' to the API server: valid JSON, accepted.
    text = _secret_json("kubernetes.io/dockerconfigjson",
                        {".dockerconfigjson": '{"auths": {"r.example": {"auth": "\udce9"}}}'})
    assert '\\udce9' in text
    res = ingresslib.parse_manifests(text)
    assert res.secrets[0].get_bytes(".dockerconfigjson") == (
        b'{"auths": {"r.example": {"auth": "\xef\xbf\xbd"}}}')


def test_docker_config_json_broken_by_a_lone_surrogate_is_an_error() -> None:
    # '{}\uFFFD': json.Unmarshal refuses the text after the value; an error naming the key,
    # the value redacted as the API server redacts it.
    text = _secret_json("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "{}\udce9"})
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(text)
    (err,) = info.value.errors
    assert err.object == "Secret default/s"
    assert err.field == "data[.dockerconfigjson]"
    assert err.type == "Invalid value"
    assert err.value == "<secret contents redacted>"


def test_tls_secret_string_data_with_a_lone_surrogate_reads_as_the_api_server_stores_it() -> None:
    res = ingresslib.Resources.from_dicts([{
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": "a\udce9b", "tls.key": "k"}}])
    assert res.secrets[0].get_bytes("tls.crt") == b"a\xef\xbf\xbdb"


def test_get_bytes_joins_a_surrogate_pair_as_go_decodes_its_escapes() -> None:
    # "\ud83d\ude00" as two code points (a str built by hand): the client's json.dumps writes
    # both escapes, which Go's decoder joins into one character.
    sec = Secret(metadata=ObjectMeta(name="s"), string_data={"k": "\ud83d\ude00", "l": "x\ud800"})
    assert sec.get_bytes("k") == "\U0001F600".encode()
    assert sec.get_bytes("l") == b"x\xef\xbf\xbd"


def test_secret_size_counts_string_data_as_the_stored_bytes() -> None:
    # core.MaxSecretSize (1 MiB) over the stored bytes: a surrogate pair is one 4-byte
    # character there. 262,144 pairs are exactly 1 MiB: valid (with "surrogatepass" they
    # counted 6 bytes each, 1.5 MiB: "Too long").
    value = "\ud83d\ude00" * (256 * 1024)
    sec = Secret(metadata=ObjectMeta(name="s"), string_data={"k": value})
    assert validate_secret(sec) == []
    over = Secret(metadata=ObjectMeta(name="s"), string_data={"k": value + "x"})
    assert [str(e) for e in validate_secret(over)] == [
        "Secret default/s: data: Too long: may not be more than 1048576 bytes"]


# --- the apimachinery predicates against oracles written from their Go definitions ------------
#
# Regression guards (hypothesis, the suite's profile): each predicate as its Go source states
# it, on strings mixing the characters that matter with non-ASCII ones (Go's len() counts
# UTF-8 bytes; Python's regex classes must not take a Unicode letter or digit).

_LOWER_DIGITS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_ALNUM = _LOWER_DIGITS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CHARS = st.sampled_from(list("az09-._/*AZ") + ["é", "İ", "\u212a", "٣", " ", "\n", "\udce9"])
_TEXT = (st.text(_CHARS, max_size=24)
         | st.builds(lambda part, n: part * n, st.text(_CHARS, min_size=1, max_size=3),
                     st.integers(0, 130)))


def _go_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def _label(s: str, first: frozenset[str] = _LOWER_DIGITS) -> bool:
    # dns1123LabelFmt "[a-z0-9]([-a-z0-9]*[a-z0-9])?" (dns1035: "[a-z]" first)
    return (bool(s) and s[0] in first and s[-1] in _LOWER_DIGITS
            and all(c in _LOWER_DIGITS or c == "-" for c in s))


def _subdomain(s: str) -> bool:
    # dns1123SubdomainFmt: labels joined by "."
    return all(_label(part) for part in s.split("."))


def _qname_part(s: str) -> bool:
    # labelKeyFmt "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", at most 63 bytes
    return (bool(s) and s[0] in _ALNUM and s[-1] in _ALNUM
            and all(c in _ALNUM or c in "-_." for c in s) and _go_len(s) <= 63)


@given(_TEXT)
def test_dns_name_predicates_match_their_go_definitions(s: str) -> None:
    assert (not is_dns1123_subdomain(s)) == (_subdomain(s) and _go_len(s) <= 253)
    assert (not is_dns1123_label(s)) == (_label(s) and _go_len(s) <= 63)
    assert (not is_dns1035_label(s)) == (_label(s, _LOWER) and _go_len(s) <= 63)
    assert (not is_wildcard_dns1123_subdomain(s)) == (
        s.startswith("*.") and _subdomain(s[2:]) and _go_len(s) <= 253)


@given(_TEXT)
def test_port_name_and_label_predicates_match_their_go_definitions(s: str) -> None:
    # IsValidPortName: <= 15 bytes, [-a-z0-9]+, a letter, no "--", no hyphen at either end.
    port_name = (bool(s) and _go_len(s) <= 15 and all(c in _LOWER_DIGITS or c == "-" for c in s)
                 and any(c in _LOWER for c in s) and "--" not in s
                 and s[0] != "-" and s[-1] != "-")
    assert (not is_valid_port_name(s)) == port_name
    # IsQualifiedName (content.IsLabelKey): [prefix/]name, the prefix a DNS-1123 subdomain.
    parts = s.split("/")
    if len(parts) == 1:
        qualified = _qname_part(s)
    elif len(parts) == 2:
        qualified = (bool(parts[0]) and _subdomain(parts[0]) and _go_len(parts[0]) <= 253
                     and _qname_part(parts[1]))
    else:
        qualified = False
    assert (not is_qualified_name(s)) == qualified
    assert (not is_valid_label_value(s)) == (s == "" or _qname_part(s))


def _go116_parse_ip(s: str) -> bytes | None:
    """Go 1.16's net.ParseIP (netutils.ParseIPSloppy), transcribed: the 16-byte form or None."""
    big = 0xFFFFFF

    def dtoi(t: str) -> tuple[int, int, bool]:
        n = i = 0
        while i < len(t) and "0" <= t[i] <= "9":
            n = n * 10 + ord(t[i]) - 48
            if n >= big:
                return big, i, False
            i += 1
        return n, i, i > 0

    def xtoi(t: str) -> tuple[int, int, bool]:
        n = i = 0
        while i < len(t) and t[i] in "0123456789abcdefABCDEF":
            n = n * 16 + int(t[i], 16)
            if n >= big:
                return 0, i, False
            i += 1
        return n, i, i > 0

    def v4(t: str) -> bytes | None:
        out = []
        for i in range(4):
            if not t:
                return None
            if i > 0:
                if t[0] != ".":
                    return None
                t = t[1:]
            n, c, ok = dtoi(t)
            if not ok or n > 0xFF:
                return None
            t = t[c:]
            out.append(n)
        return None if t else bytes([0] * 10 + [255, 255] + out)

    def v6(t: str) -> bytes | None:
        ip = bytearray(16)
        ellipsis = -1
        if t.startswith("::"):
            ellipsis, t = 0, t[2:]
            if not t:
                return bytes(ip)
        i = 0
        while i < 16:
            n, c, ok = xtoi(t)
            if not ok or n > 0xFFFF:
                return None
            if c < len(t) and t[c] == ".":
                if (ellipsis < 0 and i != 12) or i + 4 > 16:
                    return None
                four = v4(t)
                if four is None:
                    return None
                ip[i:i + 4] = four[12:]
                t, i = "", i + 4
                break
            ip[i], ip[i + 1] = n >> 8, n & 0xFF
            i += 2
            t = t[c:]
            if not t:
                break
            if t[0] != ":" or len(t) == 1:
                return None
            t = t[1:]
            if t[0] == ":":
                if ellipsis >= 0:
                    return None
                ellipsis, t = i, t[1:]
                if not t:
                    break
        if t:
            return None
        if i < 16:
            if ellipsis < 0:
                return None
            n = 16 - i
            for j in range(i - 1, ellipsis - 1, -1):
                ip[j + n] = ip[j]
            for j in range(ellipsis + n - 1, ellipsis - 1, -1):
                ip[j] = 0
        elif ellipsis >= 0:
            return None
        return bytes(ip)

    for ch in s:
        if ch == ".":
            return v4(s)
        if ch == ":":
            return v6(s)
    return None


_IP_PARTS = st.sampled_from(["::", ":", ".", "0", "1", "255", "256", "ffff", "00000", "fffff",
                             "1.2.3.4", "0001", "12345", "%eth0", "g"])


@given(st.text(st.sampled_from(list("0123456789abcdefABCDEF.:%")), max_size=40)
       | st.lists(_IP_PARTS, max_size=12).map("".join))
def test_ip_parse_matches_go_1_16_parse_ip(s: str) -> None:
    # The "must be a DNS name, not an IP address" of rule hosts and every endpoint address.
    ip = _parse_ip_sloppy(s)
    got = None if ip is None else (
        b"\0" * 10 + b"\xff\xff" + ip.packed if isinstance(ip, ipaddress.IPv4Address) else ip.packed)
    assert got == _go116_parse_ip(s)


# --- str and int subclasses read as their value (ruamel.yaml, StrEnum), not as wrong types ------
#
# ruamel.yaml's round-trip loader, the usual way to read and edit manifests in Python while
# keeping their layout, gives a `|` block (an nginx configuration-snippet) as a
# LiteralScalarString, a quoted scalar as a DoubleQuotedScalarString (preserve_quotes) and
# `0x1f90` as a HexInt: subclasses of str and int. `_str` and `_int` took them; the map fields
# (annotations, labels, selector, Secret data) and targetPort refused them: "metadata.
# annotations[...]: Invalid value: "false": expected string, got string; quote the value".


class _Quoted(str):
    """Stands for ruamel.yaml's ScalarString types (str subclasses)."""


class _Hex(int):
    """Stands for ruamel.yaml's HexInt (an int subclass)."""


_SNIPPET = "nginx.ingress.kubernetes.io/configuration-snippet"


def test_str_subclass_map_keys_and_values_are_their_text() -> None:
    res = ingresslib.Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "labels": {_Quoted("app"): _Quoted("web")},
                      "annotations": {_SNIPPET: _Quoted('more_set_headers "X-A: b";\n'),
                                      _Quoted("nginx.ingress.kubernetes.io/ssl-redirect"):
                                          _Quoted("false")}},
         "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": _Quoted("web")}, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
         "type": "kubernetes.io/tls",
         "data": {_Quoted("tls.crt"): _Quoted("Zm9v"), "tls.key": _Quoted("YmFy")}},
    ])
    meta = res.ingresses[0].metadata
    assert dict(meta.annotations) == {_SNIPPET: 'more_set_headers "X-A: b";\n',
                                      "nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    assert dict(meta.labels) == {"app": "web"}
    assert dict(res.services[0].spec.selector) == {"app": "web"}
    assert res.secrets[0].get_bytes("tls.crt") == b"foo"
    # Stored as plain str: what the rest of ingresslib compares and hashes.
    for mapping in (meta.annotations, meta.labels, res.secrets[0].data):
        assert all(type(k) is str and type(v) is str for k, v in mapping.items())


def test_target_port_subclasses_are_their_value() -> None:
    res = ingresslib.Resources.from_dicts([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"ports": [{"name": "a", "port": 80, "targetPort": _Hex(0x1F90)},
                            {"name": "b", "port": 81, "targetPort": _Quoted("http")}]}}])
    ports = res.services[0].spec.ports
    assert [(type(p.target_port), p.target_port) for p in ports] == [(int, 8080), (str, "http")]


def test_a_str_subclass_key_clashing_with_an_integer_key_is_a_duplicate_field() -> None:
    # {1: a, "1": b}: one key once sent as kubectl sends it (the integer key converted),
    # whatever str type the second one has.
    res = ingresslib.Resources.from_dicts([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                             "labels": {1: "a", _Quoted("1"): "b"}},
         "spec": {"ports": [{"port": 80}]}}])
    assert [str(w) for w in res.warnings] == [
        'Service default/web: duplicate field "metadata.labels[1]"']
