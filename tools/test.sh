#!/usr/bin/env bash
# The test command: installs the Debian packages, configures, builds and runs every test.
#   1. the default build (Release; CUDA sources compiled when nvcc exists) and its full test suite;
#   2. a CPU-only (LONGNET_WITH_CUDA=OFF) build with AddressSanitizer + UndefinedBehaviorSanitizer,
#      whose tests run under the sanitizers;
#   3. the same with ThreadSanitizer (the thread pool, the memory pool, the threaded kernels, the engine);
#   4. the libFuzzer target of the model loader (clang-14, ASan + UBSan) for 30 seconds from its seeds;
#   before all, a clang-format check of every source file.
# Build trees go to build/ci-*; ccache keeps rebuilds fast.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tools/install-deps.sh

jobs=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/longnet-ccache}"
# One cache for every clone: paths under the checkout are hashed relative to it (and not the build folder
# itself), so a fresh clone in another folder -- as CI makes -- reuses what an earlier clone compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}" CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-20G}"
launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "format check"
tools/format.sh --check

step "configure + build: default (Release, LONGNET_WITH_CUDA=AUTO)"
cmake -S . -B build/ci-release -G Ninja -DLONGNET_WERROR=ON "${launcher[@]}"
cmake --build build/ci-release -j "$jobs"

step "test: default build"
ctest --test-dir build/ci-release --output-on-failure -j "$jobs"
# CTest lists skipped tests without their reason; the GPU runner prints it (or runs them on a GPU).
if [[ -x build/ci-release/tests/longnet_gpu_tests ]]; then
  tests/gpu/run.sh build/ci-release
fi

step "configure + build: CPU only, ASan + UBSan"
cmake -S . -B build/ci-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGNET_WITH_CUDA=OFF \
  -DLONGNET_SANITIZE=ON -DLONGNET_WERROR=ON -DLONGNET_BUILD_BENCH=OFF "${launcher[@]}"
cmake --build build/ci-sanitize -j "$jobs"

step "test: CPU only under ASan + UBSan (without the minute-long 65,536-token parity cases, label long)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/ci-sanitize --output-on-failure -j "$jobs" -LE long

step "configure + build: CPU only, ThreadSanitizer"
cmake -S . -B build/ci-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGNET_WITH_CUDA=OFF \
  -DLONGNET_TSAN=ON -DLONGNET_WERROR=ON -DLONGNET_BUILD_BENCH=OFF "${launcher[@]}"
cmake --build build/ci-tsan -j "$jobs"

step "test: CPU only under ThreadSanitizer"
# OpenBLAS's own worker threads synchronise in uninstrumented code that TSan cannot see (it reports their
# hand-offs as races); with one BLAS thread, every thread TSan watches is ours.
# Debian's gRPC and Abseil are not instrumented either: tools/tsan.supp names them (and only them); the
# end-to-end server tests are not run under TSan (tests/server/integration/CMakeLists.txt says why).
OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tools/tsan.supp" \
  ctest --test-dir build/ci-tsan --output-on-failure -j "$jobs" -LE long

step "fuzz: model loader (config.json + safetensors header), 30 s"
CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache LONGNET_FUZZ_BUILD_DIR="$root/build/ci-fuzz" \
  tests/fuzz/run_fuzz.sh 30

step "all tests passed"

