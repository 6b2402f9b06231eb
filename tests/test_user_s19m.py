"""Session 19, helper M19: what a user embedding ingresslib hits first (helper D19's walk).

1. ``ProxySettings`` took any type: ``use_forwarded_headers="false"`` (the ConfigMap spelling)
   is truthy and trusted X-Forwarded-For; ``proxy_body_size="8m"`` failed naming no field;
   ``proxy_real_ip_cidr="10.0.0.0/8"`` failed later, in ``Proxy()``.
2. ``Router.route(headers=...)``'s type refused forms the docs promise (bytes-keyed mappings,
   ``bytearray``/``memoryview`` values, ``http.client.HTTPMessage``) under ``mypy --strict``.
3. ``Router("deploy/")``: ``AttributeError: 'str' object has no attribute 'ingresses'``.
4. Without lightkube: "pip install 'ingresslib[k8s]'" (ingresslib is not on PyPI).
5. ``CertificateStore``, ``ServerConfig``, ``load_config``, ``parse_config_data`` were only
   importable from private modules.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import tomllib
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendUpstream

ROOT = Path(__file__).resolve().parent.parent

_YAML = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 8080}]}]
"""


# 1. ProxySettings checks the type of every field -------------------------------------------

def _settings(**kw: Any) -> ProxySettings:
    """``ProxySettings(**kw)`` with values of any type (what an untyped caller passes)."""
    return ProxySettings(**kw)


_BOOL_FIELDS = [f.name for f in dataclasses.fields(ProxySettings) if f.type == "bool"]


@pytest.mark.parametrize("name", _BOOL_FIELDS)
@pytest.mark.parametrize("spelling", ["false", "true"])
def test_a_bool_setting_refuses_the_configmap_spelling(name: str, spelling: str) -> None:
    with pytest.raises(TypeError) as e:
        _settings(**{name: spelling})
    msg = str(e.value)
    assert msg.startswith(f"{name}: {spelling!r} ")
    assert f"pass {spelling.capitalize()}" in msg
    assert "ingresslib.proxy.parse_config_data" in msg


