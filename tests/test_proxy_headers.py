"""The header policy helpers: raw head checks, Host values, trusted hops."""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings, RemoteProxyError
from ingresslib.proxy._headers import (
    TrustPolicy,
    check_host,
    check_partial_head,
    check_raw_head,
    client_ip_from_chain,
)

S = ProxySettings()


@pytest.mark.parametrize("host", [b"", b"example.test", b"example.test:8080", b"[::1]:80",
                                  b"127.0.0.1", b"xn--caf-dma.example", b"a_b.example"])
def test_good_hosts(host: bytes) -> None:
    check_host(host)


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"u@h", b"h:", b"h:99999", b"h:0", b"h:1:2",
                                  b"[::1", b"h\\x", b"h?x", b"h#x"])
def test_bad_hosts(host: bytes) -> None:
    with pytest.raises(RemoteProxyError) as e:
        check_host(host)
    assert e.value.status_hint == 400


def test_raw_head_accepts_a_normal_head() -> None:
    check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", S)


@pytest.mark.parametrize("head,status", [
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", 400),
    (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 8200 + b"\r\n\r\n", 431),
])
def test_raw_head_rejections(head: bytes, status: int) -> None:
    with pytest.raises(RemoteProxyError) as e:
        check_raw_head(head, S)
    assert e.value.status_hint == status


def test_partial_head_limits() -> None:
    check_partial_head(b"GET / HTTP/1.1\r\nHost: a", S)
    with pytest.raises(RemoteProxyError):
        check_partial_head(b"G" * 9000, S)


def test_client_ip_from_chain() -> None:
    policy = TrustPolicy(["10.0.0.0/8", "2001:db8::/32"])
    assert client_ip_from_chain("1.1.1.1, 10.0.0.2", "10.0.0.1", policy) == "1.1.1.1"
    assert client_ip_from_chain("1.1.1.1, 2.2.2.2", "10.0.0.1", policy) == "2.2.2.2"
    assert client_ip_from_chain("10.0.0.3, 10.0.0.2", "10.0.0.1", policy) == "10.0.0.3"
    assert client_ip_from_chain("1.1.1.1, junk, 10.0.0.2", "10.0.0.1", policy) == "10.0.0.2"
    assert client_ip_from_chain("", "10.0.0.1", policy) == "10.0.0.1"
    assert policy.trusted("2001:db8::1") and not policy.trusted("1.1.1.1")
    assert not policy.trusted("garbage") and not TrustPolicy([]).trusted("10.0.0.1")
