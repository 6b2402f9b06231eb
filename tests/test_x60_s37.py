"""Tests found by mutation testing ``_normalize`` and ``proxy/_headers`` (session 37, x60).

Each test kills at least one mutant the rest of the suite let survive; the comment above it
names the mutant (the line as mutated). The tools and logs: /tmp/x60_tool/ (x45's
``mutate.py``, one AST change per run, ``pytest -x`` per mutant).
"""

from __future__ import annotations

import doctest

import pytest

from ingresslib import _normalize
from ingresslib._errors import BadRequestError
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._header_sets import set_headers_for
from ingresslib.proxy._headers import (
    HeaderKind,
    TrustPolicy,
    client_address,
    client_ip_from_chain,
    client_request_id,
    forwarded_for_value,
    forwarded_redirect_host,
    request_header_kind,
)
from ingresslib._normalize import (
    canonical_path,
    canonical_rule_path,
    host_problem,
    normalize_host,
    rule_path_spelling,
    split_target,
)

# -- _normalize ------------------------------------------------------------------------------


def _rejection(path: str) -> str:
    with pytest.raises(BadRequestError) as info:
        canonical_path(path)
    return str(info.value)


# Mutants: ``len(path) <= 64`` -> ``< 64``, 64 -> 63 / 65 (the cut and the test), '...' -> ''.
# _normalize._reject: "The path is remote input: quote it with repr() and cut it": the first
# 64 characters are shown, and a cut path says so; a path of 64 is shown whole.
@pytest.mark.parametrize(("length", "shown"), [(63, 63), (64, 64), (65, 64), (500, 64)])
def test_a_rejected_path_is_shown_up_to_64_characters(length: int, shown: int) -> None:
    path = "a" * length  # not origin-form: refused before anything else is read
    cut = "..." if length > shown else ""
    assert _rejection(path) == "path does not start with '/': " + repr(path[:shown] + cut)


# Mutants: canonical_path's own ``if not path.startswith('/')`` test deleted or made False
# (_canonical_valid repeats it, so only the reason changed), its reason or the "invalid
# character" reason emptied, and the forbidden escape's reason losing its name
# ('forbidden escape %' -> '', ``m.group(1)`` -> ``m.group(0)``). The 400's reason names the
# first rule of SEMANTICS §5 the path breaks, and the escape that broke it.
@pytest.mark.parametrize(("path", "reason"), [
    ("a b", "path does not start with '/'"),   # two defects: origin-form is checked first
    ("http://a/b", "path does not start with '/'"),
    ("/a b", "invalid character or escape in path"),
    ("/a%2fb", "forbidden escape %2f"),
    ("/a%5C", "forbidden escape %5C"),
    ("/..", "'..' above the root"),
    ("/a/..;x", "dot segment with parameters"),
    ("/%c3", "escapes are not valid UTF-8"),
])
def test_a_rejected_path_names_its_reason(path: str, reason: str) -> None:
    assert _rejection(path) == f"{reason}: {path!r}"


# Mutant: _canonical_valid's reason "path does not start with '/'" emptied. A rule path made of
# path characters only skips canonical_path (canonical_rule_path's one-regex fast path) and
# is refused there; the diagnostic names why the rule never matches.
def test_a_relative_rule_path_is_refused_with_its_reason() -> None:
    with pytest.raises(BadRequestError) as info:
        canonical_rule_path("api/v1")
    assert str(info.value) == "path does not start with '/': 'api/v1'"


# Mutants: rule_path_spelling's encoding test (``_VALID_RE.fullmatch(path) is None``) deleted,
# made False or inverted, its ``_rule_encoded`` call deleted, its return deleted, its
# ``'%' in path`` test inverted or emptied. Only _table's "matches as" note read it, and no
# test of the note wrote a raw character or an unreserved escape in a rule path. The note is
# given only when the canonical form resolves dot segments or "//", never for spelling alone
# (_table._stands_for): the spelling encodes raw characters, decodes unreserved escapes, upper-
# cases the others, and keeps the path's structure.
@pytest.mark.parametrize(("path", "spelling"), [
    ("/café", "/caf%C3%A9"),
    ("/a b/%7euser", "/a%20b/~user"),
    ("/%7e/%2e%2e", "/~/.."),
    ("/a%3fb//./c", "/a%3Fb//./c"),
    ("/plain/path", "/plain/path"),
])
def test_a_rule_path_s_spelling_keeps_its_structure(path: str, spelling: str) -> None:
    assert rule_path_spelling(path) == spelling