def _upstream_head(settings: ProxySettings) -> bytes:
    proxy = Proxy(ingresslib.Router(ingresslib.parse_manifests(_YAML)), settings)
    conn = proxy.connection(("127.0.0.1", 5000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.66\r\n\r\n", 0.0)
    opened = [a for a in acts if isinstance(a, OpenUpstream)]
    acts += conn.upstream_connected(opened[0].conn_id, 0.0)
    return b"".join(a.data for a in acts if isinstance(a, SendUpstream))


def test_use_forwarded_headers_false_as_a_string_never_trusts_x_forwarded_for() -> None:
    # The walk's finding: the string "false" is truthy, so the client's X-Forwarded-For
    # (203.0.113.66) was taken as the client address from a trusted peer, as with True.
    assert b"\r\nx-real-ip: 127.0.0.1\r\n" in _upstream_head(ProxySettings(
        use_forwarded_headers=False, proxy_real_ip_cidr=("127.0.0.0/8",)))
    assert b"\r\nx-real-ip: 203.0.113.66\r\n" in _upstream_head(ProxySettings(
        use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",)))
    with pytest.raises(TypeError, match=r"^use_forwarded_headers: 'false' is not a bool; "
                                        r"pass False"):
        _upstream_head(ProxySettings(use_forwarded_headers="false",  # type: ignore[arg-type]
                                     proxy_real_ip_cidr=("127.0.0.0/8",)))


def test_a_size_given_as_nginx_text_names_field_unit_and_the_configmap_reader() -> None:
    with pytest.raises(TypeError) as e:
        ProxySettings(proxy_body_size="8m")  # type: ignore[arg-type]
    msg = str(e.value)
    assert msg.startswith("proxy_body_size: '8m' is not an int; it takes a size in bytes")
    assert "pass 8388608 for '8m'" in msg
    assert "ConfigMap spellings go through the ConfigMap reader" in msg
    # ... which says the same thing the ConfigMap way:
    assert ingresslib.proxy.parse_config_data(
        {"proxy-body-size": "8m"}).settings.proxy_body_size == 8388608


def test_a_duration_given_as_text_names_the_field() -> None:
    with pytest.raises(TypeError, match=r"^proxy_read_timeout: '60s' is not a number; it "
                                        r"takes seconds \(an int or a float\)"):
        ProxySettings(proxy_read_timeout="60s")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["proxy_real_ip_cidr", "whitelist_source_range",
                                  "denylist_source_range", "block_cidrs"])
def test_a_cidr_list_given_as_one_string_is_refused_at_construction(name: str) -> None:
    # proxy_real_ip_cidr="10.0.0.0/8" passed ProxySettings and failed in Proxy() with
    # "'1' does not appear to be an IPv4 or IPv6 network".
    with pytest.raises(ValueError, match=rf"^{name}: a tuple of CIDRs, not the string "
                                         r"'10.0.0.0/8'"):
        _settings(**{name: "10.0.0.0/8"})


def test_an_invalid_trusted_cidr_is_refused_at_construction() -> None:
    # ("10.0.0.0/33",) passed ProxySettings and failed in Proxy() (and IngressASGI) with
    # "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network", naming no setting.
    # (Session 33 x14: the ConfigMap's message, both read as nginx's set_real_ip_from.)
    with pytest.raises(ValueError, match=r"^proxy_real_ip_cidr: '10.0.0.0/33' is not a valid "):
        ProxySettings(proxy_real_ip_cidr=("10.0.0.0/33",))
    assert ProxySettings(proxy_real_ip_cidr=(" 10.0.0.1/8", "::1")).proxy_real_ip_cidr == (
        " 10.0.0.1/8", "::1")  # as TrustPolicy reads them: trimmed, host bits allowed


@pytest.mark.parametrize("name", ["proxy_body_size", "max_headers", "hsts_max_age",
                                  "proxy_read_timeout", "keep_alive"])
def test_a_bool_is_no_number(name: str) -> None:
    # bool is an int to Python: proxy_body_size=True was a 1-byte limit.
    with pytest.raises(TypeError, match=rf"^{name}: True is a bool, not "):
        _settings(**{name: True})


def test_every_field_refuses_a_value_of_another_type() -> None:
    for f in dataclasses.fields(ProxySettings):
        for bad in (object(), None, b"1"):
            with pytest.raises((TypeError, ValueError)) as e:
                _settings(**{f.name: bad})
            assert str(e.value).startswith(f"{f.name}: "), (f.name, bad, e.value)
        # and a tuple field an item of another type
        if f.type == "tuple[str, ...]":
            with pytest.raises(TypeError, match=rf"^{f.name}: item 1 of \(1,\) is not a str"):
                _settings(**{f.name: (1,)})


def test_the_calls_that_worked_still_do() -> None:
    # An int where seconds are taken, 0 where off is meant, IntEnum-like int subclasses.
    class Code(int):
        pass

    s = ProxySettings(proxy_read_timeout=60, keep_alive=0, upstream_keepalive_timeout=0.05,
                      http_redirect_code=Code(301), proxy_body_size=0,
                      large_client_header_buffers="4 16k", forwarded_for_header="X-Client-IP")
    assert (s.proxy_read_timeout, s.max_headers_size, s.http_redirect_code) == (60, 65536, 301)
    assert dataclasses.replace(s, hsts=False).hsts is False
    # A list where a tuple is taken is kept as the tuple (before: kept as the list, unequal to
    # the tuple spelling and unhashable).
    listed = ProxySettings(block_cidrs=["10.0.0.0/8"],  # type: ignore[arg-type]
                           proxy_next_upstream=["error"])  # type: ignore[arg-type]
    assert listed == ProxySettings(block_cidrs=("10.0.0.0/8",), proxy_next_upstream=("error",))
    assert hash(listed) == hash(ProxySettings(block_cidrs=("10.0.0.0/8",),
                                              proxy_next_upstream=("error",)))
    # The ConfigMap reader builds ProxySettings of the right types.
    cfg = ingresslib.proxy.parse_config_data({
        "use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8,192.168.0.0/16",
        "proxy-read-timeout": "30", "hsts": "false", "proxy-next-upstream": "error timeout"})
    assert cfg.settings.proxy_real_ip_cidr == ("10.0.0.0/8", "192.168.0.0/16")
    assert cfg.settings.use_forwarded_headers is True and cfg.settings.hsts is False


# 2 and 5. What a user's mypy --strict sees -------------------------------------------------

_USER_HEADERS = '''
from __future__ import annotations

import http.client
import io
from collections.abc import Iterator

import h11

import ingresslib


def gen() -> Iterator[tuple[str, str]]:
    yield ("X-Canary", "always")


def use(r: ingresslib.Router) -> None:
    H, P = "shop.example.com", "/cart"
    msg = http.client.parse_headers(io.BytesIO(b"X-Canary: always\\r\\n\\r\\n"))
    r.route("GET", H, P, headers={"X-Canary": "always"})
    r.route("GET", H, P, headers={b"x-canary": b"always"})
    r.route("GET", H, P, headers={"x-canary": b"always"})
    r.route("GET", H, P, headers=[(b"x-canary", bytearray(b"always"))])
    r.route("GET", H, P, headers=[(b"x-canary", memoryview(b"always"))])
    r.route("GET", H, P, headers=[("x-canary", "always"), (b"x-b", b"1")])
    r.route("GET", H, P, headers=(("x-canary", "always"),))
    r.route("GET", H, P, headers=h11.Request(method="GET", target="/",
                                              headers=[("Host", "a")]).headers)
    r.route("GET", H, P, headers=msg)
    r.route("GET", H, P, headers=gen())
    mixed: dict[str | bytes, str | bytes] = {"a": "b", b"c": b"d"}
    r.route("GET", H, P, headers=mixed)
    r.route("GET", H, P)
'''

_USER_PUBLIC = '''
from __future__ import annotations

from ingresslib.proxy import (CertificateStore, ProxyServer, ServerConfig, load_config,
                              parse_config_data)


def embed(path: str) -> ProxyServer | None:
    cfg: ServerConfig = load_config(path)
    cfg2 = parse_config_data({"hsts": "false"}, base=cfg.settings)
    store = CertificateStore()
    print(cfg2.settings.hsts, store.hosts, cfg.load_balance)
    return None
'''


def test_mypy_strict_accepts_every_documented_header_form_and_the_new_public_names(
        tmp_path: Path, mypy_cache_dir: Path) -> None:
    (tmp_path / "user_headers.py").write_text(_USER_HEADERS, encoding="utf-8")
    (tmp_path / "user_public.py").write_text(_USER_PUBLIC, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache_dir),
                          "--follow-imports=silent", "user_headers.py", "user_public.py"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "MYPYPATH": str(ROOT)})
    text = out.stdout + out.stderr
    assert [ln for ln in text.splitlines() if ln.startswith("user_")] == [], text
    assert "Success: no issues found in 2 source files" in text, text


def test_every_documented_header_form_routes_alike() -> None:
    # Run time (guard: the code accepted these before; the type now says so too).
    import http.client

    import h11

    r = ingresslib.Router(ingresslib.parse_manifests(_YAML))
    msg = http.client.parse_headers(io.BytesIO(b"X-A: 1\r\n\r\n"))
    forms: list[Any] = [{"x-a": "1"}, {b"x-a": b"1"}, {"x-a": b"1"},
                        [(b"x-a", bytearray(b"1"))], [(b"x-a", memoryview(b"1"))], msg,
                        h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers,
                        iter([("x-a", "1")])]
    for headers in forms:
        d = r.route("GET", "a", "/", headers=headers)
        assert d is not None and d.service == "web"


# 3. Router's constructor says what it takes -----------------------------------------------


@pytest.mark.parametrize("wrong", ["deploy/", Path("deploy"), [{"kind": "Service"}], None])
def test_router_given_no_resources_says_what_it_takes(wrong: Any) -> None:
    with pytest.raises(TypeError, match=r"^Router takes a Resources \(from "
                                        r"ingresslib\.load_manifests\(path\)"):
        ingresslib.Router(wrong)


def test_router_given_a_path_suggests_load_manifests() -> None:
    with pytest.raises(TypeError, match=re.escape(
            "not str 'deploy/'; for files: Router(ingresslib.load_manifests('deploy/'))")):
        ingresslib.Router("deploy/")  # type: ignore[arg-type]


# 4. How to get lightkube -------------------------------------------------------------------


def _k8s_requirement() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["optional-dependencies"]["k8s"]
    assert len(extras) == 1, extras
    return str(extras[0])


def test_without_lightkube_the_error_names_what_pip_can_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightkube", None)
    with pytest.raises(ImportError) as e:
        ingresslib._kube.load_kube_config()
    msg = str(e.value)
    assert f"pip install '{_k8s_requirement()}'" in msg  # pyproject.toml's bounds
    assert "pip install '.[k8s]' from an ingresslib checkout" in msg
    assert "ingresslib[k8s]" not in msg  # not on PyPI: would fail, or install another's


def test_serve_help_names_what_pip_can_install() -> None:
    from ingresslib._cli import main

    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(buf.getvalue().split())
    assert f"pip install '{_k8s_requirement()}'" in text, text
    assert "ingresslib[k8s]" not in text


# 5. Public names for what embedding needs --------------------------------------------------

_NEW = {"CertificateStore": "ingresslib._tls", "ServerConfig": "ingresslib._config",
        "load_config": "ingresslib._config", "parse_config_data": "ingresslib._config"}


def test_certificate_store_and_the_configmap_reader_are_public_in_ingresslib_proxy() -> None:
    import importlib

    import ingresslib.proxy as proxy

    for name, module in _NEW.items():
        assert name in proxy.__all__ and name in dir(proxy), name
        assert getattr(proxy, name) is getattr(importlib.import_module(module), name)
    ns: dict[str, Any] = {}
    exec("from ingresslib.proxy import *", ns)
    assert set(_NEW) <= set(ns)


def test_import_ingresslib_proxy_still_imports_none_of_them() -> None:
    code = ("import sys\nimport ingresslib.proxy as p\n"
            "print(sorted(m for m in ('ssl', 'asyncio', 'ingresslib._tls', 'ingresslib._config',"
            " 'ingresslib.proxy._server') if m in sys.modules))\n"
            "p.ServerConfig\nprint('ingresslib._config' in sys.modules,"
            " 'ingresslib._tls' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout == "[]\nTrue False\n", out.stderr


@pytest.mark.parametrize("name", ["ServerConfig", "load_config", "parse_config_data"])
def test_the_configmap_readers_help_names_no_private_module(name: str) -> None:
    import pydoc

    import ingresslib.proxy as proxy

    text = pydoc.plain(pydoc.render_doc(getattr(proxy, name)))
    doc = text.split("\n", 1)[1]  # after "Python Library Documentation: ... in module ..."
    # dunder methods and the dataclass machinery aside
    lines = [ln for ln in doc.splitlines() if not ln.lstrip(" |").startswith(("_", "#"))]
    assert not [ln for ln in lines if re.search(r"``_\w|ingresslib\._", ln)], lines
