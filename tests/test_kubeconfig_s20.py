"""``$KUBECONFIG`` naming several files, merged as kubectl merges them (session 20, K20).

The rules are client-go's ``tools/clientcmd/loader.go`` (kubernetes/kubernetes,
``staging/src/k8s.io/client-go/tools/clientcmd/loader.go``), quoted in ``ingresslib/_kubeconfig.py``.
No cluster and no network: kubeconfig files in ``tmp_path``, lightkube's config objects only.
Each test failed on the code before (which handed ``os.environ["KUBECONFIG"]`` to lightkube as
one file name: "Configuration file a:b not found"), except those marked as guards of what
did not change.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("lightkube")

from lightkube import KubeConfig  # noqa: E402
from lightkube.core.exceptions import ConfigError  # noqa: E402

import ingresslib._kubeconfig  # noqa: E402
from ingresslib._kube import load_kube_config  # noqa: E402

posix_only = pytest.mark.skipif(os.pathsep != ":", reason="the POSIX list separator")


def _write(path: Path, *, clusters: dict[str, dict[str, Any]] | None = None,
           users: dict[str, dict[str, Any]] | None = None,
           contexts: dict[str, dict[str, Any]] | None = None,
           current: str | None = None) -> Path:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if clusters is not None:
        doc["clusters"] = [{"name": n, "cluster": c} for n, c in clusters.items()]
    if users is not None:
        doc["users"] = [{"name": n, "user": u} for n, u in users.items()]
    if contexts is not None:
        doc["contexts"] = [{"name": n, "context": c} for n, c in contexts.items()]
    if current is not None:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _one(path: Path, name: str, server: str, *, current: bool = True, **cluster: Any) -> Path:
    """A file with one cluster, one user and one context, all called ``name``."""
    return _write(path, clusters={name: {"server": server, **cluster}},
                  users={name: {"token": f"{name}-token"}},
                  contexts={name: {"cluster": name, "user": name}},
                  current=name if current else None)


@pytest.fixture(autouse=True)
def not_in_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-cluster configuration comes first (unchanged): these tests are about the files.
    def no_service_account(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("not in a pod")

    monkeypatch.setattr(KubeConfig, "from_service_account", no_service_account)


def _env(monkeypatch: pytest.MonkeyPatch, *paths: Path | str) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(str(p) for p in paths))


def test_two_files_with_disjoint_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2", current=False)
    _env(monkeypatch, a, b)
    config = load_kube_config()
    assert (config.context_name, config.cluster.server, config.user.token) == (
        "a", "https://127.0.0.1:1", "a-token")
    # --context NAME: a context of the second file.
    config = load_kube_config(context="b")
    assert (config.context_name, config.cluster.server, config.user.token) == (
        "b", "https://127.0.0.1:2", "b-token")


def test_a_context_may_use_a_cluster_and_a_user_of_other_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kubectl's common split: clusters in one file, credentials in another, contexts in a third.
    clusters = _write(tmp_path / "clusters.yaml", clusters={"prod": {"server": "https://127.0.0.1:3"}})
    users = _write(tmp_path / "users.yaml", users={"me": {"token": "secret"}})
    contexts = _write(tmp_path / "contexts.yaml",
                      contexts={"prod": {"cluster": "prod", "user": "me", "namespace": "web"}})
    _env(monkeypatch, clusters, users, contexts)
    config = load_kube_config(context="prod")
    assert (config.cluster.server, config.user.token, config.namespace) == (
        "https://127.0.0.1:3", "secret", "web")


def test_a_name_in_two_files_is_the_first_files_whole_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # loader.go Load: "The first file to set a particular map key wins and map key's value is
    # never changed ... Even non-conflicting entries from the second file's "red-user" are
    # discarded."
    first = _one(tmp_path / "first.yaml", "x", "https://127.0.0.1:1")
    second = _write(tmp_path / "second.yaml",
                    clusters={"x": {"server": "https://127.0.0.1:2",
                                    "insecure-skip-tls-verify": True}},
                    users={"x": {"token": "other", "username": "someone"}},
                    contexts={"x": {"cluster": "x", "user": "x", "namespace": "elsewhere"}},
                    current="x")
    _env(monkeypatch, first, second)
    config = load_kube_config()
    assert config.cluster.server == "https://127.0.0.1:1"
    assert config.cluster.insecure is False
    assert (config.user.token, config.user.username) == ("x-token", None)
    assert config.namespace == "default"


def test_current_context_from_the_first_file_that_sets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1", current=False)
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2", current=False)
    # The third file names the context of the first one; the second sets none ("" is none).
    c = _write(tmp_path / "c.yaml", current="a")
    d = _write(tmp_path / "d.yaml", current="b")
    (tmp_path / "empty-current.yaml").write_text("current-context: ''\n")
    _env(monkeypatch, a, tmp_path / "empty-current.yaml", b, c, d)
    assert load_kube_config().context_name == "a"


def test_relative_paths_are_resolved_against_their_own_files_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ResolveLocalPaths: "Relative paths inside of the .kubeconfig files are resolved against
    # the .kubeconfig file's parent folder" (certificate-authority, client-certificate,
    # client-key, tokenFile, an exec command with a separator); not against the working folder.
    one = _write(tmp_path / "one" / "config",
                 clusters={"c1": {"server": "https://127.0.0.1:1",
                                  "certificate-authority": "ca1.crt"}},
                 contexts={"c1": {"cluster": "c1"}}, current="c1")
    two = _write(tmp_path / "two" / "sub" / "config",
                 clusters={"c2": {"server": "https://127.0.0.1:2",
                                  "certificate-authority": "../ca2.crt"},
                           "abs": {"server": "https://127.0.0.1:4",
                                   "certificate-authority": "/etc/ca.crt"}},
                 users={"u2": {"client-certificate": "tls/cert.pem",
                               "client-key": "tls/key.pem", "tokenFile": "token"},
                        "e2": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "./bin/credentials"}},
                        "p2": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "aws"}}},
                 contexts={"c2": {"cluster": "c2", "user": "u2"},
                           "e2": {"cluster": "abs", "user": "e2"},
                           "p2": {"cluster": "c2", "user": "p2"}})
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _env(monkeypatch, one, two)
    assert load_kube_config().cluster.certificate_auth == str(tmp_path / "one" / "ca1.crt")
    config = load_kube_config(context="c2")
    # filepath.Join cleans the path: "sub/../ca2.crt" is "ca2.crt".
    ca = str(tmp_path / "two" / "ca2.crt")
    assert config.cluster.certificate_auth == ca
    # What lightkube opens (abs_file: relative to the first file's folder, were it relative).
    assert config.abs_file(config.cluster.certificate_auth) == ca
    sub = tmp_path / "two" / "sub"
    assert (config.user.client_cert, config.user.client_key, config.user.token_file) == (
        str(sub / "tls/cert.pem"), str(sub / "tls/key.pem"), str(sub / "token"))
    exec_config = load_kube_config(context="e2")
    assert exec_config.user.exec.command == str(sub / "bin/credentials")
    assert exec_config.cluster.certificate_auth == "/etc/ca.crt"
    # "Only resolve exec command if it isn't PATH based".
    assert load_kube_config(context="p2").user.exec.command == "aws"


def test_a_relative_kubeconfig_entry_resolves_against_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # filepath.Abs(filepath.Dir(LocationOfOrigin)): the paths become absolute.
    _one(tmp_path / "a" / "config", "a", "https://127.0.0.1:1", current=False)
    _write(tmp_path / "b" / "config",
           clusters={"b": {"server": "https://127.0.0.1:2", "certificate-authority": "ca.crt"}},
           contexts={"b": {"cluster": "b"}}, current="b")
    monkeypatch.chdir(tmp_path)
    _env(monkeypatch, "a/config", "b/config")
    assert load_kube_config().cluster.certificate_auth == str(tmp_path / "b" / "ca.crt")


def test_a_missing_file_in_the_list_is_skipped(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Load: "Empty filenames or other missing files are ignored."
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    _env(monkeypatch, tmp_path / "missing.yaml", a, tmp_path / "gone" / "config")
    assert load_kube_config().cluster.server == "https://127.0.0.1:1"


def test_every_file_missing_is_an_error_naming_them_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # client-go only warns (MissingConfigError: "Config not found: %s", the names joined by
    # ", ") and kubectl goes on with an empty configuration, which reaches no cluster; serve
    # needs one, so it is an error here, in client-go's words.
    m1, m2 = tmp_path / "m1.yaml", tmp_path / "m2.yaml"
    _env(monkeypatch, m1, m2)
    with pytest.raises(ConfigError, match=f"^Config not found: {m1}, {m2} "):
        load_kube_config()


def test_a_list_of_only_separators_names_no_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Not empty, so not unset: client-go does not fall back to ~/.kube/config either.
    _one(tmp_path / ".kube" / "config", "home", "https://127.0.0.1:9")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", os.pathsep * 2)
    with pytest.raises(ConfigError, match=r"^\$KUBECONFIG names no file$"):
        load_kube_config()


def test_files_that_cannot_be_read_are_errors_naming_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Load: errlist gets `error loading config file "%s": %v` for each, not only the first.
    good = _one(tmp_path / "good.yaml", "good", "https://127.0.0.1:1")
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("clusters: [\n")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n")
    wrong_type = tmp_path / "wrong-type.yaml"
    wrong_type.write_text("clusters:\n- name: c\n  cluster: {server: [1]}\ncontexts: []\n")
    no_name = tmp_path / "no-name.yaml"
    no_name.write_text("contexts:\n- context: {cluster: c}\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    _env(monkeypatch, good, syntax, tmp_path / "missing.yaml", not_a_mapping, wrong_type,
         no_name, folder)
    with pytest.raises(ConfigError) as info:
        load_kube_config()
    message = str(info.value)
    for bad in (syntax, not_a_mapping, wrong_type, no_name, folder):
        assert f'error loading config file "{bad}": ' in message, message
    assert f'"{good}"' not in message and "missing.yaml" not in message
    assert "expected a kubeconfig (a mapping), got list" in message
    assert "contexts[0]: expected a name and a context" in message


def test_an_empty_file_in_the_list_is_an_empty_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Load: "if there's no data in a file, return the default object instead of failing".
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    _env(monkeypatch, empty, a)
    assert load_kube_config().cluster.server == "https://127.0.0.1:1"


def test_a_repeated_entry_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NewDefaultClientConfigLoadingRules: "prevent the same path load multiple times"
    # (deduplicate, "keeping the order unchanged").
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2")
    read: list[Any] = []
    real = ingresslib._kubeconfig.yaml.safe_load

    def counting(data: Any) -> Any:
        read.append(data)
        return real(data)

    monkeypatch.setattr(ingresslib._kubeconfig.yaml, "safe_load", counting)
    _env(monkeypatch, a, b, a, b, a)
    assert load_kube_config().context_name == "a"
    assert len(read) == 2
    # One file named twice is one file: read as before (lightkube's from_file).
    _env(monkeypatch, b, b)
    assert load_kube_config().context_name == "b"


def test_empty_entries_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1", current=False)
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2")
    monkeypatch.setenv("KUBECONFIG", f"{a}{os.pathsep}{os.pathsep}{b}{os.pathsep}")
    assert load_kube_config().cluster.server == "https://127.0.0.1:2"
    assert load_kube_config(context="a").cluster.server == "https://127.0.0.1:1"
    # A single file with a separator around it is that file.
    monkeypatch.setenv("KUBECONFIG", f"{os.pathsep}{a}{os.pathsep}")
    assert load_kube_config(context="a").cluster.server == "https://127.0.0.1:1"


@posix_only
def test_the_windows_separator_is_part_of_a_posix_file_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # filepath.SplitList splits on os.PathListSeparator only: ':' here, ';' on Windows.
    semi = _one(tmp_path / "x;y.yaml", "semi", "https://127.0.0.1:5")
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2")
    monkeypatch.setenv("KUBECONFIG", f"{semi}:{b}")
    assert load_kube_config().cluster.server == "https://127.0.0.1:5"
    assert load_kube_config(context="b").cluster.server == "https://127.0.0.1:2"


def test_an_unknown_context_across_files_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2")
    _env(monkeypatch, a, b)
    with pytest.raises(ConfigError, match="Context 'c' not found"):
        load_kube_config(context="c")


def test_serve_reports_each_broken_file_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingresslib._cli import main

    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: {\n")
    _env(monkeypatch, a, bad)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["serve", "--kubernetes", "--listen", "127.0.0.1:0"])
    assert code == 2
    assert f'error loading config file "{bad}"' in err.getvalue(), err.getvalue()


# --- guards: what did not change ----------------------------------------------------------------


def test_guard_kubeconfig_option_is_one_file(tmp_path: Path) -> None:
    # kubectl's --kubeconfig (ExplicitPath) is one file; "a:b" is its name, not a list.
    a = _one(tmp_path / "a.yaml", "a", "https://127.0.0.1:1")
    b = _one(tmp_path / "b.yaml", "b", "https://127.0.0.1:2")
    with pytest.raises(ConfigError, match="not found"):
        load_kube_config(f"{a}{os.pathsep}{b}")
    assert load_kube_config(b).cluster.server == "https://127.0.0.1:2"


def test_guard_in_cluster_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_pod = KubeConfig.from_server("https://127.0.0.1:7")
    monkeypatch.setattr(KubeConfig, "from_service_account",
                        classmethod(lambda cls, *a, **k: in_pod))
    _env(monkeypatch, tmp_path / "missing.yaml", tmp_path / "also-missing.yaml")
    assert load_kube_config().cluster.server == "https://127.0.0.1:7"


def test_guard_a_single_missing_file_keeps_lightkubes_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.yaml"
    _env(monkeypatch, missing)
    with pytest.raises(ConfigError, match=f"^Configuration file {missing} not found$"):
        load_kube_config()
