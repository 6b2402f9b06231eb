"""Who may reach a route: source ranges (allow/deny lists), and locations denied because an
access-control annotation cannot be enforced here. Shared by the proxy core and ``IngressASGI``.

ingress-nginx writes, in each ``location`` it allows (nginx.tmpl), the Ingress's
``denylist-source-range`` as ``deny`` lines, then its ``allowlist-source-range`` (alias
``whitelist-source-range``) as ``allow`` lines followed by ``deny all;``; a location whose
annotations could not be applied (``ing_errors.LocationDenied``: an invalid source range, an
auth Secret that does not exist...) gets only "# Location denied. Reason: ... return 503;".
nginx's access module (``ngx_http_access_module``) then checks the rules in order against the
client address ($remote_addr after the realip module: our ``client_address``), the first match
deciding (``deny`` -> 403); an IPv4-mapped IPv6 address is checked against the IPv4 rules when
there are any ("if (alcf->rules && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) { ... return
ngx_http_access_inet(r, alcf, htonl(addr)); }").

The ConfigMap's ``block-cidrs`` (nginx.tmpl: "# Global filters {{ range $ip := $cfg.BlockCIDRs
}}deny {{ trimSpace $ip }};") is checked first, for every route: in nginx a location with its
own allow/deny lines does not inherit the http-level ones, so an Ingress with an allowlist
would let a blocked address in; ingresslib keeps the global block there too (it fails closed).

Snippet annotations: ingress-nginx >= 1.12 defaults to ``allow-snippet-annotations: false``
and ``annotations-risk-level: High`` (config.go ``NewDefault``: "AllowSnippetAnnotations:
false, ... AnnotationsRiskLevel: "High""); the snippets are Critical-risk annotations, so
annotations.go ``Extract`` fails the whole Ingress ("if err :=
annotationParser.Validate(ing.GetAnnotations()); err != nil { return nil,
errors.NewRiskyAnnotations(name) }") and its admission webhook refuses it ("Snippet directives
are disabled by the Ingress administrator"). ingresslib answers 503 on that Ingress's routes
instead (``route_access``): it fails closed on exactly its paths, where leaving the Ingress out
would hand them to another rule or the default backend.

Everything here is decided when a table's options are parsed; per request the proxy tests one
attribute (``RouteOptions.access is None``) on routes without access control.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._iptext import network_text
from .._models import GO_SPACE
from .._table import _is_canary_value
from ._basicauth import BasicAuth, basic_auth_config
from ._digest import DigestAuth, digest_without_realm
from ._satisfy import SATISFY, SatisfyAny, parse_satisfy

if TYPE_CHECKING:
    from ._annotations import RouteWarning
    from ._settings import ProxySettings

__all__ = ["Access", "SourceRanges", "build_access", "canary_ignored", "combine_access",
           "parse_source_ranges", "route_access",
           "unenforced_access", "access_kind", "SOURCE_RANGE_ANNOTATIONS", "FORBIDDEN", "DENIED"]

#: nginx's ``deny`` answer (NGX_HTTP_FORBIDDEN).
FORBIDDEN = 403
#: A denied location's answer (nginx.tmpl "return 503;").
DENIED = 503

_V4_ALL = (1 << 32) - 1
_V6_ALL = (1 << 128) - 1
#: Verdicts remembered per Access object (client address -> status); cleared when full, so a
#: client sending many addresses (through a trusted hop) costs memory bounded by this.
_CACHE_MAX = 4096


def parse_source_ranges(value: str, *, annotation: bool = False) -> tuple[str, ...]:
    """A comma-separated list of CIDRs or addresses, as ingress-nginx reads it
    (internal/net/ipnet.go ``ParseIPNets``: each element trimmed, ``net.ParseCIDR`` then
    ``net.ParseIP``; any element that is neither fails the whole list). Returns the networks
    as strings (host bits cleared, as Go's ``ipnet.String()``); raises ValueError naming the
    first bad element. An empty value or an empty element (``"10.0.0.0/8,"``) is invalid too
    (neither parses in Go).

    With ``annotation`` (an Ingress's source-range annotation, read by Go), an IPv4-mapped IPv6
    element (``::ffff:10.0.0.1``, ``::ffff:10.0.0.0/104``) becomes the IPv4 address or network,
    as Go writes it: ``ip.String()`` is "dotted decimal ("192.0.2.1"), if
    ip is an IPv4 or IP4-mapped IPv6 address" and ``IPNet.String()`` goes through
    ``networkNumberAndMask`` ("if ip = n.IP.To4() ... case IPv6len: if len(ip) == IPv4len { m =
    m[12:] }", golang/go src/net/ip.go), so nginx.tmpl writes ``deny 10.0.0.0/8;``, an IPv4
    rule, which an IPv4 client meets; kept as IPv6 it would be checked against IPv6 clients
    only, and a denylisted IPv4 client would pass. (ParseCIDR masks the address first, "return
    ip, &IPNet{IP: ip.Mask(m), Mask: m}": under /96 the ``::ffff`` is cleared, no IPv4 form is
    left.)

    The ConfigMap's lists (``annotation`` False: ``block-cidrs``, ``whitelist-source-range``,
    ``denylist-source-range``, ``proxy-real-ip-cidr``) are written to nginx as given ("deny {{
    trimSpace $ip }};", "set_real_ip_from {{ $trusted_ip }};"), and nginx reads them
    (``_nginx_network``): such an element stays an IPv6 rule, ``010.0.0.1`` is 10.0.0.1.

    A netmask (``10.0.0.0/255.0.0.0``) is refused, as by Go's ParseCIDR and nginx's
    ``ngx_ptocidr`` (a decimal prefix only), and a zone (``fe80::1%eth0``)."""
    out: list[str] = []
    for raw in value.split(","):
        item = raw.strip(GO_SPACE)
        try:
            net = _go_network(item) if annotation else _nginx_network(item)
        except ValueError:
            raise ValueError(f"{raw.strip(' ')!r} is not a valid IP address or CIDR") from None
        out.append(network_text(net))
    return tuple(out)


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address_and_prefix(item: str) -> tuple[str, str | None]:
    """``ADDRESS[/PREFIX]``, the prefix decimal digits (Go's ``dtoi``, nginx's ``ngx_atoi``;
    ``ipaddress`` also reads netmasks and hostmasks), no zone (``%eth0``: in neither grammar,
    ``ipaddress`` may read it); ValueError otherwise."""
    address, slash, prefix = item.partition("/")
    if not address or "%" in address or (
            slash and not (prefix.isascii() and prefix.isdigit())):
        raise ValueError(item)
    return address, prefix if slash else None


def _go_network(item: str) -> _Network:
    """``item`` as ParseIPNets reads it and ``String()`` writes it back. Go's parsers refuse
    leading zeros as ``ipaddress`` does."""
    _address_and_prefix(item)
    net = ipaddress.ip_network(item, strict=False)
    if isinstance(net, ipaddress.IPv6Network):
        v4 = net.network_address.ipv4_mapped
        if v4 is not None:  # only when prefix >= 96: ::ffff survives the mask
            return ipaddress.IPv4Network((int(v4), net.prefixlen - 96))
    return net


def _nginx_network(item: str) -> _Network:
    """An ``allow``/``deny``/``set_real_ip_from`` parameter as nginx's ngx_ptocidr() reads it:
    the address by ngx_inet_addr(), else ngx_inet6_addr() (``_ngx_addr``: decimal octets,
    leading zeros and empty octets read, 255.255.255.255 (INADDR_NONE) no address), the
    prefix by ngx_atoi() ("if (shift > 32) return NGX_ERROR;", 128 for IPv6), host bits
    cleared ("low address bits of ... are meaningless", a warning). What Go writes
    (``_go_network``) reads back as itself."""
    from ._headers import _ngx_addr  # (_headers -> _settings -> this module)

    address, prefix = _address_and_prefix(item)
    text = _ngx_addr(address)
    if text is None:
        raise ValueError(address)
    return ipaddress.ip_network(text if prefix is None else f"{text}/{prefix}", strict=False)


def _rule_network(text: str) -> _Network:
    """A list's element, as ``parse_source_ranges`` returned it or as a ConfigMap (or
    ``ProxySettings``) gives it: as nginx reads its line; else as Go wrote it (only
    ``255.255.255.255``, INADDR_NONE to ngx_inet_addr, is Go's and not nginx's: geo's
    ngx_http_geo_cidr_value() and resty-ipmatcher read it)."""
    try:
        return _nginx_network(text)
    except ValueError:
        return _go_network(text)


#: How a list meets an IPv4-mapped IPv6 client (``::ffff:a.b.c.d``: a dual-stack listener's
#: peer, or a forwarded address), as the nginx code that reads the list does:
#: - ``"access"``: ngx_http_access_handler, the IPv4 rules when there are any ("if (alcf->rules
#:   && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))"), else the IPv6 ones;
#: - ``"v4"``: ngx_http_geo_cidr_variable (limit-allowlist's ``geo $remote_addr``), always the
#:   IPv4 tree ("if (IN6_IS_ADDR_V4MAPPED(inaddr6)) { ... ngx_radix32tree_find(ctx->u.trees.tree,
#:   inaddr)"), where only "default 0" may be;
#: - ``"v6"``: lua-resty-ipmatcher ``match`` (global-rate-limit-ignored-cidrs), which tries
#:   ``inet_pton(AF_INET, ip)`` first: that refuses the ``::ffff:a.b.c.d`` text, which is then
#:   matched as IPv6, against the IPv6 entries only.
MappedClient = Literal["access", "v4", "v6"]


class SourceRanges:
    """Ordered ``allow``/``deny`` rules per address family, nginx's access-module lists (and,
    with ``mapped``, the rate limits' lists: their rules all "deny", meaning "inside")."""

    __slots__ = ("v4", "v6", "mapped")

    def __init__(self, mapped: MappedClient = "access") -> None:
        #: (network, mask, deny) in order, as integers.
        self.v4: list[tuple[int, int, bool]] = []
        self.v6: list[tuple[int, int, bool]] = []
        self.mapped = mapped

    def add(self, cidrs: Iterable[str], deny: bool) -> None:
        for text in cidrs:
            net = _rule_network(text.strip(GO_SPACE))
            if net.version == 4:
                mask = (_V4_ALL << (32 - net.prefixlen)) & _V4_ALL
                self.v4.append((int(net.network_address), mask, deny))
            else:
                mask = (_V6_ALL << (128 - net.prefixlen)) & _V6_ALL
                self.v6.append((int(net.network_address), mask, deny))

    def deny_all(self) -> None:
        # nginx "deny all;" adds a rule to every family's list.
        self.v4.append((0, 0, True))
        self.v6.append((0, 0, True))

    def refuses(self, ip: str) -> bool:
        """True when the first matching rule denies ``ip`` (no match: allowed)."""
        rules, addr = self._rules_for(ip)
        if addr is None:
            # Not an address we can read (never from a socket or ``client_address``): only a
            # list that denies everything can decide; fail closed when it has any rule.
            return bool(self.v4 or self.v6)
        for net, mask, deny in rules:
            if addr & mask == net:
                return deny
        return False

    def _rules_for(self, ip: str) -> tuple[Sequence[tuple[int, int, bool]], int | None]:
        # ``ipaddress`` (the core imports no socket module); ``Access`` remembers verdicts,
        # so a client's address is parsed once, not per request.
        try:
            parsed = ipaddress.ip_address(ip.partition("%")[0])
        except ValueError:
            return (), None
        addr = int(parsed)
        if parsed.version == 4:
            return self.v4, addr
        if addr >> 32 == 0xFFFF and (  # ::ffff:a.b.c.d
                self.mapped == "v4" or (self.mapped == "access" and self.v4)):
            return self.v4, addr & _V4_ALL
        return self.v6, addr


