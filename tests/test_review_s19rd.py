"""Session 19, reviewer R19d: the typed ``ProxySettings``, the ``Headers`` alias, ``Router``'s
entry check and the lazy ``ingresslib.proxy`` names (M19), and the TLS close that no longer
waits for the client's close_notify (T19).

The review found no defect in either change; these are guards for what it checked and what
no test held yet (each fails if that behaviour breaks):

1. Every value the ConfigMap reader gives passes the new type check, key by key and all keys
   together, and survives a rebuild from ``dataclasses.asdict`` (a JSON/TOML round trip gives
   lists: kept as tuples, equal, hashable).
2. ``proxy_real_ip_cidr`` is refused at construction exactly when ``TrustPolicy`` (what
   ``Proxy()`` and ``IngressASGI`` build from it) would fail on it later: host bits set and
   IPv4-mapped networks accepted as before, a bad prefix or an empty item refused.
3. The lazy names of ``ingresslib.proxy`` resolve to one object when first used from several
   threads at once, in a fresh interpreter.
4. ``_ServerTLS._do_shutdown`` reads asyncio's private TLS state by name, through a
   ``getattr`` default: a rename in a later CPython would turn the fix off silently (the
   socket held 30 s again, no error). The names are checked here, on whatever CPython runs the
   suite (checked: 3.11.7, 3.12.1, 3.13.0).
5. ``ProxyServer.shutdown()`` still gives a TLS close that is flushing its response (writing
   paused, part of it and the close_notify still in asyncio's TLS layer) its grace period: the
   client gets every byte, then the close_notify.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import ssl
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import trustme

from ingresslib._config import _PARSERS, KNOWN_KEYS, _bool, parse_config_data
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._headers import TrustPolicy
from ingresslib.proxy._server import _ServerTLS
from tests.test_review_s19t import _Backend, _listener
from tests.test_server_s19 import _close_with_writing_paused, _raw_eof_within, _socket_transport

# --- 1. the ConfigMap reader's values pass the type check ---------------------------------------

#: A valid value of every key the reader knows (a bool key: "true"; a count or seconds: "7").
_VALID = {
    "limit-req-status-code": "429",
    "limit-conn-status-code": "503",
    "forwarded-for-header": "X-Client-IP",
    "proxy-real-ip-cidr": "10.0.0.1/8, ::ffff:10.0.0.0/104",
    "proxy-next-upstream": "error timeout",
    "proxy-body-size": "8m",
    "upstream-keepalive-time": "1h",
    "whitelist-source-range": "10.0.0.0/8,192.168.0.0/16",
    "denylist-source-range": "10.1.0.0/16",
    "block-cidrs": "203.0.113.7",
    "http-redirect-code": "301",
    "large-client-header-buffers": "4 16k",
    "load-balance": "ewma",
    "hsts-max-age": "100",
    "keep-alive-requests": "50",
    "add-headers": "ingress/global",
    "proxy-set-headers": "ingress/upstream",
    "custom-http-errors": "404,503",
    "proxy-protocol-header-timeout": "7s",
    "global-auth-url": "http://auth.example/check",
    "global-auth-method": "GET",
    "global-auth-signin": "https://login.example/",
    "proxy-http-version": "1.0",
    "global-rate-limit-status-code": "429",
    "global-auth-cache-key": "$remote_user$http_authorization",
    "global-auth-cache-duration": "200 202 401 5m",
    # session 28
    "proxy-cookie-domain": "internal.example public.example",
    "proxy-cookie-path": "/one/ /",
    "proxy-redirect-from": "http://internal/",
    "proxy-redirect-to": "https://public/",
    "ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256",
    "ssl-ecdh-curve": "prime256v1",
    "ssl-protocols": "TLSv1.3",
    "ssl-session-cache-size": "10m",
    "ssl-session-timeout": "10m",
    "block-user-agents": "~*bot",
    "block-referers": "~*spam",
    "skip-access-log-urls": "/healthz",
    "no-tls-redirect-locations": "/.well-known/acme-challenge",
    "gzip-types": "application/json",
    "gzip-disable": "msie6",
    "proxy-request-buffering": "on",
    # session 29
    "service-upstream": "true",
    "ssl-dh-param": "default/dhparam",
    # session 30
    "proxy-buffering": "on",
    "proxy-buffer-size": "8k",
    "proxy-max-temp-file-size": "1m",
    "worker-shutdown-timeout": "30s",
}


def _valid(key: str) -> str:
    if key in _VALID:
        return _VALID[key]
    return "true" if _PARSERS.get(key) is _bool else "7"


def _kind_ok(value: object, kind: str) -> bool:
    """``value`` is of the annotated kind, as a caller passing it by hand would give it."""
    if kind == "bool":
        return type(value) is bool
    if kind == "int":
        return type(value) is int
    if kind == "float":
        return type(value) in (int, float)
    if kind == "str":
        return type(value) is str
    return type(value) is tuple and all(type(v) is str for v in value)


@pytest.mark.parametrize("key", sorted(KNOWN_KEYS))
def test_guard_every_configmap_key_loads_alone(key: str) -> None:
    settings = parse_config_data({key: _valid(key)}).settings
    for f in dataclasses.fields(ProxySettings):
        assert _kind_ok(getattr(settings, f.name), str(f.type)), (key, f.name)


def test_guard_every_configmap_key_loads_together_and_rebuilds_from_asdict() -> None:
    cfg = parse_config_data({key: _valid(key) for key in KNOWN_KEYS})
    # The one note every valid value of a key gets: the global custom-http-errors needs a
    # default-backend annotation to act (session 26: ingresslib models no controller default
    # backend).
    assert [w.split(":")[1].strip() for w in cfg.warnings] == ["data.custom-http-errors"]
    assert cfg.load_balance == "ewma"
    s = cfg.settings
    assert (s.proxy_body_size, s.hsts_max_age, s.upstream_keepalive_time) == (8388608, 100, 3600.0)
    # As a JSON or TOML file would give it back: lists for the tuples.
    plain: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(s).items()}
    assert any(isinstance(v, list) for v in plain.values())
    rebuilt = ProxySettings(**plain)
    assert rebuilt == s and hash(rebuilt) == hash(s)
    assert all(type(getattr(rebuilt, k)) is tuple for k, v in plain.items() if isinstance(v, list))
    # ... and dataclasses.replace runs the check again, keeping a list given there a tuple.
    again = dataclasses.replace(rebuilt, proxy_real_ip_cidr=["192.0.2.0/24"])  # type: ignore[arg-type]
    assert again.proxy_real_ip_cidr == ("192.0.2.0/24",) and hash(again) != hash(rebuilt)


# --- 2. proxy_real_ip_cidr: refused exactly when TrustPolicy would fail --------------------------


@pytest.mark.parametrize("cidr", [
    "10.0.0.0/8", "10.0.0.1/8", " 10.0.0.0/8 ", "::1", "::ffff:10.0.0.0/104", "::ffff:10.0.0.1",
    "0.0.0.0/0", "2001:db8::/32", "10.0.0.0/255.0.0.0",
    "10.0.0.0/33", "", "10.0.0.0/8,10.1.0.0/16", "fe80::1%eth0/64", "localhost", "10.0.0/8",
])
def test_guard_proxy_real_ip_cidr_is_refused_exactly_when_trust_policy_fails(cidr: str) -> None:
    try:
        policy: TrustPolicy | None = TrustPolicy([cidr])
    except ValueError:
        policy = None
    if policy is None:
        with pytest.raises(ValueError, match=r"^proxy_real_ip_cidr: "):
            ProxySettings(proxy_real_ip_cidr=(cidr,))
    else:
        assert ProxySettings(proxy_real_ip_cidr=(cidr,)).proxy_real_ip_cidr == (cidr,)
        # host bits masked (as nginx's set_real_ip_from), not refused
        assert policy.networks == (ipaddress.ip_network(cidr.strip(), strict=False),)


# --- 3. the lazy names from several threads at once ---------------------------------------------


def test_guard_lazy_names_first_used_from_threads_resolve_once() -> None:
    code = textwrap.dedent("""
        import sys, threading
        import ingresslib.proxy as p
        assert "ingresslib._config" not in sys.modules and "ingresslib._tls" not in sys.modules
        names = ["load_config", "parse_config_data", "ServerConfig", "CertificateStore",
                 "ProxyServer", "UpstreamPool"]
        seen = {n: [] for n in names}
        start = threading.Barrier(8)
        def use():
            start.wait()
            for n in names:
                seen[n].append(getattr(p, n))
        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        from ingresslib._config import load_config
        from ingresslib._tls import CertificateStore
        assert all(len(v) == 8 and len({id(x) for x in v}) == 1 for v in seen.values()), seen
        assert seen["load_config"][0] is load_config
        assert seen["CertificateStore"][0] is CertificateStore
        try:
            p.load_configs
        except AttributeError as e:
            assert str(e) == "module 'ingresslib.proxy' has no attribute 'load_configs'", e
        else:
            raise AssertionError("no AttributeError")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --- 4. the asyncio internals the TLS close reads ------------------------------------------------


