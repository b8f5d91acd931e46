"""Validation of user input: clear messages instead of errors from deep inside."""

from __future__ import annotations

import warnings

import numpy as np

from .errors import ConvpropError


def as_float_array(x, dtype: np.dtype, what: str) -> np.ndarray:
    """``x`` as a finite real array of ``dtype`` (copied only when needed)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists, odd objects
        raise ConvpropError(f"{what} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ConvpropError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f":
        # in slices of the first axis: a file-backed array larger than memory stays on disk
        step = max(1, (1 << 24) // max(1, arr[:1].size)) if arr.ndim else 1
        parts = [arr[i:i + step] for i in range(0, len(arr), step)] if arr.ndim else [arr]
        bad = sum(int(p.size - np.count_nonzero(np.isfinite(p))) for p in parts)
        if bad:
            raise ConvpropError(f"{what} contains {bad} NaN or infinite value(s)")
    return arr


def check_images(x, image_shape: tuple[int, int, int], dtype: np.dtype, what: str = "images") -> tuple[np.ndarray, bool]:
    """Images as a (N, H, W, C) array of ``dtype``; also whether a single image was given.

    Accepts (N, H, W) or (H, W) when C = 1, and (N, H, W, C) or (H, W, C) otherwise;
    one-map images may also carry their trailing axis of 1, (N, H, W, 1) or (H, W, 1).
    """
    _warn_uint8(x, what)
    arr = as_float_array(x, dtype, what)
    h, w, c = image_shape
    if c == 1 and arr.shape[-1:] == (1,) and arr.shape[-3:] == (h, w, 1) and arr.ndim in (3, 4) \
            and not (arr.ndim == 3 and arr.shape[1:] == (h, w)):
        arr = arr[..., 0]  # (…, H, W, 1) → (…, H, W), unless it already reads as a batch
    batch_ndim = 3 if c == 1 else 4
    single = arr.ndim == batch_ndim - 1
    if single:
        arr = arr[None]
    expected = (h, w) if c == 1 else (h, w, c)
    form = "(N, H, W)" if c == 1 else "(N, H, W, C)"
    if arr.ndim != batch_ndim or arr.shape[1:] != expected:
        raise ConvpropError(
            f"{what} must have shape {form} = (N, {', '.join(map(str, expected))}) "
            f"or be one image of shape {expected}; got {np.shape(x)}"
        )
    if arr.shape[0] == 0:
        raise ConvpropError(f"{what} is empty (0 images)")
    if c == 1:
        arr = arr[..., None]
    return arr, single


def _warn_uint8(x, what: str) -> None:
    """uint8 pixels (0–255) fed to a network are almost always a missing ``/ 255``: say so."""
    if isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.size and x.max() > 1:
        warnings.warn(f"{what} are uint8 pixels (0-255) and are used as they are; networks are trained on "
                      "pixels / 255 (convprop.datasets.images_to_float(x)): divide them, or pass floats to "
                      "silence this", UserWarning, stacklevel=4)


def check_targets(y, n: int, n_outputs: int, dtype: np.dtype, what: str = "targets") -> np.ndarray:
    """Targets as an (n, n_outputs) array of ``dtype``.

    ``y`` is either integer class labels of shape (n,) in [0, n_outputs), or
    target vectors (one-hot or any real values) of shape (n, n_outputs).
    """
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise ConvpropError(f"{what} could not be read as an array: {exc}") from None
    if arr.ndim == 1:
        return one_hot(labels_array(arr, n, n_outputs, what), n_outputs, dtype)
    if arr.ndim != 2 or arr.shape != (n, n_outputs):
        raise ConvpropError(
            f"{what} must be {n} integer labels (shape ({n},)) or target vectors of shape "
            f"({n}, {n_outputs}); got shape {arr.shape}"
        )
    return as_float_array(arr, dtype, what)


def labels_array(y, n: int, n_classes: int, what: str = "labels") -> np.ndarray:
    """Integer class labels of shape (n,), each in [0, n_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConvpropError(f"{what} must have shape ({n},) to match {n} images; got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
            raise ConvpropError(f"{what} must be integer class labels; got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise ConvpropError(f"{what} must be integer class labels; got dtype {arr.dtype}")
    # The range is checked before any cast: 1e20 as a label would wrap in int64.
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        raise ConvpropError(
            f"{what} must lie in [0, {n_classes - 1}] for {n_classes} outputs; "
            f"got values from {arr.min():g} to {arr.max():g}"
        )
    return arr.astype(np.intp, copy=False)


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """(N,) labels → (N, n_classes) one-hot rows."""
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def check_dtype(dtype) -> np.dtype:
    """float32 or float64, else an error."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ConvpropError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ConvpropError(f"dtype must be float32 or float64, got {dt}")
    return dt


# ------------------------------------------------------------ parameters
# Declarative checks of settings, after scikit-learn's ``_parameter_constraints``:
# a constraint says what a value may be; :func:`check_param` and :func:`check_params`
# check values against them with one message format,
# "<name> must be <what the constraints allow>, got <value>".


class Interval:
    """Numbers of a ``kind`` (int or float) between ``low`` and ``high``.

    ``closed`` is "both", "left", "right" or "neither"; None as a bound means no
    bound. Floats must be finite; bools are not numbers here. ``name``, if given,
    is how messages describe the interval.
    """

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both",
                 name: str | None = None):
        self.kind, self.low, self.high, self.closed, self.name = kind, low, high, closed, name

    def __call__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
            return False
        if self.kind is int and not isinstance(value, (int, np.integer)):
            return False
        if not isinstance(value, (int, np.integer)) and not np.isfinite(value):  # ints are finite (and
            return False  # a Python int past 64 bits would make np.isfinite raise TypeError)
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    def __str__(self) -> str:
        if self.name:
            return self.name
        what = "an integer" if self.kind is int else "a finite number"
        if self.kind is int and self.low == 1 and self.high is None:
            return "a positive integer"
        if self.low == 0 and self.high is None and self.closed in ("neither", "right"):
            return "a positive finite number"
        if self.low == 0 and self.high is None:
            return f"a non-negative {what.split(' ', 1)[1]}"
        lo = "(" if self.closed in ("neither", "right") else "["
        hi = ")" if self.closed in ("neither", "left") else "]"
        return f"{what} in {lo}{'-inf' if self.low is None else f'{self.low:g}'}, " \
               f"{'inf' if self.high is None else f'{self.high:g}'}{hi}"


class Options:
    """One of a set of values (e.g. strings)."""

    def __init__(self, *values):
        self.values = values

    def __call__(self, value) -> bool:
        try:
            return value in self.values
        except TypeError:  # unhashable
            return False

    def __str__(self) -> str:
        return "one of " + ", ".join(str(v) for v in self.values)


class InstanceOf:
    """An instance of one of the given types."""

    def __init__(self, *types: type, name: str | None = None):
        self.types, self.name = types, name

    def __call__(self, value) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.name or "a " + " or ".join(t.__name__ for t in self.types)


POSITIVE_INT = Interval(int, 1, None)
POSITIVE = Interval(float, 0, None, closed="neither")
NON_NEGATIVE = Interval(float, 0, None)
BOOL = InstanceOf(bool, np.bool_, name="True or False")


def check_param(name: str, value, *constraints):
    """``value`` when it meets one of ``constraints`` (None allows None), else a ConvpropError.

    Integers from an :class:`Interval` of ints come back as ``int``, numbers from
    one of floats as ``float``.
    """
    for c in constraints:
        if c is None and value is None:
            return None
        if c is not None and c(value):
            if isinstance(c, Interval):
                return int(value) if c.kind is int else float(value)
            return value
    allowed = " or ".join("None" if c is None else str(c) for c in constraints)
    raise ConvpropError(f"{name} must be {allowed}, got {value!r}")


def check_params(values: dict, constraints: dict) -> dict:
    """Every ``values[name]`` checked against ``constraints[name]`` (a list); the checked values."""
    return {name: check_param(name, values[name], *constraints[name]) for name in constraints}


def positive_int(value, what: str) -> int:
    """``value`` as an int ≥ 1."""
    return check_param(what, value, POSITIVE_INT)


def positive_float(value, what: str) -> float:
    """``value`` as a finite float > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        pass
    return check_param(what, value, POSITIVE)
