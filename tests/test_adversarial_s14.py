"""Adversarial review (session 14): can a client reach a backend, or a path of it, that its
route did not decide? The deployment attacked: one Service ``web`` behind a public ``/`` rule
and a protected ``/admin`` rule (source-range allowlist, or basic auth) -- the usual way to
protect an internal path -- plus canary Ingresses, rewrite-target and regex-looking paths.

``test_defect_*`` failed before the fix named in it; ``test_guard_*`` pin attacks that were
tried and refused (they held before, and must keep holding); what is not a defect (a documented
choice, or ingress-nginx's own behaviour) is listed in the session report, not tested here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import base64
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib._asgi import IngressASGI
from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, ProxySettings
from ingresslib.proxy._annotations import parse_route_options

from test_asgi_conformance import proxy_answer, wire

P = "nginx.ingress.kubernetes.io/"
ALLOW = {P + "whitelist-source-range": "10.0.0.0/8"}
#: Outside the allowlist.
ATTACKER = "192.0.2.1"


def ingress(name: str, host: str, paths: list[tuple[str, str, str]],
            annotations: dict[str, str] | None = None,
            created: str = "2024-01-01T00:00:00Z") -> str:
    """One Ingress; ``paths`` are ``(path, pathType, service)``."""
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in (annotations or {}).items())
    rules = "".join(f"""
      - path: {p!r}
        pathType: {t}
        backend: {{service: {{name: {s}, port: {{number: 80}}}}}}""" for p, t, s in paths)
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: '{created}',
           annotations: {{{ann}}}}}
spec:
  rules:
  - host: {host}
    http:
      paths:{rules}
"""


def service(name: str, address: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [{address}]}}]
"""


SERVICES = service("web", "10.0.0.1") + service("canary", "10.0.0.9")


def secret(name: str, data: dict[str, str]) -> str:
    enc = ", ".join(f"{k!r}: {base64.b64encode(v.encode()).decode()!r}" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: Opaque
data: {{{enc}}}
"""


class Seen:
    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        #: (backend name, scope) of the app that ran.
        self.app: tuple[str, dict[str, Any]] | None = None


def asgi(manifests: str, head: str, *, client: str = ATTACKER, raw_path: bool = True,
         root_path: str = "", **options: Any) -> Seen:
    """IngressASGI over ``manifests`` with an app per Service; the scope as uvicorn builds it
    (``path`` = ``raw_path`` percent-decoded), or without ``raw_path``; with ``root_path``, as
    Starlette's ``Mount(root_path)`` hands it on (``path`` and ``raw_path`` unchanged)."""
    seen = Seen()

    def backend(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.app = (name, scope)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return app

    lines = head.split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = [(n.strip().lower().encode(), v.strip().encode())
               for n, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    raw, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": version.partition("/")[2],
        "method": method, "scheme": "http", "path": unquote(raw), "raw_path": raw.encode(),
        "query_string": query.encode(), "root_path": root_path, "headers": headers,
        "client": (client, 40000), "server": ("127.0.0.1", 80), "extensions": {}}
    if not raw_path:
        del scope["raw_path"]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            seen.status = message["status"]
            seen.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]

    app = IngressASGI(Router(_parsed(manifests), seed=1),
                      backends={"default/web": backend("web"),
                                "default/canary": backend("canary")},
                      request_id=lambda: "0" * 32, **options)
    asyncio.run(app(scope, receive, send))
    return seen


#: ``parse_manifests`` once per text (the hypothesis tests call ``asgi`` with the same manifests
#: hundreds of times; the YAML parse was half their time): Resources is immutable, and each call
#: still builds its own Router and IngressASGI.
_parsed = functools.lru_cache(maxsize=None)(parse_manifests)


def request_line(upstream: bytes | None) -> bytes | None:
    return None if upstream is None else upstream.split(b"\r\n", 1)[0]


# -- 1. rewrite-target on a rule path written outside its canonical form ----------------------

def rewrite_manifests(rule: str, target: str, extra: dict[str, str] | None = None) -> str:
    return (ingress("public", "a.test", [("/", "Prefix", "web")])
            + ingress("rw", "a.test", [(rule, "Prefix", "canary")],
                      {P + "rewrite-target": target, **(extra or {})},
                      created="2024-01-02T00:00:00Z")
            + SERVICES)


