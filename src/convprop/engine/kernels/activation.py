"""Activations and their derivatives (through a = f(z)) as compiled elementwise passes.

Codes (``Activation.kernel_code``): 0 sigmoid, 1 tanh, 2 ReLU, 3 leaky ReLU, 4 identity.

The sigmoid's exp is written out (range reduction by ln 2, a polynomial,
2ⁿ by its bits) so that the loop vectorises: Numba's ``math.exp`` is a
scalar libm call, 3× slower than NumPy's SIMD exp. Relative error of σ:
float64 < 4e-16 (degree-12 Taylor on |r| ≤ ln2/2), float32 < 2.5e-7. e^−z is
clamped to |z| ≤ 708 (float64) / 87 (float32) so that 2ⁿ stays a normal number:
below z = −708 σ is a few times the smallest normal number (NumPy: the true tiny
value, or 0 below −709.8) — an absolute difference under 1e-307 (1e-37). tanh uses
the same exp above |x| = 1/4 and its Taylor series below (:func:`tanh_`): relative
error < 1e-15 (float64), < 5e-7 (float32).
"""

from __future__ import annotations

import numpy as np

from ._jit import f64_as_i64, i32_as_f32, i64_as_f64, jit

SIGMOID, TANH, RELU, LEAKY, IDENTITY = 0, 1, 2, 3, 4

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # ln 2 split: n·LN2_HI is exact for |n| < 2¹⁰
_LN2_LO = 1.4286068203094173e-06
#: 2⁵² + 1023: n + this is exact for an integral float64 n, |n| ≤ 1022, and its low bits are n + 1023
_BIASED = 4503599627370496.0 + 1023.0


@jit
def _exp64(x):
    """e^x for float64 x, |x| ≤ 708 (callers clamp)."""
    n = np.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2ⁿ from the bits of n + 2⁵² + 1023 (n + 1023 in the low mantissa bits) shifted into the exponent:
    # no float64 → int64 conversion, which x86 has no vector instruction for before AVX-512 (with it the
    # loop ran one element at a time: 2.4 ns an element, 4.6× the float32 loop's time; the same bits)
    return p * i64_as_f64(f64_as_i64(n + _BIASED) << 52)


@jit
def _exp32(x):
    """e^x for float32 x, |x| ≤ 87 (callers clamp)."""
    n = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))
    r = (x - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * i32_as_f32((np.int32(n) + np.int32(127)) << np.int32(23))


@jit
def sigmoid_(z):
    """In place: z ← 1 / (1 + e^−z); z 1-D contiguous, float32 or float64."""
    if z.itemsize == 4:
        lo, hi = np.float32(-87.0), np.float32(87.0)
        one = np.float32(1.0)
        for m in range(z.shape[0]):
            t = -z[m]
            t = hi if t > hi else t  # clamped so that 2ⁿ stays finite; NaN passes through
            t = lo if t < lo else t
            z[m] = one / (one + _exp32(t))
    else:
        for m in range(z.shape[0]):
            t = -z[m]
            t = 708.0 if t > 708.0 else t
            t = -708.0 if t < -708.0 else t
            z[m] = 1.0 / (1.0 + _exp64(t))


#: tanh's Taylor coefficients of x³ … x²¹ (t₃, t₅, …): below |x| = 1/4 the series' next term is
#: under 3e-18 of x (float32 uses them to x⁹: 9e-9)
_TANH = (-1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0, -1382.0 / 155925.0, 21844.0 / 6081075.0,
         -929569.0 / 638512875.0, 6404582.0 / 10854718875.0, -443861162.0 / 1856156927625.0,
         18888466084.0 / 194896477400625.0)


@jit
def tanh_(z):
    """In place: z ← tanh z; z 1-D contiguous, float32 or float64.

    x + x³·P(x²) (Taylor) below |x| = 1/4, else ±(1 − 2 / (e^{2|x|} + 1)) with the sigmoid's exp
    (2|x| clamped where the result is ±1 already): both computed, one kept, so that the loop
    vectorises (``math.tanh`` is a scalar libm call: 19 ns an element in float32, 7× NumPy's).
    Relative error < 1e-15 (float64), < 5e-7 (float32); NaN passes through, tanh ±inf = ±1.
    """
    if z.itemsize == 4:
        one, two, quarter, hi = np.float32(1.0), np.float32(2.0), np.float32(0.25), np.float32(87.0)
        c3, c5, c7, c9 = np.float32(_TANH[0]), np.float32(_TANH[1]), np.float32(_TANH[2]), np.float32(_TANH[3])
        for m in range(z.shape[0]):
            x = z[m]
            a = x if x >= 0 else -x
            s = a * a
            small = x + x * (s * (((c9 * s + c7) * s + c5) * s + c3))
            small = x if small == 0 else small  # tanh(−0) = −0 (−0 + 0 would be +0)
            t = a + a
            t = hi if t > hi else t
            big = one - two / (_exp32(t) + one)
            big = big if x >= 0 else -big
            z[m] = small if a < quarter else big
    else:
        c = _TANH
        for m in range(z.shape[0]):
            x = z[m]
            a = x if x >= 0 else -x
            s = a * a
            p = c[9]
            p = p * s + c[8]
            p = p * s + c[7]
            p = p * s + c[6]
            p = p * s + c[5]
            p = p * s + c[4]
            p = p * s + c[3]
            p = p * s + c[2]
            p = p * s + c[1]
            p = p * s + c[0]
            small = x + x * (s * p)
            small = x if small == 0 else small
            t = a + a
            t = 708.0 if t > 708.0 else t
            big = 1.0 - 2.0 / (_exp64(t) + 1.0)
            big = big if x >= 0 else -big
            z[m] = small if a < 0.25 else big


@jit
def apply_(z, code, slope):
    """In place: z ← f(z) for activation ``code``; z 1-D contiguous."""
    if code == SIGMOID:
        sigmoid_(z)
    elif code == TANH:
        tanh_(z)
    elif code == RELU:
        zero = z.dtype.type(0)
        for m in range(z.shape[0]):
            v = z[m]
            z[m] = zero if v < zero else v  # NaN passes through, as np.maximum
    elif code == LEAKY:
        s = z.dtype.type(slope)
        for m in range(z.shape[0]):
            v = z[m]
            z[m] = v if v > 0 else v * s


@jit
def derivative(delta, a, code, slope, out, lo, hi):
    """out = delta · f'(z), f' written through a = f(z); all (C, H, W, N), C-contiguous; rows lo…hi of C·H.

    sigmoid a(1 − a); tanh 1 − a²; ReLU [a > 0]; leaky ReLU 1 or slope; identity 1.
    """
    rows = a.shape[0] * a.shape[1]
    length = a.shape[2] * a.shape[3]
    a2 = a.reshape(rows, length)
    d2 = delta.reshape(rows, length)
    o2 = out.reshape(rows, length)
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    s = a.dtype.type(slope)
    for t in range(lo, hi):
        ar, dr, orow = a2[t], d2[t], o2[t]
        if code == SIGMOID:
            for m in range(length):
                orow[m] = dr[m] * ((one - ar[m]) * ar[m])
        elif code == TANH:
            for m in range(length):
                orow[m] = dr[m] * (one - ar[m] * ar[m])
        elif code == RELU:
            for m in range(length):
                orow[m] = dr[m] if ar[m] > zero else zero
        elif code == LEAKY:
            for m in range(length):
                orow[m] = dr[m] if ar[m] > zero else dr[m] * s
        else:
            for m in range(length):
                orow[m] = dr[m]
