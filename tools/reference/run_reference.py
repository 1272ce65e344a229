#!/usr/bin/env python3
"""Runs the PyTorch reference of a LongNet model directory on token ids (same interface as the C++ tool).

    /usr/bin/python3 tools/reference/run_reference.py --model DIR --tokens FILE.json --out FILE.npy
        [--dtype float64|float32]

FILE.json: {"input_ids": [[...], ...]} (ragged) for decoders and encoders, or
{"src_ids": [[...], ...], "tgt_ids": [[...], ...]} for encoder-decoders.
Writes a .npy of shape (B, Lmax, F) in the compute dtype: logits (F = vocab) for decoders and
encoder-decoders (over the target), final-LN hidden states (F = embed dim) for encoders; rows past a
sequence's length are 0. Each sequence is evaluated on its own with positions from 0. Weights stored as
F16/BF16 are upcast exactly to the compute dtype.
"""

import argparse
import json
import os
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:  # a pyenv or venv python3 may shadow Debian's, which has torch and numpy
    raise SystemExit(f"{e}: run this with Debian's /usr/bin/python3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longnet_torch as lt  # noqa: E402


def read_tokens(path, cfg):
    """(target_or_input sequences, source sequences or None), validated against the model type."""
    with open(path) as f:
        doc = json.load(f)
    if cfg.model_type == "longnet_encoder_decoder":
        if "src_ids" not in doc or "tgt_ids" not in doc:
            raise SystemExit(f"{path}: an encoder-decoder needs 'src_ids' and 'tgt_ids'")
        seqs, src = doc["tgt_ids"], doc["src_ids"]
        if len(seqs) != len(src):
            raise SystemExit(f"{path}: {len(src)} src_ids but {len(seqs)} tgt_ids")
    else:
        if "input_ids" not in doc:
            raise SystemExit(f"{path}: missing 'input_ids'")
        seqs, src = doc["input_ids"], None
    for name, group in (("ids", seqs), ("src_ids", src or [])):
        for b, seq in enumerate(group):
            if not seq:
                raise SystemExit(f"{path}: sequence {b} of {name} is empty")
            bad = [t for t in seq if not isinstance(t, int) or not 0 <= t < cfg.vocab_size]
            if bad:
                raise SystemExit(f"{path}: sequence {b} of {name} has id {bad[0]!r} outside [0, {cfg.vocab_size})")
    return seqs, src


@torch.no_grad()
def run(model, seqs, src=None):
    """(B, Lmax, F) numpy array of the model's outputs, zero past each sequence's length."""
    outs = model.forward_ragged(seqs, src)
    lmax = max(o.shape[0] for o in outs)
    result = torch.zeros(len(outs), lmax, outs[0].shape[1], dtype=outs[0].dtype)
    for b, o in enumerate(outs):
        result[b, :o.shape[0]] = o
    return result.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model directory")
    ap.add_argument("--tokens", required=True, help="JSON file of token ids")
    ap.add_argument("--out", required=True, help=".npy output")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = lt.load_model(args.model, getattr(torch, args.dtype))
    seqs, src = read_tokens(args.tokens, model.cfg)
    start = time.time()
    out = run(model, seqs, src)
    np.save(args.out, out)
    print(f"{args.out}: {tuple(out.shape)} {out.dtype} in {time.time() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
