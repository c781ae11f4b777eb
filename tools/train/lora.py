"""LoRA adapters for the digits DiT (issue 21): training-time modules and the adapter file.

`add_lora(model, rank, targets)` freezes the model and wraps the chosen linear layers: y = W x + b
+ (alpha / rank) B A x, A (rank, in) small random, B (out, rank) zero, so training starts from the
model itself. `adapter_tensors` gives the file's tensors in the PEFT layout the engine reads
(`MODULE.lora_A.weight`, `MODULE.lora_B.weight`, `MODULE.alpha`; docs/lora.md), under the model's
own module names; `merged_state_dict` folds the adapters back into plain weights (the names of
docs/model.md) for the HDF5 export and the reference sampler.
"""
import math
import re

import torch
import torch.nn as nn

# The attention and feed-forward projections of every block, as Radial Attention's fine-tune.
TARGETS = {
    "self": r"blocks\.\d+\.self_attn\.[qkvo]",
    "cross": r"blocks\.\d+\.cross_attn\.[qkvo]",
    "ffn": r"blocks\.\d+\.ffn\.[02]",
}


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.rank, self.alpha = rank, alpha
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's default for A

    @property
    def scale(self):
        return self.alpha / self.rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t().to(x.dtype)) @ (self.lora_B.t().to(x.dtype) * self.scale)

    def merged_weight(self):
        return self.base.weight.float() + self.scale * (self.lora_B.float() @ self.lora_A.float())


def add_lora(model, rank, targets=("self", "cross", "ffn"), alpha=None):
    """Freezes every parameter of `model` and wraps the linear layers named by `targets`
    (keys of TARGETS). Returns the wrapped module names in model order."""
    alpha = float(rank if alpha is None else alpha)
    pattern = re.compile("|".join(f"(?:{TARGETS[t]})" for t in targets) + "$")
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.match(n)]
    if not names:
        raise ValueError(f"no linear layer matches {targets}")
    for n in names:
        parent_name, _, child = n.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    return names


def lora_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def adapter_tensors(model):
    """{name: float32 CPU tensor} in the PEFT layout, module names as the model's own."""
    out = {}
    for n, m in lora_modules(model):
        out[f"{n}.lora_A.weight"] = m.lora_A.detach().float().cpu().contiguous()
        out[f"{n}.lora_B.weight"] = m.lora_B.detach().float().cpu().contiguous()
        out[f"{n}.alpha"] = torch.tensor([m.alpha], dtype=torch.float32)
    return out


def merged_state_dict(model):
    """The plain model's state_dict (names of docs/model.md) with every adapter folded in."""
    sd = {}
    wrapped = dict(lora_modules(model))
    for k, v in model.state_dict().items():
        if ".lora_" in k:
            continue
        sd[k.replace(".base.", ".")] = v
    for n, m in wrapped.items():
        sd[f"{n}.weight"] = m.merged_weight().to(m.base.weight.dtype)
    return sd


def save_adapter(model, path, metadata):
    """Writes the adapter (float16 tensors, alpha in float32) as safetensors, with string
    metadata (the attention it was trained under, its frame count)."""
    from safetensors.torch import save_file
    t = {k: (v if k.endswith(".alpha") else v.half()) for k, v in adapter_tensors(model).items()}
    save_file(t, path, metadata={k: str(v) for k, v in metadata.items()})


def merge_adapter_file(model, path, scale=1.0):
    """Folds a PEFT-layout adapter file (as save_adapter writes) into the plain `model` in place:
    W += scale (alpha / rank) B A, in float32. Every module must exist in the model."""
    from safetensors.torch import load_file
    t = load_file(path)
    modules = sorted({k[: -len(".lora_A.weight")] for k in t if k.endswith(".lora_A.weight")})
    if not modules:
        raise ValueError(f"{path}: no lora_A tensors")
    with torch.no_grad():
        for n in modules:
            A, B = t[f"{n}.lora_A.weight"].float(), t[f"{n}.lora_B.weight"].float()
            alpha = float(t[f"{n}.alpha"].item()) if f"{n}.alpha" in t else float(A.shape[0])
            lin = model.get_submodule(n)
            delta = scale * alpha / A.shape[0] * (B @ A)
            lin.weight.copy_((lin.weight.float() + delta.to(lin.weight.device)).to(lin.weight.dtype))
    return modules
