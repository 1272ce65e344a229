"""Float64 reference of LongNet dilated attention, as LONGNET.md (../shared/design/) defines it.

Two independent formulations live here so that each checks the other:

* `dilated_attention_branchwise`: the definition as written. For every branch, segment and head offset it
  gathers the visible rows, runs dense (optionally causal) softmax attention on them, keeps the per-branch
  output and log-sum-exp, and finally merges the branches by their LSE weights.
* `dilated_attention_union`: no gathering and no merge. For every head it builds the N x N matrix of key
  multiplicities (how many branches put key u in the key set of query t) straight from the visibility
  predicate, and does one softmax over all keys with log(multiplicity) added to the scores. LONGNET.md states
  that this equals the LSE merge; computing it this way tests that claim and both implementations at once.

Tensors are packed (T, H, D): the sequences of a ragged batch are stored one after another, and each is
evaluated on its own with positions counted from 0. Outputs are (T, H, D) and (T, H); a head that sees a
token in no branch gets output 0 and lse -inf.

Only torch and numpy are used. Nothing here follows torchscale's code: it is written from the definition.
"""

import math

import numpy as np
import torch

# ----------------------------------------------------------------------------------------------------------
# Deterministic inputs, reproduced bit for bit by tests/support/hash_inputs.h.

_MASK64 = (1 << 64) - 1


def splitmix64(x):
    """splitmix64 finaliser on a numpy uint64 array (arithmetic wraps mod 2^64)."""
    x = np.asarray(x, dtype=np.uint64)
    # numpy wraps uint64 array arithmetic silently; every operand is an explicit uint64 so nothing is
    # promoted to float64 by mixing with Python ints.
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def splitmix64_int(x):
    """The same function on one Python int, written with explicit masking: a second, independent spelling
    used to check the numpy version (numpy's silent wrapping is exactly what we rely on)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def hash_values(stream, count):
    """value(stream, i) for i in [0, count): float32 in [-1, 1), exactly representable (24 bits)."""
    keys = np.uint64(stream) * np.uint64(1 << 32) + np.arange(count, dtype=np.uint64)
    top24 = splitmix64(keys) >> np.uint64(40)
    # top24 < 2^24, so top24 / 2^23 - 1 is exact in float64 and in float32.
    vals = top24.astype(np.float64) / float(1 << 23) - 1.0
    out = vals.astype(np.float32)
    assert np.array_equal(out.astype(np.float64), vals)
    return out


def hash_value_int(stream, i):
    return float(splitmix64_int(stream * (1 << 32) + i) >> 40) / float(1 << 23) - 1.0


def case_inputs(seed, total_tokens, num_heads, head_dim, q_scale):
    """q, k, v as float32 numpy arrays of shape (T, H, D) for a case's seed."""
    shape = (total_tokens, num_heads, head_dim)
    count = total_tokens * num_heads * head_dim
    q = hash_values(3 * seed, count).reshape(shape)
    k = hash_values(3 * seed + 1, count).reshape(shape)
    v = hash_values(3 * seed + 2, count).reshape(shape)
    # q_scale is a power of two, so this product is exact in float32 (the C++ test does the same).
    assert q_scale > 0 and math.frexp(q_scale)[0] == 0.5, "q_scale must be a power of two"
    q = (q * np.float32(q_scale)).astype(np.float32)
    return q, k, v


# ----------------------------------------------------------------------------------------------------------
# Shared index math (each formulation uses it differently).


def head_offset(h, num_heads, r):
    """o(i, h) = floor(h / ceil(H / r)): torchscale's block mapping of heads to residues."""
    return h // -(-num_heads // r)


def seq_starts(seq_lens):
    starts, pos = [], 0
    for n in seq_lens:
        starts.append(pos)
        pos += n
    return starts


def _check_args(q, k, v, seq_lens, branches):
    assert q.dim() == 3 and q.shape == k.shape == v.shape, "q, k, v must share the shape (T, H, D)"
    assert q.shape[0] == sum(seq_lens), "T must equal the sum of the sequence lengths"
    assert all(n >= 1 for n in seq_lens), "empty sequences are not supported"
    assert len(branches) >= 1
    for w, r in branches:
        assert w >= 1 and r >= 1, f"bad branch ({w}, {r})"


