#!/usr/bin/env python3
"""longnet-server end to end: the real server binary on loopback, driven by grpcio through stubs generated
from proto/longnet/v1 at build time, compared against the offline tool longnet-run.

    server_integration_test.py --server PATH --longnet-run PATH --stubs DIR [--python PATH]
                               [--time-scale X] [unittest args, e.g. a class name]
    server_integration_test.py --list          # the test classes, one per line (CTest registers each)

Each class starts its own server(s) on free ports and stops them in its cleanups; every RPC has a
deadline and every process wait a timeout, so a broken server fails a test instead of hanging it.
"""

import concurrent.futures
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import pb, scaled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO_MODEL = os.path.join(ROOT, "models", "demo")
SERVICES = ["longnet.v1.GenerationService", "longnet.v1.EncodingService", "longnet.v1.TokenizerService",
            "longnet.v1.InfoService"]
CODE = grpc.StatusCode
PROMPT = "In the beginning God created"


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------
def gen_request(text=PROMPT, request_id="", **params):
    g = pb["generate"]
    return g.GenerateRequest(text=text, parameters=g.GenerationParameters(**params), request_id=request_id)


def ids_request(ids, **params):
    g = pb["generate"]
    return g.GenerateRequest(ids=pb["common"].TokenIds(ids=ids), parameters=g.GenerationParameters(**params))


def write_class_doc(cls, text):
    """`text` in a file of the test class's own temporary directory (removed after the class); its path."""
    tmp = tempfile.TemporaryDirectory(prefix="longnet-it-doc-")
    cls.addClassCleanup(tmp.cleanup)
    path = os.path.join(tmp.name, "doc.txt")
    with open(path, "w") as f:
        f.write(text)
    return path


def collect(stream):
    """A GenerateStream's messages -> (text, token ids, last message, messages)."""
    msgs = list(stream)
    if not msgs:
        raise AssertionError("GenerateStream returned no message")
    text = "".join(m.text for m in msgs)
    ids = [t.id for m in msgs for t in m.tokens]
    return text, ids, msgs[-1], msgs


def finish_name(value):
    return pb["generate"].FinishReason.Name(value)


def stream_chunks(text, size, options=None, document_id="", request_id=""):
    e = pb["encode"]
    first = True
    for i in range(0, max(len(text), 1), size):
        if first:
            yield e.EncodeStreamRequest(options=options, document_id=document_id, request_id=request_id,
                                        text=text[i:i + size])
            first = False
        else:
            yield e.EncodeStreamRequest(text=text[i:i + size])


def stream_result(responses):
    """EncodeStream responses -> (result, token chunks)."""
    chunks = [r.chunk for r in responses if r.WhichOneof("payload") == "chunk"]
    results = [r.result for r in responses if r.WhichOneof("payload") == "result"]
    if len(results) != 1 or responses[-1].WhichOneof("payload") != "result":
        raise AssertionError(f"EncodeStream: expected one result as the last message, got "
                             f"{[r.WhichOneof('payload') for r in responses][-5:]}")
    return results[0], chunks


def max_abs_diff(a, b):
    if len(a) != len(b):
        raise AssertionError(f"lengths differ: {len(a)} vs {len(b)}")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


class Stubs:
    def __init__(self, channel):
        self.gen = pb["generate_grpc"].GenerationServiceStub(channel)
        self.enc = pb["encode_grpc"].EncodingServiceStub(channel)
        self.tok = pb["tokenize_grpc"].TokenizerServiceStub(channel)
        self.info = pb["info_grpc"].InfoServiceStub(channel)
        self.health = pb["health_grpc"].HealthStub(channel)


class ServerTest(unittest.TestCase):
    """A class that shares one server, started in setUpClass with SERVER_ARGS."""

    SERVER_ARGS = ()
    METRICS = False
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if cls.SERVER_ARGS is None:  # the tests start their own servers
            return
        cls.server = H.Server(cls.SERVER_ARGS, metrics=cls.METRICS, name=cls.__name__)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.stubs = Stubs(cls.server.channel())

    def start_server(self, args=(), **kw):
        """A server of this test only, stopped by the test's cleanups."""
        s = H.Server(args, name=kw.pop("name", self._testMethodName), **kw)
        self.addCleanup(s.cleanup)
        return s

    def assertRpcError(self, fn, code, *, fields=(), contains=(), msg=""):
        """fn() must raise grpc.RpcError with `code`; its details must start with one of `fields` (when
        given) and contain every string of `contains`. Returns the error."""
        try:
            fn()
        except grpc.RpcError as e:
            details = e.details() or ""
            self.assertEqual(e.code(), code, f"{msg}: expected {code.name}, got {e.code().name}: {details!r}")
            if fields:
                self.assertTrue(any(details.startswith(f) for f in fields),
                                f"{msg}: message {details!r} does not start with the field ({' or '.join(fields)})")
            for c in contains:
                self.assertIn(c, details, f"{msg}: message {details!r} does not name {c!r}")
            return e
        self.fail(f"{msg}: expected {code.name}, the call succeeded")

    def assertServing(self, server=None):
        s = server or self.server
        self.assertEqual(s.health_status(""), "SERVING", s.log_tail())


# --------------------------------------------------------------------------------------------------------
# a. generation equals longnet-run
# --------------------------------------------------------------------------------------------------------
class GenerationParity(ServerTest):
    """Generate and GenerateStream against `longnet-run generate` with the same seed and parameters."""

    def reference(self, prompt, max_new, seed, temperature, top_k=None, top_p=None, penalty=None):
        args = ["generate", "--prompt", prompt, "--max-new-tokens", str(max_new), "--seed", str(seed),
                "--temperature", repr(temperature)]
        if top_k is not None:
            args += ["--top-k", str(top_k)]
        if top_p is not None:
            args += ["--top-p", repr(top_p)]
        if penalty is not None:
            args += ["--repetition-penalty", repr(penalty)]
        out = H.longnet_run(*args)
        self.assertTrue(out.endswith("\n"))
        return out[:-1]

    def check_case(self, prompt, max_new, seed, temperature, top_k=None, top_p=None, penalty=None):
        want = self.reference(prompt, max_new, seed, temperature, top_k, top_p, penalty)
        params = dict(max_new_tokens=max_new, seed=seed, temperature=temperature)
        if top_k is not None:
            params["top_k"] = top_k
        if top_p is not None:
            params["top_p"] = top_p
        if penalty is not None:
            params["repetition_penalty"] = penalty
        label = f"prompt={prompt!r} {params}"
        unary = self.stubs.gen.Generate(gen_request(prompt, **params), timeout=scaled(60))
        self.assertEqual(unary.text, want, f"Generate vs longnet-run, {label}")
        self.assertEqual(unary.seed, seed, label)
        self.assertEqual(unary.usage.generated_tokens, len(unary.tokens), label)
        self.assertEqual("".join(t.text for t in unary.tokens), unary.text, f"tokens' texts, {label}")
        n = len(unary.tokens)
        self.assertEqual(finish_name(unary.finish_reason), "FINISH_REASON_LENGTH" if n == max_new else
                         "FINISH_REASON_EOS", label)
        text, ids, last, msgs = collect(self.stubs.gen.GenerateStream(gen_request(prompt, **params),
                                                                      timeout=scaled(60)))
        self.assertEqual(text, unary.text, f"GenerateStream pieces concatenated vs Generate, {label}")
        self.assertEqual(ids, [t.id for t in unary.tokens], f"stream token ids vs unary, {label}")
        self.assertEqual(last.finish_reason, unary.finish_reason, label)
        self.assertEqual(last.usage.generated_tokens, n, label)
        self.assertTrue(all(m.seed == seed for m in msgs), f"seed on every stream message, {label}")
        self.assertTrue(all(m.finish_reason == 0 for m in msgs[:-1]), f"finish_reason before the end, {label}")
        return unary

    def test_sampled_top_k(self):
        self.check_case(PROMPT, 64, 42, 0.8, top_k=40)
        self.check_case("And the LORD said", 100, 7, 1.0, top_k=10)

    def test_sampled_plain_temperature(self):
        self.check_case("Ps23:1 The LORD is my shepherd", 80, 1234567, 1.0)

    def test_greedy(self):
        self.check_case(PROMPT, 96, 3, 0.0)
        self.check_case("Blessed are", 40, 99, 0.0)

    def test_long_prompt(self):
        # past the largest segment (2,048): the server's chunked prefill (512-token steps) against
        # longnet-run's (2,048-token chunks)
        prompt = H.deterministic_text(5000, seed=17)
        self.check_case(prompt, 32, 8, 0.0)
        self.check_case(prompt, 32, 8, 0.7, top_k=30)

    def test_top_p_and_repetition_penalty(self):
        self.check_case(PROMPT, 64, 5, 0.9, top_p=0.8)
        self.check_case(PROMPT, 64, 6, 0.7, top_k=20, penalty=1.3)

    def test_ids_input_equals_text_input(self):
        ids = list(self.stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text=PROMPT, add_special_tokens=True),
                                           timeout=scaled(10)).ids)
        a = self.stubs.gen.Generate(gen_request(PROMPT, max_new_tokens=48, seed=11), timeout=scaled(60))
        b = self.stubs.gen.Generate(ids_request(ids, max_new_tokens=48, seed=11), timeout=scaled(60))
        self.assertEqual(a.text, b.text)
        self.assertEqual(a.usage.prompt_tokens, len(ids))
        self.assertEqual(b.usage.prompt_tokens, len(ids))

    def test_unset_seed_is_returned_and_reproduces(self):
        a = self.stubs.gen.Generate(gen_request(max_new_tokens=40), timeout=scaled(60))
        b = self.stubs.gen.Generate(gen_request(max_new_tokens=40, seed=a.seed), timeout=scaled(60))
        self.assertEqual(a.text, b.text, f"seed {a.seed} returned by the server does not reproduce its text")

    def test_concurrent_streams_equal_sequential(self):
        # Continuous batching must not change anyone's tokens: 6 streams at once, each equal to the same
        # request alone.
        reqs = [gen_request(f"{PROMPT} {i}", max_new_tokens=48, seed=100 + i, temperature=0.9) for i in range(6)]
        alone = [self.stubs.gen.Generate(r, timeout=scaled(60)).text for r in reqs]
        with concurrent.futures.ThreadPoolExecutor(len(reqs)) as pool:
            together = list(pool.map(lambda r: collect(self.stubs.gen.GenerateStream(r, timeout=scaled(120)))[0],
                                     reqs))
        for i, (a, b) in enumerate(zip(alone, together)):
            self.assertEqual(b, a, f"request {i}: concurrent stream differs from the request alone")


