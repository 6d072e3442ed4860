#!/usr/bin/env bash
# --bpf against the ptrace mode and the bare uprobe counter on hotloop, every event printed as
# JSON (fields and a 6-frame call chain) to a file, same run (under a minute on 2 cores, most
# of it the ptrace mode). Not part of scripts/test.sh.
#   bench/bpf.sh [N]      Markdown table on stdout, JSON in bench/out/bpf.json
set -euo pipefail
source "$(dirname "$0")/hotloop-setup.sh"
exec python3 "$here/bpf.py" --gomaptrace "$gomaptrace" --n "${1:-1000000}"
