"""Session 24, P2: proxy actions and annotations against ingress-nginx.

1. The timeout annotations nginx.tmpl writes as ``"<value>s"`` take at most 2147483 seconds,
   as nginx does: ``proxy_connect_timeout {{ $location.Proxy.ConnectTimeout }}s;`` (send,
   read alike), and nginx's ngx_parse_time (src/core/ngx_parse.c) refuses a unit-``s`` value
   over NGX_MAX_INT32_VALUE / 1000 for a millisecond setting ("if (step != st_msec &&
   !is_sec) { scale *= 1000; max /= 1000; }"): ``nginx -t`` fails. Before, the annotation
   armed a 35-day timer for "3000000"; the ConfigMap keys already had the bound.
   ``proxy-next-upstream-timeout`` is written bare, which nginx does not check: unbound.
2. ``upstream-hash-by-use-hostname`` is an ingress-nginx annotation (upstreamhashby/main.go
   ``GetBoolAnnotation("upstream-hash-by-use-hostname", ing)``, balancer/chash.lua
   ``build_node_map``); it was reported as a misspelling of ``upstream-hash-by-subset``.
3. One text for "ignored on a canary Ingress" (location options, access annotations, source
   ranges), not named when the canary copies its main Ingress's value.
"""

from __future__ import annotations

import logging

import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, status_of

P = PREFIX
WHERE = "Ingress default/a"


def _pair(annotations: dict[str, str]) -> ProxyPair:
    return ProxyPair(router=Router(parse_manifests(
        ingress_yaml("a", "a.test", annotations) + WEB_SERVICE_YAML)))


