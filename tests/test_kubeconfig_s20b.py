"""Every kubeconfig file read as kubectl reads it, one file or several (session 20, K20b).

client-go's ``tools/clientcmd/loader.go`` ``Load`` reads ``--kubeconfig`` (``ExplicitPath``)
and each file of ``$KUBECONFIG`` through the same loop and the same ``ResolveLocalPaths``:
"Relative paths inside of the .kubeconfig files are resolved against the .kubeconfig file's
parent folder" (``certificate-authority``, ``client-certificate``, ``client-key``,
``tokenFile``, an ``exec`` command holding a separator). Before, one file alone went to
lightkube's ``KubeConfig.from_file``, which resolves only the first three, and read a relative
``tokenFile`` and a ``./bin/x`` exec command from the working folder: ``KUBECONFIG=d/b.yaml``
and ``KUBECONFIG=d/b.yaml:nope.yaml`` named different token files.

A context naming a cluster or user that no file defines raised lightkube's bare ``KeyError``;
it is now an error in the words of client-go's ``validation.go`` ``validateContext``
(``cluster %q was not found for context %q``, ``user %q was not found for context %q``).

No cluster and no network: kubeconfig files in ``tmp_path``, lightkube's config objects only.
Each test failed on the code before, except those named ``test_guard_*`` (what must not
change).
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

from ingresslib._kube import load_kube_config  # noqa: E402

_EXEC = {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/x"}


@pytest.fixture(autouse=True)
def not_in_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-cluster configuration comes first (unchanged): these tests are about the files.
    def no_service_account(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("not in a pod")

    monkeypatch.setattr(KubeConfig, "from_service_account", no_service_account)


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _relative_paths(path: Path) -> Path:
    """The reviewer's file: every kind of relative path client-go resolves."""
    return _write(path, {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                               "certificate-authority": "ca.crt"}}],
        "users": [{"name": "tok", "user": {"tokenFile": "tok"}},
                  {"name": "cert", "user": {"client-certificate": "tls/cert.pem",
                                            "client-key": "tls/key.pem"}},
                  {"name": "exec", "user": {"exec": _EXEC}}],
        "contexts": [{"name": "tok", "context": {"cluster": "c", "user": "tok"}},
                     {"name": "cert", "context": {"cluster": "c", "user": "cert"}},
                     {"name": "exec", "context": {"cluster": "c", "user": "exec"}}],
        "current-context": "tok"})


def _read_all(load: Any) -> tuple[str, str, str, str, str]:
    tok, cert, exec_ = load("tok"), load("cert"), load("exec")
    return (tok.user.token_file, exec_.user.exec.command,
            str(tok.abs_file(tok.cluster.certificate_auth)),
            str(cert.abs_file(cert.user.client_cert)), str(cert.abs_file(cert.user.client_key)))


def _expected(folder: Path) -> tuple[str, str, str, str, str]:
    return (str(folder / "tok"), str(folder / "bin" / "x"), str(folder / "ca.crt"),
            str(folder / "tls" / "cert.pem"), str(folder / "tls" / "key.pem"))


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The working folder is not the kubeconfig's: a path read from it would be wrong.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# --- 1. one file reads its relative paths from its own folder -----------------------------------


def test_one_file_in_kubeconfig_reads_token_file_and_exec_from_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    d2 = tmp_path / "d2"
    b = _relative_paths(d2 / "b.yaml")
    monkeypatch.setenv("KUBECONFIG", str(b))
    alone = _read_all(lambda ctx: load_kube_config(context=ctx))
    # Before: ("tok", "./bin/x", ...): the working folder's token file and program.
    assert alone == _expected(d2)
    # The same file in a list reads the same (it did: only the single file differed).
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(b), str(tmp_path / "nope.yaml")]))
    assert _read_all(lambda ctx: load_kube_config(context=ctx)) == alone


def test_kubeconfig_option_reads_relative_paths_from_the_files_folder(
        tmp_path: Path, elsewhere: Path) -> None:
    # kubectl --kubeconfig is ExplicitPath: the same Load loop, the same ResolveLocalPaths.
    folder = tmp_path / "conf"
    path = _relative_paths(folder / "kubeconfig")
    assert _read_all(lambda ctx: load_kube_config(path, context=ctx)) == _expected(folder)
    # Named relative to the working folder: filepath.Abs(filepath.Dir(...)), made absolute.
    relative = os.path.relpath(path, elsewhere)
    assert _read_all(lambda ctx: load_kube_config(relative, context=ctx)) == _expected(folder)


def test_kubeconfig_option_with_a_tilde_reads_from_the_home_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    home = tmp_path / "home"
    _relative_paths(home / "kube" / "dev.yaml")
    monkeypatch.setenv("HOME", str(home))
    got = _read_all(lambda ctx: load_kube_config("~/kube/dev.yaml", context=ctx))
    assert got == _expected(home / "kube")


def test_the_home_kubeconfig_reads_relative_paths_from_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    # $KUBECONFIG unset: ~/.kube/config (client-go's RecommendedHomeFile), read the same way.
    home = tmp_path / "home"
    _relative_paths(home / ".kube" / "config")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert _read_all(lambda ctx: load_kube_config(context=ctx)) == _expected(home / ".kube")


# --- 1b. what lightkube's from_file did with a broken single file -------------------------------


