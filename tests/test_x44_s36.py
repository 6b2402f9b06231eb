"""Session 36 (x44): the Kubernetes SIG-Network ingress-controller-conformance scenarios
(kubernetes-sigs/ingress-controller-conformance, ``features/*.feature``, the newest version of
each in the search index) expressed as ingresslib tests, at two levels:

1. ``RouteTable.build`` + ``match`` (``Router.route`` for load balancing);
2. through the real proxy: a ``ProxyServer`` on 127.0.0.1 (HTTP and HTTPS listeners, a
   ``CertificateStore`` fed the Ingresses' TLS Secrets), in front of echo backends on 127.0.0.1
   that answer what the suite's echoserver answers (images/echoserver/echoserver.go: the
   request URI, Host, method, protocol and headers it got, and which Service and pod it is, as
   JSON), asked by a client that acts as the suite's (test/http/http.go ``CaptureRoundTrip``:
   ``User-Agent: Go-http-client/1.1``, Host set to the scenario's host, else the controller's
   address; a redirect followed to the same controller, on the scheme and path it names).

"Ingress status shows the IP address or FQDN" (every Background) has no ingresslib equivalent:
ingresslib writes no Ingress status. Served or not is what stands for it here: a request the
Ingress's rules route, or (ingress_class) no route and the ``not served`` diagnostic.

Scenarios covered and their result (PASS: ingresslib does what the scenario asserts):

path_rules.feature (host exact-path-rules, prefix-path-rules, mixed-path-rules,
trailing-slash-path-rules; status, Service, and "the request path must be" of the newest
version):
- exact /foo matches request /foo: PASS
- exact /foo does not match request /foo/: PASS (404)
- exact /foo does not match request /FOO (case sensitive): PASS (404)
- exact /foo does not match request /bar: PASS (404)
- prefix /foo matches request /foo: PASS
- prefix /foo matches request /foo/ (listed twice in the feature): PASS
- prefix /foo does not match request /FOO: PASS (404)
- prefix /aaa/bbb matches request /aaa/bbb (longest path): PASS
- prefix /aaa/bbb matches request /aaa/bbb/ccc: PASS
- prefix /aaa matches request /aaa/ccc: PASS
- prefix /aaa does not match request /aaaccc: PASS (404)
- mixed: exact /foo preferred over prefix /foo for /foo: PASS
- prefix /aaa/bbb/ matches request /aaa/bbb: PASS
- prefix /aaa/bbb/ matches request /aaa/bbb/: PASS
- exact /foo/ does not match request /foo: PASS (404)

host_rules.feature (``*.foo.com`` and ``foo.bar.com`` with TLS Secret conformance-tls):
- TLS traffic to foo.bar.com: the certificate's first DNS name is foo.bar.com (the suite's
  client verifies nothing else: InsecureSkipVerify), 200, foo-bar-com, Host foo.bar.com: PASS
- plain http://foo.bar.com: 200 from foo-bar-com, Host foo.bar.com: PASS, as in ingress-nginx
  after the client follows the 308 to https that a TLS host gets by default (ssl-redirect),
  which the suite's client does
- subdomain.bar.com: 404: PASS
- bar.foo.com by the wildcard: 200, wildcard-foo-com, Host bar.foo.com: PASS (after a 308
  to https too: every rule host of an Ingress with a TLS section gets the default certificate
  and ssl-redirect, as ingress-nginx's createServers gives it; ingresslib's CertificateStore
  reports it)
- baz.bar.foo.com (more than one label): 404: PASS
- foo.com (no label): 404: PASS

default_backend.feature (an Ingress with only ``defaultBackend`` echo-service; the Scenario
Outline's six examples, GET/POST/PUT/DELETE/PATCH, hosts my-host, some-host and none):
- 200, served by echo-service, response HTTP/1.1, request method, path (``/``, ``/sub-path``,
  ``/resource``) and HTTP/1.1 as sent, request header ``User-Agent: Go-http-client/1.1``,
  response headers Content-Length, Content-Type, Date: PASS
- response header ``Server`` (any value): PASS with the ConfigMap's ``server-tokens: "true"``;
  by default there is none, as there is none from ingress-nginx by default (nginx.tmpl:
  ``more_clear_headers Server;`` unless ``server-tokens``; README: "by default no answer carries
  a Server header"). The scenario, not ingresslib, departs from ingress-nginx's defaults here.

ingress_class.feature:
- an Ingress naming a class no IngressClass has (some-invalid-class-name) is not served:
  PASS with a class filter (``RouteTable.build(ingress_class=...)`` / ``controller=...``;
  ``serve --ingress-class`` / ``--controller``: 404, and serve warns that the filter leaves out
  every Ingress). Without a filter ingresslib serves every Ingress (CONTRACT.md, "Route table":
  "With neither given every Ingress is served"): a deliberate divergence, asserted below as
  the documented behaviour; ingress-nginx always has a class (``--ingress-class`` default
  ``nginx``, ``--controller-class`` default ``k8s.io/ingress-nginx``).

load_balancing.feature:
- 100 requests to an Ingress whose default backend has 10 ready pods: all 200, and 10
  different pods answered: PASS (round-robin: each pod exactly 10 times).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest
import trustme

from ingresslib import Resources, Router, RouteTable, parse_manifests
from ingresslib.proxy import CertificateStore, ProxyServer, ProxySettings

from _default_cert_helpers import secret_yaml
from _process_helpers import kill_after, stderr_until_exit
from tests._server_helpers import Client, Resp
from tests._upstream_helpers import TrackedUpstream

#: What the suite's Go client sends as User-Agent (default_backend.feature checks it arrives).
_GO_UA = "Go-http-client/1.1"
#: The port every conformance Ingress names (``port: number: 8080``).
_PORT = 8080

# --- manifests: the features' Ingresses, written as dicts ------------------------------------

#: A rule path: (path, pathType, Service).
_Path = tuple[str, str, str]


def _ingress(name: str, rules: Sequence[tuple[str, Sequence[_Path]]] = (), *,
             default: str | None = None, class_name: str | None = None,
             tls: tuple[str, str] | None = None, named_port: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """An Ingress: ``rules`` = [(host, [(path, pathType, service), ...])], each backend on
    port 8080 (by name for the Services in ``named_port``: service -> port name);
    ``tls`` = (host, secretName)."""
    def backend(service: str) -> dict[str, Any]:
        port = ({"name": named_port[service]} if named_port and service in named_port
                else {"number": _PORT})
        return {"service": {"name": service, "port": port}}

    spec: dict[str, Any] = {}
    if rules:
        spec["rules"] = [{"host": host, "http": {"paths": [
            {"path": p, "pathType": t, "backend": backend(s)} for p, t, s in paths]}}
            for host, paths in rules]
    if default is not None:
        spec["defaultBackend"] = backend(default)
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if tls is not None:
        spec["tls"] = [{"hosts": [tls[0]], "secretName": tls[1]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "conformance"}, "spec": spec}


def _service(name: str, pods: Sequence[tuple[str, int]], port_name: str | None = None
             ) -> list[dict[str, Any]]:
    """Service ``name`` (port 8080, named ``port_name``) and one EndpointSlice per pod
    (address, port): the pods of one Service may listen on ports of their own, so that echo
    backends on 127.0.0.1 can stand for pods with addresses of their own."""
    named = {} if port_name is None else {"name": port_name}
    objs: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "conformance"},
        "spec": {"ports": [{**named, "port": _PORT, "targetPort": pods[0][1]}]}}]
    for i, (ip, port) in enumerate(pods):
        objs.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{i}", "namespace": "conformance",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{**named, "port": port}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]})
    return objs


def _path_rules() -> dict[str, Any]:
    # path_rules.feature, Background: one Ingress "path-rules", four hosts.
    return _ingress("path-rules", [
        ("exact-path-rules", [("/foo", "Exact", "foo-exact")]),
        ("prefix-path-rules", [("/foo", "Prefix", "foo-prefix"),
                               ("/aaa/bbb", "Prefix", "aaa-slash-bbb-prefix"),
                               ("/aaa", "Prefix", "aaa-prefix")]),
        ("mixed-path-rules", [("/foo", "Prefix", "foo-prefix"),
                              ("/foo", "Exact", "foo-exact")]),
        ("trailing-slash-path-rules", [("/aaa/bbb/", "Prefix", "aaa-slash-bbb-slash-prefix"),
                                       ("/foo/", "Exact", "foo-slash-exact")]),
    ])


def _host_rules() -> dict[str, Any]:
    # host_rules.feature, Background: "*.foo.com" and foo.bar.com (port by name "http"), TLS
    # for foo.bar.com with Secret conformance-tls.
    return _ingress("host-rules", [
        ("*.foo.com", [("/", "Prefix", "wildcard-foo-com")]),
        ("foo.bar.com", [("/", "Prefix", "foo-bar-com")]),
    ], tls=("foo.bar.com", "conformance-tls"), named_port={"foo-bar-com": "http"})


def _default_backend() -> dict[str, Any]:
    # default_backend.feature and load_balancing.feature, Background: no rules, defaultBackend
    # echo-service:8080.
    return _ingress("default-backend", default="echo-service")


def _services_of(ingress: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Every (Service, port name) ``ingress`` names, once each, in order."""
    backends = [p["backend"] for r in ingress["spec"].get("rules", ())
                for p in r["http"]["paths"]]
    if "defaultBackend" in ingress["spec"]:
        backends.append(ingress["spec"]["defaultBackend"])
    seen: dict[str, str | None] = {}
    for b in backends:
        seen.setdefault(b["service"]["name"], b["service"]["port"].get("name"))
    return list(seen.items())


