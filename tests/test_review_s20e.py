"""Review of ``ingresslib explain`` and ``ingresslib check`` (session 20, helper e).

Before:

1. ``explain`` named the rule that wins a request and nothing of the rules the same request
   would reach were that one absent (a path written twice, a second Ingress for the same host
   and path, a second default backend): ``check`` warns "shadowed ... never matches", explain
   was silent, so "why does my rule not get this URL?" had no answer there. Now the table's
   notes on the rules the winner shadows are listed (JSON ``shadowed``, text ``warning:``).
2. ``explain`` on files holding no Ingress (an empty folder, a folder of ``.yml.txt``, a wrong
   file) answered "404: no rule and no default backend matched" with no word that no Ingress
   was read; ``check`` and ``serve`` warn "no Ingress in ...". Now explain says it too.
3. ``check -o json``: the ``warnings`` list mixed two forms, the table's and the router's
   entries labelled ``"warning: Ingress ..."``, the others (unknown fields, TLS, annotation
   values) ``"Ingress ..."``. Each entry is now the text alone.
5. ``explain https://...`` said nothing of TLS (only ``--tls`` made the ssl-redirect part of
   the verdict). It now says which certificate the handshake gets: the Secret's, looked up as
   the certificate store looks up the client's SNI, or the default one (an IP address sends no
   SNI; ``--default-ssl-certificate`` is serve's and is not modelled: "the default").
4. A Ctrl-C during ``check`` or ``explain`` (``-f -`` typed at a terminal by mistake, a large
   folder) printed a Python traceback; now one line, exit 130 (as ``serve`` before it listens),
   and with ``-o json`` still one JSON document.

The rest checks what already held, as a differential: over random tables and URLs, explain's
status, rule, backend, endpoint, canary choice and redirect ``Location`` are the proxy core's
for the request a client sends; and ``check``'s exit codes and JSON on its error paths.
"""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ingresslib import Resources
from ingresslib._cli import main
from ingresslib._explain import explain_url
from ingresslib._explain_url import UsageError, split_url
from ingresslib._router import Router
from ingresslib._table import RouteTable, match_to_dict
from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream

P = "nginx.ingress.kubernetes.io/"


def _run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _ingress(name: str, paths: str, *, host: str = "a.test", created: str = "2020-01-01",
             extra: str = "") -> str:
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}T00:00:00Z"}}
spec:
{extra}  rules:
  - host: {host}
    http:
      paths:
{paths}"""


def _path(path: str, service: str, path_type: str = "Prefix") -> str:
    return (f"      - {{path: {path}, pathType: {path_type}, backend: {{service: "
            f"{{name: {service}, port: {{number: 80}}}}}}}}\n")


SHADOWED = (
    _ingress("first", _path("/x", "s1") + _path("/x", "s2") + _path("/y", "s1"))
    + _ingress("second", _path("/x/", "s3") + _path("/y", "s3", "Exact"), created="2021-01-01"))


# -- 1. the rules a request's winner shadows -------------------------------------------------


def test_explain_names_the_rules_the_winning_rule_shadows(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(SHADOWED)
    code, out, _ = _run("explain", "-f", str(f), "-o", "json", "http://a.test/x/z")
    doc = json.loads(out)
    # The same slot (host a.test, Prefix /x): the other Ingress's /x/ wins it (a written
    # trailing slash ranks first), over the first's /x, written twice.
    assert code == 0 and doc["match"]["ingress"] == "default/second"
    assert doc["match"]["service"] == "s3"
    assert doc["shadowed"] == [
        f"Ingress default/first: spec.rules[0].http.paths[{i}]: Prefix '/x' on host a.test is "
        "shadowed by Ingress default/second spec.rules[0].http.paths[0] and never matches"
        for i in (1, 0)]
    # Each is one of check's warnings, word for word.
    code, out, _ = _run("check", "-f", str(f), "-o", "json")
    assert set(doc["shadowed"]) <= set(json.loads(out)["warnings"])
    code, text, _ = _run("explain", "-f", str(f), "http://a.test/x/z")
    assert ("     warning: Ingress default/first: spec.rules[0].http.paths[0]: Prefix '/x' on "
            "host a.test is shadowed by Ingress default/second spec.rules[0].http.paths[0] and "
            "never matches") in text.splitlines()


def test_of_a_path_written_twice_the_first_wins_and_the_second_is_named(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(_ingress("twice", _path("/x", "s1", "Exact") + _path("/x", "s2", "Exact")))
    code, out, _ = _run("explain", "-f", str(f), "-o", "json", "http://a.test/x")
    doc = json.loads(out)
    assert doc["match"]["service"] == "s1"
    assert doc["shadowed"] == [
        "Ingress default/twice: spec.rules[0].http.paths[1]: Exact '/x' on host a.test is "
        "shadowed by Ingress default/twice spec.rules[0].http.paths[0] and never matches"]


def test_explain_lists_no_rule_of_another_slot(tmp_path: Path) -> None:
    """/y Prefix (first) and /y Exact (second) are two slots: neither shadows the other, and
    the notes on /x are no business of a request for /y."""
    f = tmp_path / "m.yaml"
    f.write_text(SHADOWED)
    for url, ingress in (("http://a.test/y/1", "default/first"), ("http://a.test/y", "default/second")):
        code, out, _ = _run("explain", "-f", str(f), "-o", "json", url)
        doc = json.loads(out)
        assert doc["match"]["ingress"] == ingress and "shadowed" not in doc


def test_explain_names_the_default_backends_left_unused(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("".join(f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: "{year}-01-01T00:00:00Z"}}
spec:
  defaultBackend: {{service: {{name: {name}, port: {{number: 80}}}}}}
""" for name, year in (("d1", 2020), ("d2", 2021))))
    code, out, _ = _run("explain", "-f", str(f), "-o", "json", "http://any.test/")
    doc = json.loads(out)
    assert doc["match"]["ingress"] == "default/d1"
    assert doc["shadowed"] == ["Ingress default/d2: spec.defaultBackend: never used: the "
                               "default backend of the older Ingress default/d1 serves every "
                               "host it could"]


