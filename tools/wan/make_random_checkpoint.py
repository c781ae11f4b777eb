#!/usr/bin/env python3
"""A random-weight Wan2.1-T2V-1.3B checkpoint for speed and memory benchmarks
(bench/wan_side_by_side.sh): ditgen and stable-diffusion.cpp read the same files.

Writes into --out (default /tmp/wan-rand; several GB, keep it out of the repo):

  config.json                          the release's config (num_heads 12, text_len 512, ...)
  diffusion_pytorch_model.safetensors  the DiT in the release's ORIGINAL tensor names
                                       (patch_embedding.weight [1536,16,1,2,2], blocks.N.*,
                                       head.head.*, ...), bfloat16, 1.42 B parameters (2.8 GB)
  context.safetensors                  text-encoder states for ditgen --context: `prompt`
                                       [12, 4096] and `negative_prompt` [20, 4096], float32
  sdcpp/umt5_random_tiny.safetensors   a 1-block umT5 encoder (model width 4096, so its
                                       output has the DiT's text width) for sd.cpp --t5xxl;
                                       see below
  sdcpp/taew2_1_random.safetensors     a TAEHV (taew2_1 layout) for sd.cpp --tae

Values: every tensor is drawn from a seeded generator (torch.Generator, one stream,
file order) so a run is reproducible: matrices and modulation tables N(0, 0.02^2), biases
N(0, 0.01^2), norm weights 1 + N(0, 0.02^2). With these the 30 blocks keep activations
O(1) and finite; the numbers are meaningless, only the shapes, names and dtypes are the
release's, which is all a timing needs.

Why the sd.cpp extras: sd.cpp's Wan pipeline always runs its umT5 conditioner (it pads
the prompt to 512 tokens, the DiT's text_len, then encodes) and always decodes the latents
with a VAE; both are separate phases it times and logs on their own ("get_learned_condition
completed", "sampling completed", "decode_first_stage completed"). Without --t5xxl it falls
back to 256 zero context rows, which would shorten the cross-attention, so a text encoder
is given; the real umT5-XXL encoder (5.7 B parameters: 11.4 GB in bf16, about 6 GB in
Q8_0) would dominate load time and peak RSS, so this one keeps the released model width
(4096) and the 512-token padding but has one block of 1 head (inner width 64, feed-forward
64) and a 256-piece vocabulary. sd.cpp reads the block count, widths and vocabulary size
from the tensor shapes (T5Config::detect_from_weights). A TAEHV (taew2_1 layout, 11 M
parameters, float32; sd.cpp builds its encoder too, so the file holds both halves) replaces
the 127 M-parameter Wan VAE for the same reason; sd.cpp documents --tae for Wan.

Run with a Python that has torch and numpy (no safetensors package needed):

    /usr/bin/python3 tools/wan/make_random_checkpoint.py --out /tmp/wan-rand
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

# The release's config.json of Wan2.1-T2V-1.3B (Wan-Video/Wan2.1, Wan-AI/Wan2.1-T2V-1.3B).
WAN_T2V_1_3B_CONFIG = {
    "_class_name": "WanModel",
    "_diffusers_version": "0.30.0",
    "dim": 1536,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "in_dim": 16,
    "model_type": "t2v",
    "num_heads": 12,
    "num_layers": 30,
    "out_dim": 16,
    "text_len": 512,
}
TEXT_DIM = 4096      # umT5-XXL width: text_embedding.0 input
PATCH = (1, 2, 2)


def wan_dit_tensors(cfg):
    """(name, shape, kind) of the original Wan2.1 T2V DiT, in the release's order."""
    d, f, e = cfg["dim"], cfg["ffn_dim"], cfg["freq_dim"]
    t = [
        ("patch_embedding.weight", [d, cfg["in_dim"], *PATCH], "w"),
        ("patch_embedding.bias", [d], "b"),
        ("text_embedding.0.weight", [d, TEXT_DIM], "w"),
        ("text_embedding.0.bias", [d], "b"),
        ("text_embedding.2.weight", [d, d], "w"),
        ("text_embedding.2.bias", [d], "b"),
        ("time_embedding.0.weight", [d, e], "w"),
        ("time_embedding.0.bias", [d], "b"),
        ("time_embedding.2.weight", [d, d], "w"),
        ("time_embedding.2.bias", [d], "b"),
        ("time_projection.1.weight", [6 * d, d], "w"),
        ("time_projection.1.bias", [6 * d], "b"),
    ]
    for i in range(cfg["num_layers"]):
        p = "blocks.%d." % i
        for attn in ("self_attn", "cross_attn"):
            for m in ("q", "k", "v", "o"):
                t.append((p + attn + "." + m + ".weight", [d, d], "w"))
                t.append((p + attn + "." + m + ".bias", [d], "b"))
            t.append((p + attn + ".norm_q.weight", [d], "n"))
            t.append((p + attn + ".norm_k.weight", [d], "n"))
        t += [
            (p + "norm3.weight", [d], "n"),
            (p + "norm3.bias", [d], "b"),
            (p + "ffn.0.weight", [f, d], "w"),
            (p + "ffn.0.bias", [f], "b"),
            (p + "ffn.2.weight", [d, f], "w"),
            (p + "ffn.2.bias", [d], "b"),
            (p + "modulation", [1, 6, d], "w"),
        ]
    out = cfg["out_dim"] * PATCH[0] * PATCH[1] * PATCH[2]
    t += [
        ("head.head.weight", [out, d], "w"),
        ("head.head.bias", [out], "b"),
        ("head.modulation", [1, 2, d], "w"),
    ]
    return t


