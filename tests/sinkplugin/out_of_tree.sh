#!/usr/bin/env bash
# out_of_tree.sh: installs ppflow into a scratch prefix, builds the example
# sink in samples/sink-example/ against the installed header and pkg-config
# file only, and runs a flow through it with the installed binary.
set -euo pipefail
build=${PPFLOW_BUILD_DIR:?}
src=${PPFLOW_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name ppflow-sink.pc | head -1)")
mkdir -p "$tmp/plugins" "$tmp/run"
PKG_CONFIG_PATH=$pc PKG_CONFIG="pkg-config --define-variable=prefix=$tmp/prefix" make -s -C "$src/samples/sink-example" OUT="$tmp/plugins" CC="${CC:-cc}"
export PPFLOW_SINK_PATH=$tmp/plugins
export PPFLOW_TEMPLATE_PATH=$tmp/prefix/share/ppflow/templates
ppflow=$tmp/prefix/bin/ppflow
"$ppflow" sinks tsv | grep -q "example: one tab-separated line per record"
cat >"$tmp/run/flow.yaml" <<YAML
name: tsv-example
source:
  template: tap-siem-all
  file: $src/samples/data/siem-all-sample.json
sink:
  type: tsv
  path: $tmp/run/records.tsv
state:
  path: $tmp/run/state.json
YAML
"$ppflow" run -q "$tmp/run/flow.yaml"
want=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(len(d[k]) for k in ("messagesDelivered", "messagesBlocked", "clicksPermitted", "clicksBlocked")))
' "$src/samples/data/siem-all-sample.json")
got=$(wc -l <"$tmp/run/records.tsv")
if [ "$got" -ne "$want" ] || [ "$want" -eq 0 ]; then
    echo "expected $want records through the out-of-tree sink, got $got" >&2
    exit 1
fi
# Every line is stream<TAB>key<TAB>JSON with the record's identity: its id,
# else the SHA-256 of its bytes.
python3 - "$tmp/run/records.tsv" <<'PY'
import hashlib, json, sys
for line in open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]:
    stream, key, rec = line.split("\t", 2)
    want = json.loads(rec).get("id")
    if not isinstance(want, str):
        want = "sha256:" + hashlib.sha256(rec.encode("utf-8")).hexdigest()
    assert want == key, line
PY
echo "out-of-tree sink: $got records"
