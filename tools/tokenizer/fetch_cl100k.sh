#!/usr/bin/env bash
# Regenerates tests/data/tokenizer/cl100k_base.tiktoken, the cl100k_base BPE rank file (OpenAI's tiktoken,
# MIT), from the npm package `tiktoken` (dqbd's WASM build of OpenAI's Rust core, MIT). The package ships
# the ranks in its own compressed JSON (`encoders/cl100k_base.json`, field bpe_ranks: lines of
# "! <first rank> <base64 token> <base64 token> ...", consecutive ranks); this writes the plain .tiktoken
# format the engine reads ("<base64 token bytes> <rank>" per line) and checks that the result is
# byte-identical to OpenAI's published file (the sha256 tiktoken itself pins for cl100k_base).
#
# Only needed to refresh the committed file: the build and CI read the committed copy and need no node/npm.
# Usage: tools/tokenizer/fetch_cl100k.sh [output path]   (needs npm + node; works in a temporary directory)
set -euo pipefail

package=tiktoken
version=1.0.22
tarball_sha256=55c339e756fdb17604f7c7e3eb35d2bcbffe4d960e8096e50285d1cefa51dd90
ranks_sha256=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/tests/data/tokenizer/cl100k_base.tiktoken}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tgz="$work/$package-$version.tgz"
echo "$tarball_sha256  $tgz" | sha256sum --check --quiet
tar -xzf "$tgz" -C "$work" package/encoders/cl100k_base.json

node - "$work/package/encoders/cl100k_base.json" "$work/cl100k_base.tiktoken" <<'JS'
const fs = require("fs");
const [json_path, out_path] = process.argv.slice(2);
const ranks = JSON.parse(fs.readFileSync(json_path, "utf8")).bpe_ranks;
let text = "";
for (const line of ranks.split("\n").filter(Boolean)) {
  const [, first, ...tokens] = line.split(" ");
  tokens.forEach((token, i) => { text += `${token} ${Number.parseInt(first, 10) + i}\n`; });
}
fs.writeFileSync(out_path, text);
JS

echo "$ranks_sha256  $work/cl100k_base.tiktoken" | sha256sum --check --quiet
cp "$work/cl100k_base.tiktoken" "$out"
echo "fetch_cl100k: wrote $out ($package@$version, sha256 $ranks_sha256)"
