"""The ``nginx.ingress.kubernetes.io/server-alias`` annotation (session 25).

ingress-nginx: internal/ingress/annotations/alias/main.go (a ``,``-separated list, trimmed,
empty names skipped, duplicates dropped, sorted); internal/ingress/controller/controller.go
``createServers`` (canaries skipped; per server the first Ingress, oldest first, with aliases
sets them, a later one is skipped: "Aliases already configured for server %q, skipping"; an
alias equal to the host or to any server's host is dropped); nginx.tmpl ``server_name
{{ $server.Hostname }} {{ aliases }}``: a request whose Host is an alias is served by the same
server block, so it routes exactly as a request to the host. nginx.go
``configureCertificates``: the alias gets the server's certificate when it covers the alias.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, parse_manifests
from ingresslib._cli import main
from ingresslib._router import Router
from ingresslib._table import RouteTable, parse_server_alias
from ingresslib._tls import CertificateStore

sys.path.insert(0, str(Path(__file__).parent))
from _asgi_call import asgi_get  # noqa: E402
from _budget import examples  # noqa: E402
from _matchers import MATCHER_PARAMS, required  # noqa: E402
from _proxy_harness import ingress_yaml, routed_pair, status_of  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
ALIAS = P + "server-alias"


@pytest.fixture(params=MATCHER_PARAMS)
def matcher(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


def build(matcher: Any, *docs: str) -> RouteTable:
    return RouteTable.build(parse_manifests("".join(docs)), matcher_class=matcher)


def default_backend_yaml(name: str, created: str = "2024-01-01T00:00:00Z") -> str:
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: '{created}'}}
spec:
  defaultBackend: {{service: {{name: dflt, port: {{number: 80}}}}}}
"""


def warnings_of(table: RouteTable) -> list[str]:
    return [str(d) for d in table.diagnostics]


# -- parsing ----------------------------------------------------------------------------------

def test_parse_splits_trims_dedupes_sorts_and_lowers() -> None:
    names, refused = parse_server_alias(" b.test, A.test,,b.test ,*.w.test , ")
    assert names == ["*.w.test", "a.test", "b.test"]
    assert refused == []


@pytest.mark.parametrize("bad", [r"~^www\d+\.example\.com$", ".example.com", "www.example.*",
                                 "a b.test", "a..test", "*.*.test"])
def test_parse_refuses_what_the_router_cannot_match(bad: str) -> None:
    names, refused = parse_server_alias(f"ok.test,{bad}")
    assert names == ["ok.test"]
    assert len(refused) == 1 and repr(bad) in refused[0]


# -- routing ----------------------------------------------------------------------------------

def test_alias_routes_exactly_as_its_host(matcher: Any) -> None:
    t = build(matcher,
              ingress_yaml("a", "a.test", {ALIAS: "b.test, *.w.test"}, extra_paths=("/api",)),
              ingress_yaml("other", "a.test", path="/other", created="2024-02-01T00:00:00Z"),
              default_backend_yaml("d", created="2024-03-01T00:00:00Z"))
    for path in ("/", "/api/x", "/other", "/zzz"):
        want = t.match("a.test", path)
        assert want is not None
        # The very same Match objects: same rules, default backend and route ids.
        for host in ("b.test", "B.Test:8080", "x.w.test"):
            assert t.match(host, path) is want, (host, path)
    assert t.match("b.test", "/other").ingress == "default/other"  # rules of every Ingress
    # A ``*.`` alias stands for one first label, as a ``*.`` rule host does.
    assert t.match("a.b.w.test", "/api").is_default_backend  # type: ignore[union-attr]
    assert t.match("w.test", "/api").is_default_backend  # type: ignore[union-attr]
    assert t.aliases == {"b.test": ("a.test", "default/a"), "*.w.test": ("a.test", "default/a")}


def test_without_alias_the_name_is_not_routed(matcher: Any) -> None:
    t = build(matcher, ingress_yaml("a", "a.test"))
    assert t.match("b.test", "/") is None


