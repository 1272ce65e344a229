// Writes tests/data/tokenizer/cl100k_golden.json: cl100k_base token ids for a varied set of texts, computed
// by the npm package `tiktoken` (the WASM build of OpenAI's Rust tiktoken core), which the C++ tokenizer
// must reproduce id for id. Only needed to regenerate the committed file; CI needs neither node nor npm.
//
//   npm install --prefix /tmp/tiktoken-npm --no-save tiktoken@1.0.22
//   NODE_PATH=/tmp/tiktoken-npm/node_modules node tools/tokenizer/gen_golden.js \
//       tests/data/tokenizer/cl100k_golden.json
//
// Each case: "text" (valid UTF-8) or "bytes_hex" (raw bytes that are not valid UTF-8), "allow_special"
// (false: special-token strings are plain text, tiktoken's encode_ordinary; true: encode(text, "all")),
// "ids", and "decoded" (the text decode(ids) must give: the engine's decode drops special tokens, which
// tiktoken's would spell out). Invalid input bytes are replaced as the engine documents: one U+FFFD per
// maximal ill-formed subpart, which is exactly what TextDecoder does here.
"use strict";
const fs = require("fs");
const { get_encoding } = require("tiktoken");
const expected_version = "1.0.22";

// The package's "exports" hide package.json from require(); read it next to the resolved entry point.
const package_json = require("path").join(require.resolve("tiktoken"), "..", "package.json");
const version = JSON.parse(fs.readFileSync(package_json, "utf8")).version;
if (version !== expected_version) {
  throw new Error(`tiktoken ${version} found, the golden file is pinned to ${expected_version}`);
}

const cases = [];
const add = (name, text, allow_special = false) => cases.push({ name, text, allow_special });
const add_bytes = (name, bytes) => cases.push({ name, bytes: Uint8Array.from(bytes), allow_special: false });

add("empty", "");
add("hello", "hello world");
add("english", "The quick brown fox jumps over the lazy dog. It's 3:45 p.m., isn't it?");
add("prose",
    "LongNet scales sequence length to more than 1 billion tokens, without sacrificing the performance on " +
    "shorter sequences. Dilated attention expands the attentive field exponentially as the distance grows.");
add("contractions", "I'm you'll THEY'RE it'S we've she'd don't Can'T I'LL 'Tis ma'am rock'n'roll");
add("contraction_long_s", "'\u017fx '\u017f 'SX 'Sx 'sX 'KELVIN '\u212aey");
add("apostrophe_curly", "it\u2019s don\u2019t \u2018quoted\u2019");
add("code_cpp",
    "#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n" +
    "  for (auto& x : v) x *= 2;  // doubled\n  return v.size() > 2 ? 0 : 1;\n}\n");
add("code_python",
    "def f(x):\n    if x <= 0:\n        return []\n\tpass\n    return [i ** 2 for i in range(x)]  # squares\n");
