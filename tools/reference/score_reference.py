#!/usr/bin/env python3
"""Bits per byte of a text file under a LongNet decoder with the byte tokenizer (float64 reference).

    /usr/bin/python3 tools/reference/score_reference.py --model models/demo --input FILE [--dtype float64]

Definition (the C++ `longnet-run score` computes the same; both must agree within 0.01):
    ids = [bos_id] + [b + byte_offset for b in the file's bytes], evaluated as ONE sequence;
    bpb = sum_{t=1..n} -log2 softmax(logits[t-1])[ids[t]] / n,  n = number of bytes.
Prints the value with 6 decimals.
"""

import argparse
import math
import os
import sys
import time

try:
    import torch
except ImportError as e:  # a pyenv or venv python3 may shadow Debian's, which has torch
    raise SystemExit(f"{e}: run this with Debian's /usr/bin/python3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longnet_torch as lt  # noqa: E402

# Rows of logits turned into log-probabilities at a time (keeps (rows x vocab) float64 small).
LOGIT_CHUNK = 8192


def byte_ids(cfg, data):
    """[bos] + bytes shifted by the tokenizer's byte_offset; refuses non-byte tokenizers and decoders."""
    if cfg.model_type != "longnet_decoder":
        raise SystemExit(f"score: model_type is {cfg.model_type!r}, bits per byte needs a longnet_decoder")
    tok = cfg.tokenizer
    if tok.get("type") != "byte":
        raise SystemExit(f"score: tokenizer type is {tok.get('type')!r}, bits per byte needs the byte tokenizer")
    offset = int(tok.get("byte_offset", 0))
    return [cfg.bos_id] + [b + offset for b in data]


@torch.no_grad()
def bits_per_byte(model, data):
    """Bits per byte of `data` (bytes, non-empty) under `model` (a LongNetModel decoder), one sequence."""
    if not data:
        raise ValueError("score: the input is empty")
    ids = torch.tensor([byte_ids(model.cfg, data)], dtype=torch.long)
    hidden = model.stack.hidden(ids)[0]  # (n + 1, E)
    n = len(data)
    total_nats = 0.0
    for t0 in range(0, n, LOGIT_CHUNK):
        t1 = min(n, t0 + LOGIT_CHUNK)
        logp = torch.log_softmax(model.stack.logits(hidden[t0:t1]).to(torch.float64), dim=-1)
        target = ids[0, t0 + 1:t1 + 1]
        total_nats -= logp.gather(1, target[:, None]).sum().item()
    return total_nats / math.log(2) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model directory")
    ap.add_argument("--input", required=True, help="text file, scored as bytes")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--verbose", action="store_true", help="also print bytes and seconds to stderr")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = lt.load_model(args.model, getattr(torch, args.dtype))
    with open(args.input, "rb") as f:
        data = f.read()
    start = time.time()
    bpb = bits_per_byte(model, data)
    if args.verbose:
        print(f"{len(data)} bytes in {time.time() - start:.1f} s", file=sys.stderr)
    print(f"{bpb:.6f}")


if __name__ == "__main__":
    main()
