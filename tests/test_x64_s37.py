"""Tests found by mutation testing the rest of ``proxy/_headers`` (session 37, x64; x60 ran the
first part: tests/test_x60_s37.py).

Each test kills at least one mutant the fast header tests let survive; the comment above it
names the mutant (the line as mutated). The tools and logs: /tmp/x64/ (x60's runner
/tmp/x60_tool/mutate_b.py, one AST change per run, ``pytest -x`` per mutant).
"""

from __future__ import annotations

import pytest

from ingresslib.proxy._errors import RemoteProxyError
from ingresslib.proxy._headers import (
    _chain_address,
    _check_host_tab,
    _ngx_addr,
    absolute_form,
    check_host_header,
    split_absolute_form,
)

# -- which Host a request is routed by --------------------------------------------------------


# Mutants: same_authority's ``return key(authority) == key(host)`` deleted (every absolute-form
# target whose authority is not spelled as its Host was refused), ``value.rfind(']') + 1`` ->
# ``+ 2`` (a bracketed IPv6 authority's port was skipped: ``[::1]:8080`` matched ``[::1]``).
# same_authority: the host as routed (normalize_host: ASCII case, one trailing dot) and the
# port, the scheme's default when absent (RFC 9110 §4.2.3); anything else is two hosts in one
# request, 400 (SEMANTICS §9).
@pytest.mark.parametrize(("target", "host", "same"), [
    ("http://A.test:80/x", "a.test", True),
    ("http://a.test./x", "A.TEST:80", True),
    ("https://a.test/x", "a.test:443", True),
    ("http://[::1]:80/x", "[::1]", True),
    ("http://[::1]/x", "[::1]:80", True),
    ("http://a.test/x", "a.test:443", False),
    ("http://a.test:8080/x", "a.test", False),
    ("http://a.test/x", "a.test:8080", False),
    ("http://[::1]:8080/x", "[::1]", False),
    ("http://[::1]/x", "[::1]:8080", False),
    ("http://a.test/x", "b.test", False),
])
def test_an_absolute_form_target_and_its_host_name_one_authority(target: str, host: str,
                                                                 same: bool) -> None:
    if same:
        assert absolute_form(target, host) == ("/x", target.split("/")[2])
        return
    with pytest.raises(RemoteProxyError) as info:
        absolute_form(target, host)
    assert info.value.args == ("absolute-form target does not match Host",)



# Mutant: check_host_header's reason emptied ('empty Host header' -> ''; only the explain
# tests, a slow module, saw it). ``Host:`` with no value is nginx's "client sent invalid host
# header" (ngx_http_validate_host: "if (host_len == 0) return NGX_DECLINED;"), 400, and the
# reason says which rule refused it.
def test_an_empty_host_header_is_refused_with_its_reason() -> None:
    with pytest.raises(RemoteProxyError) as info:
        check_host_header(b"")
    assert (info.value.args, info.value.status_hint) == (("empty Host header",), 400)

# Mutant: absolute_form's ``check_host(authority.encode('latin-1'))`` deleted: a request line's
# host was routed by unchecked. nginx's ngx_http_parse_request_line reads the absolute-form host
# and ngx_http_process_request_uri -> ngx_http_validate_host refuses a bad one: "client sent
# invalid host in request line", 400; the rule is the Host header's (check_host), no Host
# header or not.
@pytest.mark.parametrize("authority", [
    "a b", "a..test", ".", "a.test:0", "a.test:65536", "a.test:", "[::1", "a\\b", "a\x7f",
])
def test_an_absolute_form_authority_is_checked_as_a_host(authority: str) -> None:
    with pytest.raises(RemoteProxyError) as info:
        absolute_form(f"http://{authority}/x", None)
    assert info.value.status_hint == 400
    assert info.value.args != ("invalid authority in absolute-form target",)


# Mutants of split_absolute_form (the scheme's case and length, the cut at the first "/" or
# "?", the "/" an empty path gets, its reasons). RFC 9112 §3.2.2's absolute-form as nginx's
# ngx_http_parse_request_line reads it: the scheme in any case (sw_schema: "c = (u_char)
# (ch | 0x20); if (c >= 'a' && c <= 'z') break;"), the host ending at "/" or "?" (sw_host_end:
# "case '?': ... r->empty_path_in_uri = 1;", so "http://a.test?q" is "/?q"), a "/" inside the
# query no end of the host.
@pytest.mark.parametrize(("target", "path", "authority"), [
    ("http://a.test", "/", "a.test"),
    ("http://a.test/", "/", "a.test"),
    ("https://a.test", "/", "a.test"),
    ("hTtP://a.test:8080/p", "/p", "a.test:8080"),
    ("HTTPS://a.test/x?y", "/x?y", "a.test"),
    ("http://a.test?q", "/?q", "a.test"),
    ("http://a.test?q/r", "/?q/r", "a.test"),
    ("http://a.test/x?q/r", "/x?q/r", "a.test"),
    ("http://a.test?x@y", "/?x@y", "a.test"),
])
def test_an_absolute_form_target_splits_into_path_and_authority(target: str, path: str,
                                                                authority: str) -> None:
    assert split_absolute_form(target) == (path, authority)


