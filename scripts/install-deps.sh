#!/usr/bin/env bash
# Installs every system package and Go toolchain the project needs. Idempotent: a second
# run on a ready machine costs a few dpkg queries and no network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(
  build-essential cmake ninja-build pkg-config git
  libelf-dev libdwarf-dev zlib1g-dev libcli11-dev libfmt-dev
  libzydis-dev nlohmann-json3-dev libgtest-dev libre2-dev
  gdb golang-1.19-go linux-perf hyperfine clang-format strace
  libprotobuf-dev protobuf-compiler golang-github-google-pprof-dev
  clang libclang-rt-14-dev
  libbpf-dev bpftool
  graphviz
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --host-go-only: the demo needs no other Go release than the machine's own.
if [ "${1:-}" != "--host-go-only" ]; then
  "$here/go-toolchains.sh" fetch
fi