class Access:
    """A route's access control: ``denied`` (a reason: every request gets 503), else the
    global ``block-cidrs``, the route's denylist and allowlist as ``SourceRanges``."""

    __slots__ = ("denied", "ranges", "basic", "also", "any", "_cache")

    def __init__(self, denied: str | None, ranges: SourceRanges | None,
                 basic: BasicAuth | None = None) -> None:
        self.denied = denied
        self.ranges = ranges
        #: ``auth-type: basic`` (proxy/_basicauth.py), checked after the ranges, as nginx's
        #: auth_basic runs after its access module.
        self.basic = basic
        #: A second location's control the request must pass as well (``combine_access``):
        #: its source ranges are part of ``status``, its basic auth is ``access_answer``'s.
        self.also: Access | None = None
        #: ``satisfy: any`` (proxy/_satisfy.py): the checks combine as nginx's ``satisfy any``
        #: (``any_step``); None: ``satisfy all``, every check above must pass.
        self.any: SatisfyAny | None = None
        self._cache: dict[str | None, int] = {}

    def status(self, client_ip: str | None) -> int:
        """0 when ``client_ip`` may reach the backend, else the status to answer: 503 for a
        denied location (an annotation, or a basic-auth Secret that cannot be used), 403 when
        a source range refuses the address. A request without an address (a Unix socket peer)
        is refused by any source range (fail closed)."""
        if self.denied is not None:
            return DENIED
        hit = self._cache.get(client_ip)
        if hit is None:
            hit = self._ranges_status(client_ip)
        if hit and (self.basic is not None or self.also is not None) and self.secret_denied():
            # ingress-nginx denies a location whose auth Secret it cannot read (auth/main.go:
            # "unexpected error reading secret", "does not contain a key with value auth":
            # LocationDenied), and nginx.tmpl writes "return 503;" in place of its allow/deny
            # lines: a refused address gets that 503 too, not the 403. (An admitted one gets
            # it from ``BasicAuth.check``.) Asked here, never cached: the Secret follows the
            # router's Secrets.
            return DENIED
        return hit

    def _ranges_status(self, client_ip: str | None) -> int:
        """The source ranges' verdict (0 or 403), this control's then ``also``'s, remembered
        per address."""
        ranges = self.ranges
        if ranges is None:
            verdict = 0
        elif client_ip is None:
            verdict = FORBIDDEN if (ranges.v4 or ranges.v6) else 0
        else:
            verdict = FORBIDDEN if ranges.refuses(client_ip) else 0
        if not verdict and self.also is not None:
            verdict = self.also._ranges_status(client_ip)
        cache = self._cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[client_ip] = verdict
        return verdict

    def secret_denied(self) -> bool:
        """A basic-auth Secret of this control (or of ``also``) cannot be used now: ingress-nginx
        would have denied the location. A check without credentials hashes nothing and
        answers 503 exactly then (``BasicAuth.check``)."""
        for part in (self, self.also):
            basic = part.basic if part is not None else None
            if basic is not None and basic.check(None)[0] == DENIED:
                return True
        return False

    def __repr__(self) -> str:
        if self.denied is not None:
            return f"Access(denied={self.denied!r})"
        r = self.ranges
        return f"Access(v4={len(r.v4) if r else 0} rules, v6={len(r.v6) if r else 0} rules)"


