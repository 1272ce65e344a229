#!/usr/bin/env python3
"""longnet-run's command-line interface: outputs, their agreement with the reference, and its errors.

    longnet_run_test.py --longnet-run PATH [unittest args]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import make_test_model  # noqa: E402

LONGNET_RUN = None
PYTHON = "/usr/bin/python3"


def run(*args, check=True):
    p = subprocess.run([LONGNET_RUN, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"longnet-run {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


class LongnetRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.decoder = os.path.join(cls.tmp.name, "decoder")
        make_test_model.make_test_model(cls.decoder, seed=11, branches=[(16, 1), (64, 4)])
        cls.encoder = os.path.join(cls.tmp.name, "encoder")
        make_test_model.make_test_model(cls.encoder, seed=12, model_type="longnet_encoder",
                                        branches=[(16, 1), (64, 4)])
        cls.text = os.path.join(cls.tmp.name, "text.txt")
        with open(cls.text, "w", encoding="utf-8") as f:
            f.write("In the beginning was the Word — ünïcödé 😀, and the Word was with God.\n" * 5)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write_json(self, name, obj):
        with open(self.path(name), "w") as f:
            json.dump(obj, f)
        return self.path(name)

    def test_forward_shape_and_zero_padding(self):
        tokens = self.write_json("ragged.json", {"input_ids": [[1, 2, 3], [4, 5, 6, 7, 8], []]})
        run("forward", "--model", self.decoder, "--tokens", tokens, "--out", self.path("ragged.npy"))
        out = np.load(self.path("ragged.npy"))
        self.assertEqual(out.shape, (3, 5, 259))
        self.assertEqual(out.dtype, np.float32)
        self.assertTrue(np.all(out[0, 3:] == 0) and np.all(out[2] == 0))
        self.assertTrue(np.all(np.abs(out[1]).sum(axis=1) > 0))

    def test_forward_decode_equals_prefill(self):
        tokens = self.write_json("long.json", {"input_ids": [[i % 259 for i in range(300)]]})
        run("forward", "--model", self.decoder, "--tokens", tokens, "--out", self.path("p.npy"))
        run("forward", "--model", self.decoder, "--tokens", tokens, "--out", self.path("d.npy"), "--decode")
        self.assertLessEqual(float(np.max(np.abs(np.load(self.path("p.npy")) - np.load(self.path("d.npy"))))), 2e-4)

    def test_forward_errors_name_what_was_wrong(self):
        cases = [
            ({"input_ids": [[1, 2, 999]]}, "999"),
            ({"input_ids": [[1, "a"]]}, "\"input_ids\"[0][1]"),
            ({"input_ids": [[1, -4]]}, "-4"),
            ({"input_ids": 5}, "not a list"),
            ({"ids": [[1]]}, "\"input_ids\" is missing"),
        ]
        for i, (doc, needle) in enumerate(cases):
            p = run("forward", "--model", self.decoder, "--tokens", self.write_json(f"bad{i}.json", doc), "--out",
                    self.path("bad.npy"), check=False)
            self.assertEqual(p.returncode, 1, doc)
            self.assertIn(needle, p.stderr, doc)
        p = run("forward", "--model", self.decoder, "--out", self.path("x.npy"), check=False)
        self.assertIn("--tokens is required", p.stderr)
        p = run("forward", "--model", self.path("nowhere"), "--tokens", "t.json", "--out", "x.npy", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nowhere", p.stderr)
        p = run("forward", "--bogus", "1", check=False)
        self.assertIn("unknown option --bogus", p.stderr)
        self.assertEqual(run("frobnicate", check=False).returncode, 2)
        self.assertEqual(run("--help").returncode, 0)

    def test_score_matches_the_reference_definition(self):
        got = json.loads(run("score", "--model", self.decoder, "--input", self.text).stdout)
        ref = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "reference", "score_reference.py"), "--model",
                              self.decoder, "--input", self.text], capture_output=True, text=True, check=True)
        ref_bpb = float(ref.stdout.split()[-1]) if ref.stdout.strip() else None
        size = os.path.getsize(self.text)
        self.assertEqual(got["bytes"], size)
        self.assertEqual(got["tokens"], size)  # [bos] + bytes predicts every byte
        self.assertAlmostEqual(got["bits_per_byte"], ref_bpb, delta=1e-3)

    def test_encode_pooling_equals_pooled_forward(self):
        with open(self.text, "rb") as f:
            raw = f.read()
        tokens = self.write_json("enc.json", {"input_ids": [[256] + list(raw)]})
        run("forward", "--model", self.encoder, "--tokens", tokens, "--out", self.path("h.npy"))
        hidden = np.load(self.path("h.npy"))[0].astype(np.float64)
        for pooling, want in (("mean", hidden.mean(axis=0)), ("first", hidden[0]), ("last", hidden[-1])):
            got = np.array(json.loads(run("encode", "--model", self.encoder, "--input", self.text, "--pooling",
                                          pooling).stdout))
            self.assertLessEqual(float(np.max(np.abs(got - want))), 1e-5, pooling)
        p = run("encode", "--model", self.encoder, "--input", self.text, "--pooling", "max", check=False)
        self.assertIn("--pooling", p.stderr)
        p = run("encode", "--model", self.encoder, "--input", self.text, "--progress")
        self.assertIn("tokens/s", p.stderr)

    def test_generate_is_deterministic_per_seed(self):
        args = ["generate", "--model", self.decoder, "--prompt", "In the beginning", "--max-new-tokens", "20"]
        a = run(*args, "--seed", "5").stdout
        b = run(*args, "--seed", "5").stdout
        self.assertEqual(a, b)
        greedy = [run(*args, "--temperature", "0", "--seed", s).stdout for s in ("1", "2")]
        self.assertEqual(greedy[0], greedy[1])
        a.encode("utf-8")  # valid UTF-8 even from a random model (incomplete characters become U+FFFD)
        for bad, field in ((["--temperature", "-1"], "temperature"), (["--top-p", "0"], "top_p"),
                           (["--top-k", "x"], "--top-k")):
            p = run(*args, *bad, check=False)
            self.assertEqual(p.returncode, 1, bad)
            self.assertIn(field, p.stderr, bad)

    def test_tiktoken_model_reads_its_rank_file_from_the_directory(self):
        # A decoder whose tokenizer is cl100k_base (the rank file sits in the model directory).
        model = self.path("tiktoken")
        make_test_model.make_test_model(model, seed=13, vocab_size=100288, embed_dim=16, heads=2, ffn_dim=32,
                                        layers=1, branches=[(16, 1), (64, 4)])
        shutil.copy(os.path.join(ROOT, "tests", "data", "tokenizer", "cl100k_base.tiktoken"), model)
        with open(os.path.join(model, "config.json")) as f:
            cfg = json.load(f)
        cfg.update({"bos_id": 100257, "eos_id": 100257, "pad_id": 100258,
                    "tokenizer": {"type": "tiktoken", "file": "cl100k_base.tiktoken", "pattern": "cl100k",
                                  "add_bos": True, "add_eos": False,
                                  "special_tokens": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258}}})
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(cfg, f)
        got = json.loads(run("score", "--model", model, "--input", self.text).stdout)
        self.assertEqual(got["bytes"], os.path.getsize(self.text))
        self.assertLess(got["tokens"], got["bytes"] / 2)  # BPE: far fewer tokens than bytes
        out = run("generate", "--model", model, "--prompt", "Hello", "--max-new-tokens", "8", "--seed", "3").stdout
        out.encode("utf-8")
        vec = json.loads(run("encode", "--model", model, "--input", self.text).stdout)
        self.assertEqual(len(vec), 16)
        os.remove(os.path.join(model, "cl100k_base.tiktoken"))
        p = run("score", "--model", model, "--input", self.text, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cl100k_base.tiktoken", p.stderr)

    def test_demo_model_is_the_default(self):
        # No --model: the embedded demo model is found from the executable (a build tree inside the source
        # tree here; <prefix>/share/longnet/models/demo when installed).
        head = os.path.join(ROOT, "tests", "data", "demo", "heldout_head.txt")
        got = json.loads(run("score", "--input", head).stdout)
        want = json.loads(run("score", "--model", os.path.join(ROOT, "models", "demo"), "--input", head).stdout)
        self.assertEqual(got, want)

    def test_encoder_cannot_score_or_generate(self):
        p = run("score", "--model", self.encoder, "--input", self.text, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("decoder", p.stderr)


if __name__ == "__main__":
    if "--longnet-run" in sys.argv:
        i = sys.argv.index("--longnet-run")
        LONGNET_RUN = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if "--python" in sys.argv:
        i = sys.argv.index("--python")
        PYTHON = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    unittest.main()
