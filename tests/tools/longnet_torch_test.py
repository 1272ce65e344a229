"""Self-tests of tools/reference/longnet_torch.py (the PyTorch implementation of the model contract).

    /usr/bin/python3 tests/tools/longnet_torch_test.py

* its sparse dilated attention equals both float64 formulations of tools/reference/dilated_attention.py
  (per-branch gather + LSE merge, and one softmax over the union of key sets) on the edge cases of
  LONGNET.md, also with the chunk loops forced to tiny chunks and with batches;
* XPOS: scores depend on position differences only (a repeated segment gives repeated outputs), the
  per-chunk centre gives the same result as the relative factor computed directly, and values stay finite
  and exact at 1M tokens in float32;
* whole models: causality, ragged = one by one, float64 vs float32, uncovered heads give 0 (and finite
  gradients), safetensors round trips and load errors.
"""

import math
import os
import sys
import tempfile
import unittest

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import dilated_attention as da  # noqa: E402
import longnet_torch as lt  # noqa: E402
import make_test_model as mtm  # noqa: E402

torch.set_num_threads(1)

# (heads, head_dim, N, branches): the edge cases of LONGNET.md
EDGE_CASES = [
    (2, 8, 64, [(16, 1)]),  # one r = 1 branch
    (4, 8, 77, [(16, 1), (32, 2)]),  # short last segment in every branch
    (4, 8, 23, [(8, 1), (64, 2), (128, 4)]),  # N < w
    (4, 8, 1, [(4, 1), (8, 2)]),  # one token
    (6, 8, 70, [(8, 1), (10, 3), (16, 6)]),  # w mod r != 0 over several segments
    (6, 16, 53, [(10, 3), (16, 6)]),  # w mod r != 0, no r = 1 branch
    (4, 8, 60, [(12, 1), (24, 6)]),  # r > H
    (4, 8, 60, [(12, 3), (24, 6)]),  # r > H, no r = 1
    (6, 8, 50, [(8, 1), (16, 4)]),  # H not divisible by r
    (4, 8, 40, [(8, 2), (16, 4)]),  # no r = 1: uncovered (token, head) pairs
    (5, 4, 97, [(32, 1), (32, 1)]),  # a repeated branch (keys counted once per branch)
]


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class SparseAttentionTest(unittest.TestCase):
    def _compare(self, heads, dim, n, branches, causal, seed):
        q, k, v = (rand(n, heads, dim, seed=seed + i) * (2.0 if i == 0 else 1.0) for i in range(3))
        want_out, want_lse = da.dilated_attention_branchwise(q, k, v, [n], branches, causal)
        union_out, _ = da.dilated_attention_union(q, k, v, [n], branches, causal)
        out, lse = lt.dilated_attention(q[None], k[None], v[None], branches, causal)
        self.assertFalse(torch.isnan(out).any())
        self.assertLess((out[0] - want_out).abs().max().item(), 1e-12)
        self.assertLess((out[0] - union_out).abs().max().item(), 1e-12)
        self.assertLess(da.max_abs_diff(lse[0], want_lse), 1e-12)

    def test_edge_cases(self):
        for i, (heads, dim, n, branches) in enumerate(EDGE_CASES):
            for causal in (True, False):
                with self.subTest(heads=heads, n=n, branches=branches, causal=causal):
                    self._compare(heads, dim, n, branches, causal, seed=10 * i)

    def test_tiny_chunks(self):
        """The segment and query chunk loops (normally only for big segments) give the same result."""
        saved = lt.SCORE_BUDGET
        try:
            for budget in (1, 37, 500):
                lt.SCORE_BUDGET = budget
                for causal in (True, False):
                    self._compare(4, 8, 77, [(16, 1), (32, 2), (77, 4)], causal, seed=budget)
                    self._compare(6, 8, 70, [(8, 1), (10, 3), (16, 6)], causal, seed=budget + 1)
        finally:
            lt.SCORE_BUDGET = saved

    def test_batch_equals_one_by_one(self):
        q, k, v = (rand(3, 45, 4, 8, seed=i) for i in range(3))
        branches = [(8, 1), (16, 2), (32, 4)]
        out, lse = lt.dilated_attention(q, k, v, branches, True)
        for b in range(3):
            o, l = lt.dilated_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], branches, True)
            self.assertTrue(torch.equal(out[b], o[0]))

    def test_uncovered_heads_zero_and_finite_gradient(self):
        q, k, v = (rand(1, 40, 4, 8, seed=i).requires_grad_() for i in range(3))
        out, lse = lt.dilated_attention(q, k, v, [(8, 2), (16, 4)], False)
        uncovered = torch.isneginf(lse)
        self.assertTrue(uncovered.any())
        self.assertEqual(out[uncovered].abs().max().item(), 0.0)
        out.sum().backward()
        for t in (q, k, v):
            self.assertTrue(torch.isfinite(t.grad).all())