# --- the scenarios as rows ---------------------------------------------------------------------

#: path_rules.feature: (host, request path, Service that must answer, or None: 404). The
#: backend must see the request path as sent (newest version: "the request path must be").
PATH_ROWS = [
    # "An Ingress with exact path rules should send traffic to the matching backend service"
    ("exact-path-rules", "/foo", "foo-exact"),
    # "... exact path rules should not match requests with trailing slash"
    ("exact-path-rules", "/foo/", None),
    # "... exact path rules should be case sensitive"
    ("exact-path-rules", "/FOO", None),
    # "... exact path rules should not match any other label"
    ("exact-path-rules", "/bar", None),
    # "An Ingress with prefix path rules should send traffic to the matching backend service"
    ("prefix-path-rules", "/foo", "foo-prefix"),
    # "... prefix path rules should ignore the request trailing slash ..." (twice in the file)
    ("prefix-path-rules", "/foo/", "foo-prefix"),
    # "... prefix path rules should be case sensitive"
    ("prefix-path-rules", "/FOO", None),
    # "... should match multiple labels, match the longest path, and send traffic ..."
    ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
    # "... should match multiple labels, match the longest path, and subpaths ..."
    ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
    # "An Ingress with prefix path rules should and send traffic to the matching backend ..."
    ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
    # "... prefix path rules should match each labels string prefix"
    ("prefix-path-rules", "/aaaccc", None),
    # "An Ingress with mixed path rules should send traffic ... where Exact is preferred"
    ("mixed-path-rules", "/foo", "foo-exact"),
    # "An Ingress with a trailing slashes in a prefix path rule should ignore the trailing
    # slash ..." (/aaa/bbb/ matches /aaa/bbb, and /aaa/bbb/)
    ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
    # "An Ingress with a trailing slashes in an exact path rule should not match requests
    # without a trailing slash"
    ("trailing-slash-path-rules", "/foo", None),
]

