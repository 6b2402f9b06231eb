"""ingress-nginx's ``--tcp-services-configmap``: the ConfigMap's data read into entries, and
each entry resolved to its Service's ready endpoints (pure: no I/O; the listeners are
:mod:`ingresslib._tcp_proxy`'s).

Each data key is an external port, each value ``namespace/service:port[:PROXY][:PROXY]``
(internal/ingress/controller/controller.go ``getStreamServices``): the port is the Service
port's number, or its name when it is no number; a 3rd field ``PROXY`` (any case) decodes the
PROXY protocol from the client (``listen ... proxy_protocol``), a 4th sends one to the backend
(``proxy_protocol on``). ingress-nginx logs and skips a key that is no number, a value with
fewer than two fields, a namespace/name it cannot split, a Service that does not exist or
whose port has no ready endpoint, and a port of its own listeners; the others listen.
Here the same, with two differences said in README: a key or value ingress-nginx would skip
for its syntax is a :class:`ValidationError` naming ``data.<port>`` (a port outside 1-65535, a
3rd or 4th field that is neither empty nor ``PROXY``, more than four fields: ingress-nginx
silently ignores those fields), and :func:`read_tcp_services` gives those errors beside the
valid entries, so ``serve`` logs them and serves the rest, as ingress-nginx does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._endpoints import EndpointIndex
from ._errors import FieldError, ValidationError
from ._resources import Resources

__all__ = ["TCPServiceEntry", "TCPServiceTarget", "parse_tcp_service", "read_tcp_services",
           "resolve_tcp_services", "find_config_map", "split_ref"]

_DIGITS = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class TCPServiceEntry:
    """One data key of the TCP services ConfigMap, read."""

    #: The external port (the data key) the controller listens on.
    port: int
    namespace: str
    service: str
    #: The Service port: its number, or its name.
    service_port: int | str
    #: The 3rd field: the client sends a PROXY protocol header first (nginx ``listen ...
    #: proxy_protocol``).
    decode_proxy: bool = False
    #: The 4th field: a PROXY protocol v1 header naming the client goes to the backend first
    #: (nginx stream ``proxy_protocol on``).
    encode_proxy: bool = False


@dataclass(frozen=True, slots=True)
class TCPServiceTarget:
    """An entry and the ready endpoints of its Service port, ``(address, port)`` each."""

    entry: TCPServiceEntry
    endpoints: tuple[tuple[str, int], ...]

    @property
    def port(self) -> int:
        return self.entry.port


class _Bad(ValueError):
    pass


def _port_number(text: str, what: str) -> int:
    if not text or not set(text) <= _DIGITS or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise _Bad(f"{what} must be a port number from 1 to 65535")
    return int(text)


def parse_tcp_service(key: str, value: str, protocol: str = "TCP") -> TCPServiceEntry:
    """Reads one data key and its value; ``ValueError`` says what is wrong. ``"UDP"``: the
    PROXY fields are read, then dropped (getStreamServices: "Proxy Protocol is only compatible
    with TCP Services")."""
    port = _port_number(key.strip(), "the key (the port to listen on)")
    fields = value.strip().split(":")
    if len(fields) < 2:
        raise _Bad('must be "namespace/service:port[:PROXY][:PROXY]"')
    if len(fields) > 4:
        raise _Bad('has more than four ":"-separated fields '
                   '("namespace/service:port[:PROXY][:PROXY]")')
    ns, slash, name = fields[0].partition("/")
    if not slash or not ns or not name or "/" in name:
        raise _Bad(f"{fields[0]!r} must be namespace/service")
    raw_port = fields[1]
    if not raw_port:
        raise _Bad("the Service port (2nd field) is empty")
    service_port: int | str = raw_port
    if set(raw_port) <= _DIGITS:
        service_port = _port_number(raw_port, "the Service port")
    flags = []
    for i, flag in enumerate(fields[2:], start=3):
        if flag and flag.upper() != "PROXY":
            raise _Bad(f'field {i} must be "PROXY" or empty, not {flag!r}')
        flags.append(bool(flag))
    flags += [False] * (2 - len(flags))
    if protocol != "TCP":
        flags = [False, False]
    return TCPServiceEntry(port, ns, name, service_port, flags[0], flags[1])


def read_tcp_services(data: Mapping[str, str], where: str = "ConfigMap", protocol: str = "TCP"
                      ) -> tuple[list[TCPServiceEntry], ValidationError | None]:
    """Every key of ``data`` read: the valid entries sorted by port, and a
    :class:`ValidationError` listing the others (``data.<port>``), or None. A port given twice
    (``"80"`` and ``"080"``): the second is an error."""
    entries: dict[int, TCPServiceEntry] = {}
    errors: list[FieldError] = []
    for key in sorted(data, key=lambda k: (len(k.strip()), k)):
        value = data[key]
        field = f"data.{key}"
        try:
            entry = parse_tcp_service(key, value, protocol)
        except ValueError as e:
            errors.append(FieldError(where, field, "Invalid value", str(e), value, True))
            continue
        if entry.port in entries:
            errors.append(FieldError(where, field, "Duplicate value",
                                     f"port {entry.port} is given by another key", value, True))
            continue
        entries[entry.port] = entry
    return sorted(entries.values(), key=lambda e: e.port), (
        ValidationError(errors) if errors else None)


def resolve_tcp_services(entries: Iterable[TCPServiceEntry], res: Resources,
                         reserved: Iterable[int] = (), *, protocol: str = "TCP"
                         ) -> tuple[list[TCPServiceTarget], list[str]]:
    """Each entry's ready endpoints from ``res`` (EndpointSlices, else Endpoints), and a
    warning for each entry left out: a ``reserved`` port (serve's own listeners), a Service
    that does not exist, a port it does not have (or not of ``protocol``; an ExternalName
    Service's port too, never made up as for an HTTP backend), no ready endpoint
    (ingress-nginx "stream services cannot contain empty upstreams": the port is not listened
    on). ``protocol``: the Service and endpoint ports read (``"UDP"`` for UDP services, as
    getStreamServices' ``proto``), and the warnings' name."""
    index = EndpointIndex(res)
    taken = frozenset(reserved)
    targets: list[TCPServiceTarget] = []
    warnings: list[str] = []
    for e in entries:
        ref = f"{e.namespace}/{e.service}:{e.service_port}"
        if e.port in taken:
            warnings.append(f"{protocol} services: port {e.port} ({ref}) is one of serve's own "
                            "listeners: skipped")
            continue
        found = index.resolve(e.namespace, e.service, e.service_port, protocol=protocol,
                              stream=True)
        if not found.endpoints:
            warnings.append(f"{protocol} services: port {e.port}: "
                            f"{found.reason or f'{ref}: no endpoint'}"
                            ": not listened on")
            continue
        targets.append(TCPServiceTarget(e, tuple(found.endpoints)))
    return targets, warnings


def find_config_map(res: Resources, ref: str) -> Mapping[str, str] | None:
    """The data of ConfigMap ``ref`` (``namespace/name``) in ``res`` (the last one given), or
    None when there is none."""
    ns, _, name = ref.partition("/")
    found: Mapping[str, str] | None = None
    for cm in res.config_maps:
        if cm.metadata.namespace == ns and cm.metadata.name == name:
            found = cm.data
    return found


def split_ref(ref: str) -> tuple[str, str]:
    """``--tcp-services-configmap NAMESPACE/NAME`` checked: ``ValueError`` when malformed."""
    ns, slash, name = ref.partition("/")
    if not slash or not ns or not name or "/" in name:
        raise ValueError(f"{ref!r}: must be NAMESPACE/NAME")
    return ns, name
