#!/bin/sh
# cli_test.sh: the contract of `ppflow jsonpath` (output, exit codes, options).
# Needs PPFLOW_BIN (set by ctest); exits 77 (skipped) without it.
set -u
bin=${PPFLOW_BIN:-}
[ -n "$bin" ] && [ -x "$bin" ] || { echo "PPFLOW_BIN not set; skipping"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0

# check NAME WANT_RC WANT_STDOUT STDERR_PATTERN -- ARGS...   (stdin from $tmp/in)
check() {
    name=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 5
    "$bin" "$@" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    if [ "$rc" != "$want_rc" ] || [ "$out" != "$want_out" ] ||
        { [ -n "$want_err" ] && ! grep -q -e "$want_err" "$tmp/err"; }; then
        echo "FAIL $name: rc=$rc (want $want_rc) stdout=[$out] (want [$want_out])"
        sed 's/^/    stderr: /' "$tmp/err"
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

cat >"$tmp/doc.json" <<'JSON'
{"users": [{"id": 1, "is_active": true}, {"id": 2, "is_active": false}],
 "url": "https://a/b", "o'k": {"threatID": "t1"}}
JSON
printf '' >"$tmp/in"

check "values from a file" 0 '[{"id":1,"is_active":true}]' '' -- \
    jsonpath '$.users[?@.is_active==true]' "$tmp/doc.json"
check "no slash escaping" 0 '["https://a/b"]' '' -- jsonpath '$.url' "$tmp/doc.json"
check "paths" 0 "[\"\$['o\\\\'k']['threatID']\"]" '' -- jsonpath --paths '$..threatID' "$tmp/doc.json"
check "double dash ends options" 0 '["$['"'"'url'"'"']"]' '' -- \
    jsonpath --paths -- '$.url' "$tmp/doc.json"
check "empty result" 0 '[]' '' -- jsonpath '$.nothing' "$tmp/doc.json"
check "help" 0 "$("$bin" jsonpath --help </dev/null)" '' -- jsonpath --help
check "invalid query" 2 '' "^error: unexpected ']' at offset 7" -- jsonpath '$.users]' "$tmp/doc.json"
check "invalid query before reading the file" 2 '' 'at offset' -- jsonpath '$[?length(@)]' /nonexistent
check "badly typed query" 2 '' 'at offset 3' -- jsonpath '$[?@.* == 1]' "$tmp/doc.json"
check "missing file" 1 '' 'nonexistent' -- jsonpath '$' "$tmp/nonexistent"
check "unknown option" 2 '' 'unknown option' -- jsonpath --bogus '$'
check "no query" 2 '' 'usage' -- jsonpath
check "too many arguments" 2 '' 'usage' -- jsonpath '$' a b

printf '{"a": [1, 2.5, "x", null]}' >"$tmp/in"
check "stdin by default" 0 '[1,2.5,"x",null]' '' -- jsonpath '$.a[*]'
check "stdin as -" 0 '[1]' '' -- jsonpath '$.a[0]' -
printf '{"a": [1' >"$tmp/in"
check "truncated JSON" 1 '' 'invalid JSON' -- jsonpath '$'
printf '[1] [2]' >"$tmp/in"
check "trailing data" 1 '' 'invalid JSON' -- jsonpath '$'
printf '' >"$tmp/in"
check "empty document" 1 '' 'empty' -- jsonpath '$'
printf '42' >"$tmp/in"
check "scalar document" 0 '[42]' '' -- jsonpath '$'

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
