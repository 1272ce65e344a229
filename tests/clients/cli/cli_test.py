#!/usr/bin/env python3
"""longnet-cli (clients/cli) against the real longnet-server on the demo model over loopback, checked
against the server's own unary calls (through the Python stubs) and against longnet-run.

    cli_test.py --cli PATH --server PATH --longnet-run PATH --stubs DIR [--python PATH] [--time-scale X]
                [--watchdog SECONDS] [unittest args, e.g. a class name]
    cli_test.py --list          # the test classes, one per line (CTest registers each)

Servers are started by tests/server/integration/harness.py; every run of the CLI has a timeout.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO_MODEL = os.path.join(ROOT, "models", "demo")
sys.path.insert(0, os.path.join(ROOT, "tests", "server", "integration"))
import harness as H  # noqa: E402
from harness import pb, scaled  # noqa: E402

CLI = None
PROMPT = "In the beginning God created"


def configure(argv):
    global CLI
    opts, rest = H.configure(argv, extra=("--cli",))
    CLI = opts["--cli"]
    return rest


def write_file(owner, data, name="doc.txt"):
    tmp = tempfile.TemporaryDirectory(prefix="longnet-cli-")
    (owner.addClassCleanup if isinstance(owner, type) else owner.addCleanup)(tmp.cleanup)
    path = os.path.join(tmp.name, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def max_abs_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


class CliTest(unittest.TestCase):
    server_args = ()
    tls = None  # (server cert, server key, client CA) for harness.Server

    @classmethod
    def setUpClass(cls):
        cls.server = H.Server(["--model", DEMO_MODEL, *cls.server_args], tls=cls.tls, name=cls.__name__)
        cls.addClassCleanup(cls.server.cleanup)
        if cls.tls:  # the harness's own health polling needs the client's side of mutual TLS
            cls.server.probe_credentials = cls.probe_credentials()
        cls.server.start(timeout=scaled(60))

    def cli(self, *args, expect_rc=0, timeout=120, target=None):
        p = subprocess.run(H.die_with_parent([CLI, args[0], "--target", target or self.server.address(), *args[1:]]),
                           capture_output=True, text=True, timeout=scaled(timeout))
        self.assertEqual(p.returncode, expect_rc, f"longnet-cli {' '.join(args)}\nstdout: {p.stdout[-2000:]}\n"
                                                  f"stderr: {p.stderr[-2000:]}")
        return p

    def generate_unary(self, **params):
        g = pb["generate"]
        stub = pb["generate_grpc"].GenerationServiceStub(self.server.channel())
        request = g.GenerateRequest(text=PROMPT, parameters=g.GenerationParameters(**params))
        return stub.Generate(request, timeout=scaled(60))


class Commands(CliTest):
    def test_health_info_tokenize(self):
        self.assertEqual(self.cli("health").stdout, "SERVING\n")
        info = json.loads(self.cli("info").stdout)
        with open(os.path.join(DEMO_MODEL, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(info["model"]["name"], "demo")
        self.assertEqual(int(info["model"]["vocab_size"]), config["vocab_size"])
        self.assertEqual(int(info["model"]["embed_dim"]), config["decoder_embed_dim"])
        tokens = json.loads(self.cli("tokenize", "héllo", "world").stdout)
        self.assertEqual(tokens["ids"], list("héllo world".encode("utf-8")))  # the byte tokenizer, offset 0
        with_bos = json.loads(self.cli("tokenize", "--add-special-tokens", "a").stdout)
        self.assertEqual(with_bos["ids"], [config["bos_id"], ord("a")])

    def test_generate_equals_the_unary_call(self):
        p = self.cli("generate", "--max-new-tokens", "40", "--temperature", "0", *PROMPT.split(" "))
        want = self.generate_unary(max_new_tokens=40, temperature=0)
        self.assertEqual(p.stdout, want.text + "\n")
        self.assertIn("generated_tokens=40", p.stderr)
        p = self.cli("generate", "--max-new-tokens", "30", "--temperature", "0.9", "--top-k", "20", "--seed", "11",
                     PROMPT)
        self.assertEqual(p.stdout, self.generate_unary(max_new_tokens=30, temperature=0.9, top_k=20, seed=11).text
                         + "\n")

    def test_generate_streams_before_it_ends(self):
        # The first text is read while the process still runs: it printed before the generation ended.
        proc = subprocess.Popen(H.die_with_parent([CLI, "generate", "--target", self.server.address(),
                                                   "--max-new-tokens", "2000", "--ignore-eos", PROMPT]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        first = proc.stdout.read(1)
        still_running = proc.poll() is None
        rest, err = proc.communicate(timeout=scaled(120))
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))
        self.assertTrue(first)
        self.assertTrue(still_running, "longnet-cli printed nothing before the generation of 2,000 tokens ended")
        self.assertIn(b"generated_tokens=2000", err)

    def test_score_equals_the_unary_call(self):
        text = H.deterministic_text(3000, seed=5)
        path = write_file(self, text)
        out = json.loads(self.cli("score", "--no-progress", path).stdout)
        e = pb["encode"]
        stub = pb["encode_grpc"].EncodingServiceStub(self.server.channel())
        want = stub.Encode(e.EncodeRequest(document=e.Document(text=text),
                                           options=e.EncodeOptions(pooling=e.POOLING_NONE, score=True)),
                           timeout=scaled(60)).result
        self.assertEqual(out["tokens"], want.tokens)
        self.assertAlmostEqual(out["bits_per_byte"], want.score.bits_per_byte, delta=1e-9)
        self.assertAlmostEqual(out["log_likelihood"], want.score.log_likelihood, delta=1e-6)
        self.assertNotIn("pooled", out)

    def test_pieces_split_characters_and_outputs_agree(self):
        # 5-byte pieces cut 2-, 3- and 4-byte characters; JSON and .npy carry the same vectors.
        text = ("naïve café — 🙂 " * 40) + H.deterministic_text(500, seed=2)
        a, b = write_file(self, text, "a.txt"), write_file(self, "In the beginning", "b.txt")
        lines = self.cli("encode", "--piece-bytes", "5", "--no-progress", a, b).stdout.splitlines()
        self.assertEqual(len(lines), 2)
        first, second = (json.loads(line) for line in lines)
        self.assertEqual(first["tokens"], len(text.encode("utf-8")) + 1)  # + bos
        whole = json.loads(self.cli("encode", "--no-progress", a).stdout)
        self.assertLessEqual(max_abs_diff(first["pooled"], whole["pooled"]), 1e-6)
        import numpy as np
        npy = os.path.join(os.path.dirname(a), "out.npy")
        self.cli("encode", "--no-progress", "--output", npy, a, b)
        matrix = np.load(npy)
        self.assertEqual(matrix.shape, (2, len(first["pooled"])))
        self.assertEqual(matrix.dtype, np.float32)
        self.assertLessEqual(float(np.max(np.abs(matrix[1] - np.array(second["pooled"])))), 1e-6)


class Errors(CliTest):
    def test_usage_errors_exit_2_naming_the_problem(self):
        p = self.cli("encode", "--bogus", expect_rc=2)
        self.assertIn("--bogus", p.stderr)
        p = self.cli("generate", "--top-k", "many", PROMPT, expect_rc=2)
        self.assertIn("--top-k", p.stderr)
        p = self.cli("encode", "--no-progress", "/nonexistent/longnet-doc.txt", expect_rc=2)
        self.assertIn("/nonexistent/longnet-doc.txt", p.stderr)
        bad = write_file(self, b"valid start \xff\xfe then junk")
        p = self.cli("encode", "--no-progress", bad, expect_rc=2)
        self.assertIn("not UTF-8", p.stderr)
        self.assertIn("byte 12", p.stderr)
        p = subprocess.run([CLI, "frobnicate"], capture_output=True, text=True, timeout=scaled(30))
        self.assertEqual(p.returncode, 2)
        self.assertIn("frobnicate", p.stderr)

    def test_rpc_errors_exit_1_naming_the_status(self):
        p = self.cli("generate", "--top-p", "1.5", PROMPT, expect_rc=1)
        self.assertIn("GenerateStream failed: INVALID_ARGUMENT", p.stderr)
        self.assertIn("top_p", p.stderr)
        empty = write_file(self, "")
        p = self.cli("encode", "--no-progress", empty, expect_rc=1)
        self.assertIn("EncodeStream failed: INVALID_ARGUMENT", p.stderr)
        p = self.cli("info", target=f"127.0.0.1:{H.free_port()}", expect_rc=1)
        self.assertIn("GetInfo failed: UNAVAILABLE", p.stderr)


class ApiKey(CliTest):
    KEY = "cli-test-key-0123456789"

    @classmethod
    def setUpClass(cls):
        tmp = tempfile.TemporaryDirectory(prefix="longnet-cli-keys-")
        cls.addClassCleanup(tmp.cleanup)
        cls.keys = os.path.join(tmp.name, "keys")
        with open(cls.keys, "w") as f:
            f.write(cls.KEY + "\n")
        cls.server_args = ("--api-key-file", cls.keys)
        super().setUpClass()

    def test_key_from_flag_file_and_environment(self):
        p = self.cli("info", expect_rc=1)
        self.assertIn("GetInfo failed: UNAUTHENTICATED", p.stderr)
        self.assertEqual(self.cli("health").stdout, "SERVING\n")  # health stays open
        self.cli("info", "--api-key", self.KEY)
        self.cli("info", "--api-key-file", self.keys)
        p = self.cli("info", "--api-key", "wrong-key", expect_rc=1)
        self.assertIn("UNAUTHENTICATED", p.stderr)
        env = dict(os.environ, LONGNET_API_KEY=self.KEY)
        p = subprocess.run([CLI, "info", "--target", self.server.address()], capture_output=True, text=True,
                           env=env, timeout=scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)


class MutualTls(CliTest):
    @classmethod
    def setUpClass(cls):
        tmp = tempfile.TemporaryDirectory(prefix="longnet-cli-certs-")
        cls.addClassCleanup(tmp.cleanup)
        cls.certs = c = H.make_certificates(tmp.name)
        cls.tls = (c["server_pem"], c["server_key"], c["ca_pem"])
        super().setUpClass()

    @classmethod
    def probe_credentials(cls):
        c = cls.certs
        return H.grpc.ssl_channel_credentials(H.read(c["ca_pem"]), H.read(c["client_key"]), H.read(c["client_pem"]))

    def test_with_and_without_a_client_certificate(self):
        c = self.certs
        mtls = ["--ca-cert", c["ca_pem"], "--client-cert", c["client_pem"], "--client-key", c["client_key"]]
        self.assertEqual(self.cli("health", *mtls).stdout, "SERVING\n")
        self.assertEqual(json.loads(self.cli("info", *mtls).stdout)["model"]["name"], "demo")
        for refused in (["--ca-cert", c["ca_pem"]],  # TLS, no client certificate
                        [],  # plaintext
                        ["--ca-cert", c["ca_pem"], "--client-cert", c["rogue-client_pem"], "--client-key",
                         c["rogue-client_key"]]):  # a certificate from a CA the server does not trust
            p = self.cli("info", *refused, expect_rc=1)
            self.assertIn("GetInfo failed: UNAVAILABLE", p.stderr)
        p = self.cli("info", "--ca-cert", c["ca_pem"], "--client-cert", c["client_pem"], expect_rc=2)
        self.assertIn("--client-key", p.stderr)


class EncodeMillionBytes(CliTest):
    """The issue's bar: a 1,000,000-byte file shows progress and returns longnet-run encode's vector."""

    def test_encode_equals_longnet_run_with_progress(self):
        path = write_file(self, H.deterministic_text(1_000_000, seed=3)[:1_000_000])
        self.assertEqual(os.path.getsize(path), 1_000_000)
        started = time.monotonic()
        p = self.cli("encode", path, timeout=900)
        out = json.loads(p.stdout)
        self.assertIn("MB sent", p.stderr)
        self.assertIn("1000001 tokens encoded", p.stderr)
        self.assertEqual(out["tokens"], 1_000_001)
        want = json.loads(H.longnet_run("encode", "--input", path, "--pooling", "mean", timeout=900))
        self.assertEqual(len(out["pooled"]), len(want))
        self.assertLessEqual(max_abs_diff(out["pooled"], want), 1e-4, "pooled vs longnet-run encode")
        print(f"1,000,000 bytes through longnet-cli and longnet-run in {time.monotonic() - started:.1f} s",
              file=sys.stderr)


if __name__ == "__main__":
    H.run_tests(globals(), ("CliTest",), configure)