#: host_rules.feature: (scheme, host, Service that must answer, or None: 404).
HOST_ROWS = [
    # "An Ingress with a host rule should send TLS traffic to the matching backend service"
    ("https", "foo.bar.com", "foo-bar-com"),
    # "An Ingress with a host rule should send traffic to the matching backend service"
    ("http", "foo.bar.com", "foo-bar-com"),
    # "... should not route traffic when hostname does not match"
    ("http", "subdomain.bar.com", None),
    # "An Ingress with a wildcard host rule should send traffic to the matching backend ..."
    ("http", "bar.foo.com", "wildcard-foo-com"),
    # "... wildcard host rule should not route traffic matching on more than a single dns label"
    ("http", "baz.bar.foo.com", None),
    # "... wildcard host rule should not route traffic matching no dns label"
    ("http", "foo.com", None),
]

#: default_backend.feature, Scenario Outline "An Ingress with no rules should send all requests
#: to the default backend", its Examples: (method, host, path). An empty host: the client
#: sends the controller's address as Host.
DEFAULT_ROWS = [
    ("GET", "my-host", ""),
    ("GET", "my-host", "sub-path"),
    ("POST", "some-host", ""),
    ("PUT", "", "resource"),
    ("DELETE", "some-host", "resource"),
    ("PATCH", "my-host", "resource"),
]


