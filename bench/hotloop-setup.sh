# Sourced by bench/count.sh and bench/bpf.sh: builds what a hotloop comparison needs (build/
# gomaptrace or $GOMAPTRACE, hotloop, the bare uprobe counter) and sets $here and $gomaptrace.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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
