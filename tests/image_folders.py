"""Folders of images made from data the tests generate (no downloads): scikit-learn's bundled
8×8 digits as PNGs in class folders, and RGB pictures of coloured shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digits_folder(root: Path, n: int | None = None, fmt: str = "png") -> Path:
    """scikit-learn's 1797 8×8 digits (0..16 scaled to 0..255) as ``root/<name>/<i>.<fmt>``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, t) in enumerate(zip(d.images[:n], d.target[:n])):
        folder = root / DIGIT_NAMES[t]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img * 255 / 16).astype(np.uint8)).save(folder / f"{i:04d}.{fmt}")
    return root


#: (class name, colour) of :func:`shapes_folder`: three colours of (nearly) the same brightness
#: (Pillow's grey, 0.299 R + 0.587 G + 0.114 B, is 111, 105 and 109), so that only a network
#: that keeps the colour channels tells the classes apart.
SHAPES = [("red", (230, 60, 60)), ("green", (40, 150, 40)), ("blue", (90, 90, 255))]


def shape_image(rng: np.random.Generator, colour, shape: str, size: int = 16) -> np.ndarray:
    """One (size, size, 3) uint8 picture: a disc or square of random place and size on grey noise."""
    img = rng.integers(60, 110, (size, size, 3)).astype(np.float64)
    r = rng.uniform(size * 0.2, size * 0.32)
    cy, cx = rng.uniform(r, size - r, 2)
    yy, xx = np.mgrid[:size, :size] + 0.5
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r if shape == "disc" else \
        (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    img[mask] = np.asarray(colour) + rng.normal(0, 12, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def shapes_folder(root: Path, per_class: int = 60, size: int = 16, seed: int = 0) -> Path:
    """``root/<colour>/<i>.png``: RGB pictures of discs and squares in the colours of :data:`SHAPES`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in SHAPES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = ("disc", "square")[i % 2]
            Image.fromarray(shape_image(rng, colour, shape, size)).save(root / name / f"{i:03d}.png")
    return root