def _id(row: tuple[Any, ...]) -> str:
    return " ".join(str(x) for x in row)


# --- level 1: RouteTable.build + match -------------------------------------------------------


def _table(*ingresses: dict[str, Any], **kw: Any) -> RouteTable:
    return RouteTable.build(Resources.from_dicts(list(ingresses)), **kw)


@pytest.mark.parametrize("row", PATH_ROWS, ids=_id)
def test_path_rules_table(row: tuple[str, str, str | None]) -> None:
    host, path, service = row
    m = _table(_path_rules()).match(host, path)
    assert (m.service if m is not None else None) == service


@pytest.mark.parametrize("row", HOST_ROWS, ids=_id)
def test_host_rules_table(row: tuple[str, str, str | None]) -> None:
    _scheme, host, service = row
    m = _table(_host_rules()).match(host, "/")
    assert (m.service if m is not None else None) == service


@pytest.mark.parametrize("row", DEFAULT_ROWS, ids=_id)
def test_default_backend_table(row: tuple[str, str, str]) -> None:
    _method, host, path = row
    # No host in the scenario: the Go client sends the controller's address and port.
    m = _table(_default_backend()).match(host or "192.0.2.10:80", "/" + path)
    assert m is not None and m.is_default_backend
    assert (m.service, m.port, m.ingress) == ("echo-service", _PORT, "conformance/default-backend")


def _class_objects() -> list[dict[str, Any]]:
    # ingress_class.feature: an Ingress naming a class that does not exist, next to the
    # controller's own IngressClass (a cluster with ingress-nginx installed has "nginx").
    nginx = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
             "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    ing = _ingress("test-ingress-class",
                   [("ingress-class", [("/", "Prefix", "ingress-class-prefix")])],
                   class_name="some-invalid-class-name")
    return [nginx, ing]


@pytest.mark.parametrize("filter_", [{"ingress_class": "nginx"},
                                     {"controller": "k8s.io/ingress-nginx"}], ids=str)
def test_ingress_class_invalid_class_not_served(filter_: dict[str, str]) -> None:
    # "An Ingress with an invalid ingress class should not send traffic to the matching
    # backend service": with a class filter, no route, and the build says why.
    table = RouteTable.build(Resources.from_dicts(_class_objects()), **filter_)
    assert table.match("ingress-class", "/") is None
    assert [i.metadata.name for i in table.served] == []
    assert [str(d).endswith("not served") for d in table.diagnostics
            if "conformance/test-ingress-class" in str(d)] == [True], table.diagnostics


def test_ingress_class_without_filter_serves_every_ingress() -> None:
    # The same Ingress with no class filter: served (CONTRACT.md "Route table": "With neither
    # given every Ingress is served"), a deliberate divergence from ingress-nginx, which
    # always has a class; the scenario holds only for ingresslib given the controller's class.
    m = RouteTable.build(Resources.from_dicts(_class_objects())).match("ingress-class", "/")
    assert m is not None and m.service == "ingress-class-prefix"


def test_load_balancing_router() -> None:
    # load_balancing.feature: "An Ingress with no rules should send all requests to the default
    # backend and" ... "all the responses status-code must be 200 and the response body
    # should contain the IP address of 10 different Kubernetes pods".
    pods = [(f"10.0.0.{i}", 3000) for i in range(1, 11)]
    router = Router(Resources.from_dicts([_default_backend(), *_service("echo-service", pods)]))
    chosen = []
    for _ in range(100):
        d = router.route("GET", "load-balancing", "/")
        assert d is not None and d.endpoint is not None and d.service == "echo-service"
        chosen.append(d.endpoint)
    assert sorted(set(chosen)) == sorted(pods)
    assert all(chosen.count(p) == 10 for p in pods)  # round-robin: a strict cycle


