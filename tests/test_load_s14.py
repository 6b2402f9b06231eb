"""Manifest loading gaps (session 14 review).

- A folder that cannot be listed was read as an empty folder by ``load_manifests`` (and so by
  ``check`` and ``explain``): its Ingresses vanished without a word. Only ``serve`` checked.
  It is now an error naming the folder, in the words ``serve`` uses; a folder removed while
  the load walks is ``Not found``, as a file removed before its reading already was.
- An empty path (``-f ''``, ``load_manifests("")``) loaded the current folder (``Path("")`` is
  ``Path(".")``). It is refused.
- Keys written twice in JSON input gave no warning (YAML's did, since session 13); they now
  warn in the same words, with the same field path.
- A load that failed lost its field warnings for API users: ``ValidationError.warnings``.

Tests run as root (where ``chmod 000`` denies nothing): a folder is made unlistable by
replacing ``os.scandir`` (what ``os.walk`` lists with) for it, and once for real, by dropping
root's permission-bypassing capabilities with ``setpriv``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib import ValidationError, load_manifests, parse_manifests
from ingresslib._cli import main

ROOT = Path(__file__).resolve().parent.parent


def _ingress(name: str, host: str) -> str:
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, "
            f"namespace: shop}}\nspec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n"
            f"      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: "
            f"{{number: 80}}}}}}}}\n")


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """``deploy/a.yaml`` and ``deploy/sub/b.yaml``, one Ingress each."""
    root = tmp_path / "deploy"
    sub = root / "sub"
    sub.mkdir(parents=True)
    (root / "a.yaml").write_text(_ingress("a", "a.example.com"))
    (sub / "b.yaml").write_text(_ingress("b", "b.example.com"))
    return root, sub


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Listing ``folder`` fails with EACCES, as ``chmod 000`` makes it for anyone but root."""
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(os.fspath(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def _errors(*paths: str | Path) -> list[str]:
    with pytest.raises(ValidationError) as exc_info:
        load_manifests(*paths)
    return [str(e) for e in exc_info.value.errors]


# --- 1. folders that cannot be listed ------------------------------------------------------------


def test_a_folder_that_cannot_be_listed_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: load_manifests returned an empty Resources, as for an empty folder.
    root, _ = _tree(tmp_path)
    _deny(monkeypatch, root)
    assert _errors(root) == [f"{root}: Invalid value: cannot list the folder: Permission denied"]


def test_a_subfolder_that_cannot_be_listed_is_an_error_and_the_rest_is_still_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the load succeeded without deploy/sub's Ingress (b.example.com answered 404).
    root, sub = _tree(tmp_path)
    (root / "c.yaml").write_text("kind: Ingress\n")  # every problem is told, not the first
    _deny(monkeypatch, sub)
    assert _errors(root) == [
        f"{sub}: Invalid value: cannot list the folder: Permission denied",
        f"{root / 'c.yaml'}: document 1: apiVersion: Required value: "
        "every object needs `kind` and `apiVersion`",
    ]
    monkeypatch.undo()
    assert sorted(i.metadata.name for i in load_manifests(root / "a.yaml", sub).ingresses) == [
        "a", "b"]


def test_check_on_a_folder_that_cannot_be_listed_exits_2_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: `check -f deploy` said the manifests were fine (exit 0) with the folder unread.
    root, sub = _tree(tmp_path)
    _deny(monkeypatch, sub)
    assert main(["check", "-f", str(root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"{sub}: Invalid value: cannot list the folder: Permission denied" in err
    assert err[-1] == "1 error(s)"
    assert main(["explain", "-f", str(root), "http://a.example.com/"]) == 2
    assert f"{sub}: Invalid value: cannot list the folder: Permission denied" in (
        capsys.readouterr().err.splitlines())


def _unprivileged() -> list[str] | None:
    """A command prefix that runs a process without root's permission bypass, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_check_on_a_real_unreadable_folder(tmp_path: Path) -> None:
    # The same with real permissions (chmod 000), through the installed command line.
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: covered by the os.scandir tests above")
    root, sub = _tree(tmp_path)
    sub.chmod(0)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-m", "ingresslib", "check", "-f",
                               str(root)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    finally:
        sub.chmod(0o755)
    if "Operation not permitted" in proc.stderr and proc.returncode != 2:
        pytest.skip(f"setpriv refused here: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr
    assert f"{sub}: Invalid value: cannot list the folder: Permission denied" in (
        proc.stderr.splitlines())


def _remove_when_listed(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` is removed just before the walk lists it (after its parent was listed): an
    ``rm -rf`` or a checkout racing the load."""
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(os.fspath(path)) == folder and folder.exists():
            shutil.rmtree(folder)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_subfolder_removed_during_the_walk_is_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Decision: as a file removed between its folder's listing and its reading (already "Not
    # found"), and as kubectl's walk does (cli-runtime ExpandPathsToFileVisitors returns the
    # walk's error: `error reading "deploy": ...`). A load that raced a change is refused, not
    # half read: serve keeps its table and reloads at the next poll, which sees the change.
    root, sub = _tree(tmp_path)
    _remove_when_listed(monkeypatch, sub)
    assert _errors(root) == [f"{sub}: Not found: no such file or directory"]
    # Once gone, it is simply absent.
    assert [i.metadata.name for i in load_manifests(root).ingresses] == ["a"]


def test_a_folder_removed_before_its_walk_is_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The folder named by -f itself, gone between the is-it-a-folder test and its listing.
    root, _ = _tree(tmp_path)
    _remove_when_listed(monkeypatch, root)
    assert _errors(root) == [f"{root}: Not found: no such file or directory"]


# --- 2. the empty path ---------------------------------------------------------------------------

EMPTY = '"": Not found: an empty path names no file or folder (use "." for the current folder)'


def test_an_empty_path_is_refused_not_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: load_manifests("") loaded every manifest under the current folder.
    root, _ = _tree(tmp_path)
    monkeypatch.chdir(root)
    assert _errors("") == [EMPTY]
    assert _errors(root / "a.yaml", "") == [EMPTY]  # with the other paths' problems, if any
    # "." still names the current folder.
    assert len(load_manifests(".").ingresses) == 2


@pytest.mark.parametrize("command", [["check"], ["explain", "URL"]])
def test_dash_f_empty_is_refused_by_check_and_explain(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: `check -f ''` checked the current folder (exit 0 here), `explain -f ''`
    # explained with it.
    root, _ = _tree(tmp_path)
    monkeypatch.chdir(root)
    argv = [command[0], "-f", ""] + (["http://a.example.com/"] if len(command) > 1 else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert EMPTY in err


def test_serve_dash_f_empty_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: `serve -f ''` served the current folder's manifests.
    from ingresslib import _serve

    root, _ = _tree(tmp_path)
    monkeypatch.chdir(root)

    async def serving(*a: Any, **k: Any) -> int:
        return 99  # the old code went on to serve

    monkeypatch.setattr(_serve, "_serve", serving)
    assert main(["serve", "-f", "", "--listen", "127.0.0.1:0"]) == 2
    assert EMPTY in capsys.readouterr().err.splitlines()


# --- 3. JSON keys written twice ------------------------------------------------------------------

YAML_DUPS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {example.com/a: '1', example.com/a: '2'}
spec:
  rules:
  - host: one.example.com
    host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
"""

JSON_DUPS = (
    '{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",'
    ' "metadata": {"name": "web", "namespace": "shop",'
    '  "annotations": {"example.com/a": "1", "example.com/a": "2"}},'
    ' "spec": {"rules": [{"host": "one.example.com", "host": "shop.example.com",'
    '  "http": {"paths": [{"path": "/", "pathType": "Prefix",'
    '   "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}'
)

DUP_LINES = [
    'w.json: Ingress shop/web: duplicate field "metadata.annotations[example.com/a]"',
    'w.json: Ingress shop/web: duplicate field "spec.rules[0].host"',
]


def _warnings(text: str, source: str = "w.json") -> list[str]:
    return [str(w) for w in parse_manifests(text, source=source).warnings]


def test_json_keys_written_twice_warn_as_yaml_ones_do() -> None:
    # Regression: no warning at all for JSON input.
    # What YAML gave since session 13; since session 16 with the line of the last writing,
    # which JSON's parser does not tell.
    assert _warnings(YAML_DUPS) == [line.replace("w.json: ", f"w.json: line {n}: ")
                                    for line, n in zip(DUP_LINES, (6, 10))]
    assert _warnings(JSON_DUPS) == DUP_LINES
    w = parse_manifests(JSON_DUPS).warnings
    assert [(x.type, x.field) for x in w] == [
        ("duplicate field", "metadata.annotations[example.com/a]"),
        ("duplicate field", "spec.rules[0].host")]
    # The last value wins, as in Go and as for YAML.
    res = parse_manifests(JSON_DUPS)
    assert res.ingresses[0].spec.rules[0].host == "shop.example.com"
    assert res.ingresses[0].metadata.annotations["example.com/a"] == "2"


@pytest.mark.parametrize("shape", ["array", "stream", "list", "file"])
def test_json_arrays_streams_lists_and_files_warn_per_object(shape: str, tmp_path: Path) -> None:
    clean = JSON_DUPS.replace('"host": "one.example.com", ', "").replace(
        '"example.com/a": "1", ', "").replace('"metadata": {"name": "web"',
                                             '"metadata": {"name": "clean"')
    docs = [clean, JSON_DUPS.replace('"metadata": {"name": "web"',
                                         '"metadata": {"name": "web", "name": "web2"')]
    text = {"array": "[" + ", ".join(docs) + "]",
            "stream": "\n".join(docs),  # `jq -c '.items[]'`
            "list": '{"apiVersion": "v1", "kind": "List", "items": [' + ", ".join(docs) + "]}",
            "file": "\n".join(docs)}[shape]
    if shape == "file":
        f = tmp_path / "w.json"
        f.write_text(text)
        lines = [str(w) for w in load_manifests(f).warnings]
        f_name = str(f)
    else:
        lines = _warnings(text)
        f_name = "w.json"
    assert lines == [
        f'{f_name}: Ingress shop/web2: duplicate field "metadata.name"',
        f'{f_name}: Ingress shop/web2: duplicate field "metadata.annotations[example.com/a]"',
        f'{f_name}: Ingress shop/web2: duplicate field "spec.rules[0].host"',
    ]


def test_json_without_repeated_keys_gives_no_warning() -> None:
    clean = JSON_DUPS.replace('"host": "one.example.com", ', "").replace(
        '"example.com/a": "1", ', "")
    assert _warnings(clean) == []
    # An object repeated as a whole in a list is no repeated key; neither are equal keys in
    # sibling objects.
    assert _warnings("[" + clean + ", " + clean + "]") == []
    # A value dropped for a later one is not looked into (as for YAML): only "spec" is told.
    first = '"spec": {"rules": [{"host": "x.example.com", "host": "y.example.com"}]}, '
    assert _warnings(JSON_DUPS.replace('"kind": "Ingress",', '"kind": "Ingress", ' + first)
                     .replace('"host": "one.example.com", ', "")
                     .replace('"example.com/a": "1", ', "")) == [
        'w.json: Ingress shop/web: duplicate field "spec"']


# --- 4. warnings of a load that fails ------------------------------------------------------------


def test_validation_error_carries_the_field_warnings(tmp_path: Path) -> None:
    # Regression: ValidationError had no warnings; an API user saw `pathType: Required value`
    # and never the `pathtype` typo that caused it (only `check` printed it).
    f = tmp_path / "ing.yaml"
    f.write_text(YAML_DUPS.replace("pathType: Prefix", "pathtype: Prefix"))
    with pytest.raises(ValidationError) as exc_info:
        load_manifests(f)
    err = exc_info.value
    assert [str(w) for w in err.warnings] == [
        f'{f}: Ingress shop/web: unknown field "spec.rules[0].http.paths[0].pathtype"',
        f'{f}: line 6: Ingress shop/web: duplicate field "metadata.annotations[example.com/a]"',
        f'{f}: line 10: Ingress shop/web: duplicate field "spec.rules[0].host"',
    ]
    assert isinstance(err.warnings, tuple)
    assert all(isinstance(w, ingresslib.FieldError) for w in err.warnings)
    # Outside the message: str() lists the errors only, as before.
    assert str(err) == (f"{f}: Ingress shop/web: spec.rules[0].http.paths[0].pathType: "
                        "Required value: pathType must be specified")
    assert err.args == (str(err),)
    # parse_manifests and from_dicts alike.
    with pytest.raises(ValidationError) as exc_info:
        parse_manifests(JSON_DUPS.replace('"pathType": "Prefix"', '"pathtype": "Prefix"'))
    assert len(exc_info.value.warnings) == 3
    with pytest.raises(ValidationError) as exc_info:
        ingresslib.Resources.from_dicts([{"apiVersion": "v1", "kind": "Service",
                                          "metadata": {"name": "Bad_Name"}, "spce": {}}])
    assert [str(w) for w in exc_info.value.warnings] == [
        'Service default/Bad_Name: unknown field "spce"']


def test_validation_error_built_by_hand_has_no_warnings_and_pickles() -> None:
    e = ValidationError([ingresslib.FieldError("Ingress default/web", "spec", "Required value")])
    assert e.warnings == ()
    w = ingresslib.FieldError("Ingress default/web", "spec.x", "unknown field")
    e = ValidationError(e.errors, warnings=[w])
    assert e.warnings == (w,)
    back = pickle.loads(pickle.dumps(e))
    assert (back.errors, back.warnings, str(back)) == (e.errors, e.warnings, str(e))
