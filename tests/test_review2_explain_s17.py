"""Second review of explain's command-line bytes (R17j, session 17).

Before: a byte of the command line that is not UTF-8 (Python reads argv with surrogateescape:
0xFF is U+DCFF) reached ``-o json`` as a lone surrogate, which ``json.dumps`` writes
``\\udcff``: no Unicode text (RFC 8259 §8.2, "unpredictable"; I-JSON, RFC 7493 §2.1, forbids
it); jq reads it as U+FFFD, the byte lost, and a strict parser refuses the document. The text
output writes the byte ``\\xff``; JSON now does as well. And a lone surrogate that is no argv
byte (a ``\\ud800`` escape in a JSON manifest, echoed in the canary rules) ended the text output
in a UnicodeEncodeError traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import WEB, prod_ingress  # noqa: E402

MANIFESTS = prod_ingress("open", "open.test", "{}") + WEB
_XFF = "\udcff"  # the byte 0xFF of argv, as Python decodes it


def _strings(doc: Any) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


def _unicode(doc: Any) -> None:
    for s in _strings(doc):
        s.encode("utf-8")  # strict: a lone surrogate raises


@pytest.mark.parametrize(("args", "key", "shown"), [
    ([f"http://open.test/{_XFF}"], "url", "http://open.test/\\xff"),
    (["http://open.test/", "-H", f"Host: open.test{_XFF}"], "host", "open.test\\xff"),
    ([f"http://u{_XFF}:p@open.test/"], "url", "http://u\\xff:***@open.test/"),
    # A usage error's document as well.
    ([f"http://open{_XFF}.test/"], "url", "http://open\\xff.test/"),
])
def test_json_output_is_unicode_text_with_the_byte_written_as_the_text_output_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], key: str,
        shown: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFESTS)
    main(["explain", "-f", str(path), *args, "-o", "json"])
    out = capsys.readouterr().out
    doc = json.loads(out)
    _unicode(doc)
    assert doc[key] == shown
    if key == "url" and doc["ok"]:  # the text output's first line: the same
        main(["explain", "-f", str(path), *args])
        assert capsys.readouterr().out.splitlines()[0] == shown


CANARY = """\
{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
 "metadata": {"name": "canary", "namespace": "prod", "annotations": {
   "nginx.ingress.kubernetes.io/canary": "true",
   "nginx.ingress.kubernetes.io/canary-by-header": "X-C",
   "nginx.ingress.kubernetes.io/canary-by-header-value": "a\\ud800"}},
 "spec": {"rules": [{"host": "open.test", "http": {"paths": [{"path": "/",
   "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
"""


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_surrogate_from_a_json_manifest_is_printed_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str) -> None:
    (tmp_path / "m.yaml").write_text(MANIFESTS)
    (tmp_path / "c.json").write_text(CANARY)
    code = main(["explain", "-f", str(tmp_path / "m.yaml"), "-f", str(tmp_path / "c.json"),
                 "http://open.test/", "-o", output])
    out = capsys.readouterr().out
    assert code == 0
    if output == "json":
        doc = json.loads(out)
        _unicode(doc)
        # The escape reads as Go's encoding/json reads it (U+FFFD, session 20's L20): what
        # matters here is the answer, not a traceback.
        assert doc["match"]["canary"]["rules"]["header_value"] == "a\ufffd"
    else:
        assert "x-c: a\ufffd" in out


# -- _ipv4: where curl and the WHATWG IPv4 parser differ, explain sends what curl sends --------
# Observed with curl 7.88.1 (--connect-to 127.0.0.1, the Host line of the request): these are
# host names to curl's ipv4_normalize (a trailing dot, "0x" with no digit, an empty part),
# addresses or refused URLs to browsers. A guard: R17g's docstring now states the choice.
@pytest.mark.parametrize(("host", "sent"), [
    ("127.1.", "127.1."),
    ("0x", "0x"),
    ("0x.1", "0x.1"),
    ("1..2", "1..2"),
    ("1.2.3.09", "1.2.3.09"),
    ("127.1", "127.0.0.1"),
])
def test_an_ipv4_like_host_is_sent_as_curl_sends_it(host: str, sent: str) -> None:
    from ingresslib._explain_url import split_url

    assert split_url(f"http://{host}/")[0] == sent