@pytest.mark.parametrize(("rule", "path"), [
    ("/café", "/caf%C3%A9"),
    ("/café", "/caf%c3%a9/x"),
    ("/%7Euser", "/~user/x"),
    ("/%7euser", "/%7Euser"),
    ("/sp ace", "/sp%20ace/x"),
])
def test_defect_rewrite_target_rewrites_a_rule_path_written_outside_canonical_form(
        rule: str, path: str) -> None:
    # Before: the rewrite regex was the rule path escaped *as written* ("/café"), matched
    # against the canonical request path ("/caf%C3%A9"): it never matched, and every request
    # the rule routed reached the backend un-rewritten -- a request the route did not decide.
    # nginx's rewrite compares the decoded $uri with the path as written: it rewrites.
    r = proxy_answer(wire(f"GET {path}?q=1 HTTP/1.1\r\nHost: a.test"),
                     manifests=rewrite_manifests(rule, "/new"), peer=ATTACKER)
    assert request_line(r.upstream) == b"GET /new?q=1 HTTP/1.1"


def test_defect_rewrite_target_url_redirects_for_such_a_rule_path() -> None:
    # The same pattern decides a rewrite-target that is a URL (nginx's rewrite answers 302).
    m = rewrite_manifests("/café", "https://other.test/new")
    head = "GET /caf%C3%A9/x HTTP/1.1\r\nHost: a.test"
    r = proxy_answer(wire(head), manifests=m, peer=ATTACKER)
    assert (r.status, r.header(b"location")) == (302, b"https://other.test/new")
    got = asgi(m, head)
    assert got.status == 302 and got.app is None
    assert dict(got.headers)[b"location"] == b"https://other.test/new"


def test_guard_rewrite_target_still_literal_for_plain_and_unmatched_paths() -> None:
    # The canonical rule path is still escaped: "." is no wildcard, and a path the rule
    # routes but the pattern does not cover (no trailing slash) is forwarded as it is.
    m = rewrite_manifests("/v1.0/", "/new")
    assert request_line(proxy_answer(wire("GET /v1.0/x HTTP/1.1\r\nHost: a.test"),
                                     manifests=m).upstream) == b"GET /new HTTP/1.1"
    assert request_line(proxy_answer(wire("GET /v1.0 HTTP/1.1\r\nHost: a.test"),
                                     manifests=m).upstream) == b"GET /v1.0 HTTP/1.1"
    assert request_line(proxy_answer(wire("GET /v1x0/x HTTP/1.1\r\nHost: a.test"),
                                     manifests=m).upstream) == b"GET /v1x0/x HTTP/1.1"


# -- 2. a protected rule written as a regex protects nothing: say so ---------------------------

REGEX_ADMIN = (ingress("public", "a.test", [("/", "Prefix", "web")])
               + ingress("admin", "a.test",
                         [("/admin(/|$)(.*)", "ImplementationSpecific", "web")],
                         {**ALLOW, P + "use-regex": "true"}, created="2024-01-02T00:00:00Z")
               + SERVICES)


