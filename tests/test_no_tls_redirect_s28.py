"""no-tls-redirect-locations (session 28, K1; the patch to proxy/_annotations.py and
proxy/_actions.py): template.go locationConfigForLua "force_no_ssl_redirect =
isLocationInLocationList(l, all.Cfg.NoTLSRedirectLocations)" -- the location's rule path starts
with an item -- and lua_ingress.lua redirect_to_https() "if location_config.force_no_ssl_redirect
then return false end", before force-ssl-redirect."""

from __future__ import annotations

from ingresslib import Router, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib.proxy import ProxySettings

from _proxy_harness import ProxyPair, status_of
from test_configmap_keys_s28 import M, asgi

P = "nginx.ingress.kubernetes.io/"


def _m(path: str) -> str:
    return M.replace("{ANN}", '{"' + P + 'force-ssl-redirect": "true"}').replace(
        "{path: /,", "{path: " + path + ",")


def both(s: ProxySettings, rule_path: str, path: str) -> int:
    pair = ProxyPair(router=Router(parse_manifests(_m(rule_path)), seed=1), settings=s)
    status = status_of(pair.send(f"GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode()))
    other = asgi(s, path, [], {P + "force-ssl-redirect": "true"}) if rule_path == "/" else status
    assert status == other
    return status


def test_default_exempts_a_location_whose_rule_path_starts_with_the_acme_prefix() -> None:
    s = ProxySettings()
    assert both(s, "/.well-known/acme-challenge/tok", "/.well-known/acme-challenge/tok") == 200
    # A challenge request a "/" rule routes is redirected, as in ingress-nginx.
    assert both(s, "/", "/.well-known/acme-challenge/tok") == 308


def test_configmap_key_sets_the_list() -> None:
    cfg = parse_config_data({"no-tls-redirect-locations": "/public, /open"})
    assert cfg.warnings == () and cfg.settings.no_tls_redirect_locations == ("/public", "/open")
    assert both(cfg.settings, "/public", "/public/x") == 200
    assert both(cfg.settings, "/", "/public/x") == 308
    assert both(cfg.settings, "/.well-known/acme-challenge/t",
                "/.well-known/acme-challenge/t") == 308
    s = parse_config_data({"no-tls-redirect-locations": "/"}).settings
    assert both(s, "/", "/a") == 200
