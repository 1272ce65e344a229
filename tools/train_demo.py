#!/usr/bin/env python3
"""Trains the demo LongNet decoder (byte level) on the King James Bible and writes models/demo/.

    /usr/bin/python3 tools/train_demo.py --trial              # a few steps: measure tokens/s, write nothing
    nohup /usr/bin/python3 tools/train_demo.py --train > build/demo_train/nohup.out 2>&1 &
    /usr/bin/python3 tools/train_demo.py --finish             # after training: bpb, samples, README.md

Data: Debian's `bible-kjv-text` package stores the text in a compressed, indexed form
(/usr/lib/bible.data) that its reader `bible` (package `bible-kjv`) decodes. The plain text is
    bible -f Gen1:1-Rev22:21 < /dev/null
(-f turns pretty-printing off: one verse per line, preceded by its reference, e.g. "Ge1:1 In the beginning
God created the heaven and the earth."). The last 5% of its bytes are held out (never trained on).

Training uses tools/reference/longnet_torch.py in float32 (the same code that is the float64 reference),
AdamW with linear warmup and a cosine decay driven by *elapsed wall time*: training stops after a fixed
wall-clock budget, not a step count. The model directory is rewritten every few minutes, so a stopped run
loses little; --resume continues from the last checkpoint (state in build/demo_train/).
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

# On a machine shared with other CPU-heavy work, OpenMP threads that spin while waiting at barriers lose
# their time slices to each other: measured here, training ran 5x faster with passive waiting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # a pyenv or venv python3 may shadow Debian's, which has torch
    raise SystemExit(f"{e}: run this with Debian's /usr/bin/python3")

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import longnet_torch as lt  # noqa: E402
import score_reference  # noqa: E402

MODEL_DIR = os.path.join(REPO, "models", "demo")
WORK_DIR = os.path.join(REPO, "build", "demo_train")  # checkpoints, log, extracted text: not committed
HEAD_FILE = os.path.join(REPO, "tests", "data", "demo", "heldout_head.txt")
HEAD_BYTES = 4096
BIBLE_CMD = ["bible", "-f", "Gen1:1-Rev22:21"]

CONFIG = {
    "model_type": "longnet_decoder",
    "vocab_size": 259,
    "decoder_embed_dim": 256,
    "decoder_attention_heads": 4,
    "decoder_ffn_embed_dim": 1024,
    "decoder_layers": 4,
    "segment_length": [128, 512, 2048],
    "dilated_ratio": [1, 2, 4],
    "activation_fn": "gelu",
    "subln": True,
    "decoder_normalize_before": True,
    "layernorm_eps": 1e-5,
    "xpos_rel_pos": True,
    "xpos_scale_base": 512,
    # sqrt(E) embedding scale with N(0, E^-1/2) init: unit-scale inputs, and the tied output projection
    # starts with O(1) logits (fairseq's convention, which torchscale follows).
    "no_scale_embedding": False,
    "share_decoder_input_output_embed": True,
    "layernorm_embedding": False,
    "share_all_embeddings": False,
    "bos_id": 256,
    "eos_id": 257,
    "pad_id": 258,
    "tokenizer": {"type": "byte", "byte_offset": 0, "add_bos": True, "add_eos": False},
    "torch_dtype": "float32",
}


# ----------------------------------------------------------------------------------------------------------
# Data


def package_version(name):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def kjv_bytes():
    """The whole KJV as plain text, from the `bible` program of package bible-kjv."""
    try:
        out = subprocess.run(BIBLE_CMD, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    except FileNotFoundError:
        raise SystemExit("`bible` not found: install the Debian packages bible-kjv and bible-kjv-text "
                         "(tools/install-deps.sh)")
    return out.stdout


def split_text(data):
    """(train, heldout): the last 5% of the bytes are held out."""
    cut = len(data) * 95 // 100
    return data[:cut], data[cut:]


def sample_batch(train, batch, seq_len, bos_id, rng):
    """(inputs, targets), each (batch, seq_len). A quarter of the rows start with bos followed by text (as
    scoring and generation do); the others are plain windows of the byte stream."""
    rows = []
    for _ in range(batch):
        start = rng.randrange(0, len(train) - seq_len - 1)
        window = list(train[start:start + seq_len + 1])
        if rng.random() < 0.25:
            window = [bos_id] + window[:seq_len]
        rows.append(window)
    t = torch.tensor(rows, dtype=torch.long)
    return t[:, :-1], t[:, 1:]


# ----------------------------------------------------------------------------------------------------------
# Model


def init_weights(model, seed):
    """Embeddings N(0, E^-1/2); linear weights Xavier-uniform, biases 0; LayerNorms 1/0."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("embed_tokens.weight"):
                p.normal_(0.0, p.shape[1] ** -0.5, generator=gen)
            elif p.dim() == 2:
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.uniform_(-bound, bound, generator=gen)
            elif "norm" in name or "_ln" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.zero_()


