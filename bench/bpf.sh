#!/usr/bin/env bash
# --bpf against the ptrace mode and the bare uprobe counter on hotloop, every event printed as
# JSON (fields and a 6-frame call chain) to a file, same run (about 3 minutes on 2 cores, most
# of it the ptrace mode). Not part of scripts/test.sh.
#   bench/bpf.sh [N]      Markdown table on stdout, JSON in bench/out/bpf.json
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
exec python3 "$here/bpf.py" --gomaptrace "$gomaptrace" --n "${1:-1000000}"
