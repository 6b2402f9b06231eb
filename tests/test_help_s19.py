"""``help()`` on every public name, as a user embedding ingresslib reads it (session 19).

The public API is ``ingresslib.__all__`` and ``ingresslib.proxy.__all__``. Each public class
and function, and each public method and property of a public class that ingresslib itself
defines (its own classes in the MRO, not ``object``, ``tuple``, ``NamedTuple`` or dataclass
machinery; fields are data, not walked), must have a docstring of its own that is not empty.
No docstring may tell the user to reach a private module (``from ingresslib._x import Y``,
``ingresslib._tls.CertificateStore``): a file name such as ``_connection.py`` is a pointer to
the source and fine. A mention of the driver's contract ``API.md`` must say where it is.

A compiled class (``_match``/``_pick``) carries the docstrings of its ``.pyx``; where the
compiled object has none, the pure twin's (``_match_py``/``_pick_py``) are checked instead, as
the ``.pyi`` stubs say the twin documents the behaviour. Nothing is skipped.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ingresslib
import ingresslib.proxy

_PACKAGES: tuple[ModuleType, ...] = (ingresslib, ingresslib.proxy)

#: A compiled module and its pure twin, whose docstrings stand in for a missing compiled one.
_TWINS = {"ingresslib._match": "ingresslib._match_py", "ingresslib._pick": "ingresslib._pick_py"}


def _ours(cls: type) -> Iterator[type]:
    """The classes of ``cls``'s MRO that ingresslib defines, base first."""
    for klass in reversed(cls.__mro__):
        if (getattr(klass, "__module__", "") or "").startswith("ingresslib"):
            yield klass


def _callable_member(value: Any) -> Any | None:
    """What carries the docstring of a method or property, or None for a data attribute."""
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, (property, functools.cached_property)):
        return value
    if inspect.isfunction(value) or inspect.ismethoddescriptor(value) or inspect.isbuiltin(value):
        return value
    return None


def _twin_doc(owner: type, name: str | None) -> str | None:
    """The pure twin's docstring of a compiled class (``name`` None) or of its member."""
    twin_module = _TWINS.get(owner.__module__)
    if twin_module is None:
        return None
    twin = getattr(importlib.import_module(twin_module), owner.__name__, None)
    if twin is None:
        return None
    if name is None:
        doc = twin.__dict__.get("__doc__")
    else:
        member = _callable_member(inspect.getattr_static(twin, name, None))
        doc = getattr(member, "__doc__", None)
    return doc if isinstance(doc, str) else None


def _entries() -> list[tuple[str, str | None]]:
    """(``help()`` name, docstring) of every public class, function, method and property."""
    out: list[tuple[str, str | None]] = []
    seen: set[int] = set()
    for package in _PACKAGES:
        for name in package.__all__:
            obj = getattr(package, name)
            if id(obj) in seen:  # ClientConnection, Proxy, ... are in both lists
                continue
            seen.add(id(obj))
            qualname = f"{package.__name__}.{name}"
            if inspect.isfunction(obj) or inspect.isbuiltin(obj):
                out.append((qualname, obj.__doc__))
            elif inspect.isclass(obj):
                doc = obj.__dict__.get("__doc__")  # its own, not a base class's
                out.append((qualname, doc if doc else _twin_doc(obj, None)))
                for klass in _ours(obj):
                    for attr, value in vars(klass).items():
                        member = _callable_member(value)
                        if attr.startswith("_") or member is None:
                            continue
                        doc = member.__doc__ or _twin_doc(klass, attr)
                        out.append((f"{qualname}.{attr}", doc))
            # Otherwise a constant (``MATCHER``, a str) or a type alias (``Action``, a Union):
            # help() shows the value's type, not a docstring of ingresslib's.
    return out


_ENTRIES = _entries()
_PRIVATE_PATH = re.compile(
    r"\bingresslib(?:\.[A-Za-z]\w*)*\._[A-Za-z]\w*"  # ingresslib._tls..., ingresslib.proxy._x
    r"|\bfrom\s+\.+_\w+"  # a relative import of a private module
    r"|\bfrom\s+_[a-z]\w*\s+import")


@pytest.mark.parametrize("name,doc", [pytest.param(n, d, id=n) for n, d in _ENTRIES])
def test_public_name_has_a_docstring(name: str, doc: str | None) -> None:
    assert doc is not None and doc.strip(), f"help({name}) shows no docstring"


@pytest.mark.parametrize("name,doc", [pytest.param(n, d, id=n) for n, d in [
    *_ENTRIES, *((p.__name__, p.__doc__) for p in _PACKAGES)]])
def test_docstring_names_no_private_module_path(name: str, doc: str | None) -> None:
    found = _PRIVATE_PATH.findall(doc or "")
    assert not found, f"help({name}) tells the user to use a private module: {found}"


@pytest.mark.parametrize("name,doc", [pytest.param(n, d, id=n) for n, d in [
    *_ENTRIES, *((p.__name__, p.__doc__) for p in _PACKAGES)]])
def test_api_md_is_named_by_its_installed_path(name: str, doc: str | None) -> None:
    # "See ``API.md``" alone: help() does not say which folder, and the file is not on the
    # project page of an installed wheel.
    for match in re.finditer(r"(\S*)API\.md", doc or ""):
        assert match.group(1).strip("`'\"(").endswith("ingresslib/proxy/"), \
            f"help({name}) names API.md without its path: {match.group(0)!r}"


def test_the_named_api_md_is_installed_there() -> None:
    assert (Path(ingresslib.proxy.__file__).parent / "API.md").is_file()


def test_the_walk_covers_methods_properties_and_inherited_members() -> None:
    # The parametrisations above are not empty or shallow by accident.
    names = {n for n, _ in _ENTRIES}
    assert {
        "ingresslib.ClientConnection.receive_data",  # a method
        "ingresslib.RequestRecord.duration",  # a property of a frozen dataclass
        "ingresslib.Proxy.options_for",  # from an ingresslib base class (RouteOptionsSource)
        "ingresslib.proxy.ProxyServer.serve_until",  # a name imported on first use
        "ingresslib.register_balancer",  # a function
    } <= names
    assert not any(n.endswith((".count", ".index", ".service")) for n in names)  # tuple, fields


def test_a_compiled_class_without_docstrings_is_checked_through_its_pure_twin() -> None:
    # What the walk does for a public compiled class (none is public today): the twin's text.
    from ingresslib import _match_py

    compiled = type("Matcher", (), {"__module__": "ingresslib._match"})
    assert _twin_doc(compiled, None) == _match_py.Matcher.__doc__
    assert _twin_doc(compiled, "lookup") == _match_py.Matcher.lookup.__doc__
    assert _twin_doc(type("X", (), {"__module__": "ingresslib._table"}), None) is None
