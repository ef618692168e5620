#!/usr/bin/env bash
# samples/quickstart.sh: install what is missing, build ppflow, and run the
# quickstart flow (a saved TAP SIEM response → NDJSON files under out/).
# Safe to run again: each run starts the demo from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# shellcheck source=tests/deps.sh
. "$root/tests/deps.sh"
pf_install_deps build

echo "== building ppflow"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPFLOW_TESTS=OFF >/dev/null
cmake --build "$root/build" -j "$(nproc)" >/dev/null
ppflow="$root/build/src/ppflow"

echo "== ppflow validate samples/quickstart.yaml"
"$ppflow" validate samples/quickstart.yaml

echo "== ppflow run samples/quickstart.yaml"
rm -rf out/quickstart state/quickstart.json state/quickstart.json.lock
"$ppflow" run samples/quickstart.yaml

total=0
for f in out/quickstart/*.ndjson; do
    n=$(wc -l <"$f")
    total=$((total + n))
    printf '  %-45s %5d records\n' "$f" "$n"
done
echo "wrote $total records under $root/out/quickstart/"
echo "next: ./build/src/ppflow templates   (the bundled templates)"
