"""Loading manifest files and text: YAML multi-doc, JSON, folders, and errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ingresslib import _load
from ingresslib._errors import FieldError, ValidationError
from ingresslib._load import load_manifests, parse_manifests

MANIFESTS = Path(__file__).parent / "manifests"

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: %s}
spec: {ports: [{port: 80}]}
"""


def load_errors(*paths: str | Path) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        load_manifests(*paths)
    return [str(e) for e in ei.value.errors]


def test_folder_is_read_recursively_yaml_yml_json_only() -> None:
    res = load_manifests(MANIFESTS / "shop")
    assert [i.metadata.ref for i in res.ingresses] == ["shop/web"]
    assert [s.metadata.ref for s in res.services] == ["shop/web"]
    # nested/class.json is a `kind: List` with an IngressClass and an EndpointSlice.
    assert [c.metadata.name for c in res.ingress_classes] == ["nginx"]
    assert res.ingress_classes[0].is_default
    assert [e.service_name for e in res.endpoint_slices] == ["web"]
    # nested/deployment.yml: another kind, kept aside; README.txt: not read at all.
    assert [o["kind"] for o in res.ignored] == ["Deployment"]


def test_unquoted_yaml_timestamps_stay_strings() -> None:
    # kubectl's YAML -> JSON keeps `deployed-at: 2024-01-02T03:04:05Z` a string; so do we.
    res = load_manifests(MANIFESTS / "shop" / "ingress.yaml")
    assert res.ingresses[0].metadata.annotations["deployed-at"] == "2024-01-02T03:04:05Z"
    assert res.ingresses[0].metadata.annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "X-Canary"


def test_every_error_of_every_file_names_the_file() -> None:
    bad = MANIFESTS / "invalid" / "bad-ingress.yaml"
    broken = MANIFESTS / "invalid" / "broken.yaml"
    errs = load_errors(MANIFESTS / "invalid")
    prefix = f"{bad}: Ingress default/bad: spec.rules[0]"
    assert errs[:5] == [
        f'{prefix}.http.paths[0].backend.service.port.number: Invalid value: "80": expected integer, got string',
        f'{prefix}.host: Invalid value: "Shop.example.com": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        f'{prefix}.http.paths[0].path: Invalid value: "api": must be an absolute path',
        f"{prefix}.http.paths[1].pathType: Required value: pathType must be specified",
        f"{bad}: document 2: Invalid value: expected an object, got string",
    ]
    assert len(errs) == 6
    assert errs[5].startswith(f"{broken}: line 6, column ")
    assert "YAML syntax error: " in errs[5]


def test_object_errors_keep_the_contract_object_and_carry_the_source() -> None:
    with pytest.raises(ValidationError) as ei:
        load_manifests(MANIFESTS / "invalid" / "bad-ingress.yaml")
    first = ei.value.errors[0]
    assert isinstance(first, FieldError) and first.source is not None
    assert first.object == "Ingress default/bad"
    assert first.source == str(MANIFESTS / "invalid" / "bad-ingress.yaml")


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "web.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   bad: indent\n")
    with pytest.raises(ValidationError) as ei:
        load_manifests(f)
    (e,) = ei.value.errors
    assert (e.object, e.field, e.type) == (str(f), "line 5, column 7", "Invalid value")
    assert e.detail == "YAML syntax error: mapping values are not allowed in this context"


def test_missing_file_is_a_validation_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    (tmp_path / "ok.yaml").write_text(SERVICE % "web")
    assert load_errors(missing, tmp_path / "ok.yaml", tmp_path / "gone") == [
        f"{missing}: Not found: no such file or directory",
        f"{tmp_path / 'gone'}: Not found: no such file or directory",
    ]


def test_errors_across_files_are_collected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE % "Bad_A")
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "c.yml").write_text("- 1\n- 2\n")
    errs = load_errors(tmp_path)
    assert len(errs) == 3
    assert errs[0].startswith(f'{tmp_path / "a.yaml"}: Service default/Bad_A: metadata.name: Invalid value: "Bad_A": ')
    assert errs[1] == f"{tmp_path / 'b.json'}: line 1, column 2: Invalid value: JSON syntax error: Expecting property name enclosed in double quotes"
    assert errs[2] == f"{tmp_path / 'c.yml'}: document 1: Invalid value: expected an object, got array"


def test_files_in_a_folder_are_sorted_and_hidden_ones_skipped(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yaml").write_text(SERVICE % "three")
    (tmp_path / "a.yml").write_text(SERVICE % "one")
    (tmp_path / "b.yaml").write_text(SERVICE % "two")
    (tmp_path / ".hidden.yaml").write_text("{{ not yaml")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("{{ not yaml")
    res = load_manifests(tmp_path)
    assert [s.metadata.name for s in res.services] == ["one", "three", "two"]


def test_paths_and_folders_mix(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(SERVICE % "one")
    extra = tmp_path / "extra.txt"  # named explicitly: read whatever its suffix
    extra.write_text(SERVICE % "two")
    res = load_manifests(str(tmp_path), extra)
    assert [s.metadata.name for s in res.services] == ["one", "two"]


def test_multi_document_yaml_skips_empty_documents() -> None:
    text = "---\n# only a comment\n---\n" + SERVICE % "a" + "---\n---\n" + SERVICE % "b" + "...\n"
    assert [s.metadata.name for s in parse_manifests(text).services] == ["a", "b"]


def test_parse_json_object_list_and_array() -> None:
    svc = yaml.safe_load(SERVICE % "a")
    assert parse_manifests(json.dumps(svc)).services[0].metadata.name == "a"
    assert len(parse_manifests(json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, svc]})).services) == 2
    assert len(parse_manifests(json.dumps([svc, svc]).encode()).services) == 2


