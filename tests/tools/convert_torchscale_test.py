"""Tests of tools/convert_torchscale.py: torchscale-layout checkpoints in, model directories out.

    /usr/bin/python3 tests/tools/convert_torchscale_test.py

A small model is built with tools/reference (longnet_torch.py) and saved the way torchscale saves its own:
torchscale's argument names (segment_length as the string "[8,16]"), and the state_dict as a torchscale
module produces it, i.e. with `output_projection.weight` present (tied to embed_tokens.weight) when
share_decoder_input_output_embed is on, and an encoder's output layer when no_output_layer is false. The
converted directory, loaded back, must give the same outputs as the original model.
"""

import os
import sys
import tempfile
import unittest

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import convert_torchscale as ct  # noqa: E402
import longnet_torch as lt  # noqa: E402
import make_test_model as mtm  # noqa: E402

torch.set_num_threads(1)


def torchscale_args(model_type, spec):
    """Arguments as torchscale's DecoderConfig/EncoderConfig would be given them (strings for the schedule)."""
    args = {"vocab_size": spec["vocab_size"], "activation_fn": spec["activation"], "subln": spec["subln"],
            "xpos_rel_pos": spec["xpos"], "xpos_scale_base": 512, "layernorm_eps": 1e-5,
            "no_scale_embedding": not spec["scale_embedding"], "dropout": 0.0, "attention_dropout": 0.0,
            "segment_length": "[" + ",".join(str(w) for w, _ in spec["branches"]) + "]",
            "dilated_ratio": "[" + ",".join(str(r) for _, r in spec["branches"]) + "]",
            "checkpoint_activations": False, "flash_attention": False, "max_target_positions": 1024}
    stacks = {"longnet_decoder": ["decoder"], "longnet_encoder": ["encoder"],
              "longnet_encoder_decoder": ["encoder", "decoder"]}[model_type]
    for s in stacks:
        args.update({f"{s}_embed_dim": spec["embed_dim"], f"{s}_attention_heads": spec["heads"],
                     f"{s}_ffn_embed_dim": spec["ffn_dim"], f"{s}_layers": spec["layers"],
                     f"{s}_normalize_before": True})
    if model_type != "longnet_encoder":
        args["share_decoder_input_output_embed"] = spec["tied"]
    return args


# Every attribute of torchscale's DecoderConfig (architecture/config.py) with its default, as
# `vars(DecoderConfig(...))` dumps it (its subln post-processing also sets encoder_normalize_before).
DECODER_CONFIG_DEFAULTS = {
    "decoder_embed_dim": 768, "decoder_attention_heads": 12, "decoder_ffn_embed_dim": 3072, "decoder_layers": 12,
    "decoder_normalize_before": True, "activation_fn": "gelu", "dropout": 0.0, "drop_path_rate": 0.0,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "no_scale_embedding": True, "layernorm_embedding": False,
    "moe_freq": 0, "moe_top1_expert": False, "moe_expert_count": 0, "moe_gating_use_fp32": True,
    "moe_eval_capacity_token_fraction": 0.25, "moe_second_expert_policy": "random",
    "moe_normalize_gate_prob_before_dropping": False, "use_xmoe": False, "rel_pos_buckets": 0, "max_rel_pos": 0,
    "deepnorm": False, "subln": True, "bert_init": False, "multiway": False,
    "share_decoder_input_output_embed": False, "max_target_positions": 1024, "no_output_layer": False,
    "layernorm_eps": 1e-5, "vocab_size": -1, "checkpoint_activations": False, "fsdp": False, "ddp_rank": 0,
    "xpos_rel_pos": False, "xpos_scale_base": 512, "flash_attention": False, "segment_length": None,
    "dilated_ratio": None, "seq_parallel": False, "encoder_normalize_before": True,
}


