"""Moving-MNIST-style clips made from OpenCV's handwritten-digit sheet.

The sheet (`data/digits.png`, made by `tools/data/fetch_digits.sh`) holds 50 rows x 100
columns of 20x20 digits; class = row // 5, 500 digits a class. A class's digits are taken
in the sheet's order (row by row, left to right); the last 50 of each class (the right
half of the class's fifth row) are the validation split and never used for training.

A clip: 64x64 frames, two digits scaled to 28x28 (bilinear, half-pixel centres, the same
as cv2.resize INTER_LINEAR, rounded to integers 0..255), each moving at a constant velocity
(speed 1..3 px/frame, any direction) from a random start and bouncing off the borders
(positions are a triangle wave, rounded to whole pixels), combined with max. Pixel v in
0..255 becomes v/127.5 - 1 (background -1). Labels: the two digit classes, in the order
(first digit, second digit). Everything is a function of (seed, split, batch, T) alone:
the random parameters come from a CPU torch.Generator, the frames are drawn with torch
ops on whatever device is asked for.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

SHEET_ROWS, SHEET_COLS, CELL = 50, 100, 20
NUM_CLASSES = 10
PER_CLASS = 500
VAL_PER_CLASS = 50
TRAIN_PER_CLASS = PER_CLASS - VAL_PER_CLASS
FRAME = 64
DIGIT = 28
SPEED_MIN, SPEED_MAX = 1.0, 3.0


def _read_gray(path):
    try:
        import cv2
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FileNotFoundError(path)
        return img
    except ImportError:
        from PIL import Image
        return np.asarray(Image.open(path).convert("L"))


def load_digit_sheet(path="data/digits.png"):
    """Returns uint8 array (10, 500, 20, 20): [class][index in sheet order][y][x]."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: run tools/data/fetch_digits.sh first")
    img = _read_gray(path)
    assert img.shape == (SHEET_ROWS * CELL, SHEET_COLS * CELL), img.shape
    cells = img.reshape(SHEET_ROWS, CELL, SHEET_COLS, CELL).transpose(0, 2, 1, 3)
    # rows 5c..5c+4 belong to class c; row-major order inside the class
    return np.ascontiguousarray(cells.reshape(NUM_CLASSES, PER_CLASS, CELL, CELL))


def scale_digits(sheet):
    """(10,500,20,20) uint8 -> (10,500,28,28) float32 in [0,1] (integer levels /255)."""
    x = torch.from_numpy(sheet.astype(np.float32)).reshape(-1, 1, CELL, CELL)
    y = F.interpolate(x, size=(DIGIT, DIGIT), mode="bilinear", align_corners=False)
    y = torch.round(y).clamp(0, 255) / 255.0
    return y.reshape(NUM_CLASSES, PER_CLASS, DIGIT, DIGIT)