# --------------------------------------------------------------------------------------------------------
# generation semantics: stops, logprobs, echo, defaults, timings, tokenizer
# --------------------------------------------------------------------------------------------------------
class GenerationSemantics(ServerTest):
    def greedy(self, n=160, **kw):
        return self.stubs.gen.Generate(gen_request(max_new_tokens=n, temperature=0.0, ignore_eos=True, **kw),
                                       timeout=scaled(60))

    def test_stop_sequence(self):
        full = self.greedy()
        # a 4-character stop string from the generated text (not in the prompt), first seen at p0 > 0
        for start in range(20, len(full.text) - 4):
            stop = full.text[start:start + 4]
            if stop not in PROMPT and full.text.find(stop) > 0:
                break
        p0 = full.text.find(stop)
        r = self.greedy(stop=[stop])
        self.assertEqual(finish_name(r.finish_reason), "FINISH_REASON_STOP_SEQUENCE", f"stop {stop!r}")
        self.assertEqual(r.text, full.text[:p0], f"text before the stop sequence {stop!r}")
        text, _, last, _ = collect(self.stubs.gen.GenerateStream(
            gen_request(max_new_tokens=160, temperature=0.0, ignore_eos=True, stop=[stop]), timeout=scaled(60)))
        self.assertEqual(text, full.text[:p0], f"stream: text before the stop sequence {stop!r}")
        self.assertEqual(finish_name(last.finish_reason), "FINISH_REASON_STOP_SEQUENCE")

    def test_stop_token_ids(self):
        full = self.greedy()
        ids = [t.id for t in full.tokens]
        stop_id = ids[10]
        k0 = ids.index(stop_id)
        r = self.greedy(stop_token_ids=[stop_id])
        self.assertEqual(finish_name(r.finish_reason), "FINISH_REASON_STOP_TOKEN")
        self.assertEqual([t.id for t in r.tokens], ids[:k0], "tokens before the stop token (not returned)")
        self.assertEqual(r.usage.generated_tokens, len(r.tokens))

    def test_logprobs_and_top_logprobs(self):
        r = self.greedy(n=24, logprobs=True, top_logprobs=3)
        self.assertEqual(len(r.tokens), 24)
        for i, t in enumerate(r.tokens):
            self.assertTrue(t.HasField("logprob"), f"token {i} has no logprob")
            self.assertLessEqual(t.logprob, 1e-6)
            self.assertEqual(len(t.top_logprobs), 3, f"token {i}")
            lps = [a.logprob for a in t.top_logprobs]
            self.assertEqual(lps, sorted(lps, reverse=True), f"token {i}: top_logprobs not most likely first")
            self.assertEqual(t.top_logprobs[0].id, t.id, f"token {i}: greedy token is not the most likely")
            self.assertAlmostEqual(t.top_logprobs[0].logprob, t.logprob, delta=1e-4)
            self.assertLessEqual(sum(math.exp(x) for x in lps), 1.0 + 1e-4)
        plain = self.greedy(n=24)
        self.assertFalse(any(t.HasField("logprob") for t in plain.tokens), "logprob without asking")
        self.assertEqual(plain.text, r.text)

    def test_echo(self):
        tok = self.stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text=PROMPT, add_special_tokens=True),
                                      timeout=scaled(10))
        plain = self.stubs.gen.Generate(gen_request(max_new_tokens=20, seed=9), timeout=scaled(60))
        echo = self.stubs.gen.Generate(gen_request(max_new_tokens=20, seed=9, echo=True), timeout=scaled(60))
        self.assertEqual(list(echo.prompt_token_ids), list(tok.ids))
        self.assertEqual(echo.text, PROMPT + plain.text)
        self.assertEqual([t.id for t in echo.tokens], [t.id for t in plain.tokens])
        text, _, _, msgs = collect(self.stubs.gen.GenerateStream(gen_request(max_new_tokens=20, seed=9, echo=True),
                                                                 timeout=scaled(60)))
        self.assertEqual(list(msgs[0].prompt_token_ids), list(tok.ids))
        self.assertEqual(text, echo.text)

    def test_defaults_and_metadata(self):
        r = self.stubs.gen.Generate(gen_request(ignore_eos=True, request_id="it-defaults-1"), timeout=scaled(60))
        self.assertEqual(len(r.tokens), 64, "default max_new_tokens is 64")
        self.assertEqual(finish_name(r.finish_reason), "FINISH_REASON_LENGTH")
        self.assertEqual(r.request_id, "it-defaults-1")
        self.assertEqual(r.usage.prompt_tokens, len(PROMPT.encode()) + 1)
        t = r.timings
        for name in ("queue_seconds", "prefill_seconds", "decode_seconds", "total_seconds",
                     "time_to_first_token_seconds"):
            self.assertGreaterEqual(getattr(t, name), 0.0, name)
        self.assertGreater(t.total_seconds, 0.0)
        self.assertLessEqual(t.time_to_first_token_seconds, t.total_seconds + 1e-6)
        self.assertLessEqual(t.queue_seconds, t.total_seconds + 1e-6)
        auto = self.stubs.gen.Generate(gen_request(max_new_tokens=2), timeout=scaled(60))
        self.assertTrue(auto.request_id, "the server makes a request id when none is given")
        msgs = list(self.stubs.gen.GenerateStream(gen_request(max_new_tokens=5, request_id="it-stream-id"),
                                                  timeout=scaled(60)))
        self.assertTrue(all(m.request_id == "it-stream-id" for m in msgs), "request_id on every stream message")

    def test_tokenize_detokenize(self):
        tok = self.stubs.tok
        T = pb["tokenize"]
        with_bos = tok.Tokenize(T.TokenizeRequest(text="In the", add_special_tokens=True), timeout=scaled(10))
        self.assertEqual(list(with_bos.ids), [256] + list(b"In the"))
        self.assertEqual(list(with_bos.pieces), ["", "I", "n", " ", "t", "h", "e"])
        plain = tok.Tokenize(T.TokenizeRequest(text="é😀"), timeout=scaled(10))
        self.assertEqual(list(plain.ids), list("é😀".encode()))
        back = tok.Detokenize(T.DetokenizeRequest(ids=[256] + list("é😀 x".encode()) + [257, 258]),
                              timeout=scaled(10))
        self.assertEqual(back.text, "é😀 x")

    def test_info(self):
        info = self.stubs.info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10))
        m = info.model
        self.assertEqual(pb["info"].ModelType.Name(m.type), "MODEL_TYPE_DECODER")
        self.assertEqual((m.vocab_size, m.embed_dim, m.attention_heads, m.layers), (259, 256, 4, 4))
        self.assertEqual([(b.segment_length, b.dilation) for b in m.branches], [(128, 1), (512, 2), (2048, 4)])
        self.assertEqual((m.bos_id, m.eos_id, m.pad_id), (256, 257, 258))
        self.assertEqual(m.tokenizer, "byte")
        self.assertTrue(m.xpos)
        self.assertGreater(m.max_context_tokens, 0)
        self.assertTrue(info.device.startswith("cpu") or info.device.startswith("cuda"), info.device)
        self.assertTrue(info.build.version)


