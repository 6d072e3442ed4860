#!/usr/bin/env bash
# Data flows one way: binary -> golang -> debugger -> trace -> output -> cli.
# Each public header says its layer on its first line ("// layer: NAME"); a source file may
# include headers of its own layer or a lower one. output must never reach ptrace (debugger).
set -u
root=${1:-$(dirname "$0")/..}
rank() { case $1 in common) echo 0;; binary) echo 1;; golang) echo 2;; debugger) echo 3;;
  trace) echo 4;; output) echo 5;; cli) echo 6;; *) echo 99;; esac; }
fail=0
declare -A layer_of
for h in "$root"/include/gomaptrace/*.hpp; do
  l=$(head -1 "$h" | sed -n 's#^// layer: \([a-z]*\).*#\1#p')
  if [ -z "$l" ]; then echo "layering: $h has no '// layer:' line"; fail=1; continue; fi
  layer_of[$(basename "$h")]=$l
done
check() {  # file its_layer
  local f=$1 own=$2
  while read -r inc; do
    local l=${layer_of[$inc]:-}
    [ -z "$l" ] && { echo "layering: $f includes unknown gomaptrace/$inc"; fail=1; continue; }
    if [ "$(rank "$l")" -gt "$(rank "$own")" ]; then
      echo "layering: $f ($own) includes gomaptrace/$inc ($l)"; fail=1
    fi
    if [ "$own" = output ] && [ "$l" = debugger ]; then
      echo "layering: $f (output) includes debugger header $inc"; fail=1
    fi
  done < <(sed -n 's#^\s*\#\s*include\s*[<"]gomaptrace/\([^">]*\)[">].*#\1#p' "$f")
}
for h in "$root"/include/gomaptrace/*.hpp; do check "$h" "${layer_of[$(basename "$h")]:-common}"; done
for d in binary golang debugger trace output cli; do
  for f in "$root"/src/$d/*.cpp "$root"/src/$d/*.hpp; do [ -f "$f" ] && check "$f" "$d"; done
done
[ $fail = 0 ] && echo "layering: ok"
exit $fail
