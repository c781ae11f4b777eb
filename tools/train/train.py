"""Flow-matching training of the ditgen digits DiT (docs/model.md section 8).

    python3 tools/train/train.py --steps 12000 --run runs/main          # GPU, bf16
    python3 tools/train/train.py --config tiny --steps 20 --batch 2 --run /tmp/smoke   # CPU smoke

Objective: x_sigma = (1 - sigma) x0 + sigma eps, sigma = shift(sigmoid(n)), n ~ N(0,1),
shift s = 3; the model sees t = 1000 sigma and predicts v = eps - x0 (plain MSE). Labels go
to the null label (num_classes) for 10% of the samples. Steps cycle through frame counts
(default T = 1, 16, 32, 16) with the batch scaled to keep the token count constant
(T=16: --batch clips; T=32: half as many; T=1: 16 times as many images). AdamW with linear
warm-up and cosine decay over --steps; EMA of the weights; bf16 autocast on CUDA.

Everything is a function of --seed: the clips of step k come from data seed
seed*1000003 + k, the noise, sigma and label drop of step k from generators seeded from
(seed, k). A checkpoint (run/ckpt.pt) is written every --ckpt-every seconds together with
the EMA export (run/digits-dit.h5); a run restarts from its checkpoint when one is there (a
LoRA run's checkpoint holds its adapters, their EMA and the optimizer alone: the base weights
come from --init again, so a run longer than one call of the lent GPU travels in a few MB).
--deadline (Unix time) stops early, still writing the checkpoint and the exports.

--locality MASK adds --locality-weight times the softmax mass that sampled query rows of every
self-attention call put outside MASK (tools/train/locality.py) to the loss of multi-frame steps:
a fine-tune that makes the dense model's attention local, so sparse runs under MASK stay close
to it (bench/RESULTS.md, "Experiment: a locality fine-tune").

--attn-mask MASK runs every multi-frame self-attention of the training forward under MASK
(block-sparse, tools/train/locality.py), and --lora RANK trains only low-rank adapters on the
attention and feed-forward projections (tools/train/lora.py; the rest frozen), written with
--adapter FILE: together, Radial Attention's length extension (issue 21; docs/length-extension.md).
"""
import argparse
import copy
import csv
import dataclasses
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import MovingDigits  # noqa: E402
from export import save_h5  # noqa: E402
import locality  # noqa: E402
import lora as lora_module  # noqa: E402
import model as model_module  # noqa: E402
from model import DiT, DiTConfig, count_params  # noqa: E402

CONFIGS = {
    "full": DiTConfig(),
    "tiny": DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, freq_dim=64, ctx_dim=64),
}

def seen_field(T):
    return "images_seen" if T == 1 else f"clips{T}_seen"


def log_fields(slots):
    """The log's columns: a loss and a count per frame count of the cycle (the default cycle's
    are loss_t1, loss_t16, loss_t32 and images_seen, clips16_seen, clips32_seen)."""
    return (["step", "wall_s", "lr", "loss"] + [f"loss_t{T}" for T in slots] + ["val_loss"] +
            [seen_field(T) for T in slots] + ["clip16_equiv_per_s"])


def shift_sigma(s, shift):
    return shift * s / (1.0 + (shift - 1.0) * s)


