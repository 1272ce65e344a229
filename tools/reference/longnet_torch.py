"""PyTorch implementation of the LongNet model contract (../shared/design/MODEL_FORMAT.md and LONGNET.md).

One module serves two purposes, so there is one way to compute the model:

* the float64 *reference* the C++ engine is checked against (run_reference.py, score_reference.py);
* float32 *training* with autograd (tools/train_demo.py).

Module and parameter names are torchscale's, so `model.state_dict()` is exactly the content of
model.safetensors (including the `xpos.scale` buffers, which the file stores).

Dilated attention is computed sparsely, as LONGNET.md defines it: for every branch (w, r), segment and head
offset, the visible rows are gathered (flat (position, head) indices), dense softmax attention runs on them,
the result is scattered back with its log-sum-exp, and the branches are merged by their LSE weights. This is
the formulation of dilated_attention.py's `dilated_attention_branchwise`, vectorised over segments and batch
and chunked so that large segments never materialise more than a bounded score tensor.

XPOS: the rotation uses absolute positions (angle table built in float64, then cast). The decay factor
zeta = scale^((t - c)/base) is applied per attention *query chunk* with its own centre c (the chunk's middle):
only q.k products are used, so the centre cancels, and a local centre keeps the factors finite at any
sequence length (one global centre overflows float32 long before 1M tokens; even one centre per segment
underflows float64 for a 1M-token segment). Past keys far from the centre underflow to 0, which is what
their true contribution scale^((t-u)/base) -> 0 is anyway.

Tensors inside attention are (B, N, H, D). Ragged batches are evaluated one sequence at a time (positions
from 0 for each); training feeds equal-length batches.

Also here: a pure-Python safetensors reader/writer and model-directory I/O.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------
# Configuration

MODEL_TYPES = ("longnet_decoder", "longnet_encoder", "longnet_encoder_decoder")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Keys this implementation understands. Values of the ones marked fixed must be exactly that value.
_STACK_KEYS = ("embed_dim", "attention_heads", "ffn_embed_dim", "layers")
_FIXED_VALUES = {
    "decoder_normalize_before": True,
    "encoder_normalize_before": True,
    "layernorm_embedding": False,
    "share_all_embeddings": False,
}
_ZERO_KEYS = ("dropout", "attention_dropout", "activation_dropout", "drop_path_rate")
_KNOWN_KEYS = set(
    ["model_type", "vocab_size", "segment_length", "dilated_ratio", "activation_fn", "subln", "layernorm_eps",
     "xpos_rel_pos", "xpos_scale_base", "no_scale_embedding", "share_decoder_input_output_embed",
     "no_output_layer", "normalize_output", "bos_id", "eos_id", "pad_id", "tokenizer", "torch_dtype"]
    + ["decoder_" + k for k in _STACK_KEYS] + ["encoder_" + k for k in _STACK_KEYS]
    + list(_FIXED_VALUES) + list(_ZERO_KEYS)
)


class ConfigError(ValueError):
    """A config.json value this implementation does not support; the message names the key and value."""


def _need(cfg, key, kind):
    if key not in cfg:
        raise ConfigError(f"config.json: missing key '{key}'")
    value = cfg[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind in (int, float) and isinstance(value, bool):
        ok = False
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"config.json: key '{key}' has value {value!r}, expected {kind.__name__}")
    return value


class StackConfig:
    """Sizes of one transformer stack (encoder or decoder)."""

    def __init__(self, cfg, prefix):
        self.embed_dim = _need(cfg, prefix + "embed_dim", int)
        self.heads = _need(cfg, prefix + "attention_heads", int)
        self.ffn_dim = _need(cfg, prefix + "ffn_embed_dim", int)
        self.layers = _need(cfg, prefix + "layers", int)
        for key, value in (("embed_dim", self.embed_dim), ("attention_heads", self.heads),
                           ("ffn_embed_dim", self.ffn_dim), ("layers", self.layers)):
            if value < 1:
                raise ConfigError(f"config.json: key '{prefix}{key}' has value {value}, must be >= 1")
        if self.embed_dim % self.heads != 0:
            raise ConfigError(f"config.json: key '{prefix}embed_dim' ({self.embed_dim}) is not divisible by "
                              f"'{prefix}attention_heads' ({self.heads})")
        self.head_dim = self.embed_dim // self.heads


class LongNetConfig:
    """config.json, validated. `raw` keeps the dict as read (it is written back unchanged)."""

    def __init__(self, cfg):
        self.raw = dict(cfg)
        for key in cfg:
            if key not in _KNOWN_KEYS:
                raise ConfigError(f"config.json: unknown key '{key}' (value {cfg[key]!r})")
        self.model_type = _need(cfg, "model_type", str)
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(f"config.json: key 'model_type' has unsupported value {self.model_type!r}")
        self.vocab_size = _need(cfg, "vocab_size", int)
        self.decoder = StackConfig(cfg, "decoder_") if self.model_type != "longnet_encoder" else None
        self.encoder = StackConfig(cfg, "encoder_") if self.model_type != "longnet_decoder" else None
        if self.encoder and self.decoder and self.encoder.embed_dim != self.decoder.embed_dim:
            raise ConfigError("config.json: encoder_embed_dim must equal decoder_embed_dim "
                              f"({self.encoder.embed_dim} != {self.decoder.embed_dim})")
        seg = _need(cfg, "segment_length", list)
        ratio = _need(cfg, "dilated_ratio", list)
        if len(seg) != len(ratio) or not seg:
            raise ConfigError(f"config.json: 'segment_length' {seg} and 'dilated_ratio' {ratio} must be "
                              "non-empty lists of equal length")
        for key, values in (("segment_length", seg), ("dilated_ratio", ratio)):
            for v in values:
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ConfigError(f"config.json: key '{key}' has value {values}: entries must be ints >= 1")
        self.branches = list(zip(seg, ratio))
        self.activation_fn = _need(cfg, "activation_fn", str)
        if self.activation_fn not in ("gelu", "relu"):
            raise ConfigError(f"config.json: key 'activation_fn' has unsupported value {self.activation_fn!r}")
        self.subln = _need(cfg, "subln", bool)
        self.layernorm_eps = float(_need(cfg, "layernorm_eps", float))
        self.xpos_rel_pos = _need(cfg, "xpos_rel_pos", bool)
        self.xpos_scale_base = float(cfg.get("xpos_scale_base", 512))
        if self.xpos_rel_pos and not self.xpos_scale_base > 0:
            raise ConfigError(f"config.json: key 'xpos_scale_base' has value {self.xpos_scale_base}, must be > 0")
        self.no_scale_embedding = _need(cfg, "no_scale_embedding", bool)
        self.share_decoder_input_output_embed = bool(cfg.get("share_decoder_input_output_embed", False))
        for key, value in _FIXED_VALUES.items():
            if key in cfg and cfg[key] != value:
                what = " (post-LN is not supported)" if key.endswith("normalize_before") else ""
                raise ConfigError(f"config.json: key '{key}' has unsupported value {cfg[key]!r}{what}")
        for key in _ZERO_KEYS:
            if key in cfg and cfg[key] not in (0, 0.0):
                raise ConfigError(f"config.json: key '{key}' has value {cfg[key]!r}; dropouts must be 0")
        if self.model_type == "longnet_encoder":
            for key in ("no_output_layer", "normalize_output"):
                if key in cfg and cfg[key] is not True:
                    raise ConfigError(f"config.json: key '{key}' has unsupported value {cfg[key]!r} for an encoder")
        self.bos_id = _need(cfg, "bos_id", int)
        self.eos_id = _need(cfg, "eos_id", int)
        self.pad_id = _need(cfg, "pad_id", int)
        self.tokenizer = _need(cfg, "tokenizer", dict)
        self.torch_dtype = _need(cfg, "torch_dtype", str)
        if self.torch_dtype not in DTYPES:
            raise ConfigError(f"config.json: key 'torch_dtype' has unsupported value {self.torch_dtype!r}")

    def stack(self):
        """The stack whose sizes define the embedding dim (decoder if any, else encoder)."""
        return self.decoder or self.encoder


# ----------------------------------------------------------------------------------------------------------
# Dilated attention (sparse)

# Upper bound on the elements of one score tensor (batch x segments x heads x queries x keys). 2^22 float64
# elements are 32 MB; the chunk loops below keep every score tensor under it (smaller is not faster: the
# batched matmuls get too small; larger is slower: the passes over the scores leave the cache).
SCORE_BUDGET = 1 << 22
# Causal segments with more rows than twice this are split into query chunks (at least this many rows,
# at most 8 chunks) so that keys after a chunk's last query are never computed.
CAUSAL_QUERY_CHUNK = 256
# Longest position span of one query chunk when XPOS is on. Query factors scale^((t - c)/base) stay within
# scale^(+-span/2/base): with scale >= 0.2857 and base 512, 4096 positions give [6.7e-3, 150], finite in
# float32. Key factors 1/scale^((u - c)/base) shrink towards 0 for keys far before the chunk (their true
# weight scale^((t - u)/base) vanishes too) and grow for keys far after it (non-causal only), exactly as the
# true scores do: non-causal XPOS scores themselves exceed float32 beyond ~36K positions of distance.
XPOS_QUERY_SPAN = 4096


def head_offset(h, num_heads, r):
    """o(i, h) = floor(h / ceil(H / r)): torchscale's block mapping of heads to residues (LONGNET.md)."""
    return h // -(-num_heads // r)


