"""``explain``'s verdict: what the proxy answers one request, asked of the proxy core itself.

The request ``explain`` describes is written as an HTTP/1.1 head and fed to a sans-IO
``ClientConnection`` of a :class:`~ingresslib.proxy.Proxy` over the same router, from the
client address given (``--client-ip``). Its first answer is the verdict: ``OpenUpstream`` (the
request reaches an endpoint) or a local response (status, ``Location``, ``WWW-Authenticate``).
The phase order -- a denied location's 503, app-root and the location's redirects, the source
ranges (403), basic authentication (401), no ready endpoint (503) -- is therefore the proxy's
own (``ClientConnection._on_request`` with ``denied_first``, ``redirect_for``,
``access_answer``), not a copy that could drift from it. What the route's access control *is*
(its source ranges, basic-auth Secret, denial) is read from the options the proxy parsed
(``Proxy.options_for``, ``Proxy._unrouted_access``) and only described here.

The ssl-redirect of a host with TLS: ``serve`` redirects only with ``--tls-listen``, so by
default the verdict is that of a plain-HTTP ``serve``. Given ``tls_hosts`` and ``https_port``
(``explain --tls``), the proxy is configured as ``serve --tls-listen`` configures it: the hosts
the certificate store makes TLS hosts (``_tls.tls_hosts``, the store's own decision) and the
HTTPS listener's port, which the redirect's ``Location`` names.

A proxied request goes on through the same connection: the upstream connects and answers a bare
``200`` (``_through_upstream``), so that the head the endpoint gets (its Host, upstream-vhost's;
a default-backend Service's X-Code...) and the head the client gets (the CORS headers the
location adds) are the proxy's own, as are a local answer's (the CORS preflight's 204). The
``describe_*`` functions say the route's CORS, rate limits and response rewrites as the proxy
parsed them (``Proxy.options_for``).

An ``auth-url`` route's first upstream is its auth service (proxy/_extauth.py): that
subrequest connects and answers a bare ``200``, and the verdict is what the proxy does next;
the ``Mirror`` action of a ``mirror-target`` route is read as it goes out (``describe_ext_auth``,
``describe_mirror``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._iptext import host_port, network_text
from ._normalize import canonical_path, normalize_host, split_target
from .proxy._access import Access
from .proxy._actions import Mirror, OpenUpstream, SendDownstream, SendUpstream
from .proxy._connection import Proxy
from .proxy._digest import DigestAuth
from .proxy._header_sets import config_maps_of
from .proxy._headers import client_address
from .proxy._request_buffer import no_buffering
from .proxy._settings import ProxySettings

__all__ = ["ProxyAnswer", "ask_proxy", "describe_access", "describe_config_headers",
           "describe_location_extras", "describe_proxy_ssl",
           "describe_cors", "describe_custom_headers", "describe_ext_auth",
           "describe_limit_rate", "describe_mirror", "describe_rate_limit", "describe_rewrite",
           "describe_target_rewrite", "default_backend_headers", "is_preflight",
           "request_origin", "upstream_field", "upstream_vhost"]


@dataclass
class ProxyAnswer:
    """The proxy's answer to one request, and what it saw on the way."""

    #: 0: proxied to ``endpoint``; else the status the proxy answers itself.
    status: int
    endpoint: tuple[str, int] | None = None
    #: A redirect's ``Location``, a 401's ``WWW-Authenticate``.
    location: str | None = None
    challenge: str | None = None
    #: The client address the proxy's access checks see (``client_address``: the peer, or
    #: with trusted forwarded headers the rightmost untrusted address of the chain).
    client_ip: str | None = None
    #: The router was asked (the head passed the proxy's checks), and its Decision.
    routed: bool = False
    decision: Any = None
    #: The route's access control as the proxy parsed it (None: no restriction).
    access: Access | None = None
    #: ``BasicAuth.check`` of the request's Authorization (the proxy's verifier, its cached
    #: verdict): (0, user), (401, None), or (503, None) for a Secret it cannot use; None
    #: without basic authentication.
    basic: tuple[int, str | None] | None = None
    #: The request carried an Authorization header.
    has_authorization: bool = False
    #: The warnings the proxy logged for this request (the route's annotations, its Secret).
    warnings: list[str] = field(default_factory=list)
    #: The head of the answer the client gets, as ``(lower-case name, value)`` pairs: a local
    #: answer's own; for a proxied request, the proxy's head over an upstream's bare ``200``
    #: (``Content-Length: 0``, nothing else: what the proxy adds or replaces, CORS's headers).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    #: A proxied request's head as the proxy sends it to the endpoint (``(lower-case name,
    #: value)`` pairs: its Host, a default-backend's X-Code...); None: not proxied.
    upstream_headers: list[tuple[str, str]] | None = None
    #: The route's options as the proxy parsed them (``Proxy.options_for``: CORS, rate
    #: limits, upstream-vhost, rewrites); None: not routed to a rule.
    options: Any = None
    #: The proxy's settings (its ConfigMap's limit-req-status-code...).
    settings: ProxySettings | None = None
    #: The request's method, as sent.
    method: str = "GET"
    #: ``options`` are those of the server's ``location /`` (``Proxy._unrouted_options``): the
    #: request is for a known host, and no rule covers its path.
    server_location: bool = False
    #: The router's ConfigMaps (``config_maps_of``), which custom-headers and the ConfigMap's
    #: add-headers / proxy-set-headers name.
    config_maps: Any = None
    #: custom-http-errors: each listed status an upstream's answer to this request may have,
    #: and the endpoint the proxy then asks instead (the default-backend Service's; None: the
    #: upstream's answer passes), as the proxy did it with an upstream answering that status.
    intercepted: dict[int, tuple[str, int] | None] = field(default_factory=dict)
    #: auth-url: the subrequest the proxy sent its auth service before the backend (the
    #: ``OpenUpstream`` and the head of ``upstream_connected``), as ``{"endpoint", "tls",
    #: "request", "host"}``; None: not sent (no auth-url, or answered before it).
    auth_sent: dict[str, Any] | None = None
    #: The proxy's answer when the auth service answers 401 (``{"status", "location"}``: the
    #: auth-signin's 302, else the 401), asked of a proxy of its own; None: no auth step.
    auth_denied: dict[str, Any] | None = None
    #: mirror-target: the ``Mirror`` action the proxy emitted (``{"endpoint", "tls",
    #: "request", "host", "body"}``); None: none.
    mirror_sent: dict[str, Any] | None = None
    #: ``"basic"`` or ``"digest"``: the kind of the authentication ``basic`` is the verdict of
    #: (``auth-type``; ``DigestAuth`` is a ``BasicAuth``); None without one.
    auth_type: str | None = None
    #: A proxied request's ``OpenUpstream``: over TLS (``tls``) and its ``tls_config`` (the
    #: route's ``proxy-ssl-*`` as the driver connects with them).
    upstream_over_tls: bool = False
    upstream_tls: Any = None
    #: The request line the proxy sent the endpoint (``GET / HTTP/1.0`` with
    #: ``proxy-http-version: 1.0``); None: not proxied.
    upstream_request_line: str | None = None


