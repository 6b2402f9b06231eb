"""Session 22 seams review (W1): where this session's changes meet code they did not touch.

- bc01c2d made the router read ``affinity``, ``session-cookie-name`` and
  ``canary-by-header-pattern`` as ingress-nginx's GetStringAnnotation (each line trimmed, an
  invalid cookie name falling back to INGRESSCOOKIE); ``explain`` still read them as written:
  ``affinity: " cookie"`` (cookie affinity in the router) showed no session affinity, an
  invalid ``session-cookie-name`` named a cookie the router never reads, and a pattern
  ``" ^beta$ "`` was shown with the blanks the router does not match.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib._explain import explain_url, render_text
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import WEB, prod_ingress  # noqa: E402

P = "nginx.ingress.kubernetes.io/"


def _flow(annotations: dict[str, str]) -> str:
    # JSON strings are YAML double-quoted scalars: "\t" and "\n" are the characters.
    return "{" + ", ".join(f"{P}{k}: {json.dumps(v)}" for k, v in annotations.items()) + "}"


def _explain(manifests: str, headers: list[tuple[str, str]]) -> tuple[dict[str, Any], str]:
    res = parse_manifests(manifests)
    info = explain_url(RouteTable.build(res), "http://a.test/", res=res, headers=headers)
    return info, render_text(info)


def _router_cookie(manifests: str) -> str:
    """The name of the cookie the router sets for a request that carries none."""
    d = Router(parse_manifests(manifests), seed=0).route("GET", "a.test", "/", [])
    assert d is not None and d.set_cookie
    return d.set_cookie.split("=", 1)[0]


@pytest.mark.parametrize("annotations", [
    pytest.param({"affinity": " cookie"}, id="affinity-blank"),
    pytest.param({"affinity": "cookie\t", "session-cookie-name": " sid "}, id="name-blank"),
])
def test_explain_shows_the_affinity_the_router_applies(annotations: dict[str, str]) -> None:
    manifests = prod_ingress("web", "a.test", _flow(annotations)) + WEB
    expected = _router_cookie(manifests)
    info, text = _explain(manifests, [])
    affinity = info["decision"].get("affinity")
    assert affinity is not None, text
    assert affinity["cookie"] == expected
    assert f"session affinity: cookie {expected}" in text


@pytest.mark.parametrize("name", ["a b", "sid;x", "sid\n", "é"])
def test_explain_names_the_cookie_the_router_reads_for_an_invalid_name(name: str) -> None:
    # A request that carries the router's cookie (no new one set): explain named the
    # annotation's invalid name, the router reads INGRESSCOOKIE.
    manifests = prod_ingress(
        "web", "a.test", _flow({"affinity": "cookie", "session-cookie-name": name})) + WEB
    expected = _router_cookie(manifests)
    assert expected == "INGRESSCOOKIE"
    info, text = _explain(manifests, [("Cookie", f"{expected}=0123456789abcdef")])
    assert info["decision"]["affinity"]["cookie"] == expected
    assert f"session affinity: cookie {expected} " in text


def test_explain_shows_the_canary_header_pattern_the_router_matches() -> None:
    canary = _flow({"canary": "true", "canary-by-header": "X-C",
                    "canary-by-header-pattern": "  ^beta$ "})
    manifests = (prod_ingress("web", "a.test", "{}") + prod_ingress("web-canary", "a.test", canary)
                 + WEB)
    d = Router(parse_manifests(manifests), seed=0).route("GET", "a.test", "/", [("X-C", "beta")])
    assert d is not None and d.canary
    info, text = _explain(manifests, [("X-C", "beta")])
    assert info["match"]["canary"]["rules"]["header_pattern"] == "^beta$"
    assert "matching '^beta$'" in text


def test_basic_auth_verdicts_do_not_cross_secrets_of_two_routers() -> None:
    # The verdict store is process-wide (386a56c); a Secret changed in one router while
    # another still serves the old one: each answers by its own Secret, whatever the other
    # checked first (the key is the stored hash, not the user or the route). A guard.
    import base64
    from types import SimpleNamespace

    from ingresslib.proxy._basicauth import BasicAuth
    from ingresslib.proxy._htpasswd import md5_crypt

    def secret(stored: str) -> Any:
        data = {"auth": f"alice:{stored}\n".encode()}
        return SimpleNamespace(metadata=SimpleNamespace(name="users", namespace="prod"),
                               data=data, string_data={}, get_bytes=data.get)

    old, new = (secret(md5_crypt(pw, "w1seams" + pw.decode()[:1])) for pw in (b"old", b"new"))
    old_secrets, new_secrets = (old,), (new,)
    a = BasicAuth("", "prod", "users", False, lambda: old_secrets, None, "Ingress prod/a")
    b = BasicAuth("", "prod", "users", False, lambda: new_secrets, None, "Ingress prod/b")

    def header(password: str) -> bytes:
        return b"Basic " + base64.b64encode(b"alice:" + password.encode())

    for _round in range(2):  # the second round answers from the store
        assert a.check(header("old")) == (0, "alice")
        assert b.check(header("old")) == (401, None)
        assert b.check(header("new")) == (0, "alice")
        assert a.check(header("new")) == (401, None)


def test_explain_quotes_a_canary_header_value_with_a_line_break() -> None:
    # A YAML block scalar ("|") keeps its line break (GetStringAnnotation trims each line but
    # keeps it): the router never matches it and says so; explain's text printed the value
    # across two lines, as if the rule line ended there.
    canary = _flow({"canary": "true", "canary-by-header": "X-C",
                    "canary-by-header-value": "beta\n"})
    manifests = (prod_ingress("web", "a.test", "{}") + prod_ingress("web-canary", "a.test", canary)
                 + WEB)
    info, text = _explain(manifests, [("X-C", "beta")])
    assert info["match"]["canary"]["rules"]["header_value"] == "beta\n"
    line = next(t for t in text.splitlines() if "serves on header x-c" in t)
    assert "x-c: 'beta\\n', else weight 0 of 100 requests" in line
