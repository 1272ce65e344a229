#!/usr/bin/env bash
# A 1,000,000-token input through the demo model (models/demo), with the time and peak RSS of each run
# from /usr/bin/time -v:
#   score  : bits per byte of the text, one sequence, chunked prefill through the bounded KV cache;
#   encode : the mean-pooled final-LN hidden state of the same text (the same path, hidden states out).
# The text is the start of the KJV (Debian's bible-kjv), 999,999 bytes: with [bos], 1,000,000 tokens.
#
#   bench/long_context.sh [BUILD_DIR]        (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
run="$build/model/cli/longnet-run"
[[ -x "$run" ]] || { echo "long_context: $run not built" >&2; exit 2; }
command -v bible >/dev/null || { echo "long_context: 'bible' missing (tools/install-deps.sh installs bible-kjv)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f Gen1:1-Rev22:21 </dev/null >"$tmp/kjv.txt"  # whole, then cut: head in a pipe would SIGPIPE it
head -c 999999 "$tmp/kjv.txt" >"$tmp/text.txt"
echo "input: $(wc -c <"$tmp/text.txt") bytes = $(($(wc -c <"$tmp/text.txt") + 1)) tokens with [bos]; $(nproc) cores"

measure() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >"$tmp/$name.out" 2>"$tmp/$name.time"
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$tmp/$name.time" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$tmp/$name.time" | awk '{print $NF}')
  echo "$name: wall=$wall peak_rss_mib=$((rss / 1024)) output=$(head -c 120 "$tmp/$name.out")"
}
measure score "$run" score --model models/demo --input "$tmp/text.txt"
measure encode "$run" encode --model models/demo --input "$tmp/text.txt" --pooling mean