def test_oldest_ingress_with_the_annotation_sets_the_aliases(matcher: Any) -> None:
    t = build(matcher,
              ingress_yaml("plain", "a.test", created="2024-01-01T00:00:00Z"),
              ingress_yaml("old", "a.test", {ALIAS: "b.test"}, path="/o", created="2024-02-01T00:00:00Z"),
              ingress_yaml("new", "a.test", {ALIAS: "c.test"}, path="/n", created="2024-03-01T00:00:00Z"))
    assert t.match("b.test", "/n").ingress == "default/new"  # type: ignore[union-attr]
    assert t.match("c.test", "/n") is None
    assert any("Ingress default/new" in w and "already set by the older Ingress default/old" in w
               for w in warnings_of(t))


def test_alias_that_is_a_rule_host_is_dropped(matcher: Any) -> None:
    t = build(matcher,
              ingress_yaml("a", "a.test", {ALIAS: "a.test,b.test,*.c.test"}),
              ingress_yaml("b", "b.test", path="/b"),
              ingress_yaml("c", "*.c.test", path="/c"))
    assert t.match("b.test", "/b").path == "/b"  # type: ignore[union-attr]
    assert t.match("x.c.test", "/c").path == "/c"  # type: ignore[union-attr]
    assert t.aliases == {}
    ws = warnings_of(t)
    assert any("'b.test' is a rule host" in w for w in ws)
    assert any("'*.c.test' is a rule host" in w for w in ws)
    assert any("info:" in w and "'a.test' is the host itself" in w for w in ws)


def test_alias_claimed_by_two_servers_goes_to_the_first(matcher: Any) -> None:
    # nginx: "conflicting server name"; the servers are written sorted by host name.
    t = build(matcher,
              ingress_yaml("z", "z.test", {ALIAS: "x.test"}, created="2024-01-01T00:00:00Z"),
              ingress_yaml("m", "m.test", {ALIAS: "x.test"}, created="2024-02-01T00:00:00Z"))
    assert t.match("x.test", "/").ingress == "default/m"  # type: ignore[union-attr]
    assert any("Ingress default/z" in w and "already an alias of host m.test" in w for w in warnings_of(t))


def test_alias_of_the_hostless_rules(matcher: Any) -> None:
    # ingress-nginx: a host-less rule's aliases go to the ``_`` server. An exact server_name
    # beats a ``*.`` one, so the alias takes the name from the wildcard rule.
    t = build(matcher,
              ingress_yaml("h", "", {ALIAS: "a.w.test"}, path="/h"),
              ingress_yaml("w", "*.w.test", path="/w"))
    assert t.match("a.w.test", "/h").path == "/h"  # type: ignore[union-attr]
    assert t.match("b.w.test", "/w").path == "/w"  # type: ignore[union-attr]
    assert t.explain("a.w.test", "/h")["server_alias"] == {
        "alias": "a.w.test", "host": None, "ingress": "default/h"}


def test_one_ingress_with_two_hosts_aliases_both(matcher: Any) -> None:
    doc = ingress_yaml("a", "a.test", {ALIAS: "x.test"}) + ingress_yaml("b", "b.test", {ALIAS: "y.test"})
    t = build(matcher, doc)
    assert t.match("x.test", "/").ingress == "default/a"  # type: ignore[union-attr]
    assert t.match("y.test", "/").ingress == "default/b"  # type: ignore[union-attr]


def test_canary_alias_is_ignored_and_the_main_alias_reaches_the_canary(matcher: Any) -> None:
    canary = {P + "canary": "true", P + "canary-weight": "100", ALIAS: "c.test"}
    t = build(matcher, ingress_yaml("a", "a.test", {ALIAS: "b.test"}),
              ingress_yaml("can", "a.test", canary, service="web2", created="2024-02-01T00:00:00Z"))
    m = t.match("b.test", "/")
    assert m is not None and m.canary is not None and m.canary.service == "web2"
    assert t.match("c.test", "/") is None
    assert any("Ingress default/can" in w and "canary" in w for w in warnings_of(t))


@settings(max_examples=examples(0.2), deadline=None)
@given(hosts=st.lists(st.sampled_from(["a.test", "b.test", "c.test", "*.w.test", ""]), min_size=1, max_size=4),
       aliases=st.lists(st.sampled_from(["x.test", "y.test", "b.test", "*.v.test", "q.w.test"]), max_size=3),
       paths=st.lists(st.sampled_from(["/", "/a", "/a/b", "/b"]), min_size=1, max_size=3),
       probe=st.sampled_from(["/", "/a", "/a/b/c", "/bb"]))
