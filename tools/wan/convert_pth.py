#!/usr/bin/env python3
"""Converts a Wan2.1 release checkpoint from PyTorch's pickle format (.pth) to
safetensors, with the tensor names and dtypes unchanged, so that ditgen (which
never parses a pickle) can read it:

    python3 tools/wan/convert_pth.py Wan2.1_VAE.pth                   # -> Wan2.1_VAE.safetensors
    python3 tools/wan/convert_pth.py models_t5_umt5-xxl-enc-bf16.pth  # -> ...-bf16.safetensors
    python3 tools/wan/convert_pth.py IN.pth OUT.safetensors

The DiT of the release is already safetensors (diffusion_pytorch_model*.safetensors).
The pickle is loaded with torch.load(weights_only=True), which refuses
arbitrary objects. A state dict nested under "state_dict", "model" or
"module" is unwrapped. Tensors that share storage are copied apart. The
output is written to a temporary file beside the target and renamed into
place; an existing target is kept unless --overwrite is given.

Needs: torch. Uses the safetensors package when installed, else a minimal
writer of the same format.
"""

import argparse
import json
import os
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
          torch.int64: "I64"}


def state_dict_of(obj, path):
    while isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in (
            "state_dict", "model", "module"):
        obj = next(iter(obj.values()))
    if not isinstance(obj, dict) or not obj:
        sys.exit(f"{path}: not a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not torch.is_tensor(v)]
    if bad:
        sys.exit(f"{path}: entries that are not tensors: {bad[:5]}")
    return obj


def write_minimal(tensors, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in DTYPES:
            sys.exit(f"tensor {name}: dtype {t.dtype} is not one of {sorted(DTYPES.values())}")
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="a .pth checkpoint")
    ap.add_argument("output", nargs="?", help="default: the input with .safetensors")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    out = a.output or os.path.splitext(a.input)[0] + ".safetensors"
    if os.path.exists(out) and not a.overwrite:
        sys.exit(f"{out} exists; pass --overwrite to replace it")
    obj = torch.load(a.input, map_location="cpu", weights_only=True)
    sd = state_dict_of(obj, a.input)
    # Copies apart tensors that share storage (safetensors stores each once).
    tensors = {k: v.detach().clone().contiguous() for k, v in sd.items()}
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)),
                       "." + os.path.basename(out) + f".tmp-{os.getpid()}")
    try:
        try:
            from safetensors.torch import save_file
            save_file(tensors, tmp)
        except ImportError:
            write_minimal(tensors, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    n = sum(t.numel() for t in tensors.values())
    print(f"{out}: {len(tensors)} tensors, {n} values")


if __name__ == "__main__":
    main()