# --- level 2: through the proxy, with echo backends ---------------------------------------------


class _Echo(TrackedUpstream):
    """The suite's echoserver on 127.0.0.1: answers every request (keep-alive) with JSON
    naming what it got (``path`` is the request URI as received) and which Service and pod it
    is, with the headers Go's net/http writes (Content-Type, Content-Length, Date)."""

    def __init__(self, service: str, pod: str) -> None:
        super().__init__()
        self.service, self.pod = service, pod
        self._tasks: list[asyncio.Task[Any]] = []

    async def stop(self) -> None:
        # The connections are aborted: their handlers see the end and return, awaited here so
        # that none is left for asyncio.run to cancel.
        await super().stop()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 2)

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await r.read(65536)
                conn.receive_data(data)
            elif isinstance(ev, h11.Request):
                request = ev
            elif isinstance(ev, h11.EndOfMessage):
                assert request is not None
                w.write(self._answer(conn, request))
                await w.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                break
        w.close()

    def _answer(self, conn: h11.Connection, req: h11.Request) -> bytes:
        headers: dict[str, list[str]] = {}
        for name, value in req.headers:
            headers.setdefault(name.decode(), []).append(value.decode())
        body = json.dumps({
            "path": req.target.decode(), "host": headers.get("host", [""])[0],
            "method": req.method.decode(), "proto": "HTTP/" + req.http_version.decode(),
            "headers": headers, "service": self.service, "pod": self.pod}).encode()
        head = h11.Response(status_code=200, headers=[
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Date", email.utils.formatdate(usegmt=True))])
        return conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())


@dataclass
class _Served:
    """A ProxyServer on 127.0.0.1 in front of the echo backends of one feature."""

    http_port: int
    https_port: int


@dataclass
class _Answer:
    """What the suite's ``CaptureRoundTrip`` captures: the response, its protocol, the echo's
    JSON (empty when the body is not JSON) and, over https, the first DNS name of the
    certificate the server showed (``TLSHostname``: ``certs[0].DNSNames[0]``)."""

    response: Resp
    proto: str
    echo: dict[str, Any]
    tls_hostname: str | None


@asynccontextmanager
async def _serving(ingress: dict[str, Any], *, pods: int = 1,
                   settings: ProxySettings | None = None) -> AsyncIterator[_Served]:
    """Echo backends (``pods`` each) for every Service ``ingress`` names, a Router over them,
    and a ProxyServer with both listeners; a Secret for every TLS entry of ``ingress``, its
    certificate for the entry's hosts. Everything stops on leaving."""
    services = _services_of(ingress)
    echoes: list[_Echo] = []
    server: ProxyServer | None = None
    try:
        for name, _ in services:
            echoes += [await _Echo(name, f"{name}-pod-{i}").start() for i in range(pods)]
        docs = [json.dumps(o) for o in [ingress, *(
            obj for name, port_name in services for obj in _service(
                name, [("127.0.0.1", e.port) for e in echoes if e.service == name], port_name))]]
        for tls in ingress["spec"].get("tls", ()):
            leaf = trustme.CA().issue_cert(*tls["hosts"])
            docs.append(secret_yaml(tls["secretName"], leaf, "conformance"))
        res = parse_manifests("\n---\n".join(docs))
        router = Router(res)
        store = CertificateStore()
        for problem in store.update(res, router.table.served):
            # host_rules.feature: "*.foo.com" has no certificate of its own (the default one,
            # and ssl-redirect as the Ingress has tls: controller.go createServers gives every
            # rule host of an Ingress with a TLS section the default certificate).
            assert "'*.foo.com'" in problem.message, problem
        server = ProxyServer(router, settings, cert_store=store)
        await server.start(("127.0.0.1", 0), tls_listen=("127.0.0.1", 0))
        yield _Served(server.addresses[0][2], server.addresses[1][2])
    finally:
        if server is not None:
            await server.shutdown(1)
        for e in echoes:
            await e.stop()


def _first_dns_name(client: Client) -> str:
    """The first DNS name of the certificate ``client``'s TLS peer showed."""
    from cryptography import x509

    der = client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName)
    return str(san.value.get_values_for_type(x509.DNSName)[0])


