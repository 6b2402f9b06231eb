"""Second review of session 18's landed changes (R18a): cluster watch backoff (K18), forwarded
headers read line by line (F18), access control (A18), access log (L18).

Defects fixed (their tests failed before the fix):

- ``Backoff.delay`` with an int ``factor`` (``Backoff(factor=2)``: the dataclass says float,
  Python and mypy take an int) computed ``factor ** (attempt - 1)`` as an exact integer before
  K18's OverflowError guard could act: work growing with the attempt (0.13 s of the event loop
  per attempt at factor 3 after ~10**6 attempts, a year of a kind failing every 30 s; never
  ending for an absurd attempt). Now the power is a float's: it overflows at once.

- a misspelt access annotation (``auth-urll``) is classed by its shape as an access annotation
  (``access_kind``: every ``auth-*`` name) and denies its routes (503, fail closed, kept), but
  the warning only said it "is not implemented by ingresslib": the typo stayed hidden. The
  warning now ends in "did you mean nginx.ingress.kubernetes.io/auth-url?"
  (``_annotations.did_you_mean``), as the other annotations' warnings do.

The rest are guards (they passed before and after): a differential test of the forwarded-for
walk against a line-by-line port of nginx's loop, the access-phase truth table of nginx.tmpl
through the proxy core and IngressASGI, Backoff at absurd attempts and factors, and the access
log's one-ASCII-line property for any field text.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib._accesslog import AccessLogFormatter
from ingresslib._kube import Backoff
from ingresslib.proxy._access import route_access
from ingresslib.proxy._headers import TrustPolicy, _chain_address, client_address
from ingresslib.proxy._settings import ProxySettings

sys.path.insert(0, str(Path(__file__).parent))
from test_access_control_s13 import (  # noqa: E402
    ALLOW, BASIC, HTPASSWD, P, _secret, basic_manifests, creds)
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

HEAD = "GET / HTTP/1.1\r\nHost: a.test"


# -- the small item: "did you mean" for a misspelt access annotation ---------------------------

@pytest.mark.parametrize(("typo", "meant"), [
    ("auth-urll", "auth-url"), ("auth-tls-secrett", "auth-tls-secret"),
    ("auth-signinn", "auth-signin")])
def test_misspelt_access_annotation_names_the_likely_one_and_still_denies(
        typo: str, meant: str) -> None:
    access, warnings = route_access({P + typo: "x"}, P, ProxySettings(), "default/web")
    assert access is not None and access.status("192.0.2.1") == 503   # fail closed, kept
    [warning] = warnings
    assert warning.endswith(f"did you mean {P}{meant}?"), warning
    assert "routes answer 503" in warning


def test_misspelt_access_annotation_hint_when_not_denied() -> None:
    settings = ProxySettings(deny_unenforced_access_annotations=False)
    access, warnings = route_access({P + "auth-urll": "x"}, P, settings, "default/web")
    assert access is None
    assert warnings[0].endswith(f"did you mean {P}auth-url?")


def test_real_or_unguessable_access_annotation_gets_no_hint() -> None:
    # A real name is never "corrected"; an auth-* name close to nothing stays denied, silent.
    for name in ("auth-url", "auth-signin", "auth-tls-verify-client", "auth-zzzzzz-qqq"):
        access, warnings = route_access({P + name: "x"}, P, ProxySettings(), "default/web")
        assert access is not None and access.denied is not None
        assert "did you mean" not in warnings[0], warnings


def test_misspelt_access_annotation_through_the_proxy() -> None:
    # The route answers 503 with no backend reached (the annotation may restrict access).
    m = basic_manifests({P + "auth-urll": "http://auth.test/"}, "")
    assert proxy_answer(wire(HEAD), manifests=m).status == 503


# -- forwarded-for lines: a port of nginx's own loop, compared --------------------------------
#
# nginx src/http/ngx_http_core_module.c (1.23+), ngx_http_get_forwarded_addr:
#     rc = NGX_DECLINED; found = 0;
#     for (h = headers; h; h = h->next) {        /* reversed: the last line first */
#         rc = ngx_http_get_forwarded_addr_internal(r, addr, h->value.data, h->value.len,
#                                                   proxies, recursive);
#         if (!recursive) { break; }
#         if (rc == NGX_DECLINED && found) { rc = NGX_DONE; break; }
#         if (rc != NGX_OK) { break; }
#         found = 1;
#     }
# and ngx_http_get_forwarded_addr_internal:
#     found = 0;
#     do {
#         if (ngx_cidr_match(addr->sockaddr, proxies) != NGX_OK) {
#             return found ? NGX_DONE : NGX_DECLINED; }
#         for (p = xff + xfflen - 1; p > xff; p--, xfflen--) {
#             if (*p != ' ' && *p != ',') { break; } }
#         for ( /* void */ ; p > xff; p--) {
#             if (*p == ' ' || *p == ',') { p++; break; } }
#         if (ngx_parse_addr_port(r->pool, &paddr, p, xfflen - (p - xff)) != NGX_OK) {
#             return found ? NGX_DONE : NGX_DECLINED; }
#         *addr = paddr; found = 1; xfflen = p - 1 - xff;
#     } while (recursive && p > xff);
#     return NGX_OK;
# The realip module keeps the connection's address unless the result is NGX_DECLINED... i.e.
# it sets ``addr`` for NGX_OK and NGX_DONE. Entry parsing (ngx_parse_addr_port) is
# ``_chain_address``'s own business, reviewed apart: the port below uses it.

OK, DONE, DECLINED = "ok", "done", "declined"


def _ngx_line(addr: str, xff: str, trusted: Any) -> tuple[str, str]:
    xfflen = len(xff)
    found = False
    while True:
        if not trusted(addr):
            return (DONE if found else DECLINED), addr
        p = xfflen - 1
        while p > 0:
            if xff[p] not in " ,":
                break
            p -= 1
            xfflen -= 1
        while p > 0:
            if xff[p] in " ,":
                p += 1
                break
            p -= 1
        # An empty line leaves p one before the value (nginx reads the ':' or ' ' there):
        # never an address.
        paddr = _chain_address(xff[p:xfflen]) if p >= 0 else None
        if paddr is None:
            return (DONE if found else DECLINED), addr
        addr, found, xfflen = paddr, True, p - 1
        if not p > 0:
            return OK, addr


def _ngx_client(peer: str, lines: list[str], trusted: Any) -> str:
    addr, rc, found = peer, DECLINED, False
    for line in reversed(lines):
        rc, addr = _ngx_line(addr, line, trusted)
        if rc == DECLINED and found:
            rc = DONE
            break
        if rc != OK:
            break
        found = True
    return peer if rc == DECLINED else addr


_TRUSTED = TrustPolicy(["10.0.0.0/8", "2001:db8::/32"])
_XFF_SETTINGS = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
_TOKENS = ["10.0.0.1", "10.9.9.9", "10.1.2.3:80", "203.0.113.7", "198.51.100.2",
           "[2001:db8::5]:443", "2001:db8::7", "2001:db9::1", "unknown", "_hidden", "300.1.1.1",
           "010.0.0.1", "", " ", ",", ", ", " ,", ",,"]


@hsettings(max_examples=600, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_TOKENS), max_size=6).map("".join).map(str.strip),
                min_size=1, max_size=4),
       st.sampled_from(["10.0.0.2", "203.0.113.9"]))
def test_forwarded_lines_read_as_nginx_loop(lines: list[str], peer: str) -> None:
    headers = [(b"x-forwarded-for", line.encode()) for line in lines]
    got = client_address(peer, _XFF_SETTINGS, _TRUSTED, headers)
    assert got == _ngx_client(peer, lines, _TRUSTED.trusted), lines


def test_forwarded_lines_known_cases() -> None:
    def walk(*lines: str, peer: str = "10.0.0.2") -> str | None:
        return client_address(peer, _XFF_SETTINGS, _TRUSTED,
                              [(b"x-forwarded-for", v.encode()) for v in lines])

    # A client-sent empty line before its proxy's: the proxy's line decides (F18's fix).
    assert walk("", "203.0.113.7") == "203.0.113.7"
    # The last line all trusted hops, the one before it empty: the last hop (nginx NGX_DONE).
    assert walk("", "10.0.0.5") == "10.0.0.5"
    # An empty last line: nothing read (NGX_DECLINED): the peer.
    assert walk("203.0.113.7", "") == "10.0.0.2"
    # An untrusted peer: no line is read, whatever the client wrote.
    assert walk("10.0.0.9", "10.0.0.8", peer="203.0.113.9") == "203.0.113.9"
    # A client line after a trusted one is reached only through trusted hops.
    assert walk("198.51.100.2", "10.0.0.9, 10.0.0.8") == "198.51.100.2"
    assert walk("198.51.100.2", "203.0.113.7") == "203.0.113.7"


# -- access control: nginx.tmpl's order, every combination -------------------------------------
#
# ingress-nginx writes a location as (internal/ingress/controller/template/crossplane/
# location.go): "if location.Denied != nil { ... buildDirectiveWithComment("return",
# fmt.Sprintf("Location denied. Reason: %s", *location.Denied), "503")) } else {
# ... c.buildAllowedLocation(...) }", and buildAllowedLocation writes the "deny" lines, the
# "allow" lines and "deny all", then the auth directives (nginx.tmpl: "{{ if isLocationAllowed
# $location }} ... {{ else }} # Location denied. Reason: {{ $location.Denied | quote }}
# return 503; {{ end }}"). A basic-auth Secret that cannot be read is a LocationDenied
# (auth/main.go). nginx runs the rewrite phase's "return 503" first, then the access module
# (403), then auth_basic (401).


def _tmpl_status(refused: bool, secret_ok: bool, credentials: str) -> int:
    if not secret_ok:
        return 503
    if refused:
        return 403
    return 0 if credentials == "ok" else 401


_SECRETS = {"ok": None, "missing": "", "no-auth-key": _secret("users", {"htpasswd": HTPASSWD})}
_CREDS = {"ok": creds("alice", "pw"), "bad": creds("alice", "nope"), "absent": ""}
_RANGES = {  # annotations, the peer: (allowlist | denylist) x (admitted | refused)
    "allowlist-admits": ({ALLOW: "10.0.0.0/8"}, "10.1.2.3", False),
    "allowlist-refuses": ({ALLOW: "10.0.0.0/8"}, "192.0.2.1", True),
    "denylist-admits": ({P + "denylist-source-range": "192.0.2.0/24"}, "10.1.2.3", False),
    "denylist-refuses": ({P + "denylist-source-range": "192.0.2.0/24"}, "192.0.2.1", True),
    "mapped-refused": ({ALLOW: "10.0.0.0/8"}, "::ffff:192.0.2.1", True),
}


@pytest.mark.parametrize("credentials", list(_CREDS))
@pytest.mark.parametrize("secret", list(_SECRETS))
@pytest.mark.parametrize("ranges", list(_RANGES))
def test_access_truth_table_core(ranges: str, secret: str, credentials: str) -> None:
    annotations, peer, refused = _RANGES[ranges]
    m = basic_manifests({**BASIC, **annotations}, _SECRETS[secret])
    r = proxy_answer(wire(HEAD + _CREDS[credentials]), manifests=m, peer=peer)
    got = 0 if r.status is None and r.upstream is not None else r.status
    assert got == _tmpl_status(refused, secret == "ok", credentials)
    # Credentials are never forwarded, and a 401 carries the challenge (and only a 401).
    if got == 0:
        assert b"authorization" not in (r.upstream or b"").lower()
    else:
        assert (r.header(b"www-authenticate") is not None) == (got == 401)


@pytest.mark.asyncio
@pytest.mark.parametrize("credentials", list(_CREDS))
@pytest.mark.parametrize("secret", list(_SECRETS))
@pytest.mark.parametrize("ranges", ["allowlist-admits", "allowlist-refuses"])
async def test_access_truth_table_adapter(ranges: str, secret: str, credentials: str) -> None:
    annotations, peer, refused = _RANGES[ranges]
    m = basic_manifests({**BASIC, **annotations}, _SECRETS[secret])
    got = await asgi_call(HEAD + _CREDS[credentials], manifests=m, client=(peer, 40000))
    status = 0 if got.app_ran else got.status
    assert status == _tmpl_status(refused, secret == "ok", credentials)


def test_secret_denied_is_cheap_and_follows_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``Access.status`` asks ``secret_denied`` for a refused address each time (never cached):
    # that check verifies no password, and reads the Secret again only when the router's
    # Secrets change.
    from ingresslib._load import parse_manifests
    from ingresslib.proxy import _htpasswd
    from ingresslib.proxy._access import build_access
    from ingresslib.proxy._basicauth import BasicAuth

    present = parse_manifests(_secret("users", {"auth": HTPASSWD})).secrets
    current: list[Any] = [()]
    loads = []
    verifies = []
    real_load = BasicAuth._load
    monkeypatch.setattr(BasicAuth, "_load", lambda self, s: (loads.append(s), real_load(self, s)))
    monkeypatch.setattr(_htpasswd, "verify", lambda *a: verifies.append(a))
    basic = BasicAuth("r", "default", "users", False, lambda: current[0], None, "t")
    access = build_access(None, (), (), ("10.0.0.0/8",), basic)
    assert access is not None
    for _ in range(50):
        assert access.status("192.0.2.1") == 503
    assert len(loads) == 1 and not verifies
    current[0] = present  # the Secret appears: the refused address meets the range's 403
    assert access.status("192.0.2.1") == 403
    at_load = len(verifies)  # reading the Secret checks each user's hash format, once
    for _ in range(50):
        assert access.status("192.0.2.1") == 403
    assert len(loads) == 2 and len(verifies) == at_load


# -- Backoff: no overflow, no negative or runaway delay ----------------------------------------

@pytest.mark.parametrize("backoff", [Backoff(), Backoff(factor=0.5), Backoff(factor=1.0),
                                     Backoff(factor=-2.0), Backoff(factor=3),
                                     Backoff(initial=1e300, factor=1e300)])
@pytest.mark.parametrize("attempt", [0, 1, 2, 1024, 1025, 10**6, 10**30])
def test_backoff_delay_is_bounded(backoff: Backoff, attempt: int) -> None:
    delay = backoff.delay(attempt, random.Random(attempt))
    assert math.isfinite(delay) and 0.0 <= delay <= backoff.maximum * (1 + backoff.jitter)


class _ExactInt(int):
    """An int ``factor`` that reports an exact integer power of a large exponent: the work
    that grew with the attempt (``2 ** 10**7`` is a 10-million-bit number)."""

    def __pow__(self, exponent: Any, modulo: Any = None) -> Any:
        if isinstance(exponent, int) and exponent > 1024:
            raise AssertionError(f"exact integer power {int(self)} ** {exponent}")
        return int(self) ** exponent


@pytest.mark.parametrize("attempt", [3, 1025, 10**6, 10**30])
def test_int_factor_backoff_is_computed_in_floating_point(attempt: int) -> None:
    # Before: ``self.factor ** (attempt - 1)`` with an int factor was an exact power whose
    # cost grows with the attempt (0.13 s at factor 3 and 10**6 attempts; 10**30 never ends).
    exact = Backoff(factor=_ExactInt(3)).delay(attempt, random.Random(7))
    assert exact == Backoff(factor=3.0).delay(attempt, random.Random(7))


# -- access log: one ASCII line whatever the fields hold ---------------------------------------

# Lone surrogates included (``_escape``'s surrogatepass fallback, L18), C0/C1 controls, U+2028.
_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
                max_size=12)


def _entry(fmt: str, fields: dict[str, Any]) -> str:
    rec = logging.LogRecord("ingresslib.access", logging.INFO, __file__, 0, "%s", (), None)
    rec.access = fields  # type: ignore[attr-defined]
    return AccessLogFormatter(fmt).format(rec)  # type: ignore[arg-type]


_STR_FIELDS = ("remote_addr", "remote_user", "request", "http_referer", "http_user_agent",
               "proxy_upstream_name", "proxy_alternative_upstream_name", "upstream_addr",
               "upstream_response_length", "upstream_response_time", "upstream_status",
               "req_id")


@hsettings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({k: _TEXT for k in _STR_FIELDS}))
def test_access_entry_is_one_ascii_line(values: dict[str, str]) -> None:
    fields: dict[str, Any] = {"time_local": "23/Nov/2026:05:00:00 +0000", "status": 200,
                              "body_bytes_sent": 0, "request_length": 10,
                              "request_time": "0.001", "host": "a.test", **values}
    for fmt in ("text", "json"):
        line = _entry(fmt, fields)
        assert line.isascii() and "\n" not in line and "\r" not in line, (fmt, line)
    out = json.loads(_entry("json", fields))
    # A field that is not nginx's list of times stays text (or null for "-, -" shapes only).
    v = values["upstream_response_time"]
    if out["upstream_response_time"] is not None and not isinstance(
            out["upstream_response_time"], str):
        assert v.rpartition(", ")[2].replace(".", "", 1).isdigit()
