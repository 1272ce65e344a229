#!/usr/bin/env bash
# clang-tidy (the root .clang-tidy) over the project's C++ sources, using a build's compile_commands.json.
#   tools/tidy.sh [BUILD_DIR] [FILE...]     default build dir: build/ci-release
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/ci-release}
shift || true
[[ -f $build/compile_commands.json ]] || { echo "tidy: configure $build first (cmake -S . -B $build)" >&2; exit 2; }
if (($# == 0)); then
  mapfile -t files < <(git ls-files -- 'kernels/*.cc' 'model/*.cc' 'tests/*.cc' 'bench/*.cc' | grep -v '/cuda/')
else
  files=("$@")
fi
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>/dev/null
