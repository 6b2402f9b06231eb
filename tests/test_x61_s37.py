"""Session 37 (x61): messages users meet that read wrong.

- A 403 of a list or watch names the identity the RBAC rule is to be bound to when it is known
  (the ServiceAccount of the token, the kubeconfig's user), else a neutral text.
- An object with ``generateName`` and no ``name`` is told that ``generateName`` is not supported
  here (only the API server makes a name of it), with the same error structure as before.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ingresslib import ValidationError, parse_manifests

# -- a 403 names the identity the rule is to be bound to -------------------------------------------


def _forbidden() -> Exception:
    import httpx

    request = httpx.Request("GET", "https://127.0.0.1:9/api/v1/services")
    response = httpx.Response(403, request=request, text="<html>403 Forbidden</html>")
    return httpx.HTTPStatusError("403 Forbidden", request=request, response=response)


def _jwt(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def _denied_line(config: Any, caplog: pytest.LogCaptureFixture) -> str:
    from ingresslib._kube import WATCHED_KINDS, ClusterWatcher

    (spec,) = [k for k in WATCHED_KINDS if k.kind == "Service"]
    watcher = ClusterWatcher(lambda res: None, namespace="shop", config=config)
    with caplog.at_level("ERROR", logger="ingresslib.kube"):
        watcher._error(spec, _forbidden(), "list")
    (line,) = [r.getMessage() for r in caplog.records]
    return line


def test_a_denied_list_names_the_service_account_of_the_token(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # As in a pod: lightkube's KubeConfig.from_service_account (the token, no file name).
    from lightkube import KubeConfig

    token = _jwt({"iss": "https://kubernetes.default.svc",
                  "sub": "system:serviceaccount:ingress:ingresslib"})
    (tmp_path / "token").write_text(token)
    (tmp_path / "namespace").write_text("ingress")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    line = _denied_line(KubeConfig.from_service_account(tmp_path).get(), caplog)
    assert ("to a Role in namespace shop (or a ClusterRole) bound to "
            "{kind: ServiceAccount, name: ingresslib, namespace: ingress}") in line, line
    assert token not in line and "ServiceAccount or user" not in line


def test_a_denied_list_names_the_kubeconfig_user(tmp_path: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from ingresslib._kube import load_kube_config
    from tests._fake_kube import kubeconfig_dict

    conf = kubeconfig_dict("https://127.0.0.1:9")
    conf["users"][0]["user"] = {"token": "not-a-jwt"}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    line = _denied_line(load_kube_config(str(path)), caplog)
    assert 'bound to the user or group kubeconfig user "nobody" authenticates as' in line, line
    assert "not-a-jwt" not in line


def test_a_denied_list_without_a_known_identity_stays_neutral(
        caplog: pytest.LogCaptureFixture) -> None:
    line = _denied_line(None, caplog)
    assert "bound to the ServiceAccount or user ingresslib runs as" in line, line


@pytest.mark.parametrize("token", [
    "a.b.c", "only-one-part", _jwt({"sub": "system:admin"}), _jwt({"sub": 5}),
    _jwt({"sub": "system:serviceaccount:a:b:c"}), _jwt({"sub": "system:serviceaccount:A B:x"}),
])
def test_a_token_that_is_no_service_account_names_none(token: str) -> None:
    from ingresslib._kube import _service_account_of

    assert _service_account_of(token) is None


# -- generateName without name ----------------------------------------------------------------------

_GENERATED = """
apiVersion: v1
kind: Service
metadata:
  generateName: web-
  namespace: shop
spec:
  ports: [{port: 80}]
"""


def test_generate_name_without_name_says_generate_name_is_not_supported() -> None:
    # Before: "name or generateName is required", which the object has.
    with pytest.raises(ValidationError) as e:
        parse_manifests(_GENERATED)
    (err,) = e.value.errors
    assert (err.object, err.field, err.type) == ("Service shop/<no name>", "metadata.name",
                                                 "Required value")
    assert err.detail.startswith('generateName "web-" is not supported'), err.detail
    assert "give metadata.name" in err.detail


def test_generate_name_beside_a_name_is_not_an_error() -> None:
    res = parse_manifests(_GENERATED.replace("generateName: web-", "generateName: web-\n  name: web"))
    assert [s.metadata.name for s in res.services] == ["web"]


@pytest.mark.parametrize("meta", ["{}", "{generateName: ''}", "{namespace: shop}"])
def test_no_name_and_no_generate_name_keeps_the_api_server_text(meta: str) -> None:
    text = _GENERATED.replace("  generateName: web-\n  namespace: shop", f"  x: 1").replace(
        "metadata:\n  x: 1", f"metadata: {meta}")
    with pytest.raises(ValidationError) as e:
        parse_manifests(text)
    details = [(err.field, err.detail) for err in e.value.errors]
    assert ("metadata.name", "name or generateName is required") in details, details


# -- an auth-provider user: what is not supported, by what, and both ways out ----------------------

@pytest.mark.parametrize("provider", ["oidc", "gcp"])
def test_an_auth_provider_says_what_lacks_it_and_offers_a_token_too(tmp_path: Any,
                                                                    provider: str) -> None:
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import cluster_client, load_kube_config
    from tests._fake_kube import kubeconfig_dict

    conf = kubeconfig_dict("http://127.0.0.1:9")
    conf["users"][0]["user"] = {"auth-provider": {"name": provider, "config": {}}}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    with pytest.raises(ConfigError) as e:
        cluster_client(load_kube_config(str(path)))
    said = str(e.value)
    # client-go still has oidc: "removed in 1.26" alone read as if kubectl had dropped it.
    assert f"the {provider} auth-provider is not supported by ingresslib" in said, said
    assert "exec credential plugin" in said and "or a token" in said, said


def test_a_client_made_elsewhere_gives_its_identity(tmp_path: Any) -> None:
    # serve makes its client before listening and hands it to the watcher (no config).
    import asyncio

    from ingresslib._kube import ClusterWatcher, cluster_client, load_kube_config
    from tests._fake_kube import kubeconfig_dict

    conf = kubeconfig_dict("http://127.0.0.1:9")
    conf["users"][0]["user"] = {"token": _jwt({"sub": "system:serviceaccount:ops:edge"})}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))

    async def run() -> str | None:
        watcher = ClusterWatcher(lambda res: None, client=cluster_client(
            load_kube_config(str(path))))
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(watcher.run(stop), 5)
        return watcher._identity

    assert asyncio.run(run()) == "{kind: ServiceAccount, name: edge, namespace: ops}"