def _insecure_context() -> ssl.SSLContext:
    """The suite's TLS client: no verification (``InsecureSkipVerify``, self-signed
    certificates); the certificate's name is checked by the scenario instead."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _round_trip(served: _Served, method: str, scheme: str, host: str, path: str,
                      client: Client | None = None) -> _Answer:
    """One request as the suite's client sends it (Host ``host``, else the controller's
    address; SNI ``host``), a redirect followed to the same controller on the scheme, host and
    path it names (http.go ``CaptureRoundTrip``). ``client``: a keep-alive connection to reuse."""
    port = served.http_port if scheme == "http" else served.https_port
    tls = _insecure_context() if scheme == "https" else None
    own = client is None
    if client is None:
        client = await Client.open(port, tls=tls, sni=host or None)
    try:
        # Go's client sends a body length for the methods that carry one, even when empty.
        body_length = [("Content-Length", "0")] if method in ("POST", "PUT", "PATCH") else []
        resp = await client.get(host or f"127.0.0.1:{port}", path, method=method,
                                headers=[("User-Agent", _GO_UA), *body_length])
        proto = "HTTP/" + bytes(client.conn.their_http_version or b"").decode()
        tls_hostname = _first_dns_name(client) if tls is not None else None
    finally:
        if own:
            await client.close()
    if resp.status in (301, 302, 303, 307, 308):
        scheme_, _, rest = resp.headers["location"].partition("://")
        authority, _, rest_path = rest.partition("/")
        return await _round_trip(served, method, scheme_, authority.split(":")[0],
                                 "/" + rest_path)
    echo = json.loads(resp.body) if resp.headers.get("content-type") == "application/json" else {}
    return _Answer(resp, proto, echo, tls_hostname)


def _proxied(ingress: dict[str, Any], method: str, scheme: str, host: str, path: str,
             **kw: Any) -> _Answer:
    async def run() -> _Answer:
        async with _serving(ingress, **kw) as served:
            return await asyncio.wait_for(_round_trip(served, method, scheme, host, path), 5)

    return asyncio.run(run())


@pytest.mark.parametrize("row", PATH_ROWS, ids=_id)
def test_path_rules_proxy(row: tuple[str, str, str | None]) -> None:
    host, path, service = row
    got = _proxied(_path_rules(), "GET", "http", host, path)
    if service is None:
        assert got.response.status == 404 and got.echo == {}
        return
    assert got.response.status == 200
    assert (got.echo["service"], got.echo["path"]) == (service, path)


@pytest.mark.parametrize("row", HOST_ROWS, ids=_id)
def test_host_rules_proxy(row: tuple[str, str, str | None]) -> None:
    scheme, host, service = row
    got = _proxied(_host_rules(), "GET", scheme, host, "/")
    if service is None:
        assert got.response.status == 404 and got.echo == {}
        return
    assert got.response.status == 200
    assert (got.echo["service"], got.echo["host"]) == (service, host)
    if scheme == "https":
        # "the secure connection must verify the "foo.bar.com" hostname"
        assert got.tls_hostname == host


def test_host_rules_plain_http_to_tls_host_is_redirected_first() -> None:
    # The step the suite's client takes without asserting it: ingress-nginx answers plain
    # http to a host with TLS with a 308 to https (ssl-redirect, default on); the scenario's
    # 200 comes from the https request that follows.
    async def run() -> Resp:
        async with _serving(_host_rules()) as served:
            client = await Client.open(served.http_port)
            try:
                return await client.get("foo.bar.com", "/", headers=[("User-Agent", _GO_UA)])
            finally:
                await client.close()

    resp = asyncio.run(run())
    assert resp.status == 308
    assert resp.headers["location"].startswith("https://foo.bar.com")


@pytest.mark.parametrize("row", DEFAULT_ROWS, ids=_id)
def test_default_backend_proxy(row: tuple[str, str, str]) -> None:
    method, host, path = row
    got = _proxied(_default_backend(), method, "http", host, "/" + path,
                   settings=ProxySettings(server_tokens=True))
    assert got.response.status == 200
    assert got.echo["service"] == "echo-service"
    assert got.proto == "HTTP/1.1"
    for name in ("content-length", "content-type", "date", "server"):
        assert name in got.response.headers, (name, got.response.headers)
    assert (got.echo["method"], got.echo["path"], got.echo["proto"]) == (
        method, "/" + path, "HTTP/1.1")
    assert got.echo["headers"]["user-agent"] == [_GO_UA]


def test_default_backend_proxy_server_header_only_with_server_tokens() -> None:
    # default_backend.feature also wants a Server response header. ingress-nginx's default
    # (server-tokens: "false") writes "more_clear_headers Server;" (nginx.tmpl): no Server
    # header at all; ingresslib keeps that default (README, "Custom headers"), so the
    # scenario needs server-tokens: "true" with either.
    got = _proxied(_default_backend(), "GET", "http", "my-host", "/")
    assert got.response.status == 200 and got.echo["service"] == "echo-service"
    assert "server" not in got.response.headers


def test_load_balancing_proxy() -> None:
    # load_balancing.feature: 100 requests to http://load-balancing, echo-service scaled to 10
    # pods: all 200, 10 different pods answered (here pods are echo backends on ports of
    # their own: the endpoint, not the address, is what differs).
    async def run() -> list[_Answer]:
        async with _serving(_default_backend(), pods=10) as served:
            client = await Client.open(served.http_port)   # keep-alive, as Go's client
            try:
                return [await asyncio.wait_for(
                    _round_trip(served, "GET", "http", "load-balancing", "/", client), 5)
                    for _ in range(100)]
            finally:
                await client.close()

    answers = asyncio.run(run())
    assert [a.response.status for a in answers] == [200] * 100
    pods = [a.echo["pod"] for a in answers]
    assert len(set(pods)) == 10
    assert all(pods.count(p) == 10 for p in set(pods))


# --- ingress_class through serve --ingress-class / --controller ------------------------------


@pytest.mark.parametrize("flag", [["--ingress-class", "nginx"],
                                  ["--controller", "k8s.io/ingress-nginx"]], ids=" ".join)
def test_ingress_class_serve(flag: list[str]) -> None:
    # ingress_class.feature through ``ingresslib serve`` with the controller's class: the
    # Ingress naming some-invalid-class-name is not served (404), and serve says the filter
    # leaves out every Ingress.
    with tempfile.TemporaryDirectory() as d:
        manifests = Path(d, "class.yaml")
        manifests.write_text("\n---\n".join(json.dumps(o) for o in _class_objects()))
        p = subprocess.Popen(
            [sys.executable, "-m", "ingresslib", "serve", "-f", str(manifests),
             "--listen", "127.0.0.1:0", "--access-log", "off", *flag],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        with kill_after(p, 10):
            assert p.stderr is not None
            lines = []
            for line in iter(p.stderr.readline, ""):
                lines.append(line)
                if "listening on http://" in line:
                    break
            url = lines[-1].rsplit("listening on http://", 1)[-1].strip()
            port = url.rstrip("/").rpartition(":")[2]
            status = asyncio.run(_status(int(port), "ingress-class"))
            p.terminate()
            err = "".join(lines) + stderr_until_exit(p, 5)
    assert status == 404
    assert 'Ingress conformance/test-ingress-class: spec.ingressClassName: IngressClass ' \
        '"some-invalid-class-name" is not among the objects given' in err, err
    assert "none of the 1 Ingress(es) is served" in err, err


async def _status(port: int, host: str) -> int:
    client = await Client.open(port)
    try:
        return (await client.get(host, "/", headers=[("User-Agent", _GO_UA)])).status
    finally:
        await client.close()