# _normalize's docstring examples are run by no test (tests/test_docs_s16.py runs those of the
# public names only); the mutants above that they catch (rule_path_spelling's) survived.
def test_the_normalize_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(_normalize, optionflags=doctest.ELLIPSIS)
    assert (failures, tried > 0) == (0, True)


# Mutants: the port test ``0 < int(port) <= 65535`` with 0 -> 1, 65535 -> 65534 / 65536,
# ``<=`` -> ``<``, its reason emptied. RFC 9110 §4.1 / RFC 6335: a port is 1-65535 (nginx
# ngx_http_validate_host takes the port's digits; ngx_parse_url refuses "port < 1 || port >
# 65535"); SEMANTICS §9 refuses "bad Host values (spaces, `/`, `@`, bad ports)".
@pytest.mark.parametrize(("host", "problem"), [
    ("a.test:1", None),
    ("a.test:65535", None),
    ("a.test:00080", None),
    ("[::1]:65535", None),
    ("a.test:0", "invalid port in Host header"),
    ("a.test:65536", "invalid port in Host header"),
    ("a.test:99999", "invalid port in Host header"),
])
def test_a_host_s_port_is_1_to_65535(host: str, problem: str | None) -> None:
    assert host_problem(host) == problem


# Mutants: host_problem's "one dot" test (``host[:1] == '.' and (len(host) == 1 or host[1:2] ==
# ':')``) deleted, made False, ``or`` -> ``and``, each comparison inverted, each index moved by
# one, '.' / ':' emptied, its reason emptied. nginx ngx_http_validate_host(): "if (dot_pos ==
# host_len - 1) { host_len--; }" then "if (host_len == 0) { return NGX_DECLINED; }": a Host that
# is one dot (with or without a port) is 400, where normalize_host would make it no host at all
# and route it to the host-less rules. A leading dot before a label is no empty label there
# (dot_pos starts at the host's length): ".a" passes, as a trailing dot does.
@pytest.mark.parametrize(("host", "problem"), [
    (".", "empty host in Host header"),
    (".:80", "empty host in Host header"),
    (".a", None),
    (".a:80", None),
    ("a.", None),
    ("a.:80", None),
    ("..", "invalid Host header"),
])
def test_a_host_that_is_one_dot_is_refused(host: str, problem: str | None) -> None:
    assert host_problem(host) == problem
    if problem == "empty host in Host header":
        assert normalize_host(host) is None  # what the refusal keeps from being routed


# Mutants: the reasons "'#' in request target" (split_target) and "rule path is not encodable
# as UTF-8" (_rule_encoded: a lone surrogate, which a manifest's JSON "\\ud800" can carry)
# emptied.
def test_a_fragment_and_an_unencodable_rule_path_name_their_reason() -> None:
    with pytest.raises(BadRequestError) as info:
        split_target("/a#b")
    assert str(info.value) == "'#' in request target: '/a#b'"
    with pytest.raises(BadRequestError) as info:
        canonical_rule_path("/a\ud800")
    assert str(info.value) == "rule path is not encodable as UTF-8: '/a\\ud800'"


# -- proxy/_headers --------------------------------------------------------------------------

_XFF = b"x-forwarded-for"
_UNDERSCORES = ProxySettings(enable_underscores_in_headers=True)


# Mutants: b"te", b"trailer", b"proxy-connection", b"proxy-authorization" emptied in
# _HOP_BY_HOP, b"expect" in REQUEST_DROP: that header reached the backend. SEMANTICS §9: "hop-
# by-hop headers (Connection, Keep-Alive, TE, Trailer, Upgrade unless upgrading, Proxy-
# Connection, Proxy-Authorization) removed"; RFC 9110 §7.6.1; Proxy-Authorization holds the
# client's credentials for this hop, never for the backend. Expect is answered by the proxy
# itself (nginx's ngx_http_proxy_headers[] clears it: "Expect", "").
@pytest.mark.parametrize("name", [b"connection", b"keep-alive", b"te", b"trailer",
                                  b"proxy-connection", b"proxy-authorization", b"proxy",
                                  b"expect"])
