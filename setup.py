# The one thing pyproject.toml cannot say without setuptools' experimental table: an *optional*
# extension (a missing compiler falls back to the pure twin) that an env var can switch off.
import os

from setuptools import Extension, setup

pure = os.environ.get("INGRESSLIB_NO_EXTENSIONS", "") not in ("", "0")
optional = os.environ.get("INGRESSLIB_REQUIRE_EXTENSIONS", "") in ("", "0")
setup(
    ext_modules=[]
    if pure
    else [
        # The route matcher, and the per-route counters of Router.route.
        Extension(f"ingresslib.{name}", [f"ingresslib/{name}.pyx"], optional=optional,
                  extra_compile_args=["-O3"])
        for name in ("_match", "_pick")
    ]
)
