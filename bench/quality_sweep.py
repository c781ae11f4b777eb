#!/usr/bin/env python3
"""Quality/speed sweep of every sparse-attention method against dense (`ditgen compare`).

Runs `ditgen compare` for each (length, seed, labels) case with every method at several
densities, then writes, per length, the median over cases of PSNR, SSIM, density, recall and
end-to-end / attention speedup per configuration, a Pareto plot (PSNR against end-to-end
speedup, one curve per method) and a Markdown table spliced into bench/RESULTS.md between
the markers <!-- quality_sweep:FRAMES:begin --> and <!-- quality_sweep:FRAMES:end -->.

Usage (from the repository root, after building):
  python3 bench/quality_sweep.py --frames 16 [--cases 2] [--out-dir bench/sweep] [--threads 2]
  python3 bench/quality_sweep.py --frames 64 --cases 1 --set short
  python3 bench/quality_sweep.py --frames 16 --cases 5 --set pick   (the pick set over the five
      cases: files, plot and table carry the suffix "-pick", beside the full set's)
  python3 bench/quality_sweep.py --frames 16 --gemm bf16 --set pick   (dense and sparse alike
      with bfloat16 linear layers: the suffix "-bf16-pick")
  python3 bench/quality_sweep.py --frames 64 --cases 1 --extend   (keeps the runs already in
      each case's compare JSON and runs only the specs it lacks, in one more invocation)

An entry is an attention spec, or an attention spec and a step cache as "ATTN +CACHE" (the
`--cache` spec of `ditgen compare`): the entries of one cache run in one compare invocation of
their own, so a case with cached entries takes one invocation per cache.

Each compare JSON records the specs as given, in run order, under "sweep_specs". With --extend
the new runs are appended and the new invocation's baseline goes to "extra_baselines": every
run's speedup stays against the dense run of its own invocation (the dense output is
bit-identical between invocations, so PSNR and SSIM are against the same frames).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

# Each method at several densities (the same set at both lengths, so the comparison is side by
# side). dense_steps/dense_layers are the methods' published defaults unless the spec says.
SPECS = {
    "full": [
        "radial:block=64",
        "radial:block=64,decay=1",
        "radial3d:decay=1",
        "radial3d:decay=0.5",
        "radial3d:decay=0.5,dense_steps=0.5",
        "window:window=3x3x3,tile=4x4x4",
        "window:window=1x3x3,tile=4x4x4",
        "window:window=3x1x1,tile=4x4x4",
        "svg:density=0.3,block=64",
        "svg:density=0.2,block=64",
        "svg:density=0.1,block=64",
        "topp:p=0.9",
        "topp:p=0.7",
        "topp:p=0.5",
        "svg2",
        "svg2:qc=64,kc=256",
        "svg2:qc=64,kc=256,p=0.95",
        "radial3d:decay=0.5,dense_steps=0.4,refresh=4",
    ],
}
# generate's defaults: the float32 kernel, and the bf16 one where the CPU has AVX512-BF16; each
# with and without generate's step cache, and dense attention with the cache alone.
GENERATE_CACHE = "easy:thresh=0.05,warmup=0.5,reuse=output"
CACHED = [
    f"radial3d:decay=0.5,dense_steps=0.4,refresh=4 +{GENERATE_CACHE}",
    "radial3d:decay=0.5,dense_steps=0.4,refresh=4,isa=avx512bf16",
    f"radial3d:decay=0.5,dense_steps=0.4,refresh=4,isa=avx512bf16 +{GENERATE_CACHE}",
    f"dense +{GENERATE_CACHE}",
]
SPECS["full"] += CACHED
# One point per method, for 64 frames where a dense run takes minutes.
SPECS["short"] = [
    "radial:block=64",
    "radial3d:decay=0.5",
    "window:window=3x3x3,tile=4x4x4",
    "svg:density=0.2,block=64",
    "topp:p=0.9",
    "svg2:qc=64,kc=256",
]

# PAROAttention needs a calibration file per length and mass: one dense run of its own (a seed and
# labels outside CASES, fewer steps) by `ditgen calibrate`, then `paro:calib=FILE` in the sweep.
# The short set plus the best configurations at 16 frames: the full sweep's, and generate's default.
SPECS["pick"] = SPECS["short"] + ["radial3d:decay=0.5,dense_steps=0.5", "radial3d:decay=0.5,dense_steps=0.4,refresh=4"] + CACHED

PARO_MASSES = {"full": [0.95, 0.9, 0.8], "short": [0.9], "pick": [0.9]}
CALIB_CASE = (99, "2,5")
CALIB_STEPS = 6
# STA's window search (`ditgen calibrate --method sta`): per step, layer and head the least-error
# window among every window covering this share of the grid's 4x4x4 tiles (the shipped model's
# 64x64 frames: 16 x 16 tokens a frame), then `window:calib=FILE` in the sweep.
STA_SHARES = {"full": [0.25, 0.125], "short": [0.25], "pick": [0.25]}

# Issue 6's targets per length: (end-to-end speedup, PSNR dB), drawn on the Pareto plot.
TARGETS = {16: (1.8, 30.0), 64: (4.0, 28.0)}

# Fixed cases: (seed, labels).
CASES = [(0, "3,7"), (1, "1,8"), (2, "0,5"), (3, "4,9"), (4, "2,6")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def split_entry(entry):
    """(attention spec, cache spec or "off") of a sweep entry "ATTN" or "ATTN +CACHE"."""
    attn, _, cache = entry.partition(" +")
    return attn, cache or "off"


def method_of(entry):
    """The plot's curve: the method, with the bf16 kernel and the step cache as curves of their own."""
    attn, cache = split_entry(entry)
    name = "window (STA search)" if "sta_volume=" in attn else attn.split(":")[0]
    if "isa=avx512bf16" in attn:
        name += " (bf16)"
    return name if cache == "off" else name + " + step cache"


