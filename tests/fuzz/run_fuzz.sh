#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan, CPU only, no tests or benchmarks) in their own
# build directory and runs model_loader_fuzz for a bounded time. Exits non-zero when the fuzzer finds a crash,
# a sanitizer report, a timeout or a broken invariant; the input that did it is left in the artifacts
# directory and printed, and replays with: <build>/tests/fuzz/model_loader_fuzz <artifact>.
#
#   tests/fuzz/run_fuzz.sh [SECONDS] [libFuzzer flags...]     default 30 seconds, e.g.
#   tests/fuzz/run_fuzz.sh 300 -jobs=2 -workers=2
#
# Environment: LONGNET_FUZZ_BUILD_DIR (default build/fuzz). New inputs the fuzzer finds go to
# <build>/corpus, never into the committed seeds (tests/fuzz/corpus, made by tests/fuzz/make_corpus.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${LONGNET_FUZZ_BUILD_DIR:-$root/build/fuzz}"
seconds="${1:-30}"
shift $(($# > 0 ? 1 : 0))
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "run_fuzz: SECONDS must be a whole number, not '$seconds'" >&2
  exit 2
fi

cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLONGNET_WITH_CUDA=OFF -DLONGNET_BUILD_TESTS=OFF -DLONGNET_BUILD_BENCH=OFF -DLONGNET_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" --target model_loader_fuzz

mkdir -p "$build/corpus" "$build/artifacts"
# -timeout: one input taking over 10 s is a hang; -rss_limit_mb: an input that makes the loader allocate
# gigabytes is a finding too. ASan/UBSan stop at the first report (the build has -fno-sanitize-recover).
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  "$build/tests/fuzz/model_loader_fuzz" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -dict="$root/tests/fuzz/model_loader.dict" -artifact_prefix="$build/artifacts/" \
  "$@" "$build/corpus" "$root/tests/fuzz/corpus"
