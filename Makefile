# The two commands the README opens with. Everything they need is installed from scratch into
# .venv (PyPI only): the package with its compiled matcher, and the test dependencies.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test package install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

# Editable, so the compiled matcher is built in place next to _match.pyx; a build failure is fatal
# here (the optional fallback is for users without a compiler, not for CI).
package: $(BIN)/python
	INGRESSLIB_REQUIRE_EXTENSIONS=1 $(BIN)/python -m pip install --quiet -e .

install: package
	$(BIN)/python -m pip install --quiet --group test

demo: package
	$(BIN)/ingresslib demo

test: install
	$(BIN)/python -m mypy --strict ingresslib
	$(BIN)/python -m mypy.stubtest ingresslib._match ingresslib._pick
	INGRESSLIB_REQUIRE_EXTENSIONS=1 $(BIN)/python -m pytest -q -p no:cacheprovider --doctest-modules --ignore=ingresslib/__main__.py ingresslib tests

bench: install
	$(BIN)/python -m pip install --quiet --group bench
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-only

clean:
	rm -rf $(VENV) build *.egg-info ingresslib/*.so ingresslib/*.c ingresslib/*.html
