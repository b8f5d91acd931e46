"""The image reader of ``convprop predict``: hostile images end in a one-line ConvpropError."""

from __future__ import annotations

import resource
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from convprop.errors import ConvpropError
from fuzzing import bytes_file, in_child, mutated

from convprop.datasets.images import read_image
pytest.importorskip("PIL")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import make_seeds  # noqa: E402

SEEDS = list(make_seeds.image_seeds().values())


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _read(data: bytes, shape=(28, 28, 1)):
    with bytes_file(data, ".png") as path:
        return read_image(Path(path), shape, False)


def test_valid_seeds_read():
    for blob in SEEDS:
        assert _read(blob).shape == (28, 28)
        assert _read(blob, (32, 32, 3)).shape == (32, 32, 3)


HOSTILE = [
    (_png(5000, 5000, zlib.compress(bytes(1000))), r"PNG image of 5000x5000 pixels; convprop reads images of 1 to"),
    (_png(100_000, 100_000, zlib.compress(bytes(1000))), r"too many pixels to decode"),
    (_png(4, 4, b"not zlib"), "corrupt or truncated image"),
    (_png(28, 28, zlib.compress(bytes(20))), "corrupt or truncated image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n", "not an image file convprop reads"),
    (b"", "not an image file"),
]


@pytest.mark.parametrize("data, message", HOSTILE, ids=["5000x5000", "1e10 pixels", "bad zlib",
                                                         "short data", "EPS", "empty"])
def test_hostile_images(data, message):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConvpropError, match=message) as info:
        _read(data)
    assert "\n" not in str(info.value)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100  # MiB


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@PROPS
@given(data=mutated(SEEDS))
def _mutated(data):
    for shape in ((28, 28, 1), (8, 8, 3)):
        try:
            arr = _read(data, shape)
        except ConvpropError as exc:
            assert "\n" not in str(exc)
            continue
        assert arr.shape == shape[:2] + ((3,) if shape[2] == 3 else ())
        assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1


def test_mutated_images():
    in_child(_mutated)  # Pillow's decoders are C: a crash fails this test, not the run


# Found by fuzz/fuzz_image.py: a 1×16,777,216 TIFF (within the pixel limit) made the LANCZOS
# resize build a 28×16,777,216 intermediate (and 32×… RGB): over 1 GB. Now shrunk first.
def _tall_tiff_bounded():
    import base64

    data = base64.b64decode(
        "SUkqAAgAAAAIAAABBAABAAAAAQAAAAEBBAABAAAAAAAAAQMBAwABAAAAAQAAAAYBAwABAAAAAQAAABEBBAABAAAAbgAAABYB"
        "BAABAAAACAAAABcBBAABAAAACAAAABwBAwABAAAAAQAAAAAAAAAAgIAAAIAAAA==")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for shape in ((28, 28, 1), (32, 32, 3)):
        try:
            _read(data, shape)
        except ConvpropError:
            pass
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown < 600, f"{grown:.0f} MiB"


def test_tall_image_memory_bounded():
    in_child(_tall_tiff_bounded)


#: Found by fuzz/fuzz_image.py in CI: a 79-byte PNG whose IDAT claims far more bytes than the
#: file holds; Pillow read the claimed length at once and ran out of a 1 GiB address space.
CLAIMED_TOO_MUCH = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAIAQAAAAAQYajsPwAAFklEQVR4nAXBAQ0AAADCIGbyRxfQgOAJKAEDoxdo"
                    "CQAAAABJRU5ErkJggg==")


def _cap_address_space(extra_mib: int) -> None:
    """RLIMIT_AS = this process's address space now + ``extra_mib``: what one image may cost (a forked
    child of the whole test session starts with far more than a fuzzing process)."""
    with open("/proc/self/status") as f:
        vm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, ((vm_kib << 10) + (extra_mib << 20), resource.RLIM_INFINITY))


def _claimed_too_much():
    import base64

    _cap_address_space(512)  # the IDAT claims 1,056,964,630 bytes
    data = base64.b64decode(CLAIMED_TOO_MUCH)
    for shape in ((28, 28, 1), (32, 32, 3)):
        try:
            _read(data, shape)
        except ConvpropError as exc:
            assert "MemoryError" not in str(exc), exc


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")
def test_a_chunk_length_beyond_the_file_costs_no_memory():
    in_child(_claimed_too_much)


def _big_transparent_png():
    """A 127×131071 RGBA PNG (2²⁴ pixels, the largest convprop reads) with transparency, made by
    the fuzzer's generator: compositing it onto black took more than 1 GiB in float64."""
    import generators

    _cap_address_space(600)  # float64 compositing needed over 1 GiB; uint32 blocks about 250 MiB
    data = generators.image(b"G3Q.GG\x02")  # the fuzz input GG3Q.GG\x02, its leading G stripped
    for shape in ((28, 28, 1), (32, 32, 3)):
        try:
            _read(data, shape)
        except ConvpropError as exc:
            assert "allocate" not in str(exc) and "MemoryError" not in str(exc), exc


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")
def test_compositing_a_big_transparent_image_fits_the_fuzzers_limit():
    in_child(_big_transparent_png)
