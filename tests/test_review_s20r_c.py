"""Review of the explain/check landing (517816e) and the kubeconfig landing (e2baa51) (session
20, helper R20c).

1. ``explain https://HOST/`` named the certificate by looking the SNI up in
   ``served_certificates``' rows (exact name, else the ``*.`` one label up). The store keeps
   some hosts on the default certificate although a wildcard row covers them (``_Selection.kept``:
   a host one namespace routes, under a ``*.`` only another namespace lists in ``tls.hosts``);
   for those explain named the other namespace's Secret while the handshake gets the default
   certificate. Now explain reads the store's own decision (``_select``), kept hosts included.
2. ``ClusterWatcher(config=KubeConfig)`` / ``watch_cluster(config=...)`` (docs/cluster.md) gave
   the KubeConfig to lightkube's ``AsyncClient``, whose ``config.get()`` raised a bare
   ``KeyError: 'name'`` for a current context naming an undefined cluster or user; since
   e2baa51 ``load_kube_config`` says it in client-go's words. The watcher now takes the
   context through the same ``select_context``.
3. A Ctrl-C during ``check -o json ... | jq`` ends jq too: the interrupted document met a
   closed pipe and a ``BrokenPipeError`` escaped ``main`` (a traceback after the message); now
   exit 130 as without the pipe.
4. ``explain`` listed the main rules its winner shadows but not a second canary of the same
   rule ("rule already has the canary X; ignored", X the request's canary): the note names
   no path, so nothing found it. It is listed now for the request's slot only.

Tests named ``test_guard_*`` check what must not change (they pass before and after).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._tls import CertificateStore

sys.path.insert(0, str(Path(__file__).parent))
from test_tls_tenant_s15 import HOST, _routing, _secret, _tls_only  # noqa: E402


def _explain(path: Path, url: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["explain", "-o", "json", "-f", str(path), url])
    assert code == 0, err.getvalue()
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


# -- 1. explain's certificate is the store's --------------------------------------------------


def test_explain_names_no_wildcard_the_store_keeps_a_host_from(ca: trustme.CA,
                                                               tmp_path: Path) -> None:
    # shop routes shop.example.test with a tls entry naming a missing Secret; evil only lists
    # *.example.test in tls.hosts. The store serves shop the default certificate (evil's
    # wildcard does not stand for another namespace's host); other.example.test, routed by no
    # one, gets the wildcard.
    own = f"\n  tls:\n  - hosts: [{HOST}]\n    secretName: missing"
    text = (_routing("shop", "shop", HOST, tls=own)
            + _tls_only("evil", "squat", ["*.example.test"], "w")
            + _secret("evil", "w", ca, "*.example.test"))
    f = tmp_path / "m.yaml"
    f.write_text(text)
    store = CertificateStore()
    store.update(parse_manifests(text))
    assert store.context_for(HOST) is store.default_context
    assert store.context_for("other.example.test") is not store.default_context

    assert _explain(f, f"https://{HOST}/")["tls"] == {
        "sni": HOST, "secret": None, "not_after": None, "validity": None}
    # Upper case, a trailing dot and a port: the same SNI, the same answer.
    assert _explain(f, "https://SHOP.example.test.:8443/")["tls"]["secret"] is None
    other = _explain(f, "https://other.example.test/")["tls"]
    assert other["secret"] == "evil/w" and other["sni"] == "other.example.test"


def test_guard_explain_agrees_with_the_store_on_exact_wildcard_and_two_secrets(
        ca: trustme.CA, tmp_path: Path) -> None:
    """Two Ingresses of one namespace name two Secrets covering a.example.test: the oldest
    wins, in the store and in explain; a SAN-only wildcard serves one label, not two."""
    text = (_routing("ns", "old", "a.example.test", created="2020-01-01T00:00:00Z",
                     tls="\n  tls:\n  - hosts: [a.example.test]\n    secretName: s1")
            + _routing("ns", "new", "a.example.test", created="2021-01-01T00:00:00Z",
                       path="/new",
                       tls="\n  tls:\n  - hosts: [a.example.test]\n    secretName: s2")
            + _routing("ns", "wild", "*.w.test",
                       tls="\n  tls:\n  - hosts: ['*.w.test']\n    secretName: sw")
            + _secret("ns", "s1", ca, "a.example.test")
            + _secret("ns", "s2", ca, "a.example.test", "b.example.test")
            + _secret("ns", "sw", ca, "*.w.test"))
    f = tmp_path / "m.yaml"
    f.write_text(text)
    store = CertificateStore()
    store.update(parse_manifests(text))
    rows = {host: secret for host, secret, _ in store.certificates()}
    assert rows["a.example.test"] == "ns/s1"
    assert _explain(f, "https://a.example.test/new")["tls"]["secret"] == "ns/s1"
    assert _explain(f, "https://x.w.test/")["tls"]["secret"] == "ns/sw"
    assert store.context_for("y.x.w.test") is store.default_context
    assert _explain(f, "https://y.x.w.test/")["tls"]["secret"] is None
    assert _explain(f, "https://[::1]:8443/")["tls"] == {
        "sni": None, "secret": None, "not_after": None, "validity": None}


# -- 2. ClusterWatcher(config=KubeConfig) ------------------------------------------------------


def _kubeconfig(tmp_path: Path, cluster: str) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": cluster, "user": "u"}}],
        "current-context": "x",
    }))
    return path


@pytest.mark.parametrize("entry", ["watcher", "watch_cluster"])
def test_a_kubeconfig_config_naming_a_missing_cluster_is_named(tmp_path: Path,
                                                               entry: str) -> None:
    lightkube = pytest.importorskip("lightkube")
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import ClusterWatcher, watch_cluster

    conf = lightkube.KubeConfig.from_file(_kubeconfig(tmp_path, "nope"))

    async def go() -> None:
        if entry == "watcher":
            await ClusterWatcher(lambda res: None, config=conf).run(asyncio.Event())
        else:
            await watch_cluster(lambda res: None, config=conf, stop=asyncio.Event())

    # Before: KeyError: 'nope', from lightkube's KubeConfig.get inside AsyncClient.
    with pytest.raises(ConfigError) as info:
        asyncio.run(go())
    assert str(info.value) == 'cluster "nope" was not found for context "x"'


def test_guard_a_kubeconfig_config_still_reaches_its_server(tmp_path: Path) -> None:
    """A valid KubeConfig still gives AsyncClient its current context's SingleConfig."""
    lightkube = pytest.importorskip("lightkube")
    from ingresslib import _kube

    seen: list[Any] = []

    class Client:
        def __init__(self, config: Any) -> None:
            seen.append(config)
            raise RuntimeError("stop here")

    conf = lightkube.KubeConfig.from_file(_kubeconfig(tmp_path, "c"))
    mp = pytest.MonkeyPatch()
    mp.setattr(lightkube, "AsyncClient", Client)
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            asyncio.run(_kube.ClusterWatcher(lambda res: None, config=conf).run(asyncio.Event()))
    finally:
        mp.undo()
    (given,) = seen
    # Before: the KubeConfig itself, which AsyncClient resolves with get(); now the same
    # SingleConfig, resolved first.
    single = given.get() if isinstance(given, lightkube.KubeConfig) else given
    assert single.context_name == "x" and single.cluster.server == "https://127.0.0.1:1"
    assert single.user.token == "t"


