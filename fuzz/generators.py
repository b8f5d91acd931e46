"""Generators of hostile files whose *claimed* sizes are the attack (issue 15, class 1 and 2).

Mutating bytes seldom produces a small file that claims a huge size consistently (a valid
header, a valid deflate stream, matching CRCs). So every fuzz target also reads inputs that
start with ``G`` as *parameters*: :func:`generate` turns the rest of the bytes into a file of the
target's format that claims sizes chosen by the fuzzer:

* ``idx``: gzip streams of up to 1 GiB of zeros (multi-member, built from one cached 1 MiB
  member), headers claiming more or less than that, more than 64 dimensions, raw files whose
  header claims more than the file holds;
* ``checkpoint``: a ``meta`` member that inflates to up to 1 GiB; metadata naming huge layers
  (``100000f-100000f``), huge input shapes or output counts, non-string parameter names, odd
  ``output``/``dtype``/``config``/``epoch_elapsed`` values, beside a real checkpoint's arrays;
* ``mat``: toolbox structs whose ``inputsize`` is up to 10⁶×10⁶, compressed cell arrays of up
  to 2²⁴ empty matrices, field-less struct arrays of up to 2⁶² elements, arrays of up to 80
  dimensions;
* ``image``: PNG headers claiming up to 2³¹×2³¹ pixels over a small or large zlib stream.

Every generator is deterministic in its input and cheap: big streams are cached per size.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import struct
import zlib

import numpy as np

MIB = 1 << 20


class Params:
    """Integers drawn from the fuzzer's bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], from as many bytes as the range needs."""
        span = hi - lo
        nbytes = max(1, (span.bit_length() + 7) // 8)
        raw = self.data[self.pos:self.pos + nbytes].ljust(nbytes, b"\0")
        self.pos += nbytes
        return lo + int.from_bytes(raw, "little") % (span + 1)

    def size(self, max_log2: int) -> int:
        """A size spread over orders of magnitude: 2^k plus or minus a little."""
        k = self.int(0, max_log2)
        return max(0, (1 << k) + self.int(-2, 2))

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]


# ---------------------------------------------------------------- IDX


@functools.lru_cache(maxsize=None)
def _gzip_zeros_mib() -> bytes:
    return gzip.compress(b"\0" * MIB, mtime=0)


def idx(data: bytes) -> bytes:
    """An IDX file whose header and payload sizes the fuzzer chooses."""
    p = Params(data)
    code = p.pick((0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E))
    ndim = p.pick((1, 2, 3, 4, 65, 70, 255))
    mib = p.pick((0, 0, 0, 0, 0, 1, 1, 2, 16, 1024))  # real payload, in MiB of zeros (big ones rarely)
    mode = p.int(0, 2)
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[code]
    if mode == 0 and ndim <= 4:  # a header that matches the payload exactly: a legitimately big file
        items = mib * MIB // itemsize
        dims = [items // (28 * 28), 28, 28][:ndim] if ndim == 3 else [items] + [1] * (ndim - 1)
    else:
        dims = [p.size(32) if p.int(0, 1) else p.int(0, 2**32 - 1) for _ in range(min(ndim, 8))]
        dims += [1] * (ndim - len(dims))
    dims = [min(d, 2**32 - 1) for d in dims]
    header = bytes([0, 0, code, ndim]) + struct.pack(f">{ndim}I", *dims)
    if mode == 2:  # raw: a header and a small payload
        return header + bytes(p.int(0, 64))
    return gzip.compress(header, mtime=0) + _gzip_zeros_mib() * mib


# ---------------------------------------------------------------- checkpoint / model


def _npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    d = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1")
    pad = 64 - (10 + len(d) + 1) % 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d) + pad + 1) + d + b" " * pad + b"\n"