def xpos_dense_reference(q, k, v, scale_buf, base, causal):
    """Dense attention (one branch, r = 1, one segment) with XPOS written from MODEL_FORMAT.md directly:
    score(t, u) = sum_j (rot q_t)_j . (rot k_u)_j * scale[j]^((t - u) / base), in float64."""
    n, heads, dim = q.shape
    tables = lt.XposTables(scale_buf, base, n, torch.float64, "cpu")
    qr, kr = tables.rotate(q[None])[0], tables.rotate(k[None])[0]
    pos = torch.arange(n, dtype=torch.float64)
    rel = pos[:, None] - pos[None, :]  # (t, u)
    fac = torch.exp(rel[:, :, None] * torch.log(scale_buf.double())[None, None, :] / base)  # (t, u, D/2)
    qp = qr.view(n, heads, dim // 2, 2)
    kp = kr.view(n, heads, dim // 2, 2)
    pair = torch.einsum("thjc,uhjc->htuj", qp, kp)
    scores = (pair * fac[None]).sum(-1) / math.sqrt(dim)
    if causal:
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -math.inf)
    return torch.einsum("htu,uhd->thd", torch.softmax(scores, -1), v)


class XposTest(unittest.TestCase):
    def _xpos_attention(self, q, k, v, branches, causal, base=512.0, dtype=torch.float64):
        dim = q.shape[-1]
        scale = lt.XPOS(dim, base).scale
        tables = lt.XposTables(scale, base, q.shape[1], dtype, "cpu")
        return lt.dilated_attention(tables.rotate(q.to(dtype)), tables.rotate(k.to(dtype)), v.to(dtype),
                                    branches, causal, tables)[0]

    def test_matches_relative_formula(self):
        """Per-chunk centres (here forced to many small chunks) equal the relative factor computed directly."""
        n, heads, dim = 64, 2, 8
        q, k, v = (rand(n, heads, dim, seed=20 + i) for i in range(3))
        scale = lt.XPOS(dim, 16.0).scale  # a small base makes the decay strong
        saved = lt.XPOS_QUERY_SPAN
        try:
            for span in (4096, 8, 1):
                lt.XPOS_QUERY_SPAN = span
                for causal in (True, False):
                    got = self._xpos_attention(q[None], k[None], v[None], [(64, 1)], causal, base=16.0)[0]
                    want = xpos_dense_reference(q, k, v, scale, 16.0, causal)
                    self.assertLess((got - want).abs().max().item(), 1e-12, f"span {span} causal {causal}")
        finally:
            lt.XPOS_QUERY_SPAN = saved

    def test_relative_invariance(self):
        """A sequence made of two identical halves, each a whole number of segments of every branch: the
        second half's outputs equal the first's (XPOS sees only position differences)."""
        half, heads, dim = 64, 4, 8
        branches = [(16, 1), (32, 2), (64, 4)]
        q, k, v = (rand(1, half, heads, dim, seed=30 + i) for i in range(3))
        doubled = [torch.cat([x, x], dim=1) for x in (q, k, v)]
        for causal in (True, False):
            out = self._xpos_attention(*doubled, branches, causal)
            self.assertLess((out[:, :half] - out[:, half:]).abs().max().item(), 1e-12)

    def test_finite_at_one_million_tokens(self):
        """A causal 2^20-token segment (sparse: r = 1024, 1024 rows per head) in float32 stays finite and
        matches float64; with one global centre the factors would overflow."""
        n, heads, dim = 1 << 20, 1, 8
        branches = [(n, 1024)]
        q, k, v = (rand(1, n, heads, dim, seed=40 + i, dtype=torch.float32) for i in range(3))
        out32 = self._xpos_attention(q, k, v, branches, True, dtype=torch.float32)
        out64 = self._xpos_attention(q.double(), k.double(), v.double(), branches, True)
        self.assertTrue(torch.isfinite(out32).all())
        self.assertLess((out32.double() - out64).abs().max().item(), 1e-4)


class ModelTest(unittest.TestCase):
    def test_causality(self):
        model = mtm.build_model(branches=[(8, 1), (16, 2), (32, 4)], layers=2)
        ids = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            base = model(ids)
            for t in (0, 7, 16, 39):
                changed = ids.clone()
                changed[0, t] = (changed[0, t] + 1) % 256
                out = model(changed)
                self.assertTrue(torch.equal(out[:, :t], base[:, :t]), f"token {t} changed earlier outputs")
                self.assertFalse(torch.equal(out[:, t:], base[:, t:]))

    def test_ffn_chunks(self):
        """Inference splits long inputs' FFN into row chunks; the result is the same."""
        model = mtm.build_model(branches=[(8, 1), (16, 2)], model_type="longnet_encoder_decoder")
        ids, src = torch.arange(30)[None], torch.arange(5, 25)[None]
        with torch.no_grad():
            whole = model(ids, src)
            saved = lt.FFN_CHUNK
            try:
                lt.FFN_CHUNK = 7
                chunked = model(ids, src)
            finally:
                lt.FFN_CHUNK = saved
        self.assertLess((whole - chunked).abs().max().item(), 1e-12)

    def test_ragged_equals_one_by_one(self):
        model = mtm.build_model(branches=[(8, 1), (16, 2)], model_type="longnet_encoder")
        seqs = [[1, 2, 3], list(range(30)), [256]]
        outs = model.forward_ragged(seqs)
        for seq, out in zip(seqs, outs):
            with torch.no_grad():
                alone = model(torch.tensor([seq]))[0]
            self.assertTrue(torch.equal(out, alone))

    def test_float64_vs_float32(self):
        for model_type in lt.MODEL_TYPES:
            model = mtm.build_model(model_type=model_type, branches=[(8, 1), (32, 4)], heads=4, layers=2)
            seq = [list(range(100, 170))]
            src = [list(range(1, 40))] if model_type == "longnet_encoder_decoder" else None
            with torch.no_grad():
                out64 = model.forward_ragged(seq, src)[0]
                out32 = model.float().forward_ragged(seq, src)[0]
            diff = (out64 - out32.double()).abs().max().item()
            self.assertLess(diff, 1e-4, model_type)
            self.assertGreater(out64.std().item(), 0.3, "outputs should vary by O(1)")

    def test_no_r1_model_is_finite_and_trains(self):
        model = mtm.build_model(branches=[(8, 2), (16, 3)], heads=4).float()
        ids = torch.randint(0, 256, (2, 30), generator=torch.Generator().manual_seed(1))
        loss = model(ids).logsumexp(-1).mean()
        loss.backward()
        self.assertTrue(torch.isfinite(loss))
        for name, p in model.named_parameters():
            self.assertTrue(torch.isfinite(p.grad).all(), name)

    def test_state_dict_names(self):
        model = mtm.build_model(model_type="longnet_encoder_decoder", layers=1, tied=True)
        keys = set(model.state_dict())
        for key in ("encoder.embed_tokens.weight", "encoder.layers.0.self_attn.xpos.scale",
                    "encoder.layers.0.self_attn.inner_attn_ln.weight", "encoder.layer_norm.bias",
                    "decoder.layers.0.encoder_attn.q_proj.weight", "decoder.layers.0.encoder_attn_layer_norm.bias",
                    "decoder.layers.0.ffn.ffn_layernorm.weight", "decoder.layer_norm.weight"):
            self.assertIn(key, keys)
        for key in ("decoder.output_projection.weight", "decoder.layers.0.encoder_attn.inner_attn_ln.weight",
                    "decoder.layers.0.encoder_attn.xpos.scale", "encoder.output_projection.weight"):
            self.assertNotIn(key, keys)
        dec = mtm.build_model(tied=False, xpos=False, subln=False, layers=1)
        self.assertEqual(sorted(dec.state_dict()), sorted([
            "embed_tokens.weight", "layer_norm.weight", "layer_norm.bias", "output_projection.weight",
            *[f"layers.0.self_attn.{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")
              for w in ("weight", "bias")],
            *[f"layers.0.{n}.{w}" for n in ("self_attn_layer_norm", "final_layer_norm", "ffn.fc1", "ffn.fc2")
              for w in ("weight", "bias")]]))