def test_guard_kubeconfig_reads_one_file_as_lightkube_did(tmp_path: Path) -> None:
    """``--kubeconfig FILE`` with a file lightkube read fine: the same SingleConfig (server, CA
    file as an absolute path, client certificate and key, token, exec, namespace, TLS skip,
    inline CA data), the missing-file message and lightkube's "no current context" kept."""
    lightkube = pytest.importorskip("lightkube")
    import msgspec
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import load_kube_config

    path = tmp_path / "d" / "config"
    path.parent.mkdir()
    doc: dict[str, Any] = {
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                      "certificate-authority": "ca.crt"}},
            {"name": "i", "cluster": {"server": "https://127.0.0.1:2",
                                      "insecure-skip-tls-verify": True,
                                      "certificate-authority-data": "Zm9v"}}],
        "users": [
            {"name": "cert", "user": {"client-certificate": "u.crt", "client-key": "/abs/u.key"}},
            {"name": "tok", "user": {"token": "t",
                                     "exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                              "command": "kubelogin", "args": ["get-token"]}}}],
        "contexts": [
            {"name": "a", "context": {"cluster": "c", "user": "cert", "namespace": "team"}},
            {"name": "b", "context": {"cluster": "i", "user": "tok"}}],
        "current-context": "a",
    }
    path.write_text(yaml.safe_dump(doc))
    def resolved(single: Any) -> tuple[Any, ...]:
        # What lightkube opens: each file path through the config's abs_file, as a str.
        def f(x: Any) -> Any:
            return None if x is None else str(single.abs_file(x))
        user = single.user and msgspec.structs.replace(
            single.user, client_cert=f(single.user.client_cert),
            client_key=f(single.user.client_key))
        cluster = msgspec.structs.replace(single.cluster,
                                      certificate_auth=f(single.cluster.certificate_auth))
        return single.context_name, single.context, single.namespace, cluster, user

    for context in (None, "a", "b"):
        ours = load_kube_config(str(path), context=context)
        theirs = lightkube.KubeConfig.from_file(path).get(context_name=context)
        assert resolved(ours) == resolved(theirs)
    assert load_kube_config(str(path)).namespace == "team"
    b = load_kube_config(str(path), context="b")
    assert b.cluster.insecure and b.user.token == "t" and b.user.exec.command == "kubelogin"

    with pytest.raises(ConfigError, match=f"^Configuration file {tmp_path / 'none'} not found$"):
        load_kube_config(str(tmp_path / "none"))
    del doc["current-context"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="^No current context set and no default provided$"):
        load_kube_config(str(path))


# -- 3. Ctrl-C in a pipeline -------------------------------------------------------------------


class _ClosedPipe(io.StringIO):
    """stdout whose reader has left (Ctrl-C reaches every process of the pipeline)."""

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("command", ["check", "explain"])
def test_ctrl_c_with_json_into_a_closed_pipe_exits_130(monkeypatch: pytest.MonkeyPatch,
                                                        command: str) -> None:
    # `ingresslib check -o json -f - | jq`, Ctrl-C: jq ends too, and the interrupted document
    # met a closed pipe. Before: BrokenPipeError raised out of main (a second traceback).
    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(f"ingresslib._explain.{command}_main", interrupted)
    err = io.StringIO()
    url = ["http://a.test/"] if command == "explain" else []
    with redirect_stdout(_ClosedPipe()), redirect_stderr(err):
        code = main([command, "-f", "-", "-o", "json", *url])
    assert code == 130 and err.getvalue() == f"ingresslib {command}: interrupted\n"


# -- 4. a canary rule the request's canary shadows -----------------------------------------------


def _canary_ingress(name: str, created: str, service: str, paths: list[tuple[str, str]],
                    canary: bool = True) -> str:
    notes = ('{nginx.ingress.kubernetes.io/canary: "true", '
             'nginx.ingress.kubernetes.io/canary-weight: "10"}') if canary else "{}"
    rows = "".join(f"      - {{path: {path}, pathType: {kind}, backend: {{service: "
                   f"{{name: {service}, port: {{number: 80}}}}}}}}\n" for path, kind in paths)
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}T00:00:00Z",
           annotations: {notes}}}