def lr_at(step, a):
    step -= a.sched_start  # a continued run (--init) has its own warm-up and decay
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, (step - a.warmup) / max(1, a.steps - a.sched_start - a.warmup))
    return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def batch_for(T, a):
    if T == 1:
        return a.batch * 16
    return max(1, a.batch * 16 // T)


def fm_loss(model, x0, labels, cfg, gen_seed, drop_p, device, amp, sigma=None):
    """Flow-matching MSE for a batch; randomness from a generator seeded with gen_seed."""
    B = x0.shape[0]
    g = torch.Generator()
    g.manual_seed(gen_seed)
    if sigma is None:
        n = torch.randn(B, generator=g)
        sigma = shift_sigma(torch.sigmoid(n), cfg.sample_shift)
    drop = torch.rand(B, generator=g) < drop_p
    labels = torch.where(drop.to(device)[:, None], torch.full_like(labels, cfg.num_classes), labels)
    gd = torch.Generator(device=device)
    gd.manual_seed(gen_seed)
    eps = torch.randn(x0.shape, generator=gd, device=device)
    s = sigma.to(device).float().view(B, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * eps
    target = eps - x0
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        v = model(xt, 1000.0 * sigma.to(device).float(), labels=labels)
    return F.mse_loss(v.float(), target)


def plot(csv_path, png_path):
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    step = np.array([float(r["step"]) for r in rows])

    def col(k):
        return np.array([float(r[k]) if r[k] not in ("", "nan") else np.nan for r in rows])

    per_t = sorted((int(k[len("loss_t"):]), k) for k in rows[0] if k.startswith("loss_t"))
    series = ([("loss (all T)", col("loss"))] + [(f"T={T}", col(k)) for T, k in per_t] +
              [("val (EMA)", col("val_loss"))])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        for name, y in series:
            ok = np.isfinite(y)
            if ok.any():
                ax.plot(step[ok], y[ok], label=name, lw=1.2 if "val" not in name else 2,
                        marker="o" if "val" in name else None, ms=3)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching MSE")
        ax.set_title("ditgen digits DiT training loss")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(png_path)
        plt.close(fig)
    except ImportError:
        import cv2
        Wd, Hd = 800, 450
        img = np.full((Hd, Wd, 3), 255, np.uint8)
        colors = [(0, 0, 0), (200, 0, 0), (0, 150, 0), (0, 0, 200), (0, 120, 200)]
        allv = np.concatenate([y[np.isfinite(y)] for _, y in series if np.isfinite(y).any()])
        lo, hi = np.log(allv.min()), np.log(allv.max() + 1e-12)
        for (name, y), c in zip(series, colors):
            ok = np.isfinite(y)
            if ok.sum() < 2:
                continue
            px = 40 + (step[ok] - step.min()) / max(1, step.max() - step.min()) * (Wd - 60)
            py = Hd - 30 - (np.log(y[ok]) - lo) / max(1e-9, hi - lo) * (Hd - 60)
            cv2.polylines(img, [np.stack([px, py], 1).astype(np.int32)], False, c, 1)
        cv2.imwrite(png_path, img)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="full", choices=sorted(CONFIGS))
    ap.add_argument("--digits", default="data/digits.png")
    ap.add_argument("--steps", type=int, default=12000,
                    help="length of the LR schedule; 0 with --deadline: fixed at step --warmup/2 from the "
                         "measured speed so that the run ends at the deadline (the value is printed and logged)")
    ap.add_argument("--batch", type=int, default=32, help="16-frame clips a step")
    ap.add_argument("--t-cycle", default="1,16,32,16")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--drop", type=float, default=0.1, help="null-label probability")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slot-order", default="random", choices=MovingDigits.SLOT_ORDERS,
                    help="which digit each condition slot names (see data.MovingDigits)")
    ap.add_argument("--run", default="runs/main")
    ap.add_argument("--export", default="models/digits-dit.h5")
    ap.add_argument("--log", default="tools/train/train_log.csv")
    ap.add_argument("--plot", default="tools/train/loss.png")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--deadline", type=float, default=0.0, help="Unix time to stop at (0: none)")
    ap.add_argument("--init", default="",
                    help="start from these weights (an HDF5 export; model and EMA), fresh optimizer")
    ap.add_argument("--continue-log", action="store_true",
                    help="with --init: append to --log, taking step, wall time and sample counts "
                         "from its last row (the LR schedule restarts there)")
    ap.add_argument("--locality", default="", choices=["", *sorted(locality.MASKS)],
                    help="penalise attention mass outside this mask (off when empty)")
    ap.add_argument("--locality-weight", type=float, default=1.0)
    ap.add_argument("--locality-rows", type=int, default=128, help="query rows sampled per call")
    ap.add_argument("--attn-mask", default="", choices=["", *sorted(locality.MASKS)],
                    help="self-attention of multi-frame steps under this mask (block-sparse)")
    ap.add_argument("--val-frames", type=int, default=16, help="frames of the held-out batch")
    ap.add_argument("--lora", type=int, default=0, help="adapter rank (0: train every weight)")
    ap.add_argument("--lora-targets", default="self,cross,ffn", help="of " + ",".join(lora_module.TARGETS))
    ap.add_argument("--adapter", default="", help="write the EMA adapter here (safetensors; needs --lora)")
    ap.add_argument("--adapter-attn", default="", help="metadata: the engine's --attn the adapter is for")
    ap.add_argument("--riflex", type=int, default=0,
                    help="RIFLEx in the training forward: temporal rotary pair K (1-based), as ditgen's --riflex")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bench", type=float, default=0.0,
                    help="only measure: run this many seconds after warm-up, print throughput, save nothing")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()

    dev = torch.device(a.device)
    amp = dev.type == "cuda"
    if dev.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = CONFIGS[a.config]
    tcycle = [int(v) for v in a.t_cycle.split(",")]
    slots = sorted(set(tcycle))  # the log has a loss and a count column per frame count
    fields = log_fields(slots)

    if a.lora < 0 or (a.adapter and not a.lora):
        raise SystemExit(f"--lora {a.lora}: expected a rank >= 1 with --adapter, or 0 (full fine-tune)")
    torch.manual_seed(a.seed)
    model = DiT(cfg).to(dev)
    if a.init:  # before any adapter wraps the layers: the file holds plain weights
        from export import load_h5
        icfg, sd = load_h5(a.init)
        # the sampling default is not architecture: the init file's value is kept
        assert dataclasses.replace(icfg, sample_cfg=cfg.sample_cfg) == cfg, f"{a.init}: config differs"
        cfg.sample_cfg = icfg.sample_cfg
        model.load_state_dict(sd)
        print(f"initialised from {a.init}", flush=True)
    pairs = model_module.rope_axis_dims(cfg.head_dim)[0] // 2
    if a.riflex and not 1 <= a.riflex <= pairs:
        raise SystemExit(f"--riflex {a.riflex}: expected a temporal rotary pair from 1 to {pairs}")
    model.riflex_k = a.riflex  # the EMA copy below inherits it
    if a.lora:
        wrapped = lora_module.add_lora(model, a.lora, a.lora_targets.split(","))
        n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"LoRA rank {a.lora} on {len(wrapped)} layers: {n_lora:,} trainable parameters", flush=True)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_matrix = p.ndim >= 2 and not n.startswith("label_") and "modulation" not in n and ".lora_" not in n
        (decay if is_matrix else no_decay).append(p)
    opt_kw = dict(lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    if dev.type == "cuda" and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames:
        opt_kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kw)
    data = MovingDigits(a.digits, dev, a.slot_order)
    pen = None
    if a.locality:
        assert not a.compile, "--locality runs eager"
        pen = locality.LocalityPenalty(model_module.attention, a.locality, a.locality_rows, a.seed)
        model_module.attention = pen
    sparse = None
    if a.attn_mask:
        assert not a.locality, "--attn-mask and --locality are separate experiments"
        sparse = locality.BlockSparseAttention(model_module.attention, a.attn_mask)
        model_module.attention = sparse
    outside_win = []
    fwd = model
    if a.compile and hasattr(torch, "compile"):
        fwd = torch.compile(model, dynamic=False)

    ckpt_path = os.path.join(a.run, "ckpt.pt")
    step, wall_before = 0, 0.0
    seen = {T: 0 for T in slots}
    a.sched_start = 0
    if not a.bench:
        os.makedirs(a.run, exist_ok=True)
        if os.path.exists(ckpt_path):
            try:
                ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
            except TypeError:
                ck = torch.load(ckpt_path, map_location=dev)
            for m, key in ((model, "model"), (ema, "ema")):
                _, unexpected = m.load_state_dict(ck[key], strict=not a.lora)
                assert not unexpected, f"{ckpt_path}: {key} holds tensors this model lacks: {unexpected[:3]}"
            opt.load_state_dict(ck["opt"])
            step, wall_before = ck["step"], ck["wall_s"]
            seen = {T: 0 for T in slots} | {int(k): v for k, v in ck["seen"].items()}
            if a.steps == 0 and ck.get("steps"):
                a.steps = ck["steps"]
            if ck["args"].get("init"):
                a.init = ck["args"]["init"]
                a.sched_start = ck["args"]["sched_start"]
            print(f"resumed from {ckpt_path} at step {step}", flush=True)
        else:
            if a.init and a.continue_log and a.log and os.path.exists(a.log):
                last = list(csv.DictReader(open(a.log)))[-1]
                step, wall_before = int(last["step"]), float(last["wall_s"])
                missing = [seen_field(T) for T in slots if seen_field(T) not in last]
                if missing:
                    raise SystemExit(f"--continue-log {a.log}: no column {missing} for this --t-cycle")
                seen = {T: int(last[seen_field(T)]) for T in slots}
                print(f"continuing the log {a.log} at step {step}", flush=True)
            if a.init:
                a.sched_start = step
            if a.log and not (a.init and a.continue_log):
                os.makedirs(os.path.dirname(os.path.abspath(a.log)), exist_ok=True)
                with open(a.log, "w", newline="") as f:
                    csv.writer(f).writerow(fields)
    print(f"config {a.config}: {count_params(model):,} parameters; device {dev}; amp {amp}; "
          f"compile {a.compile}; T cycle {tcycle}; batch (T=16) {a.batch}", flush=True)

    # fixed validation batch: held-out digits, sigma at the quantiles of the training law
    vb = 16 if a.config == "full" else 2
    vx0, vlab = data.batch(987654321, vb, a.val_frames, split="val")
    vsig = shift_sigma(torch.sigmoid(math.sqrt(2) * torch.erfinv(2 * (torch.arange(vb) + 0.5) / vb - 1)),
                       cfg.sample_shift)

    def val_loss():
        if sparse:
            sparse.grid = (a.val_frames // cfg.patch_t, cfg.frame_height // cfg.patch_h, cfg.frame_width // cfg.patch_w)
        with torch.no_grad():
            return fm_loss(ema, vx0, vlab, cfg, 4242, 0.0, dev, amp, sigma=vsig).item()

    def save_all(final=False):
        t0 = time.time()
        def trained(sd):  # a LoRA run keeps its adapters alone: the rest is --init's, unchanged
            return {k: v for k, v in sd.items() if ".lora_" in k} if a.lora else sd
        ck = {"model": trained(model.state_dict()), "ema": trained(ema.state_dict()), "opt": opt.state_dict(),
              "step": step, "wall_s": wall_before + (time.time() - t_start), "seen": seen,
              "config": cfg.to_dict(), "args": vars(a), "steps": a.steps}  # args holds sched_start
        torch.save(ck, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        plain = lora_module.merged_state_dict(ema) if a.lora else ema.state_dict()
        save_h5(plain, cfg, os.path.join(a.run, "digits-dit.h5"))
        if final and a.export:
            save_h5(plain, cfg, a.export)
        if final and a.adapter:
            meta = {"ditgen.rank": a.lora, "ditgen.frames": ",".join(map(str, tcycle)),
                    "ditgen.train_mask": a.attn_mask or "dense", "ditgen.steps": step}
            if a.adapter_attn:
                meta["ditgen.attention"] = a.adapter_attn
            if a.riflex:
                meta["ditgen.riflex"] = a.riflex
            lora_module.save_adapter(ema, a.adapter + ".tmp", meta)
            os.replace(a.adapter + ".tmp", a.adapter)
        if a.log and a.plot:
            plot(a.log, a.plot)
        print(f"saved step {step} ({time.time() - t0:.1f} s){' FINAL' if final else ''}", flush=True)

    t_start = time.time()
    last_save = time.time()
    win = {T: [] for T in slots}
    win_all = []
    tok_count, tok_t0 = 0, None
    bench_t0 = None
    warm_steps = 2 * len(tcycle) + 2
    n_local = 0
    auto_at = max(warm_steps + 20, a.warmup // 2)
    if a.steps == 0 and not a.deadline:
        raise SystemExit("--steps 0 needs --deadline")
    while a.steps == 0 or step < a.steps:
        if a.steps == 0 and n_local >= auto_at:
            el = time.time() - tok_t0
            rate = (n_local - warm_steps) / el
            left = a.deadline - time.time() - 30.0
            a.steps = step + max(1, int(rate * left * 0.96))
            print(f"AUTO steps = {a.steps} ({rate:.2f} steps/s measured over {el:.0f} s)", flush=True)
        if a.deadline and time.time() > a.deadline:
            print(f"deadline reached at step {step}", flush=True)
            break
        T = tcycle[step % len(tcycle)]
        B = batch_for(T, a)
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, a)
        x0, labels = data.batch(a.seed * 1000003 + step, B, T)
        grid = (T // cfg.patch_t, cfg.frame_height // cfg.patch_h, cfg.frame_width // cfg.patch_w)
        if pen:
            pen.grid = grid
        if sparse:
            sparse.grid = grid
        loss = fm_loss(fwd, x0, labels, cfg, a.seed * 1000003 + step + (1 << 40), a.drop, dev, amp)
        total = loss
        if pen:
            pen.grid = None
            m = pen.take()
            if m is not None:
                total = loss + a.locality_weight * m
                outside_win.append(m.detach())
        opt.zero_grad(set_to_none=True)
        total.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], a.clip)
        opt.step()
        d = min(a.ema, (1 + step - a.sched_start) / (10 + step - a.sched_start))  # a fine-tune ramps anew
        with torch.no_grad():
            ep = list(ema.parameters())
            mp = list(model.parameters())
            torch._foreach_mul_(ep, d)
            torch._foreach_add_(ep, mp, alpha=1 - d)
        step += 1
        n_local += 1
        seen[T] += B
        lv = loss.detach()
        win[T].append(lv)
        win_all.append(lv)
        if n_local == warm_steps:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            tok_t0, tok_count = time.time(), 0
            bench_t0 = tok_t0
            print(f"warm-up done ({warm_steps} steps, {time.time() - t_start:.1f} s)", flush=True)
        elif tok_t0 is not None:
            tok_count += B * T
        if a.bench and bench_t0 is not None and time.time() - bench_t0 > a.bench:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            el = time.time() - tok_t0
            print(f"BENCH clip16_equiv_per_s {tok_count / 16 / el:.1f} steps_per_s "
                  f"{(n_local - warm_steps) / el:.2f} loss {lv.item():.4f}", flush=True)
            return
        if step % a.log_every == 0 and not a.bench:
            means = {k: (torch.stack(v).mean().item() if v else float("nan")) for k, v in win.items()}
            lall = torch.stack(win_all).mean().item()
            vl = val_loss() if (step % a.val_every == 0 or step == a.steps) else float("nan")
            rate = tok_count / 16 / (time.time() - tok_t0) if tok_t0 and time.time() > tok_t0 else float("nan")
            wall = wall_before + time.time() - t_start
            row = ([step, f"{wall:.1f}", f"{lr_at(step - 1, a):.3e}", f"{lall:.5f}"] +
                   [f"{means[T]:.5f}" for T in slots] + ["" if math.isnan(vl) else f"{vl:.5f}"] +
                   [seen[T] for T in slots] + [f"{rate:.1f}"])
            if a.log:
                with open(a.log, "a", newline="") as f:
                    csv.writer(f).writerow(row)
            print(" ".join(f"{k}={v}" for k, v in zip(fields, row)), flush=True)
            if outside_win:
                print(f"outside_mass={torch.stack(outside_win).mean().item():.5f} ({a.locality})", flush=True)
                outside_win = []
            win = {T: [] for T in slots}
            win_all = []
            if not math.isfinite(lall):
                raise SystemExit("loss is not finite")
        if not a.bench and time.time() - last_save > a.ckpt_every:
            save_all()
            last_save = time.time()
    if not a.bench:
        if a.log:
            vl = val_loss()
            print(f"final EMA val loss {vl:.5f}", flush=True)
        save_all(final=True)


if __name__ == "__main__":
    main()
