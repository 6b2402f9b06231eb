"""Session 36, x56: review of x54 (a rewrite-target equal to a Prefix rule's path).

X-Forwarded-Prefix goes with the rewrite, location by location. ingress-nginx's template.go
``buildProxyPass`` returns the bare ``proxy_pass`` when "the path in the ingress rule is equals
to the target" and writes ``proxy_set_header X-Forwarded-Prefix`` only in the branch that
writes the ``rewrite``. For a Prefix ``/foo`` rewritten to ``/foo`` (x54), the ``/foo/``
location rewrites (and sends the header), its exact twin ``= /foo`` is the rule path itself
(bare ``proxy_pass``: no header). So ``/foo/bar`` goes up with X-Forwarded-Prefix and ``/foo``
without, in the proxy core, IngressASGI and ``explain``.

The same rule path under two path types in one Ingress (Exact and Prefix ``/a+b``, both
rewritten to ``/a+b``): only the Prefix one rewrites; each request is rewritten by its own
rule's options, whatever ``parse_key`` groups for the warnings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import ingresslib
from ingresslib import Router, check, parse_manifests
from ingresslib._explain import render_text
from ingresslib._asgi import IngressASGI

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Route, routed_pair

P = "nginx.ingress.kubernetes.io/"
TARGET = P + "rewrite-target"
XFP = P + "x-forwarded-prefix"
ANN = {TARGET: "/foo", XFP: "/pre"}


def _upstream_head(target: bytes) -> bytes:
    pair = ProxyPair([Route("/foo", annotations=dict(ANN))])
    pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: example.test\r\n\r\n")
    return bytes(pair.upstreams[0].raw).split(b"\r\n\r\n", 1)[0].lower()


def test_the_proxy_core_sends_x_forwarded_prefix_with_the_rewrite_only() -> None:
    rewritten = _upstream_head(b"/foo/bar?x=1")
    assert rewritten.startswith(b"get /foo?x=1 http/1.1\r\n")
    assert b"\r\nx-forwarded-prefix: /pre\r\n" in rewritten + b"\r\n"
    # the = /foo twin: buildProxyPass's bare proxy_pass, no proxy_set_header X-Forwarded-Prefix
    twin = _upstream_head(b"/foo?x=1")
    assert twin.startswith(b"get /foo?x=1 http/1.1\r\n")
    assert b"x-forwarded-prefix" not in twin


def _manifest(paths: str, annotations: dict[str, str]) -> str:
    ann = ", ".join(f"'{k}': '{v}'" for k, v in annotations.items())
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: rw, namespace: default, annotations: {{{ann}}}}}
spec:
  rules:
  - host: a.test
    http:
      paths:
{paths}
"""


def _path(path: str, path_type: str) -> str:
    return (f"      - {{path: '{path}', pathType: {path_type}, "
            "backend: {service: {name: web, port: {number: 80}}}}\n")


FOO = _manifest(_path("/foo", "Prefix"), ANN)


def _asgi_headers(path: str) -> list[tuple[bytes, bytes]]:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = IngressASGI(Router(parse_manifests(FOO + WEB_SERVICE_YAML)), {"default/web": app})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    asyncio.run(adapter(scope, receive, send))
    assert len(seen) == 1
    return [(bytes(n), bytes(v)) for n, v in seen[0]["headers"]]


def test_ingress_asgi_sends_x_forwarded_prefix_with_the_rewrite_only() -> None:
    assert (b"x-forwarded-prefix", b"/pre") in _asgi_headers("/foo/bar")
    assert all(n != b"x-forwarded-prefix" for n, _ in _asgi_headers("/foo"))


def test_explain_says_x_forwarded_prefix_with_the_rewrite_only() -> None:
    docs = parse_manifests(FOO + WEB_SERVICE_YAML)
    below = ingresslib.explain(docs, "http://a.test/foo/bar")
    assert below["rewrite"]["applies"] is True
    assert below["rewrite"]["x_forwarded_prefix"] == "/pre"
    twin = ingresslib.explain(docs, "http://a.test/foo")
    assert twin["rewrite"]["applies"] is False
    assert "x_forwarded_prefix" not in twin["rewrite"]
    assert "X-Forwarded-Prefix" not in render_text(twin)
    assert "X-Forwarded-Prefix: /pre" in render_text(below)


# --- one rule path under two path types (parse_key has no path type) ------------------------

A_PLUS_B = _manifest(_path("/a+b", "Exact") + _path("/a+b", "Prefix"), {TARGET: "/a+b"})
B_THEN_A = _manifest(_path("/a+b", "Prefix") + _path("/a+b", "Exact"), {TARGET: "/a+b"})


def _sent(docs: str, target: bytes) -> bytes:
    pair = routed_pair(docs)
    pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
    return bytes(pair.upstreams[0].raw).split(b"\r\n", 1)[0]


