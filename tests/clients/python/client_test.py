#!/usr/bin/env python3
"""The Python client (clients/python, package longnet_client) against the real longnet-server on the demo
model over loopback, checked against known truths: longnet-run's own generation, encoding and scoring, the
unary calls against their streaming twins, and the status codes the server documents.

    client_test.py --server PATH --longnet-run PATH --stubs DIR [--python PATH] [--time-scale X]
                   [--watchdog SECONDS] [unittest args, e.g. a class name]
    client_test.py --list          # the test classes, one per line (CTest registers each)

The servers are started by tests/server/integration/harness.py (imported by path); every call has a
deadline and every process wait a timeout, so a broken server or client fails a test instead of hanging it.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
EXAMPLES = os.path.join(CLIENT_DIR, "examples")
DEMO_MODEL = os.path.join(ROOT, "models", "demo")
sys.path.insert(0, os.path.join(ROOT, "tests", "server", "integration"))
import harness as H  # noqa: E402
from harness import scaled  # noqa: E402

PROMPT = "In the beginning God created"
SERVICES = ["longnet.v1.GenerationService", "longnet.v1.EncodingService", "longnet.v1.TokenizerService",
            "longnet.v1.InfoService"]
L = None  # the longnet_client package, imported by configure() once the stub directory is on the path
STUB_DIR = None


def configure(argv):
    """Takes this test's options out of argv (the rest goes to unittest) and imports longnet_client."""
    global L, STUB_DIR
    # Not the harness's stubs: the package imports the generated modules its own way (health by file).
    opts, rest = H.configure(argv, load=False)
    STUB_DIR = opts["--stubs"]
    # The documented way to use the package: its directory and the generated stubs on the import path.
    sys.path[:0] = [CLIENT_DIR, STUB_DIR]
    import longnet_client
    L = longnet_client
    return rest


