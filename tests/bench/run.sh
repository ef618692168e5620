#!/bin/sh
# tests/bench/run.sh: ppflow's benchmark, one command (see docs/performance.md).
#
#   ./tests/bench/run.sh [--size MB] [--runs N] [--seed S] [--rounds R] [--rows LIST]
#                        [--sink-size MB] [--insert-rows N]
#                        [--build DIR] [--work DIR] [--tiny]
#
# Needs a build (./tests/run.sh makes build/), python3, jq, curl; rows 3 and 4
# also PostgreSQL (server and psql) and kcat, or they print "skipped: WHY".
# Prints one table: median wall time, MB/s and peak RSS per tool and row.
# --tiny: a quick check that every row runs (what ctest's bench.smoke does).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/bench.py" "$@"
