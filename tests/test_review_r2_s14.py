"""Review R2 (session 14): explain's verdict path, combined access, loading.

Each ``test_defect_*`` failed on the code before its fix; the ``test_guard_*`` tests pin what
was checked and found right, so that a later change cannot break it unnoticed.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings as hsettings, strategies as st

from ingresslib._cli import main
from ingresslib._explain import explain_url
from ingresslib._table import RouteTable
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, ProxySettings, SendDownstream

sys.path.insert(0, str(Path(__file__).parent))
from test_adversarial_s14 import (  # noqa: E402
    ALLOW,
    ATTACKER,
    BASIC,
    CATCH_ALL,
    HTPASSWD,
    P,
    SERVICES,
    asgi,
    ingress,
    secret,
)
from test_asgi_conformance import proxy_answer, wire  # noqa: E402

#: admin.test: its own Ingress allowlists 10.0.0.0/8 and asks alice's password (pw); its
#: other paths are served by the older catch-all Ingress's defaultBackend (combined access).
ADMIN = (CATCH_ALL
         + ingress("admin", "admin.test", [("/admin", "Prefix", "canary")], {**ALLOW, **BASIC},
                   created="2024-01-02T00:00:00Z")
         + SERVICES + secret("users", {"auth": HTPASSWD}))
ALICE = "Basic " + base64.b64encode(b"alice:pw").decode()


def explain(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str,
            manifests: str = ADMIN) -> tuple[int, str, str]:
    f = tmp_path / "m.yaml"
    f.write_text(manifests)
    rc = main(["explain", "-f", str(f), *args])
    out, err = capsys.readouterr()
    return rc, out, err


# -- 1. explain: a URL's password ----------------------------------------------------------------

@pytest.mark.parametrize("output", ["text", "json"])
def test_defect_explain_never_prints_the_urls_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str) -> None:
    # Before: the URL was echoed as given, password included (the first line of the text
    # output, "url" of the JSON document), into terminals, CI logs and pasted bug reports.
    rc, out, err = explain(tmp_path, capsys, "http://alice:s3cret@admin.test/x",
                           "--client-ip", "10.1.1.1", "-o", output)
    assert rc == 0
    assert "s3cret" not in out + err
    if output == "json":
        assert json.loads(out)["url"] == "http://alice:***@admin.test/x"
    else:
        assert out.splitlines()[0] == "http://alice:***@admin.test/x"


def test_defect_explain_usage_errors_never_print_the_urls_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A bad -H with such a URL: the error document carries the URL too.
    rc, out, err = explain(tmp_path, capsys, "http://alice:s3cret@admin.test/x", "-H", "bad",
                           "-o", "json")
    assert rc == 2 and "s3cret" not in out + err
    assert json.loads(out)["url"] == "http://alice:***@admin.test/x"
    # A URL urlsplit refuses: its message quoted the URL.
    rc, out, err = explain(tmp_path, capsys, "http://alice:s3cret@[::1/x")
    assert rc == 2 and "s3cret" not in out + err


# -- 2. explain: a URL's credentials are sent, as curl sends them --------------------------------

def test_defect_explain_sends_the_urls_credentials_as_curl_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # curl takes user and password from the URL, percent-decoded, and sends them as Basic
    # credentials (lib/url.c parse_url_login: "We have a user in the URL ...
    # conn->bits.user_passwd = TRUE; /* enable user+password */", curl_easy_unescape). The
    # server answers that request: proxied. Before: explain dropped them and said 401 ("no
    # Authorization header").
    url = "http://alice:pw@admin.test/x"
    r = proxy_answer(wire(f"GET /x HTTP/1.1\r\nHost: admin.test\r\nAuthorization: {ALICE}"),
                     manifests=ADMIN, peer="10.1.1.1")
    assert r.upstream is not None  # what serve answers curl's request
    rc, out, _ = explain(tmp_path, capsys, url, "--client-ip", "10.1.1.1", "-o", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["verdict"]["proxied"] and doc["verdict"]["user"] == "alice"
    # Percent-encoded in the URL, decoded in the credentials (p%77 is pw).
    rc, out, _ = explain(tmp_path, capsys, "http://alic%65:p%77@admin.test/x",
                         "--client-ip", "10.1.1.1", "-o", "json")
    assert json.loads(out)["verdict"]["user"] == "alice"
    # A wrong password is a 401, not "no Authorization header".
    rc, out, _ = explain(tmp_path, capsys, "http://alice:nope@admin.test/x",
                         "--client-ip", "10.1.1.1", "-o", "json")
    v = json.loads(out)["verdict"]
    assert v["status"] == 401 and "does not verify" in v["reason"]


def test_guard_an_authorization_header_replaces_the_urls_credentials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # curl -H: "If you add a custom header that has the same name as one of the internal ones
    # curl would use, your externally set header is used instead of the internal one."
    bad = "Basic " + base64.b64encode(b"alice:nope").decode()
    rc, out, _ = explain(tmp_path, capsys, "http://alice:pw@admin.test/x", "-H",
                         f"Authorization: {bad}", "--client-ip", "10.1.1.1", "-o", "json")
    assert json.loads(out)["verdict"]["status"] == 401
    rc, out, _ = explain(tmp_path, capsys, "http://alice:nope@admin.test/x", "-H",
                         f"authorization: {ALICE}", "--client-ip", "10.1.1.1", "-o", "json")
    assert json.loads(out)["verdict"]["proxied"]


# -- 3. explain: Expect: 100-continue ------------------------------------------------------------

@pytest.mark.parametrize("length", ["5", "0"])
def test_defect_explain_a_100_continue_is_not_the_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], length: str) -> None:
    # curl adds "Expect: 100-continue" to a large POST. The proxy answers the interim 100 and
    # then proxies the request (ClientConnection: SendDownstream(100 Continue), OpenUpstream).
    # Before: explain took the 100 for the answer ("the proxy answers 100 itself", status 100).
    head = (f"POST /x HTTP/1.1\r\nHost: admin.test\r\nAuthorization: {ALICE}\r\n"
            f"Expect: 100-continue\r\nContent-Length: {length}")
    proxy = Proxy(Router(parse_manifests(ADMIN), seed=1), None, clock=None)
    conn = proxy.connection(("10.1.1.1", 40000), tls=False, now=0.0)
    acts = conn.receive_data(wire(head), 0.0)
    assert [type(a).__name__ for a in acts] == ["SendDownstream", "OpenUpstream"]
    assert isinstance(acts[0], SendDownstream) and acts[0].data.startswith(b"HTTP/1.1 100 ")
    rc, out, _ = explain(tmp_path, capsys, "-X", "POST", "http://admin.test/x",
                         "-H", f"Authorization: {ALICE}", "-H", "Expect: 100-continue",
                         "-H", f"Content-Length: {length}", "--client-ip", "10.1.1.1",
                         "-o", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["verdict"]["proxied"] and doc["status"] == 200
    # Without credentials the 401 comes before any 100 (nginx's access phase), as before.
    rc, out, _ = explain(tmp_path, capsys, "-X", "POST", "http://admin.test/x",
                         "-H", "Expect: 100-continue", "-H", f"Content-Length: {length}",
                         "--client-ip", "10.1.1.1", "-o", "json")
    assert json.loads(out)["verdict"]["status"] == 401


# -- guards: combined access as checked ----------------------------------------------------------

def _both(m: str, head: str, peer: str) -> tuple[int | None, int | None]:
    r = proxy_answer(wire(head), manifests=m, peer=peer)
    return (0 if r.upstream is not None else r.status), (
        lambda s: 0 if s.app is not None else s.status)(asgi(m, head, client=peer))


def test_guard_a_host_without_access_control_is_unaffected() -> None:
    # The owner has no access annotation: the catch-all's default backend serves its other
    # paths as before (no 401/403/503), in the proxy and IngressASGI.
    m = CATCH_ALL + ingress("pub", "pub.test", [("/a", "Prefix", "canary")],
                            created="2024-01-02T00:00:00Z") + SERVICES
    assert _both(m, "GET /x HTTP/1.1\r\nHost: pub.test", ATTACKER) == (0, 0)


def test_guard_the_owner_is_the_oldest_non_canary_ingress_of_the_host() -> None:
    # Two Ingresses on the host: the oldest decides the unruled paths' control; a canary
    # (even older) makes no server.
    newer_open = ingress("b-open", "admin.test", [("/b", "Prefix", "web")],
                         created="2024-06-01T00:00:00Z")
    older_closed = ingress("z-closed", "admin.test", [("/z", "Prefix", "web")], ALLOW,
                           created="2024-01-02T00:00:00Z")
    canary = ingress("c-canary", "admin.test", [("/z", "Prefix", "canary")],
                     {P + "canary": "true", P + "canary-weight": "0"},
                     created="2023-06-01T00:00:00Z")
    m = CATCH_ALL + newer_open + older_closed + canary + SERVICES
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    assert _both(m, head, ATTACKER) == (403, 403)
    assert _both(m, head, "10.1.1.1") == (0, 0)
    # The older Ingress open, the newer closed: open (the newer one is no server owner).
    m2 = CATCH_ALL + newer_open.replace("2024-06-01", "2023-12-01") + older_closed.replace(
        "2024-01-02", "2024-07-01") + SERVICES
    assert _both(m2, head, ATTACKER) == (0, 0)


def test_guard_an_unenforced_owner_annotation_follows_the_opt_out() -> None:
    from ingresslib.proxy import ProxySettings

    m = CATCH_ALL + ingress("admin", "admin.test", [("/admin", "Prefix", "canary")],
                            {P + "configuration-snippet": "deny all;"},
                            created="2024-01-02T00:00:00Z") + SERVICES
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    assert proxy_answer(wire(head), manifests=m, peer=ATTACKER).status == 503
    assert asgi(m, head).status == 503
    off = ProxySettings(deny_unenforced_access_annotations=False)
    assert proxy_answer(wire(head), manifests=m, peer=ATTACKER, settings=off).upstream \
        is not None
    got: Any = asgi(m, head, settings=off)
    assert got.app is not None


# -- 4. explain: -H with whitespace before the colon ---------------------------------------------

@pytest.mark.parametrize("header", ["Host : admin.test", "X-A\t: v", "Authorization : " + ALICE])
def test_defect_explain_refuses_whitespace_before_the_colon(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str) -> None:
    # curl sends the -H line as written; the proxy answers it 400 (RFC 9112 §5.1), so a route
    # or a "proxied" is a false answer. Before: the name was stripped and the request routed.
    host = "" if header.startswith("Host") else "Host: admin.test\r\n"
    r = proxy_answer(wire("GET /admin HTTP/1.1\r\n" + host + header), manifests=ADMIN,
                     peer="10.1.1.1")
    assert r.status == 400
    rc, out, err = explain(tmp_path, capsys, "/admin", "-H", header, "--client-ip", "10.1.1.1")
    assert rc == 2 and "whitespace between the name and the colon" in err


# -- differential: explain's verdict = the proxy's answer = IngressASGI's, access included ----------

HOSTS = ("a.test", "'*.b.test'", "c.b.test")
ACCESS = ({}, ALLOW, {P + "denylist-source-range": "10.9.0.0/16"}, BASIC,
          {P + "configuration-snippet": "deny all;"}, {**ALLOW, **BASIC})
DEFAULT_BACKEND = "\n  defaultBackend: {service: {name: web, port: {number: 80}}}"


@st.composite
def manifest_sets(draw: st.DrawFn) -> str:
    out = []
    if draw(st.booleans()):
        cat = CATCH_ALL
        extra = draw(st.sampled_from(ACCESS))
        if extra:
            ann = ", ".join(f"{k!r}: {v!r}" for k, v in extra.items())
            cat = cat.replace("creationTimestamp: '2023-01-01T00:00:00Z'}",
                              f"creationTimestamp: '2023-01-01T00:00:00Z',\n"
                              f"  annotations: {{{ann}}}}}")
        out.append(cat)
    for i in range(draw(st.integers(1, 3))):
        ann = dict(draw(st.sampled_from(ACCESS)))
        if draw(st.integers(0, 3)) == 0:
            ann = {P + "canary": "true", P + "canary-weight": draw(st.sampled_from(["0", "100"]))}
        paths = draw(st.lists(st.sampled_from([("/api", "Prefix"), ("/", "Prefix"),
                                               ("/x", "Exact")]), min_size=1, max_size=2,
                              unique=True))
        text = ingress(f"i{i}", draw(st.sampled_from(HOSTS)),
                       [(p, t, draw(st.sampled_from(["web", "canary"]))) for p, t in paths],
                       ann, created=f"2024-0{draw(st.integers(1, 3))}-01T00:00:00Z")
        if draw(st.booleans()):
            text = text.replace("\nspec:", "\nspec:" + DEFAULT_BACKEND.replace("web", draw(
                st.sampled_from(["web", "canary"]))))
        out.append(text)
    return "".join(out) + SERVICES + secret("users", {"auth": HTPASSWD})


@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(manifest_sets(), st.sampled_from(["a.test", "x.b.test", "c.b.test", "other.test"]),
       st.sampled_from(["/", "/api", "/api/y", "/x", "/zz"]),
       st.sampled_from(["10.1.1.1", "10.9.1.1", "192.0.2.1", "::1"]),
       st.sampled_from([None, ALICE, "Basic " + base64.b64encode(b"alice:no").decode()]),
       st.booleans())
def test_guard_explain_proxy_and_adapter_agree_on_access(
        manifests: str, host: str, path: str, ip: str, auth: str | None, strict: bool) -> None:
    settings = None if strict else ProxySettings(deny_unenforced_access_annotations=False)
    note(manifests)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}" + (f"\r\nAuthorization: {auth}" if auth else "")
    r = proxy_answer(wire(head), manifests=manifests, peer=ip, settings=settings)
    proxied = r.upstream is not None
    via_proxy = ("proxied", r.upstream.split(b"\r\n", 1)[0]) if r.upstream is not None \
        else ("status", r.status)
    event(f"proxy: {via_proxy[0]} {via_proxy[1] if not proxied else ''}")
    seen = asgi(manifests, head, client=ip, settings=settings)
    if seen.app is not None:
        assert proxied, (via_proxy, seen.app[0])
    else:
        assert via_proxy == ("status", seen.status)
    res = parse_manifests(manifests)
    info = explain_url(RouteTable.build(res), f"http://{host}{path}", res=res,
                       headers=[("Authorization", auth)] if auth else [], client_ip=ip,
                       settings=settings)
    v = info["verdict"]
    assert v["proxied"] == proxied, (info, via_proxy)
    if not proxied:
        assert v["status"] == r.status, (info, via_proxy)
        assert info["status"] == r.status


# -- guard: JSON keys written twice, many objects, values dropped ---------------------------------

def test_guard_json_duplicate_warnings_land_on_their_own_objects() -> None:
    # _load._json_decoder notes repeated keys by id(); a dropped value (the first "spec") is
    # kept alive with its parent's pairs, so no later object can take its id. 2,000 Ingresses,
    # every one with a dropped "spec" holding a repeated key, one in three a repeated label:
    # each warning names its own object, none is missed, none lands elsewhere.
    from ingresslib._load import collect_text

    def one(i: int) -> str:
        labels = '{"app": "a", "app": "b"}' if i % 3 == 0 else '{"app": "a"}'
        backend = '{"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}'
        return ('{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": '
                f'{{"name": "i{i}", "namespace": "default", "labels": {labels}}}, '
                f'"spec": {backend}, "x": {{"q": 1, "q": 2}}}}, "spec": {backend}}}}}')

    n = 2000
    for text in ("[" + ",".join(one(i) for i in range(n)) + "]",
                 "\n".join(one(i) for i in range(n))):
        c = collect_text(text, source="x.json")
        assert len(c.result().ingresses) == n
        got = sorted(str(w) for w in c.warnings)
        want = sorted([f'x.json: Ingress default/i{i}: duplicate field "spec"' for i in range(n)]
                      + [f'x.json: Ingress default/i{i}: duplicate field "metadata.labels.app"'
                         for i in range(0, n, 3)])
        assert got == want
