#!/usr/bin/env bash
# clang-format over every C++/CUDA/proto source of the project. --check fails on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
files=()
while IFS= read -r f; do
  [[ -f "$f" ]] && files+=("$f")  # tracked files deleted in the working tree are skipped
done < <(git ls-files -co --exclude-standard -- '*.h' '*.cc' '*.cu' '*.cuh' '*.proto' | sort -u)
if [[ "${1:-}" == "--check" ]]; then
  clang-format --dry-run --Werror "${files[@]}"
  echo "format: ${#files[@]} files clean"
else
  clang-format -i "${files[@]}"
fi