def test_every_hop_by_hop_header_is_dropped(name: bytes) -> None:
    assert request_header_kind(name, None, _XFF, ProxySettings()) is HeaderKind.DROP


# Mutants: UNDERSCORE_SHADOWED's ``|`` read as ``&`` (either one): with underscores in header
# names allowed, ``X_Real_IP`` reached a CGI/WSGI backend as HTTP_X_REAL_IP, the header the
# proxy writes itself: a client forged its address (likewise X-Forwarded-Host / -Proto, the
# request id, Host). _headers.odd_name_dropped: "a spelling of a header dropped or written by
# the proxy (UNDERSCORE_SHADOWED, ...) is dropped all the same".
@pytest.mark.parametrize("name", [b"x_real_ip", b"x_forwarded_host", b"x_forwarded_proto",
                                  b"x_original_uri", b"proxy_authorization", b"transfer_encoding",
                                  b"x_request_id", b"x_forwarded_port"])
def test_an_underscore_spelling_of_a_proxy_header_is_dropped(name: bytes) -> None:
    assert request_header_kind(name, None, _XFF, _UNDERSCORES) is HeaderKind.DROP
    # the same spelling of a header of the client's own passes (the test is not vacuous)
    assert request_header_kind(b"x_client_note", None, _XFF, _UNDERSCORES) is HeaderKind.PASS


# Mutants: b"host" / b"x-request-id" emptied in UNDERSCORE_SHADOWED. No ``_`` spelling is
# "host", but the set is also the names proxy-set-headers may not set (_header_sets.
# _own_request_names): a ConfigMap's "Host" went upstream besides the request's own (nginx.tmpl
# writes ``proxy_set_header Host`` itself; a proxy-set-headers entry is a second line, two Host
# headers at the backend).
@pytest.mark.parametrize("name", ["Host", "host", "X-Request-ID", "X-Real-IP", "Connection"])
def test_proxy_set_headers_refuses_the_names_this_hop_writes(name: str) -> None:
    assert set_headers_for("ns/x60")._name_problem(name) is not None
    assert set_headers_for("ns/x60")._name_problem("X-Env") is None


_FULL_CHAIN = ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=True)


# Mutants: forwarded_for_value's ``incoming and peer`` -> ``or`` (", <peer>" with no chain, "<chain>,
# " with no peer) and ``incoming or peer`` -> ``and`` (an empty X-Forwarded-For with no chain).
# nginx.tmpl, compute-full-forwarded-for: "map $http_x_forwarded_for $full_x_forwarded_for {
# default "$http_x_forwarded_for, $realip_remote_addr"; '' "$realip_remote_addr"; }": the peer
# alone without a chain; no peer (a unix socket) leaves the chain alone, never a trailing ", ".
@pytest.mark.parametrize(("settings", "incoming", "peer", "expected"), [
    (_FULL_CHAIN, b"", b"10.0.0.9", b"10.0.0.9"),
    (_FULL_CHAIN, b"1.2.3.4", b"", b"1.2.3.4"),
    (_FULL_CHAIN, b"1.2.3.4", b"10.0.0.9", b"1.2.3.4, 10.0.0.9"),
    (_FULL_CHAIN, b"", b"", b""),
    (ProxySettings(use_forwarded_headers=True), b"1.2.3.4", b"10.0.0.9", b"5.6.7.8"),
])
def test_the_forwarded_for_value_sent_upstream(settings: ProxySettings, incoming: bytes,
                                               peer: bytes, expected: bytes) -> None:
    assert forwarded_for_value(settings, incoming, peer, b"5.6.7.8") == expected


_HOPS = TrustPolicy(["10.0.0.0/8"])
_FORGED = [(b"x-forwarded-for", b"6.6.6.6")]


