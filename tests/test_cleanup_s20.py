"""Session 20 clean-ups (L20): ``Router.update`` refuses what is not a ``Resources`` as the
constructor does; ``_read_names_for``'s fallback is reached by a ``ProxySettings`` subclass
with an unhashable field of its own; a TypeError while adding an object is not "expected a
list of objects"; a memoryview or mmap handed to ``from_dicts`` is one error; a lone
surrogate escape anywhere in a JSON manifest reads as Go's encoding/json reads it (U+FFFD)."""

from __future__ import annotations

import asyncio
import json
import mmap
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, strategies as st

import ingresslib._decode as decode_mod
from ingresslib import IngressASGI, Resources, Router, ValidationError, parse_manifests
from ingresslib._asgi_scan import _read_names, _read_names_for
from ingresslib.proxy import ProxySettings

INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: default}
spec:
  rules:
  - host: example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: s, namespace: default}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}]
"""


# --- 1. Router.update type check ----------------------------------------------------------------


class _RecordingLock:
    """Stands in for the router's lock: notes every time ``update`` takes it."""

    def __init__(self) -> None:
        self.entered = 0

    def __enter__(self) -> None:
        self.entered += 1

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("bad", [None, {"kind": "Ingress"}, [], [{"kind": "Ingress"}], "deploy/"],
                         ids=["None", "dict", "empty-list", "list-of-dicts", "path"])
def test_update_refuses_a_non_resources_before_the_lock_and_the_old_state_serves(bad: Any) -> None:
    res = parse_manifests(INGRESS)
    router = Router(res)
    before = router.route("GET", "example.test", "/")
    assert before is not None
    lock = _RecordingLock()
    router._lock = lock  # type: ignore[assignment]
    with pytest.raises(TypeError) as info:
        router.update(bad)
    message = str(info.value)
    assert message.startswith("Router.update takes a Resources (from ingresslib.load_manifests")
    assert f"not {type(bad).__name__} " in message
    if isinstance(bad, str):
        assert "router.update(ingresslib.load_manifests('deploy/'))" in message
    assert lock.entered == 0  # refused before the lock and the state
    assert router.resources is res
    after = router.route("GET", "example.test", "/")
    assert after is not None and after.endpoint == ("10.0.0.1", 80)
    # And a real update still goes through.
    router.update(parse_manifests(INGRESS.replace("10.0.0.1", "10.0.0.2")))
    assert lock.entered == 1
    routed = router.route("GET", "example.test", "/")
    assert routed is not None and routed.endpoint == ("10.0.0.2", 80)


# --- 2. _read_names_for: the fallback is reachable ----------------------------------------------


@dataclass(frozen=True)
class _TaggedSettings(ProxySettings):
    """An embedder's settings with a field of its own: ProxySettings checks (and makes
    hashable) only its own fields, so a list here leaves the instance unhashable."""

    tags: list[str] = field(default_factory=list)


def test_read_names_for_serves_settings_a_subclass_made_unhashable() -> None:
    settings = _TaggedSettings(tags=["blue"])
    with pytest.raises(TypeError):
        hash(settings)
    with pytest.raises(TypeError):
        _read_names(settings, True)  # the cache cannot key on it: the fallback is reached
    for rewrite in (True, False):
        assert _read_names_for(settings, rewrite) == _read_names(ProxySettings(), rewrite)


def test_adapter_answers_with_unhashable_subclass_settings_on_the_general_path() -> None:
    res = parse_manifests(INGRESS)
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    adapter = IngressASGI(res, backends={"default/s": app},
                          settings=_TaggedSettings(tags=["blue"]))
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(m)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    # A bytearray value of a header the scan reads sends the request to the general path
    # (``_read_headers``), which asks ``_read_names_for`` for these settings.
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test"),
                         (b"x-forwarded-for", bytearray(b"192.0.2.7"))]}
    asyncio.run(adapter(scope, receive, send))
    assert sent[0]["status"] == 200
    assert len(seen) == 1


# --- 3. Collector.add_objects: only iter() means "not a list" -----------------------------------


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
           "spec": {"ports": [{"port": 80}]}}


