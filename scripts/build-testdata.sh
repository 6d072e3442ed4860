#!/usr/bin/env bash
# Builds the Go testdata matrix: every program in testdata/ with every toolchain that
# scripts/go-toolchains.sh can provide, in five variants, plus the Go oracle helpers in
# tests/oracle/ and a few bad-input fixtures. The nobuildinfo variant is the stripped build
# with .go.buildinfo removed too, as some release pipelines ship Go programs. Writes OUTDIR/manifest.tsv in the format
# tests/support/testdata.hpp reads:
#   build <label> <variant> <program> <map_impl> <go_version> <path>
#   skip  <label> <variant|all> <reason>          (also printed, never silent)
#   oracle <name> <path>  /  bad <name> <path>  /  extra <name> <path>  (the reader ignores
#   them; tests find them by path)
# A (toolchain, variant) whose inputs hash the same as at its last build is not rebuilt, so
# a second run costs seconds. Exits non-zero only when nothing at all could be built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)

export GOFLAGS=-mod=mod GOARCH=amd64
# No program needs cgo; without it every variant links internally and the same everywhere.
export CGO_ENABLED=0
export PATH=/usr/local/go/bin:$PATH

variant_flags() {  # variant -> go build flags, one per line
  case $1 in
    default) ;;
    noopt) echo "-gcflags=all=-N -l" ;;
    nodwarf) echo "-ldflags=-w" ;;
    stripped) echo "-ldflags=-s -w" ;;
    pie) echo "-buildmode=pie" ;;
    nobuildinfo) echo "-ldflags=-s -w" ;;  # then objcopy: see strip_buildinfo
  esac
}
variants=(default noopt nodwarf stripped pie nobuildinfo)