# Mutants: client_address's ``if settings.use_proxy_protocol: return peer`` deleted or made
# False: with the PROXY protocol on, a trusted peer's X-Forwarded-For was read, and a client
# inside proxy-real-ip-cidr chose its own address. nginx.tmpl: "{{ if $cfg.UseProxyProtocol }}
# real_ip_header proxy_protocol; {{ else }} real_ip_header {{ $cfg.ForwardedForHeader }};".
def test_with_the_proxy_protocol_the_forwarded_for_chain_is_never_read() -> None:
    settings = ProxySettings(use_forwarded_headers=True, use_proxy_protocol=True,
                             proxy_real_ip_cidr=("10.0.0.0/8",))
    assert client_address("10.0.0.5", settings, _HOPS, _FORGED) == "10.0.0.5"
    # without it the same trusted hop's chain is read (the test above is not vacuous)
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    assert client_address("10.0.0.5", settings, _HOPS, _FORGED) == "6.6.6.6"


# Mutants: client_address's ``if not lines or peer is None: return peer`` deleted, made False,
# ``or`` -> ``and``: a request with no peer address (a unix socket) that its caller called
# trusted took its address from the chain. No peer is no trusted hop to read a chain from.
def test_no_peer_address_reads_no_chain() -> None:
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    assert client_address(None, settings, _HOPS, _FORGED, peer_trusted=True) is None


# Mutant: _walk_chain's leading-separator test ``chain[:1] in (' ', ',')`` with ' ' emptied: a
# line starting with a space had its leftmost entry read as an address. nginx
# ngx_http_get_forwarded_addr_internal() never reads the first byte as a separator (its scans
# stop at "p > xff"): " 6.6.6.6" is one entry that parses as nothing, the walk stops there, and
# the last trusted hop is the client -- as for a leading comma.
@pytest.mark.parametrize("chain", [" 6.6.6.6, 10.0.0.2", ",6.6.6.6, 10.0.0.2"])
def test_a_leading_separator_spoils_the_leftmost_entry(chain: str) -> None:
    assert client_ip_from_chain(chain, "10.0.0.1", _HOPS) == "10.0.0.2"
    assert client_ip_from_chain(chain.lstrip(" ,"), "10.0.0.1", _HOPS) == "6.6.6.6"


# Mutants: forwarded_redirect_host's body statements deleted one by one (its Host check, its
# ``return None`` for an invalid element, its result), its 'ascii' emptied. lua_ingress.lua
# takes the first element of a trusted hop's X-Forwarded-Host for an ssl-redirect's Location
# (``parse_x_forwarded_host``: "return hosts[1]"); here it must pass the Host checks first, or
# the Location names the Host header's host (SEMANTICS §9: bad Host values are refused).
@pytest.mark.parametrize(("value", "host"), [
    (b"A.Test:8443, b.test", "a.test"),
    (b" a.test ", "a.test"),
    (b"a b.test", None),
    (b"evil.test/x", None),
    (b"caf\xc3\xa9.test", None),
    (b"", None),
    (b", a.test", None),
])
def test_a_forwarded_host_names_a_redirect_only_when_it_is_a_valid_host(
        value: bytes, host: str | None) -> None:
    assert forwarded_redirect_host(value) == host


# Mutants: every statement of client_request_id deleted in turn, ``named = False`` -> True, its
# ``name == b'x-request-id'`` test made True or False, ``if name == b'connection'`` deleted.
# nginx.tmpl "map $http_x_request_id $req_id { default $http_x_request_id; "" $request_id; }":
# the client's (first) X-Request-ID is the request's id when it is a token (valid_request_id);
# one named in Connection is hop-by-hop and dropped before it is looked at.
@pytest.mark.parametrize(("headers", "rid"), [
    ([(b"accept", b"*/*"), (b"x-request-id", b"abc-1")], b"abc-1"),
    ([(b"x-request-id", b"first"), (b"x-request-id", b"second")], b"first"),
    ([(b"connection", b"close, X-Request-ID"), (b"x-request-id", b"abc")], None),
    ([(b"connection", b"close"), (b"x-request-id", b"abc")], b"abc"),
    ([(b"x-request-id", b"a b")], None),
    ([(b"x-other", b"abc")], None),
])
def test_the_client_s_request_id(headers: list[tuple[bytes, bytes]], rid: bytes | None) -> None:
    assert client_request_id(headers) == rid
