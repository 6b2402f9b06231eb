"""The one thing pyproject.toml cannot say without setuptools' experimental table: *optional*
C extensions (a missing compiler falls back to the pure-Python twins) that an env var can switch
off, and a build log that says so in words.

- ``INGRESSLIB_NO_EXTENSIONS=1``: no extension at all, a ``py3-none-any`` wheel (the runtime reads
  the same variable and uses the twins even when the extensions are there).
- ``INGRESSLIB_REQUIRE_EXTENSIONS=1``: a failed compile fails the build (CI, packagers).
- neither: try to compile; on failure warn (see ``FALLBACK``) and ship the twins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# setuptools ships no type information (mypy --strict setup.py would otherwise fail).
from setuptools import Extension, setup  # type: ignore[import-untyped, unused-ignore]
from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped, unused-ignore]
from setuptools.errors import CompileError  # type: ignore[import-untyped, unused-ignore]

#: The compiled modules: the route matcher, and the per-route counters of Router.route. Each has
#: a pure-Python twin ``<name>_py`` with the same behaviour (chosen by ingresslib/_matcher.py and
#: ingresslib/_route_state.py when the compiled one cannot be imported).
NAMES = ("_match", "_pick")

#: What the build log says when an optional extension could not be built. pip shows it with
#: ``pip install -v``; ``python -m build`` always shows it.
FALLBACK = """
********************************************************************************
ingresslib: the optional C extension(s) {names} could not be built (see the
"building extension ... failed" warning(s) above: usually no C compiler or no Python headers;
in a build without pip's build isolation, no Cython).
ingresslib will use its pure-Python twins instead: same results, slower route lookups;
`python -c "import ingresslib; print(ingresslib.MATCHER)"` prints "python".
For the compiled matcher, install a C compiler and the Python headers (e.g.
`apt-get install gcc python3-dev`) and reinstall without pip's wheel cache:
    pip install --no-cache-dir --force-reinstall --no-binary ingresslib ingresslib
Set INGRESSLIB_REQUIRE_EXTENSIONS=1 to make this an error instead, or
INGRESSLIB_NO_EXTENSIONS=1 to skip the compiler step on purpose.
********************************************************************************"""


def _flag(env: Mapping[str, str], name: str) -> bool:
    # The runtime's reading (ingresslib/_matcher.py): unset, "" and "0" mean off.
    return env.get(name, "") not in ("", "0")


#: What stops a build that would compile C generated from an older ``.pyx``.
STALE = """ingresslib: {c} is older than {pyx}, and Cython is not installed in this build
environment, so setuptools would compile the old {c} instead of {pyx} (a build that
silently runs old code). Install with pip's default build isolation (it installs Cython
from pyproject.toml's build requires), or install Cython, or delete {c}."""


#: Why an extension is not compiled in a build without Cython and without the generated C
#: (a build without pip's isolation from a clean checkout or the sdist): a compile error, so an
#: optional extension falls back to the twins, with this reason in the build log.
NO_CYTHON = """ingresslib: Cython is not installed in this build environment and {c} (what
Cython generates from {pyx}) does not exist, so there is nothing to compile. Install with
pip's default build isolation (it installs Cython from pyproject.toml's build requires), or
install Cython."""


def _compiled_in_place(sources: list[str], have_cython: bool) -> list[tuple[str, str]]:
    """The ``(c, pyx)`` pairs of ``sources`` where the compiler gets the ``.c`` in place of the
    ``.pyx`` it stands for.

    Without Cython, setuptools swaps each ``.pyx`` source for the ``.c`` beside it
    (setuptools/extension.py ``_convert_pyx_sources_to_lang``, run by ``build_extension``;
    older setuptools ran it in ``Extension()``, hence a ``.c`` source here too) and compiles
    whatever that file holds, or a file that is not there."""
    pairs = []
    for src in sources:
        if src.endswith(".pyx") and not have_cython:
            pairs.append((src[:-len(".pyx")] + ".c", src))
        elif src.endswith(".c"):
            pairs.append((src, src[:-len(".c")] + ".pyx"))
    return [(c, pyx) for c, pyx in pairs if os.path.exists(pyx)]


def stale_c_sources(sources: list[str], have_cython: bool) -> list[tuple[str, str]]:
    """The ``(c, pyx)`` pairs of ``sources`` where the compiler would get a ``.c`` older than
    the ``.pyx`` it stands for: a ``.c`` left by an earlier build in a working tree, however
    old. A clean checkout or an sdist has no ``.c`` (never committed, excluded from the
    sdist), so this only guards warm trees."""
    return [(c, pyx) for c, pyx in _compiled_in_place(sources, have_cython)
            if os.path.exists(c) and os.path.getmtime(c) < os.path.getmtime(pyx)]


def absent_c_sources(sources: list[str], have_cython: bool) -> list[tuple[str, str]]:
    """The ``(c, pyx)`` pairs of ``sources`` where the compiler would get a ``.c`` that does
    not exist (``NO_CYTHON``)."""
    return [(c, pyx) for c, pyx in _compiled_in_place(sources, have_cython)
            if not os.path.exists(c)]


def cython_importable() -> bool:
    """Whether setuptools will hand the ``.pyx`` sources to Cython: its own test
    (setuptools/extension.py ``_have_cython``, which ``_convert_pyx_sources_to_lang`` asks),
    an import of ``Cython.Distutils.build_ext`` where any exception means no Cython. Not
    whether the name ``Cython`` is found: a Cython that does not import (built for another
    Python, half installed, a stray ``Cython/`` folder) is found, yet setuptools compiles the
    ``.c`` beside each ``.pyx`` then."""
    try:
        __import__("Cython.Distutils.build_ext", fromlist=["build_ext"]).build_ext  # noqa: B018
    except Exception:  # noqa: BLE001 - setuptools' rule: any failure is no Cython
        return False
    return True


def extensions(env: Mapping[str, str] = os.environ) -> list[Extension]:
    """The extensions to build under ``env``'s INGRESSLIB_* variables."""
    if _flag(env, "INGRESSLIB_NO_EXTENSIONS"):
        return []
    optional = not _flag(env, "INGRESSLIB_REQUIRE_EXTENSIONS")
    return [
        Extension(f"ingresslib.{name}", [f"ingresslib/{name}.pyx"], optional=optional,
                  extra_compile_args=["-O3"])
        for name in NAMES
    ]


class BuildExt(build_ext):  # type: ignore[misc, unused-ignore]
    """setuptools' build_ext, plus one clear warning when optional extensions fell back.

    setuptools alone logs only ``building extension "ingresslib._match" failed: <compiler
    command>`` and builds the wheel anyway, which reads like a harmless compiler hiccup.
    """

    inplace: bool  # build_ext's --inplace option

    def run(self) -> None:
        super().run()
        missing = self.missing()
        if missing:
            self.warn(FALLBACK.format(names=", ".join(missing)))

    def build_extension(self, ext: Extension) -> None:
        # Before setuptools' own build_extension: it swaps a .pyx for its .c when Cython is
        # missing. SystemExit, not a compile error: an optional extension's compile error only
        # falls back to the twins, and a stale .c would not fail to compile. No .c at all:
        # that compile error, with the reason (not "cc1: ... No such file or directory").
        sources, have_cython = list(ext.sources), cython_importable()
        for c, pyx in stale_c_sources(sources, have_cython):
            raise SystemExit(STALE.format(c=c, pyx=pyx))
        for c, pyx in absent_c_sources(sources, have_cython):
            raise CompileError(NO_CYTHON.format(c=c, pyx=pyx))
        super().build_extension(ext)

    def missing(self) -> list[str]:
        """The extensions whose module was not built (optional ones whose compile failed)."""
        # Look in the build directory even for --inplace: setuptools builds there first and
        # copies only what was built, so a stale in-place .so does not hide a failure.
        inplace, self.inplace = self.inplace, False
        try:
            return [ext.name for ext in self.extensions
                    if not os.path.exists(self.get_ext_fullpath(ext.name))]
        finally:
            self.inplace = inplace


# setuptools.build_meta (pip, python -m build) and `python setup.py` run this file as __main__;
# tests/test_packaging.py imports it under another name to check the above without building.
if __name__ == "__main__":
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