def example_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([CLIENT_DIR, STUB_DIR])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def mixed_text(n_bytes, seed):
    """Prose-like text of about n_bytes UTF-8 bytes with 2-, 3- and 4-byte characters every few words, so
    that fixed-size reads of a file split characters."""
    words = H.deterministic_text(n_bytes, seed=seed).split(" ")
    extra = ["é", "—", "🙂", "Ωmega", "naïve"]
    out = [w if i % 7 else w + extra[(i // 7) % len(extra)] for i, w in enumerate(words)]
    return " ".join(out)


def splitting_chunk_size(text, at_least=900):
    """A read size whose first read of `text`'s UTF-8 bytes ends inside a multi-byte character."""
    offset = 0
    for c in text:
        n = len(c.encode("utf-8"))
        if n > 1 and offset >= at_least:
            return offset + 1
        offset += n
    raise AssertionError(f"the text has no multi-byte character past byte {at_least}")


def write_file(test, text, name="doc.txt"):
    tmp = tempfile.TemporaryDirectory(prefix="longnet-client-")
    if isinstance(test, type):
        test.addClassCleanup(tmp.cleanup)
    else:
        test.addCleanup(tmp.cleanup)
    path = os.path.join(tmp.name, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def max_abs_diff(a, b):
    if len(a) != len(b):
        raise AssertionError(f"lengths differ: {len(a)} vs {len(b)}")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def start_server(owner, args=(), tls=None, client_kw=None, name="server"):
    """A longnet-server on the demo model, stopped by owner's (class or test) cleanups, and a
    longnet_client.Client of it (with client_kw) once its health is SERVING."""
    s = H.Server(["--model", DEMO_MODEL, *args], tls=tls, name=name)
    cleanup = owner.addClassCleanup if isinstance(owner, type) else owner.addCleanup
    cleanup(s.cleanup)
    s.start(wait=False)
    # Retry the connection often while the server starts (not with gRPC's default backoff of seconds).
    options = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
    kw = dict(timeout=scaled(60), options=options, **(client_kw or {}))
    deadline = time.monotonic() + scaled(60)
    last = None
    while time.monotonic() < deadline:
        if not s.running():
            raise H.ServerError(f"{name} exited with {s.proc.returncode} before serving\n{s.log_tail()}")
        client = L.Client(s.address(), **kw)
        try:
            last = client.health(timeout=scaled(2))
            if last == "SERVING":
                cleanup(client.close)
                return s, client
        except L.UnavailableError as e:  # not listening yet: the next try on a new channel, not one in backoff
            last = e.code
        client.close()
        time.sleep(0.05)
    raise H.ServerError(f"{name} not SERVING after {scaled(60):.0f} s (last health: {last})\n{s.log_tail()}")


class ClientTest(unittest.TestCase):
    maxDiff = 4000

    def assertLongNetError(self, fn, error_class, code, contains=(), msg=""):
        """fn() must raise error_class (a LongNetError) with the status code name `code` and a message that
        contains every string of `contains`."""
        try:
            fn()
        except L.LongNetError as e:
            self.assertIsInstance(e, error_class, f"{msg}: {e!r}")
            self.assertEqual(e.code, code, f"{msg}: {e}")
            for c in contains:
                self.assertIn(c, e.message, f"{msg}: message {e.message!r} does not name {c!r}")
            self.assertIn(code, str(e))
            return e
        self.fail(f"{msg}: expected {error_class.__name__} ({code}); the call succeeded")


# --------------------------------------------------------------------------------------------------------
class ClientCalls(ClientTest):
    """Every method of the client against one server on the demo model."""

    @classmethod
    def setUpClass(cls):
        cls.server, cls.client = start_server(cls, name="ClientCalls")
        # About 6,700 bytes: four of the server's encode chunks (2,048 tokens each) and four segments of the
        # demo model's longest branch; not more: the class encodes it about ten times, seconds each under ASan.
        cls.text = mixed_text(6000, seed=7)
        cls.path = write_file(cls, cls.text)
        cls.ref_pooled = json.loads(H.longnet_run("encode", "--input", cls.path, "--pooling", "mean"))
        cls.ref_score = json.loads(H.longnet_run("score", "--input", cls.path))

    def test_info(self):
        info = self.client.info()
        with open(os.path.join(DEMO_MODEL, "config.json")) as f:
            config = json.load(f)
        m = info.model
        self.assertIsInstance(info, L.ServerInfo)
        self.assertEqual(m.type, "decoder")
        self.assertEqual(m.vocab_size, config["vocab_size"])
        self.assertEqual(m.embed_dim, config["decoder_embed_dim"])
        self.assertEqual(m.layers, config["decoder_layers"])
        self.assertEqual(m.attention_heads, config["decoder_attention_heads"])
        self.assertEqual([(b.segment_length, b.dilation) for b in m.branches],
                         list(zip(config["segment_length"], config["dilated_ratio"])))
        self.assertEqual((m.bos_id, m.eos_id, m.pad_id), (config["bos_id"], config["eos_id"], config["pad_id"]))
        self.assertEqual(m.tokenizer, "byte")
        self.assertEqual(info.device, "cpu")
        self.assertTrue(info.version)
        self.assertGreater(info.limits.max_document_tokens, 0)
        self.assertGreater(m.max_context_tokens, 0)

    def test_health(self):
        self.assertEqual(self.client.health(), "SERVING")
        for service in SERVICES:
            self.assertEqual(self.client.health(service), "SERVING", service)
        self.assertLongNetError(lambda: self.client.health("no.such.Service"), L.LongNetError, "NOT_FOUND",
                                msg="health of an unknown service")

    def test_tokenize_and_detokenize(self):
        text = "Abé 🙂"
        t = self.client.tokenize(text, add_special_tokens=True)
        self.assertIsInstance(t, L.Tokens)
        self.assertEqual(t.ids, [256] + list(text.encode("utf-8")), "the demo tokenizer: bos, then bytes")
        self.assertEqual(len(t.pieces), len(t.ids))
        self.assertEqual(t.pieces[:3], ["", "A", "b"])
        self.assertEqual(self.client.tokenize(text).ids, list(text.encode("utf-8")))
        self.assertEqual(self.client.detokenize(t.ids), text)
        self.assertRaises(TypeError, self.client.tokenize, b"bytes")
        self.assertRaises(TypeError, self.client.detokenize, [1, "2"])

    def test_generate_greedy_equals_stream(self):
        g = self.client.generate(PROMPT, max_new_tokens=40, temperature=0, request_id="py-greedy")
        self.assertIsInstance(g, L.Generation)
        self.assertEqual(g.request_id, "py-greedy")
        self.assertEqual(g.usage.generated_tokens, len(g.tokens))
        self.assertEqual(g.usage.prompt_tokens, len(PROMPT) + 1)
        self.assertEqual("".join(t.text for t in g.tokens), g.text)
        self.assertIn(g.finish_reason, ("length", "eos"))
        self.assertEqual(g.finish_reason == "length", len(g.tokens) == 40)
        chunks = list(self.client.generate_stream(PROMPT, max_new_tokens=40, temperature=0))
        self.assertTrue(all(isinstance(c, L.GenerationChunk) for c in chunks))
        self.assertEqual("".join(c.text for c in chunks), g.text, "stream pieces concatenated vs generate")
        self.assertEqual([t.id for c in chunks for t in c.tokens], [t.id for t in g.tokens])
        last = chunks[-1]
        self.assertEqual(last.finish_reason, g.finish_reason)
        self.assertEqual(last.usage, g.usage)
        self.assertIsNotNone(last.timings)
        self.assertTrue(all(c.finish_reason is None for c in chunks[:-1]), "finish_reason on the last chunk only")

    def test_generate_equals_longnet_run(self):
        for seed, temperature in ((3, 0.8), (11, 1.0)):
            with self.subTest(seed=seed, temperature=temperature):
                want = H.longnet_run("generate", "--prompt", PROMPT, "--max-new-tokens", "32", "--seed", str(seed),
                                     "--temperature", repr(temperature))
                self.assertTrue(want.endswith("\n"))
                g = self.client.generate(PROMPT, max_new_tokens=32, seed=seed, temperature=temperature)
                self.assertEqual(g.text, want[:-1], "generate vs longnet-run generate")
                self.assertEqual(g.seed, seed)
                streamed = "".join(c.text for c in self.client.generate_stream(PROMPT, max_new_tokens=32, seed=seed,
                                                                               temperature=temperature))
                self.assertEqual(streamed, g.text, "generate_stream vs generate, same seed")

    def test_generation_parameters(self):
        ids = self.client.tokenize(PROMPT, add_special_tokens=True).ids
        by_text = self.client.generate(PROMPT, max_new_tokens=12, temperature=0, logprobs=True, top_logprobs=3,
                                       echo=True)
        by_ids = self.client.generate(ids, max_new_tokens=12, temperature=0)
        self.assertEqual([t.id for t in by_ids.tokens], [t.id for t in by_text.tokens], "ids prompt vs text prompt")
        self.assertEqual(by_text.prompt_token_ids, ids, "echo returns the prompt's ids")
        self.assertTrue(by_text.text.startswith(PROMPT), "echo puts the prompt's text first")
        for t in by_text.tokens:
            self.assertIsNotNone(t.logprob)
            self.assertLessEqual(t.logprob, 1e-6)
            self.assertEqual(len(t.top_logprobs), 3)
            self.assertEqual(t.top_logprobs[0].id, t.id, "greedy: the token is the most likely")
            self.assertAlmostEqual(t.top_logprobs[0].logprob, t.logprob, delta=1e-5)
        self.assertIsNone(by_ids.tokens[0].logprob, "no logprob unless asked")
        # stop: the greedy text cut before the first occurrence of a piece of it
        full = self.client.generate(PROMPT, max_new_tokens=40, temperature=0).text
        stop = full[10:13]
        cut = self.client.generate(PROMPT, max_new_tokens=40, temperature=0, stop=stop)
        self.assertEqual(cut.finish_reason, "stop_sequence")
        self.assertEqual(cut.text, full[:full.index(stop)])
        stream_cut = "".join(c.text for c in self.client.generate_stream(PROMPT, max_new_tokens=40, temperature=0,
                                                                         stop=[stop]))
        self.assertEqual(stream_cut, cut.text)
        forced = self.client.generate(PROMPT, max_new_tokens=5, ignore_eos=True, stop_token_ids=[by_ids.tokens[2].id],
                                      temperature=0)
        self.assertEqual(forced.finish_reason, "stop_token")

    def test_stream_abandoned_early(self):
        stream = self.client.generate_stream(PROMPT, max_new_tokens=2000, ignore_eos=True, temperature=0)
        first = next(stream)
        self.assertIsInstance(first, L.GenerationChunk)
        stream.close()  # cancels the call
        self.assertRaises(StopIteration, next, stream)
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(len(self.client.generate(PROMPT, max_new_tokens=3, ignore_eos=True).tokens), 3)

    def test_encode_equals_longnet_run(self):
        r = self.client.encode(self.text, document_id="d1", request_id="py-encode")
        self.assertIsInstance(r, L.EncodeResult)
        self.assertEqual((r.id, r.request_id), ("d1", "py-encode"))
        self.assertEqual(r.tokens, len(self.text.encode("utf-8")) + 1)
        self.assertEqual(r.truncated_tokens, 0)
        self.assertIsNone(r.score, "no score unless asked")
        self.assertLessEqual(max_abs_diff(r.pooled, self.ref_pooled), 1e-4, "pooled vs longnet-run encode")
        n = self.client.encode(self.text, normalize=True)
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in n.pooled)), 1.0, delta=1e-5)
        self.assertEqual(self.client.encode(self.text, pooling="none").pooled, [])
        ids = self.client.tokenize(self.text, add_special_tokens=True).ids
        self.assertLessEqual(max_abs_diff(self.client.encode(ids).pooled, r.pooled), 1e-5, "ids vs text")
        right = self.client.encode(self.text, truncation="right", max_tokens=500)
        self.assertEqual((right.tokens, right.truncated_tokens), (500, len(ids) - 500))
        self.assertLessEqual(max_abs_diff(right.pooled, self.client.encode(ids[:500]).pooled), 1e-5)

    def test_score(self):
        s = self.client.score(self.text)
        self.assertIsInstance(s, L.Score)
        n_bytes = len(self.text.encode("utf-8"))
        self.assertEqual(s.bytes, n_bytes)
        self.assertEqual(s.scored_tokens, n_bytes)  # bos + one token per byte, every token but the first
        self.assertLess(s.log_likelihood, 0)
        self.assertAlmostEqual(s.bits_per_byte, -s.log_likelihood / math.log(2) / s.bytes, delta=1e-9)
        self.assertAlmostEqual(s.bits_per_token, -s.log_likelihood / math.log(2) / s.scored_tokens, delta=1e-9)
        self.assertAlmostEqual(s.bits_per_byte, self.ref_score["bits_per_byte"], delta=1e-5,
                               msg="bits per byte vs longnet-run score")
        self.assertEqual(self.client.encode(self.text, score=True).score, s)
        by_ids = self.client.score(self.client.tokenize(self.text, add_special_tokens=True).ids)
        self.assertAlmostEqual(by_ids.log_likelihood, s.log_likelihood, delta=1e-3)
        self.assertEqual(by_ids.bits_per_byte, 0.0, "no bytes when the document is sent as ids")

    def test_file_is_read_in_chunks_that_split_characters(self):
        from longnet_client.client import _file_text_chunks
        size = splitting_chunk_size(self.text)
        for chunk_bytes in (1, 2, 3, size, 1 << 20):
            with self.subTest(chunk_bytes=chunk_bytes):
                with open(self.path, "rb") as f:
                    chunks = list(_file_text_chunks(f, self.path, chunk_bytes))
                self.assertEqual("".join(chunks), self.text)
                sizes = [len(c.encode("utf-8")) for c in chunks]
                self.assertTrue(all(s <= chunk_bytes + 3 for s in sizes), sizes)
                if chunk_bytes < len(self.text):
                    self.assertTrue(any(s != chunk_bytes for s in sizes[:-1]), "no read split a character")

    def test_encode_file_equals_encode_and_longnet_run(self):
        # The first read ends inside a character: the client must complete it before sending the piece.
        r = self.client.encode_file(self.path, chunk_bytes=splitting_chunk_size(self.text), score=True,
                                    document_id="file", request_id="py-file")
        self.assertEqual((r.id, r.request_id), ("file", "py-file"))
        self.assertEqual(r.tokens, len(self.text.encode("utf-8")) + 1)
        self.assertLessEqual(max_abs_diff(r.pooled, self.ref_pooled), 1e-4, "pooled vs longnet-run encode")
        unary = self.client.encode(self.text, score=True)
        self.assertLessEqual(max_abs_diff(r.pooled, unary.pooled), 1e-6, "encode_file vs encode")
        self.assertAlmostEqual(r.score.log_likelihood, unary.score.log_likelihood, delta=1e-6)
        self.assertAlmostEqual(r.score.bits_per_byte, self.ref_score["bits_per_byte"], delta=1e-5)
        one_piece = self.client.encode_file(self.path)  # the default chunk size: the file in one piece
        self.assertLessEqual(max_abs_diff(one_piece.pooled, r.pooled), 1e-6)

    def test_encode_file_token_chunks(self):
        got = []
        r = self.client.encode_file(self.path, chunk_bytes=4096, score=True, token_states=True,
                                    token_logprobs=True, on_token_chunk=got.append)
        self.assertGreater(len(got), 0)
        dim = len(self.ref_pooled)
        position, sums, logprobs = 0, [0.0] * dim, []
        for c in got:
            self.assertIsInstance(c, L.TokenChunk)
            self.assertEqual(c.first_position, position, "chunks in order, contiguous")
            self.assertEqual((c.dim, len(c.states), len(c.logprobs)), (dim, c.rows * dim, c.rows))
            for row in range(c.rows):
                for d in range(dim):
                    sums[d] += c.states[row * dim + d]
            logprobs.extend(c.logprobs)
            position += c.rows
        self.assertEqual(position, r.tokens)
        self.assertLessEqual(max_abs_diff([x / position for x in sums], self.ref_pooled), 1e-4,
                             "mean of the streamed states vs longnet-run encode")
        self.assertEqual(logprobs[0], 0.0)
        self.assertAlmostEqual(math.fsum(logprobs), r.score.log_likelihood, delta=1e-2)

    def test_invalid_arguments_name_the_field(self):
        c = self.client
        cases = [
            ("top_p", lambda: c.generate(PROMPT, top_p=1.5), "parameters.top_p"),
            ("max_new_tokens", lambda: c.generate(PROMPT, max_new_tokens=100000), "max_new_tokens"),
            ("temperature", lambda: list(c.generate_stream(PROMPT, temperature=-1)), "parameters.temperature"),
            ("id outside the vocabulary", lambda: c.generate([1, 70000]), "70000"),
            ("empty document", lambda: c.encode(""), "document"),
            ("truncation limit", lambda: c.encode("abcdef", max_tokens=3), "max_tokens"),
            ("score of one token", lambda: c.score([256]), "scoring needs at least 2 tokens"),
        ]
        for name, fn, field in cases:
            with self.subTest(case=name):
                self.assertLongNetError(fn, L.InvalidArgumentError, "INVALID_ARGUMENT", [field], msg=name)
        empty = write_file(self, "", "empty.txt")
        self.assertLongNetError(lambda: c.encode_file(empty), L.InvalidArgumentError, "INVALID_ARGUMENT",
                                msg="an empty file")

    def test_bad_input_caught_by_the_client(self):
        c = self.client
        for name, fn, error, words in [
            ("prompt bytes", lambda: c.generate(b"abc"), TypeError, ["prompt"]),
            ("prompt id str", lambda: c.generate([1, "2"]), TypeError, ["prompt[1]"]),
            ("parameter type", lambda: c.generate(PROMPT, temperature="hot"), TypeError, ["temperature"]),
            ("negative uint", lambda: c.generate(PROMPT, max_new_tokens=-1), ValueError, ["max_new_tokens"]),
            ("pooling", lambda: c.encode("abc", pooling="avg"), ValueError, ["pooling", "avg"]),
            ("truncation", lambda: c.encode("abc", truncation="middle"), ValueError, ["truncation"]),
            ("timeout", lambda: c.info(timeout=0), ValueError, ["timeout"]),
            ("timeout None-like", lambda: c.info(timeout=float("inf")), ValueError, ["timeout"]),
            ("chunk_bytes", lambda: c.encode_file(self.path, chunk_bytes=0), ValueError, ["chunk_bytes"]),
            ("token states without a callback", lambda: c.encode_file(self.path, token_states=True), ValueError,
             ["on_token_chunk"]),
            ("a chunk that is not text", lambda: c.encode_chunks(["abc", 5]), TypeError, ["chunks[1]"]),
            ("missing file", lambda: c.encode_file("/nonexistent/longnet-doc.txt"), FileNotFoundError,
             ["/nonexistent/longnet-doc.txt"]),
            ("client cert without key", lambda: L.Client("localhost:1", client_certificate=b"x"), ValueError,
             ["client_key"]),
            ("api key with a space", lambda: L.Client("localhost:1", api_key="a b"), ValueError, ["api_key"]),
        ]:
            with self.subTest(case=name):
                with self.assertRaises(error) as ctx:
                    fn()
                for w in words:
                    self.assertIn(w, str(ctx.exception), name)
        bad = os.path.join(os.path.dirname(self.path), "latin1.txt")
        with open(bad, "wb") as f:
            f.write(b"a" * 5000 + "caf\u00e9".encode("latin-1") + b" more")
        with self.assertRaises(ValueError) as ctx:
            c.encode_file(bad, chunk_bytes=1000)
        self.assertIn(bad, str(ctx.exception))
        self.assertIn("byte 5003", str(ctx.exception))
        self.assertEqual(c.health(), "SERVING")

    def test_deadline(self):
        self.assertLongNetError(lambda: self.client.generate(PROMPT, max_new_tokens=4000, ignore_eos=True,
                                                             timeout=0.001),
                                L.DeadlineExceededError, "DEADLINE_EXCEEDED", msg="a 1 ms deadline")
        self.assertLongNetError(lambda: list(self.client.generate_stream(PROMPT, max_new_tokens=4000,
                                                                         ignore_eos=True, timeout=0.001)),
                                L.DeadlineExceededError, "DEADLINE_EXCEEDED", msg="a 1 ms deadline, stream")


# --------------------------------------------------------------------------------------------------------
class EncodeLargeFile(ClientTest):
    """A file of several MiB (past gRPC's 4 MiB default message size) through encode_file in 1 MiB pieces,
    truncated to its last tokens so that the demo model's compute stays small; compared with unary Encode of
    the same text and of the kept tokens."""

    KEEP = 2048

    @classmethod
    def setUpClass(cls):
        cls.server, cls.client = start_server(cls, name="EncodeLargeFile")
        cls.text = mixed_text(5 * 1024 * 1024 + 12345, seed=11)
        cls.path = write_file(cls, cls.text)

    def test_multi_megabyte_file(self):
        n_bytes = len(self.text.encode("utf-8"))
        self.assertGreater(n_bytes, 5 * 1024 * 1024)
        r = self.client.encode_file(self.path, truncation="left", max_tokens=self.KEEP, score=True,
                                    timeout=scaled(300))
        self.assertEqual(r.tokens, self.KEEP)
        self.assertEqual(r.truncated_tokens, n_bytes + 1 - self.KEEP, "every byte and bos arrived")
        tail_ids = list(self.text.encode("utf-8")[-self.KEEP:])
        kept = self.client.encode(tail_ids, score=True)
        self.assertLessEqual(max_abs_diff(r.pooled, kept.pooled), 1e-5, "encode_file vs encode of the kept tokens")
        self.assertAlmostEqual(r.score.log_likelihood, kept.score.log_likelihood, delta=1e-3)
        unary = self.client.encode(self.text, truncation="left", max_tokens=self.KEEP, timeout=scaled(300))
        self.assertEqual(unary.truncated_tokens, r.truncated_tokens)
        self.assertLessEqual(max_abs_diff(r.pooled, unary.pooled), 1e-6, "encode_file vs unary encode")
        # Untruncated, the same file is over the limit this test gives the server, which the error names.
        self.assertLongNetError(lambda: self.client.encode_file(self.path, max_tokens=self.KEEP, timeout=scaled(300)),
                                L.InvalidArgumentError, "INVALID_ARGUMENT", [str(self.KEEP)],
                                msg="a document over max_tokens with truncation none")


# --------------------------------------------------------------------------------------------------------
class ApiKey(ClientTest):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="longnet-client-keys-")
        cls.addClassCleanup(cls.tmp.cleanup)
        keys = os.path.join(cls.tmp.name, "keys.txt")
        with open(keys, "w") as f:
            f.write("# clients\npy-client-key-0123456789\n")
        cls.server, cls.anonymous = start_server(cls, ["--api-key-file", keys], name="ApiKey")

    def client(self, **kw):
        c = L.Client(self.server.address(), timeout=scaled(30), **kw)
        self.addCleanup(c.close)
        return c

    def test_without_key(self):
        c = self.anonymous
        self.assertEqual(c.health(), "SERVING", "health needs no key")
        for name, fn in (("info", c.info), ("generate", lambda: c.generate(PROMPT, max_new_tokens=2)),
                         ("generate_stream", lambda: list(c.generate_stream(PROMPT, max_new_tokens=2))),
                         ("encode", lambda: c.encode("abc")), ("tokenize", lambda: c.tokenize("abc"))):
            with self.subTest(call=name):
                self.assertLongNetError(fn, L.UnauthenticatedError, "UNAUTHENTICATED", msg=name)
        wrong = self.client(api_key="not-a-key")
        self.assertLongNetError(wrong.info, L.UnauthenticatedError, "UNAUTHENTICATED", msg="a wrong key")

    def test_with_key(self):
        c = self.client(api_key="py-client-key-0123456789")
        self.assertEqual(c.info().model.vocab_size, 259)
        self.assertEqual(len(c.generate(PROMPT, max_new_tokens=3, ignore_eos=True).tokens), 3)
        self.assertEqual(sum(len(x.tokens) for x in c.generate_stream(PROMPT, max_new_tokens=3, ignore_eos=True)), 3)
        text = "In the beginning God created the heaven and the earth."
        self.assertEqual(c.encode_file(write_file(self, text), chunk_bytes=7).tokens, len(text) + 1)


