#!/usr/bin/env python3
"""Digit score of generated videos: how often the shipped classifier reads the requested labels.

Generates N videos with `ditgen generate` (random label pairs and seeds, fixed here), scores
each with `ditgen score-digits`, and reports the share of correct frames over all scored
frames (frames whose digits overlap are counted apart), splicing a Markdown section into
bench/RESULTS.md between <!-- digit_quality:FRAMES:ATTN:begin/end --> markers.

Usage (from the repository root, after building):
  python3 bench/digit_quality.py --videos 50 --frames 16 [--attn dense] [--threads 2]
  python3 bench/digit_quality.py --videos 20 --frames 64 --attn SPEC --generate-args "--riflex 3" --segments 2
      (more generate flags, part of the section's marker ATTN; --segments K: the share correct
      in each K-th of the videos' length as well)

With --h5 FILE [FILE ...] it scores the videos stored in the files instead of generating any (datasets
frames_u8 (K,T,H,W,1) and labels (K,2), as written by tools/train/sample.py --h5 and
tools/train/gpu_digit_probe.sh), prints the totals (and the --segments shares) and leaves
bench/RESULTS.md alone; this needs
h5py and OpenCV's Python module (Debian: python3-h5py python3-opencv, /usr/bin/python3).
"""
import argparse
import json
import os
import random
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cases(n):
    rng = random.Random(20261123)  # fixed: the same label pairs and seeds every run
    return [(rng.randrange(10), rng.randrange(10), 1000 + i) for i in range(n)]


def add_segments(seg_scored, seg_correct, score, frames):
    """Adds a score-digits JSON's per-frame results to the per-segment tallies."""
    for pf in score["per_frame"]:
        seg = pf["frame"] * len(seg_scored) // frames
        seg_scored[seg] += pf["scored"]
        seg_correct[seg] += pf["scored"] and pf["correct"]


def segments_text(seg_scored, seg_correct, frames):
    k = len(seg_scored)
    return "by position in the video: " + "; ".join(
        f"frames {i * frames // k}-{(i + 1) * frames // k - 1}: {100 * c / sc:.1f}% ({c}/{sc})" if sc
        else f"frames {i * frames // k}-{(i + 1) * frames // k - 1}: none scored"
        for i, (c, sc) in enumerate(zip(seg_correct, seg_scored)))