# -- 2. no Ingress in the files --------------------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json"])
def test_explain_says_the_files_hold_no_ingress(tmp_path: Path, output: str) -> None:
    (tmp_path / "ingress.yml.txt").write_text(SHADOWED)  # not read: not *.yaml/*.yml/*.json
    code, out, _ = _run("explain", "-f", str(tmp_path), "-o", output, "http://a.test/x")
    assert code == 0
    said = f"no Ingress in {tmp_path} (folders are searched for *.yaml, *.yml and *.json files)"
    if output == "json":
        doc = json.loads(out)
        assert doc["status"] == 404 and doc["warnings"] == [said]
    else:
        assert f"     warning: {said}" in out.splitlines()


# -- 3. check's JSON warnings: one form --------------------------------------------------------


def test_check_json_warnings_are_the_texts_alone(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    # A shadowed rule (the table's), a Service without endpoint (the router's), an unknown
    # field (the loader's).
    f.write_text(SHADOWED.replace("  rules:", "  rulez: 1\n  rules:", 1) + """---
apiVersion: v1
kind: Service
metadata: {name: s1, namespace: default}
spec: {ports: [{port: 80}]}
""")
    code, out, err = _run("check", "-f", str(f), "-o", "json")
    doc = json.loads(out)
    assert code == 0 and len(doc["warnings"]) >= 4
    assert not [w for w in doc["warnings"] if w.startswith(("warning:", "info:"))]
    # Each is printed once on stderr, labelled there.
    for w in doc["warnings"]:
        assert f"warning: {w}" in err.splitlines()
    # The diagnostics keep their severity (info lines are no warnings).
    assert all(d.startswith(("warning: ", "info: ")) for d in doc["diagnostics"])


# -- 5. the certificate of an https:// URL ------------------------------------------------------


def _tls_manifests(crt: bytes, key: bytes) -> str:
    ind = "\n    "
    return _ingress("a", _path("/", "s1"), extra="  tls: [{hosts: [a.test, '*.w.test'], "
                    "secretName: tls-a}, {hosts: [broken.test], secretName: gone}]\n") \
        + _ingress("w", _path("/", "s1"), host="'*.w.test'") \
        + _ingress("b", _path("/", "s1"), host="broken.test") + f"""---
apiVersion: v1
kind: Secret
metadata: {{name: tls-a, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |{ind}{ind.join(crt.decode().splitlines())}
  tls.key: |{ind}{ind.join(key.decode().splitlines())}
"""


def test_explain_names_the_certificate_of_an_https_url(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    from ingresslib._load import parse_manifests
    from ingresslib._tls import CertificateStore

    cert = trustme.CA().issue_cert("a.test", "*.w.test")
    text = _tls_manifests(cert.cert_chain_pems[0].bytes(), cert.private_key_pem.bytes())
    f = tmp_path / "m.yaml"
    f.write_text(text)
    res = parse_manifests(text)
    store = CertificateStore()
    store.update(res, RouteTable.build(res).served)
    for url, sni in (("https://a.test/", "a.test"), ("https://A.TEST.:8443/x", "a.test"),
                     ("https://x.w.test/", "x.w.test"), ("https://y.x.w.test/", "y.x.w.test"),
                     ("https://broken.test/", "broken.test"), ("https://other.test/", "other.test"),
                     ("https://127.0.0.1/", None), ("https://[::1]:8443/", None)):
        code, out, _ = _run("explain", "-f", str(f), "-o", "json", url)
        tls = json.loads(out)["tls"]
        assert tls["sni"] == sni, url
        # The store's own lookup: the default context, or the Secret's certificate.
        default = sni is None or store.context_for(sni) is store.default_context
        assert (tls["secret"] is None) is default, url
        if not default:
            assert tls["secret"] == "default/tls-a" and tls["not_after"].startswith("3000-")
    code, text_out, _ = _run("explain", "-f", str(f), "https://x.w.test/")
    assert text_out.splitlines()[2] == ("  TLS (SNI x.w.test): the certificate of Secret "
                                        "default/tls-a (valid until 3000-01-01T00:00:00+00:00)")
    code, out, _ = _run("explain", "-f", str(f), "-o", "json", "http://a.test/")
    assert "tls" not in json.loads(out)  # no handshake over http://


# -- 4. Ctrl-C ----------------------------------------------------------------------------------


class _Interrupted(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise KeyboardInterrupt


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("command", ["check", "explain"])
def test_ctrl_c_while_reading_stdin(monkeypatch: pytest.MonkeyPatch, command: str,
                                    output: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(_Interrupted())))
    url = ["http://a.test/"] if command == "explain" else []
    code, out, err = _run(command, "-f", "-", "-o", output, *url)
    assert code == 130 and err == f"ingresslib {command}: interrupted\n"
    if output == "json":
        assert json.loads(out) == {"ok": False, "error": "interrupted",
                                   "errors": [{"message": "interrupted"}]}
    else:
        assert out == ""


# -- check: exit codes, every error, JSON on every path ---------------------------------------


BAD_YAML = "apiVersion: v1\nkind: Ingress\nmetadata: {name: a\nspec: [\n"
INVALID = _ingress("b", _path("x", "S", "Bogus"), host='"A_B"')


@pytest.mark.parametrize("output", ["text", "json"])
def test_check_lists_every_error_of_every_file(tmp_path: Path, output: str) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    (tmp_path / "invalid.yaml").write_text(INVALID)
    code, out, err = _run("check", "-f", str(tmp_path), "-f", str(tmp_path / "gone.yaml"),
                          "-o", output)
    assert code == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert f"{tmp_path / 'bad.yaml'}: line 4, column 5: Invalid value: YAML syntax error: did not " \
           "find expected ',' or '}' (while parsing a flow mapping)" in lines
    assert f"{tmp_path / 'gone.yaml'}: Not found: no such file or directory" in lines
    assert sum(f"{tmp_path / 'invalid.yaml'}: Ingress default/b: " in ln for ln in lines) == 3
    assert lines[-1] == "5 error(s)"
    if output == "json":
        doc = json.loads(out)
        assert doc["ok"] is False and len(doc["errors"]) == 5
        # The file of each error: its source, or for an error of the file itself (not
        # found, not YAML) its object.
        assert {e["source"] or e["object"] for e in doc["errors"]} == {
            str(tmp_path / n) for n in ("bad.yaml", "invalid.yaml", "gone.yaml")}


@pytest.mark.parametrize("command", ["check", "explain"])
def test_stdin_yaml_error_is_named_and_json_valid(monkeypatch: pytest.MonkeyPatch,
                                                  command: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(BAD_YAML.encode())))
    url = ["http://a.test/"] if command == "explain" else []
    code, out, err = _run(command, "-f", "-", "-o", "json", *url)
    assert code == 2
    assert err.splitlines()[0].startswith("<stdin>: line 4, column 5: Invalid value: YAML syntax")
    assert json.loads(out)["ok"] is False


# -- explain's URL: what a client sends -------------------------------------------------------


ROUTES = _ingress("web", _path("/app", "s1") + _path("/", "s2")) + """---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: v6, namespace: default}
spec:
  defaultBackend: {service: {name: s3, port: {number: 80}}}
"""


@pytest.mark.parametrize(("url", "status", "service", "path"), [
    ("http://A.TEST/app", 503, "s1", "/app"),           # a host in any case
    ("http://a.test./app/x", 503, "s1", "/app/x"),       # a trailing dot
    ("http://a.test:8080/app", 503, "s1", "/app"),       # a port
    ("a.test/app?x=1#frag", 503, "s1", "/app?x=1"),      # no scheme, query kept, no fragment
    ("https://u:pw@a.test/", 503, "s2", "/"),           # userinfo: no part of the host
    ("http://[::1]:8080/app", 503, "s3", "/app"),        # an IPv6 literal: the default backend
    ("http://a.test/x/../app", 503, "s1", "/x/../app"),  # routed on the canonical /app
    ("http://a.test/app%2Fx", 400, None, "/app%2Fx"),    # refused, with the reason
    ("http://a.test/%2e%2e/app", 400, None, "/%2e%2e/app"),
])
def test_explain_url_forms(tmp_path: Path, url: str, status: int, service: str | None,
                           path: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(ROUTES)
    code, out, _ = _run("explain", "-f", str(f), "-o", "json", "--", url)
    doc = json.loads(out)
    assert code == 0 and doc["status"] == status and doc["path"] == path
    if service is None:
        assert doc["match"] is None and doc["reason"].startswith("rejected: ")
    else:
        assert doc["match"]["service"] == service
    assert "pw" not in out  # the password is never printed


@pytest.mark.parametrize("url", ["ftp://a.test/", "http://a.test:0/", "http://a.test:99999/",
                                 "http:///x", "http://a b/", ""])
def test_explain_refuses_urls_no_client_sends(tmp_path: Path, url: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(ROUTES)
    code, out, err = _run("explain", "-f", str(f), "-o", "json", "--", url)
    assert code == 2 and "Traceback" not in err
    assert json.loads(out)["error"] == "usage"


# -- the differential: explain and the proxy core ---------------------------------------------

_HOSTS = ["a.test", "*.test", "b.a.test", "*.a.test", None, "c.test"]
_PATHS = [("/", "Prefix"), ("/app", "Prefix"), ("/app/", "Prefix"), ("/app", "Exact"),
          ("/api/v1", "Prefix"), ("/App", "Prefix"), ("/app", "ImplementationSpecific"),
          ("/a.b", "Exact"), ("/x/y", "ImplementationSpecific"), ("/app/x", "Exact")]
_REGEX_PATHS = [("/app/.*", "ImplementationSpecific"), ("/ap+", "ImplementationSpecific")]
_SERVICES = ["s1", "s2", "s3", "nope"]
_ANNOTATIONS: list[dict[str, str]] = [
    {}, {P + "app-root": "/app"}, {P + "permanent-redirect": "https://moved.example/"},
    {P + "temporal-redirect": "https://tmp.example/x"},
    {P + "whitelist-source-range": "10.0.0.0/8"}, {P + "denylist-source-range": "127.0.0.0/8"},
    {P + "use-regex": "true"}, {P + "force-ssl-redirect": "true"},
    {P + "from-to-www-redirect": "true"}, {P + "affinity": "cookie"},
    {P + "upstream-hash-by": "$request_uri"},
]
_CANARY: list[dict[str, str]] = [{P + "canary-by-header": "X-Canary"},
                                 {P + "canary-by-cookie": "cnry"}, {P + "canary-weight": "100"},
                                 {P + "canary-weight": "0"}]
_URL_HOSTS = ["a.test", "A.TEST", "a.test.", "x.a.test", "b.a.test", "c.test", "z.test",
              "a.test:8080", "a.test:80", "u:p@a.test", "127.0.0.1", "[::1]:8080",
              "www.a.test", "www.c.test"]
_URL_PATHS = ["/", "/app", "/app/", "/App", "/app/x", "/api%2Fv1", "/api/v1/", "/a/../app",
              "/app?x=1", "/app#frag", "/%61pp", "//app", "/app/./x", "/a.b", "/x/y", "/apppp",
              "/app%2f", "/%2e%2e/app", "/app/.."]
_HEADERS = [[], [("X-Canary", "always")], [("X-Canary", "never")], [("Cookie", "cnry=always")],
            [("Host", "a.test")], [("Host", "www.a.test"), ("X-Canary", "always")]]


def _random_objects(rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 5)):
        ann: dict[str, str] = {}
        for _ in range(rng.randint(0, 2)):
            ann.update(rng.choice(_ANNOTATIONS))
        if rng.random() < 0.4:
            ann[P + "canary"] = "true"
            ann.update(rng.choice(_CANARY))
        rules = []
        for _ in range(rng.randint(0, 3)):
            pool = _PATHS + (_REGEX_PATHS if ann.get(P + "use-regex") == "true" else [])
            paths = [{"path": p, "pathType": t, "backend": {"service": {
                "name": rng.choice(_SERVICES), "port": {"number": 80}}}}
                for p, t in (rng.choice(pool) for _ in range(rng.randint(1, 3)))]
            host = rng.choice(_HOSTS)
            rules.append({"http": {"paths": paths}, **({} if host is None else {"host": host})})
        spec: dict[str, Any] = {"rules": rules}
        if rng.random() < 0.25 or not rules:
            spec["defaultBackend"] = {"service": {"name": rng.choice(_SERVICES),
                                                  "port": {"number": 80}}}
        if rng.random() < 0.2:
            spec["ingressClassName"] = rng.choice(["nginx", "other"])
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": f"i{i}", "namespace": "default", "annotations": ann,
                                 "creationTimestamp": f"2020-01-0{1 + i}T00:00:00Z"},
                    "spec": spec})
    for k, name in enumerate(_SERVICES[:3]):
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        if name != "s3":  # s3: a Service without endpoints (503)
            out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{name}-x", "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [f"127.0.0.{k + 1}"]},
                                      {"addresses": [f"127.0.1.{k + 1}"]}],
                        "ports": [{"port": 8080}]})
    return out


