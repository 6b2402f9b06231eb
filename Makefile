# The two commands the README opens with. Everything they need is installed from scratch into
# .venv (PyPI only): the package with its compiled matcher, and the test dependencies.
PY ?= python3
# `make test PY=python3.12` gets a venv of its own (.venv-python3.12): .venv may hold another
# interpreter, and an existing $(BIN)/python would silently keep it.
VENV ?= $(if $(filter python3,$(PY)),.venv,.venv-$(notdir $(PY)))
BIN := $(VENV)/bin
# What `make test-all` tests on: every minor version requires-python admits (not CI's job: a
# fresh CI machine has one python3).
PYTHONS ?= python3.11 python3.12 python3.13

.PHONY: demo test test-all package install bench clean

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

# The whole suite once per interpreter in PYTHONS, each in its own venv; each builds its own
# compiled extensions in place (the ABI tag in the .so name keeps them apart).
test-all:
	@for py in $(PYTHONS); do \
	    command -v $$py >/dev/null || { echo "test-all: $$py not found" >&2; exit 1; }; \
	    echo "=== $$py"; $(MAKE) --no-print-directory test PY=$$py || exit 1; \
	done

bench: install
	$(BIN)/python -m pip install --quiet --group bench
	$(BIN)/python -m pytest benchmarks/bench_*.py -p no:cacheprovider --benchmark-only

clean:
	rm -rf .venv .venv-* build *.egg-info ingresslib/*.so ingresslib/*.c ingresslib/*.html
