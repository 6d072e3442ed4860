#!/usr/bin/env bash
# Memory of gomaptrace over a long Chrome trace (issue 9: bounded memory, RSS flat over 1e7
# events). Traces bench/workloads/hotloop with --events (every insert is an event) and
# --chrome-trace to /dev/null, and reports the tool's own peak RSS (VmHWM, polled from /proc:
# getrusage of children would report the tracee) for each N, with the event count from
# --summary-json. Flat = the peak does not grow with N.
#   bench/chrome_rss.sh [N...]      default: 10000 100000 1000000
# At 50-200 µs per printed insert on this machine, 1e7 events take 10-30 minutes: pass
# 10000000 explicitly for that run. GOMAPTRACE=path overrides build/gomaptrace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export PATH=/usr/local/go/bin:$PATH
gomaptrace=${GOMAPTRACE:-$root/build/gomaptrace}
[ -x "$gomaptrace" ] || { echo "build gomaptrace first (cmake --build build)" >&2; exit 1; }
mkdir -p "$here/out/bin"
hot=$here/out/bin/hotloop
(cd "$here/workloads" && go build -o "$hot" ./hotloop)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
echo "| N inserts | events written | wall s | gomaptrace peak RSS MiB |"
echo "|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  summary=$(mktemp)
  start=$(date +%s.%N)
  "$gomaptrace" -q --no-summary --events --stack 2 --chrome-trace /dev/null \
    --summary-json "$summary" "$hot" "$n" >/dev/null &
  pid=$!
  hwm=0
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && hwm=$v
    sleep 0.2
  done
  wait "$pid"
  end=$(date +%s.%N)
  events=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['events'])" "$summary")
  rm -f "$summary"
  printf '| %s | %s | %.1f | %.1f |\n' "$n" "$events" "$(echo "$end - $start" | bc)" \
    "$(echo "$hwm / 1024" | bc -l)"
done
