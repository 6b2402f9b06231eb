"""Session 33 (x16): a second engineer's review of round 4 (x14's per-element CIDR checks in
``ProxySettings.__post_init__`` and ``TrustPolicy``; x15's ``session-cookie-name`` check).

DEFECT (``test_fix_*``, failed before the fix):

* A ``session-cookie-name`` outside ingress-nginx's ``BasicCharsRegex`` (sessionaffinity/
  main.go, parser/validators.go) was reported as "invalid cookie name 'route|v2'", but
  ``route|v2`` *is* a valid cookie name (RFC 6265's token, which ingresslib itself checked
  until round 4): ``check`` / the load warnings told the user their name was wrong without
  saying what ingress-nginx takes. The warning now names the characters (letters, digits,
  ``-._~/:``) and says that this is ingress-nginx's rule.

Checked and found right (no change):

* ``ProxySettings`` with each of the four lists (``proxy_real_ip_cidr``, ``block_cidrs``,
  ``whitelist_source_range``, ``denylist_source_range``): blanks around an element (Go's
  spaces, U+00A0 too), ``0.0.0.0/0``, ``::/0``, ``::``, a single IPv4 / IPv6 address, IPv6
  with a prefix in either case, ``::ffff:10.0.0.0/104``, host bits set, ``010.0.0.1`` and
  ``/08`` (nginx's reading) are taken; a blank inside (``10.0.0.0 /8``), a netmask, ``/33``,
  an empty element, a comma, a string instead of a tuple, a non-str item all raise naming
  the setting. ``TrustPolicy`` (HTTP proxy, IngressASGI, the TCP proxy's PROXY-protocol
  trust) reads every element ``ProxySettings`` lets through, to the same networks
  ``ipaddress`` read before for the values both take.
* Every value the ConfigMap reader (``parse_config_data``) returns for the four keys goes
  through ``dataclasses.replace`` (its own, ``ProxyServer``'s overrides, the auth pool's)
  again: the Go-written forms (``::ffff:0.0.0.0/96``, ``1.0.2.3/32``) read back as themselves.
* Cost: ``ProxySettings`` is built at start-up, per reload and per auth keep-alive pool, not
  per request; ``__post_init__`` with 1000 CIDRs is ~9 ms. ``TrustPolicy`` costs about twice
  what it did (nginx's address reader in Python): ~7 us for one CIDR, and ``_tcp_proxy``
  builds one per PROXY-protocol connection (noted in the report, left alone).
* A cookie name with ``/`` or ``:`` (``team/sid``, ``app:sid``): written as the Set-Cookie's
  name through IngressASGI and read back from the Cookie header by ``cookie_value`` (split at
  the first ``=``), sticking to the same endpoint; ``explain`` names the cookie as written.

Noticed, left alone: nginx's ``set_real_ip_from`` falls back to a host name lookup (nginx
1.13.1+, ngx_http_realip_from -> ngx_inet_resolve_host), so ``255.255.255.255`` is taken
there; ingresslib refuses it for ``proxy_real_ip_cidr`` (the ConfigMap since round 3, the
Python API since round 4). No peer has that address, so nothing that works is lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from typing import Any

import pytest

from ingresslib import IngressASGI
from ingresslib._balance import parse_balancer_spec
from ingresslib._config import parse_config_data
from ingresslib._router import Router
from ingresslib.proxy._headers import TrustPolicy
from ingresslib.proxy._settings import ProxySettings

from _router_helpers import P, ingress, resources, simple_backend

_LISTS = ("proxy_real_ip_cidr", "block_cidrs", "whitelist_source_range",
          "denylist_source_range")


def _settings(name: str, value: tuple[str, ...]) -> ProxySettings:
    kw: dict[str, Any] = {name: value}
    return ProxySettings(**kw)


def _name_warning(name: str) -> str:
    spec, warn = parse_balancer_spec({P + "affinity": "cookie", P + "session-cookie-name": name},
                                     "round_robin", ("round_robin",), "/")
    assert spec.affinity is not None and spec.affinity.name == "INGRESSCOOKIE"
    texts = [text for key, text in warn if key == P + "session-cookie-name"]
    assert len(texts) == 1
    return texts[0]


@pytest.mark.parametrize("name", ["route|v2", "sid$", "a b"])
def test_fix_refused_cookie_name_says_what_ingress_nginx_takes(name: str) -> None:
    text = _name_warning(name)
    assert repr(name) in text and "INGRESSCOOKIE" in text
    assert "ingress-nginx" in text and "-._~/:" in text
    assert "invalid cookie name" not in text  # route|v2 is a valid RFC 6265 name


@pytest.mark.parametrize("value", [
    " 10.0.0.0/8 ", "\u00a010.0.0.1\t", "0.0.0.0/0", "::/0", "::", "10.0.0.1", "fe80::1",
    "2001:DB8::/32", "2001:db8::1/128", "::ffff:10.0.0.0/104", "10.0.0.5/8", "10.0.0.0/08"])
def test_legitimate_elements_are_taken_by_every_list(value: str) -> None:
    for name in _LISTS:
        s = _settings(name, (value,))
        assert getattr(s, name) == (value,)
    (net,) = TrustPolicy((value,)).networks
    assert net == ipaddress.ip_network(value.strip(), strict=False)


@pytest.mark.parametrize("value", ["10.0.0.0 /8", "10.0.0.0/ 8", "10.0.0.0/255.0.0.0",
                                   "1.2.3.4/33", "::1/129", "", " ", "fe80::1%eth0",
                                   "10.0.0.1,10.0.0.2"])
def test_bad_elements_raise_naming_the_setting(value: str) -> None:
    for name in _LISTS:
        with pytest.raises(ValueError, match=f"^{name}: "):
            _settings(name, ("10.0.0.1", value))


def test_configmap_values_survive_every_replace() -> None:
    text = ("::ffff:10.0.0.0/96, 1..2.3, 010.0.0.1, 2001:DB8::/32, 0.0.0.0/0, ::/0, "
            "10.0.0.1\x1c")
    cfg = parse_config_data({"proxy-real-ip-cidr": text, "block-cidrs": text,
                             "whitelist-source-range": text, "denylist-source-range": text})
    s = cfg.settings
    lists = {name: getattr(s, name) for name in _LISTS}
    assert all(len(v) == 7 for v in lists.values())
    again = dataclasses.replace(s, upstream_keepalive_requests=5)
    assert {name: getattr(again, name) for name in _LISTS} == lists
    assert len(TrustPolicy(again.proxy_real_ip_cidr).networks) == 7


def _asgi_get(asgi: IngressASGI, cookie: str | None) -> tuple[bytes, str | None]:
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"host", b"a.test")] + ([(b"cookie", cookie.encode())] if cookie else [])
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "client": ("10.9.9.9", 4000),
             "server": ("127.0.0.1", 80), "headers": headers}
    asyncio.run(asgi(scope, receive, send))
    start = sent[0]
    assert start["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    set_cookie = [v.decode() for k, v in start["headers"] if k.lower() == b"set-cookie"]
    return body, set_cookie[0] if set_cookie else None


@pytest.mark.parametrize("name", ["team/sid", "app:sid"])
def test_slash_and_colon_names_stick_through_ingress_asgi(name: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The endpoint the proxy picked, as the app sees it (X-Forwarded-* aside).
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    ann = {P + "affinity": "cookie", P + "session-cookie-name": name}
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann)
    router = Router(resources(ing, *simple_backend("web", ["10.0.0.1", "10.0.0.2",
                                                           "10.0.0.3"])), seed=3)
    asgi = IngressASGI(router, {"default/web": app})
    body, set_cookie = _asgi_get(asgi, None)
    assert body == b"ok" and set_cookie is not None and set_cookie.startswith(name + "=")
    pair = set_cookie.split(";")[0]
    for _ in range(4):
        body, again = _asgi_get(asgi, "x=1; " + pair)
        assert body == b"ok" and again is None  # read back: the session stands