# --------------------------------------------------------------------------------------------------------
class MutualTls(ClientTest):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="longnet-client-certs-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.certs = c = H.make_certificates(cls.tmp.name)
        cls.server, cls.client = start_server(
            cls, tls=(c["server_pem"], c["server_key"], c["ca_pem"]), name="MutualTls",
            client_kw=dict(root_certificates=c["ca_pem"], client_certificate=c["client_pem"],
                           client_key=c["client_key"]))

    def test_with_client_certificate(self):
        self.assertEqual(self.client.info().model.vocab_size, 259)
        g = self.client.generate(PROMPT, max_new_tokens=4, temperature=0)
        self.assertEqual("".join(c.text for c in self.client.generate_stream(PROMPT, max_new_tokens=4, temperature=0)),
                         g.text)
        # PEM bytes work as well as paths
        c = self.certs
        by_bytes = L.Client(self.server.address(), root_certificates=H.read(c["ca_pem"]),
                            client_certificate=H.read(c["client_pem"]), client_key=H.read(c["client_key"]),
                            timeout=scaled(30))
        self.addCleanup(by_bytes.close)
        self.assertEqual(by_bytes.generate(PROMPT, max_new_tokens=4, temperature=0).text, g.text)

    def test_refused_without_it(self):
        for name, kw in (("TLS without a client certificate", dict(root_certificates=self.certs["ca_pem"])),
                         ("plaintext", {}),
                         ("a client certificate from another CA",
                          dict(root_certificates=self.certs["ca_pem"],
                               client_certificate=self.certs["rogue-client_pem"],
                               client_key=self.certs["rogue-client_key"]))):
            with self.subTest(case=name):
                c = L.Client(self.server.address(), timeout=scaled(5), **kw)
                self.addCleanup(c.close)
                self.assertLongNetError(c.info, L.UnavailableError, "UNAVAILABLE", msg=name)


