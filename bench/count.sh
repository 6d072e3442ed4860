#!/usr/bin/env bash
# --count against the ptrace mode and the bare uprobe counter on hotloop 1e6, same run
# (about 3 minutes on 2 cores, most of it the ptrace mode). Not part of scripts/test.sh.
#   bench/count.sh [N]      Markdown table on stdout, JSON in bench/out/count.json
set -euo pipefail
source "$(dirname "$0")/hotloop-setup.sh"
exec python3 "$here/count.py" --gomaptrace "$gomaptrace" --n "${1:-1000000}"
