"""IDX reader/writer: round trips for every type code and each kind of malformed file."""

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest

from convprop.datasets import read_idx, write_idx
from convprop.errors import ConvpropError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
         np.float64: 0x0E}


def sample(dtype, shape=(3, 4, 5)):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        values = np.linspace(info.min, info.max, np.prod(shape)).round()
        return values.astype(dtype).reshape(shape)
    return (np.arange(np.prod(shape)) * -1.25 + 0.1).astype(dtype).reshape(shape)


def idx_bytes(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_each_dtype(tmp_path, dtype, gz):
    a = sample(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, a)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    # header: magic 0 0 code ndim, big-endian dims, then big-endian values
    assert raw[:4] == bytes([0, 0, CODES[dtype], 3])
    assert struct.unpack(">3I", raw[4:16]) == (3, 4, 5)
    assert raw[16:] == a.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == (3, 4, 5)
    np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


def test_known_bytes_decode_big_endian(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(0x0B, [3], b"\xff\xfe\x01\x00\x7f\xff"))
    np.testing.assert_array_equal(read_idx(p), np.array([-2, 256, 32767], np.int16))
    p.write_bytes(idx_bytes(0x0D, [2], struct.pack(">2f", 1.5, -0.25)))
    np.testing.assert_array_equal(read_idx(p), np.array([1.5, -0.25], np.float32))


def test_compression_detected_by_magic_not_name(tmp_path):
    a = sample(np.int32, (2, 3))
    write_idx(tmp_path / "a.gz", a)
    os.rename(tmp_path / "a.gz", tmp_path / "plain-looking")
    write_idx(tmp_path / "b", a)
    os.rename(tmp_path / "b", tmp_path / "b.gz")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-looking"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), a)


def test_one_dimension_and_empty(tmp_path):
    write_idx(tmp_path / "v", np.array([7, 8, 9], np.uint8))
    np.testing.assert_array_equal(read_idx(tmp_path / "v"), [7, 8, 9])
    write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(tmp_path / "e").shape == (0, 28, 28)


MALFORMED = {
    "empty": (b"", "only 0 byte(s)"),
    "short header": (b"\x00\x00\x08", "only 3 byte(s)"),
    "bad magic": (b"\x01\x02\x08\x01" + b"\x00" * 8, "magic number starts with 0x01 0x02"),
    "bad type code": (idx_bytes(0x0A, [2], b"ab"), "unknown IDX data type code 0x0A"),
    "zero dims": (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    "truncated dims": (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 2, "truncated IDX header"),
    "truncated payload": (idx_bytes(0x08, [2, 3], b"\x01" * 5), "truncated IDX payload"),
    "oversized payload": (idx_bytes(0x08, [2, 3], b"\x01" * 7), "oversized IDX payload"),
    "int32 truncated": (idx_bytes(0x0C, [2], b"\x00" * 7), "truncated IDX payload"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_give_one_line_error_naming_file(tmp_path, case, gz):
    content, message = MALFORMED[case]
    p = tmp_path / "bad-file"
    p.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(ConvpropError) as info:
        read_idx(p)
    text = str(info.value)
    assert str(p) in text and message in text and "\n" not in text


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_hostile_header_allocates_nothing_big(tmp_path, gz):
    # declares 4294967295^3 float64 values (~6e29 bytes) but holds 16 bytes
    content = idx_bytes(0x0E, [2**32 - 1] * 3, b"\x00" * 16)
    p = tmp_path / "hostile"
    p.write_bytes(gzip.compress(content) if gz else content)
    tracemalloc.start()
    try:
        with pytest.raises(ConvpropError, match="truncated IDX payload"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_bad_gzip_crc(tmp_path):
    blob = bytearray(gzip.compress(idx_bytes(0x08, [4], b"abcd")))
    blob[-8] ^= 0xFF  # CRC32 of the trailer
    p = tmp_path / "crc.gz"
    p.write_bytes(bytes(blob))
    with pytest.raises(ConvpropError, match=r"crc\.gz: corrupt gzip data \(CRC check failed"):
        read_idx(p)


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(idx_bytes(0x08, [1000], bytes(range(256)) * 4)[:1016])
    p = tmp_path / "cut.gz"
    p.write_bytes(blob[: len(blob) - 12])
    with pytest.raises(ConvpropError, match=r"cut\.gz: truncated gzip file"):
        read_idx(p)


def test_corrupt_deflate_data(tmp_path):
    blob = bytearray(gzip.compress(bytes(400)))
    blob[10:20] = b"\xff" * 10
    p = tmp_path / "junk.gz"
    p.write_bytes(bytes(blob))
    with pytest.raises(ConvpropError, match=r"junk\.gz: corrupt gzip data"):
        read_idx(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConvpropError, match=r"nope\.idx: no such file"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(ConvpropError, match="is a directory"):
        read_idx(tmp_path)


@pytest.mark.parametrize("array", [np.zeros(3, np.int64), np.zeros(3, bool),
                                   np.zeros(3, np.complex64), np.zeros(3, np.uint16),
                                   np.float64(1.0)], ids=["int64", "bool", "complex", "uint16",
                                                          "0-d"])
def test_write_rejects_what_idx_cannot_hold(tmp_path, array):
    with pytest.raises(ConvpropError, match="write_idx"):
        write_idx(tmp_path / "x", array)
    assert os.listdir(tmp_path) == []


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "keep.idx"
    write_idx(p, np.arange(4, dtype=np.uint8))
    before = p.read_bytes()

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)  # fails after the data is written, before rename
    with pytest.raises(OSError, match="disk full"):
        write_idx(p, np.arange(9, dtype=np.uint8))
    monkeypatch.undo()
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["keep.idx"]