def suffixes(args):
    """What sets a sweep apart from the full one at its length: the GEMM backend where it is not
    the default, the spec set where it is not the full one. Names files, plot and table."""
    return ([] if args.gemm == "auto" else [args.gemm]) + ([] if args.set == "full" or args.spec else [args.set])


def tag_of(args):
    return "-".join([str(args.frames)] + suffixes(args))


def calibrate_paro(args, frames, mass):
    """Writes (once) a PARO calibration file for this length and mass; returns its spec."""
    path = os.path.join(args.out_dir, f"paro_f{frames}_m{mass}.json")
    if not os.path.exists(path):
        seed, labels = CALIB_CASE
        cmd = [args.ditgen, "calibrate", "--model", args.model, "--frames", str(frames), "--seed", str(seed),
               "--labels", labels, "--steps", str(CALIB_STEPS), "--threads", str(args.threads),
               "--mass", str(mass), "--out", path]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return f"paro:calib={path}"


def calibrate_sta(args, frames, share):
    """Writes (once) an STA window-search file for this length and share of the tiles; returns
    its spec."""
    volume = round(share * ((frames + 3) // 4) * 16)
    path = os.path.join(args.out_dir, f"sta_f{frames}_v{volume}.json")
    if not os.path.exists(path):
        seed, labels = CALIB_CASE
        cmd = [args.ditgen, "calibrate", "--method", "sta", "--model", args.model, "--frames", str(frames),
               "--seed", str(seed), "--labels", labels, "--steps", str(CALIB_STEPS), "--threads", str(args.threads),
               "--volume", str(volume), "--out", path]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return f"window:calib={path}"


def method_label(spec):
    """The spec as shown in tables: a calibration file by its mass (PARO) or window volume (STA),
    not its path."""
    m = re.search(r"calib=[^,]*_m([0-9.]+)\.json", spec)
    if spec.startswith("paro:") and m:
        return f"paro:mass={m.group(1)}"
    m = re.search(r"calib=[^,]*sta_f[0-9]+_v([0-9]+)\.json", spec)
    return f"window:sta_volume={m.group(1)}" if spec.startswith("window:") and m else spec


def run_compare(args, frames, seed, labels, specs, out_json):
    """One invocation for entries that share their cache."""
    cmd = [args.ditgen, "compare", "--model", args.model, "--frames", str(frames), "--seed", str(seed),
           "--labels", labels, "--threads", str(args.threads), "--gemm", args.gemm, "--json", out_json, "--overwrite"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    caches = {split_entry(s)[1] for s in specs}
    assert len(caches) == 1, caches
    if caches != {"off"}:
        cmd += ["--cache", caches.pop()]
    for s in specs:
        cmd += ["--attn", split_entry(s)[0]]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(out_json) as f:
        data = json.load(f)
    data["sweep_specs"] = list(specs)
    return data


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def run_case(args, frames, seed, labels, specs, out_json):
    """One compare invocation per cache for the case; with --extend, only for the entries the
    file lacks."""
    old = None
    if args.extend and os.path.exists(out_json):
        with open(out_json) as f:
            old = json.load(f)
        if "sweep_specs" not in old:
            sys.exit(f"{out_json} has no 'sweep_specs' (the specs as given, in run order): cannot extend it")
    missing = [s for s in specs if old is None or s not in old["sweep_specs"]]
    caches = list(dict.fromkeys(split_entry(s)[1] for s in missing))
    for cache in caches:
        group = [s for s in missing if split_entry(s)[1] == cache]
        data = run_compare(args, frames, seed, labels, group, out_json + ".new")
        os.remove(out_json + ".new")
        if old is not None:
            if old["settings"] != data["settings"]:
                sys.exit(f"{out_json} was made with other settings ({old['settings']}, now {data['settings']}): "
                         "cannot extend it")
            old["runs"] += data["runs"]
            old["sweep_specs"] += group
            old.setdefault("extra_baselines", []).append(data["baseline"])
        else:
            old = data
        write_json(out_json, old)
    return old


def as_float(v):
    if v == "inf":
        return float("inf")
    return float("nan") if v is None else float(v)


def summarise(results, specs):
    """Rows keyed by the spec as given, found through each file's "sweep_specs" (files written
    before it existed hold the runs in the order of `specs`)."""
    by_spec = {}
    for r in results:
        given = r.get("sweep_specs", specs[:len(r["runs"])])
        for spec in specs:
            if spec not in given:
                sys.exit(f"spec {spec} was not run in this case; run again with --extend")
            run = r["runs"][given.index(spec)]
            by_spec.setdefault(method_label(spec), []).append(run)
    rows = []
    for attn, runs in by_spec.items():
        med = lambda k: statistics.median(as_float(x[k]) for x in runs)
        rows.append({
            "attn": attn, "method": method_of(attn), "cases": len(runs),
            "psnr_db": med("psnr_db"), "ssim": med("ssim"), "density": med("density"),
            "speedup_e2e": med("speedup_e2e"), "speedup_attention": med("speedup_attention"),
            "attention_recall": med("attention_recall"),
            "digit_score": med("digit_score") if runs[0].get("digit_score") is not None else float("nan"),
        })
    return rows


def plot(rows, frames, gemm, path, base_digits=None):
    """Two panels against the end-to-end speedup: fidelity (PSNR against dense) and task quality
    (the digit score), so a run that differs from dense but reads as well is seen as such."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab20").colors  # one colour per method: more methods than the default cycle
    for i, m in enumerate(sorted({r["method"] for r in rows})):
        pts = sorted((r["speedup_e2e"], min(r["psnr_db"], 60.0), r["digit_score"]) for r in rows if r["method"] == m)
        c = colours[(2 * i) % 20 + (2 * i) // 20]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, label=m)
        bx.plot([p[0] for p in pts], [p[2] for p in pts], "o", color=c, label=m)
    if frames in TARGETS:
        x, y = TARGETS[frames]
        ax.axvline(x, ls="--", color="gray", lw=1)
        ax.axhline(y, ls="--", color="gray", lw=1)
        ax.annotate(f"target: {x:g}x at {y:g} dB", (x, y), textcoords="offset points", xytext=(4, 4), color="gray")
    if base_digits is not None:
        bx.axhline(base_digits, ls="--", color="gray", lw=1)
        bx.annotate("dense", (bx.get_xlim()[0], base_digits), textcoords="offset points", xytext=(4, 4), color="gray")
    ax.set_xlabel("end-to-end speedup over dense (x)")
    ax.set_ylabel("PSNR vs dense (dB, 8-bit, capped at 60)")
    bx.set_xlabel("end-to-end speedup over dense (x)")
    bx.set_ylabel("digit score (median over cases)")
    linears = "" if gemm == "auto" else f", {gemm} linear layers"
    fig.suptitle(f"Sparse attention on the digits model, {frames} frames{linears}")
    for a in (ax, bx):
        a.grid(True, alpha=0.3)
    bx.legend(fontsize=8)  # the digit panel has room where the PSNR panel has points
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def invocations_note(results):
    """A sentence when a case's runs come from several compare invocations (one per step cache,
    and --extend)."""
    extra = [b for r in results for b in r.get("extra_baselines", [])]
    if not extra:
        return ""
    dense = [float(r["baseline"]["seconds"]) for r in results] + [float(b["seconds"]) for b in extra]
    return (f" The runs of a case come from {1 + max(len(r.get('extra_baselines', [])) for r in results)} compare "
            f"invocations (one per step cache, and `--extend` runs): each speedup is against the dense run of its own "
            f"invocation (dense {min(dense):.1f}–{max(dense):.1f} s across them).")


def table(rows, frames, base, command, note=""):
    lines = [f"Command: `{command}`", "",
             f"Dense baseline: {base['seconds']:.1f} s end to end, {base['attention_seconds']:.1f} s in attention "
             f"(median over cases); digit score {base.get('digit_score')}. Attention is "
             f"{100 * base['attention_seconds'] / base['seconds']:.0f}% of the dense run, so no attention method alone can "
             f"exceed {base['seconds'] / (base['seconds'] - base['attention_seconds']):.2f}x end to end here (a step "
             f"cache, skipping whole passes, can).{note}", "",
             "| attn | PSNR dB | SSIM | density | recall | e2e speedup | attention speedup | digit score |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["method"], -r["density"])):
        lines.append(f"| `{r['attn']}` | {r['psnr_db']:.2f} | {r['ssim']:.4f} | {r['density']:.3f} | "
                     f"{r['attention_recall']:.3f} | {r['speedup_e2e']:.2f} | {r['speedup_attention']:.2f} | "
                     f"{r['digit_score']:.3f} |")
    return "\n".join(lines)


def splice(results_md, tag, title, text):
    begin, end = f"<!-- quality_sweep:{tag}:begin -->", f"<!-- quality_sweep:{tag}:end -->"
    body = open(results_md).read() if os.path.exists(results_md) else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in body and end in body:
        body = body[:body.index(begin)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    tmp = results_md + ".tmp"
    with open(tmp, "w") as f:
        f.write(body)
    os.replace(tmp, results_md)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--cases", type=int, default=2, help=f"how many of the fixed cases to run (1..{len(CASES)})")
    ap.add_argument("--set", choices=sorted(SPECS), default="full")
    ap.add_argument("--spec", action="append", help="override the spec list (repeatable)")
    ap.add_argument("--steps", type=int, default=0, help="sampling steps (default: the model's)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "digits-dit.h5"))
    ap.add_argument("--ditgen", default=os.path.join(ROOT, "build", "apps", "ditgen"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemm", default="auto", help="GEMM backend of the linear layers, for every run (ditgen --gemm)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "sweep"))
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--summarise-only", action="store_true",
                    help="rebuild the table and plot from the compare JSON files of an earlier run in --out-dir")
    ap.add_argument("--extend", action="store_true",
                    help="keep the runs in the existing compare JSON files and run only the missing specs")
    args = ap.parse_args()
    if not 1 <= args.cases <= len(CASES):
        sys.exit(f"--cases {args.cases} is out of range 1..{len(CASES)}")
    os.makedirs(args.out_dir, exist_ok=True)
    specs = args.spec or (SPECS[args.set] + [calibrate_paro(args, args.frames, m) for m in PARO_MASSES[args.set]] +
                          [calibrate_sta(args, args.frames, f) for f in STA_SHARES[args.set]])
    command = " ".join(["python3", "bench/quality_sweep.py"] +
                       [a for a in sys.argv[1:] if a not in ("--summarise-only", "--extend")])
    results = []
    for seed, labels in CASES[:args.cases]:
        out = os.path.join(args.out_dir, f"compare_f{tag_of(args)}_s{seed}.json")
        if args.summarise_only:
            with open(out) as f:
                results.append(json.load(f))
        else:
            results.append(run_case(args, args.frames, seed, labels, specs, out))
    rows = summarise(results, specs)
    base = {k: statistics.median(float(r["baseline"][k]) for r in results) for k in ("seconds", "attention_seconds")}
    scores = [r["baseline"].get("digit_score") for r in results if r["baseline"].get("digit_score") is not None]
    base["digit_score"] = round(statistics.median(scores), 3) if scores else None
    tag = tag_of(args)
    png_name = "_".join([f"pareto_{args.frames}f"] + suffixes(args)) + ".png"
    plot(rows, args.frames, args.gemm, os.path.join(ROOT, "bench", png_name), base["digit_score"])
    title = (f"Quality sweep, {args.frames} frames" + ("" if args.gemm == "auto" else f", {args.gemm} linear layers") +
             ("" if args.set == "full" or args.spec else f", the {args.set} set"))
    text = table(rows, args.frames, base, command, invocations_note(results)) + f"\n\n![Pareto, {args.frames} frames]({png_name})"
    splice(args.results, tag, title, text)
    with open(os.path.join(args.out_dir, f"summary_f{tag}.json"), "w") as f:
        json.dump({"baseline": base, "rows": rows}, f, indent=2)
    print(text)


if __name__ == "__main__":
    main()
