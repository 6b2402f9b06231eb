"""Review of how per-route annotations are read (session 18): proxy/_annotations.py, the
from-to-www twins (_www.py) and which hosts are TLS hosts (_tls_hosts.py).

Every expected value is written from the ingress-nginx (or Go) source quoted next to the test,
not from ingresslib's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._cli import main
from ingresslib._errors import ValidationError
from ingresslib._tls_hosts import tls_hosts
from ingresslib._www import www_twins
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import LOCATION_OPTIONS, PREFIX, parse_route_options

from _asgi_call import asgi_get
from _proxy_harness import ingress_yaml

P = PREFIX
SETTINGS = ProxySettings()
CANARY = {P + "canary": "true", P + "canary-weight": "100"}


def _parse(annotations: dict[str, str], rule_path: str = "/") -> Any:
    return parse_route_options(annotations, rule_path, SETTINGS, where="Ingress default/c")


# --- 1. a canary Ingress's location annotations ------------------------------------------------
#
# kubernetes/ingress-nginx docs/user-guide/nginx-configuration/annotations.md (Canary): "when you
# mark an ingress as canary, then all the other non-canary annotations will be ignored
# (inherited from the corresponding main ingress) except nginx.ingress.kubernetes.io/load-balance,
# nginx.ingress.kubernetes.io/upstream-hash-by, and annotations related to session affinity".
# ingresslib serves canary traffic with the main rule's options (Decision.match), so these are
# ignored here too; before this review they were ignored silently (and an invalid one was
# reported as "using the default <value>", a value canary traffic never gets).

@pytest.mark.parametrize("name,value", [
    ("rewrite-target", "/new"), ("proxy-read-timeout", "5"), ("ssl-redirect", "false"),
    ("proxy-body-size", "8m"), ("permanent-redirect", "https://elsewhere.test/"),
    ("backend-protocol", "HTTPS"), ("from-to-www-redirect", "true"),
])
def test_canary_location_annotation_is_reported_ignored(name: str, value: str) -> None:
    opts = _parse({**CANARY, P + name: value})
    assert [w for w in opts.warnings if f"annotation {P}{name}:" in w] == [
        f"Ingress default/c: annotation {P}{name}: ignored on a canary Ingress (as in "
        "ingress-nginx: the main Ingress's applies to canary traffic)"]


def test_canary_invalid_value_does_not_claim_a_default_is_used() -> None:
    # "8mb" is no nginx size; on a main Ingress the default is used (and said). On a canary the
    # main Ingress's value applies whatever this one is: no "using the default 1048576".
    opts = _parse({**CANARY, P + "proxy-body-size": "8mb"})
    assert not any("using the default" in w for w in opts.warnings), opts.warnings
    assert any("ignored on a canary Ingress" in w for w in opts.warnings)
    # The same value on a main Ingress: the usual warning.
    main_opts = _parse({P + "proxy-body-size": "8mb"})
    assert any("using the default 1048576" in w for w in main_opts.warnings)


def test_canary_orphan_code_annotation_is_reported_too() -> None:
    # temporal-redirect-code is read only with temporal-redirect: on a canary each location
    # annotation present is named, whether or not it would have been read.
    opts = _parse({**CANARY, P + "temporal-redirect-code": "307"})
    assert any(f"{P}temporal-redirect-code: ignored on a canary" in w for w in opts.warnings)


def test_canary_flag_read_as_go_parsebool() -> None:
    # canary/main.go reads "canary" with GetBoolAnnotation (strconv.ParseBool): "True" and "1"
    # make a canary; "yes" does not (the Ingress is a main one, its options apply).
    assert any("ignored on a canary" in w
               for w in _parse({P + "canary": "1", P + "proxy-read-timeout": "5"}).warnings)
    opts = _parse({P + "canary": "yes", P + "proxy-read-timeout": "5"})
    assert opts.read_timeout == 5.0 and not any("canary" in w for w in opts.warnings)


def test_check_names_canary_location_annotations(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "canary.yaml"
    f.write_text(ingress_yaml("main", "a.test")
                 + ingress_yaml("can", "a.test", {**CANARY, P + "rewrite-target": "/x"},
                                service="web2", created="2024-02-01T00:00:00Z"))
    assert main(["check", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    assert (f"Ingress default/can: annotation {P}rewrite-target: ignored on a canary Ingress"
            in out + err)


def test_canary_traffic_takes_the_main_rules_options() -> None:
    # What the warning says: with canary-weight 100 every request goes to the canary's Service,
    # with the main rule's (absent) rewrite: the path reaches it unchanged.
    seen: list[tuple[str, str]] = []

    def app(name: str) -> Any:
        async def run(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, scope["path"]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return run

    manifests = (ingress_yaml("main", "a.test")
                 + ingress_yaml("can", "a.test", {**CANARY, P + "rewrite-target": "/x"},
                                service="web2", created="2024-02-01T00:00:00Z"))
    asgi = IngressASGI(parse_manifests(manifests),
                       backends={"default/web": app("main"), "default/web2": app("canary")})
    assert asgi_get(asgi, "a.test", "/page", b"")[0] == 200
    assert seen == [("canary", "/page")]


def test_location_options_are_those_parse_route_options_reads() -> None:
    # Every annotation in LOCATION_OPTIONS is one parse_route_options reads (a main Ingress
    # with an invalid value for it gets a warning naming it), so the canary warning names no
    # annotation the proxy would not have used anyway.
    for name in sorted(LOCATION_OPTIONS):
        ann = {P + name: "\x01"}
        if name == "temporal-redirect-code":
            ann[P + "temporal-redirect"] = "https://x.test/"
        warnings = _parse(ann).warnings
        assert any(f"annotation {P}{name}:" in w and "not implemented" not in w
                   for w in warnings), (name, warnings)


# --- 2. proxy-next-upstream: Go's \s -----------------------------------------------------------
#
# kubernetes/ingress-nginx internal/ingress/annotations/proxy/main.go:
#   validUpstreamAnnotation = regexp.MustCompile(`^((error|timeout|invalid_header|http_500|...
#       |non_idempotent|off)\s?)+$`)
#   proxyNextUpstreamAnnotation: {Validator: parser.ValidateRegex(validUpstreamAnnotation, false)
# golang/go src/regexp/syntax/doc.go: "\s  whitespace (== [\t\n\f\r ])" -- no vertical tab.
# A value the validator refuses is not used: the ConfigMap's proxy-next-upstream applies.

def test_next_upstream_vertical_tab_is_refused_as_in_go() -> None:
    opts = _parse({P + "proxy-next-upstream": "error\x0bhttp_502"})
    assert opts.next_upstream == frozenset(SETTINGS.proxy_next_upstream)
    assert any(f"annotation {P}proxy-next-upstream:" in w for w in opts.warnings)


@pytest.mark.parametrize("sep", [" ", "\t", "\n", "\f", "\r"])
def test_next_upstream_go_whitespace_separators_still_accepted(sep: str) -> None:
    opts = _parse({P + "proxy-next-upstream": f"error{sep}http_502"})
    assert opts.next_upstream == frozenset({"error", "http_502"}) and not opts.warnings


# --- 3. from-to-www-redirect twins (nginx.go buildRedirects) -----------------------------------
#
# kubernetes/ingress-nginx internal/ingress/controller/nginx.go buildRedirects:
#   if strings.HasPrefix(to, "www.") { from = strings.TrimPrefix(to, "www.") } else {
#       from = fmt.Sprintf("www.%v", to) }
#   for _, esrv := range servers { if esrv.Hostname == from { found = true ... } }
#   if found { klog.Warningf("Already exists an Ingress with %q hostname. Skipping creation of
#       redirection from %q to %q.", ...) continue }

WWW = {P + "from-to-www-redirect": "True"}  # strconv.ParseBool


def _twins(manifests: str) -> dict[str, str]:
    table = Router(parse_manifests(manifests)).table
    return {twin: to for twin, (to, _ing) in www_twins(table.served).items()}


def test_www_twins_both_directions_and_no_loop() -> None:
    assert _twins(ingress_yaml("a", "a.test", WWW)) == {"www.a.test": "a.test"}
    assert _twins(ingress_yaml("a", "www.a.test", WWW)) == {"a.test": "www.a.test"}
    # Both forms are rule hosts (each even asking): no twin, so no redirect loop.
    both = (ingress_yaml("a", "a.test", WWW)
            + ingress_yaml("b", "www.a.test", WWW, created="2024-02-01T00:00:00Z"))
    assert _twins(both) == {}
    # A canary asking makes no server ("Ingress %v is marked as Canary, ignoring").
    assert _twins(ingress_yaml("a", "a.test")
                  + ingress_yaml("c", "a.test", {**CANARY, **WWW},
                                 created="2024-02-01T00:00:00Z")) == {}


# --- 4. TLS hosts ------------------------------------------------------------------------------
#
# kubernetes/ingress-nginx internal/ingress/controller/controller.go createServers: "if
# tlsSecretName == "" { klog.V(3).Infof("Host %q is listed in the TLS section but secretName is
# empty. Using default certificate", host); servers[host].SSLCert =
# n.getDefaultSSLCertificate(); continue }": a rule host of an Ingress with tls is a TLS host
# (ssl-redirect) even without a secretName.

def test_tls_without_secret_name_still_makes_a_tls_host() -> None:
    doc = ingress_yaml("a", "a.test").replace("spec:", "spec:\n  tls: [{hosts: [a.test]}]", 1)
    hosts = tls_hosts(parse_manifests(doc))
    # The request's host is compared as nginx's server_name is: case-insensitively, one
    # trailing dot dropped.
    assert hosts("a.test") and hosts("A.Test.") and not hosts("b.test")
    # A tls.hosts name is a DNS-1123 subdomain (the API server's validation, also here): an
    # upper-case or dotted-at-the-end name never reaches tls_hosts.
    with pytest.raises(ValidationError, match="spec.tls"):
        parse_manifests(doc.replace("hosts: [a.test]", "hosts: ['A.TEST.']"))
