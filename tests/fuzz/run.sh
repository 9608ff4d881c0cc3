#!/usr/bin/env bash
# run.sh — build tests/fuzz/fuzz_TARGET.c with clang (libFuzzer + ASan + UBSan) and fuzz it for SECONDS.
#
#   tests/fuzz/run.sh TARGET [SECONDS]        e.g. tests/fuzz/run.sh encode 60
#
# The core sources a target needs are listed in its own file, on a line
#   * fuzz-sources: core/src/a.c core/src/b.c
# (globs allowed, "-path" removes: "core/src/*/*.c -core/src/transport/uv.c"), so adding a target, or a
# source file to the core, never means editing this script. Seeds come from
# tests/fuzz/corpus/TARGET/ (read only); new inputs go to $FUZZ_OUT/corpus-TARGET/,
# crashes to $FUZZ_OUT/. FUZZ_OUT defaults to build-fuzz/ at the repository root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${1:?usage: tests/fuzz/run.sh TARGET [SECONDS]}
secs=${2:-60}
src="$ROOT/tests/fuzz/fuzz_${target}.c"
[[ -f "$src" ]] || { echo "run.sh: no $src" >&2; exit 2; }
CC=${CC:-clang}
command -v "$CC" >/dev/null || { echo "run.sh: $CC not found (scripts/deps.sh installs clang)" >&2; exit 2; }

OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
mkdir -p "$OUT/include/polytel" "$OUT/corpus-$target"

# polytel/version.h as CMake would generate it, from the one place the version lives.
version=$(sed -n 's/^project(polytel VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
IFS=. read -r vmaj vmin vpat <<<"$version"
sed -e "s/@PROJECT_VERSION_MAJOR@/$vmaj/" -e "s/@PROJECT_VERSION_MINOR@/$vmin/" \
    -e "s/@PROJECT_VERSION_PATCH@/$vpat/" -e "s/@PROJECT_VERSION@/$version/" \
    "$ROOT/core/include/polytel/version.h.in" >"$OUT/include/polytel/version.h.tmp"
cmp -s "$OUT/include/polytel/version.h.tmp" "$OUT/include/polytel/version.h" 2>/dev/null \
  && rm "$OUT/include/polytel/version.h.tmp" \
  || mv "$OUT/include/polytel/version.h.tmp" "$OUT/include/polytel/version.h"

read -r -a extra <<<"$(sed -n 's/.*fuzz-sources:\(.*\)$/\1/p' "$src" | head -n1)"
srcs=()
for s in "${extra[@]}"; do
  if [[ $s == -* ]]; then
    keep=()
    for k in "${srcs[@]}"; do [[ $k == "$ROOT/${s#-}" ]] || keep+=("$k"); done
    srcs=("${keep[@]}")
  else
    for f in "$ROOT"/$s; do
      [[ -f $f ]] || { echo "run.sh: $s (from $src) matches no file" >&2; exit 2; }
      srcs+=("$f")
    done
  fi
done

exe="$OUT/fuzz_$target"
echo "run.sh: building $exe"
"$CC" -std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I "$ROOT/core/include" -I "$OUT/include" -I "$ROOT/core/src" \
  "$src" "${srcs[@]}" -lm -lpthread ${FUZZ_LDLIBS:-} -o "$exe"

seeds=()
[[ -d "$ROOT/tests/fuzz/corpus/$target" ]] && seeds+=("$ROOT/tests/fuzz/corpus/$target")
echo "run.sh: fuzzing $target for ${secs}s"
cd "$OUT"
exec "$exe" -max_total_time="$secs" -max_len="${FUZZ_MAX_LEN:-8192}" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$OUT/corpus-$target" "${seeds[@]}"