def test_a_type_error_while_adding_an_object_surfaces_as_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a defect inside add")

    monkeypatch.setattr(decode_mod.Collector, "_add_one", broken)
    # Was: ValidationError "input: Invalid value: expected a list of objects, got array".
    with pytest.raises(TypeError, match="a defect inside add"):
        Resources.from_dicts([SERVICE])


def test_a_type_error_from_the_caller_iterator_is_not_got_generator() -> None:
    def objects() -> Iterator[dict[str, Any]]:
        yield SERVICE
        raise TypeError("the caller's own bug")

    # Was: the first object added, then "expected a list of objects, got generator".
    with pytest.raises(TypeError, match="the caller's own bug"):
        Resources.from_dicts(objects())


def test_not_iterable_is_still_one_error() -> None:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts(42)  # type: ignore[arg-type]
    assert [str(e) for e in info.value.errors] == [
        "input: Invalid value: expected a list of objects, got integer"]


# --- 4. memoryview / mmap: one error, as bytes ----------------------------------------------------


def _one_error(objects: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts(objects)
    return [str(e) for e in info.value.errors]


def test_memoryview_of_manifest_text_is_one_error() -> None:
    text = b"apiVersion: v1\nkind: Service\n"
    # Was: one "expected an object, got integer" per byte (29 here).
    assert _one_error(memoryview(text)) == [
        "input: Invalid value: expected a list of objects, got memoryview (manifest text is "
        "read by parse_manifests)"]


def test_mmap_of_a_manifest_file_is_one_error() -> None:
    with tempfile.TemporaryFile() as f:
        f.write(b"apiVersion: v1\nkind: Service\n")
        f.flush()
        with mmap.mmap(f.fileno(), 0) as m:
            # Was: one "expected an object, got bytes" per byte.
            assert _one_error(m) == [
                "input: Invalid value: expected a list of objects, got mmap (manifest text is "
                "read by parse_manifests)"]


# --- 5. JSON: a lone surrogate escape is U+FFFD everywhere -------------------------------------


def _ingress_json(path: str = "/x", host: str = "a.test", note: str = "n",
                  tls_host: str = "a.test") -> str:
    """An Ingress as JSON text; a lone surrogate in an argument is written as its ``\\uXXXX``
    escape (json.dumps's default), as a JSON manifest can carry it."""
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "a", "namespace": "default",
                        "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": note}},
           "spec": {"tls": [{"hosts": [tls_host], "secretName": "t"}],
                    "rules": [{"host": host, "http": {"paths": [
                        {"path": path, "pathType": "Prefix",
                         "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}
    text = json.dumps(doc)
    assert "\\ud" in text or "\\ud" not in path + host + note + tls_host
    return text


def _rule_path(res: Resources, n: int) -> str:
    paths = res.ingresses[n].spec.rules[0].paths
    assert paths and paths[0].path is not None
    return paths[0].path


def test_json_lone_surrogate_in_a_path_is_fffd_and_routes() -> None:
    res = parse_manifests(_ingress_json(path="/caf\udce9"))
    rule_path = _rule_path(res, 0)
    assert rule_path == "/caf\ufffd"  # was "/caf\udce9"
    # The API server stores /caf\ufffd and ingress-nginx routes its UTF-8 escapes.
    decision = Router(res).route("GET", "a.test", "/caf%EF%BF%BD")
    assert decision is not None and decision.match.path == "/caf\ufffd"


def test_json_lone_surrogate_in_an_annotation_value() -> None:
    res = parse_manifests(_ingress_json(note="/x\ud800y"))
    ing = res.ingresses[0]
    assert ing.metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/x\ufffdy"


def test_json_lone_surrogate_in_a_tls_host_item() -> None:
    # A string in an array (spec.tls[0].hosts): read as Go reads it, so the error names it so.
    with pytest.raises(ValidationError) as info:
        parse_manifests(_ingress_json(tls_host="b\udfff.test"))
    text = str(info.value)
    assert "b\ufffd.test" in text and "\\udfff" not in text and "\udfff" not in text


def test_json_lone_surrogate_keys_that_become_one_key_are_one_key() -> None:
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": '
            '"d", "annotations": {"a\\ud800": "1", "a\\udc00": "2"}}, "spec": {"ports": '
            '[{"port": 80}]}}')
    with pytest.raises(ValidationError) as info:
        parse_manifests(text)
    # Go decodes both keys to "a\ufffd": one key (was two errors, one per lone surrogate).
    errors = [e for e in info.value.errors if e.field.startswith("metadata.annotations")]
    assert len(errors) == 1 and '"a\ufffd"' in str(errors[0])


@pytest.mark.parametrize("escaped, expected", [
    ("\\ud83d\\ude00", "\U0001f600"),  # a pair: one character, as before
    ("\\ud800\\u0041", "\ufffdA"),  # a high surrogate then not a low one (Go: U+FFFD, 'A')
    ("\\udc00\\ud800", "\ufffd\ufffd"),  # low then high: two lone ones
    ("\\ud800\\ud800\\udc00", "\ufffd\U00010000"),  # a lone one, then a pair
    ("\\\\udce9", "\\udce9"),  # an escaped backslash: the text "\udce9", no escape
    ("\\uDCE9", "\ufffd"),  # upper-case hex
])
def test_json_surrogate_escapes_read_as_go_reads_them(escaped: str, expected: str) -> None:
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": '
            '"d", "annotations": {"note": "' + escaped + '"}}, "spec": {"ports": '
            '[{"port": 80}]}}')
    res = parse_manifests(text)
    assert res.services[0].metadata.annotations["note"] == expected


def test_json_array_of_documents_with_a_lone_surrogate() -> None:
    # A bare JSON array (each element a document) and a stream: the same reading.
    one = json.loads(_ingress_json(path="/caf\udce9"))
    for text in (json.dumps([one]), json.dumps(one) + "\n" + json.dumps(one)):
        res = parse_manifests(text)
        assert {_rule_path(res, n) for n in range(len(res.ingresses))} == {"/caf\ufffd"}


_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _go_unquote(body: str) -> str:
    """Go's encoding/json ``unquote`` of a valid JSON string body (sigs.k8s.io/json
    internal/golang/encoding/json/decode.go), transcribed: a surrogate escape followed by a
    low surrogate escape is one character, any other surrogate escape U+FFFD."""
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "\\":
            out.append(body[i])
            i += 1
            continue
        if body[i + 1] != "u":
            out.append(_SIMPLE[body[i + 1]])
            i += 2
            continue
        rr = int(body[i + 2:i + 6], 16)
        i += 6
        if 0xD800 <= rr < 0xE000:
            nxt = body[i:i + 6]
            rr1 = int(nxt[2:], 16) if len(nxt) == 6 and nxt[:2] == "\\u" else -1
            if rr < 0xDC00 and 0xDC00 <= rr1 < 0xE000:  # utf16.DecodeRune: a valid pair
                out.append(chr(0x10000 + ((rr - 0xD800) << 10) + (rr1 - 0xDC00)))
                i += 6
                continue
            rr = 0xFFFD  # "Invalid surrogate; fall back to replacement rune."
        out.append(chr(rr))
    return "".join(out)


_TOKENS = st.sampled_from([
    "\\ud800", "\\uDBFF", "\\udc00", "\\uDfFf", "\\ud83d", "\\ude00", "\\u0041", "\\u00e9",
    "\\uffff", "\\ud7ff", "\\ue000", "\\\\", "\\n", "\\\"", "\\/", "u", "d", "8", "a", "é", "😀",
])


@given(st.lists(_TOKENS, max_size=8))
def test_json_strings_decode_as_go_decodes_them(tokens: list[str]) -> None:
    body = "".join(tokens)
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": '
            '"d", "annotations": {"note": "' + body + '"}}, "spec": {"ports": [{"port": 80}]}}')
    res = parse_manifests(text)
    assert res.services[0].metadata.annotations["note"] == _go_unquote(body)


def test_an_error_after_a_rewritten_escape_keeps_its_line_and_column() -> None:
    # The rewrite is six characters for six: json's error positions are the text's.
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": '
            '"d", "annotations": {"note": "\\udce9\\ud800"}}, "spec": {"ports": '
            '[{"port": 1e400}]}}')
    with pytest.raises(ValidationError) as info:
        parse_manifests(text)
    column = text.index("1e400") + 1
    assert [e.field for e in info.value.errors] == [f"line 1, column {column}"]
