#!/usr/bin/env bash
# Serving benchmark: longnet-server loaded from one client process (longnet_serve_load, bench/serve_load.cc:
# C++, synchronous gRPC, one thread per stream, so that the client takes little of the cores it shares with
# the server). One run measures two models, each on a server of its own, one after the other:
#   demo  the embedded demo model (E 256, 4 layers, 3.2M parameters, 12.8 MB): every figure below;
#   base  a decoder of LongNet-base's shape (E 768, 12 heads, FFN 3072, 12 layers, 85M parameters, 341 MB of
#         float32) with random weights, written once by tools/reference/make_test_model.py into
#         BUILD_DIR/bench-models/base: the generation figures (its text is noise; its speed is that of a
#         real model of this shape).
# Why both: the demo model's weights stay in the caches, so one stream of it already runs near the cores'
# arithmetic speed and batching has little to share; a model of a size people serve is bound by reading its
# weights at one stream, which is the cost continuous batching shares among the streams of a step.
#
# Figures per model: tokens/s of 1 stream and of 32 concurrent streams (128 new tokens each, ignore_eos,
# temperature 1, different seeds; each the best of 3 interleaved rounds) and their ratio, time to first
# token (median / p90), the load generator's CPU time during the 32 streams, the server's peak RSS (VmHWM);
# for the demo model also EncodeStream throughput for 8K, 64K and 1,000,000-token documents (the peak RSS
# is then read after them). Fails (status 1, naming the call) on any RPC error or short stream.
#
#   bench/serve.sh [BUILD_DIR] [longnet_serve_load options]     (default build/release)
#   options: --max-new-tokens N (128), --streams N (32), --encode-sizes N,N,... (8192,65536,1000000)
#
# LONGNET_SERVE_MODELS picks the models ("demo base", the default; or one of them); extra server flags go in
# LONGNET_SERVE_FLAGS (e.g. "--threads 2"). Not run in CI (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
shift || true
server="$build/server/longnet-server"
[[ -x "$server" ]] || { echo "serve: $server not built" >&2; exit 2; }
load="$build/bench/longnet_serve_load"
[[ -x "$load" ]] || { echo "serve: $load not built (LONGNET_BUILD_BENCH=ON)" >&2; exit 2; }
models="${LONGNET_SERVE_MODELS:-demo base}"
for m in $models; do
  [[ "$m" == demo || "$m" == base ]] || { echo "serve: LONGNET_SERVE_MODELS: unknown model \"$m\"" >&2; exit 2; }
done

tmp=$(mktemp -d)
server_pid=
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT

# The base-shaped model, made once per build folder (about 20 s; Debian's python3-torch, which
# tools/install-deps.sh installs, hence /usr/bin/python3 and not whichever python3 is first on PATH).
base_dir="$build/bench-models/base"
make_base_model() {
  [[ -f "$base_dir/model.safetensors" ]] && return
  echo "serve: writing the base-shaped random model to $base_dir" >&2
  rm -rf "$base_dir.partial"
  /usr/bin/python3 tools/reference/make_test_model.py --out "$base_dir.partial" --embed-dim 768 --heads 12 \
    --ffn 3072 --layers 12 --branches 128:1,512:2,2048:4 --seed 7 >/dev/null
  rm -rf "$base_dir"
  mv "$base_dir.partial" "$base_dir"
}

# run_model NAME SERVER_FLAGS... -- LOAD_OPTIONS...
run_model() {
  local name=$1
  shift
  local flags=()
  while [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  shift
  # A free port (any python3: the socket module only).
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2086
  "$server" --host 127.0.0.1 --port "$port" --metrics-port 0 --log-level warn "${flags[@]}" \
    ${LONGNET_SERVE_FLAGS:-} 2>"$tmp/server-$name.log" &
  server_pid=$!
  echo
  echo "== $name: longnet-server pid $server_pid on 127.0.0.1:$port ($(nproc) cores);" \
    "flags: ${flags[*]} ${LONGNET_SERVE_FLAGS:-}"
  if ! "$load" --address "127.0.0.1:$port" --pid "$server_pid" "$@"; then
    echo "serve: the load generator failed on the $name model; the server's log:" >&2
    tail -n 30 "$tmp/server-$name.log" >&2
    exit 1
  fi
  stop_server
}

for m in $models; do
  case "$m" in
    demo) run_model demo -- "$@" ;;
    base)
      make_base_model
      run_model base --model "$base_dir" -- "$@" --encode-sizes none
      ;;
  esac
done
