"""Request mirroring: ``mirror-target``, ``mirror-request-body``, ``mirror-host``.

What ingress-nginx writes for them and what nginx then does, read here (``parse_mirror``,
called by proxy/_annotations.py ``parse_route_options``) and turned into the bytes of the
mirror request (``mirror_request``, ``MirrorCopy``), which the core hands its driver as a
``Mirror`` action. No socket, asyncio, ssl or logging handler here.

ingress-nginx (internal/ingress/annotations/mirror/main.go ``mirror.Parse``):

- ``Source`` is ``/_mirror-<Ingress UID>`` (the internal location's name); without a
  ``mirror-target`` there is no Source and no mirror.
- ``mirror-request-body``: ``"on"`` unless the value is exactly ``"off"`` ("if err != nil ||
  config.RequestBody != "off" { config.RequestBody = "on" }"); its validator is
  ``ValidateRegex(OnOffRegex, true)``, ``^(on|off)$`` once spaces are removed (anything else is
  warned about, and ``on`` used).
- ``mirror-target`` and ``mirror-host``: validator ``parser.ValidateServerName``
  (validators.go ``IsValidRegex``: ``^[/\\-._~a-zA-Z0-9/:^$[](){}*+?|&=\\]*$`` after
  ``TrimSpace``). ``mirror-host`` defaults to the hostname of the target's part before its
  first ``$`` ("target := strings.Split(config.Target, "$"); url, err :=
  parser.StringToURL(target[0]); ... config.Host = url.Hostname()"), no port.

nginx.tmpl / template.go: the location gets ``mirror <Source>; mirror_request_body
<RequestBody>;`` and ``buildMirrorLocations`` writes, once per Source, ``location = <Source> {
internal; proxy_set_header Host <Host>; proxy_pass <Target>; }`` (skipped when Source, Target
or Host is empty). nginx (ngx_http_mirror_module.c): the ``mirror`` handler runs in the
precontent phase -- after the rewrite phase (redirects), limit_req/limit_conn and the access
phase (allow/deny, basic auth), so a request answered by any of those is never mirrored -- and
``ngx_http_mirror_handler_internal`` makes a background subrequest per mirror with the request's
method ("sr->method = r->method") and arguments (``&r->args``), ``sr->header_only = 1``: the
mirror's answer is read and discarded. With ``mirror_request_body on`` the whole client body is
read first (``ngx_http_read_client_request_body(r, ngx_http_mirror_body_handler)``), and the
subrequest carries it.

``proxy_pass <Target>`` (ngx_http_proxy_module.c ``ngx_http_proxy_create_request``): with a
variable in the target (``$request_uri``: the client's request target as received, query
included, never rewritten) the expanded URL's path is the request target as is, no arguments
added; without one, the target's path followed by ``?<args>`` (the arguments after any
rewrite-target). A target without a path would send nginx's internal ``/_mirror-<UID>``:
ingresslib has no UID there and sends ``/`` (README divergence).

What ingresslib sends (``mirror_request``): the upstream request the backend gets (this hop's
headers: X-Forwarded-*, X-Real-IP, X-Request-ID, basic auth's Authorization removed, the
ConfigMap's proxy-set-headers), with the mirror's request target, ``Host`` = mirror-host,
``Connection: close``, and the body with its ``Content-Length`` (``mirror-request-body: on``
and the request has a body) or no body and no framing header (``off``). nginx's mirror location
sets none of this hop's headers (they are ``proxy_set_header`` lines of the route's location,
not inherited by the mirror's), so the client's own X-Forwarded-For etc. would reach the mirror
untouched; and with ``off`` nginx still sends the client's Content-Length without the body
(the nginx documentation's example adds ``proxy_pass_request_body off; proxy_set_header
Content-Length "";``, which ingress-nginx does not write), leaving the mirror waiting for it.
Both are README divergences.

The main request's completion waits for its mirror subrequests in nginx (a background
subrequest still holds the request: a keep-alive client's next request waits for a slow
mirror). ingresslib does not model that: the mirror is sent on its own connection, and
nothing the mirror does (slow, down, answering anything) changes the client's response or its
connection (README divergence).

The mirror target is the Ingress author's: nothing a client sends chooses where the mirror goes
(the host and port come from the annotation; the client's request target only fills
``$request_uri`` in the path).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._goparse import trim_space
from ._headers import check_host_header

if TYPE_CHECKING:
    from ._proxy_ssl import UpstreamTLS

__all__ = ["MIRROR_ANNOTATIONS", "MIRROR_BODY_LIMIT", "MIRROR_COPIES_LIMIT", "Mirror",
           "MirrorTarget", "MirrorCopy", "MirrorBudget", "parse_mirror", "mirror_request",
           "begin_mirror", "budget_of", "drop_copy"]

MIRROR_ANNOTATIONS = ("mirror-target", "mirror-request-body", "mirror-host")

#: The most body bytes kept for one mirror request: past it the request is not mirrored (nginx
#: stores a body of any size in a temporary file; a copy in memory needs a bound, also when
#: proxy-body-size allows more or is 0).
MIRROR_BODY_LIMIT = 16 * 1024 * 1024
#: The most body bytes all the mirror copies of one ``Proxy`` (a server) keep at once while
#: their requests' bodies are read: past it a request is not mirrored. Without it, N clients
#: each sending a large body slowly held N x ``MIRROR_BODY_LIMIT`` (the body itself streams to
#: the backend, held no longer than ``_HOLD_LIMIT``; only the mirror's copy grew), where nginx
#: writes the bodies to temporary files. Read when a Proxy's first copy starts.
MIRROR_COPIES_LIMIT = 128 * 1024 * 1024

# validators.go: alphaNumericChars = `\-\.\_\~a-zA-Z0-9\/:`, regexEnabledChars =
# QuoteMeta(`^$[](){}*+?|&=\`); IsValidRegex = "^[/" + alphaNumericChars + regexEnabledChars +
# "]*$".
_VALID = re.compile(r"[/\-._~a-zA-Z0-9:^$\[\](){}*+?|&=\\]*")
_SCHEME = re.compile(r"(https?)://", re.IGNORECASE)
# nginx variable names (ngx_http_script_compile): letters, digits, "_"; or "${name}".
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST_NAME = re.compile(r"[A-Za-z0-9\-._~]+")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True, slots=True)
class Mirror:
    """Send ``data`` (a whole HTTP/1.1 request, ``Connection: close``) to ``endpoint`` (the
    mirror target's host -- a name to resolve or an IP address -- and port), over TLS when
    ``tls`` (no certificate check, as ingress-nginx's ``proxy_pass https://`` without
    proxy-ssl-verify), then read the answer and discard it: connect within
    ``connect_timeout``, write within ``send_timeout``, at most ``read_timeout`` between two
    reads (the route's proxy-*-timeout). Fire and forget: nothing is reported back to the
    core, and nothing the mirror does may change the client's response. A driver that does not
    perform it (ignores the action) loses only the mirror."""

    endpoint: tuple[str, int]
    tls: bool
    data: bytes
    connect_timeout: float
    send_timeout: float
    read_timeout: float
    #: With ``tls``: the host's server-level ``proxy_ssl_*``, a proxy/_proxy_ssl.py
    #: ``UpstreamTLS`` (``mirror_tls``: nginx's mirror location inherits the server block's
    #: CA, verify, name, client certificate); None: none (no check, no SNI: nginx's default).
    tls_config: UpstreamTLS | None = None


@dataclass(frozen=True, slots=True)
class MirrorTarget:
    """A route's valid mirror: where to (``host``, ``port``, ``tls``), the path template
    (``uri``: the target's part after its authority, ``$request_uri`` kept; None: none),
    ``host_header`` (mirror-host) and whether the body goes too (mirror-request-body)."""

    tls: bool
    host: str
    port: int
    uri: str | None
    host_header: bytes
    request_body: bool = True
    #: The target as written (trimmed), for messages and the ASGI adapter's lookup.
    target: str = ""

    def request_target(self, request_uri: str, args: str | None) -> bytes:
        """The mirror request's target for a request whose target as received is
        ``request_uri`` and whose arguments (after any rewrite-target) are ``args``."""
        uri = self.uri
        if uri is None:
            # nginx: "/_mirror-<Ingress UID>" + "?args"; ingresslib has no UID: "/".
            uri = "/"
        elif "$" in uri:
            new = _VARIABLE.sub(lambda m: request_uri, uri)
            return ("/" + new if new.startswith("?") else new).encode("ascii")
        return (uri + "?" + args if args else uri).encode("ascii")


def _problem(what: str, value: str, why: str) -> str:
    return f"invalid {what} {value!r}: {why}"


def _parse_target(value: str) -> tuple[bool, str, int, str | None]:
    """``(tls, host, port, uri)`` of a mirror-target; ValueError when refused."""
    v = trim_space(value)   # Go's strings.TrimSpace: U+001C..U+001F stay (and are refused)
    if not v:
        raise ValueError("empty mirror-target: nothing is mirrored")
    if not _VALID.fullmatch(v):
        raise ValueError(_problem("mirror-target", value, "ingress-nginx's validator refuses "
                                  "it; nothing is mirrored"))
    m = _SCHEME.match(v)
    if m is None:
        raise ValueError(_problem("mirror-target", value, "not an http:// or https:// URL; "
                                  "nothing is mirrored"))
    tls = m.group(1).lower() == "https"
    rest = v[m.end():]
    end = len(rest)
    for stop in "/?$":
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority, uri = rest[:end], rest[end:]
    host, port = _authority(authority, 443 if tls else 80, value)
    for var in _VARIABLE.finditer(uri):
        name = var.group(1) if var.group(1) is not None else var.group(2)
        if name != "request_uri":
            raise ValueError(_problem(
                "mirror-target", value, f"the nginx variable {var.group(0)!r} is not "
                "supported by ingresslib (only $request_uri); nothing is mirrored"))
    if uri.startswith("?"):
        uri = "/" + uri  # ngx_http_proxy_eval: a URI starting with "?" gets a "/" in front
    return tls, host, port, uri or None


def _authority(authority: str, default_port: int, value: str) -> tuple[str, int]:
    host, port_s = authority, ""
    if authority.startswith("["):
        close = authority.find("]")
        host, after = authority[:close + 1], authority[close + 1:]
        if close < 0 or not _IPV6.fullmatch(host) or (after and not after.startswith(":")):
            raise ValueError(_problem("mirror-target", value, "not a valid host; nothing is "
                                      "mirrored"))
        port_s = after[1:] if after else ""
        host = host[1:-1]
        if after and not port_s:
            raise ValueError(_problem("mirror-target", value, "empty port; nothing is "
                                      "mirrored"))
    else:
        if ":" in authority:
            host, _, port_s = authority.partition(":")
            if not port_s:
                raise ValueError(_problem("mirror-target", value, "empty port; nothing is "
                                          "mirrored"))
        if not host or not _HOST_NAME.fullmatch(host):
            raise ValueError(_problem("mirror-target", value, "no valid host; nothing is "
                                      "mirrored"))
    port = default_port
    if port_s:
        if not _PORT.fullmatch(port_s) or not 0 < int(port_s) < 65536:
            raise ValueError(_problem("mirror-target", value, "invalid port; nothing is "
                                      "mirrored"))
        port = int(port_s)
    return host, port


def _parse_host(value: str) -> bytes:
    v = trim_space(value)   # Go's strings.TrimSpace: U+001C..U+001F stay (and are refused)
    if not v:
        raise ValueError("empty mirror-host")
    if not _VALID.fullmatch(v):
        raise ValueError(_problem("mirror-host", value, "ingress-nginx's validator refuses it"))
    if "$" in v:
        raise ValueError(_problem("mirror-host", value, 'nginx variables ("$...") are not '
                                  "supported by ingresslib"))
    raw = v.encode("ascii")
    try:
        check_host_header(raw)
    except Exception as e:  # RemoteProxyError: no Host a mirror could be sent
        raise ValueError(_problem("mirror-host", value, "not a valid Host")) from e
    return raw


def parse_mirror(annotations: Mapping[str, str], prefix: str,
                 warn: Callable[[str, str], None]) -> MirrorTarget | None:
    """The route's mirror, or None (no ``mirror-target``, or an invalid one: ``warn(key,
    message)`` says so). An invalid ``mirror-host`` or ``mirror-request-body`` is warned about
    and its default used, as ingress-nginx does ("contains invalid value, defaulting")."""
    body_raw = annotations.get(prefix + "mirror-request-body")
    body = True
    if body_raw is not None:
        if body_raw.replace(" ", "") not in ("on", "off"):
            warn(prefix + "mirror-request-body",
                 _problem("mirror-request-body", body_raw, 'must be "on" or "off"; using the '
                          "default on"))
        else:
            # mirror/main.go: "if err != nil || config.RequestBody != "off" { ... = "on" }",
            # the value as GetStringAnnotation returns it: "o ff" passes the validator (spaces
            # removed) and is "on"; one the validator refuses is an error, "on" (as warned).
            # A value it takes holds letters and spaces only: normalizeString trims the spaces.
            body = body_raw.strip(" ") != "off"
    raw = annotations.get(prefix + "mirror-target")
    host_raw = annotations.get(prefix + "mirror-host")
    if raw is None:
        if host_raw is not None or body_raw is not None:
            key = prefix + ("mirror-host" if host_raw is not None else "mirror-request-body")
            warn(key, "has no effect without mirror-target: nothing is mirrored")
        return None
    try:
        tls, host, port, uri = _parse_target(raw)
    except ValueError as e:
        warn(prefix + "mirror-target", str(e))
        return None
    # The default Host: the target's host name, no port (url.Hostname()); an IPv6 address in
    # brackets, as a Host header spells it.
    header = (f"[{host}]" if ":" in host else host).encode("ascii")
    if host_raw is not None:
        try:
            header = _parse_host(host_raw)
        except ValueError as e:
            warn(prefix + "mirror-host", f"{e}; using the target's host {header.decode()}")
    return MirrorTarget(tls=tls, host=host, port=port, uri=uri, host_header=header,
                        request_body=body, target=raw.strip())


#: Lines of the upstream head the mirror request does not take over (its own are written).
_DROPPED = (b"host:", b"content-length:", b"transfer-encoding:", b"connection:", b"upgrade:")


def mirror_request(mirror: MirrorTarget, up_head: bytes, request_uri: str,
                   upstream_target: bytes, body: bytes | None) -> bytes:
    """The mirror request's bytes: ``up_head`` (the upstream request head, as the backend gets
    it) with the mirror's target (``MirrorTarget.request_target``; the arguments are those
    of ``upstream_target``), Host and ``Connection: close``, then ``body`` with its
    Content-Length (None: no body, no framing header)."""
    line_end = up_head.find(b"\r\n")
    method = up_head[:up_head.find(b" ")]
    _, q, args = upstream_target.partition(b"?")
    target = mirror.request_target(request_uri, args.decode("ascii") if q else None)
    out = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, target, mirror.host_header)]
    for line in up_head[line_end + 2:].split(b"\r\n"):
        if line and not line[:20].lower().startswith(_DROPPED):
            out.append(line + b"\r\n")
    if body is not None:
        out.append(b"content-length: %d\r\n" % len(body))
    out.append(b"connection: close\r\n\r\n")
    if body:
        out.append(body)
    return b"".join(out)


class MirrorBudget:
    """The body bytes the mirror copies of one ``Proxy`` keep (``held``), at most ``limit``
    (``MIRROR_COPIES_LIMIT``): a copy reserves its bytes as they come (``MirrorCopy.add``) and
    gives them back when its ``Mirror`` is built or it is dropped."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.held = 0
        self.limit = limit


