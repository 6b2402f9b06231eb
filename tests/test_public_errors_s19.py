"""Session 19, helper L19: clear errors for the names that became public this session
(``ingresslib.proxy.parse_config_data``, ``load_config``) and for ``IngressASGI``'s arguments.

1. ``parse_config_data`` given no mapping failed inside its loop (a list: IndexError, a str:
   "string indices must be integers", None: "'NoneType' object is not iterable"); a whole
   ConfigMap object was read as data (three "unknown key" warnings, no setting); an int key
   failed as "'int' object has no attribute 'lower'"; a value of another type was
   stringified (``{"hsts": False}`` set hsts off, ``{"proxy-body-size": 8}`` 8 bytes) where
   ``load_config`` refuses the same unquoted value (README row "``serve --config`` ConfigMap
   ``data`` values": the API server holds ``data`` as ``map[string]string``).
2. ``IngressASGI('deploy/', ...)`` raised Router's TypeError naming ``Router(...)``; a
   ``backends`` that is no mapping failed with Python's words (a list of pairs: "'tuple'
   object has no attribute 'partition'"; a str was read one character a key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib import IngressASGI, ValidationError
from ingresslib.proxy import ProxySettings, ServerConfig, load_config, parse_config_data

_MANIFEST = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  rules:
  - http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
"""


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app (never called here)."""


# --- 1. parse_config_data -------------------------------------------------------------------

@pytest.mark.parametrize("data, shown", [
    ([("hsts", "false")], "list"),
    ("hsts=false", "str 'hsts=false'"),
    (None, "NoneType None"),
    (b"hsts: 'false'", "bytes"),
])
def test_parse_config_data_refuses_what_is_no_mapping(data: Any, shown: str) -> None:
    with pytest.raises(TypeError) as e:
        parse_config_data(data)
    text = str(e.value)
    assert text.startswith("parse_config_data takes a ConfigMap's data, a mapping of str to "
                           "str"), text
    assert shown in text, text


def test_parse_config_data_none_says_what_an_empty_configmap_passes() -> None:
    with pytest.raises(TypeError, match=r"a ConfigMap without data: pass \{\}"):
        parse_config_data(None)  # type: ignore[arg-type]
    assert parse_config_data({}) == ServerConfig()


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
     "data": {"hsts": "false"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "data": {"hsts": "false"}},
    # No data (None), but its metadata is a map: still the whole object.
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": None},
])
def test_parse_config_data_names_a_whole_configmap(obj: dict[str, Any]) -> None:
    with pytest.raises(TypeError) as e:
        parse_config_data(obj)
    assert "not the whole ConfigMap object: pass its data" in str(e.value)
    assert "parse_config_data(configmap['data'])" in str(e.value)


def test_parse_config_data_of_the_whole_configmaps_data_works() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"hsts": "false"}}
    assert parse_config_data(obj["data"]).settings.hsts is False  # type: ignore[arg-type]


def test_string_kind_and_apiversion_keys_stay_data() -> None:
    """Keys spelled ``kind``/``apiVersion`` with string values are data (unknown keys, warned
    about): only a map value marks the whole object."""
    cfg = parse_config_data({"kind": "ConfigMap", "apiVersion": "v1", "hsts": "false"})
    assert cfg.settings.hsts is False
    assert len(cfg.warnings) == 2


def test_parse_config_data_refuses_a_key_that_is_no_string() -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({1: "x", "hsts": "false"})  # type: ignore[dict-item]
    (err,) = e.value.errors
    assert err.field == "data[1]"
    assert "expected a string key" in err.detail


@pytest.mark.parametrize("key, value, json_type", [
    ("hsts", False, "boolean"),
    ("use-forwarded-headers", True, "boolean"),
    ("proxy-body-size", 8, "integer"),
    ("proxy-read-timeout", 1.5, "number"),
    ("foo", 1, "integer"),  # an unknown key too: the API server refuses it all the same
])
def test_parse_config_data_refuses_a_value_that_is_no_string(key: str, value: Any,
                                                             json_type: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({key: value})
    (err,) = e.value.errors
    assert err.field == f"data.{key}"
    assert f"expected string, got {json_type}" in err.detail
    assert err.detail.endswith("; quote the value")


def test_a_list_value_says_comma_separated() -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({"proxy-real-ip-cidr": ["10.0.0.0/8"]})
    (err,) = e.value.errors
    assert "got array" in err.detail and "one comma-separated string" in err.detail


def test_every_problem_is_listed_in_key_order() -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({"proxy-body-size": 8, "hsts": False, 2: "x",  # type: ignore[dict-item]
                           "keep-alive": "75"}, object="ConfigMap ns/cm")
    fields = [err.field for err in e.value.errors]
    assert fields == ["data[2]", "data.hsts", "data.proxy-body-size"]
    assert all(err.object == "ConfigMap ns/cm" for err in e.value.errors)


def test_python_api_agrees_with_the_file_reader(tmp_path: Path) -> None:
    """The same unquoted value: refused by load_config (README row) and by
    parse_config_data, with the same words."""
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                    "data:\n  hsts: false\n")
    with pytest.raises(ValidationError) as from_file:
        load_config(path)
    with pytest.raises(ValidationError) as from_data:
        parse_config_data({"hsts": False})
    assert [e.detail for e in from_file.value.errors] == \
        [e.detail for e in from_data.value.errors]


def test_valid_calls_unchanged() -> None:
    cfg = parse_config_data({"proxy-body-size": "8m", "hsts": "false", "load-balance": "ewma",
                             "foo": None})  # None: Go's "" (as a file's null)
    assert cfg.settings.proxy_body_size == 8 * 1024 * 1024
    assert cfg.settings.hsts is False
    assert cfg.load_balance == "ewma"
    base = ProxySettings(hsts=False)
    assert parse_config_data({}, base=base).settings is not None
    assert parse_config_data({"keep-alive": "10"}, base=base).settings.hsts is False


# --- load_config: the reader's documented error (passed before too: checked, kept) -----------

def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ValidationError) as e:
        load_config(path)
    (err,) = e.value.errors
    assert err.object == str(path) and err.type == "Not found"
    assert err.detail == "no such file or directory"


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        load_config(tmp_path)
    (err,) = e.value.errors
    assert err.object == str(tmp_path) and "Is a directory" in err.detail


@pytest.mark.parametrize("text, found", [
    ("", 0),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", 0),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n", 2),
])
def test_load_config_file_without_one_configmap(tmp_path: Path, text: str, found: int) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as e:
        load_config(path)
    (err,) = e.value.errors
    assert err.object == str(path)
    assert err.detail == f"expected one ConfigMap, found {found}"


# --- 2. IngressASGI's arguments --------------------------------------------------------------

@pytest.mark.parametrize("given", ["deploy/", Path("deploy")])
def test_ingress_asgi_names_itself_for_a_path(given: Any) -> None:
    with pytest.raises(TypeError) as e:
        IngressASGI(given, {"default/api:80": _app})
    text = str(e.value)
    assert text.startswith("IngressASGI takes a Router or a Resources"), text
    assert "Router takes" not in text and "Router(" not in text
    assert f"IngressASGI(ingresslib.load_manifests({given!r}), backends)" in text


def test_ingress_asgi_names_itself_for_a_list_of_dicts() -> None:
    with pytest.raises(TypeError) as e:
        IngressASGI([{"kind": "Ingress"}], {})  # type: ignore[arg-type]
    text = str(e.value)
    assert text.startswith("IngressASGI takes a Router or a Resources"), text
    assert "not list [{'kind': 'Ingress'}]" in text
    assert "load_manifests(" in text and "for files" not in text


@pytest.mark.parametrize("backends, hint", [
    (None, ""),
    ([("default/api:80", _app)], "; for (key, app) pairs: dict(pairs)"),
    ("default/api:80", ""),
    (_app, "; one app for every backend: IngressASGI(res, {}, fallback=app)"),
])
def test_ingress_asgi_backends_not_a_mapping(backends: Any, hint: str) -> None:
    res = ingresslib.parse_manifests(_MANIFEST)
    with pytest.raises(TypeError) as e:
        IngressASGI(res, backends)
    text = str(e.value)
    assert text.startswith("IngressASGI's backends is a mapping of 'namespace/service[:port]' "
                           f"to an ASGI app, not {type(backends).__name__}"), text
    assert hint in text


def test_ingress_asgi_backend_key_not_a_string() -> None:
    res = ingresslib.parse_manifests(_MANIFEST)
    with pytest.raises(TypeError, match=r"backend key \('default', 'api'\) is not a str"):
        IngressASGI(res, {("default", "api"): _app})  # type: ignore[dict-item]


def test_ingress_asgi_valid_calls_unchanged() -> None:
    res = ingresslib.parse_manifests(_MANIFEST)
    app = IngressASGI(res, {"default/api:80": _app})
    assert app.backend_for(app.router.route("GET", "example.test", "/api/x")) is _app
    router = ingresslib.Router(res)
    assert IngressASGI(router, {}).router is router
    # A None app (declared, not mounted) and an object dict() reads by keys() stay accepted.

    class Keyed:
        def __init__(self, d: dict[str, Any]) -> None:
            self.d = d

        def keys(self) -> Any:
            return self.d.keys()

        def __iter__(self) -> Any:
            return iter(self.d)

        def __getitem__(self, k: str) -> Any:
            return self.d[k]

    keyed = IngressASGI(res, Keyed({"default/api": _app}))  # type: ignore[arg-type]
    assert keyed.backends == {"default/api": _app}
    assert IngressASGI(res, {"default/api": None}).backends == {  # type: ignore[dict-item]
        "default/api": None}
    with pytest.raises(ValueError, match="is not 'namespace/service"):
        IngressASGI(res, {"api": _app})
