#!/usr/bin/env python3
"""Converts a torchscale LongNet checkpoint into a model directory (../shared/design/MODEL_FORMAT.md).

    /usr/bin/python3 tools/convert_torchscale.py --checkpoint model.pt [--args args.json] --out DIR
        [--model-type longnet_decoder|longnet_encoder|longnet_encoder_decoder] [--dtype float32|float16|bfloat16]
        [--bos-id 256 --eos-id 257 --pad-id 258] [--tokenizer '{"type":"byte",...}'] [--tokenizer-file F]
        [--drop-output-layer]

The checkpoint is `torch.save` of a LongNetDecoder / LongNetEncoder (or torchscale EncoderDecoder) state_dict,
or of {"model": state_dict, "args": {...}} (args as a dict or an argparse Namespace). The arguments use
torchscale's DecoderConfig / EncoderConfig / EncoderDecoderConfig names; an absent argument takes
torchscale's default (note: torchscale's no_scale_embedding defaults to True, subln to True).
segment_length / dilated_ratio may be strings such as "[2048,4096]" (torchscale evals them; here they are
parsed as integer lists, never evaluated).

Tensor names are kept as they are (the contract uses torchscale's names). What a real torchscale checkpoint
holds beyond the contract is handled explicitly:
* `output_projection.weight` when share_decoder_input_output_embed is on: torchscale ties it to
  embed_tokens.weight, so state_dict() has both; it must equal the embedding and is dropped.
* an encoder's `output_projection.weight` (torchscale builds one unless no_output_layer): the contract's
  encoder outputs final-LN hidden states, so it is refused unless --drop-output-layer.
* a uniform `decoder.` / `encoder.` prefix on a decoder-only / encoder-only checkpoint (fairseq wrappers)
  is stripped.
Refused, with the key or argument named: post-LN (normalize_before false, deepnorm), non-zero dropouts,
MoE, relative position buckets, multiway, layernorm_embedding, share_all_embeddings, unknown arguments,
unknown / missing tensors, wrong shapes, mixed dtypes.
"""

import argparse
import json
import os
import re
import shutil
import sys

try:
    import torch
except ImportError as e:  # a pyenv or venv python3 may shadow Debian's, which has torch
    raise SystemExit(f"{e}: run this with Debian's /usr/bin/python3")

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import longnet_torch as lt  # noqa: E402


class ConversionError(Exception):
    """A checkpoint or argument the contract cannot represent; the message says which and why."""


# torchscale's defaults for the arguments that shape the model (architecture/config.py).
TORCHSCALE_DEFAULTS = {
    "activation_fn": "gelu", "dropout": 0.0, "drop_path_rate": 0.0, "attention_dropout": 0.0,
    "activation_dropout": 0.0, "no_scale_embedding": True, "layernorm_embedding": False, "moe_freq": 0,
    "rel_pos_buckets": 0, "max_rel_pos": 0, "deepnorm": False, "subln": True, "multiway": False,
    "share_decoder_input_output_embed": False, "share_all_embeddings": False, "no_output_layer": False,
    "normalize_output": True, "layernorm_eps": 1e-5, "xpos_rel_pos": False, "xpos_scale_base": 512,
    "segment_length": None, "dilated_ratio": None, "vocab_size": -1,
    "decoder_normalize_before": True, "encoder_normalize_before": True,
}
STACK_ARGS = ("embed_dim", "attention_heads", "ffn_embed_dim", "layers")
# Arguments that only concern training, distribution, kernels or other model families: accepted, unused.
IGNORED_ARGS = {
    "checkpoint_activations", "fsdp", "ddp_rank", "bert_init", "flash_attention", "seq_parallel",
    "max_source_positions", "max_target_positions", "img_size", "patch_size", "in_chans",
    "moe_top1_expert", "moe_expert_count", "moe_gating_use_fp32", "moe_eval_capacity_token_fraction",
    "moe_second_expert_policy", "moe_normalize_gate_prob_before_dropping", "use_xmoe",
    "share_encoder_input_output_embed",
}
KNOWN_ARGS = (set(TORCHSCALE_DEFAULTS) | IGNORED_ARGS
              | {"decoder_" + k for k in STACK_ARGS} | {"encoder_" + k for k in STACK_ARGS})

