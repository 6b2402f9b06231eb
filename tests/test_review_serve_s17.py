"""Review (R17c) of session 17's lazy ``import ingresslib``, ``serve``'s listen-address check
and the route table's "never used" default backends.

1. ``mypy --strict`` on a user's program refuses a misspelt public name (``ingresslib.Routr``):
   the module ``__getattr__`` of the lazy imports made every unknown name ``Any``.
2. ``dir(ingresslib)`` lists the public subpackage ``proxy`` before its first use (as the
   eager imports did); a folder without code (``examples``) is no attribute.
3. ``--listen [::1%1]:P`` and ``--metrics-listen [::1]:P`` are one address (the kernel drops
   the zone of an address that is not link-local) and are refused before anything listens.
4. Guards: a "never used" default backend is reached by no request (the oracle's answer);
   two threads' first use of public names; ``_bind_key`` on text getaddrinfo cannot take.

No test here listens on a socket.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingresslib import _serve
from ingresslib._errors import BadRequestError
from ingresslib._resources import Resources
from ingresslib._table import RouteTable

from _table_oracle import ingress, oracle
from test_table_s17 import _REQUEST_HOSTS, CANARY, T0, _ingresses, klass

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _python(code: str) -> str:
    """``code`` run by a fresh interpreter on this tree; its stdout."""
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    return p.stdout


# -- 1. typing: the lazy names are typed, an unknown name is an error -----------------------------

_USER = """\
import ingresslib
from ingresslib import Router