class ChunkedPrefill(ServerTest):
    """A long prompt is prefilled in chunks between the decode steps of running requests.

    Structural, not timed: with a step budget of 256 tokens a 10,001-token prompt takes 40 steps, and each of
    them also decodes one token of the running stream, so the stream must receive tokens while the prompt is
    prefilled. A server that prefilled the prompt in one step would send the stream about none."""

    BUDGET = 256
    SERVER_ARGS = ["--max-new-tokens", "100000", "--max-batch-tokens", str(BUDGET)]

    def test_long_prompt_does_not_stall_a_running_stream(self):
        stream = self.stubs.gen.GenerateStream(gen_request(max_new_tokens=100000, ignore_eos=True),
                                               timeout=scaled(120))
        next(stream)
        arrivals = []

        def reader():
            try:
                for _ in stream:
                    arrivals.append(time.monotonic())
            except grpc.RpcError:
                pass

        t = threading.Thread(target=reader)
        t.start()
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            r = self.stubs.gen.Generate(gen_request(H.deterministic_text(10000, seed=31), max_new_tokens=1),
                                        timeout=scaled(120))
            t1 = time.monotonic()
        finally:
            stream.cancel()
            t.join(scaled(10))
        self.assertEqual(r.usage.prompt_tokens, 10001)
        steps = -(-10001 // (self.BUDGET - 1))  # the running stream's decode token takes one of each budget
        during = [a for a in arrivals if t0 <= a <= t1]
        # Half the steps leave room for stream messages still in flight when the unary reply lands.
        self.assertGreaterEqual(len(during), steps // 2,
                                f"the running stream got {len(during)} tokens during a {steps}-step prefill")


# --------------------------------------------------------------------------------------------------------
# b. a 64K-token document equals longnet-run encode / score
# --------------------------------------------------------------------------------------------------------
class EncodeLongDocument(ServerTest):
    """65,536 bytes (65,537 tokens with bos) through EncodeStream in chunks, and through unary Encode."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.text = H.deterministic_text(65536, seed=3)
        cls.path = write_class_doc(cls, cls.text)
        cls.ref_pooled = json.loads(H.longnet_run("encode", "--input", cls.path, "--pooling", "mean"))
        cls.ref_score = json.loads(H.longnet_run("score", "--input", cls.path))

    def test_encode_stream_equals_longnet_run(self):
        E = pb["encode"]
        options = E.EncodeOptions(pooling=E.POOLING_MEAN, score=True)
        responses = list(self.stubs.enc.EncodeStream(
            stream_chunks(self.text, 8192, options, document_id="doc64k", request_id="it-doc64k"),
            timeout=scaled(180)))
        result, chunks = stream_result(responses)
        self.assertEqual(chunks, [], "no per-token chunks were asked for")
        self.assertEqual(result.id, "doc64k")
        self.assertEqual(result.tokens, 65537)
        self.assertEqual(result.truncated_tokens, 0)
        self.assertEqual(len(result.pooled), len(self.ref_pooled))
        self.assertLessEqual(max_abs_diff(result.pooled, self.ref_pooled), 1e-4, "pooled vs longnet-run encode")
        s = result.score
        self.assertAlmostEqual(s.bits_per_byte, self.ref_score["bits_per_byte"], delta=1e-5)
        self.assertAlmostEqual(s.bits_per_token, self.ref_score["bits_per_token"], delta=1e-5)
        self.assertEqual(s.scored_tokens, 65536)
        self.assertEqual(s.bytes, 65536)
        self.assertAlmostEqual(-s.log_likelihood / math.log(2) / s.bytes, s.bits_per_byte, delta=1e-9)
        self.assertTrue(all(r.request_id == "it-doc64k" for r in responses))

    def test_unary_encode_equals_longnet_run(self):
        E = pb["encode"]
        r = self.stubs.enc.Encode(E.EncodeRequest(document=E.Document(id="u", text=self.text)),
                                  timeout=scaled(180))
        self.assertEqual(r.result.tokens, 65537)
        self.assertLessEqual(max_abs_diff(r.result.pooled, self.ref_pooled), 1e-4, "pooled vs longnet-run encode")
        self.assertFalse(r.result.HasField("score"), "score without asking")


# --------------------------------------------------------------------------------------------------------
# encoding semantics on small documents
# --------------------------------------------------------------------------------------------------------
class EncodeSemantics(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.text = H.deterministic_text(3000, seed=5)
        cls.path = write_class_doc(cls, cls.text)
        cls.ref = {p: json.loads(H.longnet_run("encode", "--input", cls.path, "--pooling", p))
                   for p in ("mean", "first", "last")}
        cls.ref_score = json.loads(H.longnet_run("score", "--input", cls.path))

    def encode(self, doc=None, **options):
        E = pb["encode"]
        doc = doc or E.Document(text=self.text)
        return self.stubs.enc.Encode(E.EncodeRequest(document=doc, options=E.EncodeOptions(**options)),
                                     timeout=scaled(60)).result

    def test_poolings_equal_longnet_run(self):
        E = pb["encode"]
        for name, value in (("mean", E.POOLING_MEAN), ("first", E.POOLING_FIRST), ("last", E.POOLING_LAST),
                            ("mean", E.POOLING_UNSPECIFIED)):
            with self.subTest(pooling=E.Pooling.Name(value)):
                r = self.encode(pooling=value)
                self.assertEqual(r.tokens, 3001)
                self.assertLessEqual(max_abs_diff(r.pooled, self.ref[name]), 1e-4)
        self.assertEqual(len(self.encode(pooling=E.POOLING_NONE).pooled), 0)

    def test_normalize(self):
        r = self.encode(normalize=True)
        norm = math.sqrt(sum(x * x for x in self.ref["mean"]))
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in r.pooled)), 1.0, delta=1e-5)
        self.assertLessEqual(max_abs_diff(r.pooled, [x / norm for x in self.ref["mean"]]), 1e-4)

    def test_score_unary(self):
        r = self.encode(score=True)
        self.assertAlmostEqual(r.score.bits_per_byte, self.ref_score["bits_per_byte"], delta=1e-5)
        self.assertEqual(r.score.scored_tokens, 3000)
        ids = list(self.stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text=self.text, add_special_tokens=True),
                                           timeout=scaled(10)).ids)
        by_ids = self.encode(pb["encode"].Document(ids=pb["common"].TokenIds(ids=ids)), score=True)
        self.assertAlmostEqual(by_ids.score.log_likelihood, r.score.log_likelihood, delta=1e-3)
        self.assertEqual(by_ids.score.bits_per_byte, 0.0, "bits_per_byte is 0 for a document sent as ids")
        self.assertLessEqual(max_abs_diff(by_ids.pooled, r.pooled), 1e-5)

    def test_token_states_and_logprobs_stream(self):
        E = pb["encode"]
        options = E.EncodeOptions(return_token_states=True, score=True, return_token_logprobs=True)
        responses = list(self.stubs.enc.EncodeStream(stream_chunks(self.text, 1000, options), timeout=scaled(60)))
        result, chunks = stream_result(responses)
        self.assertGreater(len(chunks), 0)
        pos, dim = 0, len(self.ref["mean"])
        sums = [0.0] * dim
        logprobs = []
        for c in chunks:
            self.assertEqual(c.first_position, pos, "chunks in order, contiguous")
            self.assertEqual(c.dim, dim)
            self.assertEqual(len(c.states), c.rows * dim)
            self.assertEqual(len(c.logprobs), c.rows)
            for r in range(c.rows):
                row = c.states[r * dim:(r + 1) * dim]
                for d in range(dim):
                    sums[d] += row[d]
            logprobs.extend(c.logprobs)
            pos += c.rows
        self.assertEqual(pos, 3001, "every token's row")
        self.assertEqual(result.tokens, 3001)
        mean = [x / pos for x in sums]
        self.assertLessEqual(max_abs_diff(mean, self.ref["mean"]), 1e-4, "mean of the streamed states")
        self.assertLessEqual(max_abs_diff(result.pooled, self.ref["mean"]), 1e-4)
        self.assertEqual(logprobs[0], 0.0, "the first token has no prediction")
        self.assertTrue(all(lp <= 1e-6 for lp in logprobs))
        self.assertAlmostEqual(math.fsum(logprobs), result.score.log_likelihood, delta=1e-2)

    def test_stream_of_ids_equals_text(self):
        E = pb["encode"]
        ids = list(self.stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text=self.text, add_special_tokens=True),
                                           timeout=scaled(10)).ids)

        def reqs():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(), ids=pb["common"].TokenIds(ids=ids[:700]))
            for i in range(700, len(ids), 700):
                yield E.EncodeStreamRequest(ids=pb["common"].TokenIds(ids=ids[i:i + 700]))

        result, _ = stream_result(list(self.stubs.enc.EncodeStream(reqs(), timeout=scaled(60))))
        self.assertEqual(result.tokens, 3001)
        self.assertLessEqual(max_abs_diff(result.pooled, self.ref["mean"]), 1e-4)

    def test_encode_batch(self):
        E = pb["encode"]
        texts = {f"d{i}": H.deterministic_text(200 + 150 * i, seed=20 + i) for i in range(4)}
        alone = {k: self.encode(E.Document(text=v)) for k, v in texts.items()}
        responses = list(self.stubs.enc.EncodeBatch(
            E.EncodeBatchRequest(documents=[E.Document(id=k, text=v) for k, v in texts.items()],
                                 request_id="it-batch"), timeout=scaled(60)))
        self.assertEqual(sorted(r.result.id for r in responses), sorted(texts), "one result per document id")
        for r in responses:
            self.assertEqual(r.request_id, "it-batch")
            self.assertEqual(r.result.tokens, len(texts[r.result.id]) + 1)
            self.assertLessEqual(max_abs_diff(r.result.pooled, alone[r.result.id].pooled), 1e-4, r.result.id)


# --------------------------------------------------------------------------------------------------------
# c. bad inputs -> INVALID_ARGUMENT naming the field (or the limit)
# --------------------------------------------------------------------------------------------------------
class InvalidArguments(ServerTest):
    LIMITS = dict(max_prompt_tokens=64, max_new_tokens=100, max_document_tokens=1000, max_batch_documents=4,
                  max_stop_sequences=4, max_stop_sequence_bytes=16, max_top_logprobs=5,
                  max_message_bytes=65536)
    SERVER_ARGS = [a for k, v in LIMITS.items() for a in ("--" + k.replace("_", "-"), str(v))]

    def test_limits_are_reported(self):
        limits = self.stubs.info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10)).limits
        for k, v in self.LIMITS.items():
            self.assertEqual(getattr(limits, k), v, k)

    def test_generate(self):
        G = pb["generate"]
        T = pb["common"].TokenIds
        nan, inf = float("nan"), float("inf")
        long_prompt = "x" * 100  # 101 tokens > 64
        cases = [
            ("empty text", G.GenerateRequest(text=""), ("text",), ()),
            ("no input", G.GenerateRequest(), ("input", "text"), ()),
            ("empty ids", G.GenerateRequest(ids=T()), ("ids",), ()),
            ("id >= vocab", G.GenerateRequest(ids=T(ids=[72, 259])), ("ids",), ()),
            ("negative id", G.GenerateRequest(ids=T(ids=[-1, 72])), ("ids",), ()),
            ("prompt over max_prompt_tokens", G.GenerateRequest(text=long_prompt), (), ("max_prompt_tokens",)),
            ("max_new_tokens 0", gen_request(max_new_tokens=0), ("parameters.max_new_tokens",), ()),
            ("max_new_tokens over the limit", gen_request(max_new_tokens=101), ("parameters.max_new_tokens",), ()),
            ("temperature -1", gen_request(temperature=-1.0), ("parameters.temperature",), ()),
            ("temperature NaN", gen_request(temperature=nan), ("parameters.temperature",), ()),
            ("temperature inf", gen_request(temperature=inf), ("parameters.temperature",), ()),
            ("top_k -1", gen_request(top_k=-1), ("parameters.top_k",), ()),
            ("top_p 0", gen_request(top_p=0.0), ("parameters.top_p",), ()),
            ("top_p 1.5", gen_request(top_p=1.5), ("parameters.top_p",), ()),
            ("top_p NaN", gen_request(top_p=nan), ("parameters.top_p",), ()),
            ("repetition_penalty 0", gen_request(repetition_penalty=0.0), ("parameters.repetition_penalty",), ()),
            ("repetition_penalty -1", gen_request(repetition_penalty=-1.0), ("parameters.repetition_penalty",), ()),
            ("too many stop sequences", gen_request(stop=["a", "b", "c", "d", "e"]), ("parameters.stop",), ()),
            ("empty stop sequence", gen_request(stop=["ok", ""]), ("parameters.stop",), ()),
            ("stop sequence too long", gen_request(stop=["x" * 17]), ("parameters.stop",), ()),
            ("stop sequence too long in bytes", gen_request(stop=["é" * 9]), ("parameters.stop",), ()),
            ("stop_token_ids >= vocab", gen_request(stop_token_ids=[259]), ("parameters.stop_token_ids",), ()),
            ("stop_token_ids negative", gen_request(stop_token_ids=[-2]), ("parameters.stop_token_ids",), ()),
            ("top_logprobs over the limit", gen_request(logprobs=True, top_logprobs=6),
             ("parameters.top_logprobs",), ()),
            ("request_id too long", gen_request(request_id="r" * 129), ("request_id",), ()),
            ("request_id not printable", gen_request(request_id="bad\nid"), ("request_id",), ()),
        ]
        for name, req, fields, contains in cases:
            with self.subTest(case=name, rpc="Generate"):
                self.assertRpcError(lambda: self.stubs.gen.Generate(req, timeout=scaled(10)),
                                    CODE.INVALID_ARGUMENT, fields=fields, contains=contains, msg=f"Generate: {name}")
            with self.subTest(case=name, rpc="GenerateStream"):
                self.assertRpcError(lambda: list(self.stubs.gen.GenerateStream(req, timeout=scaled(10))),
                                    CODE.INVALID_ARGUMENT, fields=fields, contains=contains,
                                    msg=f"GenerateStream: {name}")
        # the limits themselves are accepted
        ok = self.stubs.gen.Generate(gen_request("x" * 63, max_new_tokens=100, ignore_eos=True,
                                                 stop=["a" * 16, "b", "c", "d"], logprobs=True, top_logprobs=5,
                                                 request_id="r" * 128), timeout=scaled(60))
        self.assertIn(finish_name(ok.finish_reason), ("FINISH_REASON_LENGTH", "FINISH_REASON_STOP_SEQUENCE"))
        self.assertServing()

    def test_oversized_message(self):
        # over --max-message-bytes (65,536) but under 4x: refused naming the limit, and the server goes on.
        T = pb["tokenize"]
        self.assertRpcError(lambda: self.stubs.tok.Tokenize(T.TokenizeRequest(text="a" * 100000),
                                                            timeout=scaled(10)),
                            CODE.INVALID_ARGUMENT, contains=("max_message_bytes",), msg="Tokenize 100,000 bytes")
        self.assertRpcError(lambda: self.stubs.gen.Generate(gen_request("a" * 100000), timeout=scaled(10)),
                            CODE.INVALID_ARGUMENT, msg="Generate 100,000 bytes")
        r = self.stubs.tok.Tokenize(T.TokenizeRequest(text="a" * 60000), timeout=scaled(10))
        self.assertEqual(len(r.ids), 60000)
        self.assertServing()

    def test_encode(self):
        E = pb["encode"]
        T = pb["common"].TokenIds
        big = "y" * 1500  # 1,501 tokens > 1,000

        def enc(doc, **opts):
            return E.EncodeRequest(document=doc, options=E.EncodeOptions(**opts))

        cases = [
            ("empty document", enc(E.Document(text="")), ("document",), ()),
            ("no document", E.EncodeRequest(), ("document",), ()),
            ("empty ids", enc(E.Document(ids=T())), ("document",), ()),
            ("id >= vocab", enc(E.Document(ids=T(ids=[1, 2, 300]))), ("document",), ("ids",)),
            ("over max_document_tokens, truncation NONE", enc(E.Document(text=big), truncation=E.TRUNCATION_NONE),
             (), ("max_document_tokens",)),
            ("over max_document_tokens, truncation unspecified", enc(E.Document(text=big)),
             (), ("max_document_tokens",)),
            ("options.max_tokens over the limit", enc(E.Document(text="abc"), max_tokens=1001),
             ("options.max_tokens",), ()),
            ("return_token_states in unary Encode", enc(E.Document(text="abc"), return_token_states=True),
             ("options.return_token_states",), ()),
            ("return_token_logprobs in unary Encode",
             enc(E.Document(text="abc"), score=True, return_token_logprobs=True),
             ("options.return_token_logprobs",), ()),
            ("unknown pooling", enc(E.Document(text="abc"), pooling=99), ("options.pooling",), ()),
            ("unknown truncation", enc(E.Document(text="abc"), truncation=99), ("options.truncation",), ()),
            ("request_id too long", E.EncodeRequest(document=E.Document(text="abc"), request_id="q" * 129),
             ("request_id",), ()),
        ]
        for name, req, fields, contains in cases:
            with self.subTest(case=name):
                self.assertRpcError(lambda: self.stubs.enc.Encode(req, timeout=scaled(10)), CODE.INVALID_ARGUMENT,
                                    fields=fields, contains=contains, msg=f"Encode: {name}")

    def test_encode_truncation(self):
        E = pb["encode"]
        T = pb["common"].TokenIds
        text = H.deterministic_text(1500, seed=9)
        ids = list(self.stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text=text, add_special_tokens=True),
                                           timeout=scaled(10)).ids)
        self.assertEqual(len(ids), 1501)

        def enc(doc, **opts):
            return self.stubs.enc.Encode(E.EncodeRequest(document=doc, options=E.EncodeOptions(**opts)),
                                         timeout=scaled(60)).result

        right = enc(E.Document(text=text), truncation=E.TRUNCATION_RIGHT)
        self.assertEqual((right.tokens, right.truncated_tokens), (1000, 501))
        self.assertLessEqual(max_abs_diff(right.pooled, enc(E.Document(ids=T(ids=ids[:1000]))).pooled), 1e-5,
                             "TRUNCATION_RIGHT keeps the first tokens")
        left = enc(E.Document(text=text), truncation=E.TRUNCATION_LEFT)
        self.assertEqual((left.tokens, left.truncated_tokens), (1000, 501))
        self.assertLessEqual(max_abs_diff(left.pooled, enc(E.Document(ids=T(ids=ids[-1000:]))).pooled), 1e-5,
                             "TRUNCATION_LEFT keeps the last tokens")
        small = enc(E.Document(text=text), truncation=E.TRUNCATION_RIGHT, max_tokens=100)
        self.assertEqual((small.tokens, small.truncated_tokens), (100, 1401))
        # streamed: the same
        result, _ = stream_result(list(self.stubs.enc.EncodeStream(
            stream_chunks(text, 400, E.EncodeOptions(truncation=E.TRUNCATION_LEFT)), timeout=scaled(60))))
        self.assertEqual((result.tokens, result.truncated_tokens), (1000, 501))
        self.assertLessEqual(max_abs_diff(result.pooled, left.pooled), 1e-5)

    def test_encode_stream(self):
        E = pb["encode"]
        T = pb["common"].TokenIds

        def mixed():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(), text="abc")
            yield E.EncodeStreamRequest(ids=T(ids=[1, 2, 3]))

        def empty():
            return iter(())

        def too_long():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(), text="z" * 800)
            yield E.EncodeStreamRequest(text="z" * 800)

        def bad_ids():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(), ids=T(ids=[1, 2, 3]))
            yield E.EncodeStreamRequest(ids=T(ids=[4, 999]))

        def logprobs_without_score():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(return_token_logprobs=True), text="abc")

        cases = [
            ("mixing text and ids", mixed, ("text", "ids", "chunk"), ()),
            ("no message at all", empty, ("request", "document", "options"), ()),
            ("over max_document_tokens, truncation NONE", too_long, (), ("max_document_tokens",)),
            ("id >= vocab in a later chunk", bad_ids, ("document.ids", "ids"), ()),
            ("return_token_logprobs without score", logprobs_without_score, ("options.return_token_logprobs",), ()),
        ]
        for name, gen, fields, contains in cases:
            with self.subTest(case=name):
                self.assertRpcError(lambda: list(self.stubs.enc.EncodeStream(gen(), timeout=scaled(10))),
                                    CODE.INVALID_ARGUMENT, fields=fields, contains=contains,
                                    msg=f"EncodeStream: {name}")

    def test_encode_batch(self):
        E = pb["encode"]

        def batch(docs, **opts):
            return E.EncodeBatchRequest(documents=docs, options=E.EncodeOptions(**opts))

        cases = [
            ("duplicate ids", batch([E.Document(id="a", text="x"), E.Document(id="a", text="y")]),
             ("documents",), ()),
            ("empty id", batch([E.Document(id="", text="x")]), ("documents",), ()),
            ("too many documents", batch([E.Document(id=str(i), text="x") for i in range(5)]),
             ("documents",), ("max_batch_documents",)),
            ("no documents", batch([]), ("documents",), ()),
            ("empty document", batch([E.Document(id="a", text="x"), E.Document(id="b", text="")]),
             ("documents",), ()),
            ("return_token_states", batch([E.Document(id="a", text="x")], return_token_states=True),
             ("options.return_token_states",), ()),
        ]
        for name, req, fields, contains in cases:
            with self.subTest(case=name):
                self.assertRpcError(lambda: list(self.stubs.enc.EncodeBatch(req, timeout=scaled(10))),
                                    CODE.INVALID_ARGUMENT, fields=fields, contains=contains,
                                    msg=f"EncodeBatch: {name}")

    def test_detokenize(self):
        T = pb["tokenize"]
        for ids in ([72, 259], [-5], [2**31 - 1]):
            with self.subTest(ids=ids):
                self.assertRpcError(lambda: self.stubs.tok.Detokenize(T.DetokenizeRequest(ids=ids),
                                                                      timeout=scaled(10)),
                                    CODE.INVALID_ARGUMENT, fields=("ids",), msg=f"Detokenize {ids}")


# --------------------------------------------------------------------------------------------------------
# d. a full queue -> RESOURCE_EXHAUSTED at once
# --------------------------------------------------------------------------------------------------------
class QueueFull(ServerTest):
    SERVER_ARGS = ["--max-batch-sequences", "1", "--max-queue-requests", "1", "--max-new-tokens", "100000"]
    METRICS = True

    def wait_queue_depth(self, n):
        deadline = time.monotonic() + scaled(5)
        while True:
            depth = H.metric_sum(self.server.scrape(), "longnet_queue_depth_requests")
            if depth == n:
                return
            if time.monotonic() > deadline:
                self.fail(f"longnet_queue_depth_requests is {depth}, expected {n}")
            time.sleep(0.02)

    def test_queue_full(self):
        long_req = gen_request(max_new_tokens=100000, ignore_eos=True, temperature=0.0)
        running = self.stubs.gen.GenerateStream(long_req, timeout=scaled(120))
        queued = None
        try:
            next(running)  # it runs
            queued = self.stubs.gen.GenerateStream(long_req, timeout=scaled(120))
            self.wait_queue_depth(1)  # ... and this one waits in the queue
            t0 = time.monotonic()
            self.assertRpcError(lambda: self.stubs.gen.Generate(gen_request(max_new_tokens=4), timeout=scaled(30)),
                                CODE.RESOURCE_EXHAUSTED, msg="a third request with the queue full")
            self.assertLess(time.monotonic() - t0, scaled(1.0), "RESOURCE_EXHAUSTED must come at once")
            self.assertRpcError(lambda: list(self.stubs.gen.GenerateStream(gen_request(max_new_tokens=4),
                                                                           timeout=scaled(30))),
                                CODE.RESOURCE_EXHAUSTED, msg="a third stream with the queue full")
            self.assertRpcError(lambda: self.stubs.enc.Encode(
                pb["encode"].EncodeRequest(document=pb["encode"].Document(text="abc")), timeout=scaled(30)),
                CODE.RESOURCE_EXHAUSTED, msg="an Encode with the queue full")
            # the running one goes away: the queued one runs
            running.cancel()
            first = next(queued)
            self.assertGreater(len(first.tokens) + len(first.text), 0)
        finally:
            running.cancel()
            if queued is not None:
                queued.cancel()
        # and new work is accepted again
        deadline = time.monotonic() + scaled(10)
        while True:
            try:
                r = self.stubs.gen.Generate(gen_request(max_new_tokens=4, ignore_eos=True), timeout=scaled(30))
                break
            except grpc.RpcError as e:
                if e.code() != CODE.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertEqual(len(r.tokens), 4)


# --------------------------------------------------------------------------------------------------------
# e. deadlines
# --------------------------------------------------------------------------------------------------------
class Deadlines(ServerTest):
    # One sequence at a time: a request the server kept running past its deadline would hold the next one.
    SERVER_ARGS = ["--max-batch-sequences", "1", "--max-new-tokens", "100000"]
    METRICS = True

    def wait_pool_idle(self, baseline, what):
        deadline = time.monotonic() + scaled(3)
        while True:
            now = H.metric_sum(self.server.scrape(), "longnet_memory_pool_in_use_bytes")
            if now is not None and now <= baseline:
                return
            if time.monotonic() > deadline:
                self.fail(f"{what}: longnet_memory_pool_in_use_bytes {now} did not return to {baseline}")
            time.sleep(0.05)

    def test_generate_deadline(self):
        self.stubs.gen.Generate(gen_request(max_new_tokens=4), timeout=scaled(30))
        baseline = H.metric_sum(self.server.scrape(), "longnet_memory_pool_in_use_bytes")
        self.assertIsNotNone(baseline, "no longnet_memory_pool_in_use_bytes metric")
        t0 = time.monotonic()
        self.assertRpcError(lambda: self.stubs.gen.Generate(gen_request(max_new_tokens=100000, ignore_eos=True),
                                                            timeout=0.3),
                            CODE.DEADLINE_EXCEEDED, msg="0.3 s on a 100,000-token generation")
        self.assertLess(time.monotonic() - t0, scaled(2.0))
        # the server dropped it: the next request (one sequence at a time) is served at once
        t0 = time.monotonic()
        r = self.stubs.gen.Generate(gen_request(max_new_tokens=8, ignore_eos=True), timeout=scaled(30))
        self.assertEqual(len(r.tokens), 8)
        self.assertLess(time.monotonic() - t0, scaled(2.0), "the expired request still held the batch")
        self.wait_pool_idle(baseline, "after a deadline")

    def test_stream_deadline(self):
        stream = self.stubs.gen.GenerateStream(gen_request(max_new_tokens=100000, ignore_eos=True), timeout=0.5)
        got = 0

        def drain():
            nonlocal got
            for _ in stream:
                got += 1

        self.assertRpcError(drain, CODE.DEADLINE_EXCEEDED, msg="GenerateStream with a 0.5 s deadline")
        self.assertGreater(got, 0, "no token before the deadline")
        r = self.stubs.gen.Generate(gen_request(max_new_tokens=8, ignore_eos=True), timeout=scaled(30))
        self.assertEqual(len(r.tokens), 8)
        self.assertServing()

    def test_encode_deadline(self):
        E = pb["encode"]
        text = H.deterministic_text(300000, seed=12)
        self.assertRpcError(lambda: list(self.stubs.enc.EncodeStream(stream_chunks(text, 65536, E.EncodeOptions()),
                                                                     timeout=0.5)),
                            CODE.DEADLINE_EXCEEDED, msg="EncodeStream of 300,000 tokens with a 0.5 s deadline")
        r = self.stubs.enc.Encode(E.EncodeRequest(document=E.Document(text="abc")), timeout=scaled(30))
        self.assertEqual(r.result.tokens, 4)
        codes = {ls.get("code") for n, ls, v in H.parse_metrics(self.server.scrape())
                 if n == "longnet_requests_total" and v > 0}
        self.assertIn("DEADLINE_EXCEEDED", codes, f"longnet_requests_total codes: {codes}")


# --------------------------------------------------------------------------------------------------------
# f. cancellation frees memory
# --------------------------------------------------------------------------------------------------------
class CancelFreesMemory(ServerTest):
    SERVER_ARGS = ["--max-new-tokens", "100000"]
    METRICS = True

    def in_use(self):
        v = H.metric_sum(self.server.scrape(), "longnet_memory_pool_in_use_bytes")
        self.assertIsNotNone(v, "no longnet_memory_pool_in_use_bytes in /metrics")
        return v

    def baseline(self):
        # one request of each kind first, so lazily made buffers are part of the idle baseline
        self.stubs.gen.Generate(gen_request(max_new_tokens=4), timeout=scaled(30))
        E = pb["encode"]
        self.stubs.enc.Encode(E.EncodeRequest(document=E.Document(text="abc")), timeout=scaled(30))
        time.sleep(0.2)
        return self.in_use()

    def wait_back_to(self, baseline, what, seconds=3):
        deadline = time.monotonic() + scaled(seconds)
        while True:
            now = self.in_use()
            if now <= baseline:
                return time.monotonic()
            if time.monotonic() > deadline:
                self.fail(f"{what}: in-use pool bytes {now:.0f} still above the idle {baseline:.0f} "
                          f"{scaled(seconds):.0f} s after the cancel")
            time.sleep(0.05)

    def test_cancel_generate_stream(self):
        base = self.baseline()
        stream = self.stubs.gen.GenerateStream(gen_request(max_new_tokens=100000, ignore_eos=True),
                                               timeout=scaled(120))
        for _ in range(5):
            next(stream)
        during = self.in_use()
        self.assertGreater(during, base, "a running generation holds pool memory (its KV cache)")
        stream.cancel()
        self.wait_back_to(base, "cancelled GenerateStream")
        self.assertServing()
        series = [(ls, v) for n, ls, v in H.parse_metrics(self.server.scrape())
                  if n == "longnet_requests_total" and ls.get("code") == "CANCELLED" and v > 0]
        self.assertTrue(any("GenerateStream" in ls.get("rpc", "") for ls, _ in series),
                        f"longnet_requests_total has no CANCELLED GenerateStream series: {series}")

    def test_cancel_encode_stream_while_computing(self):
        base = self.baseline()
        E = pb["encode"]
        text = H.deterministic_text(400000, seed=13)
        options = E.EncodeOptions(score=True, return_token_logprobs=True)
        stream = self.stubs.enc.EncodeStream(stream_chunks(text, 65536, options), timeout=scaled(180))
        first = next(stream)
        self.assertEqual(first.WhichOneof("payload"), "chunk")
        stream.cancel()
        self.wait_back_to(base, "EncodeStream cancelled while computing")
        self.assertServing()

    def test_cancel_encode_stream_while_uploading(self):
        base = self.baseline()
        E = pb["encode"]
        release = threading.Event()
        sent = threading.Event()

        def chunks():
            yield E.EncodeStreamRequest(options=E.EncodeOptions(), text=H.deterministic_text(50000, seed=14))
            yield E.EncodeStreamRequest(text=H.deterministic_text(50000, seed=15))
            sent.set()
            release.wait(scaled(60))  # the client has more to send... and gives up

        stream = self.stubs.enc.EncodeStream(chunks(), timeout=scaled(120))
        try:
            self.assertTrue(sent.wait(scaled(10)))
            time.sleep(scaled(1.0))  # the server is encoding what it has
            stream.cancel()
        finally:
            release.set()
        self.wait_back_to(base, "EncodeStream cancelled while uploading")
        self.assertServing()


class MemoryAdmission(ServerTest):
    """A request whose KV cache can never fit the memory budget is INVALID_ARGUMENT naming the budget; one
    that fits runs. The budget is sized from a first server's own figures: the model's bytes plus the
    activation reserve its warm-up measured, plus 3 MiB, less than one full demo-model cache (7.3 MB)."""
    SERVER_ARGS = None

    def test_cache_beyond_the_budget_is_refused_and_a_small_one_runs(self):
        probe = self.start_server(metrics=True, name="probe")
        probe.start()
        text = probe.scrape()
        weights = H.metric_sum(text, "longnet_memory_pool_in_use_bytes")
        reserve = H.metric_sum(text, "longnet_activation_reserve_bytes")
        self.assertTrue(weights and reserve, "no pool figures in /metrics")
        probe.stop()
        budget_mb = int((weights + reserve) // (1 << 20)) + 3
        server = self.start_server(["--memory-budget-mb", str(budget_mb)], name="tight")
        server.start()
        stubs = Stubs(server.channel())
        long_prompt = H.deterministic_text(3000, seed=21)
        self.assertRpcError(lambda: stubs.gen.Generate(gen_request(text=long_prompt, max_new_tokens=64),
                                                       timeout=scaled(30)),
                            grpc.StatusCode.INVALID_ARGUMENT, contains=("memory_budget",),
                            msg=f"a full cache with --memory-budget-mb {budget_mb}")
        reply = stubs.gen.Generate(gen_request(text="In the", max_new_tokens=4), timeout=scaled(30))
        G = pb["generate"]
        self.assertIn(reply.finish_reason, (G.FINISH_REASON_LENGTH, G.FINISH_REASON_EOS), reply)
        self.assertEqual(reply.usage.prompt_tokens, 7)  # bos + 6 bytes
        self.assertServing(server)


class Metrics(ServerTest):
    SERVER_ARGS = ["--memory-budget-mb", "2048"]
    METRICS = True

    def test_prometheus_endpoint(self):
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=scaled(5)) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type"))
            before = r.read().decode()
        gen0 = H.metric_sum(before, "longnet_generated_tokens_total") or 0
        ok0 = H.metric_sum(before, "longnet_requests_total", rpc="Generate", code="OK") or 0
        r = self.stubs.gen.Generate(gen_request(max_new_tokens=7, ignore_eos=True), timeout=scaled(30))
        self.assertRpcError(lambda: self.stubs.gen.Generate(gen_request(top_p=2.0), timeout=scaled(10)),
                            CODE.INVALID_ARGUMENT)
        after = self.server.scrape()
        self.assertEqual(H.metric_sum(after, "longnet_requests_total", rpc="Generate", code="OK"), ok0 + 1)
        self.assertGreaterEqual(H.metric_sum(after, "longnet_requests_total", rpc="Generate",
                                             code="INVALID_ARGUMENT") or 0, 1)
        self.assertEqual(H.metric_sum(after, "longnet_generated_tokens_total"), gen0 + len(r.tokens))
        self.assertEqual(H.metric_sum(after, "longnet_memory_pool_budget_bytes"), 2048 * 2**20)
        info = self.stubs.info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10))
        self.assertEqual(info.limits.memory_budget_bytes, 2048 * 2**20)
        # latency histograms reach minutes: long contexts are slow by nature
        bounds = [float(ls["le"]) for n, ls, _ in H.parse_metrics(after)
                  if n == "longnet_request_duration_seconds_bucket" and ls.get("le") not in (None, "+Inf")]
        self.assertTrue(bounds and max(bounds) >= 60, f"request duration buckets: {sorted(set(bounds))}")
        for name in ("longnet_queue_depth_requests", "longnet_queue_depth_tokens", "longnet_memory_pool_in_use_bytes",
                     "longnet_time_to_first_token_seconds_count", "longnet_kv_cache_bytes"):
            self.assertIsNotNone(H.metric_sum(after, name), f"{name} missing")


# --------------------------------------------------------------------------------------------------------
# g. SIGTERM drains
# --------------------------------------------------------------------------------------------------------
class Drain(ServerTest):
    SERVER_ARGS = None  # every test starts its own server

    def test_sigterm_lets_the_stream_finish(self):
        s = self.start_server(["--drain-timeout", "60", "--max-new-tokens", "100000"]).start()
        ch = s.channel()
        stubs = Stubs(ch)
        n = 5000  # a few seconds: the drain lasts long enough to watch
        stream = stubs.gen.GenerateStream(gen_request(max_new_tokens=n, ignore_eos=True, seed=5),
                                          timeout=scaled(120))
        msgs = [next(stream)]
        s.signal(signal.SIGTERM)
        # health goes NOT_SERVING (a status, not an error: the server still answers during the drain)
        seen = []
        deadline = time.monotonic() + scaled(2)
        while time.monotonic() < deadline:
            st = s.health_status("", channel=ch, timeout=1)
            seen.append(st)
            if st != "SERVING":
                break
            time.sleep(0.02)
        self.assertEqual(seen[-1], "NOT_SERVING", f"health during the drain: {seen[-5:]}\n{s.log_tail()}")
        for service in SERVICES:
            self.assertEqual(s.health_status(service, channel=ch, timeout=1), "NOT_SERVING", service)
        # new calls: UNAVAILABLE
        self.assertRpcError(lambda: stubs.gen.Generate(gen_request(max_new_tokens=4), timeout=scaled(10)),
                            CODE.UNAVAILABLE, msg="Generate during the drain")
        self.assertRpcError(lambda: list(stubs.enc.EncodeStream(
                            stream_chunks("abc", 10, pb["encode"].EncodeOptions()), timeout=scaled(10))),
                            CODE.UNAVAILABLE, msg="EncodeStream during the drain")
        self.assertTrue(s.running(), "the server exited before the in-flight stream finished")
        # the in-flight stream completes normally
        msgs += list(stream)
        tokens = sum(len(m.tokens) for m in msgs)
        self.assertEqual(finish_name(msgs[-1].finish_reason), "FINISH_REASON_LENGTH")
        self.assertEqual(tokens, n)
        self.assertEqual(msgs[-1].usage.generated_tokens, n)
        self.assertEqual(s.wait_exit(30), 0, s.log_tail())

    def test_drain_timeout_ends_generation(self):
        s = self.start_server(["--drain-timeout", "1", "--max-new-tokens", "1000000"]).start()
        stubs = Stubs(s.channel())
        stream = stubs.gen.GenerateStream(gen_request(max_new_tokens=1000000, ignore_eos=True),
                                          timeout=scaled(120))
        msgs = [next(stream)]
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        try:
            msgs += list(stream)
        except grpc.RpcError as e:
            self.fail(f"the stream ended with {e.code().name} ({e.details()}), not with finish_reason CANCELLED")
        self.assertEqual(finish_name(msgs[-1].finish_reason), "FINISH_REASON_CANCELLED")
        self.assertLess(time.monotonic() - t0, scaled(10))
        self.assertEqual(s.wait_exit(30), 0, s.log_tail())

    def test_sigterm_when_idle_exits_at_once(self):
        s = self.start_server(["--drain-timeout", "60"]).start()
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(10), 0, s.log_tail())
        self.assertLess(time.monotonic() - t0, scaled(5), "an idle server must not wait for the drain timeout")


# --------------------------------------------------------------------------------------------------------
# h. health while loading, reflection
# --------------------------------------------------------------------------------------------------------
class HealthAndReflection(ServerTest):
    def test_not_serving_while_loading(self):
        # A full 65,536-token warm-up step takes seconds: long enough to watch.
        s = self.start_server(["--max-batch-tokens", "65536"]).start(wait=False)
        ch = s.channel()
        stubs = Stubs(ch)
        seen = []
        unavailable_during_load = None
        deadline = time.monotonic() + scaled(120)
        while time.monotonic() < deadline:
            self.assertTrue(s.running(), s.log_tail())
            st = s.health_status("", channel=ch, timeout=0.5)
            if st == "UNAVAILABLE":  # not listening yet: a new channel, not one in reconnect backoff
                ch.close()
                ch = s.channel()
                stubs = Stubs(ch)
            if not seen or seen[-1] != st:
                seen.append(st)
            if st == "NOT_SERVING" and unavailable_during_load is None:
                try:
                    stubs.gen.Generate(gen_request(max_new_tokens=2), timeout=scaled(5))
                    unavailable_during_load = "OK"
                except grpc.RpcError as e:
                    unavailable_during_load = e.code().name
            if st == "SERVING":
                break
            time.sleep(0.05)
        self.assertEqual(seen[-1], "SERVING", f"health sequence {seen}\n{s.log_tail()}")
        self.assertIn("NOT_SERVING", seen, f"never saw NOT_SERVING while loading: {seen}")
        self.assertEqual(seen[-2:], ["NOT_SERVING", "SERVING"], f"health sequence {seen}")
        self.assertTrue(set(seen[:-2]) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"},
                        f"before NOT_SERVING, only connection errors: {seen}")
        if unavailable_during_load is not None:
            self.assertEqual(unavailable_during_load, "UNAVAILABLE", "a Generate while loading")
        for service in SERVICES:
            self.assertEqual(s.health_status(service, channel=ch), "SERVING", service)

    def test_health_per_service(self):
        for service in [""] + SERVICES:
            self.assertEqual(self.server.health_status(service), "SERVING", service)
        self.assertEqual(self.server.health_status("no.such.Service"), "NOT_FOUND")

    def reflect(self, **kw):
        R = pb["reflection"]
        return H.reflection_call(self.server.channel(), [R.ServerReflectionRequest(host="", **kw)])

    def test_reflection_lists_services(self):
        (r,) = self.reflect(list_services="")
        names = {s.name for s in r.list_services_response.service}
        for want in SERVICES + ["grpc.health.v1.Health"]:
            self.assertIn(want, names)

    def test_reflection_file_containing_symbol(self):
        # What grpcurl does: the file of the service, then every file it depends on, into one pool.
        from google.protobuf import descriptor_pb2, descriptor_pool
        (r,) = self.reflect(file_containing_symbol="longnet.v1.GenerationService")
        self.assertEqual(r.WhichOneof("message_response"), "file_descriptor_response",
                         f"{r.error_response}")
        files = {}
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
        self.assertIn("longnet/v1/generate.proto", files)
        gen = files["longnet/v1/generate.proto"]
        services = {s.name: [m.name for m in s.method] for s in gen.service}
        self.assertEqual(services.get("GenerationService"), ["Generate", "GenerateStream"])
        # fetch missing dependencies by file name, as grpcurl does
        todo = [d for fd in files.values() for d in fd.dependency if d not in files]
        while todo:
            name = todo.pop()
            if name in files:
                continue
            (d,) = self.reflect(file_by_filename=name)
            self.assertEqual(d.WhichOneof("message_response"), "file_descriptor_response", f"{name}: {d}")
            for raw in d.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files.setdefault(fd.name, fd)
                todo += [x for x in fd.dependency if x not in files]
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            added.add(name)

        for name in files:
            add(name)
        method = pool.FindServiceByName("longnet.v1.GenerationService").methods_by_name["GenerateStream"]
        self.assertEqual(method.input_type.full_name, "longnet.v1.GenerateRequest")
        self.assertTrue(method.server_streaming)
        self.assertIn("parameters", pool.FindMessageTypeByName("longnet.v1.GenerateRequest").fields_by_name)
        (e,) = self.reflect(file_containing_symbol="longnet.v1.EncodingService")
        self.assertEqual(e.WhichOneof("message_response"), "file_descriptor_response")
        (missing,) = self.reflect(file_containing_symbol="no.such.Symbol")
        self.assertEqual(missing.WhichOneof("message_response"), "error_response")

    def pool_from_reflection(self, symbol):
        from google.protobuf import descriptor_pb2, descriptor_pool
        files, todo = {}, []
        (r,) = self.reflect(file_containing_symbol=symbol)
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
            todo += list(fd.dependency)
        while todo:
            name = todo.pop()
            if name in files:
                continue
            (d,) = self.reflect(file_by_filename=name)
            for raw in d.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files.setdefault(fd.name, fd)
                todo += list(fd.dependency)
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name not in added:
                for dep in files[name].dependency:
                    add(dep)
                pool.Add(files[name])
                added.add(name)

        for name in files:
            add(name)
        return pool

    def test_grpcurl_style_calls(self):
        # The README's grpcurl examples, the way grpcurl runs them: descriptors from reflection only (no
        # generated code), the request from JSON, the answer back to JSON.
        from google.protobuf import json_format, message_factory
        examples = [
            ("longnet.v1.GenerationService", "Generate",
             '{"text":"In the beginning","parameters":{"max_new_tokens":32}}'),
            ("longnet.v1.GenerationService", "GenerateStream",
             '{"text":"The LORD is my shepherd","parameters":{"max_new_tokens":64,"temperature":0.8,"top_k":40,'
             '"seed":1}}'),
            ("longnet.v1.EncodingService", "Encode",
             '{"document":{"text":"In the beginning God created the heaven and the earth."},'
             '"options":{"pooling":"POOLING_MEAN","normalize":true}}'),
            ("grpc.health.v1.Health", "Check", '{"service":""}'),
        ]
        ch = self.server.channel()
        for service, method, body in examples:
            with self.subTest(method=f"{service}/{method}"):
                pool = self.pool_from_reflection(service)
                m = pool.FindServiceByName(service).methods_by_name[method]
                factory = message_factory.MessageFactory(pool)
                req_cls = factory.GetPrototype(m.input_type)
                resp_cls = factory.GetPrototype(m.output_type)
                req = json_format.Parse(body, req_cls())
                path = f"/{service}/{method}"
                if m.server_streaming:
                    call = ch.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                           response_deserializer=resp_cls.FromString)
                    answers = list(call(req, timeout=scaled(60)))
                else:
                    call = ch.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                          response_deserializer=resp_cls.FromString)
                    answers = [call(req, timeout=scaled(60))]
                out = [json.loads(json_format.MessageToJson(a)) for a in answers]
                if method == "Generate":
                    self.assertEqual(out[0]["usage"]["generatedTokens"], len(out[0]["tokens"]))
                elif method == "GenerateStream":
                    self.assertEqual(sum(len(o.get("tokens", [])) for o in out), out[-1]["usage"]["generatedTokens"])
                elif method == "Encode":
                    self.assertEqual(len(out[0]["result"]["pooled"]), 256)
                else:
                    self.assertEqual(out[0]["status"], "SERVING")


# --------------------------------------------------------------------------------------------------------
# i. TLS, mutual TLS, API keys
# --------------------------------------------------------------------------------------------------------
class SecurityTest(ServerTest):
    SERVER_ARGS = None

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.TemporaryDirectory(prefix="longnet-it-certs-")
        cls.addClassCleanup(cls.certdir.cleanup)
        cls.certs = H.make_certificates(cls.certdir.name)

    def creds(self, ca="ca", client=None):
        kw = {"root_certificates": H.read(self.certs[f"{ca}_pem"])}
        if client:
            kw["private_key"] = H.read(self.certs[f"{client}_key"])
            kw["certificate_chain"] = H.read(self.certs[f"{client}_pem"])
        return grpc.ssl_channel_credentials(**kw)

    def info_call(self, channel, timeout=5, metadata=None):
        return pb["info_grpc"].InfoServiceStub(channel).GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(timeout),
                                                                metadata=metadata)

    def tls_server(self, client_ca=False, probe_client=None):
        c = self.certs
        s = self.start_server(tls=(c["server_pem"], c["server_key"], c["ca_pem"] if client_ca else None))
        s.probe_credentials = self.creds(client=probe_client)
        return s.start()


class Tls(SecurityTest):
    def test_tls(self):
        s = self.tls_server()
        ok = s.channel(self.creds())
        self.assertEqual(self.info_call(ok).model.vocab_size, 259)
        r = Stubs(ok).gen.Generate(gen_request(max_new_tokens=4, ignore_eos=True), timeout=scaled(30))
        self.assertEqual(len(r.tokens), 4)
        # by name too (the certificate names localhost and 127.0.0.1)
        by_name = s.channel(self.creds(), options=[("grpc.ssl_target_name_override", "localhost")])
        self.assertEqual(self.info_call(by_name).model.vocab_size, 259)
        self.assertRpcError(lambda: self.info_call(s.channel(), timeout=3), CODE.UNAVAILABLE,
                            msg="a plaintext client of a TLS server")
        self.assertRpcError(lambda: self.info_call(s.channel(self.creds(ca="other-ca")), timeout=3),
                            CODE.UNAVAILABLE, msg="a client that does not trust the server's CA")
        self.assertTrue(s.running())


class MutualTls(SecurityTest):
    def test_mutual_tls(self):
        s = self.tls_server(client_ca=True, probe_client="client")
        self.assertEqual(self.info_call(s.channel(self.creds(client="client"))).model.vocab_size, 259)
        self.assertRpcError(lambda: self.info_call(s.channel(self.creds()), timeout=3), CODE.UNAVAILABLE,
                            msg="a TLS client without a certificate")
        self.assertRpcError(lambda: self.info_call(s.channel(self.creds(client="rogue-client")), timeout=3),
                            CODE.UNAVAILABLE, msg="a client certificate from another CA")
        self.assertRpcError(lambda: self.info_call(s.channel(), timeout=3), CODE.UNAVAILABLE,
                            msg="a plaintext client")
        self.assertTrue(s.running())


class ApiKeys(SecurityTest):
    def test_api_keys(self):
        keys = os.path.join(self.certdir.name, "keys.txt")
        with open(keys, "w") as f:
            f.write("# clients\nkey-one-0123456789\n\n  key-two-abcdef  \n")
        s = self.start_server(["--api-key-file", keys]).start()
        ch = s.channel()
        stubs = Stubs(ch)
        self.assertEqual(s.health_status("", channel=ch), "SERVING", "health needs no key")
        for service in SERVICES:
            self.assertEqual(s.health_status(service, channel=ch), "SERVING", service)
        (r,) = H.reflection_call(ch, [pb["reflection"].ServerReflectionRequest(list_services="")])
        self.assertIn("longnet.v1.GenerationService", {x.name for x in r.list_services_response.service},
                      "reflection needs no key")
        bad = [("no key", None), ("wrong key", [("authorization", "Bearer key-three")]),
               ("no Bearer", [("authorization", "key-one-0123456789")]),
               ("empty bearer", [("authorization", "Bearer ")]),
               ("a comment line as key", [("authorization", "Bearer # clients")])]
        for name, md in bad:
            with self.subTest(case=name):
                self.assertRpcError(lambda: self.info_call(ch, metadata=md), CODE.UNAUTHENTICATED,
                                    msg=f"GetInfo, {name}")
                self.assertRpcError(lambda: list(stubs.gen.GenerateStream(gen_request(max_new_tokens=2),
                                                                          timeout=scaled(10), metadata=md)),
                                    CODE.UNAUTHENTICATED, msg=f"GenerateStream, {name}")
                self.assertRpcError(lambda: stubs.tok.Tokenize(pb["tokenize"].TokenizeRequest(text="a"),
                                                               timeout=scaled(10), metadata=md),
                                    CODE.UNAUTHENTICATED, msg=f"Tokenize, {name}")
        for key in ("key-one-0123456789", "key-two-abcdef"):
            md = [("authorization", f"Bearer {key}")]
            self.assertEqual(self.info_call(ch, metadata=md).model.vocab_size, 259, key)
            r = stubs.gen.Generate(gen_request(max_new_tokens=3, ignore_eos=True), timeout=scaled(30), metadata=md)
            self.assertEqual(len(r.tokens), 3)


# --------------------------------------------------------------------------------------------------------
# j. the default model and the command line
# --------------------------------------------------------------------------------------------------------
class CommandLine(ServerTest):
    SERVER_ARGS = None  # every test starts its own server

    def run_server(self, *args, timeout=30, env=None):
        import subprocess
        e = {k: v for k, v in os.environ.items() if not k.startswith("LONGNET_")}
        e.update(env or {})
        return subprocess.run(H.die_with_parent([H.SERVER, *args]), capture_output=True, text=True,
                              timeout=scaled(timeout), env=e)

    def test_default_model_and_limits(self):
        env = {"LONGNET_MAX_DOCUMENT_TOKENS": "7777", "LONGNET_MAX_STOP_SEQUENCES": "9"}
        s = self.start_server(["--max-new-tokens", "123", "--max-prompt-tokens", "4567",
                               "--max-stop-sequences", "3"], env=env).start()
        info = Stubs(s.channel()).info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10))
        self.assertEqual(info.model.vocab_size, 259)
        self.assertEqual(info.model.embed_dim, 256)
        self.assertTrue(info.model.name, "model name")
        self.assertEqual(info.limits.max_new_tokens, 123)
        self.assertEqual(info.limits.max_prompt_tokens, 4567)
        self.assertEqual(info.limits.max_document_tokens, 7777, "LONGNET_MAX_DOCUMENT_TOKENS")
        self.assertEqual(info.limits.max_stop_sequences, 3, "the flag wins over LONGNET_MAX_STOP_SEQUENCES")
        self.assertIsNone(s.stop())
        explicit = self.start_server(["--model", DEMO_MODEL], name="explicit").start()
        want = Stubs(explicit.channel()).info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10))
        # (max_context_tokens follows the limits: LONGNET_MAX_DOCUMENT_TOKENS above)
        info.model.ClearField("max_context_tokens")
        want.model.ClearField("max_context_tokens")
        self.assertEqual(info.model, want.model, "no --model = the demo model")

    def test_config_file(self):
        tmp = tempfile.TemporaryDirectory(prefix="longnet-it-config-")
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "server.conf")
        with open(path, "w") as f:
            f.write("# limits\nmax-batch-documents = 11\nmax-top-logprobs = 7\nmax-stop-sequences = 5\n")
        s = self.start_server(["--config", path, "--max-stop-sequences", "6"],
                              env={"LONGNET_MAX_TOP_LOGPROBS": "8"}).start()
        limits = Stubs(s.channel()).info.GetInfo(pb["info"].GetInfoRequest(), timeout=scaled(10)).limits
        self.assertEqual(limits.max_batch_documents, 11, "from the config file")
        self.assertEqual(limits.max_top_logprobs, 8, "the environment wins over the config file")
        self.assertEqual(limits.max_stop_sequences, 6, "the flag wins over the config file")
        with open(path, "w") as f:
            f.write("max-batch-documents = 11\nno-such-key = 1\n")
        p = self.run_server("--config", path, "--metrics-port", "0", timeout=15)
        self.assertNotEqual(p.returncode, 0, "an unknown config key accepted")
        self.assertIn("no-such-key", p.stderr)

    def test_help(self):
        p = self.run_server("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout + p.stderr
        for flag in ("--model", "--host", "--port", "--metrics-port", "--metrics-host", "--threads", "--device",
                     "--max-queue-requests", "--max-queue-tokens", "--max-batch-sequences", "--max-batch-tokens",
                     "--encode-chunk-tokens", "--max-prompt-tokens", "--max-new-tokens", "--max-document-tokens",
                     "--max-batch-documents", "--max-stop-sequences", "--max-stop-sequence-bytes",
                     "--max-top-logprobs", "--max-message-bytes", "--memory-budget-mb", "--tls-cert", "--tls-key",
                     "--tls-client-ca", "--api-key-file", "--drain-timeout", "--log-format", "--log-level",
                     "--config", "LONGNET_PORT", "LONGNET_API_KEY_FILE"):
            self.assertIn(flag, text, f"--help does not document {flag}")

    def test_unknown_flag(self):
        p = self.run_server("--no-such-flag", "1")
        self.assertEqual(p.returncode, 2, f"stdout: {p.stdout}\nstderr: {p.stderr}")
        self.assertIn("no-such-flag", p.stderr)

    def test_bad_values(self):
        for args, name in ((["--port", "notanumber"], "port"), (["--log-format", "xml"], "log-format"),
                           (["--device", "tpu"], "device")):
            with self.subTest(args=args):
                p = self.run_server(*args, "--metrics-port", "0")
                self.assertNotEqual(p.returncode, 0, f"{args} accepted")
                self.assertIn(name, p.stderr, f"{args}: stderr does not name the flag: {p.stderr}")
        p = self.run_server("--metrics-port", "0", env={"LONGNET_PORT": "notanumber"}, timeout=15)
        self.assertNotEqual(p.returncode, 0, "LONGNET_PORT=notanumber accepted")
        self.assertIn("LONGNET_PORT", p.stderr)

    def test_missing_model(self):
        p = self.run_server("--model", "/nonexistent/longnet-model", "--port", str(H.free_port()),
                            "--metrics-port", "0", timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("/nonexistent/longnet-model", p.stderr)


# --------------------------------------------------------------------------------------------------------
# k. logs
# --------------------------------------------------------------------------------------------------------
class Logs(ServerTest):
    SERVER_ARGS = None  # every test starts its own server

    def exercise(self, s):
        stubs = Stubs(s.channel())
        stubs.gen.Generate(gen_request(max_new_tokens=4, request_id="it-log-generate-1"), timeout=scaled(30))
        auto = stubs.gen.Generate(gen_request(max_new_tokens=2), timeout=scaled(30)).request_id
        list(stubs.gen.GenerateStream(gen_request(max_new_tokens=3, request_id="it-log-stream-2"),
                                      timeout=scaled(30)))
        E = pb["encode"]
        stubs.enc.Encode(E.EncodeRequest(document=E.Document(text="abc"), request_id="it-log-encode-3"),
                         timeout=scaled(30))
        try:
            stubs.gen.Generate(gen_request(max_new_tokens=0, request_id="it-log-bad-4"), timeout=scaled(30))
        except grpc.RpcError:
            pass
        s.signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(30), 0)
        return auto

    def test_json_logs(self):
        s = self.start_server(["--log-format", "json"]).start()
        auto = self.exercise(s)
        lines = H.json_lines(s.log())
        self.assertGreater(len(lines), 0)
        for i, obj in enumerate(lines):
            self.assertIn("request_id", obj, f"line {i + 1} has no request_id: {obj}")
        ids = {obj.get("request_id") for obj in lines}
        for rid in ("it-log-generate-1", "it-log-stream-2", "it-log-encode-3", auto):
            self.assertIn(rid, ids, f"no log line carries request id {rid!r}")

    def test_text_logs_carry_request_ids(self):
        s = self.start_server(["--log-format", "text"]).start()
        auto = self.exercise(s)
        log = s.log()
        for rid in ("it-log-generate-1", "it-log-stream-2", "it-log-encode-3", auto):
            self.assertIn(rid, log, f"request id {rid!r} not in the text log")


# --------------------------------------------------------------------------------------------------------
if __name__ == "__main__":
    H.run_tests(globals(), ("ServerTest", "SecurityTest"), lambda argv: H.configure(argv)[1])
