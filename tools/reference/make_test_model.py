#!/usr/bin/env python3
"""Writes a small random LongNet model directory (config.json + model.safetensors) for tests.

    /usr/bin/python3 tools/reference/make_test_model.py --out DIR [--model-type longnet_decoder]
        [--vocab 300] [--embed-dim 32] [--heads 4] [--ffn 64] [--layers 2] [--branches 16:1,32:2]
        [--no-xpos] [--no-subln] [--activation relu] [--untied] [--no-scale-embedding]
        [--dtype float16] [--seed 1]

or from Python: `make_test_model(out_dir, **spec)` (the names of `default_spec()`; `dtype` is accepted for
`torch_dtype`; any other name is an error).

Magnitudes are realistic, so that logits vary by O(1) and an engine error shows up: LayerNorm weights
1 +- 0.1 and biases +- 0.05, linear weights N(0, 1/sqrt(fan_in)) with biases N(0, 0.02), embeddings
N(0, E^-1/2) (N(0, 1) without the sqrt(E) embedding scale), the XPOS scale buffer torchscale's default.
Tokenizer: byte (ids 0-255 bytes, then bos, eos, pad); vocab_size may be larger than 259.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longnet_torch as lt  # noqa: E402


def default_spec():
    return {
        "model_type": "longnet_decoder",
        "vocab_size": 259,
        "embed_dim": 32,
        "heads": 4,
        "ffn_dim": 64,
        "layers": 2,
        "branches": [(16, 1), (32, 2)],
        "xpos": True,
        "subln": True,
        "activation": "gelu",
        "tied": True,
        "scale_embedding": True,
        "torch_dtype": "float32",
        "seed": 1,
        "xpos_scale_base": 512,
        "layernorm_eps": 1e-5,
    }


def full_spec(spec):
    """default_spec() updated by `spec`; "dtype" is accepted for "torch_dtype". Unknown names are errors
    (a misspelt option must not silently build a different model)."""
    spec = dict(spec)
    if "dtype" in spec:
        if "torch_dtype" in spec and spec["torch_dtype"] != spec["dtype"]:
            raise ValueError(f"spec gives both dtype {spec['dtype']!r} and torch_dtype {spec['torch_dtype']!r}")
        spec["torch_dtype"] = spec.pop("dtype")
    unknown = sorted(set(spec) - set(default_spec()))
    if unknown:
        raise ValueError(f"unknown model spec names {unknown}; known: {sorted(default_spec())}")
    return dict(default_spec(), **spec)


def make_config(spec):
    """config.json for a spec (every key of MODEL_FORMAT.md that applies to the model type)."""
    s = full_spec(spec)
    if s["vocab_size"] < 259:
        raise ValueError(f"vocab_size {s['vocab_size']} < 259: the byte tokenizer needs 256 bytes + bos/eos/pad")
    cfg = {"model_type": s["model_type"], "vocab_size": s["vocab_size"]}
    stacks = {"longnet_decoder": ["decoder_"], "longnet_encoder": ["encoder_"],
              "longnet_encoder_decoder": ["encoder_", "decoder_"]}[s["model_type"]]
    for prefix in stacks:
        cfg.update({prefix + "embed_dim": s["embed_dim"], prefix + "attention_heads": s["heads"],
                    prefix + "ffn_embed_dim": s["ffn_dim"], prefix + "layers": s["layers"],
                    prefix + "normalize_before": True})
    cfg.update({
        "segment_length": [int(w) for w, _ in s["branches"]],
        "dilated_ratio": [int(r) for _, r in s["branches"]],
        "activation_fn": s["activation"],
        "subln": bool(s["subln"]),
        "layernorm_eps": s["layernorm_eps"],
        "xpos_rel_pos": bool(s["xpos"]),
        "xpos_scale_base": s["xpos_scale_base"],
        "no_scale_embedding": not s["scale_embedding"],
        "share_decoder_input_output_embed": bool(s["tied"]) and s["model_type"] != "longnet_encoder",
        "layernorm_embedding": False,
    })
    if s["model_type"] == "longnet_encoder":
        cfg.update({"no_output_layer": True, "normalize_output": True})
    if s["model_type"] == "longnet_encoder_decoder":
        cfg.update({"share_all_embeddings": False, "normalize_output": True})
    cfg.update({"bos_id": 256, "eos_id": 257, "pad_id": 258,
                "tokenizer": {"type": "byte", "byte_offset": 0, "add_bos": True, "add_eos": False},
                "torch_dtype": s["torch_dtype"]})
    return cfg


def randomize(model, seed, scale_embedding=True):
    """Realistic random weights (see the module docstring). Buffers (xpos.scale) keep their defaults."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                std = p.shape[1] ** -0.5 if scale_embedding else 1.0
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * p.shape[1] ** -0.5)
            elif "norm" in name or "_ln" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * (2 * torch.rand(p.shape, generator=gen, dtype=torch.float64) - 1))
                else:
                    p.copy_(0.05 * (2 * torch.rand(p.shape, generator=gen, dtype=torch.float64) - 1))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen, dtype=torch.float64))


def build_model(**spec):
    """A random LongNetModel (float64 parameters) for the spec, without writing anything."""
    s = full_spec(spec)
    cfg = lt.LongNetConfig(make_config(s))
    model = lt.LongNetModel(cfg).double()
    randomize(model, s["seed"], s["scale_embedding"])
    return model


def make_test_model(out_dir, **spec):
    """Writes the model directory; returns the LongNetModel whose weights were written (before the cast
    to torch_dtype: load the directory to get exactly the stored values)."""
    model = build_model(**spec)
    lt.save_model(model, out_dir)
    return model


def parse_branches(text):
    """"16:1,32:2" -> [(16, 1), (32, 2)]."""
    out = []
    for part in text.split(","):
        w, r = part.split(":")
        out.append((int(w), int(r)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = default_spec()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model-type", default=d["model_type"], choices=lt.MODEL_TYPES)
    ap.add_argument("--vocab", type=int, default=d["vocab_size"])
    ap.add_argument("--embed-dim", type=int, default=d["embed_dim"])
    ap.add_argument("--heads", type=int, default=d["heads"])
    ap.add_argument("--ffn", type=int, default=d["ffn_dim"])
    ap.add_argument("--layers", type=int, default=d["layers"])
    ap.add_argument("--branches", default="16:1,32:2", help="w:r pairs, comma separated")
    ap.add_argument("--no-xpos", action="store_true")
    ap.add_argument("--no-subln", action="store_true")
    ap.add_argument("--activation", default="gelu", choices=["gelu", "relu"])
    ap.add_argument("--untied", action="store_true", help="store output_projection.weight")
    ap.add_argument("--no-scale-embedding", action="store_true")
    ap.add_argument("--dtype", default="float32", choices=list(lt.DTYPES))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    make_test_model(a.out, model_type=a.model_type, vocab_size=a.vocab, embed_dim=a.embed_dim, heads=a.heads,
                    ffn_dim=a.ffn, layers=a.layers, branches=parse_branches(a.branches), xpos=not a.no_xpos,
                    subln=not a.no_subln, activation=a.activation, tied=not a.untied,
                    scale_embedding=not a.no_scale_embedding, torch_dtype=a.dtype, seed=a.seed)
    print(a.out)


if __name__ == "__main__":
    main()