class _Capture:
    """The router as the proxy sees it: it routes once, and explain keeps that Decision (one
    balancer pick, taken with the proxy's own arguments: canonical path, client address)."""

    def __init__(self, router: Any) -> None:
        self._router = router
        self.routed = False
        self.decision: Any = None

    def route(self, *args: Any, **kwargs: Any) -> Any:
        self.decision = self._router.route(*args, **kwargs)
        self.routed = True
        return self.decision

    def __getattr__(self, name: str) -> Any:  # table, resources, next_endpoint...
        return getattr(self._router, name)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _head(method: str, host: str, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """The request as a client sends it: HTTP/1.1 with ``Host``, HTTP/1.0 without one (a
    host-less ``/path``). ``-H Host`` lines are sent as curl sends them, each where it is,
    the last one's value being the routed ``host``: two of them are two lines (the proxy's
    "duplicate Host"), and an empty one is written as given (``Host:``, which the proxy
    refuses), not dropped: a request without Host is another request, routed to the
    host-less rules. Without one, the URL's ``host`` leads the headers, as curl puts it."""
    last = max((i for i, (name, _) in enumerate(headers) if name.lower() == "host"),
               default=None)
    has_host = bool(host) or last is not None
    lines = [f"{method} {target} HTTP/{'1.1' if has_host else '1.0'}"]
    if last is None and has_host:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {host if i == last else value}" for i, (name, value) in enumerate(headers)]
    # surrogateescape: the bytes of a command-line value that is not UTF-8 (Python reads
    # argv so), sent as curl sends them.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def ask_proxy(router: Any, settings: ProxySettings | None, *, method: str, host: str,
              target: str, headers: Sequence[tuple[str, str]], peer: str | None,
              tls: bool = False, tls_hosts: Callable[[str], bool] | Collection[str] = (),
              https_port: int = 443, client_auth: Callable[[str], Any] | None = None,
              client_cert: Any = None) -> ProxyAnswer | None:
    """Feed the request to a proxy over ``router`` from ``peer`` (None: a peer without an
    address, which every source range refuses) and return its answer; None when the head
    alone does not decide it (the proxy waits for more: never for a head without a body).
    ``tls`` asks over the HTTPS listener; ``tls_hosts`` and ``https_port`` are ``Proxy``'s (an
    HTTPS listener's: ``serve --tls-listen`` gives the store's ``has_tls`` and its port), as
    are ``client_auth`` (the store's ``auth-tls-*`` per host) and ``client_cert`` (what the
    handshake verified: ``Proxy.connection``'s).

    An ``auth-url`` route's first ``OpenUpstream`` is its auth subrequest (``conn._auth``):
    that one connects (``auth_sent``: where it goes, the head sent), answers a bare ``200``
    (an allowing answer), and the verdict is what the proxy does next (the backend, or its
    own answer: no ready endpoint's 503); ``auth_denied`` is the proxy's answer to the auth
    service's 401 instead (the auth-signin's 302, or the 401)."""
    collect = _Collect()
    logger = logging.Logger("ingresslib.explain")  # not the global tree: nothing is printed
    logger.addHandler(collect)
    capture = _Capture(router)
    proxy = Proxy(capture, settings, tls_hosts=tls_hosts, https_port=https_port, logger=logger,
                  records=False, clock=None, request_id=lambda: "0" * 32,
                  client_auth=client_auth)
    conn = proxy.connection(peer, tls=tls, now=0.0, client_cert=client_cert)
    answer = ProxyAnswer(status=0, warnings=collect.lines, method=method)
    head = _head(method, host, target, headers)
    acts = list(conn.receive_data(head, now=0.0))
    decided = False
    while acts and not decided:
        act = acts.pop(0)
        if isinstance(act, Mirror):
            answer.mirror_sent = _mirror_info(act)
        elif isinstance(act, OpenUpstream):
            if _is_auth_call(conn, act):
                sent, acts = _through_auth(conn, act, _UPSTREAM_OK)
                answer.auth_sent = sent
                if sent is not None:
                    answer.auth_denied = _auth_denied(
                        router, settings, head, peer=peer, tls=tls, tls_hosts=tls_hosts,
                        https_port=https_port, client_auth=client_auth,
                        client_cert=client_cert)
                continue
            answer.endpoint = act.endpoint
            answer.upstream_over_tls, answer.upstream_tls = act.tls, act.tls_config
            _through_upstream(conn, act.conn_id, answer)
            decided = True
        elif isinstance(act, SendDownstream):
            _read_response(act.data, answer)
            if 100 <= answer.status < 200:
                # An interim answer (``Expect: 100-continue``'s 100 Continue): the request
                # goes on, the verdict is what follows it.
                answer.status, answer.location, answer.challenge = 0, None, None
                answer.response_headers = []
                continue
            decided = True
    if not decided:
        return None
    answer.routed, answer.decision = capture.routed, capture.decision
    answer.settings = proxy.settings
    answer.config_maps = config_maps_of(router)
    if answer.routed and answer.decision is not None:
        answer.options = proxy.options_for(answer.decision.match)
    elif answer.routed and normalize_host(host):
        # A path no rule covers: its server's ``location /`` (the host's oldest Ingress's
        # annotations: CORS, limits, custom-headers), as the proxy's unrouted branch takes it.
        answer.options = proxy._unrouted_options(normalize_host(host) or "")
        answer.server_location = answer.options is not None
    if answer.routed:
        raw = [(n.lower().encode("latin-1", "replace"), v.encode("utf-8", "surrogateescape"))
               for n, v in headers]
        answer.client_ip = client_address(peer, proxy.settings, proxy._trust, raw)
        d = answer.decision
        if d is not None:
            answer.access = answer.options.access
        else:  # the access ``_unrouted_status`` checks for a request no rule routes
            answer.access = proxy._unrouted_access(normalize_host(host) or "")
        if answer.access is not None:
            auth = next((v for n, v in raw if n == b"authorization"), None)
            answer.basic = _basic_verdict(answer.access, auth)
            answer.auth_type = _auth_type(answer.access, auth)
            answer.has_authorization = auth is not None
    codes = getattr(answer.options, "custom_http_errors", ())
    if answer.status == 0 and answer.decision is not None and codes:
        head = _head(method, host, target, headers)
        for code in sorted(codes):
            answer.intercepted[code] = _intercept(router, settings, head, code, peer=peer,
                                                  tls=tls, tls_hosts=tls_hosts,
                                                  https_port=https_port,
                                                  client_auth=client_auth,
                                                  client_cert=client_cert)
    return answer