def offset_groups(num_heads, r):
    """[(offset, [heads])] for the offsets that some head has, in increasing order."""
    groups = {}
    for h in range(num_heads):
        groups.setdefault(head_offset(h, num_heads, r), []).append(h)
    return sorted(groups.items())


class XposTables:
    """XPOS for one attention call: rotation of q/k at absolute positions, and decay factors on demand.

    `scale` is the per-pair buffer (D/2). Tables are computed in float64 and cast to the compute dtype.
    """

    def __init__(self, scale, scale_base, n_tok, dtype, device):
        self.log_scale = torch.log(scale.detach().to(torch.float64).cpu())  # (D/2)
        self.scale_base = float(scale_base)
        half = scale.shape[0]
        pos = torch.arange(n_tok, dtype=torch.float64)
        inv_freq = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
        angle = pos[:, None] * inv_freq[None, :]  # (N, D/2), float64: a float32 table is 4e-4 off at 16K
        self.cos = torch.cos(angle).to(dtype=dtype, device=device)
        self.sin = torch.sin(angle).to(dtype=dtype, device=device)
        self.dtype, self.device = dtype, device

    def rotate(self, x):
        """x: (B, N, H, D). Rotates each pair (x[2j], x[2j+1]) by theta[t, j]."""
        even, odd = x[..., 0::2], x[..., 1::2]
        cos = self.cos[None, :, None, :]
        sin = self.sin[None, :, None, :]
        rot_even = even * cos - odd * sin
        rot_odd = odd * cos + even * sin
        return torch.stack((rot_even, rot_odd), dim=-1).flatten(-2)

    def decay(self, rel_pos):
        """(len(rel_pos), D) factors scale[j]^(rel/base), each repeated for both members of pair j.

        rel_pos: float64 tensor of positions minus the chunk centre."""
        expo = rel_pos.to(torch.float64)[:, None] / self.scale_base * self.log_scale[None, :]
        f = torch.exp(expo).repeat_interleave(2, dim=1)
        return f.to(dtype=self.dtype, device=self.device)