def test_parse_bytes_with_bom() -> None:
    assert parse_manifests(b"\xef\xbb\xbf" + (SERVICE % "a").encode()).services[0].metadata.name == "a"


def test_parse_non_utf8() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_manifests(b"kind: \xff", source="x.yaml")
    assert [str(e) for e in ei.value.errors] == [
        "x.yaml: line 1, column 7: Invalid value: not valid UTF-8: byte 0xFF at offset 6"]


def test_parse_errors_without_source() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_manifests("a: [1\n")
    (e,) = ei.value.errors
    assert e.object == "<text>" and e.field.startswith("line 2, column ")
    with pytest.raises(ValidationError) as ei:
        parse_manifests(SERVICE % "Bad")
    # Without a source, object errors are plain FieldErrors in the contract format.
    assert type(ei.value.errors[0]) is FieldError
    assert str(ei.value.errors[0]).startswith('Service default/Bad: metadata.name: Invalid value: "Bad": ')


def test_documents_without_kind_or_with_bad_items_name_file_and_document() -> None:
    text = "a: 1\n---\nkind: Service\n---\napiVersion: v1\nkind: List\nitems: [1, {kind: Secret}]\n"
    with pytest.raises(ValidationError) as ei:
        parse_manifests(text, source="x.yaml")
    assert [str(e) for e in ei.value.errors] == [
        "x.yaml: document 1: kind: Required value: every object needs `kind` and `apiVersion`",
        "x.yaml: document 2: apiVersion: Required value: every object needs `kind` and `apiVersion`",
        "x.yaml: document 3: items[0]: Invalid value: expected an object, got integer",
        "x.yaml: document 3: items[1]: apiVersion: Required value: every object needs `kind` and `apiVersion`",
    ]


def test_parse_with_source_names_it() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_manifests(SERVICE % "Bad", source="<stdin>")
    assert str(ei.value).startswith('<stdin>: Service default/Bad: metadata.name: Invalid value: "Bad": ')


def test_empty_input_is_empty_resources() -> None:
    res = parse_manifests("")
    assert res.ingresses == () and res.services == () and res.ignored == ()


def test_pure_python_loader_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib

    f = tmp_path / "web.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   bad: indent\n")
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    try:
        pure = importlib.reload(_load)
        assert issubclass(pure._Loader, yaml.SafeLoader)
        assert not issubclass(pure._Loader, yaml.CSafeLoader)
        assert pure.parse_manifests(SERVICE % "a").services[0].metadata.name == "a"
        with pytest.raises(ValidationError) as ei:
            pure.load_manifests(f)
        (e,) = ei.value.errors
        assert e.field == "line 5, column 7"
        assert e.detail == "YAML syntax error: mapping values are not allowed here"
    finally:
        monkeypatch.undo()
        importlib.reload(_load)
    assert issubclass(_load._Loader, yaml.CSafeLoader) == bool(yaml.__with_libyaml__)


def test_c_loader_is_used_when_available() -> None:
    if yaml.__with_libyaml__:
        assert issubclass(_load._Loader, yaml.CSafeLoader)
    else:
        assert issubclass(_load._Loader, yaml.SafeLoader)
    # Safe: no arbitrary Python objects.
    with pytest.raises(ValidationError):
        parse_manifests("!!python/object/apply:os.system ['true']")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 30000,              # flow YAML, unterminated
    "[" * 30000 + "]" * 30000,        # JSON-looking, valid
    '{"a":' * 30000 + "1" + "}" * 30000,
    "a:\n" + "".join(" " * i + "- \n" for i in range(600)),  # block sequences
])
def test_nesting_past_the_limit_is_an_error_not_a_crash(text: str) -> None:
    # PyYAML's C composer recursed in C once per level: 30,000 levels killed the process
    # (SIGSEGV, exit 139); json raised RecursionError. Run in a child process, so that a
    # regression fails this test instead of killing the suite.
    import subprocess
    import sys

    code = ("import sys, ingresslib\n"
            "try:\n"
            "    ingresslib.parse_manifests(sys.stdin.read())\n"
            "except ingresslib.ValidationError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-500:]
    # PyYAML 6.0.4 refuses flow nesting past 1,000 levels in its own scanner, which reads an
    # unterminated flow ahead before ingresslib's bound sees its events: its message then,
    # still a ValidationError naming the line and column.
    assert ("nested more than 500 levels deep" in out.stdout
            or "YAML syntax error: exceeded maximum nesting depth" in out.stdout), out.stdout


def test_deep_but_allowed_nesting_and_long_lines_still_load() -> None:
    # 400 levels (under the limit) parse; a long line makes the cheap bound fail, so the
    # event pass runs, and must let an ordinary manifest through.
    deep = "a: " + "[" * 400 + "]" * 400
    with pytest.raises(ValidationError) as info:
        parse_manifests(deep)
    assert "nested more than" not in str(info.value)
    long_value = "x" * 2000
    res = parse_manifests(f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    example.com/long: "{long_value}"
spec:
  defaultBackend:
    service: {{name: web, port: {{number: 80}}}}
""")
    assert res.ingresses[0].metadata.annotations["example.com/long"] == long_value
