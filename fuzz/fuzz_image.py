"""atheris target: the image reader of ``convprop predict`` (Pillow: PNG, JPEG, BMP, GIF, TIFF …),
asked for a grey 28×28 and an RGB 32×32 input; inputs starting with ``G`` are parameters for
:func:`generators.image` (PNG headers claiming up to 2³¹×2³¹ pixels)."""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import generators
import numpy  # noqa: F401  (imported before instrumenting)

with atheris.instrument_imports(include=["convprop", "PIL"]):
    import PIL.Image  # noqa: F401

    from convprop.datasets.images import read_image


def one_input(path: str) -> None:
    from pathlib import Path

    try:
        read_image(Path(path), (28, 28, 1), False)
    finally:
        read_image(Path(path), (32, 32, 3), True)


if __name__ == "__main__":
    _harness.main(one_input, ".img", generators.image)
