"""A canary's basic-auth annotations are ignored as ingress-nginx ignores them, but ingresslib
implements basic auth: the warning must not say "not implemented by ingresslib anyway" (R18b)."""

from __future__ import annotations

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX as P, parse_route_options


def test_canary_basic_auth_is_not_called_unimplemented() -> None:
    opts = parse_route_options({P + "canary": "true", P + "auth-type": "basic",
                                P + "auth-secret": "s", P + "auth-url": "http://a/",
                                P + "satisfy": "any", P + "auth-snippet": "return 403;"}, "/",
                               ProxySettings(), where="Ingress default/c")
    said = {w.split(": ")[1]: w for w in opts.warnings if "ignored on a canary" in w}
    assert set(said) == {f"annotation {P}auth-type", f"annotation {P}auth-secret",
                         f"annotation {P}auth-url", f"annotation {P}satisfy",
                         f"annotation {P}auth-snippet"}
    assert "not implemented" not in said[f"annotation {P}auth-type"]
    assert "not implemented" not in said[f"annotation {P}auth-secret"]
    # external auth is implemented since session 26 (proxy/_extauth.py): not called so either
    assert "not implemented" not in said[f"annotation {P}auth-url"]
    # satisfy is implemented since session 26 (proxy/_satisfy.py): not called so either;
    # auth-snippet is not implemented: said as before
    assert "not implemented" not in said[f"annotation {P}satisfy"]
    assert said[f"annotation {P}auth-snippet"].endswith(
        "and not implemented by ingresslib anyway")