# ----------------------------------------------------------------------------------------------------------
# Formulation 1: per branch, per segment, per head offset; gather, dense attention, LSE merge.


def _attend_gathered(qg, kg, vg, causal, scale):
    """Dense attention for one group of gathered rows.

    qg, kg, vg: (n, G, D) float64, the n visible tokens of one segment in position order for G heads that
    share the same offset. Returns out (n, G, D) and lse (n, G). Every query has at least itself as a key
    (causal includes the diagonal), so no row is empty here.
    """
    scores = torch.einsum("tgd,ugd->gtu", qg, kg) * scale
    if causal:
        n = qg.shape[0]
        # Rows are in increasing position, so "u <= t" is "column index <= row index".
        future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, -math.inf)
    lse = torch.logsumexp(scores, dim=-1)  # (G, n)
    probs = torch.exp(scores - lse.unsqueeze(-1))
    out = torch.einsum("gtu,ugd->tgd", probs, vg)
    return out, lse.transpose(0, 1)


def _branch_outputs(q, k, v, w, r, causal, scale):
    """One branch on one sequence: out (N, H, D) and lse (N, H), lse = -inf where a token is invisible."""
    n_tok, num_heads, head_dim = q.shape
    out = torch.zeros(n_tok, num_heads, head_dim, dtype=torch.float64)
    lse = torch.full((n_tok, num_heads), -math.inf, dtype=torch.float64)
    seg = min(w, n_tok)  # a sequence shorter than w is one segment of length N
    offsets = [head_offset(h, num_heads, r) for h in range(num_heads)]
    for start in range(0, n_tok, seg):
        end = min(start + seg, n_tok)  # the last segment may be short: padding never exists here
        for o in sorted(set(offsets)):
            heads = torch.tensor([h for h in range(num_heads) if offsets[h] == o])
            # Offsets are relative to the segment start, which matters when w mod r != 0.
            if start + o >= end:
                continue  # this head sees no token of a segment shorter than its offset
            rows = torch.arange(start + o, end, r)
            qg = q[rows][:, heads]
            kg = k[rows][:, heads]
            vg = v[rows][:, heads]
            o_out, o_lse = _attend_gathered(qg, kg, vg, causal, scale)
            out[rows.unsqueeze(1), heads.unsqueeze(0)] = o_out
            lse[rows.unsqueeze(1), heads.unsqueeze(0)] = o_lse
    return out, lse


def _merge_branches(outs, lses):
    """LSE-weighted merge. Branches with lse = -inf (token invisible) get weight 0; if every branch is -inf
    the merged lse is -inf and the output 0 (never NaN)."""
    lse_all = torch.stack(lses)  # (k, N, H)
    out_all = torch.stack(outs)  # (k, N, H, D)
    merged = torch.logsumexp(lse_all, dim=0)  # -inf where all are -inf
    covered = torch.isfinite(merged)
    safe = torch.where(covered, merged, torch.zeros_like(merged))
    weights = torch.exp(lse_all - safe.unsqueeze(0))  # exp(-inf) = 0 for invisible branches
    weights = torch.where(covered.unsqueeze(0), weights, torch.zeros_like(weights))
    out = (weights.unsqueeze(-1) * out_all).sum(dim=0)
    return out, merged


def dilated_attention_branchwise(q, k, v, seq_lens, branches, causal, scale=None):
    """Formulation 1. q, k, v: float64 tensors (T, H, D), packed. Returns out (T, H, D), lse (T, H)."""
    _check_args(q, k, v, seq_lens, branches)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[2])
    out = torch.zeros_like(q)
    lse = torch.full(q.shape[:2], -math.inf, dtype=q.dtype)
    for start, n in zip(seq_starts(seq_lens), seq_lens):
        sl = slice(start, start + n)
        outs, lses = [], []
        for w, r in branches:
            b_out, b_lse = _branch_outputs(q[sl], k[sl], v[sl], w, r, causal, scale)
            outs.append(b_out)
            lses.append(b_lse)
        out[sl], lse[sl] = _merge_branches(outs, lses)
    return out, lse


# ----------------------------------------------------------------------------------------------------------
# Formulation 2: one softmax over the union of the branches' key sets, each key weighted by the number of
# branches that contain it.


