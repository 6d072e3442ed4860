#!/usr/bin/env bash
# Installs what is missing, builds gomaptrace and traces a demo Go program that makes maps
# with the hints people ask about (0, 1, 8, 9, 13, 14, 27, 1024, 100).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --host-go-only
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target gomaptrace
mkdir -p build/demo
(cd testdata && GOTOOLCHAIN=local PATH=/usr/local/go/bin:$PATH go build -o ../build/demo/makehints ./makehints)

echo
echo "== build/gomaptrace inspect build/demo/makehints (what it reads from the binary)"
build/gomaptrace inspect build/demo/makehints | sed -n '1,9p;/^probes/,$p'
echo
echo "== build/gomaptrace --stack 3 --filter '^main\.' build/demo/makehints 1000"
echo "   (the program's own maps; the trace goes to stderr, the summary counts every map)"
build/gomaptrace --stack 3 --filter '^main\.' --summary-json build/demo/summary.json \
  build/demo/makehints 1000 >build/demo/program-output.txt
echo
echo "== the program's own output (unchanged by tracing): build/demo/program-output.txt"
head -3 build/demo/program-output.txt
echo "== machine-readable summary: build/demo/summary.json"
head -20 build/demo/summary.json
