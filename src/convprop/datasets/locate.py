"""Where dataset files are looked for, in order.

1. an explicit ``path`` (the only place looked at when given), else ``$CONVPROP_DATA``;
   each may hold the files directly or in a sub-directory named after the dataset;
2. the user cache: ``$CONVPROP_CACHE``, else ``$XDG_CACHE_HOME/convprop``, else
   ``~/.cache/convprop`` (files in ``<cache>/<dataset>/``);
3. where a distribution package installs the dataset (Debian's
   ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST);
4. (done by the caller) a download into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from ..errors import ConvpropError
from .catalog import DATASETS, DatasetSpec, FileSpec

__all__ = ["cache_dir", "dataset_cache_dir", "find_in_dir", "locate", "file_names"]


def cache_dir() -> Path:
    """The user cache directory: ``$CONVPROP_CACHE``, ``$XDG_CACHE_HOME/convprop`` or
    ``~/.cache/convprop`` (not created here)."""
    explicit = os.environ.get("CONVPROP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "convprop"
    return Path.home() / ".cache" / "convprop"


def dataset_cache_dir(spec: DatasetSpec) -> Path:
    return cache_dir() / spec.name


def file_names(spec_file: FileSpec) -> tuple[str, ...]:
    """Accepted names for one file: standard, gzip'd, and the ``train-images.idx3-ubyte`` form."""
    dotted = spec_file.stem.replace("-idx", ".idx")
    return (spec_file.gz_name, spec_file.stem, dotted + ".gz", dotted)


def find_in_dir(directory: Path, spec: DatasetSpec, split: str) -> tuple[Path, Path] | None:
    """(images, labels) paths for ``split`` if both are in ``directory``, else None."""
    found = []
    for spec_file in spec.files[split]:
        hit = next((directory / n for n in file_names(spec_file) if (directory / n).is_file()),
                   None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _content_sha256(path: Path) -> str | None:
    """SHA-256 of a (small) file's decompressed content; None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            return hashlib.sha256(f.read(1 << 22)).hexdigest()
    except (OSError, EOFError, ValueError):
        return None


def identify(labels_path: Path) -> str | None:
    """Which catalogued dataset a label file belongs to (by checksum), or None if unknown."""
    digest = _content_sha256(labels_path)
    for spec in DATASETS.values():
        for _, labels in spec.files.values():
            if labels.sha256 == digest:
                return spec.name
    return None


def _dirs_under(root: Path, spec: DatasetSpec) -> list[Path]:
    dirs = [root / spec.name, root / spec.name.replace("-", "_"), root]
    return list(dict.fromkeys(dirs))


def locate(spec: DatasetSpec, split: str, path: str | os.PathLike | None = None
           ) -> tuple[tuple[Path, Path] | None, list[str]]:
    """Find the IDX files of ``spec``/``split`` without downloading.

    Returns
    -------
    (paths or None, places searched)
        ``paths`` is (images, labels). With an explicit ``path`` that does not hold the files,
        or holds another catalogued dataset, a ConvpropError is raised rather than searching on.
    """
    if path is not None:
        root = Path(path).expanduser()
        if root.is_file():
            raise ConvpropError(f"{root} is a file; name the directory that holds the {spec.name} IDX files")
        if not root.is_dir():
            raise ConvpropError(f"{root}: no such directory (it should hold the {spec.name} IDX files)")
        for d in _dirs_under(root, spec):
            hit = find_in_dir(d, spec, split)
            if hit is not None:
                other = identify(hit[1])
                if other not in (None, spec.name):
                    raise ConvpropError(f"{hit[1]}: these are {other} files, not {spec.name}")
                return hit, [str(root)]
        wanted = " and ".join(f.gz_name for f in spec.files[split])
        apt = (f"; on Debian / Ubuntu, sudo apt-get install {spec.package} puts them in {spec.system_dirs[0]}"
               if spec.package else "")
        raise ConvpropError(f"{root}: no {spec.name} {split} files found there (need {wanted},"
                            f" gzip'd or not){apt}")

    searched: list[str] = []
    candidates: list[Path] = []
    env = os.environ.get("CONVPROP_DATA")
    if env:
        candidates += _dirs_under(Path(env).expanduser(), spec)
    candidates.append(dataset_cache_dir(spec))
    candidates += [Path(d) for d in spec.system_dirs]
    for d in candidates:
        searched.append(str(d))
        hit = find_in_dir(d, spec, split)
        if hit is None:
            continue
        if identify(hit[1]) not in (None, spec.name):
            continue  # e.g. $CONVPROP_DATA holds MNIST and Fashion-MNIST was asked for
        return hit, searched
    return None, searched
