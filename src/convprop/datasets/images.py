"""Image files → arrays: Pillow decoding with limits (formats, pixel count), every conversion reported.

:func:`decode_image` turns one file into floats in [0, 1] of the size and
number of channels a network takes, and says what it changed on the way
(colour → grey, a resize, an alpha channel that holds the picture, 16-bit or
floating-point pixels); :func:`read_image` is the same without the notes.
"""

from __future__ import annotations

import io
import os
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._files import open_regular
from ..errors import ConvpropError

#: Formats convprop decodes: plain raster formats only. (Pillow would otherwise also open EPS
#: by running Ghostscript on the file, and a dozen rarer formats.)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: File name endings of those formats (what a folder of images is searched for).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
#: Largest image decoded, in pixels (checked from the header, before decoding):
#: far above any input a classic CNN takes, far below a decompression bomb.
MAX_IMAGE_PIXELS = 1 << 24
#: Pillow modes without colour (read as one grey channel).
GREY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")


class _Clamped(io.BufferedReader):
    """A file whose ``read(n)`` asks for no more than the bytes left in it.

    Readers trust lengths written in the file: Pillow's PNG reader reads the rest of an IDAT
    chunk with one ``read(claimed length)``, and a 79-byte file claiming a gigabyte made it
    allocate that much (found by fuzz/fuzz_image.py under a 1 GiB address-space limit).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._end = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self._end - self.tell()))
        return super().read(size)


@contextmanager
def _open(path: Path):
    """Pillow image of ``path`` (header read, pixels not yet), with the format and size limits."""
    from PIL import Image

    open_regular(path, "image").close()  # a FIFO, device or directory: refused at once, never read
    with _Clamped(path) as fp, Image.open(fp, formats=IMAGE_FORMATS) as im:
        width, height = im.size
        if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
            raise ConvpropError(f"{path}: {im.format} image of {width}x{height} pixels; convprop"
                                f" reads images of 1 to {MAX_IMAGE_PIXELS} pixels")
        yield im


def probe_image(path: Path) -> tuple[int, int, bool]:
    """(height, width, has colour) of an image file, from its header only."""
    with _errors(path):
        with _open(path) as im:
            width, height = im.size
            return height, width, im.mode not in GREY_MODES


def _alpha_picture(im, notes: list[str]):
    """An image with transparency, made opaque: the alpha itself when it alone holds the picture."""
    from PIL import Image

    im = im.convert("LA" if im.mode in ("LA", "La") else "RGBA")
    alpha = np.asarray(im.getchannel("A"))
    colour = np.asarray(im.convert("L" if im.mode == "LA" else "RGB"))
    if alpha.min() == 255:
        return Image.fromarray(colour)
    if colour.min() == colour.max() and alpha.min() != alpha.max():
        notes.append("the picture is in the alpha channel (the colour is one flat value): read alpha as intensity")
        return Image.fromarray(alpha)
    notes.append("transparent parts composited onto black")
    return Image.fromarray(_onto_black(colour, alpha))


def _onto_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """round(colour · alpha / 255) in uint8, a million values at a time.

    Integer arithmetic (c·a/255 is never exactly halfway, so (2·c·a + 255) // 510 is the rounded
    value): float64 over a whole 2²⁴-pixel RGBA image took more than 1 GiB (found by the fuzzer).
    """
    out = np.empty_like(colour)
    weight = alpha if colour.ndim == 2 else alpha[..., None]
    rows = max(1, (1 << 20) // max(1, colour[0].size))
    for r in range(0, colour.shape[0], rows):
        ca = colour[r:r + rows].astype(np.uint32) * weight[r:r + rows]
        out[r:r + rows] = (2 * ca + 255) // 510
    return out


def _deep_pixels(im, notes: list[str]) -> np.ndarray:
    """Pixels of a 16-bit, 32-bit or floating-point image, scaled to [0, 1] (float64, H×W)."""
    arr = np.asarray(im, dtype=np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if np.isfinite(arr).all() else (np.nan, np.nan)
    if not np.isfinite(lo):
        raise ConvpropError("pixels hold NaN or infinite values")
    if im.mode.startswith("I;16"):
        notes.append("16-bit pixels / 65535")
        return arr / 65535.0
    if im.mode == "F" and lo >= 0 and hi <= 1:
        notes.append("floating-point pixels read as [0, 1]")
        return arr
    if lo >= 0 and hi <= 255:
        notes.append(f"{'floating-point' if im.mode == 'F' else '32-bit'} pixels in [0, 255] / 255")
        return arr / 255.0
    if lo >= 0 and hi <= 65535 and im.mode != "F":
        notes.append("32-bit pixels in [0, 65535] / 65535")
        return arr / 65535.0
    notes.append(f"pixels in [{lo:g}, {hi:g}] rescaled to [0, 1]")
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _resize_float(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(arr.astype(np.float32), mode="F")
    return np.clip(np.asarray(im.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float64), 0.0, 1.0)


def _pixels(im, h: int, w: int, c: int, notes: list[str], source: tuple[str, str]) -> np.ndarray:
    """A decoded Pillow image → floats in [0, 1] of shape (h, w) (c = 1) or (h, w, 3).

    ``source`` is the file's (size, mode) before any JPEG draft decoding changed them.
    """
    from PIL import Image

    size, mode = source
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = _deep_pixels(im, notes)
        if (h, w) != arr.shape:
            notes.append(f"resized {size} → {w}x{h}")
            arr = _resize_float(arr, h, w)
        if c == 3:
            notes.append("grey → RGB")
            arr = np.repeat(arr[..., None], 3, axis=2)
        return arr
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in im.info:
        im = _alpha_picture(im, notes)
    colour = im.mode not in GREY_MODES or mode not in GREY_MODES
    if colour and c == 1:
        notes.append(f"{mode if mode not in GREY_MODES else im.mode} → grey")
    elif not colour and c == 3:
        notes.append("grey → RGB")
    im = im.convert("L" if c == 1 else "RGB")
    if im.size != (w, h) or size != f"{w}x{h}":
        notes.append(f"resized {size} → {w}x{h}")
    if im.size != (w, h):
        # reducing_gap: shrink by whole factors first (box filter), so that a 1×16,777,216 image
        # does not make a 28×16,777,216 intermediate (found by fuzz/fuzz_image.py: > 1 GB).
        im = im.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(im, dtype=np.float64) / 255.0


class _errors:
    """Every Pillow failure as a one-line ConvpropError naming the file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import warnings

        from PIL import Image

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return self

    def __exit__(self, kind, exc, tb):
        from PIL import Image, UnidentifiedImageError

        self._warnings.__exit__(kind, exc, tb)
        if exc is None or isinstance(exc, ConvpropError) and str(exc).startswith(str(self.path)):
            return False
        path = self.path
        if isinstance(exc, ConvpropError):
            raise ConvpropError(f"{path}: {exc}") from None
        if isinstance(exc, UnidentifiedImageError):
            raise ConvpropError(f"{path}: not an image file convprop reads ({', '.join(IMAGE_FORMATS)})") from None
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise ConvpropError(f"{path}: too many pixels to decode ({str(exc).splitlines()[0]})") from None
        if isinstance(exc, FileNotFoundError):
            raise ConvpropError(f"{path}: no such file") from None
        if isinstance(exc, (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                            struct.error, ZeroDivisionError, OverflowError, MemoryError)):
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # Pillow's "corrupt"
            raise ConvpropError(f"{path}: corrupt or truncated image ({message})") from None
        return False


