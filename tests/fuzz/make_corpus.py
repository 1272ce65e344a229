#!/usr/bin/env python3
"""Writes the seed corpus of model_loader_fuzz (tests/fuzz/corpus/): a few small valid inputs per target.

Each file is one fuzzer input: byte 0 picks the target (0 config.json, 1 safetensors file, 2 config.json + NUL +
safetensors file), the rest is its input. Standard library only, so it runs anywhere:
    python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def f16(x):
    return struct.pack("<e", x)


def bf16(x):
    return struct.pack("<f", x)[2:]  # the top half of a float32 (exact for the values used here)


def pack(values, dtype):
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    return b"".join((f16 if dtype == "F16" else bf16)(v) for v in values)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape); values are a fixed ramp. Written like the official writer."""
    header, data = {}, b""
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        blob = pack([((i % 9) - 4) / 4 for i in range(n)], dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tiny_config(model_type, **extra):
    config = {"model_type": model_type, "vocab_size": 4, "segment_length": [2, 4], "dilated_ratio": [1, 2],
              "subln": False, "share_decoder_input_output_embed": True, "bos_id": 0, "eos_id": 1, "pad_id": 2,
              "tokenizer": {"type": "fuzz", "file": "tok.model"}}
    for stack in ("encoder", "decoder"):
        if (stack == "encoder") != (model_type == "longnet_decoder") or model_type == "longnet_encoder_decoder":
            config.update({f"{stack}_embed_dim": 2, f"{stack}_attention_heads": 1, f"{stack}_ffn_embed_dim": 2,
                           f"{stack}_layers": 1})
    config.update(extra)
    return config


def stack_tensors(prefix, e, f, v, cross, xpos):
    names = [(prefix + "embed_tokens.weight", [v, e])]
    layer = prefix + "layers.0."
    attns = ["self_attn"] + (["encoder_attn"] if cross else [])
    for attn in attns:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            names += [(f"{layer}{attn}.{proj}.weight", [e, e]), (f"{layer}{attn}.{proj}.bias", [e])]
        names += [(f"{layer}{attn}_layer_norm.weight", [e]), (f"{layer}{attn}_layer_norm.bias", [e])]
    if xpos:
        names.append((f"{layer}self_attn.xpos.scale", [e // 2]))
    names += [(layer + "ffn.fc1.weight", [f, e]), (layer + "ffn.fc1.bias", [f]),
              (layer + "ffn.fc2.weight", [e, f]), (layer + "ffn.fc2.bias", [e]),
              (layer + "final_layer_norm.weight", [e]), (layer + "final_layer_norm.bias", [e]),
              (prefix + "layer_norm.weight", [e]), (prefix + "layer_norm.bias", [e])]
    return names


def write(name, target, payload):
    with open(os.path.join(CORPUS, name), "wb") as out:
        out.write(bytes([target]) + payload)


def main():
    os.makedirs(CORPUS, exist_ok=True)
    full = {"model_type": "longnet_decoder", "vocab_size": 260, "decoder_embed_dim": 16,
            "decoder_attention_heads": 4, "decoder_ffn_embed_dim": 32, "decoder_layers": 2,
            "segment_length": [2048, 4096], "dilated_ratio": [1, 2], "activation_fn": "gelu", "subln": True,
            "decoder_normalize_before": True, "layernorm_eps": 1e-5, "xpos_rel_pos": True, "xpos_scale_base": 512,
            "no_scale_embedding": False, "share_decoder_input_output_embed": False, "layernorm_embedding": False,
            "dropout": 0.0, "attention_dropout": 0.0, "drop_path_rate": 0.0, "flash_attention": False,
            "bos_id": 256, "eos_id": 257, "pad_id": 258,
            "tokenizer": {"type": "byte", "byte_offset": 0, "add_bos": True, "add_eos": False},
            "torch_dtype": "bfloat16"}
    write("config_decoder_full", 0, json.dumps(full, indent=1).encode())
    write("config_encoder", 0, json.dumps(tiny_config("longnet_encoder", no_output_layer=True)).encode())
    write("config_encoder_decoder", 0, json.dumps(tiny_config("longnet_encoder_decoder")).encode())
    write("config_tiktoken", 0, json.dumps(tiny_config(
        "longnet_decoder", tokenizer={"type": "tiktoken", "file": "cl100k_base.tiktoken", "pattern": "cl100k",
                                      "special_tokens": {"<|endoftext|>": 3}})).encode())

    write("safetensors_mixed", 1, safetensors(
        [("a", "F32", [2, 3]), ("b", "F16", [4]), ("c", "BF16", [1, 1, 2]), ("empty", "F32", [0])],
        metadata={"format": "pt"}))
    write("safetensors_empty", 1, safetensors([]))

    for model_type, dtype in (("longnet_decoder", "F32"), ("longnet_encoder", "F16"),
                              ("longnet_encoder_decoder", "BF16")):
        torch_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
        xpos = model_type == "longnet_decoder"
        config = tiny_config(model_type, torch_dtype=torch_dtype, xpos_rel_pos=xpos)
        if model_type == "longnet_encoder_decoder":
            names = stack_tensors("encoder.", 2, 2, 4, False, xpos) + stack_tensors("decoder.", 2, 2, 4, True, xpos)
        else:
            names = stack_tensors("", 2, 2, 4, False, xpos)
        tensors = [(name, dtype, shape) for name, shape in names]
        write(f"both_{model_type}_{dtype}", 2,
              json.dumps(config).encode() + b"\0" + safetensors(tensors))


if __name__ == "__main__":
    main()