def combine_access(first: Access | None, second: Access | None) -> Access | None:
    """An Access a request passes only when it passes both ``first`` and ``second`` (fail
    closed): a denial of either, then ``first``'s source ranges, ``second``'s, then basic auth
    (``first``'s, and ``second``'s when both have one; ``basic`` is set whenever either has
    one, so that the credentials never reach the backend). The parts are not changed."""
    if first is None or second is first:
        return second
    if second is None:
        return first
    denied = first.denied if first.denied is not None else second.denied
    if denied is not None:
        return Access(denied, None)
    both = Access(None, first.ranges, first.basic if first.basic is not None else second.basic)
    second_basic = second.basic if first.basic is not None else None
    if second.ranges is not None or second_basic is not None:
        both.also = Access(None, second.ranges, second_basic)
    return both


def build_access(denied: str | None, block: Sequence[str], deny: Sequence[str],
                 allow: Sequence[str], basic: BasicAuth | None = None,
                 satisfy_any: bool = False) -> Access | None:
    """The Access of a route, or None when nothing restricts it (the usual case).
    ``satisfy_any``: ``satisfy: any`` (proxy/_satisfy.py)."""
    if denied is not None:
        return Access(denied, None)
    if not (block or deny or allow):
        return None if basic is None else _with_any(Access(None, None, basic), satisfy_any,
                                                    None, None)
    ranges = SourceRanges()
    ranges.add(block, deny=True)
    ranges.add(deny, deny=True)
    if allow:
        ranges.add(allow, deny=False)
        ranges.deny_all()
    access = Access(None, ranges, basic)
    if satisfy_any:
        own = SourceRanges() if deny or allow else None
        if own is not None:
            own.add(deny, deny=True)
            if allow:
                own.add(allow, deny=False)
                own.deny_all()
        blocked = None
        if block:
            blocked = SourceRanges()
            blocked.add(block, deny=True)
        _with_any(access, True, blocked, own)
    return access