class MovingDigits:
    """Generator of two-digit bouncing clips. split: 'train' or 'val'.

    slot_order: "random" gives the two labels in draw order, so neither condition slot means a
    place; "left-first" puts first the digit whose first-frame position is further left (ties:
    the upper one), so each slot names a digit the model can find in the frame."""

    SLOT_ORDERS = ("random", "left-first")

    def __init__(self, path="data/digits.png", device="cpu", slot_order="random"):
        if slot_order not in self.SLOT_ORDERS:
            raise ValueError(f"slot_order {slot_order!r}, expected one of {self.SLOT_ORDERS}")
        self.device = torch.device(device)
        self.slot_order = slot_order
        self.digits = scale_digits(load_digit_sheet(path)).to(self.device)  # (10,500,28,28)

    def params(self, seed, batch, T, split="train"):
        """The random parameters of a batch (all on CPU, from `seed` alone)."""
        g = torch.Generator()
        g.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        labels = torch.randint(0, NUM_CLASSES, (batch, 2), generator=g)
        if split == "train":
            idx = torch.randint(0, TRAIN_PER_CLASS, (batch, 2), generator=g)
        elif split == "val":
            idx = TRAIN_PER_CLASS + torch.randint(0, VAL_PER_CLASS, (batch, 2), generator=g)
        else:
            raise ValueError(split)
        span = float(FRAME - DIGIT)
        pos0 = torch.rand(batch, 2, 2, generator=g, dtype=torch.float64) * span  # (B,digit,yx)
        ang = torch.rand(batch, 2, generator=g, dtype=torch.float64) * (2 * np.pi)
        speed = SPEED_MIN + torch.rand(batch, 2, generator=g, dtype=torch.float64) * (SPEED_MAX - SPEED_MIN)
        vel = torch.stack([speed * torch.sin(ang), speed * torch.cos(ang)], dim=-1)  # (B,2,2)
        if self.slot_order == "left-first":
            y, x = pos0[:, :, 0], pos0[:, :, 1]
            swap = (x[:, 0] > x[:, 1]) | ((x[:, 0] == x[:, 1]) & (y[:, 0] > y[:, 1]))  # (B,)
            order = torch.stack([swap.long(), 1 - swap.long()], dim=1)  # (B,2) slot -> digit
            labels, idx = labels.gather(1, order), idx.gather(1, order)
            pos0 = pos0.gather(1, order[:, :, None].expand(-1, -1, 2))
            vel = vel.gather(1, order[:, :, None].expand(-1, -1, 2))
        return labels, idx, pos0, vel

    @staticmethod
    def trajectory(pos0, vel, T):
        """Integer top-left positions (B, 2 digits, T, 2 [y,x]) bouncing inside [0, 36]."""
        span = float(FRAME - DIGIT)
        k = torch.arange(T, dtype=torch.float64)
        raw = pos0[:, :, None, :] + vel[:, :, None, :] * k[None, None, :, None]
        r = torch.remainder(raw, 2 * span)
        p = torch.where(r <= span, r, 2 * span - r)
        return torch.round(p).long().clamp(0, FRAME - DIGIT)

    def render(self, labels, idx, pos, T):
        """Frames (B,1,T,64,64) in [-1,1] on self.device."""
        dev = self.device
        B = labels.shape[0]
        labels, idx, pos = labels.to(dev), idx.to(dev), pos.to(dev)
        ar = torch.arange(FRAME, device=dev)
        out = torch.zeros(B, T, FRAME, FRAME, device=dev)
        for j in range(2):
            img = self.digits[labels[:, j], idx[:, j]]  # (B,28,28)
            ly = ar[None, None, :] - pos[:, j, :, 0, None]  # (B,T,64)
            lx = ar[None, None, :] - pos[:, j, :, 1, None]
            vy = (ly >= 0) & (ly < DIGIT)
            vx = (lx >= 0) & (lx < DIGIT)
            ly, lx = ly.clamp(0, DIGIT - 1), lx.clamp(0, DIGIT - 1)
            b = torch.arange(B, device=dev)[:, None, None, None]
            val = img[b, ly[:, :, :, None], lx[:, :, None, :]]  # (B,T,64,64)
            val = val * (vy[:, :, :, None] & vx[:, :, None, :])
            out = torch.maximum(out, val)
        return (out * 2.0 - 1.0).unsqueeze(1)

    def batch(self, seed, batch, T, split="train"):
        """(frames (B,1,T,64,64) float32 in [-1,1], labels (B,2) int64) on self.device."""
        labels, idx, pos0, vel = self.params(seed, batch, T, split)
        pos = self.trajectory(pos0, vel, T)
        return self.render(labels, idx, pos, T), labels.to(self.device)


def to_uint8(frames):
    """(…, H, W) float in [-1,1] -> uint8 0..255 (round half up after clamping)."""
    x = (frames.float().clamp(-1, 1) + 1.0) * 127.5
    return torch.floor(x + 0.5).to(torch.uint8)


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(description="write a contact sheet of clips / time generation")
    ap.add_argument("--digits", default="data/digits.png")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="")
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args()
    md = MovingDigits(a.digits, a.device)
    if a.bench:
        for T, B in ((16, 64), (32, 32), (1, 1024)):
            md.batch(0, B, T)
            if md.device.type == "cuda":
                torch.cuda.synchronize()
            t0, n = time.time(), 0
            while time.time() - t0 < 3:
                md.batch(n, B, T)
                n += 1
            if md.device.type == "cuda":
                torch.cuda.synchronize()
            print(f"T={T}: {n * B / (time.time() - t0):.0f} clips/s")
    if a.out:
        fr, lab = md.batch(7, 6, 16, "val")
        u8 = to_uint8(fr[:, 0]).cpu().numpy()  # (6,16,64,64)
        sheet = np.concatenate([np.concatenate(list(c), axis=1) for c in u8], axis=0)
        import cv2
        cv2.imwrite(a.out, sheet)
        print(a.out, lab.tolist())
