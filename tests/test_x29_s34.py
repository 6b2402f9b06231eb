"""Session 34, x29: what trips a new user of the command line.

- A misspelt option after a subcommand (``check -f m --outptu json``) was refused by the
  top-level parser: its usage (``ingresslib [-h] [--version] {serve,explain,check,demo}``), no
  word of the subcommand's options, and with ``-o json`` nothing on stdout (the README: one JSON
  document, errors included).
- ``explain --help`` listed ``-X METHOD`` with no text.
- A manifest whose ``kind`` is misspelt (``Ingres``, ``ingress``, ``Servce``) was kept aside
  silently: its routes did not exist and ``check`` said ``ok`` (``kubectl apply`` refuses it:
  "no matches for kind").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingresslib._cli import build_parser, main

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: {kind}
metadata: {{name: web, namespace: shop}}
spec:
  rules:
  - host: a.test
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
"""


def _manifest(tmp_path: Path, kind: str = "Ingress") -> str:
    path = tmp_path / "m.yaml"
    path.write_text(INGRESS.format(kind=kind))
    return str(path)


@pytest.mark.parametrize("command", ["check", "explain"])
def test_a_misspelt_option_is_refused_by_its_subcommand_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    url = ["http://a.test/"] if command == "explain" else []
    with pytest.raises(SystemExit) as exit_:
        main([command, "-f", _manifest(tmp_path), *url, "--outptu", "json"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"usage: ingresslib {command} " in err  # the subcommand's usage, its options
    assert (f"ingresslib {command}: error: unrecognized arguments: --outptu json "
            "(did you mean --output?)") in err


def test_an_unknown_option_without_a_near_name_gets_no_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "-f", _manifest(tmp_path), "--zzzzzz"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith("ingresslib check: error: unrecognized arguments: --zzzzzz")


def test_an_unknown_option_with_output_json_still_prints_one_json_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "-o", "json", "-f", _manifest(tmp_path), "--ingres-class", "nginx"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"] == "usage"
    (error,) = doc["errors"]
    assert error["message"] == ("unrecognized arguments: --ingres-class nginx "
                                "(did you mean --ingress-class?)")
    assert "ingresslib check: error: unrecognized arguments" in err


def test_an_option_misspelt_before_the_subcommand_keeps_the_top_level_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--verison"])
    assert exit_.value.code == 2
    assert "usage: ingresslib [-h]" in capsys.readouterr().err


def test_every_explain_option_has_help_text() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    explain = sub.choices["explain"]  # type: ignore[attr-defined]
    silent = [a.option_strings for a in explain._actions if not a.help]
    assert silent == []
    text = " ".join(explain.format_help().split())  # as wrapped for the terminal
    assert "(default: GET;" in text and "(default: text)" in text


@pytest.mark.parametrize(("kind", "meant"), [("Ingres", "Ingress"), ("ingress", "Ingress"),
                                             ("Servce", "Service")])
def test_check_warns_of_a_misspelt_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        kind: str, meant: str) -> None:
    assert main(["check", "-f", _manifest(tmp_path, kind), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (f"{kind} shop/web: kind {kind} is not read (did you mean {meant}?); the object "
            "is ignored") in doc["warnings"]


def test_check_says_nothing_of_kinds_it_does_not_read_on_purpose(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A folder of manifests holds Deployments, ConfigMaps, an AWS IngressClassParams, a
    # Traefik IngressRoute: kept aside without a word, as the contract says.
    for kind in ("Deployment", "IngressClassParams", "IngressRoute", "ServiceAccount"):
        assert main(["check", "-f", _manifest(tmp_path, kind), "-o", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert not any("is not read" in w for w in doc["warnings"]), (kind, doc["warnings"])


def test_the_misspelt_kind_note_names_the_kind_field() -> None:
    from ingresslib._explain_api import check
    from ingresslib._resources import Resources

    res = Resources.from_dicts([{"apiVersion": "networking.k8s.io/v1", "kind": "Ingres",
                                 "metadata": {"name": "web"}}])
    (note,) = [d for d in check(res) if "is not read" in d.message]
    assert (note.object, note.field) == ("Ingres default/web", "kind")
