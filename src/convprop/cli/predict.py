"""``convprop predict``: classify image files or the images of IDX files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..datasets.images import read_image
from ..errors import ConvpropError
from ..formats.idx import iter_idx, looks_like_idx
from ._common import class_names, model_file


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``predict`` to the sub-commands."""
    r = sub.add_parser("predict", help="classify PNG/JPEG images or the images of an IDX file")
    r.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    r.add_argument("inputs", nargs="+", metavar="FILE", help="image files (PNG, JPEG …) or IDX files")
    r.add_argument("--invert", action="store_true", help="invert images (dark digit on light paper)")
    r.add_argument("--limit", type=int, default=20, help="print at most N lines (0: all; default 20)")
    r.set_defaults(func=run)
    return r


class _Report:
    """Prints the first ``limit`` predictions and counts all of them: nothing grows with the number of images."""

    def __init__(self, net, names: list[str], limit: int) -> None:
        self.net, self.names, self.limit = net, names, limit
        self.counts = np.zeros(net.n_outputs, dtype=np.int64)
        self.total = 0

    def add(self, label, x: np.ndarray) -> None:
        """Predict a batch ``x`` whose i-th image is called ``label(i)``."""
        proba = self.net.predict_proba(x.astype(self.net.dtype, copy=False))
        pred = np.argmax(proba, axis=1)
        for i in range(len(pred)):
            if self.limit > 0 and self.total + i >= self.limit:
                break
            k = pred[i]
            print(f"{label(i)}: {self.names[k]} (output {proba[i, k]:.3f})")
        self.counts += np.bincount(pred, minlength=self.net.n_outputs)
        self.total += len(pred)

    def close(self) -> None:
        shown = self.total if self.limit <= 0 else min(self.limit, self.total)
        if shown < self.total:
            print(f"... {self.total - shown} more; predicted counts over all {self.total}: "
                  + ", ".join(f"{self.names[i]}: {n}" for i, n in enumerate(self.counts)))


def _idx_batches(f: Path, net, step: int, invert: bool):
    """(first index, float images) chunks of the IDX file ``f``, streamed (at most ``step`` images each)."""
    h, w, c = net.image_shape
    image = (h, w) if c == 1 else (h, w, c)
    shape, _, chunks = iter_idx(f, step)
    single = len(shape) == len(image)
    if (shape if single else shape[1:]) != image:
        chunks.close()
        raise ConvpropError(f"{f}: holds an array of shape {shape}, not images of {h}x{w}"
                            + (f"x{c}" if c != 1 else "") + " as the model takes")
    if single:  # one image: its chunks are rows
        chunks = iter([np.concatenate(list(chunks))[None]])
    start = 0
    for chunk in chunks:
        x = chunk.astype(np.float64) / 255.0  # as read_image: float64, then the network's dtype
        yield start, (1.0 - x if invert else x)
        start += len(chunk)


def run(args) -> int:
    """Run ``convprop predict``; returns the exit status.

    Images are read, classified and forgotten chunk by chunk (IDX files are streamed), so the
    memory does not grow with the number of images.
    """
    from ..formats.model import load_model

    net = load_model(model_file(args.model))
    report = _Report(net, class_names(net.extra, net.n_outputs), args.limit)
    step = net.chunk_size()
    names: list[str] = []
    images: list[np.ndarray] = []

    def flush() -> None:
        if images:
            report.add(names.__getitem__, np.stack(images))
            names.clear()
            images.clear()

    for f in map(Path, args.inputs):
        if looks_like_idx(f):
            flush()
            for start, x in _idx_batches(f, net, step, args.invert):
                report.add(lambda i, f=f, start=start: f"{f}[{start + i}]", x)
        else:
            names.append(str(f))
            images.append(read_image(f, net.image_shape, args.invert))
            if len(images) >= step:
                flush()
    flush()
    report.close()
    return 0
