"""Review of the session-16 loader change (68ff8c8: JSON nesting bounded on the parsed objects,
``serve --config`` read with the manifests' loader).

- JSON nesting: json's C scanner stops at Python's recursion limit, not at the end of the C
  stack. In a program that raised the limit (``sys.setrecursionlimit``), JSON 200,000 levels
  deep crashed the whole process (SIGSEGV) now that json sees the text first; before 68ff8c8
  libyaml's event pass refused it first.
- JSON keys written twice: the list of repeated keys was searched at each repeat, time in n
  squared: a 2 MB object of 100,000 keys each written twice took about a minute to parse.
- ``serve --config``: a ConfigMap ``*.json`` file starting with a UTF-8 byte order mark (what
  some Windows editors write; kubectl reads past it) was refused by json ("Expecting value")
  once it no longer went through PyYAML, which skipped it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingresslib._config import load_config
from ingresslib._decode import Collector
from ingresslib._json_manifests import _repeated_pair_keys
from ingresslib._load import _parse_into

# --- nesting with a raised recursion limit --------------------------------------------------

_DEEP_SCRIPT = textwrap.dedent("""
    import sys
    sys.setrecursionlimit(1_000_000)
    from ingresslib import ValidationError, load_manifests, parse_manifests
    deep = "[" * 200_000 + "]" * 200_000
    cases = [
        ("file", lambda: load_manifests(sys.argv[1])),
        ("text", lambda: parse_manifests(deep, source="t")),
        ("stream", lambda: parse_manifests('{"a": 1}\\n' + deep, source="t")),
    ]
    for name, load in cases:
        try:
            load()
        except ValidationError as exc:
            print(name, [str(e) for e in exc.errors], flush=True)
""")


def test_deep_json_with_a_raised_recursion_limit_is_refused_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 200_000 + "]" * 200_000)
    done = subprocess.run([sys.executable, "-c", _DEEP_SCRIPT, str(f)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    nested = "Invalid value: nested more than 500 levels deep"
    assert done.stdout.splitlines() == [
        f"file ['{f}: line 1, column 501: {nested}']",
        f"text ['t: line 1, column 501: {nested}']",
        f"stream ['t: line 2, column 501: {nested}']",
    ]


# --- keys written twice in JSON ----------------------------------------------------------------


class _CountedKey(str):
    """A key that counts how often it is compared for equality."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountedKey.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_json_object_with_many_keys_written_twice_is_read_in_linear_work() -> None:
    # The keys written twice were searched for in a list at each repeat: an object of n keys
    # written twice took work in n squared (100,000 keys: 85 s). Counted, not timed: the key
    # comparisons made while naming them.
    n = 2_000
    keys = [_CountedKey(f"k{i}") for i in range(n)]
    pairs = [(k, v) for k in keys for v in ("a", "b")]
    _CountedKey.compared = 0
    assert _repeated_pair_keys(pairs) == keys
    assert _CountedKey.compared <= 4 * n, _CountedKey.compared  # in n squared: ~2,000,000
    # And the parse as a whole names them.
    data = ",".join(f'"k{i}": "a", "k{i}": "b"' for i in range(n))
    text = ('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, '
            f'"data": {{{data}}}}}')
    c = Collector(copy_ignored=False)
    _parse_into(text, "cm.json", c, is_json=True)
    assert not c.errors
    assert c.ignored[0]["data"]["k7"] == "b"


def test_repeated_json_keys_are_each_named_once_in_the_order_written() -> None:
    pairs = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5), ("c", 6), ("b", 7)]
    assert _repeated_pair_keys(pairs) == ["a", "c", "b"]
    text = json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    text = text.replace('"name": "s"', '"name": "s", "x": 1, "name": "s", "x": 2, "name": "s"')
    c = Collector(copy_ignored=False)
    _parse_into(text, "s.json", c, is_json=True)
    assert [str(w) for w in c.warnings] == [
        's.json: Service default/s: unknown field "metadata.x"',
        's.json: Service default/s: duplicate field "metadata.name"',
        's.json: Service default/s: duplicate field "metadata.x"',
    ]


# --- numbers int() will not convert -----------------------------------------------------------