_INT_LIST = re.compile(r"^\s*[\[(]\s*(\d+\s*(,\s*\d+\s*)*)?,?\s*[\])]\s*$")


def parse_int_list(name, value):
    """torchscale's "[2048,4096]" (or a real list) -> [2048, 4096], without evaluating anything."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str) and _INT_LIST.match(value):
        items = [int(x) for x in re.findall(r"\d+", value)]
    else:
        raise ConversionError(f"argument '{name}' = {value!r} is not a list of integers like \"[2048,4096]\"")
    if not items or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in items):
        raise ConversionError(f"argument '{name}' = {value!r} must be a non-empty list of integers >= 1")
    return items


def load_checkpoint(path, args_path):
    """(state_dict, args dict). Args come from --args (JSON) or from the checkpoint's "args"."""
    obj = torch.load(path, map_location="cpu")
    args = None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        state, args = obj["model"], obj.get("args")
    elif isinstance(obj, dict):
        state = obj
    else:
        raise ConversionError(f"{path}: expected a state_dict or {{'model': ..., 'args': ...}}, got {type(obj)}")
    if args_path:
        with open(args_path) as f:
            args = json.load(f)
    if args is None:
        raise ConversionError(f"{path}: no 'args' in the checkpoint; pass --args ARGS.json")
    if not isinstance(args, dict):
        args = vars(args)  # argparse.Namespace
    for k, v in state.items():
        if not torch.is_tensor(v):
            raise ConversionError(f"{path}: entry '{k}' is not a tensor ({type(v).__name__})")
    return state, dict(args)


def infer_model_type(args):
    has_dec = any(k.startswith("decoder_") and k != "decoder_normalize_before" for k in args)
    has_enc = any(k.startswith("encoder_") and k != "encoder_normalize_before" for k in args)
    if has_dec and has_enc:
        return "longnet_encoder_decoder"
    if has_dec:
        return "longnet_decoder"
    if has_enc:
        return "longnet_encoder"
    raise ConversionError("cannot tell the model type from the arguments (no decoder_* or encoder_* sizes); "
                          "pass --model-type")


