"""Hostile .mat files: read_mat checks their structure before scipy's loadmat sees them.

scipy.io.loadmat trusts the sizes inside a v5 file: an array whose data element is shorter than
its dimensions made it read past its buffer and kill the interpreter (SIGSEGV), found by the
atheris target fuzz/fuzz_mat.py. These tests run such files in a forked child so that a
regression fails one test instead of crashing the run.
"""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convprop.datasets import read_mat
from convprop.errors import ConvpropError
from fuzzing import bytes_file, in_child, mutated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import make_seeds  # noqa: E402

SEEDS = list(make_seeds.mat_seeds().values())

# The first crash atheris found (252 bytes): a 1×2 logical uint8 array with a 0-byte data
# element of type 0; scipy 1.17 segfaults on it.
SEGFAULT_1 = base64.b64decode(
    "TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFRodSBOb3YgMjYgMTA6NTY6MjQg"
    "MjAyNgAAAAAAAAAAAAAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0OAAAAMAAAAAYA"
    "AAAIAAAACQIAAAAAAAAFAAAACAAAAAEAAAACAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0OAAAAMAAAAAYAAAAI"
    "AAAACQIAAAAAAAAFAAAACAAAAAEAAAACAAAAAQABAAEAYgAAAAIAAgABAAAA")


# ------------------------------------------------------------- a tiny v5 writer


def _el(mtype: int, data: bytes) -> bytes:
    """A data element: tag + data padded to 8 bytes."""
    return struct.pack("<II", mtype, len(data)) + data + b"\0" * (-len(data) % 8)


def _matrix(cls: int, dims, body: bytes, name: bytes = b"", flags: int = 0) -> bytes:
    sub = (_el(6, struct.pack("<II", cls | flags << 8, 0)) + _el(5, struct.pack(f"<{len(dims)}i", *dims))
           + _el(1, name) + body)
    return struct.pack("<II", 14, len(sub)) + sub


def _file(*elements: bytes) -> bytes:
    header = b"MATLAB 5.0 MAT-file, written by convprop's tests".ljust(116) + b"\0" * 8
    return header + b"\x00\x01IM" + b"".join(elements)


def _read(data: bytes):
    with bytes_file(data, ".mat") as path:
        return read_mat(path)


def _refused(data: bytes, match: str) -> None:
    with bytes_file(data, ".mat") as path:
        with pytest.raises(ConvpropError, match=match) as info:
            read_mat(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_writer_makes_valid_files():
    data = _read(_file(_matrix(6, (2, 3), _el(9, np.arange(6.0).tobytes()), b"a"),
                       _matrix(9, (1, 2), _el(2, b"\x07\x09"), b"u")))
    np.testing.assert_array_equal(data["a"], np.arange(6.0).reshape(3, 2).T)
    np.testing.assert_array_equal(data["u"], [[7, 9]])


CRAFTED = [
    ("found by atheris", SEGFAULT_1, "data type 0 is not numeric"),
    ("1x2 uint8, 0 data bytes", _file(_matrix(9, (1, 2), _el(2, b""), b"x")),
     "'x': dimensions need 2 values, real part has 0 bytes"),
    ("1000x1000 double, 8 bytes", _file(_matrix(6, (1000, 1000), _el(9, bytes(8)), b"x")),
     "dimensions need 1000000 values"),
    ("complex without imaginary part", _file(_matrix(6, (1, 1), _el(9, bytes(8)), b"z", flags=8)),
     "imaginary part: element tag at byte"),
    ("char, 5 dims, 2 utf8 chars", _file(_matrix(4, (1, 5), _el(16, b"ab"), b"s")),
     "dimensions need 5 characters, file has 2"),
    ("cell claiming 2**31 elements", _file(_matrix(1, (2**15, 2**16), b"", b"c")),
     "'c': declares more array elements than the file could hold"),
    ("cell of 3, holding 1", _file(_matrix(1, (1, 3), _matrix(6, (0, 0), _el(9, b"")), b"c")),
     r"'c'\{2\}: element tag at byte \d+ runs past the end"),
    ("struct, 0 fields, 2**62 elements",
     _file(_matrix(2, (2**31 - 1, 2**31 - 1), _el(5, struct.pack("<i", 8)) + _el(1, b""), b"s")),
     "declares more array elements than the file could hold"),
    ("element larger than the file", _file(struct.pack("<II", 14, 2**32 - 8)), "declares 4294967288 bytes"),
    ("negative dimension", _file(_matrix(6, (-1, 2), b"", b"x")), r"negative dimension in \[-1, 2\]"),
    ("function handle", _file(_matrix(16, (1, 1), b"", b"f")), "function handle cannot be read"),
    ("sparse with bad column starts",
     _file(_matrix(5, (2, 2), _el(5, struct.pack("<2i", 0, 1)) + _el(5, struct.pack("<3i", 0, 5, 2))
                   + _el(9, bytes(16)), b"sp")), "not a valid CSC index"),
    ("sparse row index out of range",
     _file(_matrix(5, (2, 2), _el(5, struct.pack("<2i", 0, 9)) + _el(5, struct.pack("<3i", 0, 1, 2))
                   + _el(9, bytes(16)), b"sp")), "row index out of range"),
]


@pytest.mark.parametrize("case, data, match", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_files_refused(case, data, match):
    """Each file: the one-line message names the variable and what is inconsistent."""
    in_child(_refused, data, match)


def test_deep_nesting_refused():
    inner = _matrix(6, (1, 1), _el(9, bytes(8)))
    for _ in range(100):
        inner = _matrix(1, (1, 1), inner)
    in_child(_refused, _file(inner[:8].replace(b"\x0e", b"\x0e", 1) + inner[8:]), "nested more than 64 deep")


def test_compressed_padding_bomb_refused():
    """10 MB of zeros compressed into a few KB behind a 1×8 array: refused, memory bounded."""
    import resource

    m = _matrix(9, (1, 8), _el(2, bytes(8)), b"x")
    inner = struct.pack("<II", 14, len(m) - 8 + (10 << 20)) + m[8:] + bytes(10 << 20)
    body = zlib.compress(inner, 9)
    assert len(body) < 20_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(_file(struct.pack("<II", 15, len(body)) + body), "10485760 unexplained bytes")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100  # MiB


def test_valid_files_from_scipy_still_read():
    for blob in SEEDS:
        assert _read(blob)


def test_fixture_from_octave_still_reads(shared):
    cnn = read_mat(shared / "fixtures" / "dlt" / "dlt_cnn_mnist6000_1epoch.mat")["cnn"]
    assert cnn["ffW"][0, 0].shape == (10, 192)


def _check(data: bytes) -> None:
    from convprop.formats.matlab import load_mat

    with bytes_file(data, ".mat") as path:
        for reader in (read_mat, load_mat):
            try:
                reader(path)
            except ConvpropError as exc:
                assert "\n" not in str(exc)


PROPS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck),
                 database=None)


@PROPS
@given(data=mutated(SEEDS))
def _mutated(data):
    _check(data)


@PROPS
@given(data=st.binary(max_size=300).map(lambda b: SEEDS[0][:128] + b))
def _random_after_header(data):
    _check(data)


def test_mutated_valid_files():
    in_child(_mutated)


def test_random_bytes_after_a_valid_header():
    in_child(_random_after_header)
