#!/usr/bin/env bash
# Proves that a built CUDA library holds machine code (SASS, in cubin ELF images) for every architecture we
# ship, and that each of those images contains our kernels. Run by CTest (tests/CMakeLists.txt).
#
# usage: check_cuda_archs.sh LIBRARY CUOBJDUMP ARCHS KERNEL_PATTERN...
#   LIBRARY         e.g. build/kernels/liblongnet_kernels_cuda.a
#   CUOBJDUMP       path of cuobjdump; when it is not there (pip-wheel toolkits ship nvcc without it), the
#                   fat binaries are read by cuda_elf_inspect.py next to this script instead
#   ARCHS           comma-separated, e.g. sm_80,sm_90
#   KERNEL_PATTERN  extended regex that must match an STT_FUNC symbol in every arch, e.g. layer_norm_kernel
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 LIBRARY CUOBJDUMP ARCHS KERNEL_PATTERN..." >&2
  exit 2
fi
library=$1
cuobjdump=$2
IFS=, read -r -a archs <<<"$3"
shift 3
kernels=("$@")

if [[ ! -f $library ]]; then
  echo "FAIL: library not found: $library" >&2
  exit 1
fi

if [[ -x $cuobjdump ]]; then
  tool="$cuobjdump"
  list_elf() { "$cuobjdump" --list-elf "$library"; }
  symbols_for() { "$cuobjdump" --gpu-architecture "$1" --dump-elf-symbols "$library"; }
else
  inspect="$(dirname "$0")/cuda_elf_inspect.py"
  tool="$inspect (no cuobjdump at '$cuobjdump')"
  list_elf() { python3 "$inspect" --list-elf "$library"; }
  symbols_for() { python3 "$inspect" --symbols --arch "$1" "$library"; }
fi
echo "library: $library"
echo "tool:    $tool"

elf_list=$(list_elf)
echo "$elf_list"

failures=0
for arch in "${archs[@]}"; do
  # sm_80 must not be satisfied by sm_800 or sm_80a: the arch is followed by '.' (name.sm_80.cubin).
  if ! grep -Eq "[^0-9a-z_]${arch}\." <<<"$elf_list"; then
    echo "FAIL: no $arch ELF (SASS) image in $library" >&2
    failures=$((failures + 1))
    continue
  fi
  arch_symbols=$(symbols_for "$arch")
  for kernel in "${kernels[@]}"; do
    # Not grep -q: it would stop reading at the first match, the first grep would die of SIGPIPE, and
    # pipefail would turn a found kernel into a failure (it did once the symbol lists grew).
    if grep -E "STT_FUNC" <<<"$arch_symbols" | grep -E -- "$kernel" >/dev/null; then
      echo "ok:   $arch has $kernel"
    else
      echo "FAIL: no STT_FUNC symbol matching '$kernel' in the $arch images" >&2
      failures=$((failures + 1))
    fi
  done
done

if [[ $failures -gt 0 ]]; then
  echo "FAIL: $failures missing architecture(s) or kernel(s)" >&2
  exit 1
fi
echo "PASS: ${archs[*]} ELF present with all ${#kernels[@]} kernel patterns"
