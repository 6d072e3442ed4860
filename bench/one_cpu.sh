#!/usr/bin/env bash
# The ptrace path on one CPU against two: hotloop N (default 100000 inserts) under gomaptrace
# -q and under the one-stop floor, each with the machine's whole CPU mask and under
# `taskset -c 0` (tracer and program on one CPU), same run. On a VM most of a stop's cost can
# be the wake-up crossing vCPUs; this measures how much. Not part of scripts/test.sh.
#   bench/one_cpu.sh [N]      Markdown table on stdout, JSON in bench/out/one_cpu.json
set -euo pipefail
source "$(dirname "$0")/hotloop-setup.sh"
cc -O2 -Wall -o "$out/onestop" "$here/floor/onestop.c"
exec python3 "$here/one_cpu.py" --gomaptrace "$gomaptrace" --n "${1:-100000}"
