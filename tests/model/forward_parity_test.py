#!/usr/bin/env python3
"""`longnet-run forward` (and `--decode`) against the float64 PyTorch reference of the contract.

Each case builds a random model directory with tools/reference/make_test_model.py, runs the C++ engine
through its command-line interface exactly as an external check would, runs tools/reference/run_reference.py
in float64 on the same tokens, and requires max |engine - reference| <= 2e-4 (MODEL_FORMAT.md, "Accuracy").
The cases cover every point of that paragraph: lengths from 1 to 65,536, lengths that are not multiples of
any segment, w mod r != 0, r > heads, heads not divisible by r, no r = 1 branch; and every model type,
storage dtype, activation, sub-LN, XPOS, tied/untied head and embedding scale.

    forward_parity_test.py --longnet-run PATH --case NAME     (one case; CTest runs each on its own)
    forward_parity_test.py --list
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import make_test_model  # noqa: E402

TOLERANCE = 2e-4


def case(spec, lengths, decode=False, src_lengths=None, seed=0):
    return {"spec": spec, "lengths": lengths, "decode": decode, "src_lengths": src_lengths, "seed": seed}


CASES = {
    # Ragged batch; lengths 1, not multiples of 16 or 32, across several segments of both branches.
    "decoder_basic": case({"branches": [(16, 1), (32, 2)]}, [1, 7, 100, 33]),
    "decoder_basic_decode": case({"branches": [(16, 1), (32, 2)]}, [1, 7, 100, 33], decode=True),
    # w mod r != 0, r > heads (5 > 4), heads not divisible by r (4 % 3), no r = 1 branch: some heads see
    # some tokens in no branch and must output 0 there.
    "decoder_odd_schedule": case({"branches": [(10, 3), (24, 5)], "heads": 4}, [1, 9, 130, 61]),
    "decoder_odd_schedule_decode": case({"branches": [(10, 3), (24, 5)], "heads": 4}, [130, 61], decode=True),
    # Three branches; decode crosses several segment boundaries of every branch.
    "decoder_three_branches_decode": case({"branches": [(16, 1), (64, 4), (256, 8)], "heads": 8, "embed_dim": 64},
                                          [1100], decode=True),
    "decoder_relu_plain_fp16": case({"branches": [(8, 1), (24, 3)], "activation": "relu", "subln": False,
                                     "xpos": False, "tied": False, "scale_embedding": False,
                                     "dtype": "float16"}, [50, 3]),
    "decoder_bf16_untied": case({"branches": [(16, 2), (40, 6)], "tied": False, "dtype": "bfloat16",
                                 "heads": 6, "embed_dim": 48}, [97, 40]),
    # Long: the whole-sequence branch covers 65,536 tokens (paper-style schedule, r = 16 > heads).
    "decoder_65536": case({"branches": [(2048, 1), (8192, 4), (65536, 16)], "layers": 1}, [65536]),
    # Encoders: blocks of the largest segment (16 | 64), and a schedule with no common block (12 !| 20).
    "encoder_blocks": case({"model_type": "longnet_encoder", "branches": [(16, 1), (64, 4)]}, [1, 200, 64]),
    "encoder_whole": case({"model_type": "longnet_encoder", "branches": [(12, 1), (20, 3)], "heads": 4},
                          [5, 77]),
    # Non-causal XPOS scores grow as scale^(-(u - t)/base) for keys after the query, beyond float32 at long
    # range: the engine takes encoder blocks up to 16,939 positions with XPOS, and any length without it.
    "encoder_xpos_16384": case({"model_type": "longnet_encoder", "branches": [(1024, 1), (16384, 8)],
                                "layers": 1}, [16384]),
    "encoder_65536": case({"model_type": "longnet_encoder", "branches": [(4096, 1), (65536, 16)], "layers": 1,
                           "xpos": False}, [65536]),
    "encoder_decoder": case({"model_type": "longnet_encoder_decoder", "branches": [(16, 1), (32, 4)]}, [1, 45],
                            src_lengths=[30, 70]),
    "encoder_decoder_decode": case({"model_type": "longnet_encoder_decoder", "branches": [(16, 1), (32, 4)]},
                                   [45], decode=True, src_lengths=[70]),
}


def run_case(name, longnet_run, python):
    c = CASES[name]
    rng = np.random.default_rng(c["seed"])
    spec = dict(c["spec"])
    vocab = spec.get("vocab_size", 259)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        make_test_model.make_test_model(model_dir, seed=c["seed"] + 1, **spec)
        with open(os.path.join(model_dir, "config.json")) as f:
            stored = json.load(f)["torch_dtype"]
        if stored != spec.get("dtype", "float32"):  # the case must test the storage type it names
            print(f"[ parity ] {name}: model stored as {stored}, not {spec.get('dtype', 'float32')}")
            return False
        tokens = {}
        ids = [rng.integers(0, vocab, size=n).tolist() for n in c["lengths"]]
        if c["src_lengths"] is not None:
            tokens["tgt_ids"] = ids
            tokens["src_ids"] = [rng.integers(0, vocab, size=n).tolist() for n in c["src_lengths"]]
        else:
            tokens["input_ids"] = ids
        tokens_path = os.path.join(tmp, "tokens.json")
        with open(tokens_path, "w") as f:
            json.dump(tokens, f)
        engine_out = os.path.join(tmp, "engine.npy")
        ref_out = os.path.join(tmp, "reference.npy")
        cmd = [longnet_run, "forward", "--model", model_dir, "--tokens", tokens_path, "--out", engine_out]
        if c["decode"]:
            cmd.append("--decode")
        t0 = time.time()
        subprocess.run(cmd, check=True)
        t1 = time.time()
        subprocess.run([python, os.path.join(ROOT, "tools", "reference", "run_reference.py"), "--model", model_dir,
                        "--tokens", tokens_path, "--out", ref_out, "--dtype", "float64"], check=True)
        t2 = time.time()
        engine = np.load(engine_out)
        ref = np.load(ref_out)
        if engine.shape != ref.shape:
            print(f"[ parity ] {name}: shape {engine.shape} != reference {ref.shape}")
            return False
        if engine.dtype != np.float32:
            print(f"[ parity ] {name}: engine output is {engine.dtype}, not float32")
            return False
        finite = bool(np.isfinite(engine).all())
        err = float(np.max(np.abs(engine.astype(np.float64) - ref))) if engine.size else 0.0
        ok = finite and err <= TOLERANCE
        print(f"[ parity ] {name}: shape {engine.shape} max|err| {err:.3g} (bar {TOLERANCE}) finite={finite} "
              f"engine {t1 - t0:.1f}s reference {t2 - t1:.1f}s -> {'ok' if ok else 'FAIL'}")
        return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longnet-run")
    ap.add_argument("--case")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    names = [args.case] if args.case else list(CASES)
    failed = [n for n in names if not run_case(n, args.longnet_run, args.python)]
    if failed:
        print("FAILED:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
