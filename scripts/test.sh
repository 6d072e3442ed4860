#!/usr/bin/env bash
# Installs what is missing, builds, builds the Go testdata matrix (cached) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
scripts/build-testdata.sh build/testdata
ctest --test-dir build --output-on-failure --timeout 900 -j2

# A short run of every fuzzer (clang + ASan/UBSan build in build-sanitize/, seeds made from
# build/testdata); scripts/fuzz.sh alone runs them for longer.
scripts/fuzz.sh --seconds 10
