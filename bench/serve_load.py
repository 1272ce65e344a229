#!/usr/bin/env python3
"""Load generator for a running longnet-server (bench/serve.sh starts the server and runs this).

    serve_load.py --address HOST:PORT --stubs DIR [--pid PID] [--max-new-tokens 128] [--streams 32]

Measures, in one run: tokens/s of one GenerateStream; aggregate tokens/s of N concurrent GenerateStreams
(same max_new_tokens, short prompts, temperature 1 with different seeds, ignore_eos so every stream has the
same length); time to first token (median / p90); EncodeStream throughput for 8K, 64K and 1,000,000-token
documents; and the server's peak RSS (VmHWM of /proc/PID/status) after the 1M-token encode. Prints a table.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import grpc


def load_stubs(stub_dir):
    sys.path.append(stub_dir)
    grpc.__path__.append(os.path.join(stub_dir, "grpc"))  # grpc/health/... next to grpcio, not over it
    from longnet.v1 import encode_pb2, encode_pb2_grpc, generate_pb2, generate_pb2_grpc, info_pb2, info_pb2_grpc
    from grpc.health.v1 import health_pb2, health_pb2_grpc
    return dict(encode=encode_pb2, encode_grpc=encode_pb2_grpc, generate=generate_pb2,
                generate_grpc=generate_pb2_grpc, info=info_pb2, info_grpc=info_pb2_grpc, health=health_pb2,
                health_grpc=health_pb2_grpc)


def text_of(n_bytes, seed=1):
    """Deterministic ASCII prose-like text of exactly n_bytes (byte-level model: one byte, one token)."""
    words = ("the and of to in that he said unto lord god his shall is was for with they them be it not all "
             "which thou thee him i my land people house day son children king israel upon came").split()
    state = seed
    parts, size = [], 0
    while size < n_bytes:
        state = (state * 1103515245 + 12345) % 2**31
        w = words[state % len(words)] + (".\n" if state % 13 == 0 else " ")
        parts.append(w)
        size += len(w)
    return "".join(parts)[:n_bytes]


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Bench:
    def __init__(self, args, pb):
        self.args = args
        self.pb = pb
        opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        self.channel = grpc.insecure_channel(args.address, options=opts)
        self.gen = pb["generate_grpc"].GenerationServiceStub(self.channel)
        self.enc = pb["encode_grpc"].EncodingServiceStub(self.channel)
        self.info = pb["info_grpc"].InfoServiceStub(self.channel)

    def wait_serving(self, timeout=300):
        stub = self.pb["health_grpc"].HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = stub.Check(self.pb["health"].HealthCheckRequest(), timeout=2, wait_for_ready=True)
                if r.status == self.pb["health"].HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        sys.exit("serve_load: the server is not SERVING")

    def stream(self, seed, prompt):
        """One GenerateStream: (tokens, seconds from send to first token, seconds from send to the end)."""
        g = self.pb["generate"]
        req = g.GenerateRequest(text=prompt, parameters=g.GenerationParameters(
            max_new_tokens=self.args.max_new_tokens, temperature=1.0, seed=seed, ignore_eos=True))
        t0 = time.perf_counter()
        first = None
        tokens = 0
        for msg in self.gen.GenerateStream(req, timeout=600):
            if msg.tokens and first is None:
                first = time.perf_counter() - t0
            tokens += len(msg.tokens)
        return tokens, first, time.perf_counter() - t0

    def single(self, reps=3):
        runs = [self.stream(1000 + i, f"Gen{i}:1 In the beginning") for i in range(reps)]
        for tokens, _, _ in runs:
            assert tokens == self.args.max_new_tokens, tokens
        best = min(runs, key=lambda r: r[2])
        return best[0] / best[2], [r[1] for r in runs]

    def concurrent(self, n):
        results = [None] * n
        barrier = threading.Barrier(n + 1)

        def worker(i):
            barrier.wait()
            results[i] = self.stream(2000 + i, f"Ps{i + 1}:1 Blessed is the man")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        total = sum(r[0] for r in results)
        assert total == n * self.args.max_new_tokens, total
        return total / wall, [r[1] for r in results], wall

    def encode(self, n_tokens, chunk_bytes=1 << 20):
        e = self.pb["encode"]
        text = text_of(n_tokens - 1, seed=n_tokens)  # + bos

        def requests():
            for i in range(0, len(text), chunk_bytes):
                piece = text[i:i + chunk_bytes]
                if i == 0:
                    yield e.EncodeStreamRequest(options=e.EncodeOptions(pooling=e.POOLING_MEAN), text=piece)
                else:
                    yield e.EncodeStreamRequest(text=piece)

        t0 = time.perf_counter()
        responses = list(self.enc.EncodeStream(requests(), timeout=3600))
        wall = time.perf_counter() - t0
        result = responses[-1].result
        assert result.tokens == n_tokens, (result.tokens, n_tokens)
        return n_tokens / wall, wall


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--encode-sizes", default="8192,65536,1000000")
    args = ap.parse_args()
    b = Bench(args, load_stubs(args.stubs))
    b.wait_serving()
    info = b.info.GetInfo(b.pb["info"].GetInfoRequest(), timeout=10)
    b.stream(1, "warm up")  # first-request costs out of the figures

    one_tps, one_ttft = b.single()
    many_tps, many_ttft, many_wall = b.concurrent(args.streams)
    encodes = [(n, *b.encode(n)) for n in (int(x) for x in args.encode_sizes.split(","))]
    hwm = vm_hwm_mib(args.pid) if args.pid else float("nan")

    rows = [
        ("model / device", f"{info.model.name} / {info.device}, {os.cpu_count()} cores"),
        ("1 stream: tokens/s (best of 3)", f"{one_tps:.1f}"),
        (f"{args.streams} streams: aggregate tokens/s", f"{many_tps:.1f} ({args.streams} x "
                                                        f"{args.max_new_tokens} tokens in {many_wall:.2f} s)"),
        (f"ratio {args.streams}-stream / 1-stream tokens/s", f"{many_tps / one_tps:.2f}"),
        ("TTFT 1 stream: median", f"{statistics.median(one_ttft) * 1000:.1f} ms"),
        (f"TTFT {args.streams} streams: median / p90", f"{statistics.median(many_ttft) * 1000:.1f} ms / "
                                                       f"{percentile(many_ttft, 90) * 1000:.1f} ms"),
    ]
    for n, tps, wall in encodes:
        rows.append((f"EncodeStream {n:,} tokens: tokens/s", f"{tps:,.0f} ({wall:.2f} s)"))
    rows.append(("server peak RSS (VmHWM) after the encodes", f"{hwm:,.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