spec:
  rules:
  - host: a.test
    http:
      paths:
{rows}"""


def test_explain_names_the_canary_its_canary_shadows(tmp_path: Path) -> None:
    # can2 repeats can1's rules: check says "rule already has the canary default/can1;
    # ignored" on each. Before, explain named can1 as this request's canary and not that can2's
    # rule for the same slot never serves (the note names no path: it was not found).
    f = tmp_path / "m.yaml"
    f.write_text(_canary_ingress("main", "2020-01-01", "s1",
                                 [("/a", "Prefix"), ("/b", "Prefix"), ("/a", "Exact")],
                                 canary=False)
                 + _canary_ingress("can1", "2021-01-01", "s2",
                                   [("/a", "Prefix"), ("/b", "Prefix"), ("/a", "Exact")])
                 + _canary_ingress("can2", "2022-01-01", "s3",
                                   [("/b", "Prefix"), ("/a/", "Prefix"), ("/a", "Exact")]))
    note = "rule already has the canary default/can1; ignored"
    doc = _explain(f, "http://a.test/a/x")
    assert doc["match"]["canary"]["ingress"] == "default/can1"
    # can2's /a/ (Prefix: the slot of /a) and none of its /b or Exact /a.
    assert doc["shadowed"] == [f"Ingress default/can2: spec.rules[0].http.paths[1]: {note}"]
    assert _explain(f, "http://a.test/a")["shadowed"] == [
        f"Ingress default/can2: spec.rules[0].http.paths[2]: {note}"]
    assert _explain(f, "http://a.test/b")["shadowed"] == [
        f"Ingress default/can2: spec.rules[0].http.paths[0]: {note}"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        main(["explain", "-f", str(f), "http://a.test/b"])
    assert (f"     warning: Ingress default/can2: spec.rules[0].http.paths[0]: {note}"
            in out.getvalue().splitlines())


def test_guard_no_canary_note_without_a_second_canary(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(_canary_ingress("main", "2020-01-01", "s1", [("/a", "Prefix")], canary=False)
                 + _canary_ingress("can1", "2021-01-01", "s2", [("/a", "Prefix")]))
    doc = _explain(f, "http://a.test/a")
    assert doc["match"]["canary"]["ingress"] == "default/can1" and "shadowed" not in doc
