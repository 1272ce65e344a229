#!/usr/bin/env bash
# Installs every system package the project needs, from Debian's archive. Idempotent: packages already
# present are left alone, and apt is not touched at all when nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-format clang-tidy clang-14 libclang-rt-14-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto
  libabsl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libpcre2-dev
  # The server: Prometheus metrics (with its embedded HTTP server) and the gRPC Python runtime that the
  # integration tests and the README's example use.
  prometheus-cpp-dev python3-grpcio python3-protobuf
  # TLS: the server checks its PEM files with OpenSSL (libssl-dev, which gRPC links already); the tests make
  # throwaway certificates with the openssl command-line tool.
  libssl-dev openssl
  python3 python3-numpy
  # deploy/: the chart's renderer and the validation of the Kubernetes manifests against the vendored
  # strict schemas (tests/deploy).
  python3-yaml python3-jsonschema
  # The float64 PyTorch reference of the model contract (tools/reference) that the engine's parity tests
  # run against, the demo model's training and the torchscale converter.
  python3-torch
  # The demo model's training text (tools/train_demo.py): the KJV Bible and its reader `bible`.
  bible-kjv bible-kjv-text
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
