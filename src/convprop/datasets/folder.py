"""Your own images as a data set: a folder of class folders (ImageFolder layout) or a CSV of path,label.

Layouts (those of torchvision's ``ImageFolder`` and Keras's ``image_dataset_from_directory``)::

    photos/cat/001.png            photos/train/cat/001.png        labels.csv:
    photos/cat/002.jpg            photos/train/dog/...              path,label
    photos/dog/...                photos/test/cat/...               img/001.png,cat
                                  photos/test/dog/...               img/002.png,dog

Class names are the folder names (or the CSV's labels), sorted; the label of a class
is its place in that order. Without ``train/`` and ``test/`` (``val/``) folders, a
seeded, stratified share of each class is held out for testing. Images are read one
at a time into one array: in memory, or — when it would take more than ``max_memory``
bytes — a file-backed array on disk, so a folder larger than memory still trains.
Every conversion (resizing, colour ↔ grey, alpha, 16-bit or float pixels) is counted
and reported in :attr:`ImageFolder.notes`.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvpropError
from .images import IMAGE_SUFFIXES, decode_image, probe_image

__all__ = ["ImageList", "ImageFolder", "find_images", "load_image_folder", "is_image_dataset", "parse_size"]

TEST_DIRS = ("test", "val", "validation")


@dataclass
class ImageList:
    """Image files and their labels, before decoding.

    Attributes
    ----------
    paths : list of Path, length N
    labels : ndarray of int, shape (N,)
        Index into ``class_names``.
    class_names : list of str
    """

    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]

    def subset(self, index: np.ndarray) -> "ImageList":
        return ImageList([self.paths[i] for i in index], self.labels[index], self.class_names)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _files_under(d: Path, skipped: Counter) -> list[Path]:
    found = []
    for top, dirs, files in os.walk(d, followlinks=True):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for name in sorted(files):
            p = Path(top) / name
            if _is_image(p):
                found.append(p)
            elif not name.startswith("."):
                skipped[p.suffix.lower() or name] += 1
    return found


def list_class_folders(root: Path, class_names: list[str] | None, notes: list[str]) -> ImageList:
    """The images of ``root/<class>/**`` (class names: the folders, or the ones given)."""
    skipped: Counter = Counter()
    per_class = {d.name: _files_under(d, skipped) for d in _class_dirs(root)}
    empty = sorted(name for name, files in per_class.items() if not files)
    if empty:
        notes.append(f"{root}: ignored folder(s) without images: {', '.join(empty)}")
    per_class = {name: files for name, files in per_class.items() if files}
    if skipped:
        notes.append(f"{root}: ignored {sum(skipped.values())} file(s) that are not images "
                     f"({', '.join(f'{k}: {n}' for k, n in skipped.most_common(4))})")
    names = sorted(per_class) if class_names is None else class_names
    unknown = sorted(set(per_class) - set(names))
    if unknown:
        raise ConvpropError(f"{root}: class folder(s) {', '.join(unknown)} are not among the training classes "
                            f"({', '.join(names)})")
    if class_names is None and len(names) < 2:
        raise ConvpropError(f"{root}: needs one sub-folder of images per class, at least two; found "
                            f"{len(names)} ({', '.join(names) or 'none'})")
    paths = [p for name in names for p in per_class.get(name, [])]
    labels = np.array([k for k, name in enumerate(names) for _ in per_class.get(name, [])], dtype=np.intp)
    return ImageList(paths, labels, list(names))


def _sort_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def list_csv(path: Path, notes: list[str]) -> ImageList:
    """The images of a CSV file of ``path,label`` rows (a header row is allowed; relative paths are
    relative to the CSV file's folder)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConvpropError(f"{path}: cannot read this CSV file ({exc})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["path", "label"], ["file", "label"],
                                                              ["filename", "label"], ["image", "label"]):
        rows = rows[1:]
    bad = next((i for i, r in enumerate(rows) if len(r) < 2 or not r[0].strip() or not r[1].strip()), None)
    if bad is not None:
        raise ConvpropError(f"{path}: row {bad + 1} is not 'path,label': {','.join(rows[bad])!r}")
    if not rows:
        raise ConvpropError(f"{path}: no 'path,label' rows")
    names = sorted({r[1].strip() for r in rows}, key=_sort_key)
    if len(names) < 2:
        raise ConvpropError(f"{path}: needs at least two classes; every row has label {names[0]!r}")
    index = {name: k for k, name in enumerate(names)}
    paths = [Path(r[0].strip()) if Path(r[0].strip()).is_absolute() else path.parent / r[0].strip() for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ConvpropError(f"{path}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]}")
    notes.append(f"{path}: {len(rows)} images in {len(names)} classes")
    return ImageList(paths, np.array([index[r[1].strip()] for r in rows], dtype=np.intp), names)


def _split_dirs(root: Path) -> tuple[Path | None, Path | None]:
    names = {d.name.lower(): d for d in _class_dirs(root)}
    test = next((names[t] for t in TEST_DIRS if t in names), None)
    return names.get("train"), test


def find_images(path: str | os.PathLike, notes: list[str] | None = None) -> tuple[ImageList, ImageList | None]:
    """(training images, test images or None) of a folder of class folders or a CSV file.

    With ``train/`` and ``test/`` (or ``val/``) sub-folders, each holding class folders, both
    are returned; otherwise all images are training images and the test set is None.
    """
    notes = [] if notes is None else notes
    root = Path(path).expanduser()
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise ConvpropError(f"{root}: is a file, not a folder of class folders or a .csv of path,label")
        return list_csv(root, notes), None
    if not root.is_dir():
        raise ConvpropError(f"{root}: no such folder or .csv file")
    train_dir, test_dir = _split_dirs(root)
    if train_dir is not None and test_dir is not None:
        train = list_class_folders(train_dir, None, notes)
        return train, list_class_folders(test_dir, train.class_names, notes)
    return list_class_folders(root, None, notes), None


def is_image_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like an own-images data set: a .csv file, or a folder whose
    sub-folders (or train/ sub-folders) hold image files."""
    root = Path(path).expanduser()
    if root.is_file():
        return root.suffix.lower() == ".csv"
    if not root.is_dir():
        return False
    train_dir, _ = _split_dirs(root)
    for d in _class_dirs(train_dir or root):
        if any(_is_image(p) for p in d.rglob("*")):
            return True
    return False


def holdout(images: ImageList, fraction: float, seed: int) -> tuple[ImageList, ImageList]:
    """(train, test): ``fraction`` of each class held out for testing (seeded; at least one image
    of every class with two or more stays on each side)."""
    if not 0 < fraction < 1:
        raise ConvpropError(f"the held-out share must be between 0 and 1, got {fraction:g}")
    rng = np.random.default_rng(seed)
    test = []
    for k in range(len(images.class_names)):
        members = np.flatnonzero(images.labels == k)
        n = int(round(fraction * members.size))
        n = min(max(n, 1), members.size - 1) if members.size > 1 else 0
        test.extend(rng.permutation(members)[:n])
    is_test = np.zeros(len(images.paths), dtype=bool)
    is_test[np.asarray(test, dtype=np.intp)] = True
    return images.subset(np.flatnonzero(~is_test)), images.subset(np.flatnonzero(is_test))


def parse_size(text: str | int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"28"`` → (28, 28), ``"64x128"`` (height x width) → (64, 128); None stays None."""
    if text is None or isinstance(text, tuple):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", str(text))
    if not m or int(m[1]) < 1 or (m[2] and int(m[2]) < 1):
        raise ConvpropError(f"an image size is N or HxW in pixels (e.g. 28 or 64x128), got {text!r}")
    h = int(m[1])
    return h, int(m[2]) if m[2] else h


def choose_shape(paths: list[Path], size: tuple[int, int] | None, color: str,
                 notes: list[str]) -> tuple[int, int, int]:
    """The (H, W, C) the images are read at: ``size`` or the most common size; C from ``color``.

    ``color`` is ``"auto"`` (RGB when any image has colour, else grey), ``"rgb"`` or ``"grey"``.
    Only the files' headers are read.
    """
    if color not in ("auto", "rgb", "grey", "gray"):
        raise ConvpropError(f"color must be auto, rgb or grey, got {color!r}")
    sizes: Counter = Counter()
    coloured = 0
    for p in paths:
        h, w, has_colour = probe_image(p)
        sizes[(h, w)] += 1
        coloured += has_colour
    if size is None:
        size = max(sizes, key=lambda s: (sizes[s], s))
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}: {n}" for (h, w), n in sizes.most_common(4))
            notes.append(f"image sizes differ ({shown}{', …' if len(sizes) > 4 else ''}); all are resized "
                         f"to {size[1]}x{size[0]}, the most common")
    c = 3 if color == "rgb" or (color == "auto" and coloured) else 1
    if color == "auto" and coloured:
        notes.append(f"{coloured} of {len(paths)} training images have colour: read as RGB, 3 input maps")
    return size[0], size[1], c


def _summarise(counts: Counter, shape: tuple[int, int, int], what: str) -> list[str]:
    """One line per kind of conversion, with how many images it touched."""
    kinds: Counter = Counter()
    for note, n in counts.items():
        kinds[re.sub(r"^resized \S+ → \S+", f"resized to {shape[1]}x{shape[0]}", note)] += n
    return [f"{what}: {n} image(s): {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]


def read_images(images: ImageList, shape: tuple[int, int, int], dtype=np.float32, *,
                max_memory: int = 1 << 30, progress: bool = False, what: str = "images",
                notes: list[str] | None = None) -> np.ndarray:
    """Decode every image into one array, one image at a time.

    Parameters
    ----------
    images : ImageList
    shape : (H, W, C)
    dtype : float32 or float64
    max_memory : int
        Larger arrays (in bytes) are file-backed (``numpy.memmap`` on an anonymous
        temporary file), so that only the pages in use take memory.
    progress : bool
        A progress bar on stderr.
    what, notes
        The conversions made are appended to ``notes``, counted, prefixed with ``what``.

    Returns
    -------
    ndarray, shape (N, H, W) when C = 1, else (N, H, W, C); values in [0, 1].
    """
    from tqdm.auto import tqdm

    h, w, c = shape
    out_shape = (len(images.paths), h, w) + ((c,) if c > 1 else ())
    nbytes = int(np.prod(out_shape)) * np.dtype(dtype).itemsize
    if nbytes > max_memory:
        out = np.memmap(tempfile.TemporaryFile(prefix="convprop-images-"), dtype=dtype, mode="w+", shape=out_shape)
        if notes is not None:
            notes.append(f"{what}: {nbytes / 2**20:.0f} MiB of pixels, more than {max_memory / 2**20:.0f} MiB: "
                         f"kept in a temporary file on disk")
    else:
        out = np.empty(out_shape, dtype=dtype)
    counts: Counter = Counter()
    for i, p in enumerate(tqdm(images.paths, desc=f"reading {what}", unit="img", disable=not progress,
                               mininterval=0.5)):
        out[i], made = decode_image(p, shape)
        counts.update(made)
    if notes is not None:
        notes.extend(_summarise(counts, shape, what))
    return out


@dataclass
class ImageFolder:
    """An own-images data set, decoded (see :func:`load_image_folder`).

    Attributes
    ----------
    x_train, x_test : ndarray, shape (N, H, W) grey or (N, H, W, 3) RGB, values in [0, 1]
        In memory or file-backed (``numpy.memmap``), as ``max_memory`` decided.
    y_train, y_test : ndarray of int, shape (N,)
        Indices into ``class_names``.
    class_names : list of str
        The class folders' names (or the CSV's labels), sorted.
    image_shape : (H, W, C)
        What to build the network's ``Input`` with.
    split : str
        Where the test images came from (``test/`` folder or a held-out share).
    notes : list of str
        Every decision and conversion, one line each (sizes, colour, resizing, files ignored).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int, int]
    split: str
    notes: list[str] = field(default_factory=list)


def load_image_folder(path: str | os.PathLike, *, image_size: str | int | tuple[int, int] | None = None,
                      color: str = "auto", val_split: float = 0.2, seed: int = 0, dtype=np.float32,
                      max_memory: int = 1 << 30, progress: bool = False) -> ImageFolder:
    """Read a folder of class folders (or a CSV of path,label) as training and test images.

    Parameters
    ----------
    path : path-like
        ``root/<class>/*.png`` …, ``root/train/<class>/…`` with ``root/test/<class>/…``
        (or ``val/``), or a ``.csv`` file of ``path,label`` rows.
    image_size : int, "HxW" or (H, W), optional
        Size every image is resized to; default: the most common size.
    color : {"auto", "rgb", "grey"}
        "auto": 3 input maps (RGB) when any image has colour, else 1 (grey).
    val_split : float
        Without a test folder, this share of each class is held out for testing.
    seed : int
        Seed of that split.
    dtype : float32 or float64
    max_memory : int
        Decoded arrays larger than this many bytes live in temporary files on disk.
    progress : bool
        Progress bars while reading.

    Returns
    -------
    ImageFolder
    """
    notes: list[str] = []
    train, test = find_images(path, notes)
    if test is None:
        train, test = holdout(train, val_split, seed)
        split = f"{100 * val_split:g} % of each class held out for testing (seed {seed})"
    else:
        split = "the train/ and test/ folders"
    if len(test.paths) == 0:
        raise ConvpropError(f"{path}: no images left to test on (every class has a single image)")
    shape = choose_shape(train.paths, parse_size(image_size), color, notes)
    read = dict(dtype=dtype, max_memory=max_memory, progress=progress, notes=notes)
    x_train = read_images(train, shape, what="training images", **read)
    x_test = read_images(test, shape, what="test images", **read)
    return ImageFolder(x_train, train.labels, x_test, test.labels, train.class_names, shape, split, notes)