def _proxy_answer(res: Resources, ingress_class: str | None, host: str, target: str,
                  headers: list[tuple[str, str]], peer: str, tls: bool
                  ) -> tuple[int, tuple[str, int] | None, Any, str | None]:
    """(status, endpoint, the router's Decision, Location) of a proxy core over a Router of
    its own for the request a client sends (0: proxied)."""
    router = Router(res, seed=0, ingress_class=ingress_class)
    seen: list[Any] = []

    class Watched:
        def route(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(router.route(*args, **kwargs))
            return seen[-1]

        def __getattr__(self, name: str) -> Any:
            return getattr(router, name)

    proxy = Proxy(Watched(), None, request_id=lambda: "0" * 32)
    conn = proxy.connection(peer, tls=tls, now=0.0)
    has_host = any(n.lower() == "host" for n, _ in headers)
    lines = [f"GET {target} HTTP/{'1.1' if host or has_host else '1.0'}"]
    if host and not has_host:
        lines.append(f"Host: {host}")
    lines += [f"{n}: {v}" for n, v in headers]
    decision = lambda: seen[-1] if seen else None  # noqa: E731
    for act in conn.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode(), now=0.0):
        if isinstance(act, OpenUpstream):
            return 0, act.endpoint, decision(), None
        if isinstance(act, SendDownstream):
            head = act.data.split(b"\r\n\r\n")[0].split(b"\r\n")
            location = next((v.strip().decode() for n, _, v in (ln.partition(b":") for ln in head[1:])
                             if n.strip().lower() == b"location"), None)
            return int(head[0].split()[1]), None, decision(), location
    raise AssertionError("the proxy waits for more than a head")


