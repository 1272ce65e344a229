#!/usr/bin/env bash
# Builds the benchmarks (Release, build/bench) and prints, from one run on this machine:
#   sgemm gflops=<x>                              OpenBLAS sgemm at 2048^3, all threads (the reference)
#   attention N=<n> seconds=<s> gflops=<g>        dilated attention, H=8, D=64, paper schedule, causal
#   ratio attention(N=65536)/sgemm=<x>  t(1M)/t(64K)=<y>
# gflops counts only useful work: 4*D flops per (query, visible key) pair over all branches and heads.
# N=1048576 needs about 8.5 GB of memory and a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LONGNET_BENCH_BUILD_DIR:-build/bench}

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGNET_BUILD_TESTS=OFF -DLONGNET_WITH_CUDA=OFF \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$build" -j "$(nproc)" --target longnet_gemm_bench longnet_attention_bench >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/bench/longnet_gemm_bench" --benchmark_filter='^BM_Sgemm/2048$' --benchmark_repetitions=3 \
  --benchmark_format=json >"$out/gemm.json"
"$build/bench/longnet_attention_bench" --benchmark_format=json >"$out/attention.json"

python3 - "$out/gemm.json" "$out/attention.json" <<'PY'
import json, sys

gemm = json.load(open(sys.argv[1]))["benchmarks"]
runs = [b for b in gemm if b.get("run_type") == "iteration"]
sgemm = max(b["gflops"] for b in runs) / 1e9 if runs[0]["gflops"] > 1e6 else max(b["gflops"] for b in runs)
print(f"sgemm gflops={sgemm:.1f}")

seconds = {}
for b in json.load(open(sys.argv[2]))["benchmarks"]:
    n = int(b["name"].split("/")[1])
    seconds[n] = b["real_time"]  # the benchmark's unit is seconds
    print(f"attention N={n} seconds={b['real_time']:.3f} gflops={b['gflops']:.1f}")
att = json.load(open(sys.argv[2]))["benchmarks"]
g64 = next(b["gflops"] for b in att if b["name"].split("/")[1] == "65536")
print(f"ratio attention(N=65536)/sgemm={g64 / sgemm:.2f}  t(1M)/t(64K)={seconds[1048576] / seconds[65536]:.2f}")
PY
