"""A structural check of MATLAB .mat files, run before :func:`scipy.io.loadmat` sees them.

Why: scipy's compiled v5 reader trusts the sizes written in the file. A variable whose data
element holds fewer bytes than its dimensions need (e.g. a 1×2 uint8 array with 0 data bytes)
makes ``loadmat`` read past its buffer and crash the whole interpreter with a segmentation fault,
which no ``try``/``except`` can catch; a struct array with no fields and 10⁹ elements makes it
allocate gigabytes. This module walks every data element of the file, checks each tag, size,
class, dimension and element count against what the file really holds, and raises
:class:`~convprop.errors.ConvpropError` for anything inconsistent, so only files whose layout is
sound reach ``loadmat``. It reads values only; nothing in the file is ever executed.

Layout (MATLAB's "MAT-File Format" document): a 128-byte header whose last 4 bytes are the version
(0x0100) and the endian indicator ``IM``/``MI``; then data elements, each a tag (type, byte
count) and that many bytes padded to 8 — or a *small* element whose type and count (≤ 4) share
the first 4 bytes and whose data fills the next 4. A variable is an ``miMATRIX`` element (or an
``miCOMPRESSED`` one, zlib, holding one ``miMATRIX``) made of sub-elements: array flags,
dimensions, name, then class-specific data.

v4 files (no 128-byte header) are checked variable by variable: a 20-byte header, the name and
the data, whose size follows from the header.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import ConvpropError

# Data types (miXXX) and their item sizes.
MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_SINGLE, MI_DOUBLE, MI_INT64, MI_UINT64 = 7, 9, 12, 13
MI_MATRIX, MI_COMPRESSED, MI_UTF8, MI_UTF16, MI_UTF32 = 14, 15, 16, 17, 18
_NUMERIC_SIZES = {MI_INT8: 1, MI_UINT8: 1, MI_INT16: 2, MI_UINT16: 2, MI_INT32: 4, MI_UINT32: 4,
                  MI_SINGLE: 4, MI_DOUBLE: 8, MI_INT64: 8, MI_UINT64: 8}
_TEXT_SIZES = {MI_UTF8: 1, MI_UTF16: 2, MI_UTF32: 4}

# Array classes (mxXXX_CLASS).
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR, MX_SPARSE = 1, 2, 3, 4, 5
_MX_NUMERIC = range(6, 16)  # double, single, int8, uint8, int16, uint16, int32, uint32, int64, uint64
_CLASS_NAMES = {16: "function handle", 17: "opaque object (string, table, …)"}
_COMPLEX_FLAG = 0x08

#: Deepest nesting of cells/structs accepted (loadmat recurses once per level).
MAX_DEPTH = 64
#: Cell and struct-array elements accepted in a file: at most one per :data:`BYTES_PER_ELEMENT`
#: bytes of the file (at least :data:`MIN_ELEMENTS`), and never more than MAX_ELEMENTS. Each costs
#: loadmat a Python object (about 200 bytes and 20 µs), while an empty matrix costs 8 bytes of
#: file and, compressed, almost nothing (a 562 KB file held 36 million: 66 s, 6.5 GB), and a
#: struct array with no fields costs no bytes at all. This keeps loadmat's time and memory
#: proportional to the file's size.
MAX_ELEMENTS = 1_000_000
MIN_ELEMENTS = 4096
BYTES_PER_ELEMENT = 8
#: Most dimensions an array may have (NumPy's limit).
MAX_DIMS = 64
#: zlib cannot expand data by more than about 1032:1; a larger claimed ratio is corrupt.
_MAX_INFLATE = 1100
#: Most bytes the compressed variables of one file may inflate to, all together (1 GiB;
#: the toolbox's mnist_uint8.mat inflates to 55 MB).
MAX_INFLATED = 1 << 30


class _Bad(Exception):
    """Internal: a structural problem, turned into a ConvpropError with the file's name."""