def _is_auth_call(conn: Any, act: OpenUpstream) -> bool:
    """``act`` opens the connection's auth-url subrequest (proxy/_extauth.py ``AuthCall``)."""
    call = getattr(conn, "_auth", None)
    return call is not None and getattr(call, "conn_id", None) == act.conn_id


def _through_auth(conn: Any, act: OpenUpstream, reply: bytes
                  ) -> tuple[dict[str, Any] | None, list[Any]]:
    """The auth subrequest ``act`` connects and answers ``reply``: what was sent (where, its
    request line and Host; None: nothing, the proxy answered on connecting, e.g. the 503 of
    an auth-proxy-set-headers ConfigMap not found), and the proxy's actions that follow."""
    sent = b""
    rest: list[Any] = []
    for a in conn.upstream_connected(act.conn_id, now=0.0):
        if isinstance(a, SendUpstream) and a.conn_id == act.conn_id:
            sent += a.data
        else:
            rest.append(a)
    if not sent:
        return None, rest
    first, fields = _head_fields(sent)
    info = {"endpoint": host_port(*act.endpoint), "tls": act.tls,
            "request": first.decode("latin-1").removesuffix(" HTTP/1.1"),
            "host": next((v for n, v in fields if n == "host"), None)}
    if _is_auth_call(conn, act):  # (still waiting for the auth answer)
        rest += conn.upstream_data(act.conn_id, reply, now=0.0)
    return info, rest


def _new_conn(router: Any, settings: ProxySettings | None, *, peer: str | None, tls: bool,
              tls_hosts: Callable[[str], bool] | Collection[str], https_port: int,
              client_auth: Callable[[str], Any] | None, client_cert: Any) -> Any:
    """A connection of a proxy of its own over ``router`` (nothing logged)."""
    logger = logging.Logger("ingresslib.explain")
    logger.addHandler(logging.NullHandler())
    proxy = Proxy(router, settings, tls_hosts=tls_hosts, https_port=https_port, logger=logger,
                  records=False, clock=None, request_id=lambda: "0" * 32,
                  client_auth=client_auth)
    return proxy.connection(peer, tls=tls, now=0.0, client_cert=client_cert)


