"""The safe .npz reader under models and checkpoints: round trips, hostile archives."""

from __future__ import annotations

import io
import resource
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convprop.formats._npz import read_npz
from convprop.errors import ConvpropError
from fuzzing import bytes_file, mutated

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_, np.complex128])


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy_header(shape, descr="<f8", fortran=False) -> bytes:
    d = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode()
    d += b" " * (-(len(d) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d


def _zip(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def _read(data: bytes, **kwargs):
    with bytes_file(data, ".npz") as path:
        return read_npz(path, **kwargs)


@FAST
@given(arrays=st.dictionaries(st.sampled_from(["a", "param/w", "history/rL", "meta"]),
                              hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                                  max_side=5)), max_size=4),
       fortran=st.booleans())
def test_round_trip(arrays, fortran):
    arrays = {k: np.asfortranarray(v) if fortran else v for k, v in arrays.items()}
    back = _read(_npz(**arrays))
    assert sorted(back) == sorted(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)


SEEDS = [_npz(meta=np.frombuffer(b'{"format": "convprop"}', np.uint8), **{"param/w": np.ones((2, 3))}),
         _npz(a=np.arange(5, dtype=np.int32), b=np.zeros((2, 2), np.float32)),
         _zip({"x.npy": _npy_header((3,)) + bytes(24)}, zipfile.ZIP_DEFLATED)]


@FAST
@given(data=mutated(SEEDS))
def test_mutated_archives(data):
    try:
        out = _read(data)
    except ConvpropError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(v, np.ndarray) and not v.dtype.hasobject for v in out.values())


@pytest.mark.parametrize("members, message", [
    ({"w.npy": _npy_header((10**6, 10**6)) + bytes(64)}, r"header declares 8000000000000 bytes.*holds 64"),
    ({"w.npy": _npy_header((4,)) + bytes(8)}, r"header declares 32 bytes .* holds 8"),
    ({"w.npy": _npy_header((1,), descr="|O") + bytes(8)}, "refusing to load pickled"),
    ({"w.npy": _npy_header((1,), descr="[('a', '<f8')]".strip("'")) + bytes(8)}, "only plain numeric|unknown dtype"),
    ({"w.npy": _npy_header((1,), descr="<U3") + bytes(12)}, "only numeric arrays"),
    ({"w.npy": _npy_header((-1,)) + bytes(8)}, "is not a tuple of sizes"),
    ({"w.npy": b"\x93NUMPY\x01\x00\x10\x00__import__('os')\n"}, "not a Python literal"),
    ({"w.npy": b"\x93NUMPY\x09\x00\x10\x00" + bytes(16)}, "unknown .npy format version 9"),
    ({"w.npy": b"not numpy at all"}, "not a .npy array"),
])
def test_hostile_members(members, message):
    with pytest.raises(ConvpropError, match=message):
        _read(_zip(members))


def test_deflate_bomb_allocates_nothing():
    """A 40 kB deflated member holding 40 MB of zeros, declared as 4·10⁹ float64s: refused from
    the header and the entry size, before any array exists."""
    blob = _zip({"w.npy": _npy_header((4 * 10**9,)) + bytes(40 << 20)}, zipfile.ZIP_DEFLATED)
    assert len(blob) < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConvpropError, match="header declares 32000000000 bytes"):
        _read(blob)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50  # MiB


def test_entry_size_beyond_zlib_ratio():
    blob = bytearray(_zip({"w.npy": _npy_header((2,)) + bytes(16)}))
    # Forge the central directory's uncompressed size: 2 GB from a few dozen bytes.
    cd = blob.rfind(b"PK\x01\x02")
    blob[cd + 24:cd + 28] = struct.pack("<I", 2**31)
    with pytest.raises(ConvpropError, match="claim|cannot read"):
        _read(bytes(blob))


def test_encrypted_and_unknown_compression():
    blob = bytearray(_zip({"w.npy": _npy_header((1,)) + bytes(8)}))
    enc = bytearray(blob)
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag bit
        i = enc.find(sig)
        off = 6 if sig == b"PK\x03\x04" else 8
        enc[i + off] |= 1
    with pytest.raises(ConvpropError, match="cannot read it as a .npz file"):
        _read(bytes(enc))
    odd = bytearray(blob)
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99 (AES)
        i = odd.find(sig)
        odd[i + off:i + off + 2] = struct.pack("<H", 99)
    with pytest.raises(ConvpropError, match="cannot read it as a .npz file"):
        _read(bytes(odd))


def test_only_requested_members_are_loaded():
    out = _read(_npz(meta=np.zeros(3, np.uint8), other=np.ones(4)), names=lambda k: k == "meta")
    assert list(out) == ["meta"]


def test_not_a_zip_and_missing(tmp_path):
    with pytest.raises(ConvpropError, match="cannot read it as a .npz file"):
        _read(b"PK\x03\x04 but then nothing")
    with pytest.raises(ConvpropError, match="no such file"):
        read_npz(tmp_path / "none.npz")
    with pytest.raises(ConvpropError, match="is a directory"):
        read_npz(tmp_path)


# ------------------------------------------------------------- single .npy files (explain --input)

from convprop.formats._npz import read_npy  # noqa: E402


@FAST
@given(arr=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_npy_round_trip(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    with bytes_file(buf.getvalue(), ".npy") as path:
        back = read_npy(path)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("data, message", [
    (_npy_header((10**6, 10**6)) + bytes(64), r"header declares 8000000000000 bytes of data, the file holds 64"),
    (_npy_header((1,), descr="|O") + bytes(8), "refusing to load pickled"),
    (b"\x80\x04\x95", "not a .npy array"),
])
def test_npy_hostile(data, message):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with bytes_file(data, ".npy") as path:
        with pytest.raises(ConvpropError, match=message):
            read_npy(path)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50


def test_explain_input_files_are_checked(tmp_path):
    """``convprop explain --input`` reads .npy and .mat through the checked readers."""
    from convprop.cli.explain import _load_images

    p = tmp_path / "x.npy"
    p.write_bytes(_npy_header((10**6, 28, 28)) + bytes(64))
    with pytest.raises(ConvpropError, match="header declares"):
        _load_images(p, None)
    q = tmp_path / "x.mat"  # the segfaulting file of tests/test_fuzz_mat.py
    from test_fuzz_mat import SEGFAULT_1

    q.write_bytes(SEGFAULT_1)
    with pytest.raises(ConvpropError, match="corrupt or truncated .mat file"):
        _load_images(q, None)
