#!/usr/bin/env bash
# Serving benchmark: longnet-server on the embedded demo model, loaded from one client process
# (bench/serve_load.py: threads + grpcio). From one run: tokens/s of 1 stream and of 32 concurrent streams
# (128 new tokens each, ignore_eos, temperature 1, different seeds) and their ratio, time to first token
# (median / p90), EncodeStream throughput for 8K, 64K and 1,000,000-token documents, and the server's peak
# RSS (VmHWM) after the 1M-token encode.
#
#   bench/serve.sh [BUILD_DIR] [serve_load.py options]     (default build/release)
#
# Extra server flags go in LONGNET_SERVE_FLAGS (e.g. "--threads 2"). Not run in CI (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
shift || true
server="$build/server/longnet-server"
[[ -x "$server" ]] || { echo "serve: $server not built" >&2; exit 2; }
python=/usr/bin/python3  # Debian's, with python3-grpcio and python3-protobuf
"$python" -c "import grpc, google.protobuf" 2>/dev/null \
  || { echo "serve: $python lacks grpcio/protobuf (tools/install-deps.sh installs them)" >&2; exit 2; }

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

# Python stubs: the ones the test build generates, else made here.
stubs="$build/tests/server/integration/python_stubs"
if [[ ! -f "$stubs/longnet/v1/generate_pb2_grpc.py" ]]; then
  stubs="$tmp/stubs"
  mkdir -p "$stubs"
  (cd proto && protoc --python_out="$stubs" --grpc_python_out="$stubs" \
    --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" -I . -I /usr/share/grpc-proto \
    longnet/v1/*.proto grpc/health/v1/health.proto)
fi

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
"$server" --host 127.0.0.1 --port "$port" --metrics-port 0 --log-level warn ${LONGNET_SERVE_FLAGS:-} \
  2>"$tmp/server.log" &
server_pid=$!
echo "longnet-server pid $server_pid on 127.0.0.1:$port ($(nproc) cores); flags: ${LONGNET_SERVE_FLAGS:-none}"

if ! "$python" bench/serve_load.py --address "127.0.0.1:$port" --stubs "$stubs" --pid "$server_pid" "$@"; then
  echo "serve: the load generator failed; the server's log:" >&2
  tail -n 30 "$tmp/server.log" >&2
  exit 1
fi
