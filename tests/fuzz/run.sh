#!/usr/bin/env bash
# run.sh — build tests/fuzz/fuzz_TARGET.c with clang (libFuzzer + ASan + UBSan) and fuzz it for SECONDS.
#
#   tests/fuzz/run.sh TARGET [SECONDS]        e.g. tests/fuzz/run.sh encode 60
#
# The target links against the loop-free core (core/sources.txt without its `uv` lines), built once into
# an archive with the same sanitizers, so the linker takes only the objects the target calls: a new
# target never lists sources, and moving a core file is a change to core/sources.txt. Seeds come from
# tests/fuzz/corpus/TARGET/ (read only); new inputs go to $FUZZ_OUT/corpus-TARGET/,
# crashes to $FUZZ_OUT/. FUZZ_OUT defaults to build-fuzz/ at the repository root. A target that needs system
# libraries names them on one comment line of its source, ` * run.sh links: -lfoo -lbar` (fuzz_compress.c).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${1:?usage: tests/fuzz/run.sh TARGET [SECONDS]}
secs=${2:-60}
src="$ROOT/tests/fuzz/fuzz_${target}.c"
[[ -f "$src" ]] || { echo "run.sh: no $src" >&2; exit 2; }
CC=${CC:-clang}
command -v "$CC" >/dev/null || { echo "run.sh: $CC not found (scripts/deps.sh installs clang)" >&2; exit 2; }

OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
mkdir -p "$OUT/core-obj" "$OUT/corpus-$target"
FLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -fno-sanitize-recover=all
       -I "$ROOT/core/include" -I "$ROOT/core/src")

# The core objects and the archive are shared by every target: ctest runs targets side by side, so one builds
# them while the others wait (the lock is held until this target is linked).
exec 9>"$OUT/core.lock"
flock 9
# The core objects: rebuilt when their source, any core header or this script is newer.
newest=$(find "$ROOT/core" "${BASH_SOURCE[0]}" -name '*.h' -o -name sources.txt -o -name run.sh | xargs ls -t | head -n1)
objs=()
while read -r path where; do
  [[ -z "$path" || " $where " == *" uv "* ]] && continue
  obj="$OUT/core-obj/$(basename "${path%.c}").o"
  objs+=("$obj")
  if [[ ! "$obj" -nt "$ROOT/core/$path" || ! "$obj" -nt "$newest" ]]; then
    "$CC" "${FLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$ROOT/core/$path" -o "$obj"
  fi
done < <(sed 's/#.*//' "$ROOT/core/sources.txt")
lib="$OUT/libpolytel_fuzz.a"
rm -f "$lib" && ar rcs "$lib" "${objs[@]}"

exe="$OUT/fuzz_$target"
links=()  # a target's system libraries (its ' * run.sh links:' line); none for most
read -ra links < <(sed -n 's/^ \* run\.sh links: *//p' "$src" | head -n1) || true
echo "run.sh: building $exe"
"$CC" "${FLAGS[@]}" -fsanitize=fuzzer,address,undefined \
  "$src" -Wl,--start-group "$lib" -Wl,--end-group -lm -lpthread "${links[@]}" ${FUZZ_LDLIBS:-} -o "$exe"
exec 9>&-

seeds=()
[[ -d "$ROOT/tests/fuzz/corpus/$target" ]] && seeds+=("$ROOT/tests/fuzz/corpus/$target")
echo "run.sh: fuzzing $target for ${secs}s"
cd "$OUT"
exec "$exe" -max_total_time="$secs" -max_len="${FUZZ_MAX_LEN:-8192}" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$OUT/corpus-$target" "${seeds[@]}"