def decode_image(path: Path, shape: tuple[int, int, int], invert: bool = False) -> tuple[np.ndarray, list[str]]:
    """One image file → floats in [0, 1] of a network's input shape, and what was converted.

    Parameters
    ----------
    path : Path
        PNG, JPEG, BMP, GIF, TIFF, WebP or PPM (see :data:`IMAGE_FORMATS`), at most
        :data:`MAX_IMAGE_PIXELS` pixels.
    shape : (H, W, C)
        The network's input; C is 1 (grey) or 3 (RGB).
    invert : bool
        Return 1 − pixels (dark ink on light paper → MNIST's light on dark).

    Returns
    -------
    image : ndarray of float64, shape (H, W) when C = 1, else (H, W, 3)
    notes : list of str
        Each conversion made, e.g. ``"RGB → grey"``, ``"resized 640x480 → 28x28"``,
        ``"floating-point pixels read as [0, 1]"``; empty when the file already was the input.

    Raises
    ------
    ConvpropError
        Not an image, a format outside IMAGE_FORMATS, too many pixels, a corrupt or
        truncated file: one line naming the file.
    """
    h, w, c = shape
    if c not in (1, 3):
        raise ConvpropError(f"the model takes {c} input maps; only 1 (grey) or 3 (RGB) can be read from images")
    notes: list[str] = []
    with _errors(path):
        with _open(path) as im:
            source = (f"{im.size[0]}x{im.size[1]}", im.mode)
            if im.format == "JPEG":  # decode a big photo at 1/2 … 1/8 scale straight away
                im.draft("L" if c == 1 else "RGB", (4 * w, 4 * h))
            arr = _pixels(im, h, w, c, notes, source)
    if arr.shape != ((h, w) if c == 1 else (h, w, 3)):
        raise ConvpropError(f"{path}: decoded to shape {arr.shape}, expected {(h, w)}")
    if arr.max() == arr.min():
        notes.append(f"blank: every pixel is {arr.flat[0]:.3g}")
    return (1.0 - arr if invert else arr), notes


def read_image(path: Path, shape: tuple[int, int, int], invert: bool) -> np.ndarray:
    """One image file → (H, W) or (H, W, 3) floats in [0, 1]: :func:`decode_image` without its notes."""
    return decode_image(path, shape, invert)[0]