def test_a_number_of_more_digits_than_int_converts_is_an_error_not_a_traceback(
        tmp_path: Path) -> None:
    # Before: ValueError "Exceeds the limit (4300 digits) for integer string conversion" out
    # of the load (json and the YAML resolver both call int()): `check` printed a traceback.
    from ingresslib import ValidationError, load_manifests, parse_manifests

    digits = "1" * 5000
    svc = '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": %s}'
    out_of_range = f"{digits[:20]}...: number out of range (5000 characters)"
    f = tmp_path / "s.json"
    cases = [
        (svc % f'{{"ports": [{{"port": {digits}}}]}}', "s.json"),
        ('{"x": 1}\n' + svc % f'{{"ports": [{{"port": 80}}], "x": {digits}}}', "s.json"),
        (svc % f'{{"ports": [{{"port": {digits}}}]}}', "s.yaml"),  # JSON-looking: refused as JSON
        (f"apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n  x: {digits}\n",
         "s.yaml"),
        # (a key: explicit, as an implicit one is at most 1,024 characters long)
        (f"apiVersion: v1\nkind: Service\nmetadata:\n  labels:\n    ? {digits}\n    : a\n",
         "s.yaml"),
    ]
    for text, name in cases:
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(ValidationError) as info:
            load_manifests(f)
        at = text.index(digits)
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        # (session 17: no "JSON syntax error: " before it in a *.json file: valid JSON holding
        # a number Go cannot read is no syntax error)
        assert [str(e) for e in info.value.errors] == [
            f"{f}: line {line}, column {col}: Invalid value: {out_of_range}"], text[:60]
    # A negative one is out of float64's range too: go-yaml's string, as any such plain scalar.
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: s, annotations: {{a: -{digits}}}}}\n"
    text += "spec: {ports: [{port: 80}]}\n"
    assert parse_manifests(text).services[0].metadata.annotations["a"] == "-" + digits


# --- serve --config ------------------------------------------------------------------------------


def test_a_configmap_json_file_with_a_utf8_byte_order_mark_loads(tmp_path: Path) -> None:
    f = tmp_path / "cm.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"proxy-read-timeout": "30"}}).encode())
    assert load_config(f).settings.proxy_read_timeout == 30.0


# --- duplicate-field warnings name the line (task 2) --------------------------------------------

_TWO_DOCS = """\
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: b
  labels:
    app: x
    app: y
    tier: t
    app: z
spec:
  ports: [{port: 80}]
  ports: [{port: 81}]
"""


def test_a_yaml_key_written_twice_warns_with_the_line_of_its_last_writing() -> None:
    from ingresslib import parse_manifests

    res = parse_manifests(_TWO_DOCS, source="s.yaml")
    # Lines of the file (the second document starts at line 6), the last of three writings.
    assert [str(w) for w in res.warnings] == [
        's.yaml: line 14: Service default/b: duplicate field "metadata.labels.app"',
        's.yaml: line 17: Service default/b: duplicate field "spec.ports"',
    ]
    assert [w.line for w in res.warnings] == [14, 17]  # type: ignore[attr-defined]
    assert dict(res.services[1].metadata.labels) == {"app": "z", "tier": "t"}
    # A text without a file name: no line either (as before).
    assert [str(w) for w in parse_manifests(_TWO_DOCS).warnings] == [
        'Service default/b: duplicate field "metadata.labels.app"',
        'Service default/b: duplicate field "spec.ports"',
    ]


def test_json_duplicates_and_unknown_fields_carry_no_line() -> None:
    from ingresslib import parse_manifests

    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "name": "s"},\n'
            ' "spec": {"ports": [{"port": 80}], "x": 1}}')
    warnings = parse_manifests(text, source="s.json").warnings
    assert [str(w) for w in warnings] == [
        's.json: Service default/s: unknown field "spec.x"',
        's.json: Service default/s: duplicate field "metadata.name"',
    ]
    assert [w.line for w in warnings] == [None, None]  # type: ignore[attr-defined]
    yaml_text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], x: 1}\n"
    assert [str(w) for w in parse_manifests(yaml_text, source="s.yaml").warnings] == [
        's.yaml: Service default/s: unknown field "spec.x"']