def lr_at(step, elapsed, args):
    """Linear warmup over `warmup` steps, then cosine from peak to peak*min_ratio over the time budget."""
    warm = min(1.0, (step + 1) / args.warmup)
    frac = min(1.0, elapsed / args.budget_s)
    cos = args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    return args.lr * warm * cos


def save_checkpoint(model, opt, state):
    """Rewrites models/demo (config + float32 safetensors) and the optimiser state, atomically enough:
    each file is written to a temporary name and renamed."""
    tmp_dir = MODEL_DIR + ".tmp"
    lt.save_model(model, tmp_dir)
    os.makedirs(MODEL_DIR, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        os.replace(os.path.join(tmp_dir, name), os.path.join(MODEL_DIR, name))
    os.rmdir(tmp_dir)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state},
               os.path.join(WORK_DIR, "train_state.pt.tmp"))
    os.replace(os.path.join(WORK_DIR, "train_state.pt.tmp"), os.path.join(WORK_DIR, "train_state.pt"))
    with open(os.path.join(WORK_DIR, "train_state.json"), "w") as f:
        json.dump(state, f, indent=2)


def train(args):
    torch.set_num_threads(args.threads)
    os.makedirs(WORK_DIR, exist_ok=True)
    data = kjv_bytes()
    train_data, heldout = split_text(data)
    cfg = lt.LongNetConfig(CONFIG)
    model = lt.LongNetModel(cfg).float()
    init_weights(model, args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    hparams = {k: getattr(args, k) for k in HPARAMS}
    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "loss_ema": None, "losses": [], "hparams": hparams}
    if args.resume and os.path.exists(os.path.join(WORK_DIR, "train_state.pt")):
        ck = torch.load(os.path.join(WORK_DIR, "train_state.pt"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
    rng = random.Random(args.seed + state["step"])
    budget = args.budget_s if not args.trial else 1e9
    log = open(os.path.join(WORK_DIR, "train.log"), "a") if not args.trial else sys.stdout
    print(f"# train {len(train_data)} bytes, heldout {len(heldout)} bytes, params "
          f"{sum(p.numel() for p in model.parameters())}, batch {args.batch}x{args.seq_len}", file=log, flush=True)
    model.train()
    t_start = time.time() - state["elapsed_s"]
    last_ckpt = time.time()
    max_steps = args.trial_steps if args.trial else None
    while True:
        elapsed = time.time() - t_start
        if elapsed >= budget or (max_steps is not None and state["step"] >= max_steps):
            break
        lr = lr_at(state["step"], elapsed, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = sample_batch(train_data, args.batch, args.seq_len, cfg.bos_id, rng)
        t0 = time.time()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        dt = time.time() - t0
        state["step"] += 1
        state["tokens"] += x.numel()
        state["elapsed_s"] = time.time() - t_start
        lv = loss.item()
        state["loss_ema"] = lv if state["loss_ema"] is None else 0.98 * state["loss_ema"] + 0.02 * lv
        if state["step"] % args.log_every == 0 or args.trial:
            state["losses"].append([state["step"], round(state["elapsed_s"], 1), lv])
            print(f"step {state['step']} t {state['elapsed_s']:.0f}s lr {lr:.2e} loss {lv:.4f} "
                  f"ema {state['loss_ema']:.4f} ({state['loss_ema'] / math.log(2):.3f} bits) "
                  f"tok/s {x.numel() / dt:.0f}", file=log, flush=True)
        if not args.trial and time.time() - last_ckpt >= args.ckpt_every_s:
            save_checkpoint(model, opt, state)
            last_ckpt = time.time()
    if not args.trial:
        state["finished"] = True
        save_checkpoint(model, opt, state)
        print(f"# done: {state['step']} steps, {state['tokens']} tokens, {state['elapsed_s']:.0f} s", file=log,
              flush=True)


# ----------------------------------------------------------------------------------------------------------
# Finish: held-out bpb, samples, model card


@torch.no_grad()
def generate(model, prompt, n_new, temperature, top_k, seed):
    """Byte-level sampling without a cache (each step reruns the prefix; fine for a few hundred bytes)."""
    gen = torch.Generator().manual_seed(seed)
    ids = score_reference.byte_ids(model.cfg, prompt)
    for _ in range(n_new):
        logits = model(torch.tensor([ids], dtype=torch.long))[0, -1, :256].to(torch.float64)
        if top_k:
            kth = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        probs = torch.softmax(logits / temperature, dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=gen)))
    return bytes(ids[1 + len(prompt):]).decode("utf-8", errors="replace")


CARD = """# LongNet demo model: byte-level King James Bible

A small LongNet decoder (dilated attention, XPOS, MAGNETO sub-LN) trained from scratch on CPU by
`tools/train_demo.py` with the reference implementation `tools/reference/longnet_torch.py` (float32).
It exists to exercise the engine end to end on real weights; it is not a good language model.

## Data
- Debian package `bible-kjv-text` {text_version} (read with the `bible` program of `bible-kjv` {prog_version}).
- Extraction: `bible -f Gen1:1-Rev22:21 < /dev/null` (pretty-printing off: one verse per line, preceded by its
  reference, e.g. `Ge1:1 In the beginning God created the heaven and the earth.`): {total} bytes, ASCII.
- Split by bytes: the first 95% ({train} bytes, Genesis to {train_end}) for training, the last 5%
  ({heldout} bytes, from {heldout_start}) held out and never trained on.
- `tests/data/demo/heldout_head.txt` is the first {head} bytes of the held-out text.

## Architecture (config.json)
longnet_decoder, byte tokenizer (ids 0-255 bytes, bos 256, eos 257, pad 258; vocab 259), embed dim 256,
4 heads (head dim 64), FFN 1024 (gelu), 4 layers, pre-LN with sub-LN, XPOS (scale base 512), tied input/output
embedding, embedding scaled by sqrt(256), dilated branches (segment, ratio) = (128, 1), (512, 2), (2048, 4).
{params} parameters, stored float32 ({size} bytes).

## Training
- Sequences of 2048 tokens (every branch sees full segments), batch {batch}, random windows of the training
  bytes; a quarter of them start with bos. Next-byte cross-entropy.
- AdamW (betas 0.9/0.98, weight decay {wd} on matrices), peak lr {lr}, {warmup} warmup steps, cosine decay to
  {min_lr} x peak over a fixed wall-clock budget of {budget_min:.0f} minutes, gradient clip {clip}.
- Machine: 2 CPU cores shared with other engineers' builds and tests, torch {torch_version},
  `torch.set_num_threads({threads})`, OMP_WAIT_POLICY=PASSIVE (spinning OpenMP threads lost most of their
  time slices on the busy machine: 5x slower).
- Result: {steps} steps, {tokens} tokens seen ({epochs:.2f} passes over the training bytes), {wall_min:.1f} min
  of training ({tok_s:.0f} tokens/s on average); final train loss {loss:.4f} nats/byte = {loss_bits:.3f}
  bits/byte (mean of the batch losses logged at steps {loss_steps}).

## Held-out bits per byte
Definition (tools/reference/score_reference.py; the C++ `longnet-run score` computes the same):
ids = [bos] + bytes as ONE sequence, bpb = sum_t -log2 p(ids[t] | ids[<t]) / n over the n bytes.
- Whole held-out text ({heldout} bytes as one sequence), float64 reference: **{bpb_all:.6f}** bits per byte
  ({bpb_all_s:.0f} s on this machine).
- `tests/data/demo/heldout_head.txt` ({head} bytes), float64 reference: **{bpb_head:.6f}** bits per byte.

## Samples
Sampling at temperature {temp}, top-k {top_k}, {n_new} new bytes, float32, seeds 1-3.
{samples}

## Reproduce
```
tools/install-deps.sh    # Debian packages, among them python3-torch, bible-kjv, bible-kjv-text
/usr/bin/python3 tools/train_demo.py --train    # {budget_min:.0f} minutes wall clock
/usr/bin/python3 tools/train_demo.py --finish   # this card, heldout_head.txt
```
Training is stopped by time, so a rerun on another machine sees a different number of steps.
"""

# Training arguments recorded in the checkpoint, so --finish describes the run that happened.
HPARAMS = ("budget_s", "batch", "seq_len", "lr", "min_lr_ratio", "warmup", "weight_decay", "clip", "seed", "threads")

PROMPTS = [b"Ge1:1 In the beginning", b"Jn3:16 For God so loved", b"Ps23:1 The LORD is my shepherd"]


def finish(args):
    torch.set_num_threads(args.threads)
    data = kjv_bytes()
    train_data, heldout = split_text(data)
    os.makedirs(os.path.dirname(HEAD_FILE), exist_ok=True)
    with open(HEAD_FILE, "wb") as f:
        f.write(heldout[:HEAD_BYTES])
    with open(os.path.join(WORK_DIR, "train_state.json")) as f:
        state = json.load(f)
    for key, value in state.get("hparams", {}).items():
        setattr(args, key, value)
    model64 = lt.load_model(MODEL_DIR, torch.float64)
    t0 = time.time()
    bpb_all = score_reference.bits_per_byte(model64, heldout)
    bpb_all_s = time.time() - t0
    bpb_head = score_reference.bits_per_byte(model64, heldout[:HEAD_BYTES])
    print(f"held-out bpb {bpb_all:.6f} ({bpb_all_s:.0f} s), head bpb {bpb_head:.6f}")
    model32 = lt.load_model(MODEL_DIR, torch.float32)
    samples = []
    for i, prompt in enumerate(PROMPTS):
        text = generate(model32, prompt, args.sample_bytes, args.temperature, args.top_k, seed=i + 1)
        samples.append(f"\nPrompt `{prompt.decode()}` (seed {i + 1}):\n```\n{prompt.decode()}{text}\n```")
    n_params = sum(p.numel() for p in model32.parameters())
    recent = state["losses"][-5:]  # [step, elapsed_s, loss] every log_every steps
    final_loss = sum(x[2] for x in recent) / len(recent)
    line_of = lambda blob: blob.split(b"\n", 1)[0].split(b" ", 1)[0].decode()  # noqa: E731
    last_line_start = train_data.rfind(b"\n", 0, len(train_data) - 1) + 1
    if train_data.endswith(b"\n"):
        heldout_start = "verse " + line_of(heldout)
    else:
        heldout_start = "the middle of verse " + line_of(train_data[last_line_start:])
    card = CARD.format(
        text_version=package_version("bible-kjv-text"), prog_version=package_version("bible-kjv"),
        total=len(data), train=len(train_data), heldout=len(heldout),
        train_end=line_of(train_data[last_line_start:]),
        heldout_start=heldout_start,
        head=HEAD_BYTES, params=n_params, size=os.path.getsize(os.path.join(MODEL_DIR, "model.safetensors")),
        batch=args.batch, wd=args.weight_decay, lr=args.lr, warmup=args.warmup, min_lr=args.min_lr_ratio,
        budget_min=args.budget_s / 60, clip=args.clip, torch_version=torch.__version__, threads=args.threads,
        steps=state["step"], tokens=state["tokens"], epochs=state["tokens"] / len(train_data),
        wall_min=state["elapsed_s"] / 60, tok_s=state["tokens"] / max(1.0, state["elapsed_s"]),
        loss=final_loss, loss_bits=final_loss / math.log(2),
        loss_steps=", ".join(str(x[0]) for x in recent),
        bpb_all=bpb_all, bpb_all_s=bpb_all_s, bpb_head=bpb_head, temp=args.temperature, top_k=args.top_k,
        n_new=args.sample_bytes, samples="\n".join(samples))
    with open(os.path.join(MODEL_DIR, "README.md"), "w") as f:
        f.write(card)
    print(card)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--trial", action="store_true", help="a few steps, print tokens/s, write nothing")
    mode.add_argument("--train", action="store_true", help="train for --budget-s seconds")
    mode.add_argument("--finish", action="store_true", help="held-out bpb, samples, README.md")
    ap.add_argument("--resume", action="store_true", help="continue from build/demo_train/train_state.pt")
    ap.add_argument("--budget-s", type=float, default=50 * 60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trial-steps", type=int, default=5)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-every-s", type=float, default=300)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--sample-bytes", type=int, default=300)
    args = ap.parse_args()
    if args.finish:
        finish(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