def test_guard_the_asyncio_tls_internals_the_close_relies_on_exist() -> None:
    # ``_ServerTLS._do_shutdown`` overrides this method and reads these attributes; the
    # shutdown timeout handle through getattr(..., None), so a rename would not fail, it
    # would only stop closing the socket. asyncio.sslproto.SSLProtocol of this CPython:
    base = asyncio.sslproto.SSLProtocol
    assert "_do_shutdown" in vars(base) and "_do_shutdown" in vars(_ServerTLS)
    for name in ("_start_shutdown", "_check_shutdown_timeout", "_on_shutdown_complete",
                 "_process_outgoing", "resume_writing"):
        assert callable(getattr(base, name, None)), name
    # Set in __init__ (or as class defaults): read on an instance made as the server makes it.
    proto: Any = base(asyncio.new_event_loop(), asyncio.Protocol(), _server_context(),
                      None, server_side=True)  # type: ignore[arg-type]  # (waiter None: as _ServerTLS)
    try:
        for name in ("_shutdown_timeout_handle", "_transport", "_ssl_writing_paused",
                     "_outgoing", "_eof_received", "_state"):
            assert hasattr(proto, name), name
        assert proto._shutdown_timeout_handle is None  # armed by _start_shutdown only
    finally:
        # (Its app transport, made in __init__, warns at collection unless marked closed, as
        # asyncio's own connection_lost marks it.)
        proto._app_transport._closed = True
        proto._loop.close()


def _server_context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)


# --- 5. graceful shutdown with a TLS close still flushing -----------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_shutdown_lets_a_flushing_tls_close_finish(ca: trustme.CA) -> None:
    size = 400 * 1024  # as test_server_s19.py: part of it stays in asyncio's TLS layer
    async with _Backend(size) as endpoint:
        server = await _listener(ca, endpoint)
        client = None
        try:
            client, _ = await _close_with_writing_paused(ca, server, size)
            stopping = asyncio.ensure_future(server.shutdown(10))
            await asyncio.sleep(0.3)
            assert not stopping.done()  # waiting for the flush, not aborting it
            _socket_transport(client.writer).resume_reading()
            answer = await asyncio.wait_for(client.read_until_close_notify(), 20)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"x" * size
            assert await _raw_eof_within(client)
            await asyncio.wait_for(stopping, 10)
            assert server.sockets_held() == 0
        finally:
            if client is not None:
                client.writer.transport.abort()
            await server.shutdown(1)
