"""Review of f5df833 ($KUBECONFIG naming several files) and 72e3876 (lone surrogates in a
Secret's stringData, str/int subclasses), session 20 (R20a).

Guards of what the review checked and found right, each against its source:

- client-go's loader.go ``ResolveLocalPaths``: "base, err := filepath.Abs(filepath.Dir(
  cluster.LocationOfOrigin))", ``LocationOfOrigin`` being the file name as ``$KUBECONFIG``
  gives it: a symbolic link's own folder, not its target's.
- Go's encoding/json ``unquote``: a ``\\uD8xx`` escape followed by a ``\\uDCxx`` one is one
  character ("A valid pair; consume"), any other surrogate is U+FFFD ("Invalid surrogate; fall
  back to replacement rune"), one per escape.
- ``targetPort: true`` stays refused now that int subclasses are taken (bool is one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import ingresslib
from ingresslib._models import go_utf8

# --- $KUBECONFIG: a symbolic link's relative paths --------------------------------------------


@pytest.mark.skipif(os.pathsep != ":" or not hasattr(os, "symlink"), reason="POSIX links")
def test_a_symlinked_kubeconfig_reads_relative_paths_from_the_links_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lightkube = pytest.importorskip("lightkube")
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import load_kube_config

    def no_service_account(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("not in a pod")

    monkeypatch.setattr(lightkube.KubeConfig, "from_service_account", no_service_account)
    target = tmp_path / "store" / "deep" / "real.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                               "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"tokenFile": "../tok"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    link = tmp_path / "home" / "kube" / "config"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    monkeypatch.setenv("KUBECONFIG", f"{link}:{tmp_path / 'absent.yaml'}")
    config = load_kube_config(context="x")
    assert config.cluster.certificate_auth == str(tmp_path / "home" / "kube" / "ca.crt")
    assert config.user.token_file == str(tmp_path / "home" / "tok")


# --- go_utf8: Go's reading of the escapes the client sends -------------------------------------


def _go_unquote(text: str) -> str:
    """What the API server stores for ``text`` sent as json.dumps sends it (every code unit
    outside the BMP or a surrogate written as a \\u escape): Go's decodeState.unquote."""
    escaped = json.dumps(text)[1:-1]
    out: list[str] = []
    i = 0
    # Walk the escaped form: json.dumps (ensure_ascii) writes every non-ASCII unit as \uXXXX.
    while i < len(escaped):
        if escaped.startswith("\\u", i):
            u = int(escaped[i + 2:i + 6], 16)
            if 0xD800 <= u < 0xDC00 and escaped.startswith("\\u", i + 6):
                low = int(escaped[i + 8:i + 12], 16)
                if 0xDC00 <= low < 0xE000:
                    out.append(chr(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
            out.append("\ufffd" if 0xD800 <= u < 0xE000 else chr(u))
            i += 6
        elif escaped[i] == "\\":
            out.append(json.loads(f'"{escaped[i:i + 2]}"'))
            i += 2
        else:
            out.append(escaped[i])
            i += 1
    return "".join(out)


_UNITS = st.sampled_from(["a", "\u00e9", "\U0001f600", "\ud83d", "\ude00", "\udce9", "\ud800",
                          "\udfff", "\ufffd", '"', "\\"])


@given(st.lists(_UNITS, max_size=8).map("".join))
def test_go_utf8_is_what_go_stores_for_the_escapes_json_dumps_writes(text: str) -> None:
    assert go_utf8(text) == _go_unquote(text).encode()


@given(st.text())
def test_go_utf8_of_text_without_surrogates_is_its_utf8(text: str) -> None:
    assert go_utf8(text) == text.encode()


@pytest.mark.parametrize(("text", "stored"), [
    ("\ud83d\ude00", "\U0001f600"),          # a pair as two code points: one character
    ("x\ud83d", "x\ufffd"),                  # a high surrogate at the end
    ("\ude00\ud83d", "\ufffd\ufffd"),        # low then high: two
    ("\ud83d\ud83d\ude00", "\ufffd\U0001f600"),  # a high one, then a pair
    ("\ud83dA", "\ufffdA"),                  # the character after a lone one is kept
])
def test_go_utf8_named_cases(text: str, stored: str) -> None:
    assert go_utf8(text) == stored.encode() == _go_unquote(text).encode()


# --- int subclasses: bool is one, and stays refused ---------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_target_port_or_annotation_stays_refused(value: bool) -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": value}]}}
    with pytest.raises(ingresslib.ValidationError, match="targetPort.*got boolean"):
        ingresslib.Resources.from_dicts([doc])
    doc["spec"] = {"ports": [{"port": 80}]}
    doc["metadata"] = {"name": "web", "annotations": {"a": value}}
    with pytest.raises(ingresslib.ValidationError, match=r"annotations\[a\].*got boolean"):
        ingresslib.Resources.from_dicts([doc])
