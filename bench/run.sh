#!/usr/bin/env bash
# Benchmarks gomaptrace against the untraced program, the one-stop ptrace floor, the kernel's
# uprobe counter, gdb and Delve, on the same binaries in the same run. Not part of
# scripts/test.sh: it takes minutes and its numbers depend on the machine's load.
#   bench/run.sh [--quick]     Markdown table on stdout, JSON in bench/out/results.json
#   bench/run.sh --floor       only gomaptrace -q against the one-stop floor on hotloop (1e5,
#                              1e6, 1e7 inserts; --quick: 1e5, 1e6) and ptrace calls per hit
#                              (strace -c): bench/out/floor.json
# GOMAPTRACE=path overrides the binary (default build/gomaptrace, built if missing).
set -euo pipefail

quick=()
for a in "$@"; do
  case "$a" in
    --quick|--floor) quick+=("$a") ;;
    *) echo "usage: bench/run.sh [--quick] [--floor]" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$here/out
mkdir -p "$out/bin" "$out/gobin"
say() { echo "[run.sh] $*" >&2; }

export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { say "go is not installed (expected /usr/local/go/bin)"; exit 1; }

apt_install() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq "$@" >&2
}
command -v hyperfine >/dev/null || apt_install hyperfine
command -v gdb >/dev/null || apt_install gdb || say "gdb could not be installed: skipping it"
command -v cc >/dev/null || apt_install gcc
command -v strace >/dev/null || apt_install strace

if [ ! -r /sys/bus/event_source/devices/uprobe/type ]; then
  say "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe): cannot count hits"
  exit 1
fi

gomaptrace=${GOMAPTRACE:-$root/build/gomaptrace}
if [ ! -x "$gomaptrace" ]; then
  say "building $gomaptrace"
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  cmake --build "$root/build" -j2 --target gomaptrace >&2
  gomaptrace=$root/build/gomaptrace
fi

floor_only=""
for a in "${quick[@]}"; do [ "$a" = --floor ] && floor_only=1; done
dlv=$out/gobin/dlv
dlv_skip=""
if [ -n "$floor_only" ]; then
  dlv=""  # --floor runs gomaptrace and the floor alone
elif [ ! -x "$dlv" ]; then
  say "installing Delve into $out/gobin"
  if ! GOBIN=$out/gobin timeout 900 go install github.com/go-delve/delve/cmd/dlv@latest >&2; then
    dlv_skip="go install github.com/go-delve/delve/cmd/dlv@latest failed (offline, or no Go \
release it supports)"
    say "$dlv_skip: skipping dlv"
    dlv=""
  fi
fi

say "building the workloads, the floor and the uprobe counter"
(cd "$here/workloads" && for w in hotloop smallmaps mixed; do go build -o "$out/bin/$w" "./$w"; done)
cc -O2 -Wall -o "$out/onestop" "$here/floor/onestop.c"
cc -O2 -Wall -o "$out/uprobe_count" "$here/uprobe_count.c"
if [ -z "$floor_only" ] && [ ! -x "$out/gocmd" ]; then
  say "building cmd/go as the large binary"
  go build -o "$out/gocmd" cmd/go
fi

exec python3 "$here/bench.py" "${quick[@]}" --gomaptrace "$gomaptrace" --dlv "$dlv" \
  --dlv-skip-reason "$dlv_skip"