def _multiplicity(n_tok, num_heads, h, branches, causal):
    """(N, N) float64: m[t, u] = #branches i with u in K_{i,h}(t) (0 if t is not visible in branch i)."""
    pos = torch.arange(n_tok)
    m = torch.zeros(n_tok, n_tok, dtype=torch.float64)
    for w, r in branches:
        seg_len = min(w, n_tok)
        segment = pos // seg_len
        visible = (pos % seg_len) % r == head_offset(h, num_heads, r)
        same_segment = segment.unsqueeze(1) == segment.unsqueeze(0)
        member = visible.unsqueeze(1) & visible.unsqueeze(0) & same_segment
        m += member.to(torch.float64)
    if causal:
        m = torch.tril(m)  # keys u <= t, diagonal included
    return m


def dilated_attention_union(q, k, v, seq_lens, branches, causal, scale=None):
    """Formulation 2 (self-check). Same interface and results as dilated_attention_branchwise."""
    _check_args(q, k, v, seq_lens, branches)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[2])
    n_total, num_heads, _ = q.shape
    out = torch.zeros_like(q)
    lse = torch.full((n_total, num_heads), -math.inf, dtype=q.dtype)
    for start, n in zip(seq_starts(seq_lens), seq_lens):
        for h in range(num_heads):
            qh = q[start : start + n, h]
            kh = k[start : start + n, h]
            vh = v[start : start + n, h]
            m = _multiplicity(n, num_heads, h, branches, causal)
            # log(0) = -inf removes keys outside every branch; log(2) counts a key shared by two branches
            # twice, which is what the LSE merge does.
            scores = (qh @ kh.T) * scale + torch.log(m)
            row_lse = torch.logsumexp(scores, dim=1)
            covered = torch.isfinite(row_lse)
            safe = torch.where(covered, row_lse, torch.zeros_like(row_lse))
            probs = torch.exp(scores - safe.unsqueeze(1))  # rows with no key: all exp(-inf) = 0
            out[start : start + n, h] = probs @ vh
            lse[start : start + n, h] = row_lse
    return out, lse


# ----------------------------------------------------------------------------------------------------------


def max_abs_diff(a, b):
    """Max |a - b| over entries where both are finite; also checks that -inf positions coincide."""
    inf_a, inf_b = torch.isneginf(a), torch.isneginf(b)
    assert torch.equal(inf_a, inf_b), "-inf positions differ"
    assert not torch.isnan(a).any() and not torch.isnan(b).any(), "NaN in output"
    fin = ~inf_a
    if not fin.any():
        return 0.0
    return (a[fin] - b[fin]).abs().max().item()


def _self_test():
    """Quick sanity checks of the two formulations against hand-computable cases."""
    torch.manual_seed(0)
    # r = 1 with one segment covering the sequence is plain dense attention.
    n, h, d = 9, 3, 4
    q, k, v = (torch.randn(n, h, d, dtype=torch.float64) for _ in range(3))
    for causal in (False, True):
        s = torch.einsum("thd,uhd->htu", q, k) / math.sqrt(d)
        if causal:
            s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -math.inf)
        dense = torch.einsum("htu,uhd->thd", torch.softmax(s, -1), v)
        for fn in (dilated_attention_branchwise, dilated_attention_union):
            o, _ = fn(q, k, v, [n], [(16, 1)], causal)
            assert (o - dense).abs().max() < 1e-12
    # Two identical branches merge to the same output with lse + log 2.
    o1, l1 = dilated_attention_branchwise(q, k, v, [n], [(4, 2)], True)
    o2, l2 = dilated_attention_branchwise(q, k, v, [n], [(4, 2), (4, 2)], True)
    assert (o1 - o2).abs().max() < 1e-12
    fin = torch.isfinite(l1)
    assert (l2[fin] - l1[fin] - math.log(2)).abs().max() < 1e-12
    # The hash: numpy and pure-int spellings agree.
    for stream in (0, 1, 5, 3 * 1000 + 2):
        vals = hash_values(stream, 64)
        for i in range(64):
            assert float(vals[i]) == hash_value_int(stream, i)


if __name__ == "__main__":
    _self_test()
    print("dilated_attention.py self-test passed")
