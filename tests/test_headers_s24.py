"""Session 24 (P3): the forwarded headers against ingress-nginx, over a real ``ProxyServer``,
and the ConfigMap object's fields besides ``data``.

- A client address read from a trusted hop's X-Forwarded-For was passed on as the chain spelt
  it when it was an IPv6 one (``2001:DB8:0:0::7``, ``::FFFF:1.2.3.4``); nginx's realip module
  prints the address it found (ngx_http_realip_set_addr -> ngx_sock_ntop ->
  ngx_inet6_ntop), so X-Real-IP, X-Forwarded-For and the logs see one spelling, as they
  already did for IPv4 (``010.0.0.1`` -> ``10.0.0.1``).
- ``parse_configmap``/``load_config``: a ``metadata`` that is no object was an AttributeError;
  a number for ``metadata.name``, ``immutable: "yes"`` or a list for ``binaryData`` loaded where
  the API server's decoder refuses the object; a tuple ``data`` (or value) was named by its
  Python type ("got tuple") where the manifests say "array".
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from _budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import ValidationError
from ingresslib._config import _header_name, _Bad, load_config, parse_configmap
from ingresslib.proxy._headers import _ipv6_text
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings
from tests._server_helpers import StubRouter


# --- a real ProxyServer in front of a backend that answers with the head it got ----------------


async def _echo_head_backend() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _through_proxy(raw: bytes, **kw: object) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The request line's target port and the (lower-cased name, value) header lines the
    backend received for ``raw`` (``PORT`` in it: the proxy's port), sent to a ProxyServer
    with settings ``kw`` on 127.0.0.1."""
    backend = await _echo_head_backend()
    port = backend.sockets[0].getsockname()[1]
    server = ProxyServer(StubRouter([("127.0.0.1", port)]), **kw)
    try:
        await server.start(("127.0.0.1", 0))
        proxy_port = server.addresses[0][2]
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(raw.replace(b"PORT", b"%d" % proxy_port))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1 << 16), 2)
        writer.close()
    finally:
        await server.shutdown(1)
        backend.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    body = answer.split(b"\r\n\r\n", 1)[1]
    lines = body.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return proxy_port, [(n.lower(), v.strip()) for n, _, v in (x.partition(b":") for x in lines)]


def _get(head: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in head if n == name]


TRUSTED = {"use_forwarded_headers": True, "proxy_real_ip_cidr": ("127.0.0.0/8",)}


@pytest.mark.parametrize("chain, client", [
    (b"2001:DB8:0:0:0:0:0:7", b"2001:db8::7"),
    (b"[2001:0db8::0007]:443", b"2001:db8::7"),
    (b"::FFFF:1.2.3.4", b"::ffff:1.2.3.4"),
    (b"1.2.3.4, 2001:db8:0:0:1:0:0:1", b"2001:db8::1:0:0:1"),
])
def test_a_forwarded_ipv6_client_is_spelt_as_nginx_prints_it(chain: bytes, client: bytes) -> None:
    # Before: X-Real-IP and X-Forwarded-For carried the chain's own spelling
    # ("2001:DB8:0:0:0:0:0:7", "::FFFF:1.2.3.4").
    _, head = asyncio.run(_through_proxy(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: " + chain
        + b"\r\nConnection: close\r\n\r\n", **TRUSTED))
    assert _get(head, b"x-real-ip") == [client]
    assert _get(head, b"x-forwarded-for") == [client]  # $remote_addr without compute-full
    assert _get(head, b"x-original-forwarded-for") == [chain]


