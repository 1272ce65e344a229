#!/usr/bin/env python3
"""The committed demo model (models/demo): longnet-run score agrees with PyTorch's bits per byte.

Scores tests/data/demo/heldout_head.txt (the first 4,096 held-out bytes) with the C++ engine and with the
float64 reference of the contract (tools/reference/score_reference.py), and requires |difference| <= 0.01
(the issue's bar; the two agree to about 1e-6). Also checks the card and the shape the issue asks for.

    demo_model_test.py --longnet-run PATH [--python PATH]
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longnet-run", required=True)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    model = os.path.join(ROOT, "models", "demo")
    text = os.path.join(ROOT, "tests", "data", "demo", "heldout_head.txt")
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    problems = []
    if len(cfg["segment_length"]) < 3 or not cfg["xpos_rel_pos"] or cfg["tokenizer"]["type"] != "byte":
        problems.append("the demo model must be a byte-level decoder with >= 3 branches and XPOS")
    if os.path.getsize(os.path.join(model, "model.safetensors")) > 20 * 1024 * 1024:
        problems.append("model.safetensors exceeds 20 MB")
    if not os.path.exists(os.path.join(model, "README.md")):
        problems.append("models/demo/README.md (the model card) is missing")
    engine = json.loads(subprocess.run([args.longnet_run, "score", "--model", model, "--input", text],
                                       capture_output=True, text=True, check=True).stdout)["bits_per_byte"]
    reference = float(subprocess.run([args.python, os.path.join(ROOT, "tools", "reference", "score_reference.py"),
                                      "--model", model, "--input", text],
                                     capture_output=True, text=True, check=True).stdout.split()[-1])
    diff = abs(engine - reference)
    print(f"[ demo ] heldout_head.txt: longnet-run {engine:.6f} bits/byte, PyTorch float64 {reference:.6f}, "
          f"|diff| {diff:.2e} (bar 0.01)")
    if diff > 0.01:
        problems.append(f"bits per byte differ by {diff}")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
