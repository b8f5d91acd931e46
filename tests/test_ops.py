"""The array operations: the seed's identities and adjointness."""

import numpy as np
import pytest
from scipy.signal import convolve, correlate

from convprop.engine import ops
import nhwc_reference as nhwc


def test_seed_2x2_example_rot180_full_convolution():
    """The seed's rough proof on its 2×2 example.

    z = conv(K, X) + θ for a 2×2 image X and kernel K is one number,
    z = k22·x11 + k21·x12 + k12·x21 + k11·x22 (true convolution).
    Then ∂z/∂x_ij is the kernel entry that multiplies x_ij, and the matrix of
    δ·∂z/∂x_ij equals the full convolution of the zero-padded δ with rot180(K).
    """
    rng = np.random.default_rng(0)
    X = rng.random((2, 2))
    K = rng.random((2, 2))
    (k11, k12), (k21, k22) = K
    (x11, x12), (x21, x22) = X
    z = convolve(X, K, mode="valid")
    assert z.shape == (1, 1)
    assert z[0, 0] == pytest.approx(k22 * x11 + k21 * x12 + k12 * x21 + k11 * x22, abs=1e-15)

    delta = 0.7
    # dz/dx_ij, read off the expansion above.
    dz_dx = np.array([[k22, k21], [k12, k11]])
    full = convolve(np.array([[delta]]), np.rot90(K, 2), mode="full")
    np.testing.assert_allclose(full, delta * dz_dx, rtol=0, atol=1e-15)
    # The seed's padded form: the 3×3 zero-padded δ, correlated with K... i.e. convolved with rot180(K).
    padded = np.zeros((3, 3))
    padded[1, 1] = delta
    np.testing.assert_allclose(convolve(padded, np.rot90(K, 2), mode="valid"), delta * dz_dx, atol=1e-15)

    # The same identity through convprop's ops (correlation weights are rot180 of K).
    weight = np.rot90(K, 2)[None, None].copy()
    z_ops, _ = nhwc.correlate_valid(X[None, :, :, None], weight)
    assert z_ops[0, 0, 0, 0] == pytest.approx(z[0, 0], abs=1e-15)
    dx = nhwc.correlate_valid_input_grad(np.full((1, 1, 1, 1), delta), weight)
    np.testing.assert_allclose(dx[0, :, :, 0], delta * dz_dx, atol=1e-15)


@pytest.mark.parametrize("shape,kernel", [((3, 7, 9, 2), (4, 2, 3, 3)), ((2, 6, 5, 1), (3, 1, 2, 4))])
def test_correlate_valid_matches_scipy(shape, kernel):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kernel)
    z, cols = nhwc.correlate_valid(x, w)
    n, h, wd, c = shape
    co, ci, kh, kw = kernel
    assert z.shape == (n, h - kh + 1, wd - kw + 1, co)
    assert cols.shape == (n * (h - kh + 1) * (wd - kw + 1), ci * kh * kw)
    for b in range(n):
        for j in range(co):
            ref = sum(correlate(x[b, :, :, i], w[j, i], mode="valid") for i in range(ci))
            np.testing.assert_allclose(z[b, :, :, j], ref, rtol=1e-13, atol=1e-13)


def test_convolution_adjoints_dot_product():
    """<A x, g> = <x, Aᵀ g> for the input and the weight adjoints."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 7, 2))
    w = rng.standard_normal((4, 2, 3, 2))
    z, cols = nhwc.correlate_valid(x, w)
    g = rng.standard_normal(z.shape)
    lhs = np.sum(z * g)
    dx = nhwc.correlate_valid_input_grad(g, w)
    dw = nhwc.correlate_valid_weight_grad(cols, g).reshape(w.shape)
    assert np.sum(x * dx) == pytest.approx(lhs, rel=1e-12)
    assert np.sum(w * dw) == pytest.approx(lhs, rel=1e-12)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_mean_pool_and_its_adjoint(scale):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 6 * scale, 4 * scale, 3))
    p = ops.mean_pool(a, scale)
    assert p.shape == (2, 6, 4, 3)
    # The toolbox's way: convn with ones(scale)/scale², keep every scale-th sample.
    for j in range(3):
        ref = convolve(a[0, :, :, j], np.ones((scale, scale)) / scale**2, mode="valid")[::scale, ::scale]
        np.testing.assert_allclose(p[0, :, :, j], ref, rtol=1e-13)
    g = rng.standard_normal(p.shape)
    back = ops.mean_pool_backward(g, scale)
    np.testing.assert_allclose(back[1, :, :, 2], np.kron(g[1, :, :, 2], np.ones((scale, scale))) / scale**2, rtol=0)
    assert np.sum(p * g) == pytest.approx(np.sum(a * back), rel=1e-12)


def test_sigmoid_keeps_dtype_and_is_stable():
    z = np.array([-1000.0, 0.0, 1000.0], dtype=np.float32)
    with np.errstate(all="raise"):
        s = ops.sigmoid(z)
    assert s.dtype == np.float32
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
    a = np.array([0.25])
    assert ops.sigmoid_backward(np.array([2.0]), a)[0] == 2.0 * 0.25 * 0.75