@functools.lru_cache(maxsize=None)
def _zeros_segment(wbits: int) -> bytes:
    """1 MiB of zeros as deflate blocks ending in a full flush: self-contained, so that copies of
    it can follow one another in one stream (a 1 GiB stream is built in milliseconds)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = comp.compress(b"")  # the zlib header, if any, is not part of the segment
    return (first + comp.compress(b"\0" * MIB) + comp.flush(zlib.Z_FULL_FLUSH))[len(first) if wbits > 0 else 0:]


def _deflate_then_zeros(prefix: bytes, mib: int, wbits: int) -> tuple[bytes, int]:
    """(deflate stream of ``prefix`` + ``mib`` MiB of zeros, CRC-32 or Adler-32 of the data)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    check, zeros = (zlib.adler32 if wbits > 0 else zlib.crc32)(prefix), bytes(MIB)
    for _ in range(mib):
        check = (zlib.adler32 if wbits > 0 else zlib.crc32)(zeros, check)
    tail = comp.flush(zlib.Z_FINISH)  # a final empty block (and, for zlib, the Adler-32 of prefix only)
    if wbits > 0:
        tail = tail[:-4] + struct.pack(">I", check)
    return head + _zeros_segment(wbits) * mib + tail, check


@functools.lru_cache(maxsize=16)
def _zip_with_zero_meta(mib: int) -> bytes:
    """An .npz whose ``meta.npy`` is a uint8 array of ``mib`` MiB of zeros, deflated (zip by hand)."""
    header = _npy_header((mib * MIB,))
    data, crc = _deflate_then_zeros(header, mib, -15)
    name, size = b"meta.npy", len(header) + mib * MIB
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(name) + len(data), 0)
    return local + name + data + central + end


_LAYERS = ("{a}f-{b}f", "{a}f", "{a}c{k}", "{a}c{k}-s{k}", "{a}c{k}/{k}-{b}f", "2c3-s2", "{a}c{k}ps-m{k}c")


def _hostile_meta(p: Params, base: dict) -> dict:
    meta = json.loads(json.dumps(base))
    big = lambda: p.pick((p.size(20), p.size(40), p.int(1, 9)))  # noqa: E731
    meta["layers"] = p.pick(_LAYERS).format(a=big(), b=big(), k=p.int(1, 9))
    if p.int(0, 1):
        meta["input_shape"] = [big(), big(), p.pick((1, 3, big()))]
    if p.int(0, 3) == 0:
        meta["n_outputs"] = big()
    if p.int(0, 3) == 0:
        meta["params"] = p.pick(([1, 2], [None], ["conv1.weight", 3], [[1]], [{"a": 1}]))
    if p.int(0, 5) == 0:
        meta["output"] = p.pick((1, None, ["softmax"], "tanh"))
    if p.int(0, 5) == 0:
        meta["dtype"] = p.pick((1, "float16", None, "object"))
    training = meta.get("training")
    if isinstance(training, dict):
        if p.int(0, 2) == 0:
            training["epoch_elapsed"] = p.pick((1e308, -1.0, 10**400, "x", None))
        if p.int(0, 2) == 0:
            training["config"] = p.pick(({}, {"dtype": 1}, {"batch_size": "x"}, None, [1], {"layers": 5}))
        if p.int(0, 3) == 0:
            training["epoch"] = p.pick((-1, 10**30, 1.5, "1"))
    return meta


def checkpoint(data: bytes, real: dict[str, np.ndarray]) -> bytes:
    """A model/checkpoint archive: a huge deflated ``meta``, or hostile metadata beside ``real`` arrays."""
    p = Params(data)
    if p.int(0, 3) == 0:
        return _zip_with_zero_meta(p.pick((1, 4, 5, 64, 256, 1024)))
    base = json.loads(real["meta"].tobytes())
    meta = _hostile_meta(p, base)
    arrays = {k: v for k, v in real.items() if k != "meta"}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ---------------------------------------------------------------- MATLAB .mat


def _tag(mtype: int, payload: bytes) -> bytes:
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix(cls: int, dims: list[int], name: bytes, body: bytes = b"") -> bytes:
    flags = _tag(6, struct.pack("<II", cls, 0))
    return _tag(14, flags + _tag(5, struct.pack(f"<{len(dims)}i", *dims)) + _tag(1, name) + body)


def _compressed(payload: bytes) -> bytes:
    """An miCOMPRESSED element: no padding after it (loadmat reads the next tag right after)."""
    return struct.pack("<II", 15, len(payload)) + payload


def _mat_header() -> bytes:
    return b"MATLAB 5.0 MAT-file, convprop fuzz generator".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"


