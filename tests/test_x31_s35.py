"""A new user's walk through README §4 and docs/cluster.md (session 35, x31).

``serve --kubernetes`` with kubeconfig files as people have them: a file the kubeconfig names
(``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``) that cannot
be read, or a cluster entry without a ``server``, is refused before anything listens (exit 2)
with the field, the file and the entry named, in the words of client-go's
``tools/clientcmd/validation.go`` (``validateClusterInfo``, ``validateAuthInfo``) and
``client_config.go`` (``getUserIdentificationPartialConfig`` reads ``tokenFile`` at once, an
error ending the command). Before: "[Errno 2] No such file or directory" naming no file, a
missing ``tokenFile`` retried for ever (every kind's list failing, the first table never
coming), and a cluster without ``server`` sent to ``http://localhost:8080``.

A 403 names the rule to add, as a Role or ClusterRole writes it, and which of the two can hold
it (before: "grant the ServiceAccount get, list and watch on it").

The docs' RBAC text and ``examples/deploy/rbac.yaml`` name the same resources, and what makes
``serve`` read ConfigMaps is named wherever the docs and the log say when that happens.

No cluster and no network: kubeconfig files in ``tmp_path``; the servers named are on
127.0.0.1 and never reached (the configuration is refused first).
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("lightkube")

from lightkube.core.exceptions import ConfigError  # noqa: E402

from ingresslib._kube import cluster_client, load_kube_config  # noqa: E402
from tests._fake_kube import kubeconfig_dict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _kubeconfig(tmp_path: Path, *, user: dict[str, Any] | None = None,
                cluster: dict[str, Any] | None = None) -> Path:
    conf = kubeconfig_dict("https://127.0.0.1:9")
    if user is not None:
        conf["users"][0]["user"] = user
    if cluster is not None:
        conf["clusters"][0]["cluster"] = cluster
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    return path


def _serve(path: Path) -> tuple[int, str]:
    from ingresslib._cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["serve", "--kubernetes", "--kubeconfig", str(path),
                     "--listen", "127.0.0.1:0", "--access-log", "off"])
    return code, err.getvalue()


@pytest.mark.parametrize("field, user, cluster", [
    ("certificate-authority", None,
     {"server": "https://127.0.0.1:9", "certificate-authority": "ca-typo.crt"}),
    ("client-cert", {"client-certificate": "user-typo.crt", "client-key": "user.key"}, None),
    ("client-key", {"client-certificate": "user.crt", "client-key": "user-typo.key"}, None),
])
def test_serve_names_the_kubeconfig_file_it_cannot_read(
        field: str, user: dict[str, Any] | None, cluster: dict[str, Any] | None,
        tmp_path: Path) -> None:
    (tmp_path / "user.crt").write_text("not read: the other file is missing")
    (tmp_path / "user.key").write_text("not read: the other file is missing")
    path = _kubeconfig(tmp_path, user=user, cluster=cluster)
    code, err = _serve(path)
    assert code == 2, err
    missing = tmp_path / ("ca-typo.crt" if cluster else
                          "user-typo.crt" if field == "client-cert" else "user-typo.key")
    owner = "fake" if cluster else "nobody"
    assert f"unable to read {field} {missing} for {owner}" in err, err
    assert "listening on" not in err


def test_a_token_file_that_cannot_be_read_is_refused_at_once(tmp_path: Path) -> None:
    # Before: the configuration was taken; every request then failed ("Token file ... not
    # found"), retried with the backoff for ever while /healthz stayed unready.
    path = _kubeconfig(tmp_path, user={"tokenFile": "token-typo"})
    with pytest.raises(ConfigError, match=re.escape(
            f"unable to read tokenFile {tmp_path / 'token-typo'} for nobody")):
        cluster_client(load_kube_config(path))


def test_a_missing_token_file_beside_a_token_is_refused_too(tmp_path: Path) -> None:
    # lightkube reads tokenFile before token, at every request: the token would never be sent.
    path = _kubeconfig(tmp_path, user={"token": "t", "tokenFile": "gone"})
    with pytest.raises(ConfigError, match="unable to read tokenFile"):
        cluster_client(load_kube_config(path))


def test_a_lightkube_config_reads_relative_certificates_from_its_file(tmp_path: Path) -> None:
    # An embedder's KubeConfig.from_file: lightkube reads a relative certificate-authority from
    # the file's folder (SingleConfig.abs_file), not the working folder; so does the check.
    from lightkube import KubeConfig

    from ingresslib._kubeconfig import unusable

    (tmp_path / "ca.crt").write_text("present")
    path = _kubeconfig(tmp_path, cluster={"server": "https://127.0.0.1:9",
                                          "certificate-authority": "ca.crt"})
    assert unusable(KubeConfig.from_file(path).get()) is None
    (tmp_path / "ca.crt").unlink()
    problem = unusable(KubeConfig.from_file(path).get())
    assert problem is not None and str(tmp_path / "ca.crt") in problem


def test_a_cluster_without_server_is_refused_not_sent_to_localhost(tmp_path: Path) -> None:
    # Before: lightkube's default, http://localhost:8080, and every list failed there.
    path = _kubeconfig(tmp_path, cluster={"insecure-skip-tls-verify": True})
    with pytest.raises(ConfigError, match='no server found for cluster "fake"'):
        cluster_client(load_kube_config(path))


def test_guard_readable_files_are_used(tmp_path: Path) -> None:
    # What must not change: a token file that exists is read as before.
    (tmp_path / "token").write_text("abc")
    path = _kubeconfig(tmp_path, user={"tokenFile": "token"})
    assert cluster_client(load_kube_config(path)) is not None


# -- the docs against examples/deploy and the code ----------------------------------------------


def _cluster_role_resources() -> set[str]:
    docs = yaml.safe_load_all((ROOT / "examples" / "deploy" / "rbac.yaml").read_text())
    (role,) = [d for d in docs if d and d["kind"] == "ClusterRole"]
    return {r for rule in role["rules"] for r in rule["resources"]}


def test_docs_name_the_resources_the_deploy_cluster_role_grants() -> None:
    # docs/cluster.md said the ClusterRole grants "exactly" five resources and told the reader
    # to add configmaps, which rbac.yaml already grants (tests/test_kube.py holds rbac.yaml to
    # what the watcher reads).
    text = (ROOT / "docs" / "cluster.md").read_text()
    sentence = re.search(r"The ClusterRole grants `get`, `list` and `watch` on exactly (.*?)\.\n",
                         text, re.S)
    assert sentence is not None
    named = set(re.findall(r"`([a-z]+)`", sentence.group(1)))
    assert named == _cluster_role_resources()


_CONFIG_MAP_TRIGGERS = ("custom-headers", "auth-proxy-set-headers", "add-headers",
                        "proxy-set-headers", "--tcp-services-configmap",
                        "--udp-services-configmap")


def test_every_reason_to_read_config_maps_is_named_where_the_reader_looks() -> None:
    # serve watches ConfigMaps for each of these (_serve._watch's wants_config_maps,
    # _kube.names_config_maps); the docs, the RBAC comment and the log named only three, so a
    # reader of --tcp-services-configmap dropping "configmaps" from the role as told got 403s.
    cluster = (ROOT / "docs" / "cluster.md").read_text()
    what_is_read = cluster.split("  - `v1` ConfigMaps", 1)[1].split("\n  - ", 1)[0]
    rbac = (ROOT / "examples" / "deploy" / "rbac.yaml").read_text()
    comment = rbac.split("# configmaps:", 1)[1].split("resources:", 1)[0]
    for trigger in _CONFIG_MAP_TRIGGERS:
        assert trigger in what_is_read, trigger
        assert trigger.lstrip("-") in comment, trigger


def test_the_log_says_every_reason_to_watch_config_maps(caplog: pytest.LogCaptureFixture) -> None:
    from ingresslib._kube import CONFIG_MAPS, WATCHED_KINDS, ClusterWatcher

    watcher = ClusterWatcher(lambda res: None, kinds=(*WATCHED_KINDS, CONFIG_MAPS),
                             wants_config_maps=lambda res: True)
    with caplog.at_level("INFO", logger="ingresslib.kube"):
        watcher._refresh_gate()
    (line,) = [r.getMessage() for r in caplog.records if "watching ConfigMaps" in r.getMessage()]
    for trigger in _CONFIG_MAP_TRIGGERS:
        assert trigger.lstrip("-") in line, (trigger, line)


# -- a 403 says the RBAC rule to add --------------------------------------------------------------


def _forbidden() -> Exception:
    import httpx

    request = httpx.Request("GET", "https://127.0.0.1:9/apis/networking.k8s.io/v1/ingressclasses")
    response = httpx.Response(403, request=request, text="<html>403 Forbidden</html>")
    return httpx.HTTPStatusError("403 Forbidden", request=request, response=response)


@pytest.mark.parametrize("namespace, kind, rule, holder", [
    (None, "IngressClass",
     '{apiGroups: ["networking.k8s.io"], resources: ["ingressclasses"], '
     'verbs: ["get", "list", "watch"]}', "a ClusterRole"),
    ("shop", "Service",
     '{apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch"]}',
     "a Role in namespace shop"),
    ("shop", "IngressClass",   # cluster-scoped: a Role cannot grant it, whatever --namespace
     '{apiGroups: ["networking.k8s.io"], resources: ["ingressclasses"], '
     'verbs: ["get", "list", "watch"]}', "a ClusterRole"),
])
def test_a_denied_list_says_the_rule_to_add_and_where(
        namespace: str | None, kind: str, rule: str, holder: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # Before: "grant the ServiceAccount get, list and watch on it": neither the rule as RBAC
    # writes it nor whether a Role can hold it (for ingressclasses it cannot).
    from ingresslib._kube import WATCHED_KINDS, ClusterWatcher

    (spec,) = [k for k in WATCHED_KINDS if k.kind == kind]
    watcher = ClusterWatcher(lambda res: None, namespace=namespace)
    with caplog.at_level("ERROR", logger="ingresslib.kube"):
        watcher._error(spec, _forbidden(), "list")
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"add the rule {rule} to {holder}" in line, line
