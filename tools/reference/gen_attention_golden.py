#!/usr/bin/env python3
"""Writes the golden data of LongNet dilated attention used by tests/kernels/dilated_attention_golden_test.cc.

    python3 tools/reference/gen_attention_golden.py            # (re)writes tests/data/attention/
    python3 tools/reference/gen_attention_golden.py --verify   # recomputes and compares with the files

Needs torch and numpy (Debian's /usr/bin/python3 has both). Inputs are not stored: q, k and v come from the
splitmix64 hash of dilated_attention.py, which tests/support/hash_inputs.h reproduces bit for bit. For each
case this writes <name>.out.npy (float32, (T, H, D)) and <name>.lse.npy (float32, (T, H), -inf where no
branch covers the token for that head), and lists every case in cases.json. Each case is computed by two
independent float64 formulations, which must agree to 1e-10 before anything is written. The output is a
pure function of this file: rerunning it rewrites identical bytes.
"""

import argparse
import io
import json
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # a pyenv or venv python3 may shadow Debian's, which has both
    raise SystemExit(f"{e}: run this with Debian's /usr/bin/python3 (torch and numpy installed)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dilated_attention as da  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "data", "attention")
AGREEMENT_TOL = 1e-10

PAPER_SMALL = [[32, 1], [64, 2], [128, 4], [256, 6], [512, 12]]


def case(name, heads, dim, seq_lens, branches, causal, seed, q_scale=1.0):
    return {
        "name": name,
        "num_heads": heads,
        "head_dim": dim,
        "seq_lens": list(seq_lens),
        "branches": [list(b) for b in branches],
        "causal": causal,
        "seed": seed,
        "q_scale": float(q_scale),
    }


# Each case names the edge it covers. Seeds are distinct so no two cases share inputs.
CASES = [
    # One branch with r = 1: dense attention inside each 16-token segment.
    case("single_r1_causal", 2, 8, [64], [[16, 1]], True, 1),
    case("single_r1_noncausal", 2, 8, [64], [[16, 1]], False, 2, q_scale=2),
    # 77 = 4*16 + 13 = 2*32 + 13: every branch ends with a short segment (no padding may enter a softmax).
    case("short_last_segment_causal", 4, 8, [77], [[16, 1], [32, 2]], True, 3),
    case("short_last_segment_noncausal", 4, 8, [77], [[16, 1], [32, 2]], False, 4, q_scale=2),
    # N < w for the two larger branches: they use one segment of length N.
    case("n_lt_w_causal", 4, 8, [23], [[8, 1], [64, 2], [128, 4]], True, 5),
    case("n_lt_w_noncausal", 4, 8, [23], [[8, 1], [64, 2], [128, 4]], False, 6, q_scale=4),
    # A single token.
    case("n_eq_1_causal", 4, 8, [1], [[4, 1], [8, 2]], True, 7),
    case("n_eq_1_noncausal", 4, 8, [1], [[4, 1], [8, 2]], False, 8),
    # w mod r != 0 over several segments: offsets restart at each segment start (torchscale shifts them).
    case("w_mod_r_causal", 6, 8, [70], [[8, 1], [10, 3], [16, 6]], True, 9, q_scale=2),
    case("w_mod_r_noncausal", 6, 8, [70], [[8, 1], [10, 3], [16, 6]], False, 10, q_scale=2),
    # w mod r != 0 alone (no r = 1 branch): tokens seen by no branch for some heads.
    case("w_mod_r_only_causal", 6, 16, [53], [[10, 3], [16, 6]], True, 11),
    # r > H: with H = 4 and r = 6, residues 4 and 5 of each segment are seen by nobody in that branch.
    case("r_gt_heads_causal", 4, 8, [60], [[12, 1], [24, 6]], True, 12),
    case("r_gt_heads_noncausal_no_r1", 4, 8, [60], [[12, 3], [24, 6]], False, 13, q_scale=2),
    # H not divisible by r: H = 6, r = 4 gives offsets 0,0,1,1,2,2 (residue 3 unseen).
    case("heads_not_div_r_causal", 6, 8, [50], [[8, 1], [16, 4]], True, 14),
    case("heads_not_div_r_noncausal", 6, 8, [50], [[8, 1], [16, 4]], False, 15),
    # No r = 1 branch: some (token, head) pairs are covered by no branch (out 0, lse -inf).
    case("no_r1_causal", 4, 8, [40], [[8, 2], [16, 4]], True, 16),
    case("no_r1_noncausal", 4, 8, [40], [[8, 2], [16, 4]], False, 17, q_scale=4),
    # Ragged batch: each sequence on its own, lengths below, at and above the segment lengths, and 1.
    case("ragged_causal", 4, 8, [1, 17, 33, 5, 64, 32], [[8, 1], [16, 2], [32, 4]], True, 18),
    case("ragged_noncausal", 4, 8, [1, 17, 33, 5, 64, 32], [[8, 1], [16, 2], [32, 4]], False, 19, q_scale=2),
    # Multi-branch merges.
    case("multi3_causal", 6, 16, [150], [[16, 1], [32, 2], [64, 3]], True, 20, q_scale=2),
    case("multi4_noncausal", 8, 8, [130], [[8, 1], [24, 2], [48, 4], [96, 8]], False, 21),
    case("multi5_causal_peaky", 8, 16, [200], [[8, 1], [16, 2], [32, 4], [64, 8], [128, 16]], True, 22, 4),
    # The paper's LM schedule scaled down by 64 (r = 1, 2, 4, 6, 12 on 12 heads), N not a multiple of 512.
    case("paper_small_causal", 12, 16, [1100], PAPER_SMALL, True, 23),
    case("paper_small_noncausal", 12, 16, [1100], PAPER_SMALL, False, 24, q_scale=2),
]

# The first values of the hash, printed for tests/support/hash_inputs.h's cross-language check.
HASH_PROBES = [(0, 0), (0, 1), (0, 2), (1, 0), (5, 7), (69, 123456), (3 * 24 + 2, 211199)]


def compute_case(c):
    """Returns (out, lse) as float64 tensors and the max difference between the two formulations."""
    total = sum(c["seq_lens"])
    q, k, v = da.case_inputs(c["seed"], total, c["num_heads"], c["head_dim"], c["q_scale"])
    q, k, v = (torch.from_numpy(x).to(torch.float64) for x in (q, k, v))
    branches = [tuple(b) for b in c["branches"]]
    out1, lse1 = da.dilated_attention_branchwise(q, k, v, c["seq_lens"], branches, c["causal"])
    out2, lse2 = da.dilated_attention_union(q, k, v, c["seq_lens"], branches, c["causal"])
    d_out = da.max_abs_diff(out1, out2)
    d_lse = da.max_abs_diff(lse1, lse2)
    if not (d_out <= AGREEMENT_TOL and d_lse <= AGREEMENT_TOL):
        raise SystemExit(f"{c['name']}: formulations disagree: out {d_out:.3e}, lse {d_lse:.3e}")
    # Uncovered entries: lse -inf and an output of exactly 0.
    uncovered = torch.isneginf(lse1)
    assert torch.all(out1[uncovered] == 0)
    return out1, lse1, max(d_out, d_lse)


def npy_bytes(array):
    """The exact bytes np.save writes (version 1.0 header for these small arrays)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: tests/data/attention)")
    parser.add_argument("--verify", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args()

    torch.set_num_threads(1)  # results must not depend on the machine's thread count
    da._self_test()

    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    assert all(n.replace("_", "").isalnum() for n in names), "names become GoogleTest names: [A-Za-z0-9_]"

    files = {"cases.json": (json.dumps({"cases": CASES}, indent=2) + "\n").encode()}
    print(f"{'case':32s} {'T':>5s} {'H':>3s} {'D':>3s} {'causal':>6s} {'uncov':>6s} {'2-form diff':>11s}  branches")
    worst = 0.0
    for c in CASES:
        out, lse, diff = compute_case(c)
        worst = max(worst, diff)
        files[c["name"] + ".out.npy"] = npy_bytes(out.numpy().astype(np.float32))
        files[c["name"] + ".lse.npy"] = npy_bytes(lse.numpy().astype(np.float32))
        uncovered = int(torch.isneginf(lse).sum())
        print(
            f"{c['name']:32s} {out.shape[0]:5d} {c['num_heads']:3d} {c['head_dim']:3d} {str(c['causal']):>6s} "
            f"{uncovered:6d} {diff:11.2e}  {c['branches']}"
        )

    total_bytes = sum(len(b) for b in files.values())
    print(f"{len(CASES)} cases, {len(files)} files, {total_bytes / 1e6:.2f} MB; "
          f"max difference between the two float64 formulations: {worst:.2e} (limit {AGREEMENT_TOL:g})")
    print("hash probes value(stream, i), for tests/support/hash_inputs.h:")
    for stream, i in HASH_PROBES:
        print(f"  value({stream}, {i}) = {da.hash_value_int(stream, i)!r}  "
              f"(splitmix64 = 0x{da.splitmix64_int(stream * (1 << 32) + i):016X})")

    if args.verify:
        bad = []
        for name, data in files.items():
            path = os.path.join(args.out, name)
            if not os.path.exists(path) or open(path, "rb").read() != data:
                bad.append(name)
        if bad:
            raise SystemExit(f"verify: {len(bad)} files differ from a fresh run: {', '.join(bad)}")
        print(f"verify: all {len(files)} files in {args.out} match a fresh run")
        return

    os.makedirs(args.out, exist_ok=True)
    # Remove golden files of cases that no longer exist, so the folder always mirrors CASES.
    for name in os.listdir(args.out):
        if name.endswith(".npy") and name not in files:
            os.remove(os.path.join(args.out, name))
    for name, data in files.items():
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