router: Router = ingresslib.Router(ingresslib.parse_manifests(""))
reveal_type(ingresslib.RouteTable)
table = ingresslib.Routr(ingresslib.Resources())
from ingresslib import Rooter
"""


def test_mypy_strict_refuses_a_misspelt_public_name(
        tmp_path: Path, mypy_cache_dir: Path) -> None:
    # Regression: ``__getattr__`` (PEP 562) is a module attribute mypy and pyright honour: any
    # name the module does not define had its return type, Any. ``ingresslib.Routr(...)``
    # and ``from ingresslib import Rooter`` passed ``mypy --strict`` and failed at run time.
    (tmp_path / "user.py").write_text(_USER, encoding="utf-8")
    out = subprocess.run([PY, "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache_dir),
                          "--follow-imports=silent", "user.py"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "MYPYPATH": str(ROOT)})  # as if installed
    text = out.stdout + out.stderr
    # The class itself (its constructor), not Any.
    assert [line for line in text.splitlines() if line.startswith("user.py:5: note: Revealed type is")
            and line.endswith('-> ingresslib._table.RouteTable"')], text
    assert 'user.py:6: error: Module has no attribute "Routr"' in text, text
    assert 'user.py:7: error: Module "ingresslib" has no attribute "Rooter"' in text, text
    assert "Found 2 errors in 1 file" in text, text


# -- 2. dir() and odd names -------------------------------------------------------------------------


def test_dir_lists_the_proxy_subpackage_before_its_first_use() -> None:
    # Regression: the eager imports made ``proxy`` an attribute at ``import ingresslib``;
    # lazily it was missing from ``dir()`` (tab completion) until something imported it,
    # though README documents ``ingresslib.proxy.ProxyServer``.
    out = _python("import sys, ingresslib\n"
                  "print('proxy' in dir(ingresslib), 'ingresslib.proxy' in sys.modules)\n"
                  "print(ingresslib.proxy.ProxyServer.__name__)\n")
    assert out == "True False\nProxyServer\n"


def test_a_folder_without_code_is_no_attribute() -> None:
    # Regression: the fallback imported any child ``find_spec`` finds, and the package's data
    # folder ``examples`` (no code) became a namespace package and an attribute.
    out = _python("import sys, ingresslib\n"
                  "try:\n"
                  "    ingresslib.examples\n"
                  "except AttributeError as e:\n"
                  "    print(e)\n"
                  "print(hasattr(ingresslib, 'examples'), 'ingresslib.examples' in sys.modules)\n"
                  "print(type(ingresslib._demo).__name__)\n")  # a submodule still is one
    assert out == "module 'ingresslib' has no attribute 'examples'\nFalse False\nmodule\n"


# -- 3. one address, a zone it has no use for ---------------------------------------------------


def test_a_zone_on_an_address_that_is_not_link_local_is_the_address() -> None:
    # Regression: ``::1%1`` kept its scope id in the key, so ``--listen [::1%1]:8080`` and
    # ``--metrics-listen [::1]:8080`` passed the check; the kernel's bind ignores the scope
    # of an address that needs none (getsockname gives ``('::1', port, 0, 0)``), and the
    # second listener failed with "address already in use" after the first was open (exit 1
    # instead of 2). ``[::%1]`` is the wildcard: it takes every IPv6 address's port.
    one = [("--listen", ("::1%1", 8080)), ("--metrics-listen", ("::1", 8080))]
    conflict = _serve._listener_conflict(one)
    assert conflict == ("--metrics-listen [::1]:8080 and --listen [::1%1]:8080 cannot both "
                        "listen (one port, one listener)")
    wild = [("--listen", ("::%1", 8080)), ("--tls-listen", ("::1", 8080))]
    assert _serve._listener_conflict(wild) is not None
    # A link-local address is one per interface: its zone stays part of it.
    assert _serve._bind_key("fe80::1%1") == (6, "fe80::1", 1)
    assert _serve._listener_conflict([("--listen", ("fe80::1%1", 8080)),
                                      ("--metrics-listen", ("fe80::1%2", 8080))]) is None
    assert _serve._bind_key("::1%1") == _serve._bind_key("::1") == (6, "::1", 0)


_odd_hosts = (st.text(max_size=60)
              | st.from_regex(r"[0-9a-fA-F:.%\[\]a-z\x00]{0,40}", fullmatch=True)
              | st.sampled_from(["\x00", "a" * 5000, "\udcff", "é" * 70, "::1%\x00", "fe80::1%" + "z" * 300]))


@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(a=_odd_hosts, b=_odd_hosts, port=st.sampled_from([0, 8080]))
def test_listen_hosts_getaddrinfo_cannot_take_are_kept_as_written(a: str, b: str, port: int) -> None:
    # Guard: NUL, surrogates, labels over 63 characters, very long text: a key, no traceback.
    for host in (a, b):
        key = _serve._bind_key(host)
        assert key == host or isinstance(key, tuple)
    _serve._listener_conflict([("--listen", (a, port)), ("--metrics-listen", (b, port))])


# -- 4. guards -------------------------------------------------------------------------------------


def test_two_threads_first_use_of_public_names() -> None:
    # Two threads import different parts of the package at once (module locks, no import
    # cycle among them): both get the real objects, no partially initialised module.
    out = _python(
        "import threading, ingresslib\n"
        "names = ['Router', 'Proxy', 'IngressASGI', 'ClusterWatcher', 'RouteTable', 'MATCHER']\n"
        "gate = threading.Barrier(len(names)); got = {}\n"
        "def use(n):\n"
        "    gate.wait(); got[n] = getattr(ingresslib, n)\n"
        "ts = [threading.Thread(target=use, args=(n,)) for n in names]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "from ingresslib._router import Router\n"
        "from ingresslib.proxy import Proxy\n"
        "print(sorted(got) == sorted(names), got['Router'] is Router, got['Proxy'] is Proxy)\n")
    assert out == "True True True\n"


_HOSTS = [*_REQUEST_HOSTS, "a.b.c", "q.bar.org", "zz.x.foo.com"]
_PATHS = ["/", "/zz-miss", "/a", "/a/b", "/ab", "/b"]


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[list[Any], tuple[Any, ...], dict[str, str]]:
    """Ingresses (host-less, wildcard and named rules, defaults, canaries), maybe classes."""
    ings = draw(_ingresses())
    if draw(st.booleans()):
        return ings, (), {}
    ings = [replace(i, spec=replace(i.spec, ingress_class_name=draw(st.sampled_from(["c1", "c2", None]))))
            for i in ings]
    classes = (klass("c1", default=draw(st.booleans())), klass("c2", controller="other.example/x"))
    return ings, classes, draw(st.sampled_from([{"ingress_class": "c1"},
                                                {"controller": "example.com/ingress"}, {}]))


@settings(max_examples=250, suppress_health_check=list(HealthCheck), deadline=None)
@given(world=_worlds())
def test_a_default_reported_never_used_answers_no_request(
        world: tuple[list[Any], tuple[Any, ...], dict[str, str]]) -> None:
    # Guard for 57ea2dc: no false positive. Every host form (named, wildcard, none named,
    # IPv6, empty) and a path that misses every rule, under class filters and canaries: the
    # oracle's default backend is never one the table calls "never used".
    ings, classes, kw = world
    res = Resources(ingresses=tuple(ings), ingress_classes=classes)
    table = RouteTable.build(res, **kw)
    never = {d.object.removeprefix("Ingress ") for d in table.diagnostics
             if d.field == "spec.defaultBackend" and d.message.startswith("never used")}
    answered = set()
    for host in _HOSTS:
        for path in _PATHS:
            try:
                want = oracle(res, host, path, kw.get("ingress_class"), kw.get("controller"))
            except BadRequestError:
                continue
            if want is not None and want.is_default_backend:
                answered.add(want.ingress)
    note(f"never used: {never}; defaults answering: {answered}")
    assert not never & answered


def test_the_hidden_oldest_default_beside_a_canary_and_a_wildcard() -> None:
    # Guard, one fixed case of the property above: the oldest default is hidden by host-less
    # rules with a default of their own; a canary Ingress's default and a wildcard group with
    # its own default change nothing.
    t = RouteTable.build(Resources(ingresses=(
        ingress("catchall", [], default="catchall", created=T0),
        ingress("app", [(None, [("/api", "Prefix", "api")])], default="app-default",
                created=T0 + timedelta(days=1)),
        ingress("wild", [("*.foo.com", [("/", "Exact", "w")])], default="wild-default",
                created=T0 + timedelta(days=2)),
        ingress("can", [(None, [("/api", "Prefix", "api-c")])], default="can-default",
                annotations=CANARY, created=T0 + timedelta(days=3)),
    )))
    services = {m.service for h in ("", "x.foo.com", "foo.com", "[::1]") for p in ("/", "/x")
                if (m := t.match(h, p)) is not None}
    assert "catchall" not in services and {"app-default", "wild-default"} <= services
    assert [d.object for d in t.diagnostics if d.message.startswith("never used")] == [
        "Ingress default/catchall"]