def build_config(args, model_type, dtype, ids, tokenizer):
    """config.json of the contract from torchscale arguments; refuses what the engine does not support."""
    unknown = sorted(k for k in args if k not in KNOWN_ARGS)
    if unknown:
        raise ConversionError(f"unknown torchscale arguments {unknown}")
    a = dict(TORCHSCALE_DEFAULTS, **{k: v for k, v in args.items() if v is not None})
    stacks = {"longnet_decoder": ["decoder"], "longnet_encoder": ["encoder"],
              "longnet_encoder_decoder": ["encoder", "decoder"]}[model_type]
    for key in ("dropout", "drop_path_rate", "attention_dropout", "activation_dropout"):
        if float(a[key]) != 0.0:
            raise ConversionError(f"argument '{key}' = {a[key]!r}: dropouts must be 0 (inference engine)")
    if a["deepnorm"]:
        raise ConversionError("argument 'deepnorm' = True: DeepNorm is post-LN, which is not supported")
    for stack in stacks:
        key = stack + "_normalize_before"
        if a[key] is not True:
            raise ConversionError(f"argument '{key}' = {a[key]!r}: post-LN is not supported (pre-LN only)")
    for key, ok in (("moe_freq", 0), ("rel_pos_buckets", 0), ("max_rel_pos", 0), ("multiway", False),
                    ("layernorm_embedding", False), ("share_all_embeddings", False)):
        if a[key] != ok:
            raise ConversionError(f"argument '{key}' = {a[key]!r} is not supported (must be {ok!r})")
    if a["activation_fn"] not in ("gelu", "relu"):
        raise ConversionError(f"argument 'activation_fn' = {a['activation_fn']!r}: only gelu and relu")
    if a["normalize_output"] is not True:
        raise ConversionError(f"argument 'normalize_output' = {a['normalize_output']!r}: the final layer_norm "
                              "is required")
    if a["segment_length"] is None or a["dilated_ratio"] is None:
        raise ConversionError("arguments 'segment_length' and 'dilated_ratio' are required (a LongNet model)")
    seg = parse_int_list("segment_length", a["segment_length"])
    ratio = parse_int_list("dilated_ratio", a["dilated_ratio"])
    if len(seg) != len(ratio):
        raise ConversionError(f"segment_length {seg} and dilated_ratio {ratio} differ in length")
    if not isinstance(a["vocab_size"], int) or a["vocab_size"] < 1:
        raise ConversionError(f"argument 'vocab_size' = {a['vocab_size']!r} must be a positive integer")
    cfg = {"model_type": model_type, "vocab_size": a["vocab_size"]}
    for stack in stacks:
        for k in STACK_ARGS:
            key = f"{stack}_{k}"
            if key not in args:
                raise ConversionError(f"argument '{key}' is required (torchscale's default is not assumed)")
            cfg[key] = args[key]
        cfg[stack + "_normalize_before"] = True
    cfg.update({
        "segment_length": seg, "dilated_ratio": ratio, "activation_fn": a["activation_fn"],
        "subln": bool(a["subln"]), "layernorm_eps": float(a["layernorm_eps"]),
        "xpos_rel_pos": bool(a["xpos_rel_pos"]), "xpos_scale_base": a["xpos_scale_base"],
        "no_scale_embedding": bool(a["no_scale_embedding"]),
        "share_decoder_input_output_embed": bool(a["share_decoder_input_output_embed"])
        and model_type != "longnet_encoder",
        "layernorm_embedding": False,
    })
    if model_type == "longnet_encoder":
        cfg.update({"no_output_layer": True, "normalize_output": True})
    else:
        cfg["normalize_output"] = True
    if model_type == "longnet_encoder_decoder":
        cfg["share_all_embeddings"] = False
    cfg.update({"bos_id": ids[0], "eos_id": ids[1], "pad_id": ids[2], "tokenizer": tokenizer,
                "torch_dtype": dtype})
    return cfg


