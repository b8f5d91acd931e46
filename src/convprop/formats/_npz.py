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

import numpy as np

from .._files import file_errors, open_regular
from ..errors import ConvpropError

__all__ = ["read_npz", "read_npy"]

#: Members accepted in one archive (a convprop file holds a dozen).
MAX_MEMBERS = 10_000
#: Largest .npy header accepted (NumPy writes 64- to a few hundred bytes).
MAX_HEADER = 1 << 16
#: Most dimensions an array may have (NumPy's own limit).
MAX_DIMS = 64
#: zlib never inflates by more than about 1032:1.
_MAX_RATIO = 1100
_MAGIC = b"\x93NUMPY"


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
        raise ConvpropError(f"{where}: .npy shape {shape!r:.80} is not a tuple of sizes")
    if len(shape) > MAX_DIMS:
        raise ConvpropError(f"{where}: .npy array of {len(shape)} dimensions (at most {MAX_DIMS})")
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


def _read_into(stream, nbytes: int, label: str) -> bytearray:
    """Exactly ``nbytes`` from ``stream`` into one buffer (no second copy)."""
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        k = stream.readinto(view[got:got + (1 << 20)])  # slices: gzip/zip read() a temporary of the size asked
        if not k:
            raise ConvpropError(f"{label}: truncated data")
        got += k
    return buf


def _array(data: bytearray, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> np.ndarray:
    """The array over ``data`` (writable, not copied)."""
    count = int(np.prod(shape, dtype=object))
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def read_npz(path: str | os.PathLike, names=None, limits: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, checked member by member; never unpickles.

    Every size is checked before anything is allocated: the members' claimed sizes against what
    deflate can make of the archive's bytes, each header against its member's size, and the
    caps in ``limits``. Each array is read once, straight into its own buffer, so the peak memory
    is the size of the arrays returned plus a constant.

    Parameters
    ----------
    path : str or path-like
        A regular file (a FIFO or device is refused at once).
    names : callable, optional
        ``names(key) -> bool``: read only the members it accepts (others are still checked to be
        plain arrays of consistent sizes, but not loaded).
    limits : dict, optional
        Key → largest number of data bytes accepted for that member (e.g. metadata).

    Returns
    -------
    dict
        Key (member name without ``.npy``) → array.

    Raises
    ------
    ConvpropError
        Not a zip archive, a corrupt, encrypted or unsupported one, a member that is not a
        plain numeric .npy array, sizes that do not match what the archive holds, or a member
        over its limit.
    """
    where = str(path)
    limits = limits or {}
    with open_regular(path, ".npz") as f:
        try:
            return _read_members(f, os.fstat(f.fileno()).st_size, where, names, limits)
        except ConvpropError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError,
                OSError, EOFError, ValueError, struct.error, KeyError, OverflowError, UnicodeDecodeError) as exc:
            # RuntimeError: encrypted member; NotImplementedError: unknown compression or zip version.
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConvpropError(f"{where}: cannot read it as a .npz file ({message})") from None


def _read_members(f, file_size: int, where: str, names, limits: dict[str, int]) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(f) as zf:
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
            label = f"{where}: member {info.filename!r:.80}"
            if info.file_size > _MAX_RATIO * info.compress_size + 1024:
                raise ConvpropError(f"{label} claims {info.file_size} bytes from {info.compress_size}")
            with zf.open(info) as member:
                shape, fortran, dtype, offset = _header(member, label)
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes != info.file_size - offset:
                    raise ConvpropError(
                        f"{label}: header declares {nbytes} bytes of data "
                        f"({'×'.join(map(str, shape)) or 'scalar'} {dtype}), the archive holds "
                        f"{info.file_size - offset}")
                if names is not None and not names(key):
                    continue
                if key in limits and nbytes > limits[key]:
                    raise ConvpropError(f"{label}: {nbytes} bytes, more than the {limits[key]} accepted")
                out[key] = _array(_read_into(member, nbytes, label), shape, fortran, dtype)
        return out


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """One ``.npy`` array, its header checked against the file size before allocating.

    Raises
    ------
    ConvpropError
        Missing, unreadable or not a regular file, not a plain numeric .npy array (object
        arrays are refused), or a header that declares more or fewer bytes than the file holds.
    """
    where = str(path)
    with open_regular(path, ".npy") as f, file_errors(where, ".npy"):
        size = os.fstat(f.fileno()).st_size
        shape, fortran, dtype, offset = _header(f, where)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes != size - offset:
            raise ConvpropError(f"{where}: header declares {nbytes} bytes of data, the file holds {size - offset}")
        return _array(_read_into(f, nbytes, where), shape, fortran, dtype)
