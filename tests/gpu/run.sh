#!/usr/bin/env bash
# Runs the GPU tests on a machine with a CUDA device: first as they are, then under compute-sanitizer's
# memcheck (out-of-bounds and misaligned device accesses, leaks, API errors) and racecheck (shared-memory
# hazards between the threads of a block: the attention, softmax, layer-norm and sampling kernels share
# tiles and reductions through it). Without a device, or without the tests built, it says why and does
# nothing (exit 0), so it can sit in any script.
#
# usage: tests/gpu/run.sh [BUILD_DIR]     (default: build/cuda)
#   LONGNET_REQUIRE_GPU=1   turn "nothing to do" into a failure (exit 1), for a GPU runner
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/cuda}
tests=$build/tests/longnet_gpu_tests

nothing_to_do() {
  echo "tests/gpu/run.sh: not running the GPU tests: $1"
  if [[ ${LONGNET_REQUIRE_GPU:-0} == 1 ]]; then exit 1; fi
  exit 0
}

if [[ ! -x $tests ]]; then
  nothing_to_do "$tests is not built (configure with CUDA and build the longnet_gpu_tests target)"
fi

# The test binary asks the CUDA runtime itself (cuda::device_count), so the reason is the one the tests
# would print when they skip.
probe=$("$tests" --gtest_filter='CudaDeviceTest.DeviceCountIsPositiveOrSaysWhyNot' 2>&1 || true)
if reason=$(grep -m1 '^device_count(): ' <<<"$probe"); then
  nothing_to_do "${reason#device_count(): }"
fi
if ! grep -q '\[  PASSED  \] 1 test' <<<"$probe"; then
  echo "$probe"
  echo "tests/gpu/run.sh: the device probe failed (output above)" >&2
  exit 1
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,compute_cap,driver_version,memory.total --format=csv
fi

echo "== GPU tests"
"$tests" --gtest_color=no

# compute-sanitizer ships with the toolkit, next to nvcc (bin/) or in its own folder.
nvcc_dir=$(dirname "$(readlink -f "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
sanitizer=""
for candidate in "$nvcc_dir/compute-sanitizer" "$nvcc_dir/../compute-sanitizer/compute-sanitizer" \
  "$(command -v compute-sanitizer || true)"; do
  if [[ -n $candidate && -x $candidate ]]; then
    sanitizer=$candidate
    break
  fi
done
if [[ -z $sanitizer ]]; then
  echo "tests/gpu/run.sh: compute-sanitizer not found (not next to nvcc, not on PATH): memcheck not run" >&2
  exit 1
fi

# The largest parity cases are slow under the sanitizers and add nothing the small ones do not check.
large='*PastGridCap*:*LongSchedule*'
echo "== GPU tests under $sanitizer --tool memcheck"
"$sanitizer" --tool memcheck --leak-check full --error-exitcode 99 \
  "$tests" --gtest_color=no --gtest_filter="-$large"

# racecheck is much slower again: the kernels with shared memory, one dtype, the smaller shapes.
echo "== GPU tests under $sanitizer --tool racecheck"
"$sanitizer" --tool racecheck --racecheck-report all --error-exitcode 99 \
  "$tests" --gtest_color=no \
  --gtest_filter="*DilatedAttention*f32*:*PrefixAttention*f32*:*MergeLse*:*Softmax*:*LayerNorm*:*Sampling*-$large"
echo "tests/gpu/run.sh: GPU tests, memcheck and racecheck passed"
