"""Session 26 round 5 (RS): a security review of ``satisfy`` (proxy/_satisfy.py) and
``auth-type: digest`` (proxy/_digest.py), through the proxy core (``Proxy.connection``) and
IngressASGI.

The invariant: no request reaches a backend unless the location's access rules, as nginx
evaluates them, let it in; and a request they let in is not refused for a reason nginx has
not.

References (search corpus "code"): nginx src/http/ngx_http_core_module.c
``ngx_http_core_access_phase`` (the access phase runs once per request; ``satisfy any``),
src/http/modules/ngx_http_auth_request_module.c ``ngx_http_auth_request_handler`` (the
subrequest's 2xx is NGX_OK for this phase handler: the phase goes on to its next handler or
ends, it is not run again), atomx nginx-http-auth-digest ``ngx_http_auth_digest_verify_hash``
(each ``nc`` of a nonce is accepted once).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy._digest import new_nonce

sys.path.insert(0, str(Path(__file__).parent))
from _budget import examples  # noqa: E402
from _proxy_harness import (FakeUpstream, ProxyPair, Reply, ingress_yaml, ok,  # noqa: E402
                            web_service_yaml)
from test_access_control_s13 import _secret  # noqa: E402
from test_digest_auth_s26 import HTDIGEST, REALM, authorization  # noqa: E402
from test_satisfy_s26 import (A200, A401, A403, A500, ALLOW, BAD, BASIC, GOOD, IN,  # noqa: E402
                              OUT, WEB, _AuthService, agree)

P = "nginx.ingress.kubernetes.io/"
DIGEST = {P + "auth-type": "digest", P + "auth-secret": "dusers", P + "auth-realm": REALM}
AUTH = ("127.0.0.1", 4180)


def _digest_text(annotations: dict[str, str], port: int = 4180) -> str:
    ann = {**DIGEST, **annotations, P + "auth-url": f"http://127.0.0.1:{port}/auth"}
    return (ingress_yaml("site", "app.test", ann) + web_service_yaml()
            + _secret("dusers", {"auth": HTDIGEST}))


def _core_digest_then_auth(annotations: dict[str, str]) -> tuple[int, list[tuple[str, int]]]:
    """A digest location with an auth-url (the service answers 200): a valid response to a
    fresh nonce (driver time 0), through the core. (status, upstreams opened)."""
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(A200)
        return ok(b"ok")
    p = ProxyPair(router=Router(parse_manifests(_digest_text(annotations))), app=app,
                  peer=(OUT, 40000))
    nonce = new_nonce(p.now).decode()
    head = (b"GET /a HTTP/1.1\r\nHost: app.test\r\nAuthorization: "
            + authorization(nonce, uri="/a").encode() + b"\r\n\r\n")
    out = p.send(head)
    return int(out.split(b" ", 2)[1]), [u.endpoint for u in p.upstreams]


# ------------------------------------------------------------------ digest + auth-url (core)
def test_digest_then_auth_service_reaches_the_backend_under_satisfy_all() -> None:
    # Before: the auth service's 2xx re-ran the whole access phase (_extauth.py ``_finish``
    # -> ``_access_phase``): the digest response was checked a second time, its ``nc`` now
    # a replay: a 401 (a new challenge) to a user whose credentials and auth service both
    # let the request in. nginx runs the access phase once (ngx_http_core_access_phase).
    status, ups = _core_digest_then_auth({})
    assert status == 200
    assert ups == [AUTH, WEB]


def test_digest_then_auth_service_under_explicit_all_and_with_an_allowlist() -> None:
    assert _core_digest_then_auth({P + "satisfy": "all"})[0] == 200
    # An allowlist that admits no one under ``all``: refused before the auth service.
    status, ups = _core_digest_then_auth({**ALLOW})
    assert status == 403 and ups == []


def test_digest_then_auth_service_through_ingress_asgi() -> None:
    # IngressASGI never re-ran the access phase: the same answer as the core's (now).
    async def go() -> tuple[int, int, bool]:
        service = _AuthService(A200)
        await service.start()
        reached: list[bool] = []
        sent: list[dict[str, Any]] = []

        async def backend(scope: Any, receive: Any, send: Any) -> None:
            reached.append(True)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(dict(m))
        try:
            app = IngressASGI(Router(parse_manifests(_digest_text({}, service.port))),
                              {"default/web": backend}, request_id=lambda: "0" * 32)
            nonce = new_nonce(app.limit_clock()).decode()
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "scheme": "http", "method": "GET", "path": "/a", "raw_path": b"/a",
                     "query_string": b"", "root_path": "",
                     "headers": [(b"host", b"app.test"), (b"authorization", authorization(
                         nonce, uri="/a").encode())],
                     "client": (OUT, 40000), "server": ("127.0.0.1", 80), "extensions": {}}
            await app(scope, receive, send)
        finally:
            assert service.server is not None
            service.server.close()
        return int(sent[0]["status"]), service.heads, bool(reached)
    assert asyncio.run(go()) == (200, 1, True)


# ------------------------------------------------------------ satisfy: the core vs IngressASGI
DENY_OUT = {P + "denylist-source-range": "192.0.2.0/24"}
MALFORMED = [(b"authorization", b"Basic !!not-base64")]
DIGEST_JUNK = [(b"authorization", b'Digest username="alice", nonce="x"')]


@settings(max_examples=examples(0.1), deadline=None)
@given(ranges=st.sampled_from([{}, ALLOW, DENY_OUT, {**ALLOW, **DENY_OUT}]),
       basic=st.booleans(), satisfy=st.sampled_from([None, "any", "all"]),
       client=st.sampled_from([IN, OUT]),
       head=st.sampled_from([[], GOOD, BAD, MALFORMED, DIGEST_JUNK]),
       reply=st.sampled_from([None, A200, A401, A403, A500]))
def test_core_and_ingress_asgi_agree_on_every_combination(
        ranges: dict[str, str], basic: bool, satisfy: str | None, client: str,
        head: list[tuple[bytes, bytes]], reply: bytes | None) -> None:
    ann = {**ranges, **(BASIC if basic else {})}
    if satisfy is not None:
        ann[P + "satisfy"] = satisfy
    got = agree(ann, client, head, reply, url=reply is not None)
    # nginx's verdict, computed here: allow/deny (first matching rule), auth_basic, then
    # auth_request, combined as ``satisfy`` says.
    in_allow = client == IN
    if P + "denylist-source-range" in ann and client == OUT:
        acc = 403
    elif P + "allowlist-source-range" in ann:
        acc = 0 if in_allow else 403
    else:
        acc = -1  # declined
    bas = -1 if not basic else (0 if head is GOOD else 401)
    ext = -1 if reply is None else {A200: 0, A401: 401, A403: 403, A500: 500}[reply]
    if satisfy == "any":
        codes = [acc, bas]
        if 0 in codes:
            want = 0
        else:
            want = 401 if 401 in codes else (403 if 403 in codes else 0)
            if ext == 0:
                want = 0
            elif ext == 500:
                want = 500
            elif ext in (401, 403):
                want = 401 if 401 in (want, ext) else 403
    else:
        want = next((c for c in (acc, bas, ext) if c > 0), 0)
    assert got.status == (200 if want == 0 else want), (ann, client, head, reply, got)
    assert got.proxied is (want == 0)


# ------------------------------------------------------------------ digest under satisfy any
def _any_digest() -> str:
    from test_digest_auth_s26 import manifests
    return manifests({**DIGEST, P + "auth-secret": "users", **ALLOW, P + "satisfy": "any"})


def test_digest_under_satisfy_any_stale_and_replay_across_core_and_ingress_asgi() -> None:
    from test_digest_auth_s26 import Asgi, Core, challenge_fields
    core, asgi = Core(_any_digest()), Asgi(_any_digest())  # both at driver time 1000
    # 127.0.0.1 is outside the allowlist: the digest check decides.
    status, headers, _ = core.ask()
    assert status == 401 and b"stale" not in headers[b"www-authenticate"]
    nonce = challenge_fields(headers[b"www-authenticate"])["nonce"]
    # A nonce past auth_digest_timeout: 401 with stale="true" (the remembered 401), never in.
    status, headers, _ = core.ask(authorization(nonce), now=1000.0 + 61)
    assert status == 401 and b'stale="true"' in headers[b"www-authenticate"]
    good = authorization(nonce)
    assert core.ask(good)[0] == 200
    # The same nonce and nc again, at IngressASGI in this process: one replay table.
    status, headers = asgi.ask(good)
    assert status == 401 and b"stale" not in headers[b"www-authenticate"]
    assert asgi.seen == []
    # The next nc of that nonce at IngressASGI passes; then it is a replay at the core.
    nc2 = authorization(nonce, nc="00000002")
    assert asgi.ask(nc2)[0] == 200
    assert core.ask(nc2)[0] == 401
    # A response for another method or another target never passes.
    assert core.ask(authorization(nonce, nc="00000003", method="POST"))[0] == 401
    assert core.ask(authorization(nonce, nc="00000004", uri="/x"), target="/y")[0] == 401
    assert core.ask(authorization(nonce, nc="00000005", uri="/%78"), target="/x")[0] == 401
