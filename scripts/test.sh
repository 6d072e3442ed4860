#!/usr/bin/env bash
# Installs what is missing, builds, builds the Go testdata matrix (cached) and runs every test.
#   scripts/test.sh             the whole suite (gcc build in build/), then the CI subset under
#                               ASan+UBSan and a short run of every fuzzer (clang, build-sanitize/)
#   scripts/test.sh --sanitize  the whole suite, end-to-end tests included, under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
case $mode in all | --sanitize) ;; *) echo "usage: $0 [--sanitize]" >&2; exit 2 ;; esac
scripts/install-deps.sh
scripts/build-testdata.sh build/testdata

# The sanitizer build (which also holds the fuzzers) shares build/testdata through
# GOMAPTRACE_TESTDATA. -fno-sanitize-recover makes any UBSan report abort, as ASan's do.
export UBSAN_OPTIONS=print_stacktrace=1
sanitized() {  # ctest arguments...
  CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGOMAPTRACE_FUZZ=ON >/dev/null
  cmake --build build-sanitize
  GOMAPTRACE_TESTDATA=$PWD/build/testdata ctest --test-dir build-sanitize --output-on-failure \
    --timeout 1800 "$@"
}
if [ "$mode" = --sanitize ]; then
  sanitized -j2
  exit 0
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
ctest --test-dir build --output-on-failure --timeout 900 -j2

# CI under sanitizers: every unit test and fuzz-regression replay, and the end-to-end tests
# that take each path of the tool once (inspect over the matrix, bad input, tracing, its
# outputs and options). Left to --sanitize: the long count comparisons against the kernel and
# gdb (trace_counts, count, OracleSelftest: minutes each, the same code paths as trace_*;
# bpf.hits_equal_the_kernel_uprobe_count: ~40 s, the paths of bpf.events_equal_*) and
# the Go oracle comparisons over the matrix (GosymOracle: parser results, fuzzed separately).
# Left to --sanitize: trace_floor (~130 s under strace, LeakSanitizer off for that run: it
# cannot run under ptrace). Not meaningful under sanitizers: answers.corrected_latency and
# answers.bpf_latency compare the tracer's times with the program's own (an instrumented
# tracer makes every stop slower and noisier, and its BPF reader falls behind).
# Left out for CI time (~70 s, paths the unit tests and trace_* cover): trace_fields.bigmap,
# expect.every_metric_and_label.
sanitized -j2 -E '^(trace_counts|count|OracleSelftest|GosymOracle|go_test_exec|trace_floor)\.|^bpf\.hits_equal|^answers\.(corrected|bpf)_latency|^trace_fields\.bigmap|^expect\.every_metric'
# A short run of every fuzzer, seeds made from build/testdata; scripts/fuzz.sh runs longer.
scripts/fuzz.sh --seconds 10
