#!/usr/bin/env bash
# The Go toolchains the tests build testdata with. `fetch` downloads the missing ones from
# the Go module proxy (GOTOOLCHAIN=goX.Y.Z); `list` prints "label go-command env" lines,
# one per usable toolchain, and a "skip label reason" line for each that cannot be had.
set -uo pipefail
export PATH=/usr/local/go/bin:$PATH
host_go=$(command -v go || true)

# label  version  GOEXPERIMENT  map-impl
matrix=(
  "go1.16       1.16.15  -            classic"
  "go1.17       1.17.13  -            classic"
  "go1.19       debian   -            classic"
  "go1.23       1.23.12  -            classic"
  "go1.24       1.24.13  -            swiss"
  "go1.24-noswiss 1.24.13 noswissmap  classic"
  "go1.25       1.25.9   -            swiss"
  "go1.25-noswiss 1.25.9 noswissmap   classic"
  "go1.26       host     -            swiss"
  "go1.27       1.27.3   -            swiss"
)

modcache=$( (cd /tmp && GOTOOLCHAIN=local $host_go env GOMODCACHE) 2>/dev/null)

go_for() {  # version -> command line prefix that runs that go
  case $1 in
    1.16.*|1.17.*|1.18.*|1.19.*|1.20.*)
      # The go command cannot switch to a release older than 1.21 by itself: fetch the
      # toolchain module, then run its go directly. Old releases also choke on the
      # -buildvcs flag a newer GOFLAGS or go env file may carry, hence GOENV=off.
      local dir="$modcache/golang.org/toolchain@v0.0.1-go$1.linux-amd64"
      [ -x "$dir/bin/go" ] || (cd /tmp && GOTOOLCHAIN=go$1 GOFLAGS= $host_go version >/dev/null 2>&1)
      [ -x "$dir/bin/go" ] && echo "env -u GOFLAGS GOENV=off GOTOOLCHAIN=local $dir/bin/go" ;;
    debian) [ -x /usr/lib/go-1.19/bin/go ] && echo "env GOTOOLCHAIN=local /usr/lib/go-1.19/bin/go" ;;
    host) [ -n "$host_go" ] && echo "env GOTOOLCHAIN=local $host_go" ;;
    *) echo "env GOTOOLCHAIN=go$1 $host_go" ;;
  esac
}

cmd=${1:-list}
for row in "${matrix[@]}"; do
  read -r label version experiment impl <<<"$row"
  g=$(go_for "$version")
  if [ -z "$g" ]; then
    echo "skip $label no go command for $version"
    continue
  fi
  # A toolchain from the proxy is downloaded on first use; asking its version fetches it.
  if ! out=$(cd /tmp && $g version 2>&1); then
    echo "skip $label cannot fetch toolchain: $(echo "$out" | tail -1)"
    continue
  fi
  [ "$cmd" = list ] && echo "use $label $experiment $impl $g"
done
[ "$cmd" = fetch ] && echo "go-toolchains: ready"
exit 0
