"""Session 24, the lead's own fixes."""

from __future__ import annotations

import pytest

from ingresslib import Resources, ValidationError


@pytest.mark.parametrize("key", ["\n", "a\rb", "\x00", "\x7f"])
def test_a_map_key_with_a_control_character_is_one_line_of_the_error(key: str) -> None:
    # A Secret's data (or stringData) key holding "\n" made "data[<newline>]": an error over
    # two lines (found by test_validate_review's mutation test). The key is escaped in str()
    # as the value is; the structured field keeps it as given.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
              "type": "kubernetes.io/tls",
              "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}, "stringData": {key: "x"}}
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([secret])
    (err,) = [e for e in info.value.errors if e.field.startswith("data[")]
    assert err.field == f"data[{key}]"
    assert "\n" not in str(err) and "\r" not in str(err) and "\x00" not in str(err)
    assert str(info.value).count("\n") == len(info.value.errors) - 1
