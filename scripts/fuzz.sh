#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz) for a while: a long run by default, a short one
# from scripts/test.sh. Builds what it needs: the testdata matrix (cached), the clang build
# with ASan+UBSan and the fuzzers in build-sanitize/, the seed corpus made from testdata.
#   scripts/fuzz.sh [--seconds N] [--build-dir DIR] [TARGET...]
#     --seconds N   per target (default 600)
#     TARGET        elf pclntab buildinfo dwarf type_name go_binary expect_parser version_search (default: all)
# What each run finds is kept: new inputs in DIR/fuzz-work/TARGET (the next run starts from
# them), crashing inputs in DIR/fuzz-crashes/TARGET, logs in DIR/fuzz-logs/TARGET.log.
# Exits 1 if any target crashed: put the input in tests/fuzz/regressions/TARGET/, fix, and
# the ctest fuzz_replay.TARGET keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
build=build-sanitize
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(elf pclntab buildinfo dwarf type_name go_binary expect_parser version_search)

scripts/install-deps.sh
scripts/build-testdata.sh build/testdata >/dev/null
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGOMAPTRACE_FUZZ=ON >/dev/null
cmake --build "$build" --target $(printf 'fuzz_%s ' "${targets[@]}")
scripts/fuzz-corpus.sh build/testdata "$build/fuzz-corpus"

failed=()
for t in "${targets[@]}"; do
  work=$build/fuzz-work/$t crashes=$build/fuzz-crashes/$t log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  dirs=("$work" tests/fuzz/seeds/"$t")
  for d in "$build/fuzz-corpus/$t" tests/fuzz/regressions/"$t"; do [ -d "$d" ] && dirs+=("$d"); done
  # libFuzzer caps inputs at 1 MiB unless told: whole binaries are larger.
  max_len=$(find "${dirs[@]}" -type f -printf '%s\n' | sort -n | tail -1)
  [ "${max_len:-0}" -ge 4096 ] || max_len=4096
  start=$(date +%s)
  # -timeout: one input that runs this long is a hang; -rss_limit_mb: a runaway allocation.
  if "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 \
      -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$crashes/" "${dirs[@]}" >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log")
  echo "fuzz $t: $status, ${runs:-?} runs, ${new:-?} new inputs, $(($(date +%s) - start)) s"
  if [ $status = CRASH ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|deadly signal|terminate' "$log" | head -12
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; inputs in $build/fuzz-crashes/, logs in $build/fuzz-logs/" >&2
  exit 1
fi