def umt5_tiny_tensors(vocab, model_dim=TEXT_DIM, inner=64, ff=64, heads=1, buckets=32):
    """HF T5EncoderModel names (as in umt5_xxl_fp16.safetensors) of a 1-block umT5.

    umT5 gives every block its own relative_attention_bias; the gated-GELU
    feed-forward has wi_0, wi_1 and wo."""
    p = "encoder.block.0."
    return [
        ("shared.weight", [vocab, model_dim], "e"),
        (p + "layer.0.SelfAttention.q.weight", [inner, model_dim], "w"),
        (p + "layer.0.SelfAttention.k.weight", [inner, model_dim], "w"),
        (p + "layer.0.SelfAttention.v.weight", [inner, model_dim], "w"),
        (p + "layer.0.SelfAttention.o.weight", [model_dim, inner], "w"),
        (p + "layer.0.SelfAttention.relative_attention_bias.weight", [buckets, heads], "w"),
        (p + "layer.0.layer_norm.weight", [model_dim], "n"),
        (p + "layer.1.DenseReluDense.wi_0.weight", [ff, model_dim], "w"),
        (p + "layer.1.DenseReluDense.wi_1.weight", [ff, model_dim], "w"),
        (p + "layer.1.DenseReluDense.wo.weight", [model_dim, ff], "w"),
        (p + "layer.1.layer_norm.weight", [model_dim], "n"),
        ("encoder.final_layer_norm.weight", [model_dim], "n"),
    ]


def taehv_decoder_tensors(z=16, channels=(256, 128, 64, 64), time_upscale=(False, True, True), blocks=3, out=3):
    """The decoder of taew2_1 (TAEHV for the Wan2.1 VAE's latent space), as sd.cpp's
    TinyVideoDecoder (src/model/vae/tae.hpp) names it: nn.Sequential indices."""
    t = []

    def conv(name, cin, cout, k, bias=True):
        t.append((name + ".weight", [cout, cin, k, k], "w"))
        if bias:
            t.append((name + ".bias", [cout], "b"))

    i = 1                                   # 0: Clamp
    conv("decoder.%d" % i, z, channels[0], 3)
    i += 2                                  # ReLU
    for layer in range(3):
        c = channels[layer]
        for _ in range(blocks):             # MemBlock(c, c)
            conv("decoder.%d.conv.0" % i, 2 * c, c, 3)
            conv("decoder.%d.conv.2" % i, c, c, 3)
            conv("decoder.%d.conv.4" % i, c, c, 3)
            i += 1
        i += 1                              # Upsample
        conv("decoder.%d.conv" % i, c, c * (2 if time_upscale[layer] else 1), 1, bias=False)  # TGrow
        i += 1
        conv("decoder.%d" % i, c, channels[layer + 1], 3, bias=False)
        i += 1
    i += 1                                  # ReLU
    conv("decoder.%d" % i, channels[3], out, 3)
    return t


def taehv_encoder_tensors(z=16, hidden=64, time_downscale=(True, True, False), blocks=3, cin=3):
    """The encoder of taew2_1 as sd.cpp's TinyVideoEncoder names it. sd.cpp builds the TAE
    with its encoder even when it only decodes, so the file must hold it."""
    t = []

    def conv(name, ci, co, k, bias=True):
        t.append((name + ".weight", [co, ci, k, k], "w"))
        if bias:
            t.append((name + ".bias", [co], "b"))

    conv("encoder.0", cin, hidden, 3)
    i = 2                                   # 1: ReLU
    for layer in range(3):
        conv("encoder.%d.conv" % i, hidden * (2 if time_downscale[layer] else 1), hidden, 1, bias=False)  # TPool
        i += 1
        conv("encoder.%d" % i, hidden, hidden, 3, bias=False)   # stride-2 conv
        i += 1
        for _ in range(blocks):             # MemBlock(hidden, hidden)
            conv("encoder.%d.conv.0" % i, 2 * hidden, hidden, 3)
            conv("encoder.%d.conv.2" % i, hidden, hidden, 3)
            conv("encoder.%d.conv.4" % i, hidden, hidden, 3)
            i += 1
    conv("encoder.%d" % i, hidden, z, 3)
    return t