@functools.lru_cache(maxsize=16)
def _compressed_empty_cell(n: int) -> bytes:
    """A v5 .mat holding one compressed 1×n cell array of empty matrices (n a multiple of 2¹⁷ or less)."""
    empty = struct.pack("<II", 14, 0)
    flags = _tag(6, struct.pack("<II", 1, 0))
    head = flags + _tag(5, struct.pack("<2i", 1, n)) + _tag(1, b"c")
    inner = struct.pack("<II", 14, len(head) + 8 * n) + head
    if n < MIB // 8:
        return _mat_header() + _compressed(zlib.compress(inner + empty * n, 9))
    comp = zlib.compressobj(9)
    segment = comp.compress(empty * (MIB // 8)) + comp.flush(zlib.Z_FULL_FLUSH)
    segment = segment[2:]  # without the zlib header
    comp = zlib.compressobj(9)
    start = comp.compress(inner) + comp.flush(zlib.Z_FULL_FLUSH)
    check = zlib.adler32(inner)
    block = empty * (MIB // 8)
    for _ in range(n // (MIB // 8)):
        check = zlib.adler32(block, check)
    tail = comp.flush(zlib.Z_FINISH)[:-4] + struct.pack(">I", check)
    return _mat_header() + _compressed(start + segment * (n // (MIB // 8)) + tail)


def _toolbox_struct(h: int, w: int, maps: int, k: int, features: int) -> bytes:
    import scipy.io

    layers = np.empty((1, 3), dtype=object)
    layers[0, 0] = {"type": "i"}
    kernels = np.empty((1, 1), dtype=object)
    cells = np.empty((1, maps), dtype=object)
    for j in range(maps):
        cells[0, j] = np.zeros((k, k))
    kernels[0, 0] = cells
    biases = np.empty((1, maps), dtype=object)
    for j in range(maps):
        biases[0, j] = 0.0
    layers[0, 1] = {"type": "c", "outputmaps": float(maps), "kernelsize": float(k), "k": kernels, "b": biases}
    layers[0, 2] = {"type": "s", "scale": 2.0}
    cnn = {"layers": layers, "ffW": np.zeros((2, features)), "ffb": np.zeros((2, 1)),
           "inputsize": np.array([[float(h), float(w)]])}
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"cnn": cnn})
    return buf.getvalue()


def mat(data: bytes) -> bytes:
    """A .mat file claiming huge sizes: a toolbox net's inputsize, a cell or struct array, dimensions."""
    p = Params(data)
    mode = p.int(0, 3)
    if mode == 0:
        h, w = p.pick((p.size(20), 6000, 100000, 8)), p.pick((p.size(20), 6000, 100000, 8))
        return _toolbox_struct(h, w, p.int(1, 3), p.int(1, 5), p.int(1, 64))
    if mode == 1:
        return _compressed_empty_cell(1 << p.int(4, 24))
    if mode == 2:  # a struct array with no fields: nothing per element in the file
        dims = [p.size(31) for _ in range(p.int(2, 4))]
        body = _tag(5, struct.pack("<i", 1)) + _tag(1, b"")
        return _mat_header() + _matrix(2, [min(d, 2**31 - 1) for d in dims], b"s", body)
    ndim = p.pick((2, 64, 65, 80))
    return _mat_header() + _matrix(6, [1] * ndim, b"x", _tag(9, struct.pack("<d", 1.0)))


# ---------------------------------------------------------------- images


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=16)
def _zlib_zeros(mib: int) -> bytes:
    comp = zlib.compressobj(9)
    return b"".join([comp.compress(b"\0" * MIB) for _ in range(mib)] + [comp.flush()])


def image(data: bytes) -> bytes:
    """A PNG whose header claims width × height pixels chosen by the fuzzer over a zlib stream of zeros."""
    p = Params(data)
    width, height = p.size(31) or 1, p.size(31) or 1
    width, height = min(width, 2**31 - 1), min(height, 2**31 - 1)
    colour = p.pick((0, 2, 6))  # grey, RGB, RGBA
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    idat = _zlib_zeros(p.pick((0, 1, 16, 64)))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
