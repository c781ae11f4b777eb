#!/usr/bin/env python3
"""Golden tensors for a C++ port of Wan2.1's umT5-XXL text encoder (the
T5Encoder of wan/modules/t5.py), computed with the OFFICIAL Wan2.1 code.

The official source is not part of this repository. Give the script the path
of a copy of the official `wan/` folder (github.com/Wan-Video/Wan2.1, the
commit in PINNED_COMMIT below); it loads `wan/modules/t5.py` from there at
run time, without running `wan/__init__.py`. See docs/wan-t5-reference.md.

Narrow encoder of the released structure (the committed goldens):

    git clone https://github.com/Wan-Video/Wan2.1 wan21
    git -C wan21 checkout 9737cba9c1c3c4d04b33fcad41c111989865d315
    python3 tools/wan/make_t5_goldens.py --wan-src wan21/wan --out tests/data/wan

Released widths (vocab 256384, dim 4096, 24 blocks, 5.7B parameters), random
bf16-valued weights, one 20-token input; the weights (11.4 GB, bf16, released
names) go to --weights-out for the C++ side, the goldens to --out:

    python3 tools/wan/make_t5_goldens.py --wan-src wan21/wan --out out \
        --preset umt5-xxl --weights-out /tmp/umt5_xxl_random.safetensors

The release's widths at a smaller depth and vocabulary (e.g. --num-layers 4 --vocab 32128
--prefix umt5_xxl_4) fit a CPU with 24 GB.

Needs: torch (CUDA used when present), numpy; safetensors when installed
(else the built-in writer of tools/wan/make_dit_goldens.py).
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_dit_goldens import (_load_file, _module,  # noqa: E402
                              load_safetensors, rel_err, save_safetensors)

PINNED_REPO = "Wan-Video/Wan2.1"
PINNED_COMMIT = "9737cba9c1c3c4d04b33fcad41c111989865d315"
PINNED_SHA256 = {
    "modules/t5.py":
        "8b0cebf3192c542f92a344255a06c203df3ba24160715899a055cc8de0cd930f",
}

# umt5_xxl()'s arguments as the encoder sees them (_t5 with encoder_only:
# vocab_size -> vocab, encoder_layers -> num_layers, decoder_layers dropped).
PRESETS = {
    # dim_attn != dim and dim_ffn != 2.5 dim, so that no width can stand in
    # for another in the C++ loader.
    "narrow": dict(vocab=320, dim=64, dim_attn=48, dim_ffn=96, num_heads=4,
                   num_layers=3, num_buckets=32, prefix="tiny_t5",
                   lengths=[1, 7, 20, 45, 200], block_length=20),
    "umt5-xxl": dict(vocab=256384, dim=4096, dim_attn=4096, dim_ffn=10240,
                     num_heads=64, num_layers=24, num_buckets=32,
                     prefix="umt5_xxl", lengths=[20], block_length=20),
}
TEXT_LEN = 512  # Wan's text_len: the tokenizer pads every prompt to it
PAD_ID, EOS_ID = 0, 1  # umT5's pad and end-of-sequence ids


class _TokenizerStandIn:
    """t5.py imports HuggingfaceTokenizer (its module needs ftfy, regex and
    transformers); the goldens give ids directly, so the stand-in only
    returns the ids and mask it was made with, as the real one's
    (ids, mask) = tokenizer(texts, return_mask=True, ...) would."""

    def __init__(self, ids=None, mask=None, **kwargs):
        self.ids, self.mask = ids, mask

    def __call__(self, texts, return_mask=False, add_special_tokens=True):
        assert return_mask and add_special_tokens
        return self.ids, self.mask


def load_official(wan_src):
    """Imports wan/modules/t5.py as wan.modules.t5 with stand-in parent
    packages and a stand-in wan.modules.tokenizers (always, so every run
    takes the same path). T5EncoderModel's default argument
    torch.cuda.current_device() is evaluated at import; without CUDA it is
    answered 'cpu' during the import only."""
    _module("wan")
    _module("wan.modules")
    _module("wan.modules.tokenizers", HuggingfaceTokenizer=_TokenizerStandIn)
    saved = torch.cuda.current_device
    if not torch.cuda.is_available():
        torch.cuda.current_device = lambda: "cpu"
    try:
        mod = _load_file("wan.modules.t5",
                         os.path.join(wan_src, "modules", "t5.py"))
    finally:
        torch.cuda.current_device = saved
    hashes = {}
    for rel in PINNED_SHA256:
        with open(os.path.join(wan_src, rel), "rb") as f:
            hashes["wan/" + rel] = hashlib.sha256(f.read()).hexdigest()
    return mod, hashes


def build_encoder(t5, cfg, device):
    """The encoder as umt5_xxl(encoder_only=True, ...) builds it. PyTorch 1.x
    lacks the `with torch.device(...)` that _t5 uses; there the same class
    is built with the same arguments and moved, which is what _t5 does."""
    kw = dict(vocab_size=cfg["vocab"], dim=cfg["dim"],
              dim_attn=cfg["dim_attn"], dim_ffn=cfg["dim_ffn"],
              num_heads=cfg["num_heads"], encoder_layers=cfg["num_layers"],
              decoder_layers=cfg["num_layers"],
              num_buckets=cfg["num_buckets"], shared_pos=False, dropout=0.1)
    if hasattr(torch.device, "__enter__"):
        model = t5.umt5_xxl(encoder_only=True, return_tokenizer=False,
                            dtype=torch.float32, device=device, **kw)
        how = "umt5_xxl(encoder_only=True)"
    else:
        model = t5.T5Encoder(vocab=kw["vocab_size"], dim=kw["dim"],
                             dim_attn=kw["dim_attn"], dim_ffn=kw["dim_ffn"],
                             num_heads=kw["num_heads"],
                             num_layers=kw["encoder_layers"],
                             num_buckets=kw["num_buckets"], shared_pos=False,
                             dropout=0.1).to(dtype=torch.float32,
                                             device=device)
        how = "T5Encoder (PyTorch < 2)"
    assert type(model).__name__ == "T5Encoder"
    return model.eval().requires_grad_(False), kw, how


def randomise_weights(model, seed, bf16):
    """Replaces EVERY parameter with seeded random values (CPU generator
    torch.Generator().manual_seed(seed), one torch.randn draw per parameter
    in named_parameters() order, float32; the official init sets the norms
    to one and the position biases near zero, which would hide bugs):
    token embedding N(0, 1); q N(0, 1/(dim * head_dim)) (T5 has no 1/sqrt(d)
    in attention: the scale lives in q, as the official init has it), k, v,
    gate, fc1 N(0, 1/dim), o N(0, 1/dim_attn), fc2 N(0, 1/dim_ffn); norm
    weights 1 + 0.2 N(0, 1); relative position tables N(0, 1). With bf16
    each value is rounded to bf16 (computation stays float32)."""
    gen = torch.Generator().manual_seed(seed)
    head_dim = model.dim_attn // model.num_heads
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(tuple(p.shape), generator=gen,
                            dtype=torch.float32)
            if name == "token_embedding.weight" or \
                    name.endswith("pos_embedding.embedding.weight"):
                val = r
            elif name.endswith("norm1.weight") or \
                    name.endswith("norm2.weight") or name == "norm.weight":
                val = 1.0 + 0.2 * r
            elif name.endswith("attn.q.weight"):
                val = r / math.sqrt(p.shape[1] * head_dim)
            else:
                assert p.dim() == 2 and name.endswith(".weight"), name
                val = r / math.sqrt(p.shape[1])
            if bf16:
                val = val.to(torch.bfloat16).float()
            p.copy_(val.to(p.device))
            del r, val


def weights_digest(model, bf16):
    """sha256 over the bf16 bytes (bf16-valued weights: half the bytes to
    hash) or the float32 bytes of every parameter in named order, plus
    (sum, sum |w|) per tensor."""
    h = hashlib.sha256()
    per = {}
    for name, p in model.named_parameters():
        t = p.detach()
        h.update(name.encode())
        h.update((t.to(torch.bfloat16).view(torch.int16) if bf16 else
                  t.float()).cpu().contiguous().numpy().tobytes())
        per[name] = [float(t.double().sum()), float(t.double().abs().sum())]
    key = "sha256_bf16_named_order" if bf16 else "sha256_float32_named_order"
    return {key: h.hexdigest(), "per_tensor": per}


# --------------------------------------------------------------------------
# An independent float64 re-implementation, written from the model's
# description in docs/wan-t5-reference.md (NOT a copy of the official
# code): used to cross-check the official outputs.
# --------------------------------------------------------------------------


def independent_bucket(rel, num_buckets, max_dist=128):
    """Bidirectional T5 bucket of rel = key - query, in float32 as the
    official code computes the logarithmic part."""
    half = num_buckets // 2
    exact = half // 2
    out = []
    for r in rel.tolist():
        b = half if r > 0 else 0
        a = abs(r)
        if a < exact:
            out.append(b + a)
            continue
        x = torch.tensor(a, dtype=torch.float32) / exact
        x = torch.log(x) / math.log(max_dist / exact) * (half - exact)
        out.append(b + min(exact + int(x.item()), half - 1))
    return torch.tensor(out, dtype=torch.int64)


def independent_encode(W, cfg, ids, taps=None):
    """States of the real tokens `ids` (no padding), float64."""
    def w(k):  # float64 on the weights' device, one tensor at a time
        return W[k].double()

    H = cfg["num_heads"]
    dev = W["norm.weight"].device
    ids = ids.to(dev)
    L = ids.numel()
    pos = torch.arange(L)
    rel = (pos[None, :] - pos[:, None]).reshape(-1)
    uniq = torch.unique(rel)
    bmap = dict(zip(uniq.tolist(),
                    independent_bucket(uniq, cfg["num_buckets"]).tolist()))
    bucket = torch.tensor([bmap[r] for r in rel.tolist()]).reshape(L, L) \
        .to(dev)

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w

    x = W["token_embedding.weight"][ids].double()
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        n = rms(x, w(p + "norm1.weight"))
        q, k, v = (n @ w(p + f"attn.{m}.weight").T for m in "qkv")
        q, k, v = (t.reshape(L, H, -1).transpose(0, 1) for t in (q, k, v))
        bias = w(p + "pos_embedding.embedding.weight")[bucket]  # L, L, H
        s = q @ k.transpose(1, 2) + bias.permute(2, 0, 1)
        a = torch.softmax(s, -1) @ v
        x = x + a.transpose(0, 1).reshape(L, -1) @ w(p + "attn.o.weight").T
        n = rms(x, w(p + "norm2.weight"))
        g = n @ w(p + "ffn.gate.0.weight").T
        g = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) *
                                      (g + 0.044715 * g ** 3)))
        x = x + ((n @ w(p + "ffn.fc1.weight").T) * g) @ \
            w(p + "ffn.fc2.weight").T
        if taps is not None:
            taps.append(x.cpu())
    return rms(x, w("norm.weight")).cpu()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wan-src", required=True,
                    help="copy of the official wan/ folder")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--preset", default="narrow", choices=sorted(PRESETS))
    ap.add_argument("--vocab", type=int, default=None,
                    help="override the preset's vocabulary size")
    ap.add_argument("--num-layers", type=int, default=None,
                    help="override the preset's depth")
    ap.add_argument("--prefix", default=None, help="output file prefix")
    ap.add_argument("--seed", type=int, default=20250401,
                    help="seed of the weights; the ids use seed+1")
    ap.add_argument("--weights-out", default=None,
                    help="where the weights go (default: OUT/PREFIX."
                         "safetensors for the narrow preset, not written "
                         "for umt5-xxl)")
    ap.add_argument("--device", default=None, help="default: cuda if present")
    ap.add_argument("--compare-to", default=None,
                    help="folder of earlier goldens: print the largest "
                         "relative difference per tensor")
    ap.add_argument("--wan-commit", default=PINNED_COMMIT)
    return ap.parse_args()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    args = parse_args()
    cfg = dict(PRESETS[args.preset])
    prefix = args.prefix or cfg.pop("prefix")
    cfg.pop("prefix", None)
    for k in ("vocab", "num_layers"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    full = args.preset != "narrow"
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device or
                          ("cuda" if torch.cuda.is_available() else "cpu"))

    t5, hashes = load_official(args.wan_src)
    for rel, want in PINNED_SHA256.items():
        if hashes["wan/" + rel] != want:
            print(f"WARNING: wan/{rel} differs from commit {PINNED_COMMIT}")

    t0 = time.time()
    model, kwargs, how = build_encoder(t5, cfg, device)
    t_build = time.time() - t0
    randomise_weights(model, args.seed, bf16=full)
    n_params = sum(p.numel() for p in model.parameters())
    digest = weights_digest(model, full)
    t_rand = time.time() - t0 - t_build
    names = list(model.state_dict())
    print(f"T5Encoder via {how}: {n_params} params, built in {t_build:.1f}s, "
          f"randomised + digested in {t_rand:.1f}s; device {device}; "
          f"sha256 {next(iter(digest.values()))}", flush=True)

    meta = {"official_repo": PINNED_REPO, "official_commit": args.wan_commit,
            "seed": str(args.seed), "preset": args.preset}
    files = {}
    wpath = args.weights_out or (None if full else os.path.join(
        args.out, prefix + ".safetensors"))
    if wpath:
        wdtype = torch.bfloat16 if full else torch.float32
        weights = {k: v.detach().to(wdtype).cpu()
                   for k, v in model.state_dict().items()}
        save_safetensors(weights, wpath, meta)
        del weights
        files[os.path.basename(wpath)] = "weights, " + \
            ("BF16" if full else "F32") + ", state_dict() names"
        print(f"weights written to {wpath}", flush=True)

    # ---------------- inputs: random ids, EOS last, padded to 512 ---------
    g = torch.Generator().manual_seed(args.seed + 1)
    lengths = cfg["lengths"]
    B = len(lengths)
    ids = torch.full((B, TEXT_LEN), PAD_ID, dtype=torch.int64)
    mask = torch.zeros((B, TEXT_LEN), dtype=torch.int64)
    for b, L in enumerate(lengths):
        ids[b, :L - 1] = torch.randint(2, cfg["vocab"], (L - 1,),
                                       generator=g)
        ids[b, L - 1] = EOS_ID
        mask[b, :L] = 1

    # the official T5EncoderModel.__call__ (its constructor, which loads a
    # checkpoint, is bypassed): padded batch + mask, states cut to the real
    # tokens
    em = t5.T5EncoderModel.__new__(t5.T5EncoderModel)
    em.model, em.text_len = model, TEXT_LEN
    em.tokenizer = _TokenizerStandIn(ids, mask)
    taps = {}
    bl = lengths.index(cfg["block_length"])
    hooks = [blk.register_forward_hook(
        lambda m, i, o, n=n: taps.__setitem__(n, o[bl, :cfg["block_length"]]
                                              .float().cpu().clone()))
        for n, blk in enumerate(model.blocks)]
    sync(device)
    t1 = time.time()
    with torch.no_grad():
        states = em(["(ids given)"] * B, device)
    sync(device)
    t_fwd = time.time() - t1
    for h in hooks:
        h.remove()
    states = [s.float().cpu() for s in states]
    print(f"official forward, batch {B} x {TEXT_LEN}: {t_fwd:.2f}s",
          flush=True)

    gold = {}
    for b, L in enumerate(lengths):
        gold[f"ids.{L}"] = ids[b, :L].clone()
        gold[f"states.{L}"] = states[b]
        assert states[b].shape == (L, cfg["dim"])
    for n in sorted(taps):
        gold[f"block.{n}"] = taps[n]
    rel = torch.arange(-1100, 1101)
    gold["bucket_rel"] = rel
    gold["bucket"] = model.blocks[0].pos_embedding._relative_position_bucket(
        rel.to(device)).cpu()

    # ---------------- cross-checks ----------------
    checks = {}
    with torch.no_grad():
        for b, L in enumerate(lengths):
            # only the real tokens, no mask: what the C++ computes
            alone = model(ids[b:b + 1, :L].to(device)).float().cpu()[0]
            checks[f"unpadded_vs_masked.{L}"] = rel_err(alone, states[b])
    checks["bucket_independent"] = float(
        (independent_bucket(rel, cfg["num_buckets"]) != gold["bucket"])
        .sum())
    W = {k: v.detach() for k, v in model.state_dict().items()}
    for b, L in enumerate(lengths):
        itaps = []
        ind = independent_encode(W, cfg, ids[b, :L], itaps)
        checks[f"independent.states.{L}"] = rel_err(states[b], ind)
        if L == cfg["block_length"]:
            for n, t in enumerate(itaps):
                checks[f"independent.block.{n}"] = rel_err(taps[n], t)
    bad = []
    for k, v in checks.items():
        print(f"check {k}: {v:.3g}")
        limit = 0.0 if k.startswith("bucket") else 1e-5 \
            if k.startswith("unpadded") else 1e-4
        if v > limit:
            bad.append(k)

    gpath = os.path.join(args.out, prefix + "_goldens.safetensors")
    save_safetensors(gold, gpath, meta)
    files[os.path.basename(gpath)] = sorted(gold)
    info = {"official": {"repo": PINNED_REPO, "commit": args.wan_commit,
                         "sha256": hashes},
            "built_as": how, "encoder_arguments": kwargs,
            "num_params": n_params, "state_dict_names": names,
            "weights": {"seed": args.seed, "bf16_valued": full,
                        "init": randomise_weights.__doc__.split(
                            "(CPU generator")[0].strip()},
            "inputs": {"seed": args.seed + 1, "lengths": lengths,
                       "text_len": TEXT_LEN, "pad_id": PAD_ID,
                       "eos_id": EOS_ID, "block_length": cfg["block_length"]},
            "environment": {"torch": torch.__version__,
                            "device": str(device) + (
                                " " + torch.cuda.get_device_name()
                                if device.type == "cuda" else "")},
            "seconds": {"build": t_build, "randomise_digest": t_rand,
                        "forward": t_fwd},
            "checks_max_rel_err": checks, "files": files,
            "weights_digest": digest}
    with open(os.path.join(args.out, prefix + "_config.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")

    if args.compare_to:
        old = load_safetensors(os.path.join(args.compare_to,
                                            os.path.basename(gpath)))
        for k in sorted(gold):
            d = rel_err(gold[k].double(), old[k].double()) \
                if gold[k].is_floating_point() else \
                float((gold[k] != old[k]).sum())
            print(f"compare {k}: {d:.3g}")
    print("checks: " + ("all passed" if not bad else "FAILED " + str(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
