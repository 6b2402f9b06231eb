"""Session 17 review of manifest validation against the API server.

Each test is one difference found, with the Kubernetes (or Go) source that decides it quoted
beside it; expected strings are written from that source, not from ingresslib's output.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError
from ingresslib._validate import _parse_ip_sloppy, canonical_ip

BACKEND = {"service": {"name": "svc", "port": {"number": 80}}}


def errs(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


def ingress(host: str | None = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"defaultBackend": BACKEND}
    if host is not None:
        spec["rules"] = [{"host": host}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", **meta}, "spec": spec}


def slice_of(*addresses: str, ports: Any = None, address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "e", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": address_type,
            "endpoints": [{"addresses": list(addresses), "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}] if ports is None else ports}


# --- IP addresses: Go 1.16's parser reads any number of leading zeros -----------------------------
#
# k8s.io/utils/net ParseIPSloppy is Go 1.16's net.ParseIP; its parseIPv4 reads each octet with
#   func dtoi(s string) (n int, i int, ok bool) { n = 0; for i = 0; i < len(s) && '0' <= s[i] &&
#   s[i] <= '9'; i++ { n = n*10 + int(s[i]-'0'); if n >= big { return big, i, false } } ... }
# and then `if !ok || n > 0xFF { return nil }`: zeros in front never raise n, so
# "000...00010.0.0.1" is 10.0.0.1 however many zeros there are, and a long run of other digits
# is simply no IP. ingresslib read each octet with int(), which raises ValueError past 4,300
# digits: `check` and `serve` died with a traceback instead of reporting (or accepting) the
# manifest.


def test_a_host_of_thousands_of_digits_is_an_error_not_a_crash() -> None:
    host = "1" * 5000 + ".1.1.1"
    # No IP (the first octet is past 0xFFFFFF), so only IsDNS1123Subdomain speaks: digits and dots
    # match its regex, the length does not.
    assert errs(ingress(host)) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": '
        "must be no more than 253 bytes"
    ]


def test_a_host_with_thousands_of_leading_zeros_is_an_ip_as_to_the_api_server() -> None:
    host = "0" * 5000 + "1.1.1.1"  # 1.1.1.1 to ParseIPSloppy
    assert [e.split(": ", 4)[4] for e in errs(ingress(host))] == [
        "must be a DNS name, not an IP address", "must be no more than 253 bytes"]


def test_leading_zeros_past_the_int_digit_limit_read_as_the_api_server_reads_them() -> None:
    address = "0" * 5000 + "10.0.0.1"
    res = ingresslib.Resources.from_dicts([slice_of(address)])
    assert res.endpoint_slices[0].endpoints[0].addresses == (address,)
    # The address ingresslib connects to is the one the API server read.
    assert canonical_ip(address) == "10.0.0.1"
    # In an IPv6 text's embedded IPv4 part too (xtoi reads the zeros as hex, then parseIPv4).
    assert canonical_ip("::ffff:" + "0" * 5000 + "1.2.3.4") == "::ffff:1.2.3.4"


def test_a_long_octet_past_255_is_no_ipv4_address() -> None:
    address = "0" * 5000 + "256.0.0.1"
    shown = f'"{address}"'
    assert errs(slice_of(address)) == [
        f"EndpointSlice default/e: endpoints[0].addresses[0]: Invalid value: {shown}: "
        "must be a valid IPv4 address",
        f"EndpointSlice default/e: endpoints[0].addresses[0]: Invalid value: {shown}: "
        "must be a valid IP address",
    ]


def go_parse_ipv4(s: str) -> str | None:
    """Go 1.16 net.parseIPv4 with dtoi, transcribed (big = 0xFFFFFF)."""
    octets = []
    for i in range(4):
        if not s:
            return None
        if i > 0:
            if s[0] != ".":
                return None
            s = s[1:]
        n = c = 0
        while c < len(s) and "0" <= s[c] <= "9":
            n = n * 10 + ord(s[c]) - ord("0")
            if n >= 0xFFFFFF:
                return None
            c += 1
        if c == 0 or n > 0xFF:
            return None
        s = s[c:]
        octets.append(n)
    if s:
        return None
    return ".".join(map(str, octets))


octet = st.builds(lambda zeros, digits: "0" * zeros + digits,
                  st.sampled_from([0, 0, 1, 3, 4299, 4301, 6000]),
                  st.text(alphabet="0123456789", max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.lists(octet, min_size=1, max_size=5))
def test_dotted_decimal_agrees_with_go_and_never_raises(parts: list[str]) -> None:
    text = ".".join(parts)
    ip = _parse_ip_sloppy(text)
    assert (None if ip is None else str(ip)) == go_parse_ipv4(text)


# --- annotation keys: Go's strings.ToLower, not Python's str.lower ------------------------------
#
# apimachinery ValidateAnnotations: `for k := range annotations { // The rule is QualifiedName
# except that case doesn't matter, so convert to lowercase before checking. for _, msg := range
# validation.IsQualifiedName(strings.ToLower(k)) {...} }`. strings.ToLower maps each rune with
# unicode.ToLower, the simple mapping: U+0130 (UnicodeData: "0130;LATIN CAPITAL LETTER I WITH
# DOT ABOVE;...;0069;") becomes a plain "i". Python's str.lower applies SpecialCasing.txt
# ("0130; 0069 0307; ...") and gives "i" + U+0307, which no qualified name holds: the API server
# accepts the key, ingresslib refused the manifest.


@pytest.mark.parametrize("key", ["\u0130", "example.com/\u0130ngress", "\u0130.example.com/x"])
def test_annotation_key_lowered_as_go_lowers_it(key: str) -> None:
    res = ingresslib.Resources.from_dicts([ingress(annotations={key: "v"})])
    assert dict(res.ingresses[0].metadata.annotations) == {key: "v"}


def test_other_non_ascii_annotation_keys_stay_invalid() -> None:
    # "Ä" lowers to "ä" in both languages: still outside [A-Za-z0-9].
    assert [e.split(": ")[3] for e in errs(ingress(annotations={"\u00c4": "v"}))] == ['"\u00c4"']


# --- EndpointSlice: a duplicated port name prints with %q -----------------------------------------
#
# discovery validatePorts: `if portNames.Has(*endpointPort.Name) { allErrs = append(allErrs,
# field.Duplicate(idxPath.Child("name"), endpointPort.Name)) }`: the value is a *string, and
# field.Error.ErrorBody dereferences pointers before choosing the format: `} else if
# valueType.Kind() == reflect.Pointer { ... value = reflectValue.Elem().Interface() }`, then
# `case string: s = fmt.Sprintf("%s: %q", e.Type, t)`. json.Marshal (what ingresslib used) writes
# "&" as \u0026.


def test_duplicate_slice_port_name_printed_with_go_quote() -> None:
    ports = [{"name": "a&b", "port": 1}, {"name": "a&b", "port": 2}]
    lines = errs(slice_of("10.0.0.1", ports=ports))
    assert 'EndpointSlice default/e: ports[1].name: Duplicate value: "a&b"' in lines
    assert not any("\\u0026" in line for line in lines)


# --- Secret: `data` is decoded before `stringData` is merged ----------------------------------------
#
# The body is decoded into v1.Secret first; encoding/json reads a []byte with `n, err :=
# base64.StdEncoding.Decode(b, s); if err != nil { d.saveError(err); break }`, so a `data` value
# that is not base64 fails the request. Only afterwards does conversion merge stringData over
# data ("stringData ... is merged into the data field on write, overwriting any existing
# values"). ingresslib skipped the `data` value of a key stringData also sets, and loaded the
# Secret the API server refuses.


def test_undecodable_data_value_is_refused_even_when_string_data_replaces_it() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
              "type": "kubernetes.io/tls", "data": {"tls.crt": "!!!!", "tls.key": "a2V5"},
              "stringData": {"tls.crt": "cert"}}
    assert errs(secret) == [
        "Secret default/tls: data[tls.crt]: Invalid value: must be valid base64 (illegal base64 data)"
    ]
    fixed = copy.deepcopy(secret)
    fixed["data"]["tls.crt"] = "Y2VydA=="
    assert ingresslib.Resources.from_dicts([fixed]).secrets[0].get_bytes("tls.crt") == b"cert"


# --- no exception but ValidationError, whatever the manifest holds ---------------------------------
#
# A guard over the kinds' fields: one to four leaves of valid objects replaced by values of every
# JSON type, by huge or IP-like strings (the ones above among them) or removed. Anything but a
# ValidationError out of from_dicts (or out of the Router built from what loads) is a crash.

_TEMPLATES: list[dict[str, Any]] = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
     "metadata": {"name": "a", "annotations": {"kubernetes.io/ingress.class": "x"}},
     "spec": {"ingressClassName": "x", "tls": [{"hosts": ["a.com", "*.b.com"], "secretName": "s"}],
              "defaultBackend": {"resource": {"apiGroup": "g.io", "kind": "K", "name": "n"}},
              "rules": [{"host": "a.com", "http": {"paths": [
                  {"path": "/", "pathType": "Prefix", "backend": BACKEND},
                  {"path": "/x", "pathType": "Exact",
                   "backend": {"service": {"name": "svc", "port": {"name": "http"}}}}]}}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"},
     "spec": {"controller": "a.io/b", "parameters": {"apiGroup": "g.io", "kind": "K", "name": "n",
                                                     "scope": "Namespace", "namespace": "ns"}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
     "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "selector": {"a": "b"},
              "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30000},
                        {"name": "b", "port": 81, "targetPort": 8081, "appProtocol": "http"}]}},
    slice_of("10.0.0.1"),
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc"},
     "subsets": [{"addresses": [{"ip": "10.0.0.1", "hostname": "h", "nodeName": "n"}],
                  "notReadyAddresses": [{"ip": "10.0.0.2"}],
                  "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
     "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="},
     "stringData": {"x": "y"}},
]


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out += _leaf_paths(value, (*path, key))
    return out


_PATHS = [(i, p) for i, t in enumerate(_TEMPLATES) for p in _leaf_paths(t)]
#: The fields the API server reads as IP addresses (or refuses as one), for the IP-like texts.
_IP_PATHS = [(i, p) for i, p in _PATHS
             if p[-1] in ("host", "clusterIP", "ip") or p[-2:-1] in (("hosts",), ("addresses",))]
_IP_LIKE = st.sampled_from(["::", "0" * 5000 + "1.1.1.1", "1" * 5000 + ".1.1.1", "1.2.3.4",
                            "::ffff:" + "0" * 5000 + "1.2.3.4", "0" * 5000 + "256.0.0.1"])
_ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8),
    st.sampled_from(["", "*", "\u0130", "\udc80", "a" * 300, "None", "ExternalName", "IPv6",
                     "FQDN", "Exact", "-", "a/b/c", "%2f", "!!"]),
    st.just({}), st.just([]), st.just([None]), st.just([{}]),
)
_CHANGE = st.one_of(st.tuples(st.sampled_from(_PATHS), _ODD, st.booleans()),
                    st.tuples(st.sampled_from(_IP_PATHS), _IP_LIKE, st.just(False)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(_CHANGE, min_size=1, max_size=4))
def test_odd_values_anywhere_raise_validation_error_only(
        changes: list[tuple[tuple[int, tuple[Any, ...]], Any, bool]]) -> None:
    objs = copy.deepcopy(_TEMPLATES)
    for (i, path), value, remove in changes:
        node: Any = objs[i]
        try:
            for key in path[:-1]:
                node = node[key]
            if remove and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change replaced a parent
    try:
        res = ingresslib.Resources.from_dicts(objs)
    except ValidationError as err:
        assert str(err)
        return
    ingresslib.Router(res).route("GET", "a.com", "/")