def _auth_denied(router: Any, settings: ProxySettings | None, head: bytes, **conn: Any
                 ) -> dict[str, Any] | None:
    """The proxy's answer to ``head`` when its auth service answers ``401`` (nginx's
    auth_request: the 401 goes to the client, or auth-signin's ``error_page 401`` turns it
    into a 302): ``{"status", "location"}``, from a proxy of its own."""
    c = _new_conn(router, settings, **conn)
    acts = list(c.receive_data(head, now=0.0))
    for act in acts:
        if isinstance(act, OpenUpstream) and _is_auth_call(c, act):
            reply = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
            for a in _through_auth(c, act, reply)[1]:
                if isinstance(a, SendDownstream):
                    got = ProxyAnswer(status=0)
                    _read_response(a.data, got)
                    return {"status": got.status, "location": got.location}
            return None
    return None


def _mirror_info(act: Mirror) -> dict[str, Any]:
    """What a ``Mirror`` action sends: where, its request line and Host, with a body or
    not."""
    first, fields = _head_fields(act.data)
    return {"endpoint": host_port(*act.endpoint), "tls": act.tls,
            "request": first.decode("latin-1").removesuffix(" HTTP/1.1"),
            "host": next((v for n, v in fields if n == "host"), None),
            "body": any(n in ("content-length", "transfer-encoding") for n, _ in fields)}


def _intercept(router: Any, settings: ProxySettings | None, head: bytes, code: int, *,
               peer: str | None, tls: bool, tls_hosts: Callable[[str], bool] | Collection[str],
               https_port: int, client_auth: Callable[[str], Any] | None = None,
               client_cert: Any = None) -> tuple[str, int] | None:
    """The endpoint the proxy asks for the answer to ``head`` when its upstream answers
    ``code`` (custom-http-errors: the default-backend Service's), None when the upstream's
    answer passes: the same request through a proxy of its own, its upstream answering
    ``code`` with an empty body (past an auth-url's subrequest, answered ``200``)."""
    conn = _new_conn(router, settings, peer=peer, tls=tls, tls_hosts=tls_hosts,
                     https_port=https_port, client_auth=client_auth, client_cert=client_cert)
    acts = list(conn.receive_data(head, now=0.0))
    first = None
    while acts:
        act = acts.pop(0)
        if isinstance(act, OpenUpstream):
            if _is_auth_call(conn, act):
                acts = _through_auth(conn, act, _UPSTREAM_OK)[1]
                continue
            first = act
            break
    if first is None:
        return None
    list(conn.upstream_connected(first.conn_id, now=0.0))
    reply = f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode("ascii")
    again = next((a for a in conn.upstream_data(first.conn_id, reply, now=0.0)
                  if isinstance(a, OpenUpstream)), None)
    return None if again is None else again.endpoint


def _basic_verdict(access: Access, auth: bytes | None) -> tuple[int, str | None] | None:
    """``BasicAuth.check`` of ``auth`` by each basic authentication of ``access`` in
    ``access_answer``'s order (its own, then ``also``'s: ``combine_access``): the first that
    refuses, else the last success (its user); None without basic authentication."""
    verdict = None
    for part in (access, access.also):
        basic = part.basic if part is not None else None
        if basic is not None:
            verdict = basic.check(auth)
            if verdict[0]:
                break
    return verdict


def _auth_type(access: Access, auth: bytes | None) -> str | None:
    """``"digest"`` or ``"basic"``: the kind of the authentication whose verdict
    :func:`_basic_verdict` gives (the same walk)."""
    kind = None
    for part in (access, access.also):
        basic = part.basic if part is not None else None
        if basic is not None:
            kind = "digest" if isinstance(basic, DigestAuth) else "basic"
            if basic.check(auth)[0]:
                break
    return kind


#: What explain's upstream answers a proxied request with: a bare 200, so that the head the
#: client gets shows what the proxy itself puts there (CORS's headers replace an upstream's).
_UPSTREAM_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _through_upstream(conn: Any, conn_id: int, answer: ProxyAnswer) -> None:
    """The rest of a proxied request, through the same connection: the upstream connects
    (``upstream_connected``: the head the proxy sends the endpoint, ``upstream_headers``),
    then answers ``_UPSTREAM_OK`` (``upstream_data``: the head the client gets,
    ``response_headers``). Nothing else is read from them: the verdict stays the endpoint."""
    sent = b""
    for act in conn.upstream_connected(conn_id, now=0.0):
        if isinstance(act, SendUpstream) and act.conn_id == conn_id:
            sent += act.data
    if b"\r\n\r\n" in sent:
        first, answer.upstream_headers = _head_fields(sent)
        answer.upstream_request_line = first.decode("latin-1")
    got = b""
    for act in conn.upstream_data(conn_id, _UPSTREAM_OK, now=0.0):
        if isinstance(act, SendDownstream):
            got += act.data
    if b"\r\n\r\n" in got:
        answer.response_headers = _head_fields(got)[1]


