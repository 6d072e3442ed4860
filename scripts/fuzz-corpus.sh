#!/usr/bin/env bash
# Makes the fuzzers' seed corpus from the testdata builds (scripts/build-testdata.sh): for each
# target, small ELF files holding only the sections that target's parser reads (objcopy
# --only-section), so mutations land on the bytes that matter and nothing large is checked in.
#   scripts/fuzz-corpus.sh TESTDATA_DIR OUT_DIR      -> OUT_DIR/<target>/<seed files>
# Idempotent: seeds are rebuilt only when the manifest is newer than them.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 TESTDATA_DIR OUT_DIR" >&2
  exit 2
fi
testdata=$1
out=$2
manifest=$testdata/manifest.tsv
[ -f "$manifest" ] || { echo "fuzz-corpus: no $manifest; run scripts/build-testdata.sh" >&2; exit 1; }
stamp=$out/.stamp
if [ -f "$stamp" ] && [ "$stamp" -nt "$manifest" ]; then exit 0; fi
rm -rf "$out"
mkdir -p "$out"/{elf,pclntab,buildinfo,dwarf,go_binary,version_search}

# One small program; every toolchain and the variants that change what the parsers see.
program=bigmap
builds=$(awk -F'\t' -v p="$program" '$1 == "build" && $4 == p { print $2 "\t" $3 "\t" $7 }' "$manifest")
[ -n "$builds" ] || { echo "fuzz-corpus: no $program builds in $manifest" >&2; exit 1; }

extract() {  # in out section...
  local in=$1 dst=$2
  shift 2
  local args=()
  for s in "$@"; do args+=("--only-section=$s"); done
  # objcopy warns about the segments it empties; the sections are what matter.
  objcopy "${args[@]}" "$in" "$dst" 2>/dev/null
}

while IFS=$'\t' read -r label variant path; do
  name=$label-$variant
  case $variant in
    default | stripped | pie)
      extract "$path" "$out/elf/$name" .note.go.buildid .go.buildinfo .rela .rela.dyn .dynsym \
        .dynstr .go.module
      # 1.16/1.17 keep the version behind pointers into .data/.rodata; later ones inline it.
      extract "$path" "$out/buildinfo/$name" .go.buildinfo .go.module .noptrdata .data .rodata \
        .data.rel.ro
      # The tables, the moduledata that points at them (.noptrdata; rebased through .rela in
      # a PIE), and .rodata for the 1.18+ funcdata (inline trees) at go:func.*.
      extract "$path" "$out/pclntab/$name" .gopclntab .data.rel.ro.gopclntab .data.rel.ro \
        .noptrdata .data .rodata .rela .rela.dyn
      ;;
  esac
  # Without .go.buildinfo the version is found through runtime.schedinit's code: the
  # function table, the code and the data its operand and the string header point at.
  case $variant in
    nobuildinfo)
      extract "$path" "$out/version_search/$name" .gopclntab .text .rodata .noptrdata .data \
        .go.module
      ;;
  esac
  case $variant in
    default | noopt) extract "$path" "$out/dwarf/$name" '.debug_*' '.zdebug_*' ;;
  esac
  # The whole pipeline needs whole binaries: a classic, a Swiss and the oldest, stripped.
  case $label-$variant in
    go1.17-stripped | go1.23-stripped | go1.26-stripped) cp "$path" "$out/go_binary/$name" ;;
  esac
done <<<"$builds"

# The files the tests reject: arm64 (its headers are what differ), truncated, bad pclntab magic.
bad() { awk -F'\t' -v n="$1" '$1 == "bad" && $2 == n { print $3 }' "$manifest"; }
if f=$(bad arm64-makehints) && [ -n "$f" ]; then head -c 8192 "$f" >"$out/elf/bad-arm64"; fi
if f=$(bad truncated) && [ -n "$f" ]; then cp "$f" "$out/elf/bad-truncated"; fi
if f=$(bad badmagic) && [ -n "$f" ]; then
  extract "$f" "$out/pclntab/bad-badmagic" .gopclntab .noptrdata .data .rodata
fi
# Drop empty extracts (a section list that matched nothing in an old toolchain's build).
find "$out" -type f -size 0 -delete
touch "$stamp"
for d in "$out"/*/; do
  echo "fuzz-corpus: $(basename "$d"): $(find "$d" -type f | wc -l) seeds," \
    "$(du -sk "$d" | cut -f1) KiB"
done