def test_defect_a_regex_rule_path_is_reported(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # ingress-nginx makes "/admin(/|$)(.*)" a regex location (template.go buildLocation:
    # `~* "^%s"`), so /admin/users is allowlisted there. ingresslib routes the path as a
    # literal prefix (a documented divergence), so /admin/users goes to the public "/" rule of
    # the same Service, without the allowlist. Before: `check` said "0 warning(s)".
    r = proxy_answer(wire("GET /admin/users HTTP/1.1\r\nHost: a.test"), manifests=REGEX_ADMIN,
                     peer=ATTACKER)
    assert request_line(r.upstream) == b"GET /admin/users HTTP/1.1"  # documented routing
    f = tmp_path / "m.yaml"
    f.write_text(REGEX_ADMIN)
    assert main(["check", "-f", str(f)]) == 0
    text = "".join(capsys.readouterr())
    assert ("Ingress default/admin: rule path '/admin(/|$)(.*)' is a regex in ingress-nginx"
            in text)
    assert "another rule or the default backend" in text
    assert "1 warning(s)" in text


def test_defect_the_server_logs_a_regex_rule_path_once(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    proxy = Proxy(Router(parse_manifests(REGEX_ADMIN), seed=1), clock=None)
    proxy.log_annotation_warnings()
    # Requests on the same table log nothing more (once per table).
    conn = proxy.connection((ATTACKER, 1), tls=False, local_port=80, now=0.0)
    conn.start(0.0)
    conn.receive_data(b"GET /admin/x HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    msgs = [r.getMessage() for r in caplog.records if "is a regex in ingress-nginx" in
            r.getMessage()]
    assert len(msgs) == 1 and msgs[0].startswith("Ingress default/admin: rule path")


@pytest.mark.parametrize(("path", "annotations", "warns"), [
    ("/admin(/|$)(.*)", {"use-regex": "true"}, True),
    ("/api/(.*)", {"rewrite-target": "/$1"}, True),   # rewrite-target makes it a regex too
    ("/v[0-9]+", {"use-regex": "true"}, True),
    ("/api/(.*)", {}, False),                         # no regex anywhere: a literal path
    ("/api/(.*)", {"use-regex": "false"}, False),
    ("/v1.0", {"use-regex": "true"}, False),          # "." matches itself: a subset, same rule
    ("/.well-known/x", {"rewrite-target": "/x"}, False),
    ("/api", {"use-regex": "true", "rewrite-target": "/"}, False),
    ("/a(b)", {"rewrite-target": "/a(b)"}, False),    # target == path: no rewrite, no regex
])
def test_regex_rule_path_warning_only_where_ingress_nginx_reads_a_regex(
        path: str, annotations: dict[str, str], warns: bool) -> None:
    # Reported through the callers' channel for warnings that are no invalid value (the
    # server's log and `check` give one); the options themselves are unchanged.
    told: list[str] = []
    opts = parse_route_options({P + k: v for k, v in annotations.items()}, path,
                               ProxySettings(), where="Ingress default/x", auth_warn=told.append)
    assert not [w for w in opts.warnings if "is a regex in ingress-nginx" in w]
    got = [w for w in told if "is a regex in ingress-nginx" in w]
    assert bool(got) is warns, told


# -- 3. spellings of a protected path -----------------------------------------------------------

PROTECTED = (ingress("public", "a.test", [("/", "Prefix", "web")])
             + ingress("admin", "a.test", [("/admin", "Prefix", "web"),
                                           ("/ops", "Exact", "web")],
                       ALLOW, created="2024-01-02T00:00:00Z")
             + ingress("admin-canary", "a.test", [("/admin", "Prefix", "canary")],
                       {P + "canary": "true", P + "canary-by-header": "X-Canary"},
                       created="2024-01-03T00:00:00Z")
             + SERVICES)


def resolved(path: str) -> str:
    """``path`` with runs of ``/`` merged and dot segments removed (RFC 3986 §5.2.4; ``..``
    stops at the root): how nginx behind the proxy and Go's ServeMux read a path."""
    out: list[str] = []
    segments = re.sub("/+", "/", path).split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg in (".", ".."):
            if seg == ".." and out:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


def backend_reading(target: str) -> str:
    """What a typical backend routes on for a request target: the path decoded once
    (Starlette, Werkzeug, Go's ``URL.Path``), then ``resolved``."""
    return resolved(unquote(target.partition("?")[0], errors="strict"))


def protected(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/") or path == "/ops"


SEGMENTS = ["admin", "ops", "%61dmin", "adm%69n", "%6Fps", "Admin", "x", "pub", ".", "..",
            "%2e", "%2E%2e", ".%2e", "", "%252e%252e", "%2f", "%2F", "%5c", "%00", "%0a",
            "admin;x", "admin%3B", "admin%20", "admin.", "%C0%AE%C0%AE", "%E2%80%AE", "~",
            "%7E", "%25", "%3F", "%23", ";", "..;", "%2e%2e;"]


@hsettings(max_examples=300, deadline=None)
@given(segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5),
       query=st.sampled_from(["", "?next=/admin", "?a=%2e%2e/admin"]),
       canary=st.booleans())
def test_guard_no_spelling_reaches_a_protected_path_unchecked(
        segments: list[str], query: str, canary: bool) -> None:
    # For any request target the proxy forwards, the backend reads the same path as it would
    # from the client's own spelling (the proxy never changes what the path means), and a
    # path the backend reads as protected was checked (403 here: the client is outside the
    # allowlist). The ASGI adapter: the app's path is never a protected one unchecked.
    target = "/" + "/".join(segments) + query
    head = f"GET {target} HTTP/1.1\r\nHost: a.test" + ("\r\nX-Canary: always" if canary else "")
    r = proxy_answer(wire(head), manifests=PROTECTED, peer=ATTACKER)
    if r.upstream is None:
        assert r.status in (400, 403), (target, r.status)
    else:
        sent = request_line(r.upstream).split(b" ")[1].decode("ascii")  # type: ignore[union-attr]
        assert sent.partition("?")[2] == query[1:]  # the query untouched
        assert backend_reading(sent) == backend_reading(target), (target, sent)
        assert not protected(backend_reading(sent)), (target, sent)
    for with_raw in (True, False):
        got = asgi(PROTECTED, head, raw_path=with_raw)
        if got.app is None:
            assert got.status in (400, 403), (target, got.status)
        else:
            name, scope = got.app
            assert name == "web"  # the canary is reached only through /admin
            # ``path`` is decoded already: an app that resolves it reads this.
            assert not protected(resolved(scope["path"])), (target, scope["path"])


# -- 4. canary traffic under the main rule's access control -------------------------------------

HTPASSWD = "alice:{PLAIN}pw\n"
BASIC = {P + "auth-type": "basic", P + "auth-secret": "users", P + "auth-realm": "Admin"}


def canary_manifests(main_annotations: dict[str, str], canary: dict[str, str]) -> str:
    return (ingress("public", "a.test", [("/", "Prefix", "web")])
            + ingress("admin", "a.test", [("/admin", "Prefix", "web")], main_annotations,
                      created="2024-01-02T00:00:00Z")
            + ingress("admin-canary", "a.test", [("/admin", "Prefix", "canary")],
                      {P + "canary": "true", **canary}, created="2024-01-03T00:00:00Z")
            + SERVICES + secret("users", {"auth": HTPASSWD}))


@pytest.mark.parametrize(("canary", "opt_in"), [
    ({P + "canary-by-header": "X-Canary"}, "X-Canary: always"),
    ({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "yes"}, "X-Canary: yes"),
    ({P + "canary-by-cookie": "beta"}, "Cookie: beta=always"),
    ({P + "canary-weight": "100"}, "X-Nothing: 1"),
], ids=["header", "header-value", "cookie", "weight"])
def test_guard_canary_traffic_gets_the_main_rules_access_control(canary: dict[str, str],
                                                                 opt_in: str) -> None:
    # ingress-nginx merges a canary into the main rule's location (its access rules
    # included): opting in to the canary is no way around the allowlist or the password.
    head = "GET /admin/x HTTP/1.1\r\nHost: a.test\r\n" + opt_in
    allow = canary_manifests(ALLOW, canary)
    assert proxy_answer(wire(head), manifests=allow, peer=ATTACKER).status == 403
    assert asgi(allow, head).status == 403
    # Inside the allowlist the canary serves: the opt-in works, access is only kept.
    inside = asgi(allow, head, client="10.1.2.3").app
    assert inside is not None and inside[0] == "canary"
    basic = canary_manifests(BASIC, canary)
    assert proxy_answer(wire(head), manifests=basic, peer=ATTACKER).status == 401
    assert asgi(basic, head).status == 401
    good = head + "\r\nAuthorization: Basic " + base64.b64encode(b"alice:pw").decode()
    r = proxy_answer(wire(good), manifests=basic, peer=ATTACKER)
    assert r.upstream is not None and b"authorization" not in r.upstream.lower()
    got = asgi(basic, good)
    assert got.app is not None and got.app[0] == "canary"
    assert all(k != b"authorization" for k, _ in got.app[1]["headers"])


# -- 5. the authority of an absolute-form target ------------------------------------------------

def test_guard_absolute_form_without_host_routes_and_checks_by_its_authority() -> None:
    # HTTP/1.0 has no Host: the authority names the host (RFC 9112 §3.2.2). Routing on it
    # and forwarding another Host (or none) would let the backend see a host the route did
    # not decide; checking another host group's rules would skip the allowlist.
    m = PROTECTED
    r = proxy_answer(b"GET http://a.test/admin HTTP/1.0\r\n\r\n", manifests=m, peer=ATTACKER)
    assert r.status == 403
    r = proxy_answer(b"GET http://a.test/x HTTP/1.0\r\n\r\n", manifests=m, peer=ATTACKER)
    assert r.upstream is not None and b"\r\nhost: a.test\r\n" in r.upstream.lower()
    assert asgi(m, "GET http://a.test/admin HTTP/1.0").status == 403
    got = asgi(m, "GET http://a.test/x HTTP/1.0")
    assert got.app is not None
    assert [v for k, v in got.app[1]["headers"] if k == b"host"] == [b"a.test"]
    for head in ("GET http://b.test/admin HTTP/1.1\r\nHost: a.test",
                 "GET http://a.test/admin HTTP/1.1\r\nHost: b.test",
                 "GET http://a.test@b.test/admin HTTP/1.1\r\nHost: b.test"):
        assert proxy_answer(wire(head), manifests=m, peer=ATTACKER).status == 400
        assert asgi(m, head).status == 400


# -- 6. a host's default backend from another Ingress ---------------------------------------------

CATCH_ALL = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: catch-all, namespace: default, creationTimestamp: '2023-01-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


def host_manifests(admin_annotations: dict[str, str], catch_all: str = CATCH_ALL) -> str:
    # admin.test is the internal host: its only Ingress allowlists it; the cluster's catch-all
    # Ingress (older, no rules) gives the default backend.
    return (catch_all + ingress("admin", "admin.test", [("/admin", "Prefix", "canary")],
                                admin_annotations, created="2024-01-02T00:00:00Z")
            + SERVICES + secret("users", {"auth": HTPASSWD}))


@pytest.mark.parametrize("path", ["/", "/x", "/admin/../users", "/%61"])
def test_defect_default_backend_of_a_host_keeps_the_hosts_access_control(path: str) -> None:
    # ingress-nginx serves admin.test's paths no rule covers from the server's "location /",
    # which carries the admin Ingress's annotations (controller.go createServers +
    # locationApplyAnnotations: Whitelist, Denied, BasicDigestAuth): 403 for this client.
    # Before: the default backend came with the catch-all Ingress's (empty) annotations, so
    # any other path of admin.test reached the catch-all's Service -- with Host admin.test --
    # past the allowlist.
    m = host_manifests(ALLOW)
    head = f"GET {path} HTTP/1.1\r\nHost: admin.test"
    assert proxy_answer(wire(head), manifests=m, peer=ATTACKER).status == 403
    got = asgi(m, head)
    assert got.status == 403 and got.app is None
    # Inside the allowlist the default backend serves, as before.
    r = proxy_answer(wire(head), manifests=m, peer="10.1.2.3")
    assert r.upstream is not None and b"\r\nHost: admin.test\r\n" in r.upstream
    inside = asgi(m, head, client="10.1.2.3").app
    assert inside is not None and inside[0] == "web"


def test_defect_default_backend_of_a_host_asks_the_hosts_password() -> None:
    m = host_manifests(BASIC)
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    r = proxy_answer(wire(head), manifests=m, peer=ATTACKER)
    assert r.status == 401 and r.header(b"www-authenticate") == b'Basic realm="Admin"'
    assert asgi(m, head).status == 401
    good = head + "\r\nAuthorization: Basic " + base64.b64encode(b"alice:pw").decode()
    r = proxy_answer(wire(good), manifests=m, peer=ATTACKER)
    assert r.upstream is not None and b"authorization" not in r.upstream.lower()
    got = asgi(m, good)
    assert got.app is not None and got.app[0] == "web"
    assert all(k != b"authorization" for k, _ in got.app[1]["headers"])


def test_guard_default_backend_access_of_both_ingresses_applies() -> None:
    # The catch-all's own allowlist still applies (fail closed: both must pass), and a host
    # whose own Ingress gives the default backend is unchanged.
    own = CATCH_ALL.replace(
        "creationTimestamp: '2023-01-01T00:00:00Z'}",
        f"creationTimestamp: '2023-01-01T00:00:00Z',\n  annotations: {{{P}whitelist-source-range: "
        "'10.9.0.0/16'}}")
    assert own != CATCH_ALL
    m = host_manifests({P + "whitelist-source-range": "10.0.0.0/8"}, own)
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    assert proxy_answer(wire(head), manifests=m, peer="10.1.2.3").status == 403
    assert proxy_answer(wire(head), manifests=m, peer="10.9.2.3").upstream is not None
    assert asgi(m, head, client="10.1.2.3").status == 403
    # Other hosts (the catch-all server): the catch-all's own control only, as before.
    assert proxy_answer(wire("GET /x HTTP/1.1\r\nHost: other.test"), manifests=m,
                        peer="10.9.2.3").upstream is not None
    assert proxy_answer(wire("GET /x HTTP/1.1\r\nHost: other.test"), manifests=m,
                        peer="10.1.2.3").status == 403


# -- 7. IngressASGI under a mount, the mount spelled with escapes -----------------------------------

@pytest.mark.parametrize("raw", ["/%6Dnt/admin", "/m%6Et/admin/x"])
def test_defect_mount_spelled_with_escapes_routes_as_the_mount_spelled_plainly(raw: str) -> None:
    # IngressASGI mounted at /mnt (Starlette's Mount routes on the decoded path and keeps the
    # client's raw_path; uvicorn's --root-path likewise): /%6Dnt/admin is /mnt/admin, routed
    # as /admin under the mount -> 403 here. Today the raw target keeps its "/%6Dnt", is
    # routed as "/mnt/admin" (the public "/" rule) and the app runs with path
    # "/mnt/mnt/admin": one request, two routes depending on its spelling.
    plain = asgi(PROTECTED, "GET /mnt/admin HTTP/1.1\r\nHost: a.test", root_path="/mnt")
    assert plain.status == 403 and plain.app is None  # the mount spelled plainly
    got = asgi(PROTECTED, f"GET {raw} HTTP/1.1\r\nHost: a.test", root_path="/mnt")
    assert got.status == 403 and got.app is None


class _Basic:
    """A stand-in for proxy/_basicauth.py ``BasicAuth``: accepts one Authorization value."""

    def __init__(self, good: bytes, realm: bytes) -> None:
        self.good, self.challenge = good, b'Basic realm="' + realm + b'"'

    def check(self, authorization: bytes | None) -> tuple[int, str | None]:
        return (0, "u") if authorization == self.good else (401, None)


def test_combined_access_needs_both() -> None:
    from ingresslib.proxy._access import build_access, combine_access
    from ingresslib.proxy._actions import access_answer

    a = build_access(None, (), (), ("10.0.0.0/8",), _Basic(b"A", b"a"))  # type: ignore[arg-type]
    b = build_access(None, (), ("10.9.0.0/16",), (), _Basic(b"B", b"b"))  # type: ignore[arg-type]
    both = combine_access(a, b)
    assert combine_access(a, None) is a and combine_access(None, b) is b
    assert combine_access(a, a) is a
    assert both is not None and both.basic is not None
    assert access_answer(both, "192.0.2.1", lambda: b"A") == (403, None)  # a's range
    assert access_answer(both, "10.9.1.1", lambda: b"A") == (403, None)   # b's denylist
    assert access_answer(both, "10.1.1.1", lambda: None) == (401, b'Basic realm="a"')
    assert access_answer(both, "10.1.1.1", lambda: b"A") == (401, b'Basic realm="b"')
    assert access_answer(both, "10.1.1.1", lambda: b"B") == (401, b'Basic realm="a"')
    denied = build_access("an auth-url", (), (), ())
    for pair in ((a, denied), (denied, b)):
        d = combine_access(*pair)
        assert d is not None and d.denied == "an auth-url" and d.status("10.1.1.1") == 503
    only_b_basic = combine_access(build_access(None, (), (), ("10.0.0.0/8",)), b)
    assert only_b_basic is not None and only_b_basic.basic is not None  # never forwarded
    assert access_answer(only_b_basic, "10.1.1.1", lambda: b"B") == (0, None)


def test_defect_bytearray_header_name_is_refused_not_a_crash() -> None:
    # _scan_headers: "except TypeError: raise _NotScanned  # an unhashable name (bytearray)",
    # leaving it to the general path, which then raises TypeError itself: the server answers
    # 500 with a traceback in its log, where a name that is not bytes gets a 400 (as a str one).
    headers = [(b"host", b"a.test"), (bytearray(b"host"), b"b.test")]
    got = Seen()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        got.app = ("web", scope)

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            got.status = message["status"]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": (ATTACKER, 1), "server": ("127.0.0.1", 80), "extensions": {}}
    ingress_app = IngressASGI(Router(parse_manifests(PROTECTED), seed=1),
                              backends={"default/web": app})
    asyncio.run(ingress_app(scope, receive, send))
    assert got.status == 400 and got.app is None
