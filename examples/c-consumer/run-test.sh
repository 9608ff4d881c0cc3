#!/usr/bin/env bash
# run-test.sh PREFIX — runs the pkg-config consumers and checks what they print, value by value.
set -euo pipefail
cd "$(dirname "$0")"
prefix=$1
fail=0
# Only polytel_* symbols may leave the shared library.
bad=$(nm -D --defined-only "$prefix"/lib/libpolytel.so | awk '{print $3}' | grep -v '^polytel_' || true)
if [ -n "$bad" ]; then echo "c-consumer: libpolytel.so exports non-polytel symbols: $bad"; fail=1; fi
# find_package(polytel) -> polytel::polytel
rm -rf cmake/build
cmake -S cmake -B cmake/build -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build cmake/build >/dev/null
cp cmake/build/consumer-cmake ./consumer-cmake
for kind in shared static cmake; do
  out=$(POLYTEL_CONSOLE=stdout NO_COLOR=1 ./consumer-$kind)
  expect=("INFO consumer: hello from c-consumer, version" "span consumer.work" "counter consumer.items = 3"
          "log consumer: hello from c-consumer"
          "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 sampled=1" "shutdown: POLYTEL_OK")
  for e in "${expect[@]}"; do
    if ! grep -qF -- "$e" <<<"$out"; then echo "c-consumer ($kind): missing '$e' in:"; echo "$out"; fail=1; fi
  done
done
if ldd ./consumer-static | grep -q libpolytel; then
  echo "c-consumer (static): linked libpolytel.so dynamically"; fail=1
fi
[ $fail = 0 ] && echo "c-consumer: pkg-config shared, pkg-config static and find_package consumers passed (6 checks each, exports are polytel_* only)"
exit $fail