def budget_of(proxy: object) -> MirrorBudget:
    """The ``MirrorBudget`` of ``proxy`` (one per Proxy: every connection of a server)."""
    budget = getattr(proxy, "_mirror_budget", None)
    if not isinstance(budget, MirrorBudget):
        budget = MirrorBudget(MIRROR_COPIES_LIMIT)
        setattr(proxy, "_mirror_budget", budget)
    return budget


class MirrorCopy:
    """A mirrored request whose body is still being read (``mirror-request-body: on``): the
    body bytes are kept (``add``) until the request is complete (``action``), or the request
    ends otherwise (``drop``: the client left, a 413, a close...)."""

    __slots__ = ("mirror", "up_head", "request_uri", "upstream_target", "timeouts", "parts",
                 "size", "limit", "budget", "kept", "tls_config")

    def __init__(self, mirror: MirrorTarget, up_head: bytes, request_uri: str,
                 upstream_target: bytes, timeouts: tuple[float, float, float],
                 limit: int, budget: MirrorBudget | None = None,
                 tls_config: UpstreamTLS | None = None) -> None:
        self.mirror = mirror
        self.tls_config = tls_config
        self.up_head = up_head
        self.request_uri = request_uri
        self.upstream_target = upstream_target
        self.timeouts = timeouts
        self.parts: list[bytes] | None = []
        self.size = 0
        self.limit = limit
        self.budget = budget
        #: The bytes of ``parts`` reserved in ``budget``.
        self.kept = 0

    def add(self, data: bytes) -> None:
        parts = self.parts
        if parts is not None:
            n = len(data)
            self.size += n
            budget = self.budget
            if self.size > self.limit or (budget is not None
                                          and budget.held + n > budget.limit):
                self.drop()  # too big to keep (alone, or with the server's other copies)
            else:
                parts.append(data)
                self.kept += n
                if budget is not None:
                    budget.held += n

    def drop(self) -> None:
        """Not mirrored: the bytes kept are let go (and their reservation)."""
        self.parts = None
        budget = self.budget
        if budget is not None and self.kept:
            budget.held = max(budget.held - self.kept, 0)
        self.kept = 0

    def __del__(self) -> None:
        # A driver that drops a connection without closing it (no ``abort``) must not keep
        # its reservation for ever.
        if self.kept:
            self.drop()

    def action(self, body: bool = True) -> Mirror | None:
        """The ``Mirror`` action (None: the body was too big to keep), once: the copy's
        bytes are then the action's (their reservation given back)."""
        parts = self.parts
        if parts is None:
            return None
        m = self.mirror
        data = mirror_request(m, self.up_head, self.request_uri, self.upstream_target,
                              b"".join(parts) if body else None)
        self.drop()
        c, s, r = self.timeouts
        return Mirror((m.host, m.port), m.tls, data, c, s, r, self.tls_config)