def test_an_alias_request_routes_as_its_servers_host(hosts: list[str], aliases: list[str],
                                                      paths: list[str], probe: str) -> None:
    docs = "".join(ingress_yaml(f"i{n}", h, {ALIAS: ",".join(aliases)} if n == 0 else None,
                                path=paths[0], extra_paths=tuple(paths[1:]),
                                created=f"2024-01-0{n + 1}T00:00:00Z")
                   for n, h in enumerate(hosts))
    rule_hosts = {h for h in hosts if h}
    # Only the oldest Ingress (i0) has the annotation: its host's server gets every alias
    # that is not a rule host of its own.
    want = {a: (hosts[0] or None, "default/i0") for a in aliases if a not in rule_hosts}
    for cls in [p.values[0] for p in MATCHER_PARAMS if p.values[0] is not None]:
        t = build(cls, docs)
        assert dict(t.aliases) == want
        for alias, (host, _ing) in t.aliases.items():
            name = "z" + alias[1:] if alias.startswith("*.") else alias
            # The host group's own request: a host-less group is reached with an empty Host.
            assert t.match(name, probe) is t.match(host or "", probe)


# -- check, the proxy core, ASGI ----------------------------------------------------------------

def test_check_no_longer_says_not_implemented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(ingress_yaml("a", "a.test", {ALIAS: "b.test,~^x"}))
    main(["check", "-f", str(f)])
    got = capsys.readouterr()
    out = got.out + got.err
    assert "not implemented" not in out
    assert "regex server name" in out


def test_proxy_core_routes_the_alias() -> None:
    pair = routed_pair(ingress_yaml("a", "a.test", {ALIAS: "b.test"}))
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: b.test\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"ok /x")
    assert [o.endpoint for o in pair.opens] == [("10.0.0.1", 80)]
    other = routed_pair(ingress_yaml("a", "a.test"))
    assert status_of(other.send(b"GET /x HTTP/1.1\r\nHost: b.test\r\n\r\n")) == 404


def test_asgi_routes_the_alias() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(parse_manifests(ingress_yaml("a", "a.test", {ALIAS: "b.test,*.w.test"})),
                       backends={"default/web": app})
    assert asgi_get(asgi, "b.test")[0] == 200
    assert asgi_get(asgi, "q.w.test")[0] == 200
    assert asgi_get(asgi, "c.test")[0] == 404
    assert calls == ["/x", "/x"]


# -- TLS ----------------------------------------------------------------------------------------

def _secret_yaml(name: str, cert: trustme.LeafCert) -> str:
    crt = base64.b64encode(cert.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(cert.private_key_pem.bytes()).decode()
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
"""


def test_alias_gets_its_servers_certificate_when_it_covers_it() -> None:
    ca = trustme.CA()
    res = parse_manifests(
        ingress_yaml("a", "a.test", {ALIAS: "b.test,c.test"}, tls=True)
        + _secret_yaml("a-tls", ca.issue_cert("a.test", "b.test")))
    store = CertificateStore()
    store.update(res)
    own = store.context_for("a.test")
    assert own is not store.default_context
    assert store.context_for("b.test") is own  # covered: the server's certificate
    assert store.context_for("c.test") is store.default_context  # not covered: none of its own
    assert "b.test" in store.hosts and "c.test" not in store.hosts


def test_router_alias_match_is_the_hosts() -> None:
    r = Router(parse_manifests(ingress_yaml("a", "a.test", {ALIAS: "b.test"})))
    assert r.table.match("b.test", "/") is r.table.match("a.test", "/")


def test_explain_names_the_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(ingress_yaml("a", "a.test", {ALIAS: "b.test,*.w.test"}))
    main(["explain", "-f", str(f), "http://B.test:80/x"])
    main(["explain", "-f", str(f), "http://q.w.test/x"])
    main(["explain", "-f", str(f), "http://a.test/x"])
    out = capsys.readouterr().out
    assert "by the server-alias 'b.test' of host a.test (Ingress default/a)" in out
    assert "by the server-alias '*.w.test' of host a.test (Ingress default/a)" in out
    assert out.count("by the server-alias") == 2