# An empty or userinfo authority (RFC 9110 §4.2.4: "A sender MUST NOT generate the userinfo
# subcomponent"; nginx's sw_host_start takes no "@" nor an empty host), and a target of
# another form or scheme: 400, each with its reason.
@pytest.mark.parametrize(("target", "reason"), [
    ("http:///x", "invalid authority in absolute-form target"),
    ("http://?q", "invalid authority in absolute-form target"),
    ("https://", "invalid authority in absolute-form target"),
    ("http://u@a.test/", "invalid authority in absolute-form target"),
    ("ftp://a.test/x", "request target is neither origin- nor absolute-form"),
    ("http:/a.test/", "request target is neither origin- nor absolute-form"),
    ("https:/a.test/", "request target is neither origin- nor absolute-form"),
    ("httpx://a.test/", "request target is neither origin- nor absolute-form"),
    ("*", "request target is neither origin- nor absolute-form"),
])
def test_a_target_that_is_no_absolute_form_is_refused(target: str, reason: str) -> None:
    with pytest.raises(RemoteProxyError) as info:
        split_absolute_form(target)
    assert (info.value.args, info.value.status_hint) == ((reason,), 400)


# _check_host_tab: nginx strips spaces only around a value (ngx_http_parse_header_line's
# sw_space_before_value / sw_space_after_value take ' '), so a tab stays in Host and
# ngx_http_validate_host refuses it, 400; any case of the name, and no other line's tab.
@pytest.mark.parametrize(("fields", "refused"), [
    ([b"Host: a.test\t"], True),
    ([b"HOST:\ta.test"], True),
    ([b"Accept: */*", b"host: \ta.test"], True),
    ([b"Host: a.test", b"X-A: b\tc"], False),
    ([b"X-Host: a\tb"], False),
    ([b"Hostx: a\tb"], False),
    ([b"Host: a.test"], False),
])
def test_a_tab_around_the_host_value_is_refused(fields: list[bytes], refused: bool) -> None:
    if not refused:
        _check_host_tab(fields)
        return
    with pytest.raises(RemoteProxyError) as info:
        _check_host_tab(fields)
    assert (info.value.args, info.value.status_hint) == (
        ("invalid Host header: a tab around the value",), 400)


# -- real-ip: one entry of a forwarded chain -------------------------------------------------


# Mutants of _ngx_addr and _decimal (the four octets, the bound 255 and INADDR_NONE, leading
# zeros, an empty octet). nginx's ngx_inet_addr(): "octet = octet * 10 + (c - '0'); if (octet >
# 255) return INADDR_NONE;", "if (c == '.') { addr = (addr << 8) + octet; octet = 0; n++; }",
# "if (n == 3) ... return htonl(addr);" else INADDR_NONE, which is also what 255.255.255.255
# reads as; then ngx_inet6_addr(), which knows no zone. Printed as $remote_addr prints it.
@pytest.mark.parametrize(("text", "address"), [
    ("10.0.0.1", "10.0.0.1"),
    ("010.000.0.1", "10.0.0.1"),
    ("0000000000000000001.2.3.4", "1.2.3.4"),
    ("1..2.3", "1.0.2.3"),
    (".1.2.3", "0.1.2.3"),
    ("1.2.3.255", "1.2.3.255"),
    ("255.255.255.254", "255.255.255.254"),
    ("255.255.255.255", None),
    ("1.2.3.256", None),
    ("1.2.3.0400", None),
    ("1.2.3.1000", None),
    ("1.2.3", None),
    ("1.2.3.4.", None),
    ("", None),
    ("2001:DB8:0:0::7", "2001:db8::7"),
    ("fe80::1%eth0", None),
    ("1.2.3.4:80", None),
])
def test_an_address_is_read_as_nginx_reads_it(text: str, address: str | None) -> None:
    assert _ngx_addr(text) == address


# Mutants of _chain_address (the port's digits and its range 1..65535; the test of what follows
# "]" deleted: ``[2001:db8::1]x80`` was read as address and port).
# nginx's ngx_parse_addr_port(): the entry as an address, else "[" address "]:" port ("if (p ==
# NULL || p == last - 1 || *++p != ':') return NGX_DECLINED;"), else the part before the first
# ":"; the port is ngx_atoi() digits, "if (port < 1 || port > 65535) return NGX_DECLINED;".
# ``[2001:db8::1]`` without a port is read (a kept divergence: README), ``[1.2.3.4]`` is not.
@pytest.mark.parametrize(("item", "address"), [
    ("1.2.3.4:80", "1.2.3.4"),
    ("1.2.3.4:1", "1.2.3.4"),
    ("1.2.3.4:65535", "1.2.3.4"),
    ("1.2.3.4:0080", "1.2.3.4"),
    ("1.2.3.4:000000000000000000000000080", "1.2.3.4"),
    ("1.2.3.4:0", None),
    ("1.2.3.4:65536", None),
    ("1.2.3.4:", None),
    ("1.2.3.4:+1", None),
    ("1.2.3.4:80:90", None),
    ("a.test:80", None),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[::1]:1", "::1"),
    ("[1.2.3.4]:80", "1.2.3.4"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[1.2.3.4]", None),
    ("[:]", None),
    ("[2001:db8::1]x", None),
    ("[2001:db8::1]x:80", None),
    ("[2001:db8::1]x80", None),
    ("[1.2.3.4]-80", None),
    ("[2001:db8::1", None),
    ("[]:80", None),
    ("[2001:db8::1]:", None),
    ("[2001:db8::1]:0", None),
    ("[2001:db8::1]:65536", None),
])
def test_a_chain_entry_s_address_drops_its_port(item: str, address: str | None) -> None:
    assert _chain_address(item) == address