def _get(pair: ProxyPair, target: str = "/q") -> bytes:
    return pair.send(f"GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())


# --- 1. the timeout annotations' bound ----------------------------------------------------------

TIMEOUTS = [
    ("proxy-connect-timeout", "connect_timeout", 5.0),
    ("proxy-read-timeout", "read_timeout", 60.0),
    ("proxy-send-timeout", "send_timeout", 60.0),
]


@pytest.mark.parametrize(("name", "attr", "default"), TIMEOUTS)
def test_timeout_annotation_past_nginx_bound_is_refused(name: str, attr: str,
                                                        default: float) -> None:
    opts = parse_route_options({P + name: "2147484"}, "/", ProxySettings(), where=WHERE)
    assert getattr(opts, attr) == default
    shown = str(int(default))
    assert opts.warnings == (
        f"{WHERE}: annotation {P}{name}: invalid timeout '2147484': must be at most 2147483 "
        f'seconds (about 24 days): nginx refuses a longer one ("invalid value"); using the '
        f"default {shown}",)


@pytest.mark.parametrize(("name", "attr", "default"), TIMEOUTS)
def test_timeout_annotation_at_nginx_bound_is_taken(name: str, attr: str,
                                                    default: float) -> None:
    opts = parse_route_options({P + name: "2147483"}, "/", ProxySettings(), where=WHERE)
    assert getattr(opts, attr) == 2147483.0
    assert opts.warnings == ()


def test_next_upstream_timeout_annotation_is_written_bare_and_not_bound_so() -> None:
    # "proxy_next_upstream_timeout {{ $location.Proxy.NextUpstreamTimeout }};" has no unit:
    # ngx_parse_time returns a trailing bare number unchecked ("if (valid) { return total +
    # value * scale; }"), as the ConfigMap key reads it (test_review_s23_config.py).
    opts = parse_route_options({P + "proxy-next-upstream-timeout": "3000000"}, "/",
                               ProxySettings(), where=WHERE)
    assert opts.next_upstream_timeout == 3000000.0 and opts.warnings == ()


def test_timeout_annotation_past_bound_keeps_the_default_on_the_wire() -> None:
    pair = _pair({P + "proxy-connect-timeout": "3000000", P + "proxy-send-timeout": "3000000"})
    _get(pair)
    assert [(o.connect_timeout, o.send_timeout) for o in pair.opens] == [(5.0, 60.0)]


def test_timeout_annotation_past_bound_warns_in_the_router(
        caplog: pytest.LogCaptureFixture) -> None:
    router = Router(parse_manifests(ingress_yaml("a", "a.test", {
        P + "proxy-read-timeout": "3000000"}) + WEB_SERVICE_YAML))
    pair = ProxyPair(router=router)
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        out = _get(pair)
    assert status_of(out) == 200
    assert pair.proxy.options_for(router.table.routes[0]).read_timeout == 60.0
    assert [r.getMessage() for r in caplog.records if "proxy-read-timeout" in r.getMessage()] == [
        f"{WHERE}: annotation {P}proxy-read-timeout: invalid timeout '3000000': must be at most "
        '2147483 seconds (about 24 days): nginx refuses a longer one ("invalid value"); using '
        "the default 60"]


# --- 2. upstream-hash-by-use-hostname -------------------------------------------------------------


def test_upstream_hash_by_use_hostname_is_not_taken_for_a_misspelling() -> None:
    # Implemented since session 26 (_balance_hash.py): no warning at all, not a misspelling.
    opts = parse_route_options({P + "upstream-hash-by-use-hostname": "true"}, "/",
                               ProxySettings(), where=WHERE)
    assert opts.warnings == ()


def test_a_real_misspelling_next_to_it_is_still_offered_the_name() -> None:
    opts = parse_route_options({P + "upstream-hash-by-use-hostnam": "true"}, "/",
                               ProxySettings(), where=WHERE)
    assert opts.warnings == (
        f"{WHERE}: annotation {P}upstream-hash-by-use-hostnam: unknown annotation, ignored; "
        f"did you mean {P}upstream-hash-by-use-hostname?",)


# --- 3. one "ignored on a canary Ingress" ---------------------------------------------------------

CANARY = {P + "canary": "true", P + "canary-weight": "50"}


def test_canary_ignored_texts_for_each_kind_of_annotation() -> None:
    ann = {**CANARY, P + "proxy-read-timeout": "30", P + "whitelist-source-range": "10.0.0.0/8",
           P + "auth-url": "http://auth.test/", P + "auth-type": "ntlm"}
    opts = parse_route_options(ann, "/", ProxySettings(), where=WHERE, main_annotations={})
    assert sorted(opts.warnings) == sorted([
        f"{WHERE}: annotation {P}proxy-read-timeout: ignored on a canary Ingress (as in "
        "ingress-nginx: the main Ingress's applies to canary traffic)",
        f"{WHERE}: annotation {P}whitelist-source-range: ignored on a canary Ingress (as in "
        "ingress-nginx: the main Ingress's access control applies to canary traffic)",
        # auth-url is implemented since session 26 (proxy/_extauth.py): a location option
        # the main Ingress's value of applies, no "not implemented" any more.
        f"{WHERE}: annotation {P}auth-url: ignored on a canary Ingress (as in ingress-nginx: "
        "the main Ingress's applies to canary traffic)",
        # An access annotation ingresslib does not implement: said as before (satisfy is
        # implemented since session 26: an auth-type ingresslib does not know instead).
        f"{WHERE}: annotation {P}auth-type: ignored on a canary Ingress (as in ingress-nginx: "
        "the main Ingress's access control applies to canary traffic), and not implemented "
        "by ingresslib anyway",
    ])
    assert opts.access is None and opts.ext_auth is None and opts.read_timeout == 60.0


def test_canary_copying_its_main_values_is_not_warned() -> None:
    main = {P + "proxy-read-timeout": "30", P + "whitelist-source-range": "10.0.0.0/8",
            P + "auth-url": "http://auth.test/"}
    opts = parse_route_options({**CANARY, **main}, "/", ProxySettings(), where=WHERE,
                               main_annotations=main)
    assert opts.warnings == ()