def test_the_forwarded_headers_of_a_trusted_hop_as_nginx_tmpl_sets_them() -> None:
    # nginx.tmpl's proxy_set_header lines with use-forwarded-headers and
    # compute-full-forwarded-for, the peer inside proxy-real-ip-cidr; hop-by-hop headers and
    # the ones Connection names (any case, several lines) dropped.
    port, head = asyncio.run(_through_proxy(
        b"GET /p?q=1 HTTP/1.1\r\nHost: Example.test:PORT\r\n"
        b"X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: front.test:8443, other.test\r\n"
        b"X-Forwarded-Port: 8443\r\nX-Real-IP: 9.9.9.9\r\nX-Original-URI: /evil\r\n"
        b"X-Request-ID: abc-1\r\nconnection: X-A\r\nCONNECTION: x-b , TE, close\r\n"
        b"TE: trailers\r\nKeep-Alive: 5\r\nX-A: 1\r\nX-B: 2\r\nX-Keep: 3\r\nX-Keep: 4\r\n\r\n",
        compute_full_forwarded_for=True, use_forwarded_headers=True,
        proxy_real_ip_cidr=("127.0.0.0/8", "10.0.0.0/8")))
    assert _get(head, b"host") == [b"Example.test:%d" % port]
    assert _get(head, b"x-forwarded-for") == [b"1.2.3.4, 10.0.0.1, 10.0.0.2, 127.0.0.1"]
    assert _get(head, b"x-real-ip") == [b"1.2.3.4"]
    assert _get(head, b"x-original-forwarded-for") == [b"1.2.3.4, 10.0.0.1, 10.0.0.2"]
    assert _get(head, b"x-forwarded-host") == [b"front.test:8443"]
    assert _get(head, b"x-forwarded-port") == [b"8443"]
    for name in (b"x-forwarded-proto", b"x-forwarded-scheme", b"x-scheme"):
        assert _get(head, name) == [b"https"]
    assert _get(head, b"x-request-id") == [b"abc-1"]
    assert _get(head, b"x-original-uri") == []
    assert _get(head, b"x-keep") == [b"3", b"4"]
    names = {n for n, _ in head}
    assert not names & {b"x-a", b"x-b", b"te", b"keep-alive", b"connection", b"upgrade"}


def test_an_untrusted_peer_gets_its_own_address_and_port() -> None:
    port, head = asyncio.run(_through_proxy(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.2.3.4\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Host: evil.test\r\n"
        b"Connection: close\r\n\r\n", use_forwarded_headers=True,
        proxy_real_ip_cidr=("10.0.0.0/8",)))
    assert _get(head, b"x-forwarded-for") == [b"127.0.0.1"]
    assert _get(head, b"x-real-ip") == [b"127.0.0.1"]
    assert _get(head, b"x-original-forwarded-for") == [b"1.2.3.4"]
    assert _get(head, b"x-forwarded-host") == [b"a.test"]
    assert _get(head, b"x-forwarded-port") == [b"%d" % port]
    assert _get(head, b"x-forwarded-proto") == [b"http"]


