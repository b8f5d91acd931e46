"""Reading ``.npz`` archives from untrusted files: plain arrays only, sizes checked first.

``np.load(path, allow_pickle=False)`` already refuses object arrays, but on a hostile archive it
lets through exceptions of many types (``NotImplementedError`` for an odd zip version,
``zlib.error``, ``RuntimeError`` for an encrypted member …) and trusts the shape in each member's
header: ``numpy.lib.format.read_array`` allocates the declared array before reading it, so a
few-kilobyte deflated member declaring 10¹¹ values is a huge allocation. Here every member is
checked before anything is allocated: its ``.npy`` header must declare a plain (non-object)
dtype and exactly as many bytes as the zip entry holds, and the entry's size must be one that
zlib could really have produced from its compressed bytes.
"""

from __future__ import annotations

import ast
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import ConvpropError

__all__ = ["read_npz", "read_npy"]

#: Members accepted in one archive (a convprop file holds a dozen).
MAX_MEMBERS = 10_000
#: Largest .npy header accepted (NumPy writes 64- to a few hundred bytes).
MAX_HEADER = 1 << 16
#: zlib never inflates by more than about 1032:1.
_MAX_RATIO = 1100
_MAGIC = b"\x93NUMPY"


@contextmanager
def file_errors(where: str, kind: str) -> Iterator[None]:
    """Turn the OS errors of opening and reading ``where`` (a ``kind`` file) into one-line ConvpropErrors."""
    try:
        yield
    except FileNotFoundError:
        raise ConvpropError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ConvpropError(f"{where} is a directory, not a {kind} file") from None
    except OSError as exc:
        raise ConvpropError(f"{where}: cannot read it ({exc.strerror or exc})") from None


def _header(member, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of the .npy stream ``member``."""
    head = member.read(10)
    if len(head) < 10 or head[:6] != _MAGIC:
        raise ConvpropError(f"{where}: not a .npy array")
    major = head[6]
    if major == 1:
        length, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3):
        head += member.read(2)
        if len(head) < 12:
            raise ConvpropError(f"{where}: truncated .npy header")
        length, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        raise ConvpropError(f"{where}: unknown .npy format version {major}")
    if length > MAX_HEADER:
        raise ConvpropError(f"{where}: .npy header of {length} bytes (at most {MAX_HEADER})")
    raw = member.read(length)
    if len(raw) != length:
        raise ConvpropError(f"{where}: truncated .npy header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        d = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ConvpropError(f"{where}: .npy header is not a Python literal") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ConvpropError(f"{where}: .npy header must have exactly descr, fortran_order, shape")
    shape, fortran, descr = d["shape"], d["fortran_order"], d["descr"]
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise ConvpropError(f"{where}: .npy shape {shape!r} is not a tuple of sizes")
    if not isinstance(fortran, bool):
        raise ConvpropError(f"{where}: .npy fortran_order must be True or False")
    if not isinstance(descr, str):  # lists describe structured dtypes: never needed here
        raise ConvpropError(f"{where}: only plain numeric arrays are read (dtype {descr!r})")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, SyntaxError):
        raise ConvpropError(f"{where}: unknown dtype {descr!r}") from None
    if dtype.hasobject:
        raise ConvpropError(f"{where}: refusing to load pickled (object) arrays")
    if dtype.kind not in "biufc" or dtype.itemsize == 0:
        raise ConvpropError(f"{where}: only numeric arrays are read (dtype {dtype})")
    return shape, fortran, dtype, start + length


def read_npz(path: str | os.PathLike, names=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, checked member by member; never unpickles.

    Parameters
    ----------
    path : str or path-like
    names : callable, optional
        ``names(key) -> bool``: read only the members it accepts (others are still checked to be
        plain arrays of consistent sizes, but not loaded).

    Returns
    -------
    dict
        Key (member name without ``.npy``) → array.

    Raises
    ------
    ConvpropError
        Not a zip archive, a corrupt, encrypted or unsupported one, a member that is not a
        plain numeric .npy array, or sizes that do not match what the archive holds.
    """
    path = Path(path)
    where = str(path)
    try:
        file_size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise ConvpropError(f"{where}: {len(infos)} members in the archive (at most {MAX_MEMBERS})")
            total = sum(info.file_size for info in infos)
            if total > _MAX_RATIO * file_size + (1 << 20):
                raise ConvpropError(f"{where}: members claim {total} bytes, more than a {file_size}-byte"
                                    " archive can hold")
            out = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                label = f"{where}: member {info.filename!r}"
                if info.file_size > _MAX_RATIO * info.compress_size + 1024:
                    raise ConvpropError(f"{label} claims {info.file_size} bytes from {info.compress_size}")
                with zf.open(info) as member:
                    shape, fortran, dtype, offset = _header(member, label)
                    count = int(np.prod(shape, dtype=object))
                    if count * dtype.itemsize != info.file_size - offset:
                        raise ConvpropError(
                            f"{label}: header declares {count * dtype.itemsize} bytes of data "
                            f"({'×'.join(map(str, shape)) or 'scalar'} {dtype}), the archive holds "
                            f"{info.file_size - offset}")
                    if names is not None and not names(key):
                        continue
                    data = member.read(count * dtype.itemsize)
                    if len(data) != count * dtype.itemsize:
                        raise ConvpropError(f"{label}: truncated data")
                array = np.frombuffer(data, dtype=dtype, count=count)
                out[key] = array.reshape(shape, order="F" if fortran else "C").copy()
            return out
    except ConvpropError:
        raise
    except FileNotFoundError:
        raise ConvpropError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ConvpropError(f"{where} is a directory, not a .npz file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError,
            OSError, EOFError, ValueError, struct.error, KeyError, OverflowError, UnicodeDecodeError,
            MemoryError) as exc:
        # RuntimeError: encrypted member; NotImplementedError: unknown compression or zip version.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConvpropError(f"{where}: cannot read it as a .npz file ({message})") from None


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """One ``.npy`` array, its header checked against the file size before allocating.

    Raises
    ------
    ConvpropError
        Missing or unreadable file, not a plain numeric .npy array (object arrays are refused),
        or a header that declares more or fewer bytes than the file holds.
    """
    path = Path(path)
    where = str(path)
    with file_errors(where, ".npy"):
        size = path.stat().st_size
        with open(path, "rb") as f:
            shape, fortran, dtype, offset = _header(f, where)
            count = int(np.prod(shape, dtype=object))
            if count * dtype.itemsize != size - offset:
                raise ConvpropError(f"{where}: header declares {count * dtype.itemsize} bytes of data, "
                                    f"the file holds {size - offset}")
            data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ConvpropError(f"{where}: truncated data")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C").copy()