add("json", '{"a": [1, 2.5e-3, null, true], "b": {"c": "d\\n"}}');
add("url", "https://example.com/path/to/page?query=1&x=%20y#frag user@example.org");
add("spaces_runs", "a  b   c    d     e\t\tf \t g  \n  h   ");
add("trailing_spaces", "end with spaces     ");
add("leading_spaces", "     start with spaces");
add("only_spaces", "          ");
add("newlines", "\n\n\nx\n\n\n\ny\n");
add("crlf", "line one\r\nline two\r\n\r\nline four\r\n");
add("cr_only", "a\rb\r\rc");
add("space_newline_mix", "a \n b  \n\n  c\t\n\td \r\n e");
add("digits", "0 1 12 123 1234 12345 123456 1234567 12345678901234567890");
add("decimals", "3.14159 -2.5e10 1,000,000 0x1F 0b1010 1e-9 $19.99 50%");
add("dates", "2024-01-15T10:30:00Z 15/01/2024 v1.2.3");
add("digits_unicode", "\u0661\u0662\u0663\u0664 \u0967\u0968\u0969 \uff11\uff12\uff13\uff14 \u00bd\u2153 \u2460\u2461");
add("cjk_chinese", "\u6211\u7231\u81ea\u7136\u8bed\u8a00\u5904\u7406\u3002\u957f\u5e8f\u5217\u6a21\u578b\uff01");
add("cjk_japanese", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3082\u3002");
add("cjk_korean", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.");
add("cyrillic_greek", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5");
add("arabic_hebrew", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd");
add("thai_devanagari", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e");
add("emoji", "\ud83d\ude00 \ud83d\udc4d\ud83c\udffd \ud83c\uddfa\ud83c\uddf8 \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67 \u2764\ufe0f \ud83e\udd16\ud83d\ude80");
add("emoji_run", "\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00x");
add("combining", "e\u0301 a\u0300 n\u0303 o\u0308\u0304 Z\u0351\u036b\u0343\u036a\u0302 \u1ec7 Vi\u1ec7t Nam");
add("zero_width", "a\u200bb\u200cc\u200dd\ufeffe");
add("unicode_spaces", "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g \u180eh\u000bi\u000cj");
add("nel_runs", "x\u0085\u0085y \u0085 z\u0085\n");
add("punctuation", "!!! ??? ... --- *** ((( ))) [[[]]] {{}} <<>> ~~ `` ^^ || \\\\ // ;; :: ,, ''' \"\"\"");
add("math", "\u2200x\u2208\u211d: x\u00b2 \u2265 0 \u2227 \u221a4 = 2 \u2211\u1d62 a\u1d62 \u2264 \u221e");
add("mixed_case", "camelCaseName snake_case_name SCREAMING_CASE PascalCase kebab-case");
add("special_as_text", "<|endoftext|> hello <|fim_prefix|>x<|fim_middle|>y<|fim_suffix|><|endofprompt|>");
add("special_allowed", "<|endoftext|> hello <|fim_prefix|>x<|fim_middle|>y<|fim_suffix|><|endofprompt|>", true);
add("special_allowed_adjacent", "a<|endoftext|><|endoftext|>b <|endoftext|>\n", true);
add("special_allowed_partial", "<|endoftext| <|endoftext|x <|end", true);
add("long_letter_run", "a".repeat(3000));
add("long_letter_run_2", "ab".repeat(1200) + " " + "xyz".repeat(700));
add("long_space_run", " ".repeat(2000) + "x" + " ".repeat(1500));
add("long_newline_run", "\n".repeat(1000) + "y" + "\r\n".repeat(500));
add("long_digit_run", "9".repeat(1000));
add("long_punct_run", "-=".repeat(800) + "!".repeat(700));
add("long_cjk_run", "\u6f22".repeat(600));
add("long_emoji_run", "\ud83d\ude80".repeat(300));

// Invalid UTF-8: lone continuation bytes, truncated sequences, overlongs, surrogates, bytes never used.
add_bytes("invalid_lone_continuation", [0x61, 0x80, 0x62, 0xbf, 0xbf, 0x63]);
add_bytes("invalid_truncated_2", [0x61, 0xc3, 0x20, 0x62, 0xc3]);
add_bytes("invalid_truncated_3", [0xe6, 0x97, 0x20, 0xe6, 0x61]);
add_bytes("invalid_truncated_4", [0xf0, 0x9f, 0x98, 0x20, 0xf0, 0x9f, 0x61, 0xf0]);
add_bytes("invalid_overlong", [0xc0, 0xaf, 0x20, 0xe0, 0x80, 0xaf, 0x20, 0xf0, 0x80, 0x80, 0xaf]);
add_bytes("invalid_surrogate", [0xed, 0xa0, 0x80, 0x20, 0xed, 0xbf, 0xbf, 0x78]);
add_bytes("invalid_above_max", [0xf4, 0x90, 0x80, 0x80, 0x20, 0xf5, 0x80, 0xfe, 0xff, 0x79]);
add_bytes("invalid_mixed_valid", [0x68, 0xc3, 0xa9, 0xff, 0xe2, 0x82, 0xac, 0xe2, 0x82, 0x20, 0xf0, 0x9f, 0x98, 0x80]);

// Random strings over a mixed alphabet, from a fixed-seed generator so the file is reproducible.
const alphabet = [
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  ..."      \t\n\r.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`",
  "'s", "'t", "'re", "'LL", "\r\n", "  ", "\u00e9", "\u00df", "\u0416", "\u03a9", "\u4e2d", "\u6587",
  "\u3042", "\ud55c", "\u0661", "\u00a0", "\u3000", "\u0301", "\u200d", "\ud83d\ude00", "\ud83c\udf89",
  "\u2764\ufe0f", "\u0085", "\u2028", "\u00bd", "<|endoftext|>",
];
let state = 0x2545f491;
const next_random = () => {  // xorshift32
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state;
};
for (let i = 0; i < 160; ++i) {
  const length = 1 + (next_random() % 48);
  let text = "";
  for (let j = 0; j < length; ++j) text += alphabet[next_random() % alphabet.length];
  add(`random_${i}`, text, i % 8 === 7);
}

const encoding = get_encoding("cl100k_base");
const special_tokens = {
  "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
  "<|endofprompt|>": 100276,
};
for (const [name, id] of Object.entries(special_tokens)) {  // the set the C++ tests configure
  if (encoding.encode(name, "all").join() !== String(id)) throw new Error(`${name} is not special ${id}`);
}
const utf8_decoder = new TextDecoder("utf-8");  // non-fatal: U+FFFD per maximal subpart (WHATWG)
const out_cases = cases.map((c) => {
  const text = c.bytes ? utf8_decoder.decode(c.bytes) : c.text;
  const ids = Array.from(c.allow_special ? encoding.encode(text, "all") : encoding.encode_ordinary(text));
  const special_ids = new Set(Object.values(special_tokens));
  const text_ids = ids.filter((id) => !special_ids.has(id));
  const decoded = utf8_decoder.decode(encoding.decode(Uint32Array.from(text_ids)));
  const entry = { name: c.name };
  if (c.bytes) entry.bytes_hex = Buffer.from(c.bytes).toString("hex");
  else entry.text = c.text;
  entry.allow_special = c.allow_special;
  entry.ids = ids;
  entry.decoded = decoded;
  return entry;
});
encoding.free();

const doc = {
  generator: "tools/tokenizer/gen_golden.js",
  package: `tiktoken@${version}`,
  encoding: "cl100k_base",
  cases: out_cases,
};
// One case per line keeps diffs of a regenerated file readable.
const body = doc.cases.map((c) => "    " + JSON.stringify(c)).join(",\n");
const header = JSON.stringify({ ...doc, cases: [] }, null, 2).replace(/"cases": \[\]\n}$/, "");
fs.writeFileSync(process.argv[2] || "/dev/stdout", `${header}"cases": [\n${body}\n  ]\n}\n`);