def _head_fields(data: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """A message head's first line and its ``(lower-case name, value)`` fields (values
    trimmed, read as Latin-1: the bytes as they are)."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = []
    for line in head[1:]:
        name, _, value = line.partition(b":")
        fields.append((name.strip().lower().decode("latin-1"),
                       value.strip(b" \t").decode("latin-1")))
    return head[0], fields


def _read_response(data: bytes, answer: ProxyAnswer) -> None:
    first, fields = _head_fields(data)
    answer.status = int(first.split(b" ", 2)[1])
    answer.response_headers = fields
    for name, value in fields:
        if name == "location":
            answer.location = value
        elif name == "www-authenticate":
            answer.challenge = value


def _rules(rules: Sequence[tuple[int, int, bool]], version: int) -> list[dict[str, str]]:
    """``SourceRanges`` rules (integers: network, mask, deny) as CIDR text, written as the
    lists they come from are (``network_text``: a ConfigMap's ``::ffff:10.0.0.0/104`` stays an
    IPv6 rule, whose ``str()`` depends on the Python)."""
    net_type = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return [{"rule": "deny" if deny else "allow",
             "cidr": network_text(net_type((net, bin(mask).count("1"))))}
            for net, mask, deny in rules]


def describe_access(access: Access) -> dict[str, Any]:
    """The route's access control as the proxy holds it, JSON-ready: ``denied`` (why every
    request gets 503), ``source_ranges`` (nginx's ``allow``/``deny`` rules per address family,
    in the order they are checked: the first match decides, no match allows) and
    ``basic_auth`` (realm and Secret; never its users' hashes).

    ``also``, only when there is one: a second control the request must pass as well, in the
    same form, checked after the first's source ranges (its source ranges) and after the
    first's basic authentication (its basic authentication). ``combine_access`` makes it for
    a host's path no rule covers, served by another Ingress's ``defaultBackend``: the host's
    own Ingress's control (the server's ``location /``) and the default backend's."""
    out: dict[str, Any] = {"denied": access.denied, "source_ranges": None, "basic_auth": None}
    ranges = access.ranges
    if ranges is not None and (ranges.v4 or ranges.v6):
        out["source_ranges"] = {"ipv4": _rules(ranges.v4, 4), "ipv6": _rules(ranges.v6, 6)}
    basic = access.basic
    if basic is not None:
        out["basic_auth"] = {"realm": basic.realm, "secret": f"{basic.namespace}/{basic.name}",
                             "secret_type": "auth-map" if basic.map_type else "auth-file",
                             # auth-type (proxy/_digest.py: a DigestAuth is a BasicAuth).
                             "type": "digest" if isinstance(basic, DigestAuth) else "basic"}
    # satisfy (proxy/_satisfy.py): "any" lets one passing check suffice.
    out["satisfy"] = "any" if getattr(access, "any", None) is not None else "all"
    if access.also is not None:
        out["also"] = describe_access(access.also)
    return out


#: The request headers a ``default-backend`` annotation's Service gets (proxy/_error_pages.py
#: ``SET_NAMES``), written as ingress-nginx's template names them.
_DEFAULT_BACKEND_NAMES = {"x-code": "X-Code", "x-format": "X-Format",
                          "x-namespace": "X-Namespace", "x-ingress-name": "X-Ingress-Name",
                          "x-service-name": "X-Service-Name", "x-service-port": "X-Service-Port"}

#: The CORS headers, written as nginx.tmpl's CORS block names them (proxy/_cors.py).
_CORS_NAMES = {n.lower(): n for n in (
    "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers", "Access-Control-Max-Age")}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def request_origin(headers: Sequence[tuple[str, str]]) -> str | None:
    """``$http_origin`` of the request: its Origin line's value, repeats joined by ``", "``
    (``http_header``, as the proxy reads it); None without one."""
    from ._route_state import http_header

    raw = [(n.strip(" \t").lower().encode("latin-1", "replace"),) * 2
           + (v.strip(" \t").encode("utf-8", "surrogateescape"),) for n, v in headers]
    return _text(http_header(raw, b"origin"))


def describe_cors(answer: ProxyAnswer, method: str, origin: str | None) -> dict[str, Any] | None:
    """``cors``: the route's CORS (``enable-cors``, as the proxy parsed it) and what this
    request gets from it: ``headers``, the ``Access-Control-*`` headers of the proxy's answer
    (read from the head it writes; ``{}``: none, the Origin is not allowed or the answer is
    not the location's), ``preflight`` (answered 204 by the location itself). None: the
    route has no CORS."""
    opts = answer.options
    cors = getattr(opts, "cors", None)
    if cors is None:
        return None
    headers = {_CORS_NAMES[n]: v for n, v in answer.response_headers if n in _CORS_NAMES}
    return {
        "allow_origin": list(cors.origins), "allow_methods": cors.allow_methods,
        "allow_headers": cors.allow_headers, "allow_credentials": cors.allow_credentials,
        "expose_headers": cors.expose_headers, "max_age": cors.max_age,
        "origin": origin, "preflight": is_preflight(answer, method), "headers": headers,
    }


def is_preflight(answer: ProxyAnswer, method: str) -> bool:
    """The proxy answered this request with the CORS preflight's 204 (nginx.tmpl's
    ``$cors = "trueoptions"``: an OPTIONS request whose Origin the location allows)."""
    from .proxy._cors import PREFLIGHT_STATUS

    return (method == "OPTIONS" and answer.status == PREFLIGHT_STATUS
            and getattr(answer.options, "cors", None) is not None
            and any(n in _CORS_NAMES for n, _ in answer.response_headers))