def _strip_prefix(state, model_type):
    """A decoder-only (encoder-only) checkpoint whose every key starts with "decoder." ("encoder.")."""
    prefix = {"longnet_decoder": "decoder.", "longnet_encoder": "encoder."}.get(model_type)
    if prefix and state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def convert_state(state, cfg, model, drop_output_layer):
    """The contract's tensors from a torchscale state_dict (see the module docstring for what is dropped)."""
    state = _strip_prefix(state, cfg.model_type)
    want = model.state_dict()
    stack_prefixes = {"longnet_decoder": [""], "longnet_encoder": [""],
                      "longnet_encoder_decoder": ["encoder.", "decoder."]}[cfg.model_type]
    for prefix in stack_prefixes:
        out_key, emb_key = prefix + "output_projection.weight", prefix + "embed_tokens.weight"
        if out_key in state and out_key not in want:
            is_encoder = cfg.model_type == "longnet_encoder" or prefix == "encoder."
            if is_encoder:
                if not drop_output_layer:
                    raise ConversionError(f"tensor '{out_key}': the encoder has an output layer (no_output_layer "
                                          "false); the contract's encoder outputs hidden states. Pass "
                                          "--drop-output-layer to drop it")
            elif emb_key in state and not torch.equal(state[out_key], state[emb_key]):
                raise ConversionError(f"tensor '{out_key}' differs from '{emb_key}' although "
                                      "share_decoder_input_output_embed is true")
            del state[out_key]
    for key in want:
        if key.endswith("xpos.scale") and key not in state:
            state[key] = want[key]  # older checkpoints without the buffer: torchscale's default values
    missing = [k for k in want if k not in state]
    unexpected = sorted(k for k in state if k not in want)
    if missing:
        raise ConversionError(f"missing tensors {missing}")
    if unexpected:
        raise ConversionError(f"unknown tensors {unexpected}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ConversionError(f"tensor '{k}' has shape {list(v.shape)}, expected {list(want[k].shape)}")
    return state


def stored_dtype(state, requested):
    """The dtype name to store: --dtype, else the checkpoint's own (which must be one of F32/F16/BF16)."""
    if requested:
        return requested
    names = {v: k for k, v in lt.DTYPES.items()}
    kinds = {t.dtype for k, t in state.items() if not k.endswith("xpos.scale")}
    if len(kinds) != 1 or next(iter(kinds)) not in names:
        raise ConversionError(f"tensors have dtypes {sorted(map(str, kinds))}: pass --dtype to choose one")
    return names[next(iter(kinds))]


def convert(checkpoint, out_dir, args_path=None, model_type=None, dtype=None, ids=(256, 257, 258),
            tokenizer=None, tokenizer_file=None, drop_output_layer=False):
    """Writes the model directory; returns its LongNetConfig."""
    state, args = load_checkpoint(checkpoint, args_path)
    model_type = model_type or infer_model_type(args)
    tokenizer = tokenizer or {"type": "byte", "byte_offset": 0, "add_bos": True, "add_eos": False}
    cfg_dict = build_config(args, model_type, "float32", list(ids), tokenizer)
    try:
        cfg = lt.LongNetConfig(cfg_dict)
    except lt.ConfigError as e:
        raise ConversionError(str(e))
    model = lt.LongNetModel(cfg)
    tensors = convert_state(state, cfg, model, drop_output_layer)
    cfg_dict["torch_dtype"] = stored_dtype(tensors, dtype)
    cfg = lt.LongNetConfig(cfg_dict)
    torch_dtype = lt.DTYPES[cfg.torch_dtype]
    os.makedirs(out_dir, exist_ok=True)
    lt.save_safetensors({k: v.to(torch_dtype) for k, v in tensors.items()}, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
        f.write("\n")
    if tokenizer_file:
        shutil.copy(tokenizer_file, os.path.join(out_dir, os.path.basename(tokenizer_file)))
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="torch.save'd state_dict or {'model', 'args'}")
    ap.add_argument("--args", help="JSON file of torchscale arguments (else the checkpoint's 'args')")
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--model-type", choices=lt.MODEL_TYPES, help="default: from the arguments")
    ap.add_argument("--dtype", choices=list(lt.DTYPES), help="default: the checkpoint's dtype")
    ap.add_argument("--bos-id", type=int, default=256)
    ap.add_argument("--eos-id", type=int, default=257)
    ap.add_argument("--pad-id", type=int, default=258)
    ap.add_argument("--tokenizer", help="tokenizer JSON object (default: the byte tokenizer)")
    ap.add_argument("--tokenizer-file", help="file copied into the directory (named by --tokenizer's 'file')")
    ap.add_argument("--drop-output-layer", action="store_true", help="drop an encoder's output_projection")
    a = ap.parse_args()
    try:
        tokenizer = json.loads(a.tokenizer) if a.tokenizer else None
        cfg = convert(a.checkpoint, a.out, a.args, a.model_type, a.dtype, (a.bos_id, a.eos_id, a.pad_id),
                      tokenizer, a.tokenizer_file, a.drop_output_layer)
    except (ConversionError, json.JSONDecodeError) as e:
        raise SystemExit(f"convert_torchscale: {e}")
    print(f"{a.out}: {cfg.model_type}, {cfg.torch_dtype}")


if __name__ == "__main__":
    main()
