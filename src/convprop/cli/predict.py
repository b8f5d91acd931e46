"""``convprop predict``: classify image files, the images of IDX files, or .npy arrays.

Every conversion of an image (colour → grey, a resize, an alpha channel read as the
picture, 16-bit or floating-point pixels, uint8 arrays divided by 255) is shown next to
its prediction. A file that cannot be read is reported on stderr and the others are
still classified; the exit status is then 1 (2 when no file could be read).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..datasets.images import decode_image
from ..errors import ConvpropError
from ..formats.idx import iter_idx, looks_like_idx
from ._common import add_command, class_names, model_file, mpi_world, speaks

Row = tuple[str, np.ndarray, list[str]]


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit takes a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--limit must be 0 (print all) or more, got {n}")
    return n


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``predict`` to the sub-commands."""
    r = add_command(
        sub, "predict", "classify images (PNG, JPEG …), the images of IDX files, or .npy arrays",
        "Classify image files (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM), the images of IDX files, or "
                    ".npy arrays (N×H×W[×C] or one H×W[×C]; uint8 is divided by 255). Images are converted to "
                    "the model's input (grey or RGB, its size); each conversion is shown. Files that cannot be "
                    "read are reported and skipped; the exit status is then 1 (2 when no file could be read).",
        ["convprop predict runs/mnist-1epoch digit.png photo.jpg",
         "convprop predict runs/mnist-1epoch scan.png --invert      # dark ink on light paper",
         "convprop predict runs/mnist-1epoch t10k-images-idx3-ubyte.gz --limit 5"])
    r.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    r.add_argument("inputs", nargs="+", metavar="FILE", help="image files, IDX files or .npy arrays")
    r.add_argument("--invert", action="store_true", help="invert images (dark digit on light paper)")
    r.add_argument("--limit", type=_limit, default=20, metavar="N", help="print at most N lines (0: all; default 20)")
    r.set_defaults(func=run)
    return r


def _as_pixels(f: Path, arr: np.ndarray, invert: bool) -> tuple[np.ndarray, list[str]]:
    """Array values as pixels in [0, 1]: uint8 / 255 (said), floats as they are (said when outside [0, 1])."""
    notes = []
    if arr.dtype == np.uint8:
        x, notes = arr / 255.0, ["uint8 pixels / 255"]
    elif arr.dtype.kind in "fiu":
        x = arr.astype(np.float64)
        if x.size and (x.min() < 0 or x.max() > 1):
            notes = [f"values in [{x.min():g}, {x.max():g}], not [0, 1]: used as they are"]
    else:
        raise ConvpropError(f"{f}: holds {arr.dtype} values, not pixels")
    return (1.0 - x if invert else x), notes


def _check_shape(f: Path, shape: tuple[int, ...], image: tuple[int, int, int]) -> bool:
    """Whether ``shape`` is one image (else a stack of them) of the model's ``image`` shape; else an error."""
    h, w, c = image
    one = (h, w) if c == 1 else (h, w, c)
    if tuple(shape) == one:
        return True
    if tuple(shape[1:]) != one:
        raise ConvpropError(f"{f}: holds an array of shape {tuple(shape)}, not images of {h}x{w}"
                            + (f"x{c}" if c != 1 else "") + " as the model takes")
    return False


def _chunks(f: Path, image: tuple[int, int, int], step: int, invert: bool) -> Iterator[list[Row]]:
    """The rows of one input file, in chunks of at most ``step`` images (IDX files are streamed)."""
    if not f.exists():
        raise ConvpropError(f"{f}: no such file")
    if looks_like_idx(f):
        shape, _, chunks = iter_idx(f, step)
        try:
            if _check_shape(f, shape, image):  # one image: its chunks are rows of it
                chunks = iter([np.concatenate(list(chunks))[None]])
            start = 0
            for chunk in chunks:
                x, notes = _as_pixels(f, chunk, invert)
                yield [(f"{f}[{start + i}]", x[i], notes) for i in range(len(x))]
                start += len(chunk)
        finally:
            chunks.close()
    elif f.suffix.lower() == ".npy":
        from ..formats._npz import read_npy

        arr = read_npy(f)
        if _check_shape(f, arr.shape, image):
            arr = arr[None]
        for start in range(0, len(arr), step):
            x, notes = _as_pixels(f, arr[start:start + step], invert)
            yield [(f"{f}[{start + i}]", x[i], notes) for i in range(len(x))]
    else:
        picture, notes = decode_image(f, image, invert)
        yield [(str(f), picture, notes)]


class _Report:
    """Prints the first ``limit`` predictions and counts all of them: nothing grows with the number of images.

    Under ``mpiexec`` every rank classifies its share of each chunk and rank 0 alone prints.
    """

    def __init__(self, net, names: list[str], limit: int) -> None:
        self.net, self.names, self.limit = net, names, limit
        self.counts = np.zeros(net.n_outputs, dtype=np.int64)
        self.total = 0
        self.comm = mpi_world()
        self.speaks = speaks(self.comm)

    def add(self, rows: list[Row]) -> None:
        """Classify the images of ``rows`` and print their lines while under the limit."""
        x = np.stack([r[1] for r in rows]).astype(self.net.dtype, copy=False)
        if self.comm is None:
            proba = self.net.predict_proba(x)
        else:
            from ..training.mpi import sharded_predict_proba

            proba = sharded_predict_proba(self.net, x, self.comm)
        pred = np.argmax(proba, axis=1)
        for (name, _, notes), k, p in zip(rows, pred, proba):
            if self.speaks and (self.limit == 0 or self.total < self.limit):
                said = f"  [{'; '.join(notes)}]" if notes else ""
                print(f"{name}: {self.names[k]} (output {p[k]:.3f}){said}")
            self.total += 1
        self.counts += np.bincount(pred, minlength=self.net.n_outputs)

    def close(self) -> None:
        shown = self.total if self.limit == 0 else min(self.limit, self.total)
        if self.speaks and shown < self.total:
            print(f"... {self.total - shown} more; predicted counts over all {self.total}: "
                  + ", ".join(f"{self.names[i]}: {n}" for i, n in enumerate(self.counts)))


def run(args) -> int:
    """Run ``convprop predict``; returns 0, 1 when some files could not be read (the others are
    classified), 2 when none could.

    Images are read, classified and forgotten chunk by chunk (IDX files are streamed), so the
    memory does not grow with the number of images.
    """
    from ..formats.model import load_model

    net = load_model(model_file(args.model))
    report = _Report(net, class_names(net.extra, net.n_outputs), args.limit)
    step, pending, errors = net.chunk_size(), [], []
    for f in map(Path, args.inputs):
        try:
            for rows in _chunks(f, net.image_shape, step, args.invert):
                pending += rows
                if len(pending) >= step:
                    report.add(pending)
                    pending = []
        except ConvpropError as exc:
            errors.append(exc)
    if pending:
        report.add(pending)
    report.close()
    if report.total == 0 and len(errors) == 1:
        raise errors[0]  # nothing to classify: the one-line error, status 2
    for exc in errors if report.speaks else ():
        print(f"convprop predict: error: {' '.join(str(exc).split())}", file=sys.stderr)
    if errors and report.speaks:
        print(f"convprop predict: {len(errors)} of {len(args.inputs)} file(s) could not be read"
              + ("; the others are classified above" if report.total else ""), file=sys.stderr)
    return 0 if not errors else 1 if report.total else 2