class CliTest(unittest.TestCase):
    """make_test_model.py, run_reference.py and score_reference.py as the C++ parity tests call them."""

    def test_run_and_score(self):
        import json
        import subprocess

        import numpy as np

        tools = os.path.join(REPO, "tools", "reference")
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = os.path.join(tmp, "m")
            subprocess.run([sys.executable, os.path.join(tools, "make_test_model.py"), "--out", model_dir,
                            "--branches", "8:1,16:2", "--dtype", "bfloat16", "--layers", "1"],
                           check=True, capture_output=True)
            text = "In the beginning God created the heaven and the earth.\n".encode()
            with open(os.path.join(tmp, "t.txt"), "wb") as f:
                f.write(text)
            ids = [256] + list(text)
            with open(os.path.join(tmp, "t.json"), "w") as f:
                json.dump({"input_ids": [ids, ids[:5]]}, f)
            subprocess.run([sys.executable, os.path.join(tools, "run_reference.py"), "--model", model_dir, "--tokens",
                            os.path.join(tmp, "t.json"), "--out", os.path.join(tmp, "o.npy")],
                           check=True, capture_output=True)
            logits = np.load(os.path.join(tmp, "o.npy"))
            self.assertEqual(logits.shape, (2, len(ids), 259))
            self.assertEqual(logits.dtype, np.float64)
            # causal: a prefix gives the same rows (up to rounding: its XPOS chunk centre differs)
            self.assertLess(np.abs(logits[1, :5] - logits[0, :5]).max(), 1e-12)
            self.assertFalse(logits[1, 5:].any())  # zero past the sequence's length
            logp = torch.log_softmax(torch.from_numpy(logits[0]), -1)
            want = -sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids))) / math.log(2) / len(text)
            out = subprocess.run([sys.executable, os.path.join(tools, "score_reference.py"), "--model", model_dir,
                                  "--input", os.path.join(tmp, "t.txt")], check=True, capture_output=True, text=True)
            self.assertAlmostEqual(float(out.stdout), want, places=5)
            self.assertRegex(out.stdout.strip(), r"^\d+\.\d{6}$")

    def test_spec_names_checked(self):
        with self.assertRaisesRegex(ValueError, "unknown model spec names"):
            mtm.build_model(headz=4)
        self.assertEqual(mtm.make_config({"dtype": "float16"})["torch_dtype"], "float16")


class FilesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_model_dir_roundtrip_each_dtype(self):
        for dtype in ("float32", "float16", "bfloat16"):
            path = os.path.join(self.tmp.name, dtype)
            model = mtm.make_test_model(path, torch_dtype=dtype, layers=1)
            loaded = lt.load_model(path, torch.float64)
            for k, v in model.state_dict().items():
                stored = v.to(lt.DTYPES[dtype]).double()  # the upcast is exact
                self.assertTrue(torch.equal(loaded.state_dict()[k], stored), f"{dtype} {k}")

    def test_safetensors_errors(self):
        path = os.path.join(self.tmp.name, "t.safetensors")
        lt.save_safetensors({"a": torch.ones(4), "b": torch.zeros(2, 3, dtype=torch.bfloat16)}, path)
        got = lt.load_safetensors(path)
        self.assertTrue(torch.equal(got["b"], torch.zeros(2, 3, dtype=torch.bfloat16)))
        with open(path, "rb") as f:
            blob = f.read()
        with open(path, "wb") as f:
            f.write(blob[:-3])
        with self.assertRaisesRegex(ValueError, "bad data_offsets"):
            lt.load_safetensors(path)
        with open(path, "wb") as f:
            f.write(blob[:8] + b"x" + blob[9:])
        with self.assertRaisesRegex(ValueError, "not valid JSON"):
            lt.load_safetensors(path)

    def test_config_errors(self):
        cfg = mtm.make_config({})
        for key, value, pattern in (("decoder_normalize_before", False, "post-LN"),
                                    ("activation_fn", "swish", "activation_fn"),
                                    ("mystery", 1, "unknown key 'mystery'"),
                                    ("dilated_ratio", [1], "equal length"),
                                    ("dropout", 0.1, "dropouts must be 0")):
            with self.assertRaisesRegex(lt.ConfigError, pattern):
                lt.LongNetConfig(dict(cfg, **{key: value}))


if __name__ == "__main__":
    unittest.main()
