#!/usr/bin/env bash
# Build and install ingresslib the way a new user on a fresh machine would, on each Python.
# A tool run by hand (not by CI, not by pytest): slow, and it downloads from the package index.
#
#   tests/package_check.sh                       # python3.11, and 3.12 / 3.13 when found
#   tests/package_check.sh python3.13            # one interpreter
#   PACKAGE_CHECK_DIR=/tmp/pc tests/package_check.sh
#
# It never builds or installs in the source tree: the git-tracked files (or, from an unpacked
# sdist, all files) are copied to a work folder, and every step runs in a fresh venv there, with
# pip's cache off (a wheel cached by one step must not hide what the next one builds). Each step
# is bounded by STEP_TIMEOUT seconds (default 600). One line per check: PASS / FAIL / NOTE; the
# exit status is the number of FAILs (0: all passed). Logs: $WORK/<python>/*.log.
#
# Steps, per Python: `python -m build` (sdist + wheel) and their contents; the wheel installed,
# used from outside the source tree (compiled matcher, console script, python -m, demo --help,
# a smoke: check, explain, a sans-IO proxy exchange, metrics, a generated certificate); the sdist
# installed with build isolation (builds the extensions); INGRESSLIB_NO_EXTENSIONS=1 (pure wheel);
# no C compiler (CC=/bin/false): falls back with a warning, or fails with
# INGRESSLIB_REQUIRE_EXTENSIONS=1; an editable install without a compiler; mypy on a user file
# against the installed wheel; the runtime dependencies at their lower bounds (smoke + pip check);
# the build requirements at their lower bounds (the wheel built without isolation).
set -u

SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${PACKAGE_CHECK_DIR:-$(mktemp -d /tmp/ingresslib-package-check.XXXXXX)}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
FAILS=0
START=$(date +%s)

pass() { echo "PASS  [$PYNAME] $*"; }
fail() { echo "FAIL  [$PYNAME] $*"; FAILS=$((FAILS + 1)); }
note() { echo "NOTE  [$PYNAME] $*"; }
# run LOG CMD...: the command, bounded, its output appended to LOG; returns its status.
run() { local log=$1; shift; echo "+ $*" >>"$log"; timeout "$STEP_TIMEOUT" "$@" >>"$log" 2>&1; }
venv() { rm -rf "$1" && "$PYTHON" -m venv "$1"; }

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
    pythons=(python3.11)
    for v in 3.12 3.13; do
        if command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' 2>/dev/null; then
            pythons+=("python$v")
        else
            for p in "$(pyenv root 2>/dev/null)"/versions/"$v"*/bin/python"$v"; do
                [ -x "$p" ] && pythons+=("$p") && break
            done
        fi
    done
fi

mkdir -p "$WORK/outside"
# Every step runs from a folder of ours: `python -m build` run where a build.py lies (say /tmp)
# would run that file instead.
cd "$WORK/outside" || exit 1
echo "work folder: $WORK; pythons: ${pythons[*]}"

# --- the source copy ---------------------------------------------------------------------------
COPY=$WORK/src
rm -rf "$COPY" && mkdir -p "$COPY"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files plus new ones not yet added (but not the ignored: .venv, build output...).
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1"' _ {} \
        | xargs -0 tar -cf - | tar -xf - -C "$COPY")
else
    (cd "$SRC" && tar --exclude='./.venv*' --exclude=./build --exclude=./dist -cf - . \
        | tar -xf - -C "$COPY")
fi
DEMO=$COPY/examples/demo/demo.yaml

# The smoke run by every install below, from a folder outside the source tree.
# EXPECT_MATCHER=cython|python is the implementation it must find.
cat >"$WORK/smoke.py" <<'EOF'
import os, pathlib, subprocess, sys, tempfile

import ingresslib
from ingresslib import _route_state
from ingresslib.proxy import OpenUpstream, Proxy, RequestDone, SendDownstream, SendUpstream

where = pathlib.Path(ingresslib.__file__)
assert "site-packages" in where.parts, where
expect = os.environ["EXPECT_MATCHER"]
assert ingresslib.MATCHER == expect, (ingresslib.MATCHER, expect)
assert _route_state.FastRoute.__module__ == ("ingresslib._pick" if expect == "cython"
                                             else "ingresslib._pick_py")
