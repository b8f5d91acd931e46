"""Reading and writing IDX files (the format of MNIST and Fashion-MNIST), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array's values, big-endian, row-major. Every byte is checked:
the reader never trusts the header's sizes before comparing them with what the file holds.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import ConvpropError
from .._files import atomic_write, file_errors, open_regular

__all__ = ["read_idx", "iter_idx", "write_idx", "IDX_DTYPES", "MAX_IDX_BYTES"]

#: IDX type code → big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
#: Largest payload :func:`read_idx` reads, in bytes, unless told otherwise (``max_bytes``):
#: 2 GiB, 45 times MNIST's training images. Checked from the header before allocating.
MAX_IDX_BYTES = 2 << 30
#: Most dimensions accepted (NumPy's limit).
MAX_DIMS = 64


def _codes_text() -> str:
    return ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)


def _read_exact(stream: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes from ``stream`` into one buffer of ``n`` bytes (shorter if the stream ends).

    The caller has already bounded ``n`` by what the file can hold and by a cap.
    """
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:got + (1 << 20)])  # slices: gzip/zip read() a temporary of the size asked
        if not k:
            del view
            return buf[:got]
        got += k
    return buf


#: deflate never expands data by more than about 1032:1.
_MAX_GZIP_RATIO = 1032


def _parse(stream: BinaryIO, name: str, raw_size: int | None, gz_size: int | None = None,
           max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    shape, dtype, expected = _header(stream, name, raw_size, gz_size, max_bytes)
    shape_text = "×".join(map(str, shape))
    data = _read_exact(stream, expected)
    if len(data) < expected:
        raise ConvpropError(
            f"{name}: truncated IDX payload: header declares {shape_text} values"
            f" = {expected} bytes, file holds {len(data)}"
        )
    if stream.read(1):
        raise ConvpropError(
            f"{name}: oversized IDX payload: more than the {expected} bytes the header"
            f" declares ({shape_text})"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)  # writable: data is a bytearray
    if not dtype.isnative:
        array = array.view(dtype.newbyteorder("="))
        array.byteswap(inplace=True)  # in place: no second copy
    return array


def _header(stream: BinaryIO, name: str, raw_size: int | None, gz_size: int | None,
            max_bytes: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, payload bytes) from an IDX header, checked against the file and ``max_bytes``."""
    head = stream.read(4)
    if len(head) < 4:
        raise ConvpropError(f"{name}: not an IDX file: only {len(head)} byte(s), a header needs 4")
    if head[0] != 0 or head[1] != 0:
        raise ConvpropError(
            f"{name}: not an IDX file: magic number starts with 0x{head[0]:02X} 0x{head[1]:02X},"
            " expected 0x00 0x00"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise ConvpropError(
            f"{name}: unknown IDX data type code 0x{code:02X} (valid: {_codes_text()})"
        )
    if ndim == 0 or ndim > MAX_DIMS:
        raise ConvpropError(f"{name}: IDX header declares {ndim} dimensions (1 to {MAX_DIMS} are read)")
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise ConvpropError(
            f"{name}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes,"
            f" found {len(dims_bytes)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    shape_text = "×".join(map(str, shape))
    # An empty array may still have dimensions whose product (in bytes) NumPy cannot index
    # (0×(2**32 − 1)×… found by fuzz/fuzz_idx.py, 0×84828×374648×36277479 float64 by the
    # Hypothesis tests: reshape raised a bare ValueError).
    nonzero = int(np.prod([d for d in shape if d], dtype=object))
    if 0 in shape and nonzero * dtype.itemsize > np.iinfo(np.intp).max:
        raise ConvpropError(f"{name}: IDX header declares an impossible shape {shape_text}")
    if raw_size is not None:
        # Uncompressed: the file size tells the payload size before anything is allocated.
        payload = raw_size - 4 - 4 * ndim
        if payload != expected:
            problem = "truncated" if payload < expected else "oversized"
            raise ConvpropError(
                f"{name}: {problem} IDX payload: header declares {shape_text} {dtype.name}"
                f" values = {expected} bytes, file holds {payload}"
            )
    if gz_size is not None and expected > _MAX_GZIP_RATIO * gz_size + 1024:
        # Compressed: what a gzip file of this size can possibly hold bounds the payload.
        raise ConvpropError(
            f"{name}: truncated IDX payload: header declares {shape_text} {dtype.name} values"
            f" = {expected} bytes, more than a {gz_size}-byte gzip file can hold"
        )
    if expected > max_bytes:
        raise ConvpropError(
            f"{name}: IDX header declares {shape_text} {dtype.name} values = {expected} bytes, more"
            f" than the {max_bytes} read at most"
        )
    return shape, dtype, expected


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected by its magic bytes, not its name).

    Parameters
    ----------
    path : str or path-like
        A regular file (a FIFO, device or directory is refused at once).
    max_bytes : int, default MAX_IDX_BYTES (2 GiB)
        Largest payload read; checked from the header, before anything is allocated.

    Returns
    -------
    ndarray
        The array with the header's shape, in native byte order (uint8, int8, int16, int32,
        float32 or float64). Peak memory: the array's size plus a constant.

    Raises
    ------
    ConvpropError
        One line naming the file and the problem: missing file, bad magic number, unknown type
        code, truncated header, truncated or oversized payload, a payload over ``max_bytes``,
        corrupt gzip stream.
    """
    name = str(path)
    with open_regular(path, "IDX") as f, _idx_errors(name):
        size = os.fstat(f.fileno()).st_size
        if f.read(2) != _GZIP_MAGIC:
            f.seek(0)
            return _parse(f, name, size, max_bytes=max_bytes)
        f.seek(0)
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            return _parse(gz, name, None, size, max_bytes)


@contextlib.contextmanager
def _idx_errors(name: str):
    """gzip's and the OS's errors while reading ``name`` as one-line ConvpropErrors."""
    with file_errors(name, "IDX"):
        try:
            yield
        except (gzip.BadGzipFile, zlib.error) as exc:  # BadGzipFile is an OSError: caught first
            raise ConvpropError(f"{name}: corrupt gzip data ({exc})") from None
        except EOFError:
            raise ConvpropError(f"{name}: truncated gzip file (compressed stream ends early)") from None


#: Most bytes :func:`iter_idx` holds at once (one chunk), unless told otherwise.
STREAM_BYTES = 64 << 20


def iter_idx(path: str | os.PathLike, items: int, max_chunk_bytes: int = STREAM_BYTES
             ) -> tuple[tuple[int, ...], np.dtype, Iterator[np.ndarray]]:
    """Stream an IDX file: (shape, dtype, chunks of entries along the first axis).

    The header is checked as :func:`read_idx` checks it (against the file's size; no cap on the
    whole payload, since only one chunk is ever held). Chunks hold at most ``items`` entries and
    at most ``max_chunk_bytes``; they are native-byte-order arrays. For reading a file of any
    number of images in constant memory (``convprop predict``).

    Raises
    ------
    ConvpropError
        As :func:`read_idx`, and for one entry (an image) bigger than ``max_chunk_bytes``.
    """
    name = str(path)
    f = open_regular(path, "IDX")
    try:
        with _idx_errors(name):
            size = os.fstat(f.fileno()).st_size
            gz = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f, mode="rb") if gz else f
            shape, dtype, expected = _header(stream, name, None if gz else size, size if gz else None,
                                             max_bytes=1 << 62)
        row = dtype.itemsize * int(np.prod(shape[1:], dtype=object))
        if row > max_chunk_bytes:
            raise ConvpropError(f"{name}: entries of {'×'.join(map(str, shape[1:]))} {dtype.name} values = {row} "
                                f"bytes each, more than the {max_chunk_bytes} read at once")
    except BaseException:
        f.close()
        raise
    items = max(1, min(items, max_chunk_bytes // max(row, 1)))
    return shape, dtype, _chunks(f, stream, name, shape, dtype, expected, items)


def _chunks(f, stream, name, shape, dtype, expected, items):
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=object))
    with f, _idx_errors(name):
        left = expected
        while left > 0:
            want = min(left, max(row, 1) * items)
            data = _read_exact(stream, want)
            if len(data) < want:
                raise ConvpropError(f"{name}: truncated IDX payload: {expected - left + len(data)} of the"
                                    f" {expected} bytes the header declares")
            left -= want
            array = np.frombuffer(data, dtype=dtype).reshape(-1, *shape[1:])
            yield array.astype(dtype.newbyteorder("=")) if not dtype.isnative else array
        if stream.read(1):
            raise ConvpropError(f"{name}: oversized IDX payload: more than the {expected} bytes the header declares")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically (temporary file, then rename).

    A name ending in ``.gz`` gives a gzip-compressed file (reproducible: no time stamp).

    Parameters
    ----------
    path : str or path-like
    array : ndarray of uint8, int8, int16, int32, float32 or float64, 1 to 255 dimensions,
        each below 2**32.

    Raises
    ------
    ConvpropError
        For a dtype IDX cannot hold (nothing is cast silently) or an impossible shape.
    """
    array = np.asarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _CODES or array.dtype.kind == "b":
        raise ConvpropError(
            f"write_idx: IDX cannot hold dtype {array.dtype}"
            " (use uint8, int8, int16, int32, float32 or float64)"
        )
    if not 1 <= array.ndim <= 255:
        raise ConvpropError(f"write_idx: IDX needs 1 to 255 dimensions, array has {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ConvpropError(f"write_idx: dimension too large for IDX: {array.shape}")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    with atomic_write(path, suffix=".part") as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(header)
                gz.write(body)
        else:
            f.write(header)
            f.write(body)


def looks_like_idx(path: str | os.PathLike) -> bool:
    """An IDX file, raw (0, 0, type code, ndim) or gzip'd, told by its first bytes, not its name.

    Raises ConvpropError for a missing, unreadable or non-regular file (never blocks on a FIFO).
    """
    with open_regular(path, "IDX or image") as fh, file_errors(str(path), "IDX or image"):
        head = fh.read(4)
    return head[:2] == b"\x1f\x8b" or (len(head) == 4 and head[:2] == b"\0\0" and head[2] in (8, 9, 11, 12, 13, 14))
