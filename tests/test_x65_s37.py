"""Session 37 (x65): review of x61's messages.

- The identity a 403's advice names is the one lightkube sends: a ``tokenFile``'s token before
  the ``token`` (lightkube client_adapter.py ``user_auth``), read bounded; a token that is no
  JWT of a ServiceAccount, however odd, names none and never crashes the watcher.
- ``generateName`` with a ``name`` of the wrong type: the type error alone (the user gave a
  name), not also "give metadata.name".
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ingresslib import ValidationError, parse_manifests


def _jwt_of(payload: bytes) -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{part(b'{}')}.{part(payload)}.c2ln"


def _sa_jwt(namespace: str, name: str) -> str:
    return _jwt_of(json.dumps({"sub": f"system:serviceaccount:{namespace}:{name}"}).encode())


def _identity_of_user(tmp_path: Path, user: dict[str, Any]) -> str | None:
    from ingresslib._kube import ClusterWatcher, load_kube_config
    from tests._fake_kube import kubeconfig_dict

    conf = kubeconfig_dict("https://127.0.0.1:9")
    conf["users"][0]["user"] = user
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    watcher = ClusterWatcher(lambda res: None, config=load_kube_config(str(path)))
    return watcher._identity


# -- the identity is the token lightkube sends -------------------------------------------------

def test_a_token_file_names_its_service_account_before_the_token(tmp_path: Path) -> None:
    # lightkube sends the file's token (user_auth: token_file first): "a" is never asked as.
    (tmp_path / "token").write_text(_sa_jwt("ops", "edge") + "\n")
    identity = _identity_of_user(tmp_path, {"token": _sa_jwt("other", "a"),
                                            "tokenFile": str(tmp_path / "token")})
    assert identity == "{kind: ServiceAccount, name: edge, namespace: ops}", identity


def test_a_token_file_alone_names_its_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(_sa_jwt("ops", "edge"))
    identity = _identity_of_user(tmp_path, {"tokenFile": str(tmp_path / "token")})
    assert identity == "{kind: ServiceAccount, name: edge, namespace: ops}", identity


def test_a_token_file_of_no_service_account_does_not_name_the_token_s(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("opaque-token")
    identity = _identity_of_user(tmp_path, {"token": _sa_jwt("other", "a"),
                                            "tokenFile": str(tmp_path / "token")})
    assert identity == 'the user or group kubeconfig user "nobody" authenticates as', identity


def test_a_huge_token_file_is_not_read_whole(tmp_path: Path) -> None:
    from ingresslib._kube import _TOKEN_FILE_LIMIT, _sent_token
    from lightkube.config.models import User

    big = tmp_path / "token"
    big.write_bytes(_sa_jwt("ops", "edge").encode() + b" " * _TOKEN_FILE_LIMIT)
    assert _sent_token(User(token_file=str(big))) is None
    assert _sent_token(User(token_file=str(tmp_path / "missing"))) is None


@pytest.mark.parametrize("payload", [
    b"[" * 100_000,                       # json's recursion limit
    b"{" + b'"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\x00\x00",                  # no UTF-8
    json.dumps({"sub": "system:serviceaccount:a:b"}).encode("utf-16"),  # JSON, not UTF-8
    b'["system:serviceaccount:a:b"]',
    b"9" * 10_000,                        # past int's digit limit
    json.dumps({"sub": "system:serviceaccount:a:b\n"}).encode(),
])
def test_an_odd_token_names_no_service_account_and_does_not_crash(payload: bytes) -> None:
    from ingresslib._kube import _config_identity, _service_account_of
    from lightkube.config.models import User

    token = _jwt_of(payload)
    assert _service_account_of(token) is None
    # the watcher's constructor reads it: None of the token is said
    said = _config_identity(type("Config", (), {"user": User(token=token)})())
    assert said is None or token not in said


# -- generateName beside a name of the wrong type ------------------------------------------------

@pytest.mark.parametrize("name", ["5", "[web]", "{a: b}", "true"])
def test_generate_name_beside_a_wrong_typed_name_is_the_type_error_alone(name: str) -> None:
    text = ("apiVersion: v1\nkind: Service\nmetadata:\n  generateName: web-\n"
            f"  name: {name}\nspec:\n  ports: [{{port: 80}}]\n")
    with pytest.raises(ValidationError) as e:
        parse_manifests(text)
    assert [(err.field, "expected string" in err.detail) for err in e.value.errors] == [
        ("metadata.name", True)], [str(err) for err in e.value.errors]