so = sorted(p.name for p in where.parent.glob("*.so"))
assert len(so) == (2 if expect == "cython" else 0), so

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {nginx.ingress.kubernetes.io/rewrite-target: /v2}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
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
res = ingresslib.parse_manifests(MANIFESTS)
m = ingresslib.RouteTable.build(res).match("A.test:80", "/api/x")
assert m is not None and m.service == "web" and m.ingress == "default/web", m
d = ingresslib.Router(res, seed=1).route("GET", "a.test", "/api/x")
assert d is not None and d.endpoint == ("127.0.0.1", 8080), d
try:
    ingresslib.parse_manifests("kind: Ingress\napiVersion: networking.k8s.io/v1\n"
                               "metadata: {name: x}\nspec: {rules: [{host: 'a b'}]}\n")
except ingresslib.ValidationError as err:
    assert "spec.rules[0].host" in str(err), err
else:
    raise AssertionError("invalid host accepted")

with tempfile.TemporaryDirectory() as tmp:
    f = pathlib.Path(tmp, "m.yaml")
    f.write_text(MANIFESTS)
    exe = pathlib.Path(sys.executable).with_name("ingresslib")
    out = subprocess.run([str(exe), "check", "-f", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out
    out = subprocess.run([sys.executable, "-m", "ingresslib", "explain", "-f", str(f),
                          "http://a.test/api/x"], capture_output=True, text=True)
    assert out.returncode == 0 and "web" in out.stdout, out

# A sans-IO exchange (h11 on both sides, regex for rewrite-target), no socket.
conn = Proxy(ingresslib.Router(res, seed=1)).connection(("10.0.0.1", 5555), now=0.0)
acts = conn.start(0.0) + conn.receive_data(b"GET /api/x?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
(op,) = [a for a in acts if isinstance(a, OpenUpstream)]
sent = b"".join(a.data for a in conn.upstream_connected(op.conn_id, 0.01)
                if isinstance(a, SendUpstream))
assert sent.startswith(b"GET /v2?q=1 HTTP/1.1\r\n"), sent
acts = conn.upstream_data(op.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 0.02)
got = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"hi"), got
(done,) = [a for a in acts if isinstance(a, RequestDone)]

# prometheus_client (the metrics text) and cryptography (the generated default certificate).
from ingresslib._metrics import Metrics
from ingresslib._tls import generate_certificate

metrics = Metrics()
metrics.observe(done.record)
metrics.reload_succeeded(1700000000.0, config_hash=42)
text = metrics.render()
assert b"nginx_ingress_controller_requests{" in text, text
generate_certificate()
print("smoke ok:", ingresslib.__version__, ingresslib.MATCHER, sys.version.split()[0])
EOF

# A user's file for mypy: the package must be typed (py.typed, _match.pyi), not Any.
cat >"$WORK/outside/user.py" <<'EOF'
import ingresslib
from ingresslib._match import Matcher

table = ingresslib.RouteTable.build(ingresslib.parse_manifests(""))
reveal_type(table.match("a.test", "/"))
reveal_type(Matcher.lookup)
wrong: int = ingresslib.MATCHER
EOF

# smoke NAME VENV MATCHER: the smoke, plus the CLI the README shows, from outside the tree.
smoke() {
    local name=$1 env=$2 expect=$3 log=$LOGS/$1.log
    if (cd "$WORK/outside" && EXPECT_MATCHER=$expect run "$log" "$env/bin/python" "$WORK/smoke.py"); then
        pass "$name: smoke ($(tail -1 "$log"))"
    else
        fail "$name: smoke, see $log"
    fi
    (cd "$WORK/outside" &&
        run "$log" "$env/bin/python" -c "import ingresslib; print(ingresslib.MATCHER)" &&
        run "$log" "$env/bin/ingresslib" --version &&
        run "$log" "$env/bin/python" -m ingresslib check -f "$DEMO" &&
        run "$log" "$env/bin/ingresslib" demo --help) \
        && pass "$name: MATCHER, ingresslib --version, python -m ingresslib check, demo --help" \
        || fail "$name: the CLI from outside the tree, see $log"
}

# lower_bounds SECTION: "name==lower" for each requirement of pyproject's SECTION.
lower_bounds() {
    "$PYTHON" - "$COPY/pyproject.toml" "$1" <<'EOF'
import re, sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
reqs = {"build": data["build-system"]["requires"], "runtime": data["project"]["dependencies"],
        "k8s": data["project"]["optional-dependencies"]["k8s"]}[sys.argv[2]]
for r in reqs:
    name, low = re.match(r"\s*([A-Za-z0-9_.-]+)[^>=]*>=\s*([0-9][^,;\s]*)", r).groups()
    print(f"{name}=={low}")
EOF
}

# install_lowest VENV PIN...: each NAME==V exactly, or the lowest release V.x when V itself is
# not on the index (setuptools 77.0.0 is not: the lowest 77 is 77.0.1).
install_lowest() {
    local env=$1 log=$2 pin name low v; shift 2
    for pin in "$@"; do
        name=${pin%%==*}; low=${pin#*==}
        run "$log" "$env/bin/pip" install "$pin" && continue
        v=$(cd "$WORK" && "$env/bin/pip" index versions "$name" 2>/dev/null | sed -n 's/^Available versions: //p' \
            | tr ',' '\n' | tr -d ' ' | grep -E "^${low//./\\.}(\.|$)" | sort -V | head -1)
        [ -n "$v" ] && run "$log" "$env/bin/pip" install "$name==$v" || return 1
    done
}

for PYTHON in "${pythons[@]}"; do
    PYNAME=$("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
        PYNAME=$PYTHON; fail "interpreter not found"; continue; }
    P=$WORK/$PYNAME
    LOGS=$P
    DIST=$P/dist
    rm -rf "$P" && mkdir -p "$P"

    # --- python -m build ------------------------------------------------------------------------
    venv "$P/tool" && run "$P/build.log" "$P/tool/bin/pip" install build
    if run "$P/build.log" "$P/tool/bin/python" -m build --outdir "$DIST" "$COPY"; then
        pass "python -m build: $(cd "$DIST" && ls | tr '\n' ' ')"
    else
        fail "python -m build, see $P/build.log"; continue
    fi
    SDIST=$(ls "$DIST"/*.tar.gz) WHEEL=$(ls "$DIST"/*.whl)
    tar -tzf "$SDIST" | sed 's|^[^/]*/||' | sort >"$P/sdist.txt"
    "$P/tool/bin/python" -m zipfile -l "$WHEEL" | awk 'NR > 1 {print $1}' | sort >"$P/wheel.txt"
    note "sdist: $(wc -l <"$P/sdist.txt") entries, $(du -k "$SDIST" | cut -f1) KiB; wheel: $(wc -l <"$P/wheel.txt") files, $(du -k "$WHEEL" | cut -f1) KiB ($(basename "$WHEEL"))"
    missing=""
    for f in ingresslib/_match.pyx ingresslib/_pick.pyx ingresslib/_match.pyi ingresslib/_pick.pyi \
             ingresslib/py.typed ingresslib/examples/demo.yaml ingresslib/proxy/API.md \
             README.md pyproject.toml setup.py MANIFEST.in tests/conftest.py tests/_proxy_harness.py \
             tests/manifests/shop/ingress.yaml docs/router.md examples/demo/demo.yaml Makefile \
             benchmarks/load/soak.py benchmarks/results.json benchmarks/mem_latency.c; do
        grep -qx "$f" "$P/sdist.txt" || missing="$missing $f"
    done
    [ -z "$missing" ] && pass "sdist has the .pyx/.pyi, py.typed, demo.yaml, API.md, tests, docs, examples" \
        || fail "sdist lacks:$missing"
    # Not benchmarks/*results*.json: MANIFEST.in ships the runs the docs cite (pytest-benchmark's
    # own store, .benchmarks/, stays out). Not benchmarks/mem_latency.c: hand-written, shipped.
    bad=$(grep -E '\.(c|so|pyd|o|pyc|html)$|__pycache__|^\.venv|\.benchmarks|^build/|^dist/' \
        "$P/sdist.txt" | grep -v '^benchmarks/mem_latency\.c$')
    [ -z "$bad" ] && pass "sdist has no generated/local files (.c .so .pyc __pycache__ .venv .benchmarks)" \
        || fail "sdist has generated/local files: $(echo $bad)"
    missing=""
    for f in ingresslib/_match.pyx ingresslib/_match.pyi ingresslib/_pick.pyi ingresslib/py.typed \
             ingresslib/examples/demo.yaml ingresslib/proxy/API.md ingresslib/__main__.py; do
        grep -qx "$f" "$P/wheel.txt" || missing="$missing $f"
    done
    [ "$(grep -cE '^ingresslib/_(match|pick)\.cpython-.*\.so$' "$P/wheel.txt")" = 2 ] || missing="$missing _match/_pick .so"
    [ -z "$missing" ] && pass "wheel has _match/_pick .so, .pyi, py.typed, demo.yaml, API.md" \
        || fail "wheel lacks:$missing"
    bad=$(grep -E '\.(c|pyc|html)$|__pycache__|^tests/|^benchmarks/' "$P/wheel.txt")
    [ -z "$bad" ] && pass "wheel has no .c/.pyc/tests/benchmarks" || fail "wheel has: $(echo $bad)"
    meta=$("$P/tool/bin/python" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode().split("\n\n")[0])' "$WHEEL")
    echo "$meta" >"$P/METADATA.txt"
    if echo "$meta" | grep -q '^License-Expression: Apache-2.0$' &&
       echo "$meta" | grep -q '^Description-Content-Type: text/markdown' &&
       echo "$meta" | grep -q '^Requires-Python: >=3.11$' &&
       echo "$meta" | grep -q '^Requires-Dist: h11' &&
       echo "$meta" | grep -q "^Provides-Extra: k8s"; then
        pass "METADATA: License-Expression, markdown README, Requires-Python, Requires-Dist, extra k8s"
    else
        fail "METADATA incomplete, see $P/METADATA.txt"
    fi
    if echo "$meta" | grep -q '^License-File:'; then pass "METADATA: License-File $(echo "$meta" | sed -n 's/^License-File: //p')"
    else fail "no license text shipped (no LICENSE file in the project; Apache-2.0 asks for one)"; fi

    # --- the wheel ------------------------------------------------------------------------------
    venv "$P/wheel"
    if run "$P/wheel.log" "$P/wheel/bin/pip" install "$WHEEL"; then
        pass "pip install the wheel"; smoke wheel "$P/wheel" cython
    else fail "pip install the wheel, see $P/wheel.log"; fi

    # --- the sdist, with build isolation --------------------------------------------------------
    venv "$P/sdist"
    if run "$P/sdist.log" "$P/sdist/bin/pip" install "$SDIST"; then
        pass "pip install the sdist (builds the extensions)"; smoke sdist "$P/sdist" cython
    else fail "pip install the sdist, see $P/sdist.log"; fi

    # --- INGRESSLIB_NO_EXTENSIONS=1 pip install . -----------------------------------------------
    venv "$P/pure"
    if INGRESSLIB_NO_EXTENSIONS=1 run "$P/pure.log" "$P/pure/bin/pip" install -v "$COPY"; then
        if grep -q 'py3-none-any.whl' "$P/pure.log" && ! grep -qE '(^| )(gcc|cc|/bin/false) ' "$P/pure.log"
        then pass "INGRESSLIB_NO_EXTENSIONS=1 pip install .: a py3-none-any wheel, no compiler run"
        else fail "INGRESSLIB_NO_EXTENSIONS=1 pip install . ran a compiler or built a platform wheel"; fi
        smoke pure "$P/pure" python
    else fail "INGRESSLIB_NO_EXTENSIONS=1 pip install ., see $P/pure.log"; fi

    # --- no C compiler ----------------------------------------------------------------------------
    venv "$P/nocc"
    if CC=/bin/false run "$P/nocc.log" "$P/nocc/bin/pip" install -v "$SDIST"; then
        if grep -q 'could not be built' "$P/nocc.log" && grep -q 'pure-Python twins' "$P/nocc.log"
        then pass "CC=/bin/false: installs, the build log explains the fallback (pip -v shows it)"
        else fail "CC=/bin/false: installs without a word about the fallback"; fi
        smoke nocc "$P/nocc" python
    else fail "CC=/bin/false: pip install failed, see $P/nocc.log"; fi
    venv "$P/require"
    if CC=/bin/false INGRESSLIB_REQUIRE_EXTENSIONS=1 run "$P/require.log" "$P/require/bin/pip" install "$SDIST"
    then fail "CC=/bin/false INGRESSLIB_REQUIRE_EXTENSIONS=1: installed anyway"
    else pass "CC=/bin/false INGRESSLIB_REQUIRE_EXTENSIONS=1: pip install fails"; fi
    venv "$P/editable"
    rm -rf "$P/edit-src" && cp -r "$COPY" "$P/edit-src"
    if CC=/bin/false run "$P/editable.log" "$P/editable/bin/pip" install -e "$P/edit-src"; then
        (cd "$WORK/outside" && run "$P/editable.log" "$P/editable/bin/python" -c \
            'import ingresslib; assert ingresslib.MATCHER == "python"; print(ingresslib.__file__)') \
            && pass "CC=/bin/false pip install -e .: installs, pure twins" \
            || fail "CC=/bin/false pip install -e .: installed but broken, see $P/editable.log"
    else fail "CC=/bin/false pip install -e . failed, see $P/editable.log"; fi

    # --- mypy sees the installed wheel as typed -----------------------------------------------------
    if run "$P/mypy.log" "$P/wheel/bin/pip" install mypy; then
        (cd "$WORK/outside" && timeout "$STEP_TIMEOUT" "$P/wheel/bin/python" -m mypy --strict \
            --no-incremental user.py >"$P/mypy.out" 2>&1)
        if grep -q 'Revealed type is "ingresslib._table.Match | None"' "$P/mypy.out" &&
           grep -q 'Revealed type is "def (self: ingresslib._match.Matcher, host: ' "$P/mypy.out" &&
           grep -q 'Incompatible types in assignment (expression has type "str", variable has type "int")' "$P/mypy.out" &&
           ! grep -qE 'import-untyped|import-not-found|missing library stubs' "$P/mypy.out"; then
            pass "mypy --strict on a user file: typed from the wheel (py.typed, _match.pyi)"
        else fail "mypy does not see the wheel as typed: $(tr '\n' ' ' <"$P/mypy.out")"; fi
    else fail "pip install mypy, see $P/mypy.log"; fi

    # --- runtime dependencies at their lower bounds -----------------------------------------------
    venv "$P/min"
    mapfile -t pins < <(lower_bounds runtime)
    if install_lowest "$P/min" "$P/min.log" "${pins[@]}" &&
       run "$P/min.log" "$P/min/bin/pip" install --no-deps "$WHEEL" && run "$P/min.log" "$P/min/bin/pip" check; then
        note "lowest runtime dependencies: $("$P/min/bin/pip" list 2>/dev/null | awk 'NR>2 && $1 !~ /^(pip|setuptools|ingresslib|cffi|pycparser)$/ {printf "%s==%s ", $1, $2}')"
        smoke min "$P/min" cython
    else fail "could not install the lower bounds ${pins[*]}, see $P/min.log"; fi

    # --- the k8s extra at its lower bound: the cluster watcher's tests -----------------------------
    mapfile -t pins < <(lower_bounds k8s)
    rm -rf "$P/unpacked" && mkdir -p "$P/unpacked" && tar -xzf "$SDIST" -C "$P/unpacked"
    UNPACKED=$(ls -d "$P"/unpacked/ingresslib-*)
    if install_lowest "$P/min" "$P/min-k8s.log" "${pins[@]}" &&
       run "$P/min-k8s.log" "$P/min/bin/pip" install pytest hypothesis pytest-asyncio trustme &&
       (cd "$UNPACKED" && run "$P/min-k8s.log" "$P/min/bin/pytest" -q -p no:cacheprovider -x \
            tests/test_kube.py); then
        pass "k8s extra at its lower bound (${pins[*]}): tests/test_kube.py ($(tail -1 "$P/min-k8s.log"))"
    else fail "k8s extra at its lower bound (${pins[*]}): tests/test_kube.py, see $P/min-k8s.log"; fi

    # --- build requirements at their lower bounds -------------------------------------------------
    venv "$P/bmin"
    mapfile -t pins < <(lower_bounds build)
    if install_lowest "$P/bmin" "$P/bmin.log" "${pins[@]}" &&
       run "$P/bmin.log" "$P/bmin/bin/pip" wheel --no-build-isolation --no-deps -w "$P/bmin-dist" "$SDIST"; then
        note "lowest build requirements: $("$P/bmin/bin/pip" list 2>/dev/null | awk 'tolower($1) ~ /^(setuptools|cython)$/ {printf "%s==%s ", $1, $2}')"
        if run "$P/bmin.log" "$P/bmin/bin/pip" install "$P"/bmin-dist/ingresslib-*.whl; then
            smoke bmin "$P/bmin" cython
        else fail "install of the wheel built with the lowest build requirements, see $P/bmin.log"; fi
    else fail "build with the lowest build requirements ${pins[*]}, see $P/bmin.log"; fi

    # --- the sdist's own tests, against the installed wheel -----------------------------------------
    # The test dependency group at its bounds, as `make test` installs it (pip 25.1+ reads
    # --group): bare names would keep the setuptools 65 that a 3.11 venv comes with, below the
    # group's setuptools>=77, and test_packaging.py rightly fails on that.
    if run "$P/sdist-tests.log" "$P/wheel/bin/pip" install "pip>=25.1" &&
       (cd "$UNPACKED" && run "$P/sdist-tests.log" "$P/wheel/bin/pip" install --group pyproject.toml:test) &&
       (cd "$UNPACKED" && run "$P/sdist-tests.log" "$P/wheel/bin/pytest" -q -p no:cacheprovider \
            tests/test_packaging.py tests/test_packaging_s14.py tests/test_demo.py tests/test_load.py \
            tests/test_docs.py -x); then
        pass "from the unpacked sdist: pytest test_packaging/_s14/demo/load/docs against the wheel ($(tail -1 "$P/sdist-tests.log"))"
    else fail "tests from the unpacked sdist, see $P/sdist-tests.log"; fi
    note "done in $(( $(date +%s) - START )) s so far"
done

echo "$FAILS failure(s); logs in $WORK"
exit "$FAILS"
