"""The data of a ``convprop train`` run: MNIST / Fashion-MNIST IDX files, or your own images
(a folder of class folders or a CSV of path,label; see :mod:`convprop.datasets.folder`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConvpropError
from ._common import CLASS_NAMES, load_split, say

IMAGES = "images"  #: the ``dataset`` of a run on own images


@dataclass
class RunData:
    """What a training run needs: float images in [0, 1], labels, names, a one-line description."""

    images: np.ndarray  # the test images as they are shown in plots
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    description: str


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of own-images runs (``--data-dir`` naming a folder of class folders or a CSV)."""
    g = parser.add_argument_group(
        "own images", "--data-dir may name a folder with one sub-folder of images per class (PNG, JPEG, BMP, "
        "TIFF, WebP …; optionally inside train/ and test/ folders) or a .csv of path,label rows")
    g.add_argument("--image-size", metavar="HxW", help="resize every image to this size, e.g. 28 or 64x128 "
                   "(default: the most common size, said in the output)")
    g.add_argument("--color", choices=("auto", "rgb", "grey"),
                   help="rgb: 3 input maps; grey: convert colour to grey (default auto: rgb when any image has colour)")
    g.add_argument("--val-split", type=float, metavar="F",
                   help="without a test/ folder, hold out this share of each class for testing (default 0.2; "
                        "seeded by --seed)")


def check_data_dir(value: str | None) -> None:
    """A one-line error naming ``--data-dir`` for a path that cannot be data."""
    if value is None:
        return
    p = Path(value).expanduser()
    if not p.exists():
        raise ConvpropError(f"--data-dir {value}: no such directory")
    if p.is_file() and p.suffix.lower() != ".csv":
        raise ConvpropError(f"--data-dir {value} is a file; give the directory that holds the IDX files, "
                            "a folder of class folders, or a .csv of path,label")


def own_images(data_dir: str | None) -> bool:
    """Whether ``--data-dir`` names own images rather than IDX files."""
    from ..datasets.folder import is_image_dataset

    return data_dir is not None and is_image_dataset(data_dir)


def _image_settings(args, config: dict) -> dict:
    """The own-images settings of a run: the checkpoint's when resuming, else the flags'."""
    if config.get("dataset") == IMAGES and "image_size" in config:
        for flag in ("image_size", "color", "val_split"):
            if getattr(args, flag, None) is not None and getattr(args, flag) != config[flag]:
                raise ConvpropError(f"--resume keeps the run's settings; --{flag.replace('_', '-')} differs "
                                    f"(checkpoint: {config[flag]})")
        return {k: config[k] for k in ("image_size", "color", "val_split")}
    split = 0.2 if args.val_split is None else args.val_split
    if not 0 < split < 1:
        raise ConvpropError(f"--val-split must be between 0 and 1 (a share of each class), got {split:g}")
    return {"image_size": args.image_size, "color": args.color or "auto", "val_split": split}


def _load_images(args, config: dict, state, extra: dict, dtype) -> RunData:
    from ..datasets.folder import load_image_folder, parse_size

    settings = _image_settings(args, config)
    try:
        parse_size(settings["image_size"])
    except ConvpropError as exc:
        raise ConvpropError(f"--image-size: {exc}") from None
    data = load_image_folder(args.data_dir, image_size=settings["image_size"], color=settings["color"],
                             val_split=settings["val_split"], seed=config["seed"], dtype=dtype,
                             progress=not args.quiet)
    h, w, c = data.image_shape
    settings.update(image_size=f"{h}x{w}", color="rgb" if c == 3 else "grey")
    config.update(settings)
    state.config.update(settings)
    extra["images"] = {**settings, "seed": config["seed"]}  # how test / plot find the same test images
    for note in data.notes:
        say(args, f"note: {note}")
    classes = ", ".join(data.class_names[:8]) + (", …" if len(data.class_names) > 8 else "")
    description = (f"{args.data_dir} ({len(data.class_names)} classes: {classes}; {h}x{w} "
                   f"{'RGB' if c == 3 else 'grey'}; test: {data.split})")
    return RunData(data.x_test, data.x_train, data.y_train, data.x_test, data.y_test, data.class_names, description)


def _no_class_folders(data_dir: str | None) -> None:
    """A folder of images without class folders is a mistake worth naming."""
    from ..datasets.images import IMAGE_SUFFIXES

    root = Path(data_dir) if data_dir is not None else None
    if root is not None and root.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
        raise ConvpropError(f"--data-dir {data_dir}: no class folders: it holds images itself; put each class's "
                            f"images in a sub-folder named after the class ({root / 'cat'}/, {root / 'dog'}/ …)")


def load_run_data(args, config: dict, state, extra: dict, dtype, data_dir: str | None) -> RunData:
    """The training and test data of a run (``config["dataset"]``), as floats of ``dtype``."""
    if config["dataset"] == IMAGES:
        if data_dir is None:
            raise ConvpropError("this run trained on own images: say where they are with --data-dir")
        args.data_dir = data_dir
        return _load_images(args, config, state, extra, dtype)
    _no_class_folders(data_dir)
    _, x_train, y_train = load_split(config["dataset"], "train", data_dir, dtype, args.quiet)
    images, x_test, y_test = load_split(config["dataset"], "test", data_dir, dtype, args.quiet)
    return RunData(images, x_train, y_train, x_test, y_test, CLASS_NAMES[config["dataset"]], config["dataset"])


def load_test_split(args, extra: dict, net) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(dataset, images to show, x, y) of the test split a saved model is measured on (``test``, ``plot``)."""
    from ._common import data_dir_for

    check_data_dir(args.data_dir)
    dataset = args.dataset or extra.get("dataset", "mnist")
    data_dir = data_dir_for(args, extra) if dataset == extra.get("dataset") else args.data_dir
    if dataset != IMAGES:
        images, x, y = load_split(dataset, "test", data_dir, net.dtype, args.quiet)
        return dataset, images, x, y
    from ..datasets.folder import find_images, holdout, read_images

    settings = extra.get("images") or {}
    if data_dir is None:
        raise ConvpropError("this model was trained on own images: say where they are with --data-dir")
    train, test = find_images(data_dir)
    if test is None:
        _, test = holdout(train, float(settings.get("val_split", 0.2)), int(settings.get("seed", 0)))
    if test.class_names != class_names_of(extra, net):
        raise ConvpropError(f"--data-dir {data_dir}: its classes ({', '.join(test.class_names)}) are not the "
                            f"model's ({', '.join(class_names_of(extra, net))})")
    x = read_images(test, net.image_shape, net.dtype, progress=not args.quiet, what="test images")
    return data_dir, x, x, test.labels


def class_names_of(extra: dict, net) -> list[str]:
    from ._common import class_names

    return class_names(extra, net.n_outputs)