class _Reader:
    """Data elements in ``buf[start:stop]``, in byte order ``order`` ('<' or '>')."""

    def __init__(self, buf: bytes, order: str, budget: list[int]) -> None:
        self.buf, self.order = buf, order
        self.u32 = struct.Struct(order + "I")
        #: Elements the whole file may still create (cells, struct entries): a shared counter.
        self.budget = budget

    def tag(self, pos: int, stop: int, what: str) -> tuple[int, int, int, int]:
        """(type, nbytes, data start, next element) of the element at ``pos``."""
        if pos + 8 > stop:
            raise _Bad(f"{what}: element tag at byte {pos} runs past the end of its container")
        first = self.u32.unpack_from(self.buf, pos)[0]
        if first >> 16:  # small data element: 2-byte count, 2-byte type, 4 data bytes
            mtype, nbytes = first & 0xFFFF, first >> 16
            if nbytes > 4:
                raise _Bad(f"{what}: small data element claims {nbytes} bytes (at most 4)")
            return mtype, nbytes, pos + 4, pos + 8
        nbytes = self.u32.unpack_from(self.buf, pos + 4)[0]
        start = pos + 8
        if nbytes > stop - start:
            raise _Bad(f"{what}: element at byte {pos} declares {nbytes} bytes, "
                       f"only {stop - start} remain")
        return first, nbytes, start, min(stop, start + (nbytes + 7) // 8 * 8)

    def spend(self, n: int, what: str) -> None:
        self.budget[0] -= n
        if self.budget[0] < 0:
            raise _Bad(f"{what}: declares more array elements than the file could hold")

    # ---------------------------------------------------------------- matrices

    def matrix(self, start: int, stop: int, what: str, depth: int) -> None:
        """Check one miMATRIX body ``buf[start:stop]``."""
        if depth > MAX_DEPTH:
            raise _Bad(f"{what}: cells/structs nested more than {MAX_DEPTH} deep")
        if start == stop:  # an empty matrix: valid, loadmat gives an empty array
            return
        mtype, n, s, pos = self.tag(start, stop, what)
        if mtype != MI_UINT32 or n != 8:
            raise _Bad(f"{what}: array flags must be 8 bytes of miUINT32 (type {mtype}, {n} bytes)")
        flags = self.u32.unpack_from(self.buf, s)[0]
        cls, is_complex = flags & 0xFF, bool(flags & (_COMPLEX_FLAG << 8))
        mtype, n, s, pos = self.tag(pos, stop, what)
        if mtype != MI_INT32 or n % 4 or n < 8:
            raise _Bad(f"{what}: dimensions must be at least 2 miINT32 values (type {mtype}, {n} bytes)")
        dims = np.frombuffer(self.buf, dtype=self.order + "i4", count=n // 4, offset=s)
        if dims.size > MAX_DIMS:
            raise _Bad(f"{what}: {dims.size} dimensions (at most {MAX_DIMS})")
        if (dims < 0).any():
            raise _Bad(f"{what}: negative dimension in {dims.tolist()}")
        count = int(np.prod(dims.astype(object)))
        mtype, n, s, pos = self.tag(pos, stop, what)
        if mtype not in (MI_INT8, MI_UINT8, MI_UTF8):
            raise _Bad(f"{what}: array name has type {mtype}, expected miINT8")
        name = bytes(self.buf[s:s + n]).split(b"\0", 1)[0].decode("latin-1")
        where = f"{what} {name!r:.60}" if name else what  # repr: a name may hold a newline (found by fuzz_mat)
        if cls in _MX_NUMERIC:
            pos = self.numeric(pos, stop, count, where, "real part", numeric_only=True)
            if is_complex:
                pos = self.numeric(pos, stop, count, where, "imaginary part", numeric_only=True)
        elif cls == MX_CHAR:
            pos = self.numeric(pos, stop, count, where, "characters", numeric_only=False)
        elif cls == MX_SPARSE:
            pos = self.sparse(pos, stop, dims, is_complex, where)
        elif cls == MX_CELL:
            self.spend(count, where)
            for k in range(count):
                mtype, n, s, pos = self.tag(pos, stop, f"{where}{{{k + 1}}}")
                if mtype != MI_MATRIX:
                    raise _Bad(f"{where}{{{k + 1}}}: cell element has type {mtype}, expected miMATRIX")
                self.matrix(s, s + n, f"{where}{{{k + 1}}}", depth + 1)
        elif cls in (MX_STRUCT, MX_OBJECT):
            pos = self.structure(pos, stop, count, cls, where, depth)
        else:
            kind = _CLASS_NAMES.get(cls, f"unknown array class {cls}")
            raise _Bad(f"{where}: {kind} cannot be read")
        if stop - pos > 7:
            raise _Bad(f"{where}: {stop - pos} unexplained bytes after the array's data")

    def numeric(self, pos: int, stop: int, count: int, where: str, part: str, numeric_only: bool) -> int:
        mtype, n, s, nxt = self.tag(pos, stop, f"{where} {part}")
        if mtype in _NUMERIC_SIZES:
            size = _NUMERIC_SIZES[mtype]
        elif not numeric_only and mtype in _TEXT_SIZES:
            size = _TEXT_SIZES[mtype]
            codec = {MI_UTF8: "utf-8", MI_UTF16: "utf-16", MI_UTF32: "utf-32"}[mtype]
            codec += "" if mtype == MI_UTF8 else ("-le" if self.order == "<" else "-be")
            try:
                text = bytes(self.buf[s:s + n]).decode(codec)
            except UnicodeDecodeError:
                raise _Bad(f"{where}: {part} are not valid {codec.upper()}") from None
            if len(text) != count:
                raise _Bad(f"{where}: dimensions need {count} characters, file has {len(text)}")
            return nxt
        else:
            raise _Bad(f"{where} {part}: data type {mtype} is not numeric")
        if n % size or n // size != count:
            raise _Bad(f"{where}: dimensions need {count} values, {part} has {n} bytes "
                       f"of {size}-byte items")
        return nxt

    def sparse(self, pos: int, stop: int, dims: np.ndarray, is_complex: bool, where: str) -> int:
        if dims.size != 2:
            raise _Bad(f"{where}: a sparse matrix needs 2 dimensions, got {dims.tolist()}")
        rows, cols = int(dims[0]), int(dims[1])
        index = {}
        for part in ("row indices", "column starts"):
            mtype, n, s, pos = self.tag(pos, stop, f"{where} {part}")
            if mtype not in (MI_INT32, MI_UINT32) or n % 4:
                raise _Bad(f"{where}: sparse {part} must be miINT32 (type {mtype}, {n} bytes)")
            index[part] = np.frombuffer(self.buf, dtype=self.order + "i4", count=n // 4, offset=s)
        ir, jc = index["row indices"], index["column starts"]
        if jc.size != cols + 1:
            raise _Bad(f"{where}: sparse matrix with {cols} columns needs {cols + 1} column starts, "
                       f"file has {jc.size}")
        nnz = int(jc[-1]) if jc.size else 0
        if jc[0] != 0 or (np.diff(jc) < 0).any() or nnz > ir.size:
            raise _Bad(f"{where}: sparse column starts are not a valid CSC index")
        if nnz and (ir[:nnz].min() < 0 or ir[:nnz].max() >= rows):
            raise _Bad(f"{where}: sparse row index out of range for {rows} rows")
        for part in ("real part", "imaginary part") if is_complex else ("real part",):
            mtype, n, s, nxt = self.tag(pos, stop, f"{where} {part}")
            size = _NUMERIC_SIZES.get(mtype)
            if size is None or n % size or n // size < nnz:
                raise _Bad(f"{where}: sparse {part} must hold {nnz} numeric values")
            pos = nxt
        return pos

    def structure(self, pos: int, stop: int, count: int, cls: int, where: str, depth: int) -> int:
        if cls == MX_OBJECT:
            mtype, n, s, pos = self.tag(pos, stop, f"{where} class name")
            if mtype not in (MI_INT8, MI_UINT8):
                raise _Bad(f"{where}: object class name has type {mtype}")
        mtype, n, s, pos = self.tag(pos, stop, f"{where} field name length")
        if mtype != MI_INT32 or n != 4:
            raise _Bad(f"{where}: field name length must be one miINT32")
        width = struct.unpack_from(self.order + "i", self.buf, s)[0]
        mtype, n, s, pos = self.tag(pos, stop, f"{where} field names")
        if mtype not in (MI_INT8, MI_UINT8) or width <= 0 or n % width:
            raise _Bad(f"{where}: field names do not fit their declared length {width}")
        n_fields = n // width
        names = [bytes(self.buf[s + k * width:s + (k + 1) * width]).split(b"\0", 1)[0]
                 for k in range(n_fields)]
        if len(set(names)) != len(names) or not all(names):
            raise _Bad(f"{where}: empty or repeated struct field names")
        # A struct array with no fields holds nothing per element: bound its size anyway.
        self.spend(count * max(n_fields, 1), where)
        for k in range(count * n_fields):
            label = f"{where}.{names[k % n_fields].decode('latin-1')}"
            mtype, n, s, pos = self.tag(pos, stop, label)
            if mtype != MI_MATRIX:
                raise _Bad(f"{label}: field value has type {mtype}, expected miMATRIX")
            self.matrix(s, s + n, label, depth + 1)
        return pos


def _check_v5(buf: bytes) -> None:
    if len(buf) < 128:
        raise _Bad(f"header needs 128 bytes, file has {len(buf)}")
    indicator = buf[126:128]
    if indicator not in (b"IM", b"MI"):
        raise _Bad(f"bad endian indicator {indicator!r} (expected 'IM' or 'MI')")
    order = "<" if indicator == b"IM" else ">"
    # Cells and struct arrays: a bound on their elements in the whole file (see MAX_ELEMENTS).
    budget = [min(MAX_ELEMENTS, max(MIN_ELEMENTS, len(buf) // BYTES_PER_ELEMENT))]
    pos, k, inflated = 128, 0, 0
    top = _Reader(buf, order, budget)
    while pos < len(buf):
        k += 1
        what = f"variable {k}"
        if len(buf) - pos < 8:
            raise _Bad(f"{what}: {len(buf) - pos} stray byte(s) at the end of the file")
        mtype, n, s, _ = top.tag(pos, len(buf), what)
        if mtype == MI_MATRIX:
            top.matrix(s, s + n, what, 0)
        elif mtype == MI_COMPRESSED:
            inner = _inflate(buf[s:s + n], what, MAX_INFLATED - inflated)
            inflated += len(inner)
            reader = _Reader(inner, order, budget)
            itype, m, t, _ = reader.tag(0, len(inner), what)
            if itype != MI_MATRIX:
                raise _Bad(f"{what}: compressed element holds type {itype}, expected miMATRIX")
            reader.matrix(t, t + m, what, 0)
        else:
            raise _Bad(f"{what}: top-level element has type {mtype}, expected a matrix")
        pos = s + n  # loadmat's rule: the next variable starts right after the declared bytes


def _inflate(data: bytes, what: str, room: int) -> bytes:
    d = zlib.decompressobj()
    limit = min(len(data) * _MAX_INFLATE + 64, max(room, 0) + 1)
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise _Bad(f"{what}: corrupt compressed data ({exc})") from None
    if len(out) > room:
        raise _Bad(f"{what}: compressed variables inflate to more than {MAX_INFLATED} bytes in all")
    if d.unconsumed_tail:
        raise _Bad(f"{what}: compressed data expands beyond any real zlib ratio")
    return out


# v4: type code MOPT (M: byte order, O: 0, P: precision, T: full/text/sparse); item sizes by P.
_V4_SIZES = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}


def _check_v4(buf: bytes) -> None:
    pos, k = 0, 0
    while pos < len(buf):
        k += 1
        what = f"variable {k}"
        if len(buf) - pos < 20:
            raise _Bad(f"{what}: v4 header needs 20 bytes, {len(buf) - pos} remain")
        for order in ("<", ">"):
            mopt, rows, cols, imagf, namlen = struct.unpack_from(order + "5i", buf, pos)
            if 0 <= mopt < 5000 and (mopt // 1000) in (0, 1) and (mopt // 1000 == 0) == (order == "<"):
                break
        else:
            raise _Bad(f"{what}: unknown v4 type code")
        _, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if o != 0 or p not in _V4_SIZES or t not in (0, 1, 2):
            raise _Bad(f"{what}: unknown v4 type code {mopt}")
        if rows < 0 or cols < 0 or imagf not in (0, 1) or namlen < 1:
            raise _Bad(f"{what}: bad v4 header (rows {rows}, columns {cols}, imagf {imagf}, "
                       f"name length {namlen})")
        if t == 2 and (cols not in (3, 4) or rows < 1):
            raise _Bad(f"{what}: a v4 sparse matrix is stored as N×3 or N×4, not {rows}×{cols}")
        need = namlen + rows * cols * _V4_SIZES[p] * (1 + imagf)
        if need > len(buf) - pos - 20:
            raise _Bad(f"{what}: v4 header declares {need} bytes of name and data, "
                       f"only {len(buf) - pos - 20} remain")
        pos += 20 + need


def mat_problem(buf: bytes, major: int) -> str | None:
    """What is structurally wrong with ``buf`` (a whole v4 or v5 .mat file), or None.

    ``major`` is :func:`scipy.io.matlab.matfile_version`'s first value (0: v4, 1: v5/v7).
    Other versions (2: v7.3, HDF5) are not checked here: loadmat refuses them itself.
    """
    try:
        if major == 0:
            _check_v4(buf)
        elif major == 1:
            _check_v5(buf)
    except _Bad as exc:
        return str(exc)
    return None


def check_mat_bytes(buf: bytes, major: int, name: str) -> None:
    """Raise ConvpropError unless ``buf`` (a whole .mat file of version ``major``) is sound."""
    problem = mat_problem(buf, major)
    if problem:
        raise ConvpropError(f"{name}: corrupt or truncated .mat file ({problem})")
