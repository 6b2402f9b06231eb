"""Small open items of session 21 (L21).

1. ``Resources.from_dicts`` kept lone surrogates (``"\\udce9"``: a str out of ``json.loads`` of
   that escape, or text decoded with ``surrogateescape``) in every string field but the three
   sessions 19-20 fixed one by one. The API server (Go's encoding/json) stores U+FFFD for each,
   as a JSON manifest already reads (``_json_manifests._go_surrogates``), and a lone surrogate
   raises UnicodeEncodeError wherever the text is encoded later (a header, a log line, stdout).
   The decoder now reads every string (fields, map keys and values, unknown field names) as the
   API server stores it: ``from_dicts`` of an object equals ``from_dicts`` of the object with
   each string replaced by ``go_utf8(s).decode()``, and ``parse_manifests`` of its JSON.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime
import dataclasses
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from _budget import examples  # noqa: E402
from _proxy_harness import ProxyPair  # noqa: E402

import ingresslib  # noqa: E402
from ingresslib import Resources, Router, RouteTable, ValidationError, parse_manifests  # noqa: E402
from ingresslib._accesslog import AccessLogFormatter, access_fields, format_line  # noqa: E402
from ingresslib._explain import _json, check_main, explain_url, render_text  # noqa: E402
from ingresslib._models import go_utf8  # noqa: E402

_P = "nginx.ingress.kubernetes.io/"


def _objects() -> list[dict[str, Any]]:
    """Every kind the decoder reads, with most of their string fields set (valid: it routes)."""
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx", "annotations": {
             "ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
             "apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Cluster"}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                      "resourceVersion": "7", "creationTimestamp": "2024-01-02T03:04:05Z",
                      "labels": {"app": "web"},
                      "annotations": {_P + "upstream-vhost": "up.example",
                                      _P + "x-forwarded-prefix": "/pre",
                                      _P + "affinity": "cookie",
                                      _P + "session-cookie-name": "sticky",
                                      _P + "permanent-redirect-code": "308",
                                      "note": "free text"}},
         "spec": {"ingressClassName": "nginx",
                  "tls": [{"hosts": ["a.example"], "secretName": "certs"}],
                  "defaultBackend": backend,
                  "rules": [
                      {"host": "a.example", "http": {"paths": [
                          {"path": "/", "pathType": "Prefix", "backend": backend},
                          {"path": "/api", "pathType": "ImplementationSpecific", "backend": {
                              "service": {"name": "web", "port": {"name": "http"}}}},
                          {"path": "/res", "pathType": "Exact", "backend": {"resource": {
                              "apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}}]}},
                      {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                           "backend": backend}]}}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web-canary", "namespace": "default", "annotations": {
             _P + "canary": "true", _P + "canary-by-header": "X-Canary",
             _P + "canary-by-header-pattern": "v.*", _P + "upstream-hash-by": "$request_uri"}},
         "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example", "http": {
             "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                 "service": {"name": "other", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [
             {"name": "http", "port": 80, "targetPort": "web-http", "protocol": "TCP",
              "appProtocol": "http"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True},
                        "hostname": "pod-a", "nodeName": "node-1", "zone": "z1"}],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other"},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "other"},
         "subsets": [{"addresses": [{"ip": "10.0.1.1", "hostname": "pod-b", "nodeName": "n2"}],
                      "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]}]},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "certs"},
         "type": "Opaque", "data": {"tls.crt": "Y2VydA=="}, "stringData": {"tls.key": "key"}},
    ]


def _sites(node: Any, out: list[tuple[Any, Any, bool]]) -> list[tuple[Any, Any, bool]]:
    """Every place a string is written in ``node``: (container, key or index, is a key)."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k, True))
            if isinstance(v, str):
                out.append((node, k, False))
            else:
                _sites(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, str):
                out.append((node, i, False))
            else:
                _sites(v, out)
    return out


def _inject(objs: list[dict[str, Any]], site: int, text: str, at: int, replace: bool) -> None:
    container, key, is_key = _sites(objs, [])[site]
    old = key if is_key else container[key]
    at = min(at, len(old))
    new = text if replace else old[:at] + text + old[at:]
    if not is_key:
        container[key] = new
    elif new not in container:
        # Rebuilt in the same order, the key renamed in place.
        items = [(new if k == key else k, v) for k, v in container.items()]
        container.clear()
        container.update(items)