def _segment_parts(n_tok, seg, r, offset):
    """Where the rows of one (branch, offset) live: a list of (first_position, n_segments, seg_rows, local)
    where `local` (m,) are the visible positions relative to the segment start. Full segments form one part,
    a short last segment (never padded) another."""
    parts = []
    n_full = n_tok // seg
    if n_full and offset < seg:
        parts.append((0, n_full, seg, torch.arange(offset, seg, r)))
    rem = n_tok - n_full * seg
    if rem and offset < rem:
        parts.append((n_full * seg, 1, rem, torch.arange(offset, rem, r)))
    return parts


def _attend(qg, kg, vg, causal, scale, local, xpos, q_lo, q_hi):
    """Dense attention of gathered query rows [q_lo, q_hi) against the gathered keys of their segments.

    qg, kg, vg: (B, S, G, m, D) (segments, heads of one offset, rows in position order). local: (m,)
    positions of the rows relative to the segment start. Returns out (B, S, G, q_hi - q_lo, D) and lse
    (B, S, G, q_hi - q_lo).
    """
    k_hi = q_hi if causal else kg.shape[3]  # causal: keys after the chunk's last query are never needed
    q = qg[:, :, :, q_lo:q_hi]
    k = kg[:, :, :, :k_hi]
    v = vg[:, :, :, :k_hi]
    if xpos is not None:
        centre = local[(q_lo + q_hi - 1) // 2].item()
        rel = local.to(torch.float64) - centre
        q = q * xpos.decay(rel[q_lo:q_hi])
        k = k / xpos.decay(rel[:k_hi])
    scores = torch.matmul(q * scale, k.transpose(-1, -2))  # (B, S, G, q, k)
    if causal:
        # rows and keys are in increasing position order: key j is visible to query i iff j <= i
        future = torch.arange(k_hi)[None, :] > torch.arange(q_lo, q_hi)[:, None]
        scores = scores.masked_fill_(future.to(scores.device), -math.inf)
    # softmax and its log-sum-exp in few passes over the score tensor. The row maximum is only a
    # numerical shift (the result does not depend on it), so it is detached: its gradient is zero anyway.
    row_max = scores.detach().amax(dim=-1, keepdim=True)  # finite: every row has at least its own key
    probs = (scores - row_max).exp_()
    denom = probs.sum(dim=-1, keepdim=True)
    out = torch.matmul(probs, v) / denom
    return out, (row_max + denom.log()).squeeze(-1)


def _branch(q, k, v, w, r, causal, scale, xpos):
    """One branch over (B, N, H, D) inputs: out (B, N, H, D) and lse (B, N, H), lse = -inf where invisible."""
    bsz, n_tok, num_heads, head_dim = q.shape
    seg = min(w, n_tok)  # a sequence shorter than w is one segment of length N
    flat_q = q.reshape(bsz, n_tok * num_heads, head_dim)
    flat_k = k.reshape(bsz, n_tok * num_heads, head_dim)
    flat_v = v.reshape(bsz, n_tok * num_heads, head_dim)
    idx_all, out_all, lse_all = [], [], []
    for offset, heads in offset_groups(num_heads, r):
        heads_t = torch.tensor(heads)
        for start, n_seg, seg_len, local in _segment_parts(n_tok, seg, r, offset):
            m, g = local.shape[0], len(heads)
            # flat index of (segment s, head g, row i) = (start + s*seg_len + local[i]) * H + heads[g], in
            # that order, so the gathered tensors are (B, S, G, m, D) and attention is a plain batched matmul
            pos = start + torch.arange(n_seg)[:, None] * seg_len + local[None, :]  # (S, m)
            flat = (pos[:, None, :] * num_heads + heads_t[None, :, None]).reshape(-1).to(q.device)
            shape = (bsz, n_seg, g, m, head_dim)
            qg = flat_q.index_select(1, flat).view(shape)
            kg = flat_k.index_select(1, flat).view(shape)
            vg = flat_v.index_select(1, flat).view(shape)
            # chunk queries so one score tensor stays within budget (and XPOS spans stay short), then
            # chunk segments
            q_chunk = max(1, min(m, SCORE_BUDGET // max(1, bsz * g * m)))
            if causal and m > 2 * CAUSAL_QUERY_CHUNK:
                # chunks of queries skip the keys after their last row: about half the work for long rows
                q_chunk = min(q_chunk, max(CAUSAL_QUERY_CHUNK, -(-m // 8)))
            if xpos is not None:
                q_chunk = min(q_chunk, max(1, XPOS_QUERY_SPAN // r))
            s_chunk = max(1, min(n_seg, SCORE_BUDGET // max(1, bsz * g * m * q_chunk)))
            outs, lses = [], []
            for s0 in range(0, n_seg, s_chunk):
                s1 = min(n_seg, s0 + s_chunk)
                row_outs, row_lses = [], []
                for q0 in range(0, m, q_chunk):
                    o, l = _attend(qg[:, s0:s1], kg[:, s0:s1], vg[:, s0:s1], causal, scale, local, xpos,
                                   q0, min(m, q0 + q_chunk))
                    row_outs.append(o)
                    row_lses.append(l)
                outs.append(torch.cat(row_outs, dim=3))
                lses.append(torch.cat(row_lses, dim=3))
            idx_all.append(flat)
            out_all.append(torch.cat(outs, dim=1).reshape(bsz, -1, head_dim))
            lse_all.append(torch.cat(lses, dim=1).reshape(bsz, -1))
    out = q.new_zeros(bsz, n_tok * num_heads, head_dim)
    lse = q.new_full((bsz, n_tok * num_heads), -math.inf)
    if idx_all:
        idx = torch.cat(idx_all)
        out = out.index_copy(1, idx, torch.cat(out_all, dim=1))
        lse = lse.index_copy(1, idx, torch.cat(lse_all, dim=1))
    return out.view(bsz, n_tok, num_heads, head_dim), lse.view(bsz, n_tok, num_heads)


def merge_branches(outs, lses):
    """LSE-weighted merge of per-branch outputs (k x (B, N, H, D)) and lses (k x (B, N, H)).

    Where no branch sees a (token, head) the output is 0 and the lse -inf, never NaN, and gradients stay
    finite (the -inf rows are replaced before logsumexp, whose backward would otherwise produce NaN)."""
    lse_all = torch.stack(lses)
    out_all = torch.stack(outs)
    covered = torch.isfinite(lse_all).any(dim=0)
    lse_safe = torch.where(covered.unsqueeze(0), lse_all, torch.zeros_like(lse_all))
    merged = torch.logsumexp(lse_safe, dim=0)
    weights = torch.exp(lse_safe - merged.unsqueeze(0))  # 0 for branches where the token is invisible
    out = (weights.unsqueeze(-1) * out_all).sum(dim=0)  # uncovered: every out_i is 0
    return out, torch.where(covered, merged, torch.full_like(merged, -math.inf))


def dilated_attention(q, k, v, branches, causal, xpos=None, scale=None):
    """LongNet dilated attention of LONGNET.md on equal-length sequences.

    q, k, v: (B, N, H, D) after the projections (and, with XPOS, after `xpos.rotate`). xpos: XposTables or
    None (its decay factors are applied here, per query chunk). Returns out (B, N, H, D), lse (B, N, H)."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    outs, lses = [], []
    for w, r in branches:
        o, l = _branch(q, k, v, w, r, causal, scale, xpos)
        outs.append(o)
        lses.append(l)
    return merge_branches(outs, lses)


def dense_attention(q, k, v, scale=None):
    """Non-causal dense attention (cross-attention). q: (B, Nq, H, D), k/v: (B, Nk, H, D)."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    out_chunks = []
    step = max(1, SCORE_BUDGET // max(1, q.shape[0] * q.shape[2] * k.shape[1]))
    for q0 in range(0, q.shape[1], step):
        scores = torch.einsum("bqhd,bkhd->bhqk", q[:, q0:q0 + step], k) * scale
        out_chunks.append(torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v))
    return torch.cat(out_chunks, dim=1)


# ----------------------------------------------------------------------------------------------------------
# Layers (names are torchscale's)


class XPOS(nn.Module):
    """Holds the persistent per-pair scale buffer (stored in model.safetensors as `...xpos.scale`)."""

    def __init__(self, head_dim, scale_base):
        super().__init__()
        self.scale_base = scale_base
        d = torch.arange(0, head_dim, 2, dtype=torch.float64)
        self.register_buffer("scale", ((d + 0.4 * head_dim) / (1.4 * head_dim)).to(torch.float32))

    def tables(self, n_tok, dtype, device):
        return XposTables(self.scale, self.scale_base, n_tok, dtype, device)


class MultiheadAttention(nn.Module):
    """Self-attention (dilated, optional XPOS and sub-LN) or cross-attention (dense, neither)."""

    def __init__(self, embed_dim, heads, eps, branches=None, subln=False, xpos_base=None):
        super().__init__()
        self.heads, self.head_dim = heads, embed_dim // heads
        self.branches = branches
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.inner_attn_ln = nn.LayerNorm(embed_dim, eps=eps) if subln else None
        self.xpos = XPOS(self.head_dim, xpos_base) if xpos_base is not None else None

    def _split(self, x):
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim)

    def forward(self, x, causal=True, kv=None):
        """x: (B, N, E). kv None: dilated self-attention; else dense cross-attention on kv (B, M, E)."""
        if kv is None:
            q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
            xpos = None
            if self.xpos is not None:
                xpos = self.xpos.tables(x.shape[1], x.dtype, x.device)
                q, k = xpos.rotate(q), xpos.rotate(k)
            attn, _ = dilated_attention(q, k, v, self.branches, causal, xpos)
        else:
            q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(kv)), self._split(self.v_proj(kv))
            attn = dense_attention(q, k, v)
        attn = attn.reshape(x.shape[0], x.shape[1], -1)
        if self.inner_attn_ln is not None:
            attn = self.inner_attn_ln(attn)
        return self.out_proj(attn)


class FeedForwardNetwork(nn.Module):
    def __init__(self, embed_dim, ffn_dim, activation, eps, subln):
        super().__init__()
        self.activation = activation
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.ffn_layernorm = nn.LayerNorm(ffn_dim, eps=eps) if subln else None

    def forward(self, x):
        h = self.fc1(x)
        h = F.gelu(h) if self.activation == "gelu" else F.relu(h)  # F.gelu is the exact erf form
        if self.ffn_layernorm is not None:
            h = self.ffn_layernorm(h)
        return self.fc2(h)


class LongNetLayer(nn.Module):
    """Pre-LN layer: dilated self-attention, [dense cross-attention], FFN."""

    def __init__(self, cfg, stack, cross_attention):
        super().__init__()
        eps = cfg.layernorm_eps
        xpos_base = cfg.xpos_scale_base if cfg.xpos_rel_pos else None
        self.self_attn = MultiheadAttention(stack.embed_dim, stack.heads, eps, cfg.branches, cfg.subln, xpos_base)
        self.self_attn_layer_norm = nn.LayerNorm(stack.embed_dim, eps=eps)
        if cross_attention:
            self.encoder_attn = MultiheadAttention(stack.embed_dim, stack.heads, eps)
            self.encoder_attn_layer_norm = nn.LayerNorm(stack.embed_dim, eps=eps)
        else:
            self.encoder_attn = None
        self.ffn = FeedForwardNetwork(stack.embed_dim, stack.ffn_dim, cfg.activation_fn, eps, cfg.subln)
        self.final_layer_norm = nn.LayerNorm(stack.embed_dim, eps=eps)

    def forward(self, x, causal, encoder_out=None):
        h = x + self.self_attn(self.self_attn_layer_norm(x), causal=causal)
        if self.encoder_attn is not None:
            h = h + self.encoder_attn(self.encoder_attn_layer_norm(h), kv=encoder_out)
        if torch.is_grad_enabled() or h.shape[1] <= FFN_CHUNK:
            return h + self.ffn(self.final_layer_norm(h))
        # inference on long inputs: the FFN is per position, so row chunks bound its (N x F) activations
        return torch.cat([c + self.ffn(self.final_layer_norm(c)) for c in h.split(FFN_CHUNK, dim=1)], dim=1)


# Positions per FFN call in long inference runs (keeps the N x ffn_dim activations to a few hundred MB).
FFN_CHUNK = 16384


class LongNetStack(nn.Module):
    """Embedding, layers, final layer_norm, and (decoder) the output projection."""

    def __init__(self, cfg, stack, causal, cross_attention, lm_head):
        super().__init__()
        self.causal = causal
        self.embed_scale = 1.0 if cfg.no_scale_embedding else math.sqrt(stack.embed_dim)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, stack.embed_dim)
        self.layers = nn.ModuleList(LongNetLayer(cfg, stack, cross_attention) for _ in range(stack.layers))
        self.layer_norm = nn.LayerNorm(stack.embed_dim, eps=cfg.layernorm_eps)
        self.tied = lm_head and cfg.share_decoder_input_output_embed
        self.output_projection = None
        if lm_head and not self.tied:
            self.output_projection = nn.Linear(stack.embed_dim, cfg.vocab_size, bias=False)

    def hidden(self, ids, encoder_out=None):
        """ids: (B, N) long, equal-length sequences. Final-LN hidden states (B, N, E)."""
        x = self.embed_scale * self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.causal, encoder_out)
        return self.layer_norm(x)

    def logits(self, x):
        weight = self.embed_tokens.weight if self.tied else self.output_projection.weight
        return x @ weight.t()


class LongNetModel(nn.Module):
    """The three model types of MODEL_FORMAT.md; state_dict() is the safetensors content."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model_type = cfg.model_type
        if cfg.model_type == "longnet_decoder":
            self.stack = LongNetStack(cfg, cfg.decoder, True, False, True)
        elif cfg.model_type == "longnet_encoder":
            self.stack = LongNetStack(cfg, cfg.encoder, False, False, False)
        else:
            self.encoder = LongNetStack(cfg, cfg.encoder, False, False, False)
            self.decoder = LongNetStack(cfg, cfg.decoder, True, True, True)

    # The decoder/encoder models have no prefix in the file: expose the stack's own state_dict names.
    def state_dict(self, *args, **kwargs):
        if self.model_type == "longnet_encoder_decoder":
            return super().state_dict(*args, **kwargs)
        return self.stack.state_dict(*args, **kwargs)

    def load_state_dict(self, state, strict=True):
        if self.model_type == "longnet_encoder_decoder":
            return super().load_state_dict(state, strict=strict)
        return self.stack.load_state_dict(state, strict=strict)

    def forward(self, ids, src_ids=None):
        """Equal-length batch. Decoder: logits (B, N, V). Encoder: hidden (B, N, E). Encoder-decoder: ids are
        the target, src_ids the source; logits over the target."""
        if self.model_type == "longnet_decoder":
            return self.stack.logits(self.stack.hidden(ids))
        if self.model_type == "longnet_encoder":
            return self.stack.hidden(ids)
        enc = self.encoder.hidden(src_ids)
        return self.decoder.logits(self.decoder.hidden(ids, enc))

    def forward_ragged(self, seqs, src_seqs=None):
        """Each sequence on its own (positions from 0). Returns a list of (N_b, F) tensors."""
        outs = []
        for b, seq in enumerate(seqs):
            ids = torch.tensor([seq], dtype=torch.long)
            src = torch.tensor([src_seqs[b]], dtype=torch.long) if src_seqs is not None else None
            outs.append(self.forward(ids, src)[0])
        return outs


def expected_keys(cfg):
    """Every tensor name of model.safetensors for cfg, in a deterministic order."""
    return list(LongNetModel(cfg).state_dict().keys())


# ----------------------------------------------------------------------------------------------------------
# safetensors (pure Python: JSON header + raw little-endian data)

_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def save_safetensors(tensors, path, metadata=None):
    """Writes {name: tensor} as safetensors, keys sorted, data 8-byte aligned via header padding."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _ST_NAMES:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {t.dtype}")
        # bf16 has no numpy type: reinterpret its bits as int16 (the bytes are what the file stores)
        arr = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)


def load_safetensors(path):
    """Reads a safetensors file into {name: tensor} (stored dtype), validating header and offsets."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds the file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON: {e}")
    data = memoryview(blob)[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        shape = info["shape"]
        itemsize = torch.tensor([], dtype=dtype).element_size()
        if not (0 <= begin <= end <= len(data)) or end - begin != itemsize * math.prod(shape):
            raise ValueError(f"{path}: tensor '{name}' has bad data_offsets {[begin, end]} for shape {shape}")
        spans.append((begin, end, name))
        np_dtype = {torch.float32: "<f4", torch.float16: "<f2", torch.bfloat16: "<i2", torch.float64: "<f8"}[dtype]
        arr = np.frombuffer(data[begin:end], dtype=np_dtype).copy().reshape(shape)
        t = torch.from_numpy(arr)
        out[name] = t.view(torch.bfloat16) if dtype == torch.bfloat16 else t
    spans.sort()
    for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError(f"{path}: tensors '{n0}' and '{n1}' overlap")
    return out


# ----------------------------------------------------------------------------------------------------------
# Model directories


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return LongNetConfig(json.load(f))


def load_model(model_dir, dtype=torch.float64):
    """Reads a model directory; stored F16/BF16/F32 weights are upcast exactly to `dtype`.

    Missing, unexpected or mis-shaped tensors are errors naming the key."""
    cfg = load_config(model_dir)
    path = os.path.join(model_dir, "model.safetensors")
    tensors = load_safetensors(path)
    model = LongNetModel(cfg).to(dtype)
    want = model.state_dict()
    stored = DTYPES[cfg.torch_dtype]
    missing = [k for k in want if k not in tensors]
    unexpected = [k for k in tensors if k not in want]
    if missing or unexpected:
        raise ValueError(f"{path}: missing keys {missing}, unexpected keys {unexpected}")
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(want[k].shape):
            raise ValueError(f"{path}: tensor '{k}' has shape {list(t.shape)}, expected {list(want[k].shape)}")
        if t.dtype != stored:
            raise ValueError(f"{path}: tensor '{k}' has dtype {t.dtype}, config says {cfg.torch_dtype}")
    model.load_state_dict({k: t.to(dtype) for k, t in tensors.items()})
    model.eval()
    return model


def save_model(model, model_dir, extra_files=None):
    """Writes config.json (real JSON lists) and model.safetensors in the config's torch_dtype."""
    os.makedirs(model_dir, exist_ok=True)
    cfg = model.cfg
    dtype = DTYPES[cfg.torch_dtype]
    state = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    save_safetensors(state, os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg.raw, f, indent=2)
        f.write("\n")
    for name, text in (extra_files or {}).items():
        with open(os.path.join(model_dir, name), "w") as f:
            f.write(text)
