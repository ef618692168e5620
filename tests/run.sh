#!/usr/bin/env bash
# tests/run.sh: install what is missing, build, and run the whole ppflow test suite.
#
#   ./tests/run.sh                 normal build + ctest, ASan/UBSan build + ctest, short fuzz runs
#   PPFLOW_SANITIZE=0 ./tests/run.sh   skip the sanitizer pass
#   PPFLOW_FUZZ_SECONDS=N           seconds per fuzz target (default 60; 0 skips fuzzing)
#   PPFLOW_JOBS=N                   parallel build and test jobs (default: CPU count)
#   PPFLOW_BUILD_MATRIX=0           skip the gcc/clang x build-type compile checks
#
# Every build here treats warnings as errors (-DPPFLOW_WERROR=ON); a user's
# build does not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${PPFLOW_JOBS:-$(nproc)}

# shellcheck source=tests/deps.sh
. "$root/tests/deps.sh"
pf_install_deps test

build() { # build DIR [cmake args...]
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPFLOW_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

# Compile checks: gcc and clang at every build type (each optimisation level
# warns differently), the test programs included; the suite itself runs on the
# builds below.
if [ "${PPFLOW_BUILD_MATRIX:-1}" != 0 ]; then
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        for type in Debug Release RelWithDebInfo MinSizeRel; do
            [ "$cc/$type" = gcc/RelWithDebInfo ] && continue # the build below
            echo "== compile ($cc, $type)"
            dir="$root/build-matrix/$cc-$type"
            CC=$cc cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DPPFLOW_WERROR=ON \
                -DPPFLOW_TESTS=ON >/dev/null
            if ! cmake --build "$dir" -j "$jobs" >"$dir.log" 2>&1; then
                grep -E -B2 -A8 "error|warning" "$dir.log" | head -80
                echo "== compile ($cc, $type) failed; full log: $dir.log"
                exit 1
            fi
        done
    done
fi

echo "== build (RelWithDebInfo)"
build "$root/build" -DPPFLOW_TESTS=ON
echo "== test"
ctest --test-dir "$root/build" -j "$jobs" --output-on-failure

if [ "${PPFLOW_SANITIZE:-1}" != 0 ]; then
    echo "== build (ASan + UBSan)"
    build "$root/build-asan" -DPPFLOW_SANITIZE=ON -DPPFLOW_TESTS=ON
    echo "== test (ASan + UBSan)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$root/build-asan" -j "$jobs" --output-on-failure
fi

fuzz_seconds=${PPFLOW_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ] && command -v clang >/dev/null; then
    echo "== fuzz (${fuzz_seconds}s per target)"
    CC=clang cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DPPFLOW_FUZZ=ON -DPPFLOW_TESTS=OFF -DPPFLOW_WERROR=ON >/dev/null
    cmake --build "$root/build-fuzz" -j "$jobs"
    for bin in "$root"/build-fuzz/tests/fuzz/fuzz_*; do
        [ -x "$bin" ] || continue
        name=$(basename "$bin")
        corpus="$root/tests/fuzz/corpus/$name"
        work=$(mktemp -d)
        cp -r "$corpus"/. "$work"/ 2>/dev/null || true
        echo "-- $name"
        # New inputs go to a scratch copy; crash reproducers land in tests/fuzz/.
        "$bin" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
            -artifact_prefix="$root/tests/fuzz/" "$work" 2>&1 | tail -4
        rm -rf "$work"
    done
fi
echo "== all tests passed"
