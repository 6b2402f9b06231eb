"""``serve``'s listeners: the ``HOST:PORT`` values checked before anything is read (a host that
can never be looked up, two listeners that can never both bind one port), the listener that
failed to open, and the URLs listening."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from typing import Any

from ._iptext import host_port

#: No public name: ``_serve`` imports the checks by their own (underscore) names.
__all__: list[str] = []


def _say(text: str) -> None:
    """One message of ``serve``'s (or ``demo``'s) own on stderr (an error, a ``listening on``
    line), flushed.

    A stderr that cannot be written loses the message and nothing else, as the log's lines are
    lost (``logging`` drops a failed write): a pipe whose reader left (``serve ... 2>&1 | grep
    -m1 'listening on'``, a log shipper that died), a full disk. The ``BrokenPipeError`` of a
    ``listening on`` line ended the server it announced (exit 1, its listeners just opened),
    and that of an error line turned its exit code (2 for invalid manifests...) into 1.
    No stderr at all (``sys.stderr`` None: started with file descriptor 2 closed, ``2>&-``):
    nothing is written; ``print`` wrote these lines to stdout, among the access log's."""
    err = sys.stderr
    if err is None:
        return
    try:
        print(text, file=err, flush=True)
    except (OSError, ValueError):  # ValueError: stderr closed (an embedding's)
        pass


def _listening_urls(server: Any) -> list[str]:
    """``serve``'s ``listening on`` URLs: every socket of each listener, ``--listen``'s then
    ``--tls-listen``'s (``ProxyServer.urls``)."""
    return list(server.urls)


def _failed_listener(args: argparse.Namespace, bound: int, metrics_made: bool) -> str:
    """``--FLAG VALUE`` of the listener ``_serve`` failed to open: ``bound`` proxy listeners
    were open (``--listen`` first, then ``--tls-listen``), and the metrics server is made only
    once both are."""
    flags = [("--listen", args.listen)]
    if args.tls_listen is not None:
        flags.append(("--tls-listen", args.tls_listen))
    if bound < len(flags) and not metrics_made:
        flag, value = flags[bound]
    else:
        flag, value = "--metrics-listen", args.metrics_listen
    return f"{flag} {value}"


def _listener_conflict(values: Sequence[tuple[str, tuple[str, int]]]) -> str | None:
    """Two of ``(flag, (host, port))`` that can never both listen, a one-line reason, else
    None: the same port (not 0) on the same address, or on an address and the wildcard of its
    family (``0.0.0.0`` takes the port on every IPv4 address, ``::`` on every IPv6 one; asyncio
    sets IPV6_V6ONLY, so ``::`` leaves IPv4 alone). Addresses are compared as the bind reads
    them (``_bind_key``: ``[::0]`` is ``[::]``, ``0`` and ``127.1`` are ``0.0.0.0`` and
    ``127.0.0.1``); names as written: they are resolved at the bind, whose error names the
    option."""
    keys = [(flag, host, port, _bind_key(host)) for flag, (host, port) in values]
    for i, (flag_a, host_a, port_a, key_a) in enumerate(keys):
        for flag_b, host_b, port_b, key_b in keys[i + 1:]:
            if port_a != port_b or port_a == 0:
                continue
            if key_a == key_b or _covers(key_a, key_b) or _covers(key_b, key_a):
                return (f"{flag_b} {host_port(host_b, port_b)} and {flag_a} "
                        f"{host_port(host_a, port_a)} cannot both listen (one port, one "
                        "listener)")
    return None


#: A listen host as the bind reads it: ``(family, address, IPv6 scope id)`` for an address
#: literal, the host itself for a name.
_BindKey = tuple[int, str, int] | str


def _bind_key(host: str) -> _BindKey:
    """``host`` read as the bind reads it, with no lookup (``AI_NUMERICHOST``): the C
    library's spellings of an address are one key (``::0`` and ``::``; ``0``, ``127.1`` and
    ``0x7f.0.0.1`` are IPv4's ``inet_aton`` forms; a zone by name or by number). A name (or a
    zone the host does not have) is kept as written."""
    import ipaddress

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return host
    family, _, _, _, addr = infos[0]
    if family == socket.AF_INET6:
        # (address, port, flowinfo, scope id): the zone, by name or number, is its id. Only a
        # link-local address has a zone: Linux's bind drops the scope id of any other
        # (``__ipv6_addr_needs_scope_id``), so ``::1%1`` is ``::1`` and ``::%1`` the wildcard.
        scope: Any = addr[3]  # type: ignore[misc]
        address = str(addr[0]).partition("%")[0]
        if not ipaddress.IPv6Address(address).is_link_local:
            scope = 0
        return (6, address, int(scope))
    return (4, str(addr[0]), 0)


def _covers(wild: _BindKey, key: _BindKey) -> bool:
    """Whether ``wild`` is its family's wildcard and ``key`` an address of that family."""
    return (isinstance(wild, tuple) and isinstance(key, tuple) and wild[0] == key[0]
            and wild[1:] in (("0.0.0.0", 0), ("::", 0)))


def _host_error(host: str) -> str | None:
    """Why ``host`` (of a ``HOST:PORT``) can never be looked up, else None: an IP literal, or
    a name the resolver can encode (IDNA: no empty label, none over 63 characters). Such a name
    reached the resolver at the bind and ended ``serve`` with a UnicodeError traceback."""
    import ipaddress

    try:
        ipaddress.ip_address(host.partition("%")[0])
        return None
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError as e:
        return f"{host!r} is not a host name: {e.__cause__ or e}"
    return None