@hsettings(suppress_health_check=list(HealthCheck), deadline=None)
@given(rng=st.randoms(use_true_random=False), data=st.data())
def test_explain_agrees_with_the_proxy_on_random_tables(rng: random.Random, data: Any) -> None:
    """explain's status, rule, backend, endpoint, canary and Location are the proxy's."""
    try:
        res = Resources.from_dicts(_random_objects(rng))
    except ValueError:
        return
    ingress_class = data.draw(st.sampled_from([None, "nginx"]))
    table = RouteTable.build(res, ingress_class=ingress_class)
    for _ in range(4):
        url = data.draw(st.sampled_from(["http://", "https://", ""])) \
            + data.draw(st.sampled_from(_URL_HOSTS)) + data.draw(st.sampled_from(_URL_PATHS))
        headers = list(data.draw(st.sampled_from(_HEADERS)))
        peer = data.draw(st.sampled_from(["10.1.2.3", "127.0.0.1"]))
        try:
            host, target = split_url(url)
        except UsageError:
            continue
        info = explain_url(table, url, res=res, headers=headers, client_ip=peer,
                           ingress_class=ingress_class)
        status, endpoint, d, location = _proxy_answer(
            res, ingress_class, host, target, headers, peer, url.startswith("https://"))
        said = (url, headers, peer, info["reason"])
        assert info["status"] == (status or 200), said
        if status == 0:
            assert endpoint is not None
            assert info["decision"]["endpoint"] == f"{endpoint[0]}:{endpoint[1]}", said
            assert info["decision"]["canary"] == d.canary, said
        if d is not None:
            routed = {k: v for k, v in match_to_dict(d.match).items() if k != "canary"}
            assert info["match"] is not None, said
            assert {k: info["match"].get(k) for k in routed} == routed, said
        elif status != 400:
            assert info["match"] is None or info["status"] == 404 or "verdict" in info, said
        if location is not None:
            assert info["verdict"]["location"] == location, said