def drop_copy(pending: tuple[object, MirrorCopy] | None) -> None:
    """The connection's pending copy (``ClientConnection._mirror``) is no longer wanted."""
    if pending is not None:
        pending[1].drop()


def begin_mirror(mirror: MirrorTarget, up_head: bytes, request_uri: str,
                 upstream_target: bytes, timeouts: tuple[float, float, float],
                 body_size: int, has_body: bool, held: list[bytes],
                 complete: bool, budget: MirrorBudget | None = None,
                 tls_config: UpstreamTLS | None = None) -> Mirror | MirrorCopy | None:
    """Called once per routed request that passed its access phase (nginx's precontent
    phase): the ``Mirror`` to emit now (no body to wait for, or the whole body is in), or a
    ``MirrorCopy`` to feed the rest of the body to (``add``) and ask at the request's end
    (``action``). ``held``: the body bytes read so far (none was sent anywhere yet);
    ``complete``: the request's end was read too (a basic-auth check done off the loop let the
    body arrive first); ``budget``: the Proxy's (``budget_of``), bounding all its copies;
    ``tls_config``: ``Mirror.tls_config``."""
    copy = MirrorCopy(mirror, up_head, request_uri, upstream_target, timeouts,
                      min(body_size, MIRROR_BODY_LIMIT) if body_size else MIRROR_BODY_LIMIT,
                      budget, tls_config)
    if not (mirror.request_body and has_body):
        return copy.action(body=False)
    for part in held:
        copy.add(part)
    return copy.action() if complete else copy