def test_each_path_type_rewrites_by_its_own_options() -> None:
    for docs in (A_PLUS_B, B_THEN_A):
        # Exact /a+b (= /a+b, no rewrite) and the Prefix rule's twin: unchanged
        assert _sent(docs, b"/a+b?x=1") == b"GET /a+b?x=1 HTTP/1.1"
        # the Prefix rule's /a+b/ location: rewrite "(?i)/a+b/" /a+b break;
        assert _sent(docs, b"/a+b/c?x=1") == b"GET /a+b?x=1 HTTP/1.1"


def _check_fields(docs: str) -> set[str]:
    """The rule path fields check says are a regex in ingress-nginx."""
    return {d.field for d in check(parse_manifests(docs + WEB_SERVICE_YAML))
            if "is a regex in ingress-nginx" in d.message}


def test_check_warns_on_both_path_types_whatever_the_order() -> None:
    # The Prefix /a+b rewrites (its /a+b/ location), which makes the host regex
    # (enforceRegexModifier): both locations are "~* ^/a+b..." there. The Prefix rule's own
    # warning (parse_route_options) was lost when the Exact rule, parsed first under the same
    # parse_key (annotations, path), had none: check named the Exact field alone.
    both = {"spec.rules[0].http.paths[0].path", "spec.rules[0].http.paths[1].path"}
    assert _check_fields(A_PLUS_B) == both
    assert _check_fields(B_THEN_A) == both


# --- x52 (read only here: ingresslib/_kube.py is x55's this round) ---------------------------
# The default Secret's watch by name (``_kube.named_secret``) is ``optional``: the first table
# waits for its first list *attempt*, so that a Role that does not reach the Secret's namespace
# (403, retried for ever) does not keep serve from serving (the lead's follow-up). Two findings:


def _kube_secret(name: str, type_: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": "Yw==", "tls.key": "aw=="}}


def _failing_named_list(h: Any, status: int, times: int) -> list[str]:
    """Make the fake API server answer the first ``times`` lists/watches of Secrets by name
    (the default Secret's watch, ``fieldSelector=metadata.name=...``) with ``status``; the
    requests it refused are returned (filled in as they come)."""
    import _fake_kube

    respond = h.kube._respond
    refused: list[str] = []

    async def scripted(target: str, writer: Any) -> None:
        if "/secrets" in target and "metadata.name" in target and len(refused) < times:
            refused.append(target)
            await _fake_kube._send_json(writer, status, _fake_kube._status(
                status, "Forbidden" if status == 403 else "InternalError",
                'secrets "default-cert" is forbidden' if status == 403 else "etcd timeout"))
            return
        await respond(target, writer)

    h.kube._respond = scripted
    return refused


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Any]:
    from _fake_kube_s14 import FakeKubeS14
    from test_kube import running_harness

    async with running_harness(FakeKubeS14()) as harness:
        yield harness


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_transient_first_list_failure_holds_the_first_table_for_the_default_secret(
        h: Any) -> None:
    # One 500 on the default Secret's first list (an API server restarting, etcd slow): the
    # first table was delivered at once without the Secret, so serve's first handshakes got
    # the generated certificate though the Secret exists. Every other kind holds the first
    # table until its first list succeeds (ingress-nginx: WaitForCacheSync of every informer);
    # only a refusal (401/403: RBAC) should let it go ahead without the Secret.
    from ingresslib._kube import WATCHED_KINDS, Backoff, with_default_secret

    h.kube.put(_kube_secret("default-cert", "Opaque", "ingresslib"))
    refused = _failing_named_list(h, 500, 1)
    # The retry after 0.3 s, well past the debounce (0.05 s): the first table is delivered
    # before it unless it waits for that list's success.
    h.start(kinds=with_default_secret(WATCHED_KINDS, "ingresslib", "default-cert"),
            backoff=Backoff(initial=0.3, maximum=0.3, jitter=0.0))
    await h.synced()
    assert refused
    assert [s.metadata.name for s in h.snapshots[0].secrets] == ["default-cert"]


@pytest.mark.network
@pytest.mark.asyncio
async def test_the_rbac_advice_for_the_default_secret_grants_that_secret_alone(
        h: Any, caplog: pytest.LogCaptureFixture) -> None:
    # A refused watch of the one Secret by name: the advice was the rule of every Secret of
    # the namespace ({resources: ["secrets"], verbs: [get, list, watch]} in a Role), where a
    # rule with resourceNames: ["NAME"] is enough (docs/cluster.md says so; the API server
    # authorizes a list/watch with an exact metadata.name field selector by that name).
    from ingresslib._kube import WATCHED_KINDS, with_default_secret

    refused = _failing_named_list(h, 403, 10_000)
    with caplog.at_level(logging.ERROR, logger="ingresslib.kube"):
        h.start(kinds=with_default_secret(WATCHED_KINDS, "ingresslib", "default-cert"))
        await h.synced()
    assert refused
    denied = [r.getMessage() for r in caplog.records if "list/watch denied" in r.getMessage()]
    assert denied and all('resourceNames: ["default-cert"]' in m for m in denied), denied