def _with_any(access: Access, satisfy_any: bool, block: SourceRanges | None,
              own: SourceRanges | None) -> Access:
    if satisfy_any:
        access.any = SatisfyAny(block, own)
    return access


# -- annotations -------------------------------------------------------------------------------

#: The source-range annotations (ipallowlist/main.go: ``allowlist-source-range`` with the alias
#: ``whitelist-source-range``; ipdenylist/main.go: ``denylist-source-range``).
ALLOWLIST, WHITELIST, DENYLIST = ("allowlist-source-range", "whitelist-source-range",
                                  "denylist-source-range")
SOURCE_RANGE_ANNOTATIONS = frozenset({ALLOWLIST, WHITELIST, DENYLIST})
#: ``auth-type: basic`` and the annotations it reads (proxy/_basicauth.py).
BASIC_AUTH_ANNOTATIONS = frozenset({"auth-type", "auth-secret", "auth-secret-type",
                                    "auth-realm"})


_BASIC = "basic/digest authentication"
_EXTERNAL = "external authentication"
_CLIENT_CERT = "client certificate authentication"
#: ingress-nginx's access annotations (annotations.md "Authentication", "External
#: Authentication", "Client Certificate Authentication", "Satisfy") and what they do there; the
#: warning names it. Others are recognised by their prefix or suffix (``access_kind``).
_ACCESS_KINDS = {
    "auth-type": _BASIC, "auth-secret": _BASIC, "auth-secret-type": _BASIC,
    "auth-realm": _BASIC,
    "auth-url": _EXTERNAL, "auth-signin": _EXTERNAL, "auth-signin-redirect-param": _EXTERNAL,
    "auth-method": _EXTERNAL, "auth-response-headers": _EXTERNAL,
    "auth-proxy-set-headers": _EXTERNAL, "auth-request-redirect": _EXTERNAL,
    "auth-cache-key": _EXTERNAL, "auth-cache-duration": _EXTERNAL,
    "auth-always-set-cookie": _EXTERNAL, "auth-keepalive": _EXTERNAL,
    "auth-snippet": _EXTERNAL,
    "auth-tls-secret": _CLIENT_CERT, "auth-tls-verify-client": _CLIENT_CERT,
    "auth-tls-verify-depth": _CLIENT_CERT, "auth-tls-error-page": _CLIENT_CERT,
    "auth-tls-pass-certificate-to-upstream": _CLIENT_CERT, "auth-tls-match-cn": _CLIENT_CERT,
    "satisfy": "how the access checks combine",
    "configuration-snippet": "raw nginx configuration",
    "server-snippet": "raw nginx configuration",
}