def torchscale_state(model, model_type, tied, encoder_output_layer=False):
    """The state_dict a torchscale module of the same architecture has (extras included)."""
    state = dict(model.state_dict())
    prefix = {"longnet_decoder": "", "longnet_encoder_decoder": "decoder."}.get(model_type)
    if prefix is not None and tied:
        state[prefix + "output_projection.weight"] = state[prefix + "embed_tokens.weight"]
    if encoder_output_layer:
        state["output_projection.weight"] = torch.randn(model.cfg.vocab_size, model.cfg.encoder.embed_dim)
    return state


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def _roundtrip(self, model_type, **over):
        spec = dict(mtm.default_spec(), model_type=model_type, branches=[(8, 1), (16, 2)], **over)
        model = mtm.build_model(**spec).float()
        ckpt = os.path.join(self.dir, "ckpt.pt")
        torch.save({"model": torchscale_state(model, model_type, spec["tied"]),
                    "args": torchscale_args(model_type, spec)}, ckpt)
        out = os.path.join(self.dir, "converted")
        ct.convert(ckpt, out)
        loaded = lt.load_model(out, torch.float32)
        self.assertEqual(loaded.cfg.branches, [(8, 1), (16, 2)])
        self.assertEqual(loaded.cfg.torch_dtype, "float32")
        seqs = [[256, 1, 2, 3, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54], [256, 7, 9]]
        src = [[3, 4, 5, 6, 7, 8, 9, 10, 11], [1]] if model_type == "longnet_encoder_decoder" else None
        with torch.no_grad():
            want = model.forward_ragged(seqs, src)
            got = loaded.forward_ragged(seqs, src)
        for w, g in zip(want, got):
            self.assertTrue(torch.equal(w, g), f"max diff {(w - g).abs().max().item()}")
        return out

    def test_decoder_tied(self):
        out = self._roundtrip("longnet_decoder", tied=True)
        keys = lt.load_safetensors(os.path.join(out, "model.safetensors")).keys()
        self.assertNotIn("output_projection.weight", keys)  # torchscale's tied duplicate is dropped

    def test_decoder_untied_relu_no_xpos(self):
        out = self._roundtrip("longnet_decoder", tied=False, activation="relu", xpos=False, subln=False)
        self.assertIn("output_projection.weight", lt.load_safetensors(os.path.join(out, "model.safetensors")))

    def test_encoder(self):
        self._roundtrip("longnet_encoder", tied=False)

    def test_encoder_decoder(self):
        self._roundtrip("longnet_encoder_decoder", tied=True)

    def test_plain_state_dict_with_args_file_and_prefix(self):
        """A bare state_dict (fairseq-style "decoder." prefix) with the arguments in a JSON file, bf16."""
        spec = dict(mtm.default_spec(), branches=[(8, 1), (16, 2)])
        model = mtm.build_model(**spec).to(torch.bfloat16)
        state = {"decoder." + k: v for k, v in torchscale_state(model, "longnet_decoder", True).items()}
        ckpt, args_file = os.path.join(self.dir, "sd.pt"), os.path.join(self.dir, "args.json")
        torch.save(state, ckpt)
        with open(args_file, "w") as f:
            import json
            json.dump(torchscale_args("longnet_decoder", spec), f)
        out = os.path.join(self.dir, "bf16")
        cfg = ct.convert(ckpt, out, args_path=args_file)
        self.assertEqual(cfg.torch_dtype, "bfloat16")
        stored = lt.load_safetensors(os.path.join(out, "model.safetensors"))
        self.assertTrue(torch.equal(stored["embed_tokens.weight"], model.state_dict()["embed_tokens.weight"]))

    def test_full_decoder_config_dump(self):
        """All of DecoderConfig's attributes (as vars() of a real one gives them) are understood."""
        spec = dict(mtm.default_spec(), branches=[(8, 1), (16, 2)], scale_embedding=False)
        model = mtm.build_model(**spec).float()
        args = dict(DECODER_CONFIG_DEFAULTS, **torchscale_args("longnet_decoder", spec))
        ckpt = os.path.join(self.dir, "full.pt")
        torch.save({"model": torchscale_state(model, "longnet_decoder", True), "args": args}, ckpt)
        cfg = ct.convert(ckpt, os.path.join(self.dir, "full"))
        self.assertEqual(cfg.model_type, "longnet_decoder")
        self.assertTrue(cfg.no_scale_embedding)

    def _expect_refusal(self, pattern, model_type="longnet_decoder", args_over=None, state_fn=None, **kw):
        spec = dict(mtm.default_spec(), model_type=model_type, branches=[(8, 1), (16, 2)])
        model = mtm.build_model(**spec).float()
        state = torchscale_state(model, model_type, spec["tied"] and model_type != "longnet_encoder")
        if state_fn:
            state = state_fn(state)
        args = dict(torchscale_args(model_type, spec), **(args_over or {}))
        ckpt = os.path.join(self.dir, "bad.pt")
        torch.save({"model": state, "args": args}, ckpt)
        with self.assertRaisesRegex(ct.ConversionError, pattern):
            ct.convert(ckpt, os.path.join(self.dir, "bad"), **kw)

    def test_refuses_post_ln(self):
        self._expect_refusal("decoder_normalize_before.*post-LN", args_over={"decoder_normalize_before": False})
        self._expect_refusal("deepnorm", args_over={"deepnorm": True})

    def test_refuses_dropout(self):
        self._expect_refusal("attention_dropout.*dropouts must be 0", args_over={"attention_dropout": 0.1})

    def test_refuses_unknown_argument(self):
        self._expect_refusal(r"unknown torchscale arguments \['mystery_knob'\]", args_over={"mystery_knob": 3})

    def test_refuses_unknown_tensor(self):
        def add(state):
            state["layers.0.self_attn.mystery.weight"] = torch.zeros(3)
            return state
        self._expect_refusal(r"unknown tensors \['layers.0.self_attn.mystery.weight'\]", state_fn=add)

    def test_refuses_missing_tensor(self):
        def drop(state):
            del state["layers.1.ffn.fc2.bias"]
            return state
        self._expect_refusal(r"missing tensors \['layers.1.ffn.fc2.bias'\]", state_fn=drop)

    def test_never_evaluates_schedule(self):
        self._expect_refusal("segment_length.*not a list of integers",
                             args_over={"segment_length": "__import__('os').getcwd()"})

    def test_refuses_untied_duplicate(self):
        def corrupt(state):
            state["output_projection.weight"] = state["output_projection.weight"] + 1
            return state
        self._expect_refusal("differs from 'embed_tokens.weight'", state_fn=corrupt)

    def test_encoder_output_layer(self):
        def add(state):
            state["output_projection.weight"] = torch.zeros(259, 32)
            return state
        self._expect_refusal("--drop-output-layer", model_type="longnet_encoder", state_fn=add)

    def test_parse_int_list(self):
        self.assertEqual(ct.parse_int_list("x", "[2048,4096]"), [2048, 4096])
        self.assertEqual(ct.parse_int_list("x", " [ 1, 2 ,3 ] "), [1, 2, 3])
        self.assertEqual(ct.parse_int_list("x", "(16384, 6)"), [16384, 6])
        self.assertEqual(ct.parse_int_list("x", [5]), [5])
        for bad in ("[]", "[1.5]", "[-1]", "2048", "[1]+[2]", ""):
            with self.assertRaises(ct.ConversionError):
                ct.parse_int_list("x", bad)


if __name__ == "__main__":
    unittest.main()
