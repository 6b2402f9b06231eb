"""Session 20 review (R20b) of three landings: basic auth's musl key limits (0c1c528), cookie
affinity's Expires cap and ``|`` values (61c1085), redirect Locations' ``_uri_bytes`` and the
www twin's locations (517816e). No defect was found that needed a change; these tests pin
the behaviours the review checked, each against a plausible wrong version of it (named per
test), so that a later change cannot drift from ingress-nginx unnoticed."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._www import www_twins
from ingresslib.proxy import _basicauth, _htpasswd
from ingresslib.proxy._actions import _uri_bytes

sys.path.insert(0, str(Path(__file__).parent))
from _router_helpers import P, canary, ingress, resources, simple_backend  # noqa: E402
from test_access_control_s13 import _secret  # noqa: E402


# -- basic auth: musl's KEY_MAX counts the password's BYTES, as the header carries them ---------

def _auth(stored: str) -> _basicauth.BasicAuth:
    res = parse_manifests(_secret("users", {"auth": f"admin:{stored}\n"}))
    auth = _basicauth.BasicAuth("r", "default", "users", False, lambda: res.secrets, None, "")
    auth.load()
    return auth


def _header(password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(b"admin:" + password)


@pytest.mark.parametrize("magic", ["$5$", "$6$"])
def test_key_max_counts_utf8_bytes_not_characters(magic: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx hands crypt(3) the decoded header bytes; musl counts bytes ("for (i = 0; i <=
    KEY_MAX && key[i]; i++)"). 128 two-byte characters are 256 bytes (hashed, verified); 129
    are 258 bytes (refused without hashing) although they are fewer than 256 characters.
    (Fails where the limit counts characters of a decoded str.)"""
    ok, over = "é" * 128, "é" * 129
    assert len(ok.encode()) == 256 and len(over.encode()) == 258 and len(over) < 256
    auth = _auth(_htpasswd.sha_crypt(ok.encode(), magic + "saltsalt$") or "")
    assert auth.check(_header(ok.encode())) == (0, "admin")
    stored_over = _htpasswd.sha_crypt(over.encode(), magic + "saltsalt$") or ""
    auth = _auth(stored_over)
    calls: list[int] = []
    real = _htpasswd.sha_crypt

    def counting(password: bytes, setting: str) -> str | None:
        calls.append(len(password))
        return real(password, setting)

    monkeypatch.setattr(_htpasswd, "sha_crypt", counting)
    assert auth.check(_header(over.encode())) == (401, None)
    assert calls == []


def test_refused_long_passwords_keep_the_verdict_cache_bounded() -> None:
    """Every distinct Authorization value is one cache entry, a refused long password too;
    the cache never holds more than ``_CACHE_MAX`` of them (a client sending distinct long
    values does not grow it). (Fails where refused values are kept without the bound.)"""
    auth = _auth(_htpasswd.sha_crypt(b"right", "$6$saltsalt$") or "")
    # Session 22: the verdicts are process-wide, and only those of a real hashing are kept: a
    # password over musl's limit is refused without hashing, so nothing is stored at all.
    before = len(_basicauth._GOOD), len(_basicauth._BAD)
    for i in range(_basicauth._CACHE_MAX + 50):
        assert auth.check(_header(b"%d" % i + b"x" * 300)) == (401, None)
    assert (len(_basicauth._GOOD), len(_basicauth._BAD)) == before


# -- cookie affinity ---------------------------------------------------------------------------

def _router(ann: dict[str, str]) -> Router:
    return Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                                    {P + "affinity": "cookie", **ann}),
                            *simple_backend("web", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])))


@pytest.mark.parametrize("value", ["x|y", "|y", "x|", "|", "0123456789abcdef|" + "0" * 32])
def test_a_piped_value_on_a_balanced_route_without_canary_starts_a_new_session(
        value: str) -> None:
    """A balanced route alone: a cookie value holding ``|`` (no key this side writes) starts
    a new session - an endpoint and a NEW cookie, no error - and that cookie sticks."""
    r = _router({})
    d: Any = r.route("GET", "a.test", "/", headers=[("cookie", f"INGRESSCOOKIE={value}")])
    assert d.endpoint is not None and d.set_cookie is not None
    new = d.set_cookie.split(";", 1)[0].split("=", 1)[1]
    assert "|" not in new and new != value
    again: Any = r.route("GET", "a.test", "/", headers=[("cookie", f"INGRESSCOOKIE={new}")])
    assert again.endpoint == d.endpoint and again.set_cookie is None


def test_a_persistent_route_still_reads_the_part_before_the_pipe() -> None:
    """Persistent mode (sticky.lua ``get_cookie_parsed``: "result.upstream_key =
    parsed_value[1]"): the value it wrote, and its first part with any backend key after it,
    lead to the same endpoint without a new cookie."""
    r = _router({P + "affinity-mode": "persistent"})
    d: Any = r.route("GET", "a.test", "/")
    value = d.set_cookie.split(";", 1)[0].split("=", 1)[1]
    key, sep, _ = value.partition("|")
    assert sep
    for sent in (value, key, key + "|someone-else"):
        again: Any = r.route("GET", "a.test", "/", headers=[("cookie", f"INGRESSCOOKIE={sent}")])
        assert again.endpoint == d.endpoint and again.set_cookie is None