@settings(max_examples=examples(0.5), deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_ipv6_text_is_the_address_lower_case_and_compressed(packed: bytes) -> None:
    text = _ipv6_text(packed)
    assert ipaddress.IPv6Address(text).packed == packed
    assert text == text.lower() and ":::" not in text
    if packed[:2] != b"\0\0":
        # (no dotted-decimal tail then: Python's spelling, RFC 5952's)
        assert text == ipaddress.IPv6Address(packed).compressed


@pytest.mark.parametrize("packed, text", [
    (bytes(16), "::"), (bytes(15) + b"\1", "::1"), (b"\0\1" + bytes(14), "1::"),
    (bytes(10) + b"\xff\xff\1\2\3\4", "::ffff:1.2.3.4"), (bytes(12) + b"\1\2\3\4", "::1.2.3.4"),
    (bytes(14) + b"\1\2", "::0.0.1.2"),  # nginx: "max == 7 && p[14] != 0 && p[15] != 1"
    (b"\0\1\0\0\0\2" + bytes(8) + b"\0\3", "1:0:2::3"),  # the longer run
    (b"\0\1\0\0\0\0\0\2\0\0\0\0\0\3\0\4", "1::2:0:0:3:4"),  # the first of equal runs
])
def test_ipv6_text_matches_ngx_inet6_ntop(packed: bytes, text: str) -> None:
    assert _ipv6_text(packed) == text


# --- the ConfigMap object's other fields ---------------------------------------------------------


def _cm(**fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {},
            **fields}


def _errors(obj: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as e:
        parse_configmap(obj)
    return [(err.field, err.detail) for err in e.value.errors]


def test_a_metadata_that_is_no_object_is_an_error_not_an_attribute_error() -> None:
    # Before: AttributeError: 'list' object has no attribute 'get'.
    assert _errors(_cm(metadata=["c"])) == [("metadata", "expected object, got array")]
    assert _errors(_cm(metadata="c")) == [("metadata", "expected object, got string")]


def test_the_fields_besides_data_are_type_checked_as_the_manifests_are() -> None:
    # Before: all three loaded (the API server's decoder refuses the object for each).
    errs = _errors(_cm(metadata={"name": 5, "labels": {"a": 1}}, immutable="yes",
                       binaryData=["x"]))
    assert ("metadata.name", "expected string, got integer") in errs
    assert ("metadata.labels[a]", "expected string, got integer; quote the value") in errs
    assert ("immutable", "expected boolean, got string") in errs
    assert ("binaryData", "expected object, got array") in errs
    assert len(errs) == 4
    assert _errors(_cm(binaryData={"k": 1})) == [
        ("binaryData[k]", "expected string, got integer; quote the value")]


def test_well_typed_fields_load_and_an_unknown_metadata_field_warns() -> None:
    cfg = parse_configmap(_cm(metadata={"name": "c", "namespace": "ns", "labels": {"a": "b"},
                                        "resourceVersion": "7", "lables": {}},
                              immutable=True, binaryData={"k": "AAAA"}, data={"hsts": "false"}))
    assert cfg.settings.hsts is False
    assert 'ConfigMap ns/c: unknown field "metadata.lables", ignored' in cfg.warnings
    assert any("binaryData.k: not read" in w for w in cfg.warnings)


def test_a_file_with_a_mistyped_immutable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nimmutable: \"true\"\n"
                    "data:\n  hsts: \"false\"\n")
    with pytest.raises(ValidationError) as e:
        load_config(path)
    (err,) = e.value.errors
    assert err.source == str(path) and err.field == "immutable"
    assert err.detail == "expected boolean, got string"


def test_a_tuple_is_an_array_not_a_python_type_name() -> None:
    # Before: "expected object, got tuple (kubectl apply: json: cannot unmarshal tuple ...)"
    # and "expected string, got tuple", the tuple shown as a scalar value.
    ((field, detail),) = _errors(_cm(data=("a",)))
    assert field == "data" and detail.startswith("expected object, got array (kubectl apply: "
                                                 "json: cannot unmarshal array into")
    with pytest.raises(ValidationError) as e:
        parse_configmap(_cm(data={"proxy-real-ip-cidr": ("10.0.0.0/8",)}))
    (err,) = e.value.errors
    assert err.detail.startswith("expected string, got array (kubectl apply: json: cannot "
                                 "unmarshal array into Go struct field ConfigMap.data of type "
                                 "string); write the items as one comma-separated string")
    assert err.value is None


@pytest.mark.parametrize("name", ["X-Client-IP", "CF-Connecting-IP", "x_real_ip", "A!#$%&'*+-.^_`|~"])
def test_forwarded_for_header_names_are_one_rule(name: str) -> None:
    assert _header_name(f" {name} ") == name
    assert ProxySettings(forwarded_for_header=name).forwarded_for_header == name


@pytest.mark.parametrize("name", ["", "X Real IP", "X-Client-\u0130P", "X:IP", "X-IP\nY"])
def test_forwarded_for_header_refusals_are_one_rule(name: str) -> None:
    with pytest.raises(_Bad):
        _header_name(name)
    with pytest.raises(ValueError):
        ProxySettings(forwarded_for_header=name)


def test_a_data_key_of_the_wrong_type_is_named_as_the_manifests_name_it() -> None:
    # Before: a tuple key was "got object", an int key "got number" (the manifests' decoder,
    # _decode._jtype, says "integer" for an int and "array" for a tuple).
    from ingresslib._config import parse_config_data

    for key, jtype in (((1, 2), "array"), (1, "integer"), (1.5, "number"), (None, "null")):
        with pytest.raises(ValidationError) as e:
            parse_config_data({key: "x"})
        (err,) = e.value.errors
        assert err.detail.startswith(f"expected a string key, got {jtype};"), err.detail