def access_kind(name: str) -> str | None:
    """What ``name`` (without the prefix) does in ingress-nginx when it restricts who reaches
    the backend and ingresslib cannot enforce it, else None: basic/digest auth and its Secret
    (``auth-type``, ``auth-secret``, ``auth-realm``...), external auth (``auth-url``,
    ``auth-signin``...), client certificates (``auth-tls-*``), ``satisfy``, and every
    ``*-snippet`` (raw nginx configuration: ``configuration-snippet: "deny all;"`` is an
    access rule as much as anything). Those implemented (``auth-type: basic``, ``satisfy``:
    proxy/_satisfy.py...) are skipped by ``route_access``; on a canary each is named."""
    kind = _ACCESS_KINDS.get(name)
    if kind is not None:
        return kind
    if name.startswith("auth-tls-"):
        return _CLIENT_CERT
    if name.startswith("auth-"):
        return "authentication"
    if name.endswith("-snippet"):
        return "raw nginx configuration"
    return None


def _did_you_mean(name: str, prefix: str) -> str:
    """``"; did you mean <key>?"`` when ``name`` (without ``prefix``) is not an ingress-nginx
    annotation and one is close to it (``_annotations.did_you_mean``), else ``""``."""
    # Imported here: proxy/_annotations.py imports this module (route_access).
    from ._annotations import PREFIX, did_you_mean

    guess = did_you_mean(name)
    if guess is None:
        return ""
    return f"; did you mean {prefix}{guess[len(PREFIX):]}?"


