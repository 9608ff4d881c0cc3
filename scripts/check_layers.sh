#!/usr/bin/env bash
# check_layers.sh — the core's layers only call down: fails when a file includes a higher layer's header.
#
# core/src/<layer>/, lowest first: common, record, export, transport, runtime (docs/architecture.md draws
# them). A file includes core headers as "<layer>/<file>.h": from its own layer any of them, from a lower
# layer only that layer's one internal header, <layer>/<layer>.h; never from a higher layer. Every core
# source lives in a layer folder. Run by ctest (make test-core) and by hand: scripts/check_layers.sh [ROOT].
set -euo pipefail

ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SRC="$ROOT/core/src"
LAYERS=(common record export transport runtime)

rank() {
  local i
  for i in "${!LAYERS[@]}"; do [[ ${LAYERS[$i]} == "$1" ]] && { echo "$i"; return; }; done
  echo -1
}

fail=0
complain() {
  echo "check_layers: $*" >&2
  fail=1
}

shopt -s nullglob
for f in "$SRC"/*.c "$SRC"/*.h; do complain "${f#"$ROOT"/} is outside the layer folders (${LAYERS[*]})"; done
for d in "$SRC"/*/; do
  l=$(basename "$d")
  [[ $(rank "$l") -ge 0 ]] || complain "core/src/$l/ is not a layer (${LAYERS[*]})"
done

checked=0
for l in "${LAYERS[@]}"; do
  own=$(rank "$l")
  [[ -f "$SRC/$l/$l.h" ]] || complain "core/src/$l/ has no internal header $l/$l.h"
  for f in "$SRC/$l"/*.c "$SRC/$l"/*.h; do
    checked=$((checked + 1))
    while IFS=: read -r line inc; do
      target=${inc%%/*}
      if [[ $inc != */* ]]; then
        [[ $inc == polytel.h || $inc == polytel/* ]] && continue
        complain "${f#"$ROOT"/}:$line includes \"$inc\": name core headers by their layer (\"$l/$inc\")"
        continue
      fi
      [[ $target == polytel ]] && continue # polytel/version.h, polytel/uv.h: the public headers
      r=$(rank "$target")
      if [[ $r -lt 0 ]]; then
        complain "${f#"$ROOT"/}:$line includes \"$inc\": no layer $target"
      elif [[ $r -gt $own ]]; then
        complain "${f#"$ROOT"/}:$line includes \"$inc\": $l is below $target (a lower layer calls up)"
      elif [[ $r -lt $own && $inc != "$target/$target.h" ]]; then
        complain "${f#"$ROOT"/}:$line includes \"$inc\": from above, a layer is reached through $target/$target.h"
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | sed 's/^\([0-9]*\):.*"\(.*\)".*/\1:\2/')
  done
done

[[ $checked -gt 0 ]] || complain "no core sources under $SRC"
if [[ $fail -ne 0 ]]; then
  echo "check_layers: FAILED (docs/architecture.md, \"Layers\")" >&2
  exit 1
fi
echo "check_layers: $checked files in ${#LAYERS[@]} layers (${LAYERS[*]}) include only down"
