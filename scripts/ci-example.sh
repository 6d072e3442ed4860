#!/usr/bin/env bash
# A CI job to copy: run a Go module's tests under gomaptrace and fail the job when the
# module's own code grows maps (or whatever your --expect lines say).
#
#   scripts/ci-example.sh [MODULE_DIR]
#
# Without MODULE_DIR it writes a small demo module to a temporary directory (a package whose
# map is sized up front and one whose map grows) and runs the job on it: the first package
# passes, the second fails with the file:line that grew the map, and the job exits non-zero.
# GOMAPTRACE=path selects the gomaptrace binary (default: build/gomaptrace, built if missing).
#
# What the job relies on:
# - `go test -exec CMD` runs each package's test binary as `CMD pkg.test -test.flags...`;
#   gomaptrace passes the binary's stdout and exit status through and reports on stderr.
# - An expectation that fails makes gomaptrace exit 111, so go test marks that package FAIL;
#   a test that fails by itself keeps its own status.
# - %b in an output path is the test binary's name: one summary per package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gomaptrace=${GOMAPTRACE:-$root/build/gomaptrace}
if [ ! -x "$gomaptrace" ]; then
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$root/build" --target gomaptrace >/dev/null
fi
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=${GOTOOLCHAIN:-local}

module=${1:-}
if [ -z "$module" ]; then
  module=$(mktemp -d /tmp/gomaptrace-ci-example.XXXXXX)
  trap 'rm -rf "$module"' EXIT
  mkdir -p "$module/sized" "$module/grows"
  printf 'module example.com/ci\n\ngo 1.19\n' >"$module/go.mod"
  cat >"$module/sized/sized.go" <<'GO'
package sized

// Squares is sized for n keys up front: it never grows.
func Squares(n int) map[int]int {
	m := make(map[int]int, n)
	for i := 0; i < n; i++ {
		m[i] = i * i
	}
	return m
}
GO
  cat >"$module/sized/sized_test.go" <<'GO'
package sized

import "testing"

func TestSquares(t *testing.T) {
	if m := Squares(1000); m[9] != 81 {
		t.Fatal(m[9])
	}
}
GO
  cat >"$module/grows/grows.go" <<'GO'
package grows

// Squares starts with an empty map and lets it grow.
func Squares(n int) map[int]int {
	m := map[int]int{}
	for i := 0; i < n; i++ {
		m[i] = i * i
	}
	return m
}
GO
  sed 's/package sized/package grows/' "$module/sized/sized_test.go" >"$module/grows/grows_test.go"
fi

# The job: the module's own functions (its import path) must not grow maps. Summaries go
# to out/<package>.test.json for the CI artifacts.
mod_path=$(cd "$module" && go list -m)
out=$(pwd)/gomaptrace-out
mkdir -p "$out"
expect="grows{func=~\"^${mod_path//./\\\\.}/\"} == 0"
echo "ci-example: go test -exec 'gomaptrace -q --no-summary --expect $expect' ./..."
status=0
(cd "$module" && go test -count=1 \
  -exec "$gomaptrace -q --no-summary --expect '$expect' --summary-json $out/%b.json" ./...) ||
  status=$?
echo "ci-example: go test exited $status; summaries in $out"
exit $status