def draw(gen, shape, kind, dtype):
    n = int(np.prod(shape))
    x = torch.randn(n, generator=gen, dtype=torch.float32)
    if kind == "w" or kind == "e":
        x.mul_(0.02)
    elif kind == "b":
        x.mul_(0.01)
    elif kind == "n":
        x.mul_(0.02).add_(1.0)
    else:
        raise ValueError(kind)
    x = x.to(dtype)
    if dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().tobytes()
    return x.numpy().tobytes()


ST_DTYPE = {torch.bfloat16: ("BF16", 2), torch.float32: ("F32", 4)}


def write_safetensors(path, tensors, dtype, gen, metadata):
    """Streams (name, shape, kind) tensors drawn from gen into a safetensors file."""
    code, size = ST_DTYPE[dtype]
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    off = 0
    for name, shape, _ in tensors:
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, kind in tensors:
            f.write(draw(gen, shape, kind, dtype))
    os.replace(tmp, path)
    return off


def write_raw_safetensors(path, arrays):
    """float32 arrays {name: np.ndarray} into a safetensors file."""
    header, off, blobs = {}, 0, []
    for name, a in arrays.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/wan-rand")
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--layers", type=int, default=30, help="DiT blocks (30 in the release)")
    ap.add_argument("--prompt-tokens", type=int, default=12)
    ap.add_argument("--negative-tokens", type=int, default=20)
    ap.add_argument("--t5-vocab", type=int, default=256,
                    help="rows of the tiny umT5's embedding; 256384 (umT5's) for an sd.cpp built with the real "
                         "umT5 tokenizer, whose ids go that high")
    ap.add_argument("--no-sdcpp", action="store_true", help="skip the sd.cpp extras (umT5, TAEHV)")
    ap.add_argument("--sdcpp-only", action="store_true", help="write only the sd.cpp extras")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    cfg = dict(WAN_T2V_1_3B_CONFIG, num_layers=args.layers)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    meta = {"generator": "ditgen tools/wan/make_random_checkpoint.py", "seed": args.seed,
            "init": "random: matrices N(0,0.02^2), biases N(0,0.01^2), norm weights 1+N(0,0.02^2)"}

    if not args.sdcpp_only:
        t0 = time.time()
        gen = torch.Generator().manual_seed(args.seed)
        dit = wan_dit_tensors(cfg)
        nbytes = write_safetensors(os.path.join(args.out, "diffusion_pytorch_model.safetensors"), dit,
                                   torch.bfloat16, gen, dict(meta, model="Wan2.1-T2V-1.3B (random weights)"))
        nparam = sum(int(np.prod(s)) for _, s, _ in dit)
        print("DiT: %d tensors, %.3f B parameters, %.2f GB bf16 (%.0f s)" % (len(dit), nparam / 1e9, nbytes / 1e9,
                                                                           time.time() - t0))

        g = torch.Generator().manual_seed(args.seed + 1)
        ctx = {"prompt": torch.randn(args.prompt_tokens, TEXT_DIM, generator=g).numpy(),
               "negative_prompt": torch.randn(args.negative_tokens, TEXT_DIM, generator=g).numpy()}
        write_raw_safetensors(os.path.join(args.out, "context.safetensors"), ctx)
        print("context: prompt %s, negative_prompt %s" % (ctx["prompt"].shape, ctx["negative_prompt"].shape))

    if not args.no_sdcpp or args.sdcpp_only:
        sd = os.path.join(args.out, "sdcpp")
        os.makedirs(sd, exist_ok=True)
        t5 = umt5_tiny_tensors(args.t5_vocab)
        write_safetensors(os.path.join(sd, "umt5_random_tiny.safetensors"), t5, torch.bfloat16,
                          torch.Generator().manual_seed(args.seed + 2), dict(meta, model="umT5 encoder, 1 block (random)"))
        tae = taehv_encoder_tensors() + taehv_decoder_tensors()
        write_safetensors(os.path.join(sd, "taew2_1_random.safetensors"), tae, torch.float32,
                          torch.Generator().manual_seed(args.seed + 3), dict(meta, model="taew2_1 encoder and decoder (random)"))
        print("sd.cpp extras: umT5 %.1f M parameters, TAEHV %.1f M parameters" % (
            sum(int(np.prod(s)) for _, s, _ in t5) / 1e6, sum(int(np.prod(s)) for _, s, _ in tae) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
