"""Session 26's features cost a request that uses none of them one attribute test each.

External auth (and the global auth), client certificates, limit-rate, mirroring, satisfy,
digest auth, proxy-ssl and the smaller location options were added to the proxy core and to
IngressASGI this session; a plain request of a location without those annotations must not
call into their modules (benchmarks/load/README.md "Session 26": before the lead applied its
patch, every request called ``_mirror.drop_copy`` and IngressASGI ``_globalauth.effective_auth``:
+1.85 % instructions per core GET).
"""

from __future__ import annotations

from test_perf_guards_s25 import MANIFESTS, _asgi_call, core_request, python_calls

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy._connection import Proxy

#: The modules of session 26's per-request features.
FEATURE_FILES = {"_extauth.py", "_globalauth.py", "_asgi_extauth.py", "_clientcert.py",
                 "_bandwidth.py", "_mirror.py", "_asgi_mirror.py", "_satisfy.py", "_digest.py",
                 "_proxy_ssl.py", "_upstream_tls.py", "_proxy_protocol.py", "_passthrough.py"}


def feature_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f, n) for f, n in seen if f in FEATURE_FILES]


def test_core_plain_request_calls_no_session_26_feature_code() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)  # route options and the Router's lazy state built
    with python_calls() as seen:
        actions = core_request(proxy, 1.0)
    assert seen, "the profile hook saw no call"
    assert feature_calls(seen) == []
    assert b"".join(getattr(a, "data", b"") for a in actions).startswith(b"HTTP/1.1 200 ")


def test_asgi_plain_request_calls_no_session_26_feature_code() -> None:
    from test_perf_guards_s25 import _app

    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app})
    _asgi_call(asgi, [], [])  # warm
    sent: list[dict[str, object]] = []
    with python_calls() as seen:
        _asgi_call(asgi, sent, [])
    assert seen and feature_calls(seen) == []
    assert sent[0]["status"] == 200