def canary_ignored(annotations: Mapping[str, str], main_annotations: Mapping[str, str] | None,
                   where: str, key: str, what: str = "", tail: str = "") -> RouteWarning | None:
    """The one warning for an annotation ``key`` of a canary Ingress that is not read (a
    location option, ``parse_route_options``; an access annotation, ``route_access``): the
    main Ingress's ``what`` (``""``: its value; ``"access control "``) applies to canary
    traffic, then ``tail``. None when the main rule's annotations (``main_annotations``; None:
    not known) have the very same value: a canary copied from its main Ingress loses
    nothing, and a warning per copied annotation would be noise."""
    from ._annotations import RouteWarning

    if main_annotations is not None and main_annotations.get(key) == annotations[key]:
        return None
    return RouteWarning.annotation(
        where, key, "ignored on a canary Ingress (as in ingress-nginx: the main Ingress's "
        f"{what}applies to canary traffic){tail}")


def unenforced_access(name: str) -> bool:
    """``name`` (without the prefix) is an access annotation ingresslib cannot enforce
    (``access_kind``)."""
    return access_kind(name) is not None


def route_access(annotations: Mapping[str, str], prefix: str, settings: ProxySettings,
                 where: str, namespace: str | None = None,
                 secrets: Callable[[], Any] | None = None,
                 warn: Callable[[str], None] | None = None, *,
                 main_annotations: Mapping[str, str] | None = None
                 ) -> tuple[Access | None, list[RouteWarning]]:
    """The Access of a route whose Ingress has ``annotations``, and the warnings to give.

    Source ranges are read as ipallowlist/ipdenylist ``Parse`` read them: the annotation, else
    the ConfigMap's default (``whitelist_source_range`` / ``denylist_source_range``); the
    alias ``whitelist-source-range`` only when ``allowlist-source-range`` is unset or empty
    (parser/validators.go ``checkAnnotation``: "if annotationValue == "" { for _,
    annotationAlias := range fields[name].AnnotationAliases {"). An invalid list denies the
    location: "if err != nil && len(ips) == 0 { return &SourceRange{CIDR:
    defaultAllowlistSourceRange}, ing_errors.LocationDenied{Reason: fmt.Errorf("the annotation
    does not contain a valid IP address or network: %w", err)}" (ParseIPNets returns no
    address at all on an error, so any bad element denies). An empty value is refused too
    (ingresslib: an empty ``allowlist-source-range`` is an error there, an empty
    ``whitelist-source-range`` alone would be read as unset, i.e. open).

    A location ingress-nginx denies answers 503 (nginx.tmpl "# Location denied. Reason: {{
    $location.Denied | quote }} return 503;"); the first denial wins, as in
    annotations.go ``Extract`` ("_, alreadyDenied := data[DeniedKeyName]; if !alreadyDenied
    {...").

    A canary Ingress's access annotations are ignored with a warning: "when you mark an
    ingress as canary, then all the other non-canary annotations will be ignored (inherited
    from the corresponding main ingress)" (annotations.md), and the proxy applies the main
    rule's options to canary traffic as well. ``main_annotations``: for a canary, those of
    the main rule it joins (None: not known); an annotation with the main's very value is
    not named (a copied main Ingress changes nothing), as ``parse_route_options`` does for
    the location options. Each warning is a ``RouteWarning`` (its object is ``where``, its field
    the annotation's).
    """
    # Imported here: proxy/_annotations.py imports this module.
    from ._annotations import RouteWarning, annotation_field

    warnings: list[RouteWarning] = []
    canary = _is_canary_value(annotations.get(prefix + "canary"))
    denied: str | None = None

    def deny(reason: str) -> None:
        nonlocal denied
        if denied is None:
            denied = reason

    # auth-type: basic is implemented (proxy/_basicauth.py); its Secret is read by the proxy
    # (``secrets``: the router's current Secrets); ``check`` has none to give (None).
    basic: BasicAuth | None = None
    implemented: frozenset[str] = frozenset()
    auth_type = annotations.get(prefix + "auth-type")
    # auth-type: digest (proxy/_digest.py) reads the same annotations and Secret.
    digest_type = auth_type is not None and auth_type.strip() == "digest"
    basic_type = digest_type or (auth_type is not None and auth_type.strip() == "basic")
    if not canary and basic_type:
        implemented = BASIC_AUTH_ANNOTATIONS
        config, refusal, auth_warnings = basic_auth_config(annotations, prefix, namespace)
        warnings.extend(RouteWarning.annotation(where, key, w) for key, w in auth_warnings)
        if refusal is not None:
            # ``annotation KEY: ...`` or ``annotation KEY 'value': ...``: the annotation's
            # field; the message as for any other (``refusal.message``: after ``KEY: ``).
            suffix = ": the Ingress's routes answer 503 (ingress-nginx denies the location)"
            warnings.append(RouteWarning.on(where, f"{refusal}{suffix}", refusal.field,
                                            f"{refusal.message}{suffix}"))
            deny(str(refusal))
        elif digest_type and config is not None and not config[0]:
            reason, message = digest_without_realm(prefix)
            warnings.append(RouteWarning.annotation(where, prefix + "auth-type", message))
            deny(reason)
        elif config is not None and secrets is not None:
            basic = (DigestAuth if digest_type else BasicAuth)(*config, secrets, warn, where)
    # satisfy (proxy/_satisfy.py): read on a main Ingress; a canary's is ignored (below).
    satisfy_any = False
    if not canary:
        implemented = implemented | {SATISFY}
        satisfy_any = parse_satisfy(annotations, prefix, lambda key, message: warnings.append(
            RouteWarning.annotation(where, key, message)))

    for key in sorted(annotations):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        kind = access_kind(name)
        if kind is None or name in implemented:
            continue
        # A misspelt name (``auth-urll``) is classed by its shape and still fails closed (an
        # unknown auth-* name may restrict access: safer denied), but the warning names the
        # annotation it is likely meant to be: "not implemented" alone hides the typo.
        hint = _did_you_mean(name, prefix)
        if canary:
            # auth-type: basic and its Secret are implemented (on a main Ingress): "anyway"
            # would say otherwise.
            anyway = "" if (basic_type and name in BASIC_AUTH_ANNOTATIONS) \
                or name == SATISFY else ", and not implemented by ingresslib anyway"
            ignored = canary_ignored(annotations, main_annotations, where, key,
                                     "access control ", anyway + hint)
            if ignored is not None:
                warnings.append(ignored)
        elif settings.deny_unenforced_access_annotations:
            reason = (f"annotation {key} ({kind}) restricts access and is not implemented "
                      "by ingresslib")
            warnings.append(RouteWarning.on(
                where, f"{reason}: the Ingress's routes answer 503 (as ingress-nginx denies a "
                "location whose access annotation it cannot apply); set "
                f"deny-unenforced-access-annotations to \"false\" to serve them without "
                f"it{hint}", annotation_field(key)))
            deny(reason)
        else:
            warnings.append(RouteWarning.annotation(
                where, key, "not implemented by ingresslib; ignored "
                "(deny-unenforced-access-annotations is off: the routes are served without "
                f"this access control){hint}"))

    def ranges(names: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
        chosen = next((n for n in names if annotations.get(prefix + n)), None)
        if chosen is None:
            chosen = next((n for n in names if prefix + n in annotations), None)
        if chosen is None:
            return default
        key = prefix + chosen
        for other in names:
            if other != chosen and annotations.get(prefix + other):
                warnings.append(RouteWarning.annotation(where, prefix + other,
                                                        f"ignored, {key} is set"))
        if canary:
            ignored = canary_ignored(annotations, main_annotations, where, key,
                                     "access control ")
            if ignored is not None:
                warnings.append(ignored)
            return ()
        try:
            return parse_source_ranges(annotations[key], annotation=True)
        except ValueError as e:
            reason = f"annotation {key}: {e}"
            warnings.append(RouteWarning.annotation(
                where, key, f"{e}: the Ingress's routes answer 503 (ingress-nginx denies the "
                "location: \"the annotation does not contain a valid IP address or "
                "network\")"))
            deny(reason)
            return default

    allow = ranges((ALLOWLIST, WHITELIST), settings.whitelist_source_range)
    refused = ranges((DENYLIST,), settings.denylist_source_range)
    return build_access(denied, settings.block_cidrs, refused, allow, basic,
                        satisfy_any), warnings
