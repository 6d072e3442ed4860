#!/usr/bin/env bash
# --count against the ptrace mode and the bare uprobe counter on hotloop 1e6, same run
# (about 3 minutes on 2 cores, most of it the ptrace mode). Not part of scripts/test.sh.
#   bench/count.sh [N]      Markdown table on stdout, JSON in bench/out/count.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$here/out
mkdir -p "$out/bin"
export PATH=/usr/local/go/bin:$PATH
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; } >&2
gomaptrace=${GOMAPTRACE:-$root/build/gomaptrace}
if [ ! -x "$gomaptrace" ]; then
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  cmake --build "$root/build" -j2 --target gomaptrace >&2
fi
(cd "$here/workloads" && go build -o "$out/bin/hotloop" ./hotloop)
cc -O2 -Wall -o "$out/uprobe_count" "$here/uprobe_count.c"
exec python3 "$here/count.py" --gomaptrace "$gomaptrace" --n "${1:-1000000}"
