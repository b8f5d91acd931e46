"""Image files → arrays: Pillow decoding with limits (formats, pixel count), resizing to a model's input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .._files import open_regular
from ..errors import ConvpropError

#: Formats convprop decodes: plain raster formats only. (Pillow would otherwise also open EPS
#: by running Ghostscript on the file, and a dozen rarer formats.)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: Largest image decoded, in pixels (checked from the header, before decoding):
#: far above any input a classic CNN takes, far below a decompression bomb.
MAX_IMAGE_PIXELS = 1 << 24


def read_image(path: Path, shape: tuple[int, int, int], invert: bool) -> np.ndarray:
    """One image file → (H, W) or (H, W, 3) floats in [0, 1], resized to the model's input.

    Every failure is a one-line ConvpropError: not an image, a format outside IMAGE_FORMATS,
    too many pixels, or a corrupt or truncated file (whatever Pillow raised).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    h, w, c = shape
    if c not in (1, 3):
        raise ConvpropError(f"the model takes {c} input maps; only 1 (grey) or 3 (RGB) can be read from images")
    try:
        with warnings.catch_warnings(), open_regular(path, "image") as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f, formats=IMAGE_FORMATS) as im:
                width, height = im.size
                if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
                    raise ConvpropError(f"{path}: {im.format} image of {width}x{height} pixels; predict"
                                        f" reads images of 1 to {MAX_IMAGE_PIXELS} pixels")
                if im.format == "JPEG":  # decode a big photo at 1/2 … 1/8 scale straight away
                    im.draft("L" if c == 1 else "RGB", (4 * w, 4 * h))
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    # reducing_gap: shrink by whole factors first (box filter), so that a
                    # 1×16,777,216 image does not make a 28×16,777,216 intermediate (found by
                    # fuzz/fuzz_image.py: > 1 GB); small images resize exactly as before.
                    im = im.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
                arr = np.asarray(im, dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise ConvpropError(f"{path}: not an image file convprop reads ({', '.join(IMAGE_FORMATS)})") from None
    except ConvpropError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ConvpropError(f"{path}: too many pixels to decode ({str(exc).splitlines()[0]})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error,
            ZeroDivisionError, OverflowError, MemoryError) as exc:  # Pillow's ways of saying "corrupt"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConvpropError(f"{path}: corrupt or truncated image ({message})") from None
    if arr.shape != ((h, w) if c == 1 else (h, w, 3)):
        raise ConvpropError(f"{path}: decoded to shape {arr.shape}, expected {(h, w)}")
    return 1.0 - arr if invert else arr