def describe_rate_limit(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``rate_limit``: the route's Ingress's limits as the proxy parsed them (one set of zones
    per Ingress, all its paths and hosts), the statuses past them (the ConfigMap's
    ``limit-req-status-code``/``limit-conn-status-code``), the allowlist and whether the
    client (``client_ip``: the address the proxy keys the zones on) is in it: ``limited``
    False for an allowlisted client, None when no address was given and an allowlist
    decides. One request: the limits are said, not simulated. None: no limit."""
    if answer.server_location:
        from .proxy._actions import unrouted_limit

        # The limits the proxy's unrouted branch applies (none on a denied location).
        limit = unrouted_limit(answer.options)
    else:
        limit = getattr(answer.options, "rate_limit", None)
    if limit is None:
        return None
    settings = answer.settings if answer.settings is not None else ProxySettings()
    client = answer.client_ip
    allowlisted: bool | None
    if client is None:
        allowlisted = None if limit.allowlist else False
    else:
        allowlisted = limit.exempt(client)
    m = limit.burst_multiplier
    return {
        # The zones' Ingress (``RateLimit.zone``: "Ingress NS/NAME").
        "ingress": limit.zone.removeprefix("Ingress "), "rps": limit.rps, "rpm": limit.rpm, "burst_multiplier": m,
        "rps_burst": limit.rps * m, "rpm_burst": limit.rpm * m,
        "connections": limit.connections, "allowlist": list(limit.allowlist),
        "client_ip": client, "client_allowlisted": allowlisted,
        "limited": None if allowlisted is None else not allowlisted,
        "status_rate": settings.limit_req_status_code,
        "status_connections": settings.limit_conn_status_code,
    }


def describe_rewrite(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``response_rewrite``: ``proxy-redirect-from/to`` (``proxy_redirect``: the Location's
    and Refresh's prefix), ``proxy-cookie-domain`` and ``proxy-cookie-path`` (Set-Cookie's
    attributes), each ``{"from", "to"}`` or None, as the proxy parsed them. None: none set."""
    rw = getattr(answer.options, "response_rewrite", None)
    if not rw:
        return None

    def pair(p: tuple[bytes, bytes] | None) -> dict[str, str] | None:
        return None if p is None else {"from": p[0].decode("ascii"), "to": p[1].decode("ascii")}

    return {"proxy_redirect": pair(rw.redirect), "proxy_cookie_domain": pair(rw.cookie_domain),
            "proxy_cookie_path": pair(rw.cookie_path)}


def describe_target_rewrite(answer: ProxyAnswer, target: str) -> dict[str, Any] | None:
    """``rewrite``: what a ``rewrite-target`` route's backend receives for the request
    ``target`` (as sent: path and query), computed with the proxy's own
    ``RouteOptions.rewrite_uri`` (the call ``ClientConnection`` makes on the canonical path,
    the query and the target as received), so that it holds without a ready endpoint too,
    where the core sends nothing. ``{"target", "applies", "redirect", "upstream_uri",
    "sent"}``, and ``x_forwarded_prefix`` when set and sent (the rewrite applies).
    ``applies`` False: the rule regex does not match the path, and nginx's ``rewrite`` does
    nothing (the path goes up unchanged);
    ``redirect``: a URL target, whose 302 is the verdict's Location (``upstream_uri`` None
    when it applies); ``sent``: the core did send the request (its request line carries
    ``upstream_uri``). None: no rewrite-target (or one ingress-nginx drops: the rule path
    itself)."""
    opts = answer.options
    if opts is None or answer.server_location or getattr(opts, "rewrite_target", None) is None:
        return None
    path, query = split_target(target)
    canon = canonical_path(path)
    out: dict[str, Any] = {"target": opts.rewrite_target, "applies": None,
                           "redirect": opts.rewrite_is_redirect, "upstream_uri": None,
                           "sent": answer.upstream_request_line is not None}
    try:
        out["applies"] = opts.rewrite_applies(canon)
        if not (out["redirect"] and out["applies"]):
            out["upstream_uri"] = opts.rewrite_uri(canon, query, target)
    except TimeoutError:  # REWRITE_TIMEOUT: PCRE's match limit; the proxy answers 500
        out["timeout"] = True
    if opts.x_forwarded_prefix is not None and out["applies"] and not out["redirect"]:
        # Sent with a rewrite that applies (``ClientConnection``'s upstream head): not from
        # the exact twin ``= /foo`` of a Prefix ``/foo`` rewritten to ``/foo``, whose
        # buildProxyPass is the bare proxy_pass (x56 s36).
        out["x_forwarded_prefix"] = opts.x_forwarded_prefix
    return out


def upstream_vhost(answer: ProxyAnswer) -> str | None:
    """The route's ``upstream-vhost`` as the proxy parsed it (None: unset or refused)."""
    return _text(getattr(answer.options, "upstream_vhost", None))


def upstream_field(answer: ProxyAnswer, name: str) -> str | None:
    """A field of the head the proxy sent the endpoint (None: not proxied, or absent)."""
    return next((v for n, v in answer.upstream_headers or () if n == name), None)


def default_backend_headers(answer: ProxyAnswer) -> dict[str, str]:
    """The ingress-nginx headers a ``default-backend`` annotation's Service got in the head
    the proxy sent it (X-Code, X-Format...), by name."""
    return {_DEFAULT_BACKEND_NAMES[n]: v for n, v in answer.upstream_headers or ()
            if n in _DEFAULT_BACKEND_NAMES}


def _seen(pairs: Sequence[tuple[bytes, bytes]], fields: Sequence[tuple[str, str]] | None
          ) -> dict[str, str]:
    """The fields of ``fields`` (a head the proxy wrote) whose names ``pairs`` set, by the
    name as the ConfigMap writes it: what the proxy put there, read from its own head."""
    names = {n.decode("latin-1").lower(): n.decode("latin-1") for n, _ in pairs}
    return {names[n]: v for n, v in fields or () if n in names}


def describe_custom_headers(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``custom_headers``: the location's ``custom-headers`` ConfigMap (``ns/name``) and the
    headers of it on the proxy's answer (read from the head it wrote: ``{}`` for a missing or
    invalid ConfigMap, or an answer that is not the location's). None: no custom-headers."""
    custom = getattr(answer.options, "custom_headers", None)
    if custom is None:
        return None
    pairs = custom.headers(answer.config_maps, lambda _: None)
    return {"config_map": custom.ref, "headers": _seen(pairs, answer.response_headers)}


def describe_config_headers(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``config_headers``: the controller ConfigMap's ``add-headers`` (its ConfigMap and the
    headers of it on the proxy's answer), ``proxy-set-headers`` (its ConfigMap and the headers
    of it in the head sent upstream; None when not proxied) and ``hide-headers`` (the names
    dropped from an upstream's answer), each only when set. None: none of them set."""
    from .proxy._header_sets import add_headers_for, set_headers_for

    s = answer.settings
    if s is None or not (s.add_headers or s.proxy_set_headers or s.hide_headers):
        return None
    out: dict[str, Any] = {}
    if s.add_headers:
        pairs = add_headers_for(s.add_headers).headers(answer.config_maps, lambda _: None)
        out["add_headers"] = {"config_map": s.add_headers,
                              "headers": _seen(pairs, answer.response_headers)}
    if s.proxy_set_headers:
        pairs = set_headers_for(s.proxy_set_headers).headers(answer.config_maps,
                                                             lambda _: None)
        out["proxy_set_headers"] = {
            "config_map": s.proxy_set_headers,
            "headers": None if answer.upstream_headers is None
            else _seen(pairs, answer.upstream_headers)}
    if s.hide_headers:
        out["hide_headers"] = list(s.hide_headers)
    return out


def describe_ext_auth(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``ext_auth``: the route's ``auth-url`` as the proxy parsed it (``RouteOptions.ext_auth``)
    and what the proxy did with this request: ``sent`` (the subrequest it sent its auth
    service first, ``{"endpoint", "tls", "request", "host"}``; None: the request was answered
    before it, or not routed), ``on_401`` (the proxy's answer when the auth service answers
    401: auth-signin's 302 and its Location, else the 401), ``response_headers`` (copied
    from an allowing auth answer into the request proxied), ``signin``, ``always_set_cookie``,
    ``cache`` (auth-cache-key: ``{"key", "durations"}``; absent without), ``keepalive``
    (auth-keepalive: ``{"connections", "requests", "timeout"}``; absent without). None: no
    auth-url."""
    ext = getattr(answer.options, "ext_auth", None)
    if ext is None:
        return None
    out = {"url": ext.url, "method": (ext.method or b"GET").decode("ascii"),
           "sent": answer.auth_sent, "on_401": answer.auth_denied,
           "response_headers": list(ext.response_headers), "signin": ext.signin,
           "always_set_cookie": ext.always_set_cookie}
    cache = getattr(ext, "cache", None)
    if cache is not None:
        # auth-cache-key / auth-cache-duration (proxy/_authcache.py): an answer cached for
        # its status's time is reused without a subrequest (explain's proxy starts empty).
        out["cache"] = {"key": cache.key, "durations": list(cache.durations)}
    ka = getattr(ext, "keepalive", None)
    if ka is not None:
        # auth-keepalive* (proxy/_authkeepalive.py): the subrequest's connection pooled.
        out["keepalive"] = {"connections": ka.connections, "requests": ka.requests,
                            "timeout": ka.timeout}
    if ext.proxy_set_headers is not None:
        from .proxy._header_sets import set_headers_for

        # auth-proxy-set-headers: its ConfigMap as the proxy resolves it on connecting
        # (``auth_connected``: not found denies the location, 503).
        problem = set_headers_for(ext.proxy_set_headers).resolve(answer.config_maps)[1]
        out["proxy_set_headers"] = {"config_map": ext.proxy_set_headers, "problem": problem}
    return out


def describe_mirror(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``mirror``: the route's ``mirror-target`` (``RouteOptions.mirror``) and the copy the
    proxy sent for this request (its ``Mirror`` action: ``{"endpoint", "tls", "request",
    "host", "body"}``; None: none sent, the request was answered before the precontent
    phase). None: not mirrored."""
    m = getattr(answer.options, "mirror", None)
    if m is None:
        return None
    return {"target": m.target, "host": m.host_header.decode("latin-1"),
            "request_body": m.request_body, "sent": answer.mirror_sent}


def describe_limit_rate(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``limit_rate``: ``limit-rate`` / ``limit-rate-after`` as the proxy parsed them
    (``RouteOptions.limit_rate`` / ``limit_rate_after``, bytes: the annotation's or the
    ConfigMap's kilobytes), the bandwidth of each proxied response of the route (not the
    proxy's own answers, nor a custom-http-errors page). None: no limit."""
    rate = getattr(answer.options, "limit_rate", 0)
    if not rate or answer.server_location:
        return None
    return {"bytes_per_second": rate,
            "after_bytes": getattr(answer.options, "limit_rate_after", 0),
            "applies": answer.status == 0}


def describe_proxy_ssl(answer: ProxyAnswer) -> dict[str, Any] | None:
    """``proxy_ssl``: the route's ``proxy-ssl-*`` (``RouteOptions.proxy_ssl``) as the core
    opens the upstream with them: for a proxied request the ``OpenUpstream``'s ``tls`` and
    ``tls_config`` (``sent``: the driver connects with exactly these), else what
    ``ProxySSL.config`` gives now. ``usable`` False with ``problem``: the Secret (or the
    reference) cannot be used and the location answers 503. Never the key or the PEMs: only
    whether a CA and a client certificate are given. None: no ``proxy-ssl-secret``."""
    ps = getattr(answer.options, "proxy_ssl", None)
    if ps is None or answer.server_location:
        return None
    values = ps.values
    config, problem = ps.config()
    sent = answer.endpoint is not None and answer.upstream_tls is not None
    tls = answer.upstream_tls if sent else config
    out: dict[str, Any] = {
        "secret": None if values is None else f"{values.namespace}/{values.name}",
        # The host's server-level proxy_ssl_* (its first Ingress with a ca.crt), inherited
        # where the route writes none (proxy/_proxy_ssl.py ServerProxySSL).
        "server_secret": ps.server_secret(),
        "usable": problem is None, "problem": problem, "sent": sent,
        "upstream_tls": answer.upstream_over_tls if answer.endpoint is not None else None}
    if tls is not None:
        out.update(verify=tls.verify, ca=tls.ca is not None,
                   client_certificate=tls.cert is not None, name=tls.server_name,
                   sni=tls.server_name if tls.sni else None, protocols=list(tls.protocols),
                   ciphers=tls.ciphers, verify_depth=tls.depth)
    return out


def describe_location_extras(answer: ProxyAnswer) -> dict[str, Any]:
    """The small per-location annotations (proxy/_location_extras.py) that differ from their
    defaults, each from the core's answer: ``proxy_http_version`` (the request line the proxy
    sent), ``connection_proxy_header`` (the Connection header it sent upstream),
    ``access_log`` (False: ``enable-access-log: "false"``, the request record's
    ``access_log``: no access-log line, the metrics still count it),
    ``use_port_in_redirects`` (True: the ssl-redirect's Location names the https port, 443
    included: the verdict's ``location`` is the proxy's own), ``proxy_buffer_size`` (the
    response head's limit, bytes, when not 4096), ``proxy_buffering`` (``read_ahead``:
    the bytes of a response read ahead of the client, with ``proxy-buffering: "on"``) and
    ``proxy_request_buffering`` (``"on"``: the body read whole first; ``"off"``: given, nginx's,
    no retry once a body still arriving went upstream; absent: ingresslib's default, streamed
    and a body up to 1 MiB replayed)."""
    opts = answer.options
    out: dict[str, Any] = {}
    if opts is None or answer.server_location:
        return out
    sent = answer.upstream_request_line is not None
    version = getattr(opts, "http_version", "1.1")
    if version != "1.1":
        out["proxy_http_version"] = {
            "version": version,
            "request_line": answer.upstream_request_line if sent else None}
    header = getattr(opts, "connection_header", None)
    if header is not None:
        got = next((v for n, v in answer.upstream_headers or () if n == "connection"), None)
        out["connection_proxy_header"] = {"value": header.decode("latin-1"),
                                          "sent": got if sent else None}
    if not getattr(opts, "access_log", True):
        out["access_log"] = False
    if getattr(opts, "port_in_redirects", False):
        out["use_port_in_redirects"] = True
    # proxy/_response_buffer.py: proxy-buffer-size (the upstream response head's limit) and
    # proxy-buffering's read-ahead, when not the defaults.
    head_limit = getattr(opts, "proxy_buffer_size", 4096)
    if head_limit != 4096:
        out["proxy_buffer_size"] = head_limit
    ahead = getattr(opts, "response_buffer", 0)
    if ahead:
        out["proxy_buffering"] = {"read_ahead": ahead}
    # proxy/_request_buffer.py: "on", or a given "off" (not when the location mirrors the
    # body: nginx's mirror reads it whole first, ``no_buffering``).
    if getattr(opts, "request_buffering", False):
        out["proxy_request_buffering"] = "on"
    elif getattr(opts, "request_buffering_off", False) and no_buffering(opts):
        out["proxy_request_buffering"] = "off"
    return out