def _as_stored(node: Any) -> Any:
    """``node`` with every string as the API server stores it."""
    if isinstance(node, str):
        return go_utf8(node).decode()
    if isinstance(node, dict):
        return {_as_stored(k): _as_stored(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_stored(v) for v in node]
    return node


_KINDS = ("ingresses", "ingress_classes", "services", "endpoint_slices", "endpoints", "secrets")


def _models(res: Resources) -> tuple[Any, ...]:
    return tuple(getattr(res, name) for name in _KINDS)


def _strings(value: Any) -> Iterator[str]:
    """Every str held by a model (fields, map keys and values, tuples)."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _strings(v)
    elif hasattr(value, "items"):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


def _decoded(build: Callable[[], Resources]) -> Resources | list[tuple[Any, ...]]:
    try:
        return build()
    except ValidationError as exc:
        str(exc).encode()  # the message as a command prints it
        # (An object without kind is "object 1" of a list, "document 1" of a file.)
        return [_as_object(e.object, e.field) + (e.type, e.detail, e.value) for e in exc.errors]


def _as_object(obj: str, field: str) -> tuple[str, str]:
    # parse_manifests names text without a source "<text>": "<text>: document 1: kind: ...".
    if obj == "<text>" and field.startswith("document "):
        obj, _, field = field.partition(": ")
    return re.sub(r"^document ", "object ", obj), field


def _warnings(res: Resources) -> list[tuple[str, str, str]]:
    return [(w.object, w.field, w.type) for w in res.warnings]


def _use(res: Resources) -> None:
    """What serve, explain and check do with ``res``; every text they write is encoded."""
    router = Router(res, seed=0)
    for path in ("/", "/api/x", "/res"):
        router.route("GET", "a.example", path, headers=[("X-Canary", "v1")])
    pair = ProxyPair(router=Router(res, seed=0))
    for target in (b"/", b"/api/x", b"/pre"):
        pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: a.example\r\nX-Canary: v2\r\n\r\n")
    assert pair.records
    text, as_json = AccessLogFormatter("text"), AccessLogFormatter("json")
    for rec in pair.records:
        fields = access_fields(rec, now=0.0)
        format_line(fields).encode()
        entry = logging.LogRecord("ingresslib.access", logging.INFO, __file__, 0, "%s",
                                  (format_line(fields),), None)
        entry.access = fields
        text.format(entry).encode()
        as_json.format(entry).encode()
    table = RouteTable.build(res)
    for url in ("https://a.example/api/x", "http://a.example/res", "http://b.example/"):
        out = explain_url(table, url, res=res, headers=[("X-Canary", "v1")])
        _json(out).encode()
        render_text(out).encode()
    args = argparse.Namespace(files=["<given>"], output="json", ingress_class=None,
                              controller=None)
    stdout = io.StringIO()
    with mock.patch("ingresslib._explain._load_with_warnings", return_value=(res, [])), \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        assert check_main(args) == 0
    assert json.loads(stdout.getvalue().encode())["ok"] is True


def test_the_fixture_routes_and_every_site_is_visited() -> None:
    res = Resources.from_dicts(_objects())
    d = Router(res, seed=0).route("GET", "a.example", "/api/x")
    assert d is not None and d.endpoint == ("10.0.0.1", 8080)
    assert len(_sites(_objects(), [])) > 150
    _use(res)


_SURROGATE_TEXT = st.text(st.sampled_from(["\ud800", "\udce9", "\udfff", "\ud83d", "\ude00",
                                           "a", "\u00e9"]), min_size=1, max_size=4).filter(
    lambda s: any("\ud800" <= c <= "\udfff" for c in s))


@settings(max_examples=examples(0.2))
@given(site=st.integers(0, len(_sites(_objects(), [])) - 1), text=_SURROGATE_TEXT,
       at=st.integers(0, 40), replace=st.booleans())
def test_a_lone_surrogate_in_any_string_reads_as_the_api_server_stores_it(
        site: int, text: str, at: int, replace: bool) -> None:
    objs = _objects()
    _inject(objs, site, text, at, replace)
    given_ = _decoded(lambda: Resources.from_dicts(objs))
    stored = _decoded(lambda: Resources.from_dicts(_as_stored(objs)))
    sent = _decoded(lambda: parse_manifests(json.dumps(objs)))
    if isinstance(given_, list):
        assert given_ == stored == sent
        return
    assert isinstance(stored, Resources) and isinstance(sent, Resources)
    assert _models(given_) == _models(stored) == _models(sent)
    assert _warnings(given_) == _warnings(sent)
    for s in _strings(_models(given_)):
        s.encode()
    for w in given_.warnings:
        str(w).encode()
    _use(given_)


# --- the decoder's string reads, one by one ---------------------------------------------------


def _ingress(annotations: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "a", "annotations": annotations},
            "spec": {"rules": [{"host": "a.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": "s", "port": {"number": 80}}}}]}}], **extra}}


@pytest.mark.parametrize("value, stored", [
    ("x\udce9y", "x\ufffdy"),
    ("\ud800\ud800", "\ufffd\ufffd"),
    ("\ud83d\ude00", "\U0001F600"),   # a pair written as two code points: one character
    ("caf\u00e9", "caf\u00e9"),
])
def test_an_annotation_value_reads_as_go_decodes_its_escapes(value: str, stored: str) -> None:
    res = Resources.from_dicts([_ingress({"note": value})])
    assert dict(res.ingresses[0].metadata.annotations) == {"note": stored}


def test_two_keys_that_are_one_key_once_stored_are_a_duplicate_field() -> None:
    # "k\ud800" and "k\udfff" are both "k\ufffd" to the API server: one key written twice
    # (the JSON manifest of the same dict says so), the last value kept. (No annotation key
    # holds a U+FFFD: the key is refused, by its stored name.)
    objs = [_ingress({"k\ud800": "1", "k\udfff": "2"})]
    builds: list[Callable[[], Resources]] = [lambda: Resources.from_dicts(objs),
                                             lambda: parse_manifests(json.dumps(objs))]
    for build in builds:
        with pytest.raises(ValidationError) as info:
            build()
        assert [(e.field, e.value) for e in info.value.errors] == [
            ("metadata.annotations", "k\ufffd")]
        assert [(w.field, w.type) for w in info.value.warnings] == [
            ("metadata.annotations[k\ufffd]", "duplicate field")]
        str(info.value).encode()


def test_an_unknown_field_with_a_lone_surrogate_is_warned_about_as_stored() -> None:
    res = Resources.from_dicts([_ingress({}, **{"x\udce9": 1})])
    assert _warnings(res) == [("Ingress default/a", "spec.x\ufffd", "unknown field")]
    str(res.warnings[0]).encode()


def test_an_invalid_value_with_a_lone_surrogate_is_reported_as_stored() -> None:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([_ingress({}, ingressClassName="a\udce9")])
    (err,) = info.value.errors
    assert err.field == "spec.ingressClassName" and err.value == "a\ufffd"
    str(info.value).encode()


# --- 2. an ignored object's buffer values keep their type -------------------------------------
#
# The ignored objects' copy (``_decode._copy_tree``) began with a marshal round trip, which
# writes every buffer object as bytes: a bytearray, a memoryview, an array came back as
# ``bytes`` (an ``array('i', [1])`` as its four raw bytes), unless something else in the
# object made marshal refuse it, when they came back as they were given.


def _config_map(value: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "binaryData": {"k": value}, "data": {"n": "1"}}


def test_an_ignored_objects_bytearray_and_array_are_copied_as_they_are() -> None:
    for value in (bytearray(b"ab"), array.array("i", [1, 2])):
        obj = _config_map(value)
        (kept,) = Resources.from_dicts([obj]).ignored
        got = kept["binaryData"]["k"]
        assert type(got) is type(value) and got == value and got is not value
        assert kept == obj and kept["data"] is not obj["data"]


def test_an_ignored_objects_memoryview_is_the_callers() -> None:
    view = memoryview(b"ab")
    (kept,) = Resources.from_dicts([_config_map(view)]).ignored
    assert kept["binaryData"]["k"] is view


def test_an_ignored_objects_shared_parts_stay_shared_in_the_copy() -> None:
    shared = {"a": [1, 2]}
    loop: list[Any] = []
    loop.append(loop)
    obj = _config_map(b"raw")
    obj["data"] = {"x": shared, "y": shared, "loop": loop}
    (kept,) = Resources.from_dicts([obj]).ignored
    data = kept["data"]
    assert data["x"] is data["y"] and data["x"] == shared and data["x"] is not shared
    assert data["loop"][0] is data["loop"] and data["loop"] is not loop
    assert kept["binaryData"]["k"] == b"raw"


# --- 3. explain's tls block says when the certificate is expired or not yet valid -------------
#
# serve still answers with such a certificate (as ingress-nginx does; check warns), and the
# client refuses the handshake: explain said "valid until <a past date>".


def _tls_objects(crt: bytes, key: bytes) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "a"},
         "spec": {"tls": [{"hosts": ["a.test"], "secretName": "tls-a"}],
                  "rules": [{"host": "a.test", "http": {"paths": [{
                      "path": "/", "pathType": "Prefix", "backend": {
                          "service": {"name": "s", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls-a"},
         "type": "kubernetes.io/tls",
         "stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}},
    ]


@pytest.mark.parametrize("days, validity, words", [
    ((-30, -1), "expired", "expired on "),
    ((5, 400), "not yet valid", "not yet valid, valid until "),
    ((-1, 400), "valid", "valid until "),
])
def test_explain_says_whether_the_certificate_is_valid_now(
        days: tuple[int, int], validity: str, words: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    trustme = pytest.importorskip("trustme")
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = trustme.CA().issue_cert("a.test", not_before=now + datetime.timedelta(days=days[0]),
                                   not_after=now + datetime.timedelta(days=days[1]))
    objs = _tls_objects(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())
    res = Resources.from_dicts(objs)
    out = explain_url(RouteTable.build(res), "https://a.test/", res=res)
    not_after = (now + datetime.timedelta(days=days[1])).replace(microsecond=0)
    assert out["tls"] == {"sni": "a.test", "secret": "default/tls-a",
                          "not_after": not_after.isoformat(), "validity": validity}
    line = (f"  TLS (SNI a.test): the certificate of Secret default/tls-a "
            f"({words}{not_after.isoformat()}")
    assert line in render_text(out)
    # The command's JSON: the same block.
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    from ingresslib._cli import main
    main(["explain", "-f", str(f), "-o", "json", "https://a.test/"])
    assert json.loads(capsys.readouterr().out)["tls"]["validity"] == validity


def test_explain_gives_no_validity_for_the_default_certificate() -> None:
    res = Resources.from_dicts(_tls_objects(b"", b""))
    out = explain_url(RouteTable.build(res), "https://a.test/", res=res)
    assert out["tls"] == {"sni": "a.test", "secret": None, "not_after": None, "validity": None}


# --- 4. AuthSecrets.refresh after a status write -------------------------------------------
#
# A status write (``status.loadBalancer``) moves an Ingress's resourceVersion alone: the store
# keeps the new object without a new generation, but ``refresh`` compared the Ingress tuples
# with ``==`` and worked the named Secrets out again (the served Ingresses sorted, off the
# loop: about 14 ms at 10,000 Ingresses) on every such write of any Ingress.


class _CountingWatch:
    """An ``AuthWatch`` that counts ``refs`` calls (nothing is listed: no get is made)."""

    def __init__(self) -> None:
        self.calls = 0

    def refs(self, res: Resources) -> frozenset[tuple[str, str]]:
        from ingresslib._kube_auth import auth_secret_refs

        self.calls += 1
        return auth_secret_refs(res.ingresses)

    def refs_failed(self, exc: Exception) -> None:
        raise AssertionError(exc)

    def wake(self) -> None:
        pass


def _basic_ingress(rv: str, secret: str = "users") -> dict[str, Any]:
    obj = _ingress({_P + "auth-type": "basic", _P + "auth-secret": secret})
    obj["metadata"]["resourceVersion"] = rv
    return obj


def test_a_status_write_does_not_work_the_auth_secrets_out_again() -> None:
    from ingresslib._kube_auth import AuthSecrets

    async def run() -> None:
        store = ingresslib.ResourceStore()
        watch = _CountingWatch()
        auth = AuthSecrets(store, watch)  # type: ignore[arg-type]
        store.apply("ADDED", _basic_ingress("1"))
        await auth.refresh()
        assert watch.calls == 1 and auth.started.is_set()
        generation = store.generation
        store.apply("MODIFIED", _basic_ingress("2"))  # the status write
        assert store.generation == generation
        assert store.snapshot().ingresses[0].metadata.resource_version == "2"
        await auth.refresh()
        await auth.refresh()
        assert watch.calls == 1
        store.apply("MODIFIED", _basic_ingress("3", secret="others"))  # a real change
        await auth.refresh()
        assert watch.calls == 2
        assert store.snapshot().ingresses[0].metadata.resource_version == "3"

    asyncio.run(run())