def score_h5(args):
    import tempfile
    import cv2
    import h5py
    import numpy as np
    parts = []
    for path in args.h5:
        with h5py.File(path, "r") as f:
            parts.append((f["frames_u8"][()], f["labels"][()]))
    frames = np.concatenate([fr for fr, _ in parts])
    labels = np.concatenate([lb for _, lb in parts])
    total = {"frames": 0, "scored": 0, "correct": 0, "overlap": 0}
    videos_ok = 0
    # scored / correct frames per segment of the video (--segments equal parts of its length)
    seg_scored, seg_correct = [0] * args.segments, [0] * args.segments
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(frames.shape[0]):
            d = os.path.join(tmp, f"v{k:03d}")
            os.makedirs(d)
            for t in range(frames.shape[1]):
                cv2.imwrite(os.path.join(d, f"frame_{t:05d}.png"), frames[k, t, :, :, 0])
            a, b = (int(v) for v in labels[k])
            sj = os.path.join(tmp, f"v{k:03d}.json")
            subprocess.run([args.ditgen, "score-digits", "--video", d, "--labels", f"{a},{b}", "--json", sj],
                           check=True, stdout=subprocess.DEVNULL)
            with open(sj) as f:
                s = json.load(f)
            for key, src in (("frames", "frames"), ("scored", "scored_frames"), ("correct", "correct_frames"),
                             ("overlap", "overlap_frames")):
                total[key] += s[src]
            videos_ok += s["fraction"] is not None and s["fraction"] >= 0.9
            add_segments(seg_scored, seg_correct, s, frames.shape[1])
    frac = total["correct"] / total["scored"] if total["scored"] else float("nan")
    print(f"{' '.join(args.h5)}: {frames.shape[0]} videos of {frames.shape[1]} frames: {100 * frac:.1f}% of scored frames "
          f"correct ({total['correct']}/{total['scored']}); {total['overlap']} of {total['frames']} frames "
          f"overlapping; {videos_ok}/{frames.shape[0]} videos at >= 90% correct")
    if args.segments > 1:
        print(segments_text(seg_scored, seg_correct, frames.shape[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=50)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--attn", default="dense")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "digits-dit.h5"))
    ap.add_argument("--ditgen", default=os.path.join(ROOT, "build", "apps", "ditgen"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "digits"))
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--h5", nargs="+", default=[],
                    help="score the videos of these HDF5 files (one set, in order) instead of generating")
    ap.add_argument("--segments", type=int, default=1,
                    help="also the share correct in each of this many equal parts of the videos' length")
    ap.add_argument("--generate-args", default="",
                    help="more `ditgen generate` flags, e.g. \"--riflex 3 --cache off\" (part of the RESULTS.md section's key)")
    args = ap.parse_args()
    if args.segments < 1:
        ap.error(f"--segments {args.segments}: expected at least 1")
    if args.generate_args and args.h5:
        ap.error("--generate-args applies to generated videos, not --h5")
    os.makedirs(args.out_dir, exist_ok=True)
    if args.h5:
        score_h5(args)
        return
    total = {"frames": 0, "scored": 0, "correct": 0, "overlap": 0, "seconds": 0.0}
    per_video = []
    seg_scored, seg_correct = [0] * args.segments, [0] * args.segments
    label = args.attn + (f" {args.generate_args}" if args.generate_args else "")
    for i, (a, b, seed) in enumerate(cases(args.videos)):
        video = os.path.join(args.out_dir, f"f{args.frames}_{i:03d}.mkv")
        run_json, score_json = video + ".run.json", video + ".score.json"
        gen = [args.ditgen, "generate", "--model", args.model, "--labels", f"{a},{b}", "--frames", str(args.frames),
               "--seed", str(seed), "--attn", args.attn, "--threads", str(args.threads), "--out", video,
               "--json", run_json, "--overwrite"]
        if args.steps:
            gen += ["--steps", str(args.steps)]
        gen += shlex.split(args.generate_args)
        subprocess.run(gen, check=True, stderr=subprocess.DEVNULL)
        subprocess.run([args.ditgen, "score-digits", "--video", video, "--labels", f"{a},{b}", "--json", score_json,
                        "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        with open(score_json) as f:
            s = json.load(f)
        with open(run_json) as f:
            r = json.load(f)
        total["frames"] += s["frames"]
        total["scored"] += s["scored_frames"]
        total["correct"] += s["correct_frames"]
        total["overlap"] += s["overlap_frames"]
        total["seconds"] += r["seconds"]
        add_segments(seg_scored, seg_correct, s, args.frames)
        per_video.append({"labels": [a, b], "seed": seed, "fraction": s["fraction"], "seconds": r["seconds"]})
        print(f"{i + 1}/{args.videos} labels {a},{b} seed {seed}: {s['correct_frames']}/{s['scored_frames']} correct, "
              f"{s['overlap_frames']} overlap, {r['seconds']:.1f} s", flush=True)
    frac = total["correct"] / total["scored"] if total["scored"] else float("nan")
    videos_ok = sum(1 for v in per_video if v["fraction"] is not None and v["fraction"] >= 0.9)
    command = shlex.join(["python3", "bench/digit_quality.py"] + sys.argv[1:])
    text = (f"Command: `{command}`\n\n"
            f"{args.videos} videos of {args.frames} frames, `{label}`: "
            f"**{100 * frac:.1f}% of scored frames correct** ({total['correct']}/{total['scored']}); "
            f"{total['overlap']} of {total['frames']} frames had overlapping digits and were counted apart; "
            f"{videos_ok}/{args.videos} videos at ≥ 90% correct; mean generation time "
            f"{total['seconds'] / args.videos:.1f} s per video.")
    if args.segments > 1:
        seg = segments_text(seg_scored, seg_correct, args.frames)
        text += " " + seg[0].upper() + seg[1:] + "."
    begin = f"<!-- digit_quality:{args.frames}:{label}:begin -->"
    end = f"<!-- digit_quality:{args.frames}:{label}:end -->"
    body = open(args.results).read() if os.path.exists(args.results) else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in body and end in body:
        body = body[:body.index(begin)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + f"\n\n## Digit score, {args.frames} frames, `{label}`\n\n{block}\n"
    with open(args.results + ".tmp", "w") as f:
        f.write(body)
    os.replace(args.results + ".tmp", args.results)
    tag = "".join(ch if ch.isalnum() or ch in "=.,-" else "_" for ch in label)
    with open(os.path.join(args.out_dir, f"summary_f{args.frames}_{tag}.json"), "w") as f:
        json.dump({"total": total, "fraction": frac, "videos": per_video}, f, indent=2)
    print(text)


if __name__ == "__main__":
    main()