# `go version` then says "not a Go executable"; the tracer must find the version elsewhere.
strip_buildinfo() {  # dir
  local f
  for f in "$1"/*; do
    [ -x "$f" ] && objcopy --remove-section .go.buildinfo "$f"
  done
  return 0
}

programs=()
for d in "$root"/testdata/*/; do
  [ -f "$d/main.go" ] && programs+=("$(basename "$d")")
done

hash_dir() {  # sha256 over the Go sources and module files under a directory
  (cd "$1" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
script_hash=$(sha256sum "$0" | cut -d' ' -f1)
testdata_hash=$(hash_dir "$root/testdata")

manifest_tmp=$(mktemp "$out/.manifest.XXXXXX")
trap 'rm -f "$manifest_tmp"' EXIT
built_any=0
skip() {  # label variant reason...
  local label=$1 variant=$2
  shift 2
  printf 'skip\t%s\t%s\t%s\n' "$label" "$variant" "$*" >>"$manifest_tmp"
  echo "skip $label $variant: $*"
}

# --- the matrix -----------------------------------------------------------------------
mapfile -t toolchains < <("$root/scripts/go-toolchains.sh" list)
for row in "${toolchains[@]}"; do
  read -r kind label rest <<<"$row"
  if [ "$kind" = skip ]; then
    skip "$label" all "$rest"
    continue
  fi
  [ "$kind" = use ] || continue
  read -r experiment impl gocmd_line <<<"$rest"
  read -ra gocmd <<<"$gocmd_line"
  if ! version_line=$(cd /tmp && "${gocmd[@]}" version 2>&1); then
    skip "$label" all "go version failed: $(tail -1 <<<"$version_line")"
    continue
  fi
  go_version=$(awk '{print $3}' <<<"$version_line")
  if [ "$experiment" = - ]; then
    goexp=()
  else
    goexp=("GOEXPERIMENT=$experiment")
  fi
  for variant in "${variants[@]}"; do
    dir="$out/$label/$variant"
    mapfile -t flags < <(variant_flags "$variant")
    unset failed
    declare -A failed=()
    want=$(printf '%s\n' "$testdata_hash" "$version_line" "$experiment" "${flags[@]}" \
      "$script_hash" "${programs[@]}" | sha256sum | cut -d' ' -f1)
    have=$(cat "$dir/.inputs.sha256" 2>/dev/null || true)
    missing=0
    for p in "${programs[@]}"; do [ -x "$dir/$p" ] || missing=1; done
    if [ "$want" != "$have" ] || [ $missing = 1 ]; then
      rm -rf "$dir"
      mkdir -p "$dir"
      start=$SECONDS
      if log=$(cd "$root/testdata" &&
        env -u GOEXPERIMENT "${goexp[@]}" "${gocmd[@]}" build "${flags[@]}" -o "$dir/" ./... 2>&1); then
        [ "$variant" = nobuildinfo ] && strip_buildinfo "$dir"
        echo "$want" >"$dir/.inputs.sha256"
        echo "built $label/$variant ($go_version) in $((SECONDS - start)) s"
      else
        # One broken program must not cost the others: build them one by one. No hash is
        # stored, so the next run tries again. The skip rows come from the loop below.
        echo "go build failed for $label/$variant, building programs one by one"
        rm -rf "$dir"
        mkdir -p "$dir"
        for p in "${programs[@]}"; do
          if ! plog=$(cd "$root/testdata" && env -u GOEXPERIMENT "${goexp[@]}" "${gocmd[@]}" \
            build "${flags[@]}" -o "$dir/$p" "./$p" 2>&1); then
            failed[$p]=$(tail -1 <<<"$plog")
          fi
        done
        [ "$variant" = nobuildinfo ] && strip_buildinfo "$dir"
      fi
    fi
    for p in "${programs[@]}"; do
      if [ -x "$dir/$p" ]; then
        printf 'build\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$variant" "$p" "$impl" \
          "$go_version" "$dir/$p" >>"$manifest_tmp"
        built_any=1
      else
        skip "$label" "$variant" "program $p: ${failed[$p]:-was not produced}"
      fi
    done
  done
done

# Builds BIN from DIR with the host toolchain unless WANT (the hash of its inputs) is what
# built it last, then lists it in the manifest as "KIND NAME BIN", or a skip row if the build
# fails. The rest of the arguments are environment assignments and the go command.
host_build() {  # kind name bin dir want [VAR=value...] go build ...
  local kind=$1 name=$2 bin=$3 dir=$4 want=$5 log
  shift 5
  if [ "$want" != "$(cat "$bin.inputs.sha256" 2>/dev/null || true)" ] || [ ! -x "$bin" ]; then
    mkdir -p "$(dirname "$bin")"
    rm -f "$bin" "$bin.inputs.sha256"
    if ! log=$(cd "$dir" && env -u GOEXPERIMENT GOTOOLCHAIN=local "$@" 2>&1); then
      skip "$kind" "$name" "go build failed: $(tail -1 <<<"$log")"
      return 0
    fi
    echo "$want" >"$bin.inputs.sha256"
    echo "built $kind/$name"
  fi
  printf '%s\t%s\t%s\n' "$kind" "$name" "$bin" >>"$manifest_tmp"
  built_any=1
}

# --- oracles: Go programs that read binaries with Go's own debug/* packages -------------
host_version=$(cd /tmp && GOTOOLCHAIN=local go version 2>&1 || true)
for d in "$root"/tests/oracle/*/; do
  [ -f "$d/go.mod" ] || continue
  name=$(basename "$d")
  bin="$out/oracle/$name"
  want=$(printf '%s\n' "$(hash_dir "$d")" "$host_version" "$script_hash" | sha256sum | cut -d' ' -f1)
  host_build oracle "$name" "$bin" "$d" "$want" go build -o "$bin" .
done

# --- cgo: tests/cgo linked by the external linker against libc (default and PIE) --------
# Many shipped Go programs use cgo; the matrix builds with CGO_ENABLED=0, so these two are
# built here, with the host toolchain only.
for kind in cgo cgo-pie; do
  bin="$out/extra/$kind"
  flags=(-ldflags=-linkmode=external)
  [ "$kind" = cgo-pie ] && flags+=(-buildmode=pie)
  want=$(printf '%s\n' "$(hash_dir "$root/tests/cgo")" "$host_version" "$script_hash" "$kind" |
    sha256sum | cut -d' ' -f1)
  host_build extra "$kind" "$bin" "$root/tests/cgo" "$want" GOFLAGS= CGO_ENABLED=1 \
    go build "${flags[@]}" -o "$bin" .
done

# --- bad inputs: files the tracer must reject with the right exit status ----------------
bad="$out/bad"
mkdir -p "$bad"
arm="$bad/arm64-makehints"
want=$(printf '%s\n' "$testdata_hash" "$host_version" "$script_hash" | sha256sum | cut -d' ' -f1)
if [ "$want" != "$(cat "$arm.inputs.sha256" 2>/dev/null || true)" ] || [ ! -f "$arm" ]; then
  rm -f "$arm" "$arm.inputs.sha256"
  if log=$(cd "$root/testdata" &&
    env -u GOEXPERIMENT GOTOOLCHAIN=local GOARCH=arm64 go build -o "$arm" ./makehints 2>&1); then
    echo "$want" >"$arm.inputs.sha256"
    echo "built bad/arm64-makehints"
  else
    skip bad arm64-makehints "go build failed: $(tail -1 <<<"$log")"
  fi
fi
[ -f "$arm" ] && printf 'bad\tarm64-makehints\t%s\n' "$arm" >>"$manifest_tmp"

# The other two are cut from a real amd64 build: the host toolchain's if there is one.
host_go=$(awk '{print $3}' <<<"$host_version")
src=$(awk -F'\t' -v v="$host_go" '$1 == "build" && $3 == "default" && $4 == "makehints" {
  last = $7; if ($6 == v) host = $7 } END { print host ? host : last }' "$manifest_tmp")
if [ -n "$src" ]; then
  head -c 65536 "$src" >"$bad/truncated"
  printf 'bad\ttruncated\t%s\n' "$bad/truncated" >>"$manifest_tmp"
  # readelf prints "[Nr] Name Type Address Off ..."; strip the "[Nr]" so fields line up.
  off=$(readelf -SW "$src" | sed -n 's/^ *\[ *[0-9]*\] //p' |
    awk '$1 == ".gopclntab" {print $4}')
  if [ -n "$off" ]; then
    cp "$src" "$bad/badmagic"
    printf '\xde\xad\xbe\xef' | dd of="$bad/badmagic" bs=1 seek=$((16#$off)) conv=notrunc \
      status=none
    printf 'bad\tbadmagic\t%s\n' "$bad/badmagic" >>"$manifest_tmp"
  else
    skip bad badmagic "no .gopclntab section in $src"
  fi
else
  skip bad truncated "no default makehints build to cut from"
  skip bad badmagic "no default makehints build to cut from"
fi

mv "$manifest_tmp" "$out/manifest.tsv"
trap - EXIT
echo "manifest: $out/manifest.tsv ($(grep -c '^build' "$out/manifest.tsv" || true) builds," \
  "$(grep -c '^skip' "$out/manifest.tsv" || true) skipped)"
if [ $built_any = 0 ]; then
  echo "build-testdata: nothing could be built" >&2
  exit 1
fi