def test_expires_cap_is_exactly_the_last_second_of_9999(monkeypatch: pytest.MonkeyPatch) -> None:
    """``now + expires`` one second before the cap, at it, and past it: 23:59:58, then
    23:59:59 twice (never a year 10000, never an error); Max-Age is written as given (RFC 6265
    §4.1.1 max-age-av is any delta-seconds, as ingress-nginx writes it; browsers cap it).
    (Fails with an off-by-one cap or a capped Max-Age.)"""
    import types

    last = 253402300799
    now = 1_700_000_000.0
    # The module's clock only (its ``time.time()`` for ``now + expires``).
    monkeypatch.setattr("ingresslib._balance_affinity.time",
                        types.SimpleNamespace(time=lambda: now))
    seen = []
    for expires in (last - 1 - int(now), last - int(now), last + 1 - int(now), 10 ** 15):
        r = _router({P + "session-cookie-expires": str(expires),
                     P + "session-cookie-max-age": "1000000000000"})
        d: Any = r.route("GET", "a.test", "/")
        attrs = d.set_cookie.split("; ")
        seen.append(next(a for a in attrs if a.startswith("Expires=")))
        assert "Max-Age=1000000000000" in attrs
    assert seen == ["Expires=Fri, 31 Dec 9999 23:59:58 GMT"] + \
        ["Expires=Fri, 31 Dec 9999 23:59:59 GMT"] * 3


# -- redirect Locations: _uri_bytes -----------------------------------------------------------

@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40))
def test_uri_bytes_only_encodes_what_is_not_printable_ascii(text: str) -> None:
    """Printable ASCII out; every printable character (``%``, ``?``, ``#``, ``+``, ``;``...)
    kept as it is, so an existing ``%XX`` is never encoded again; percent-decoding the result
    gives the bytes the client sent (latin-1: one character per byte); applying it again
    changes nothing. (Fails where ``%`` is encoded - a double encoding - or where reserved
    characters are quoted away.)"""
    out = _uri_bytes(text)
    assert all(0x21 <= b <= 0x7E for b in out)
    assert unquote_to_bytes(out) == unquote_to_bytes(text.encode("latin-1"))
    assert _uri_bytes(out.decode("ascii")) == out
    # Printable characters come out in order, untouched (the rest became %XX).
    kept = iter(out.decode())
    assert all(c in kept for c in text if "\x21" <= c <= "\x7e")


@pytest.mark.parametrize("text, want", [
    ("/a b?q=%C3%A9&x=1+2;y", b"/a%20b?q=%C3%A9&x=1+2;y"),
    ("/\x00\t\r\n\x7f", b"/%00%09%0D%0A%7F"),
    ("/?q=\xc3\xa9", b"/?q=%C3%A9"),   # httptools' UTF-8 query bytes, read as latin-1
    ("/%25%2F", b"/%25%2F"),
])
def test_uri_bytes_examples(text: str, want: bytes) -> None:
    assert _uri_bytes(text) == want


# -- www twins: which Ingress's path makes a location (controller.go getBackendServers) --------

W = {P + "from-to-www-redirect": "true"}


def _twins(*ings: Any) -> dict[str, tuple[str, str]]:
    return {k: (v[0], v[1].metadata.name) for k, v in www_twins(list(ings)).items()}


def test_twin_rules_against_controller_go() -> None:
    """getBackendServers: "Same paths but different types are allowed" (a second location);
    the same path and type is "already configured" (no location, no RedirectFromToWWW); an
    ImplementationSpecific ``/`` is a location next to createServers' root ``Prefix /``;
    canaries make no server ("Ingress %v is marked as Canary, ignoring"); a TLS-only host is
    no server."""
    older_exact = ingress("a", [("a.test", "/x", "Exact", "s", 80)], age=0)
    assert _twins(older_exact, ingress("b", [("a.test", "/x", "Prefix", "s", 80)], W, age=1)) \
        == {"www.a.test": ("a.test", "b")}
    older_prefix = ingress("a", [("a.test", "/x", "Prefix", "s", 80)], age=0)
    assert _twins(older_prefix, ingress("b", [("a.test", "/x", "Prefix", "s", 80)], W, age=1)) \
        == {}
    assert _twins(ingress("a", [("a.test", "/", "ImplementationSpecific", "s", 80)], W)) \
        == {"www.a.test": ("a.test", "a")}
    assert _twins(ingress("a", [("a.test", "/", "Prefix", "s", 80)]),
                  canary("c", "a.test", "/", "s2", 80, W)) == {}
    assert _twins(canary("c", "a.test", "/", "s2", 80, W)) == {}


class _CountingPaths(tuple):  # type: ignore[type-arg]
    """A rule's paths that count how often they are walked."""

    walks = 0

    def __iter__(self) -> Any:
        _CountingPaths.walks += 1
        return super().__iter__()


def _annotated(n: int) -> list[Any]:
    out = []
    for i in range(n):
        ing = ingress(f"i{i}", [(f"h{i % 50}.test", f"/p{i}", "Prefix", "s", 80),
                                (f"h{i % 50}.test", f"/q{i}", "Exact", "s", 80)], W, age=i)
        for rule in ing.spec.rules:
            # After construction: the model's __post_init__ makes a plain tuple of its paths.
            object.__setattr__(rule, "paths", _CountingPaths(rule.paths or ()))
        out.append(ing)
    return out


def test_www_twins_walks_each_rules_paths_a_bounded_number_of_times() -> None:
    """All Ingresses with the annotation, hosts shared by many: each rule's paths are walked
    at most twice per ``www_twins`` (the table is built once per change), so the work is
    linear in the Ingresses. (Fails where each Ingress rescans the others' rules.)"""
    for n in (100, 400):
        ings = _annotated(n)
        _CountingPaths.walks = 0
        twins = www_twins(ings)
        assert len(twins) == 50
        assert 0 < _CountingPaths.walks <= 2 * n