# --------------------------------------------------------------------------------------------------------
class Unreachable(ClientTest):
    def test_no_server(self):
        with L.Client(f"127.0.0.1:{H.free_port()}", timeout=scaled(10)) as c:
            path = write_file(self, "some text")
            for name, fn in (("info", c.info), ("health", c.health),
                             ("generate", lambda: c.generate(PROMPT)),
                             ("generate_stream", lambda: next(c.generate_stream(PROMPT))),
                             ("encode_file", lambda: c.encode_file(path))):
                with self.subTest(call=name):
                    self.assertLongNetError(fn, L.UnavailableError, "UNAVAILABLE", msg=name)


# --------------------------------------------------------------------------------------------------------
class Examples(ClientTest):
    """clients/python/examples run as the README says, against a server."""

    @classmethod
    def setUpClass(cls):
        cls.server, cls.client = start_server(cls, name="Examples")

    def run_example(self, name, *args, expect_rc=0):
        p = subprocess.run([H.PYTHON, os.path.join(EXAMPLES, name), "--target", self.server.address(), *args],
                           capture_output=True, text=True, env=example_env(), timeout=scaled(120))
        self.assertEqual(p.returncode, expect_rc, f"{name} {args}: stdout {p.stdout!r}\nstderr {p.stderr!r}")
        return p

    def test_generate_and_stream(self):
        want = self.client.generate(PROMPT, max_new_tokens=48, temperature=0)
        p = self.run_example("generate.py", PROMPT, "--max-new-tokens", "48")
        self.assertEqual(p.stdout, want.text + "\n")
        self.assertIn(f"finish_reason={want.finish_reason}", p.stderr)
        p = self.run_example("stream.py", PROMPT, "--max-new-tokens", "48")
        self.assertEqual(p.stdout, want.text + "\n")
        self.assertIn("generated_tokens=", p.stderr)
        sampled = self.client.generate(PROMPT, max_new_tokens=20, temperature=0.8, seed=5)
        p = self.run_example("stream.py", PROMPT, "--max-new-tokens", "20", "--temperature", "0.8", "--seed", "5")
        self.assertEqual(p.stdout, sampled.text + "\n")

    def test_encode_file(self):
        text = mixed_text(5000, seed=3)
        path = write_file(self, text)
        p = self.run_example("encode_file.py", path, "--score", "--chunk-bytes", "1000")
        out = json.loads(p.stdout)
        self.assertEqual(out["tokens"], len(text.encode("utf-8")) + 1)
        self.assertEqual(out["dims"], 256)
        self.assertAlmostEqual(out["bits_per_byte"], self.client.score(text).bits_per_byte, delta=1e-6)

    def test_errors_exit_nonzero_with_the_reason(self):
        p = self.run_example("generate.py", PROMPT, "--max-new-tokens", "0", expect_rc=1)
        self.assertIn("INVALID_ARGUMENT", p.stderr)
        self.assertIn("max_new_tokens", p.stderr)
        p = self.run_example("encode_file.py", "/nonexistent/longnet-doc.txt", expect_rc=1)
        self.assertIn("/nonexistent/longnet-doc.txt", p.stderr)


# --------------------------------------------------------------------------------------------------------
if __name__ == "__main__":
    H.run_tests(globals(), ("ClientTest",), configure)
