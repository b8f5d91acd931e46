"""Property tests of the IDX reader: round trips, and hostile bytes end in ConvpropError."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convprop.datasets import read_idx, write_idx
from convprop.errors import ConvpropError
from fuzzing import bytes_file, mutated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import make_seeds  # noqa: E402

SEEDS = list(make_seeds.idx_seeds().values())
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IDX_DTYPES = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])


@FAST
@given(arr=hnp.arrays(IDX_DTYPES, hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6)),
       gz=st.booleans())
def test_round_trip_any_array(arr, gz):
    with bytes_file(b"", ".idx.gz" if gz else ".idx") as path:
        write_idx(path, arr)
        back = read_idx(path)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)  # NaN == NaN here, bit patterns kept


def _check(data: bytes) -> None:
    """read_idx on ``data``: a valid array or a one-line ConvpropError, nothing else."""
    with bytes_file(data, ".idx") as path:
        try:
            arr = read_idx(path)
        except ConvpropError as exc:
            assert str(exc).startswith(path) and "\n" not in str(exc)
            return
    # Accepted: then it really is what the header says, every byte accounted for.
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative
    if data[:2] != b"\x1f\x8b":
        assert 4 + 4 * arr.ndim + arr.nbytes == len(data)


@FAST
@given(data=st.binary(max_size=200))
def test_random_bytes(data):
    _check(data)


@FAST
@given(data=mutated(SEEDS))
def test_mutated_valid_files(data):
    _check(data)


@FAST
@given(data=mutated(SEEDS))
def test_mutated_then_gzipped(data):
    _check(gzip.compress(data, mtime=0))


@settings(max_examples=100, deadline=None)
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
       code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]), extra=st.binary(max_size=64))
def test_declared_sizes_never_allocate(dims, code, extra):
    """Any header with any payload: an error or exactly the declared array (no big allocation)."""
    blob = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + extra
    for data in (blob, gzip.compress(blob, mtime=0)):
        _check(data)


def test_gzip_bomb_is_bounded(tmp_path):
    """A tiny gzip file claiming 4 GiB of pixels: refused after reading what exists, not 4 GiB."""
    import resource

    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 65536, 256, 256)
    p = tmp_path / "bomb.idx.gz"
    p.write_bytes(gzip.compress(header + bytes(8 << 20), mtime=0))  # 8 MiB of the 4 GiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConvpropError, match="truncated IDX payload"):
        read_idx(p)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


def test_gzip_declaring_more_than_deflate_can_hold(tmp_path):
    """Refused from the header and the file size alone: nothing is decompressed."""
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 60000, 2800, 2800)  # 470 GB
    p = tmp_path / "big.idx.gz"
    p.write_bytes(gzip.compress(header + bytes(100_000), mtime=0))
    with pytest.raises(ConvpropError, match=r"= 470400000000 bytes, more than a \d+-byte gzip file can hold"):
        read_idx(p)


def test_empty_array_with_unindexable_shape():
    """Found by fuzz/fuzz_idx.py: 0 values, but the other dimensions overflow NumPy's index
    type; reshape raised a bare ValueError."""
    data = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 0)
    with bytes_file(data, ".idx") as path:
        with pytest.raises(ConvpropError, match=r"impossible shape 4294967295×4294967295×0"):
            read_idx(path)
    # found by Hypothesis: the product fits an index, but not once multiplied by 8 bytes
    data = bytes([0, 0, 0x0E, 4]) + struct.pack(">4I", 0, 84828, 374648, 36277479)
    with bytes_file(data, ".idx") as path:
        with pytest.raises(ConvpropError, match="impossible shape"):
            read_idx(path)
    with bytes_file(bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2**32 - 1, 0), ".idx") as path:
        assert read_idx(path).shape == (2**32 - 1, 0)  # this one NumPy can hold
