#!/usr/bin/env bash
# Serving benchmark: longnet-server on the embedded demo model, loaded from one client process
# (longnet_serve_load, bench/serve_load.cc: C++, synchronous gRPC, one thread per stream, so that the client
# takes little of the cores it shares with the server). From one run: tokens/s of 1 stream and of 32
# concurrent streams (128 new tokens each, ignore_eos, temperature 1, different seeds; each the best of 3
# interleaved rounds) and their ratio, time to first token (median / p90), the load generator's CPU time
# during the 32 streams, EncodeStream throughput for 8K, 64K and 1,000,000-token documents, and the
# server's peak RSS (VmHWM) after the 1M-token encode. Fails (status 1, naming the call) on any RPC error or short stream.
#
#   bench/serve.sh [BUILD_DIR] [longnet_serve_load options]     (default build/release)
#   options: --max-new-tokens N (128), --streams N (32), --encode-sizes N,N,... (8192,65536,1000000)
#
# Extra server flags go in LONGNET_SERVE_FLAGS (e.g. "--threads 2"). Not run in CI (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
shift || true
server="$build/server/longnet-server"
[[ -x "$server" ]] || { echo "serve: $server not built" >&2; exit 2; }
load="$build/bench/longnet_serve_load"
[[ -x "$load" ]] || { echo "serve: $load not built (LONGNET_BUILD_BENCH=ON)" >&2; exit 2; }

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port (any python3: the socket module only).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
"$server" --host 127.0.0.1 --port "$port" --metrics-port 0 --log-level warn ${LONGNET_SERVE_FLAGS:-} \
  2>"$tmp/server.log" &
server_pid=$!
echo "longnet-server pid $server_pid on 127.0.0.1:$port ($(nproc) cores); flags: ${LONGNET_SERVE_FLAGS:-none}"

if ! "$load" --address "127.0.0.1:$port" --pid "$server_pid" "$@"; then
  echo "serve: the load generator failed; the server's log:" >&2
  tail -n 30 "$tmp/server.log" >&2
  exit 1
fi
