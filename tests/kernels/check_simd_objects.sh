#!/usr/bin/env bash
# The SIMD translation units (*_avx2.cc, *_avx512.cc) are compiled with flags the processor may not have and
# only run after cpu_features.h says so. If one of them emitted an out-of-line copy of an inline function or
# template (a weak symbol: std::fill<float*>, say), the linker could pick that copy for every caller, and a
# processor without AVX-512 would die on an illegal instruction in portable code. This check fails on any
# weak code symbol in those objects.
#   usage: check_simd_objects.sh OBJECT...   (all of longnet_kernels' objects; the SIMD ones are picked here)
set -euo pipefail
status=0
checked=0
for obj in "$@"; do
  case "$obj" in *_avx2.cc.o | *_avx512.cc.o) ;; *) continue ;; esac
  checked=$((checked + 1))
  # W/V: weak symbols; DW.ref.__gxx_personality_v0 is the exception-handling personality pointer (data).
  weak=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[WVu]$/' | grep -v 'DW.ref.__gxx_personality_v0' || true)
  if [[ -n $weak ]]; then
    echo "FAIL: $obj defines weak symbols that other translation units could end up calling:"
    echo "$weak"
    status=1
  fi
done
if ((checked == 0)); then
  echo "FAIL: no *_avx2.cc.o or *_avx512.cc.o among the objects given"
  exit 1
fi
echo "checked $checked SIMD objects"
exit $status
