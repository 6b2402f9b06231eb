#!/usr/bin/env bash
# Build a copy of the working tree's compiled extensions (_match, _pick) with AddressSanitizer
# and UndefinedBehaviorSanitizer, and run the matcher / pick tests against that copy.
# A tool for a reviewer, not run by CI. Never builds in the working tree itself.
#
#   tests/sanitize.sh                  # test_c_safety, test_match, test_pick: compiled variants
#   tests/sanitize.sh tests/test_table.py tests/test_router.py    # other test files instead
#
# About 3 minutes on 2 idle cores (build ~40 s, tests ~2 min); a busy machine takes longer, and
# the test run stops at SANITIZE_TIMEOUT. Only the tests' compiled variants run (pytest -k
# SANITIZE_K, default "not python and not 32_bit": the pure twins' ids say "python", and the
# differential tests, which run both twins, stay in; the 32-bit guard test scans 2 GB of rule
# paths, half a minute with ASan's byte loop, for an arithmetic check the normal suite makes).
# Environment: PYTHON (default: the repo's .venv), SANITIZE_DIR (default: a fresh temp dir),
# SANITIZE_TIMEOUT (seconds for the test run, default 240), SANITIZE_K, CC (default gcc).
#
# What makes the run meaningful:
# - PYTHONMALLOC=malloc: every str, list and tuple is its own malloc block, so ASan sees a read
#   past one (under pymalloc a neighbouring object would hide it).
# - The matcher's deliberate 16-byte over-read (SSE2, inside the page, bytes past the NUL never
#   decide anything: see ingresslib_plain_simd in _match.pyx) is compiled out under
#   __SANITIZE_ADDRESS__, so any ASan report is a real defect, not that one.
# - UBSan aborts on the first report (-fno-sanitize-recover), so a report fails the run.
# - Tests that run code in a child process (test_c_safety) pass the environment on: the
#   children run under the sanitizers too.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
CC=${CC:-gcc}
TIMEOUT=${SANITIZE_TIMEOUT:-240}
KEXPR=${SANITIZE_K:-not python and not 32_bit}
DEST=${SANITIZE_DIR:-$(mktemp -d /tmp/ingresslib-sanitize.XXXXXX)}
case "$DEST" in
    "$ROOT"|"$ROOT"/*) echo "sanitize.sh: SANITIZE_DIR must be outside the working tree" >&2; exit 2;;
esac
if [ "$#" -gt 0 ]; then TESTS=("$@"); else
    TESTS=(tests/test_c_safety.py tests/test_match.py tests/test_pick.py); fi

LIBASAN=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then echo "sanitize.sh: $CC has no libasan.so" >&2; exit 2; fi

# The working tree as it is (tracked and new files, not the ignored build outputs).
rm -rf "$DEST" && mkdir -p "$DEST"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
    | tar --null -cf - -T -) | tar -xf - -C "$DEST"

echo "== building $DEST with ASan + UBSan"
# Cython, then the C compiler directly: setup.py adds -O3 after CFLAGS, which makes an
# instrumented build about three times slower to compile and its reports harder to read.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
for name in _match _pick; do
    (cd "$DEST" && "$PY" -m cython -3 "ingresslib/$name.pyx" -o "ingresslib/$name.c" \
        && "$CC" $SAN -g -O1 -fPIC -shared -I"$INC" "ingresslib/$name.c" \
               -o "ingresslib/$name$EXT") >>"$DEST/build.log" 2>&1 \
        || { tail -30 "$DEST/build.log"; exit 1; }
done

export LD_PRELOAD="$LIBASAN"
export PYTHONMALLOC=malloc
export PYTHONPATH="$DEST"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:print_summary=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export INGRESSLIB_REQUIRE_EXTENSIONS=1
cd "$DEST"
# The copy's extensions, instrumented, are the ones the tests load.
"$PY" - <<'EOF'
import os, subprocess, sys
import ingresslib._match as m, ingresslib._pick as p
for mod in (m, p):
    here = os.path.realpath(mod.__file__)
    assert here.startswith(os.path.realpath(os.environ["PYTHONPATH"])), here
    syms = subprocess.run(["nm", "-D", "--undefined-only", here], capture_output=True, text=True).stdout
    assert "__asan_report" in syms or "__asan_" in syms, f"{here} is not instrumented"
    print("using", here)
EOF

echo "== running ${TESTS[*]} (timeout ${TIMEOUT}s)"
status=0
timeout "$TIMEOUT" "$PY" -m pytest "${TESTS[@]}" -k "$KEXPR" -q -p no:cacheprovider -x || status=$?
if [ "$status" -eq 0 ]; then
    echo "== sanitize.sh: clean (no ASan or UBSan report, all tests passed)"
else
    echo "== sanitize.sh: FAILED (status $status; 124 is the timeout; see the report above)"
fi
exit "$status"