def test_a_single_file_that_is_not_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    # Before: yaml's ParserError itself, naming no file ("<unicode string>"), and no
    # ConfigError for a library caller to catch; now as for a file of a list.
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [\n")
    with pytest.raises(ConfigError, match=f'^error loading config file "{bad}": '):
        load_kube_config(bad)


def test_a_single_empty_file_is_an_empty_configuration(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # loader.go Load: "if there's no data in a file, return the default object instead of
    # failing". Before: AttributeError: 'NoneType' object has no attribute 'get'.
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="^No current context set"):
        load_kube_config(empty)
    monkeypatch.setenv("KUBECONFIG", str(empty))
    with pytest.raises(ConfigError, match="^No current context set"):
        load_kube_config()


def test_a_single_file_may_hold_only_some_lists(tmp_path: Path) -> None:
    # kubectl reads a file without users or clusters; lightkube raised KeyError: 'clusters'.
    path = _write(tmp_path / "config", {"contexts": [{"name": "x", "context": {"cluster": "c"}}],
                                        "current-context": "x"})
    with pytest.raises(ConfigError, match='^cluster "c" was not found for context "x"$'):
        load_kube_config(path)


# --- 2. a context naming what no file defines ---------------------------------------------------


def _dangling(path: Path, *, cluster: str = "c", user: str | None = None) -> Path:
    context: dict[str, Any] = {"cluster": cluster}
    if user is not None:
        context["user"] = user
    return _write(path, {
        "clusters": [{"name": "real", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": context}],
        "current-context": "x"})


def test_a_context_naming_an_undefined_cluster_is_named(tmp_path: Path) -> None:
    # validation.go validateContext: `cluster %q was not found for context %q`.
    path = _dangling(tmp_path / "config", user="me")
    with pytest.raises(ConfigError, match='^cluster "c" was not found for context "x"$'):
        load_kube_config(path)
    with pytest.raises(ConfigError, match='^cluster "c" was not found for context "x"$'):
        load_kube_config(path, context="x")


def test_a_context_naming_an_undefined_user_is_named(tmp_path: Path) -> None:
    # validateContext: `user %q was not found for context %q`.
    path = _dangling(tmp_path / "config", cluster="real", user="ghost")
    with pytest.raises(ConfigError, match='^user "ghost" was not found for context "x"$'):
        load_kube_config(path)


def test_both_missing_are_named_together(tmp_path: Path) -> None:
    # validateContext does not return early: the user, then the cluster.
    path = _dangling(tmp_path / "config", cluster="c", user="ghost")
    with pytest.raises(ConfigError) as info:
        load_kube_config(path)
    assert str(info.value) == ('user "ghost" was not found for context "x"; '
                               'cluster "c" was not found for context "x"')


def test_across_files_a_cluster_no_file_defines_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _dangling(tmp_path / "a.yaml", cluster="elsewhere", user="me")
    second = _write(tmp_path / "b.yaml", {
        "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:2"}}]})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    with pytest.raises(ConfigError, match='^cluster "elsewhere" was not found for context "x"$'):
        load_kube_config()
    # Defined by a later file: found, as before.
    third = _write(tmp_path / "c.yaml", {
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:3"}}]})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second), str(third)]))
    assert load_kube_config().cluster.server == "https://127.0.0.1:3"


def test_serve_names_the_missing_cluster_and_exits_2(tmp_path: Path) -> None:
    # docs/cluster.md: "a missing or broken kubeconfig, an unknown context ... exits with
    # status 2 and the reason". Before: exit 2 with "KeyError: 'c'".
    from ingresslib._cli import main

    path = _dangling(tmp_path / "config", user="me")
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["serve", "--kubernetes", "--kubeconfig", str(path),
                     "--listen", "127.0.0.1:0"])
    assert code == 2
    assert 'cluster "c" was not found for context "x"' in err.getvalue(), err.getvalue()
    assert "KeyError" not in err.getvalue()


# --- guards: what must not change ---------------------------------------------------------------


def test_guard_a_single_missing_file_keeps_lightkubes_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"^Configuration file {missing} not found$"):
        load_kube_config(missing)
    # Named as given: "~" is not spelt out.
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="^Configuration file ~/missing.yaml not found$"):
        load_kube_config("~/missing.yaml")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ConfigError, match="^Configuration file ~/.kube/config not found$"):
        load_kube_config()


def test_guard_absolute_paths_and_path_commands_are_kept(tmp_path: Path) -> None:
    # ResolvePaths: "Don't resolve absolute paths"; "Only resolve exec command if it isn't
    # PATH based".
    path = _write(tmp_path / "config", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                               "certificate-authority": "/etc/ca.crt"}}],
        "users": [{"name": "u", "user": {"tokenFile": "/run/tok",
                                         "exec": {**_EXEC, "command": "aws"}}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"})
    config = load_kube_config(path)
    assert (config.cluster.certificate_auth, config.user.token_file, config.user.exec.command) \
        == ("/etc/ca.crt", "/run/tok", "aws")


def test_guard_fname_namespace_and_utf8_names(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # What from_file gave: fname the file (with "~" expanded), the namespace, UTF-8 text
    # (with or without a byte order mark), the last of two equal names within a file.
    monkeypatch.setenv("HOME", str(tmp_path))
    doc = {"clusters": [{"name": "café", "cluster": {"server": "https://127.0.0.1:1"}},
                        {"name": "café", "cluster": {"server": "https://127.0.0.1:2"}}],
           "contexts": [{"name": "ctx", "context": {"cluster": "café", "namespace": "web"}}],
           "current-context": "ctx"}
    path = tmp_path / "k.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(doc, allow_unicode=True).encode())
    config = load_kube_config("~/k.yaml")
    assert (config.fname, config.namespace, config.cluster.server, config.user) == (
        path, "web", "https://127.0.0.1:2", None)
