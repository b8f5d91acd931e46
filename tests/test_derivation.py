"""Every equality stated in docs/derivation.md, executed on small float64 arrays.

The test names are the ones the page cites. Each identity is checked three ways where it
applies: the formula on the page, an independent reference (scipy.signal's convolutions, or
finite differences of the forward formula), and convprop's own implementation.
"""

import numpy as np
import pytest
from scipy.signal import convolve, convolve2d, correlate2d

from convprop import Conv, Input, Network, Subsample
from convprop.engine import ops
import nhwc_reference as nhwc

rng = np.random.default_rng(2024)


def rot180(k):
    return k[::-1, ::-1]


def flipall(a):
    return a[::-1, ::-1, ::-1]


def expand(d, s):
    return np.kron(d, np.ones((s, s)))


def sigm(z):
    return 1 / (1 + np.exp(-z))


def numeric_grad(f, x, eps=1e-6):
    """Central differences of a scalar function f at x (any shape)."""
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + eps
        plus = f(x)
        x[idx] = keep - eps
        minus = f(x)
        x[idx] = keep
        g[idx] = (plus - minus) / (2 * eps)
    return g


def correlate_valid(x, w):
    """(X ⋆ W)[r, c] = Σ_uv X[r+u, c+v] W[u, v], straight from the definition."""
    kh, kw = w.shape
    out = np.zeros((x.shape[0] - kh + 1, x.shape[1] - kw + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = np.sum(x[r : r + kh, c : c + kw] * w)
    return out


# ---------------------------------------------------------------- (0)


def test_true_convolution_is_correlation_with_rot180():
    x, k = rng.random((6, 5)), rng.random((3, 3))
    conv = convolve2d(x, k, mode="valid")  # MATLAB convn(x, k, 'valid')
    np.testing.assert_allclose(conv, correlate_valid(x, rot180(k)), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(correlate_valid(x, k), correlate2d(x, k, mode="valid"), rtol=1e-14, atol=1e-15)
    # the written-out definition of the true convolution: K[k−1−u, k−1−v]
    r, c = 2, 1
    manual = sum(x[r + u, c + v] * k[2 - u, 2 - v] for u in range(3) for v in range(3))
    assert conv[r, c] == pytest.approx(manual, rel=1e-14)
    # full = valid on the input padded with k − 1 zeros
    np.testing.assert_allclose(convolve2d(x, k, mode="full"), convolve2d(np.pad(x, 2), k, mode="valid"), rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------- (B1)


def test_output_delta():
    z, y = rng.normal(size=5), rng.random(5)

    def loss(z):
        return 0.5 * np.sum((sigm(z) - y) ** 2)

    o = sigm(z)
    delta = (o - y) * o * (1 - o)  # (B1)
    np.testing.assert_allclose(numeric_grad(loss, z.copy()), delta, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ops.sigmoid_backward(o - y, o), delta, rtol=1e-15)
    # σ'(z) = σ(z)(1 − σ(z))
    np.testing.assert_allclose(numeric_grad(lambda t: sigm(t).sum(), z.copy()), o * (1 - o), rtol=1e-7)


# ----------------------------------------------------------- (B2), (B3)


def test_fully_connected_delta_and_gradients():
    n, f_dim, k = 3, 6, 4
    W, b = rng.normal(size=(k, f_dim)), rng.normal(size=k)
    f, y = rng.random((n, f_dim)), rng.random((n, k))

    def batch_loss(W=W, b=b, f=f):
        o = sigm(f @ W.T + b)
        return 0.5 * np.sum((o - y) ** 2) / n

    o = sigm(f @ W.T + b)
    od = (o - y) * o * (1 - o)  # (B1), per sample
    # (B2): ∂ℓ_n/∂f_n = Wᵀ δ_n (the batch loss carries 1/N)
    np.testing.assert_allclose(numeric_grad(lambda f_: batch_loss(f=f_), f.copy()) * n, od @ W, rtol=1e-6, atol=1e-11)
    # (B3)
    np.testing.assert_allclose(numeric_grad(lambda W_: batch_loss(W=W_), W.copy()), od.T @ f / n, rtol=1e-6, atol=1e-11)
    np.testing.assert_allclose(numeric_grad(lambda b_: batch_loss(b=b_), b.copy()), od.mean(axis=0), rtol=1e-6, atol=1e-11)
    # convprop's output layer computes the same
    net = Network([Input(f_dim, 1)], n_outputs=k)
    out = net.output
    out.params["weight"][...] = W
    out.params["bias"][...] = b
    out.forward(f)
    fvd = out.backward(o - y)
    np.testing.assert_allclose(fvd, od @ W, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out.grads["weight"], od.T @ f / n, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out.grads["bias"], od.mean(axis=0), rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------- (B4)


def test_pooling_delta_is_expand_over_scale_squared():
    s = 2
    a, d = rng.random((6, 4)), rng.normal(size=(3, 2))

    def pool(a):  # (F2)
        return a.reshape(3, s, 2, s).mean(axis=(1, 3))

    # the toolbox's way of pooling: convn with ones/s², then every s-th sample
    np.testing.assert_allclose(convolve2d(a, np.ones((s, s)) / s**2, mode="valid")[::s, ::s], pool(a), rtol=1e-14, atol=1e-15)
    back = expand(d, s) / s**2
    # adjoint: ⟨pool(A), D⟩ = ⟨A, expand(D)/s²⟩, and the gradient of ⟨D, pool(A)⟩ is expand(D)/s²
    assert np.sum(pool(a) * d) == pytest.approx(np.sum(a * back), rel=1e-14)
    np.testing.assert_allclose(numeric_grad(lambda a_: np.sum(pool(a_) * d), a.copy()), back, rtol=1e-8, atol=1e-12)
    # one term per input pixel: δ[⌊p/s⌋, ⌊q/s⌋] / s²
    assert back[3, 1] == d[1, 0] / 4
    # (B4) with the sigmoid of the convolution layer below
    z = rng.normal(size=(6, 4))
    act = sigm(z)
    delta = act * (1 - act) * back
    np.testing.assert_allclose(numeric_grad(lambda z_: np.sum(pool(sigm(z_)) * d), z.copy()), delta, rtol=1e-7, atol=1e-12)
    # convprop: ops.mean_pool_backward on (N, H, W, C) maps
    got = ops.mean_pool_backward(d[None, :, :, None], s)[0, :, :, 0]
    np.testing.assert_allclose(got, back, rtol=1e-15)
    np.testing.assert_allclose(ops.mean_pool(a[None, :, :, None], s)[0, :, :, 0], pool(a), rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------- the seed


def test_seed_2x2_example():
    x11, x12, x21, x22 = rng.normal(size=4)
    k11, k12, k21, k22 = rng.normal(size=4)
    theta, delta = rng.normal(), rng.normal()
    X = np.array([[x11, x12], [x21, x22]])
    K = np.array([[k11, k12], [k21, k22]])
    # z = X ⋆ K + θ = k11 x11 + k12 x12 + k21 x21 + k22 x22 + θ
    z = correlate_valid(X, K)[0, 0] + theta
    assert z == pytest.approx(k11 * x11 + k12 * x12 + k21 * x21 + k22 * x22 + theta, rel=1e-14)
    # the true convolution pairs them the other way round
    assert convolve2d(X, K, mode="valid")[0, 0] == pytest.approx(k22 * x11 + k21 * x12 + k12 * x21 + k11 * x22, rel=1e-14)
    # ∂E/∂x_ij = δ k_ij for E with ∂E/∂z = δ (take E = δ·z)
    grad = numeric_grad(lambda X_: delta * (correlate_valid(X_, K)[0, 0] + theta), X.copy())
    np.testing.assert_allclose(grad, delta * K, rtol=1e-8, atol=1e-12)
    # [[δk11 δk12] [δk21 δk22]] = [[0 0 0] [0 δ 0] [0 0 0]] ⋆ [[k22 k21] [k12 k11]]
    padded = np.array([[0, 0, 0], [0, delta, 0], [0, 0, 0]])
    rotated = np.array([[k22, k21], [k12, k11]])
    np.testing.assert_array_equal(rotated, rot180(K))
    np.testing.assert_allclose(correlate_valid(padded, rotated), delta * K, rtol=1e-14, atol=1e-15)
    # … which is the toolbox's convn(δ, rot180(K'), 'full') for its kernel K' = rot180(K)
    np.testing.assert_allclose(convolve2d([[delta]], K, mode="full"), delta * K, rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------- (B5)


def test_conv_input_delta_is_full_convolution_with_rot180():
    X, W = rng.random((6, 5)), rng.normal(size=(3, 3))
    delta = rng.normal(size=(4, 3))

    def ell(X_):  # a loss whose delta at z = X ⋆ W is `delta`
        return np.sum(delta * correlate_valid(X_, W))

    numeric = numeric_grad(ell, X.copy())
    full = convolve2d(delta, W, mode="full")  # (δ * W)_full
    np.testing.assert_allclose(numeric, full, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(correlate_valid(np.pad(delta, 2), rot180(W)), full, rtol=1e-14, atol=1e-15)
    # written out: Σ_rc δ[r, c] W[p − r, q − c]
    p, q = 3, 2
    manual = sum(delta[r, c] * W[p - r, q - c] for r in range(4) for c in range(3) if 0 <= p - r < 3 and 0 <= q - c < 3)
    assert full[p, q] == pytest.approx(manual, rel=1e-14)
    # (B5) in the toolbox's terms, with several maps: k_ij = rot180(W_ji)
    c_in, c_out = 2, 3
    Ws = rng.normal(size=(c_out, c_in, 3, 3))
    ds = rng.normal(size=(c_out, 4, 3))
    k = Ws[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # k[i, j] = rot180(W[j, i])
    toolbox = [sum(convolve2d(ds[j], rot180(k[i, j]), mode="full") for j in range(c_out)) for i in range(c_in)]
    got = nhwc.correlate_valid_input_grad(ds.transpose(1, 2, 0)[None], Ws)[0]
    for i in range(c_in):
        np.testing.assert_allclose(got[:, :, i], toolbox[i], rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------- (B6)


def test_kernel_gradient_via_flipall():
    n, k = 3, 3
    a = rng.random((6, 5, n))  # toolbox layout H×W×N
    d = rng.normal(size=(4, 3, n))
    W = rng.normal(size=(k, k))

    def batch_loss(W_):  # L = (1/N) Σ_n ⟨d_n, a_n ⋆ W⟩: its delta at z_n is d_n / N … times N per sample
        return sum(np.sum(d[:, :, i] * correlate_valid(a[:, :, i], W_)) for i in range(n)) / n

    dW = sum(correlate_valid(a[:, :, i], d[:, :, i]) for i in range(n)) / n  # ∂L/∂W = (1/N) Σ a_n ⋆ d_n
    np.testing.assert_allclose(numeric_grad(batch_loss, W.copy()), dW, rtol=1e-7, atol=1e-10)
    # the toolbox: convn(flipall(a), d, 'valid') / N — one call, the batch axis has valid extent 1
    toolbox = convolve(flipall(a), d, mode="valid")
    assert toolbox.shape == (k, k, 1)
    np.testing.assert_allclose(toolbox[:, :, 0] / n, rot180(dW), rtol=1e-13, atol=1e-15)
    # written out: (flipall(A) * D)[p] = Σ_m A[P − M − p + m] D[m]
    u, v = 2, 0
    manual = sum(a[2 - u + r, 2 - v + c, m] * d[r, c, m] for r in range(4) for c in range(3) for m in range(n))
    assert toolbox[u, v, 0] == pytest.approx(manual, rel=1e-13)
    # without the flip of the batch axis, samples would pair with their mirror images
    unflipped_batch = convolve(a[::-1, ::-1, :], d, mode="valid")[:, :, 0]
    mirrored = sum(correlate_valid(a[:, :, n - 1 - i], d[:, :, i]) for i in range(n))
    np.testing.assert_allclose(unflipped_batch, rot180(mirrored), rtol=1e-13, atol=1e-15)
    # ∂L/∂k = rot180(∂L/∂W) for the toolbox's kernel k = rot180(W)
    np.testing.assert_allclose(numeric_grad(lambda k_: batch_loss(rot180(k_)), rot180(W).copy()), toolbox[:, :, 0] / n,
                               rtol=1e-7, atol=1e-10)
    # convprop: one product of the deltas with the patch matrix
    x = np.moveaxis(a, -1, 0)[..., None]  # (N, H, W, 1)
    _, cols = nhwc.correlate_valid(x, W[None, None])
    got = nhwc.correlate_valid_weight_grad(cols, np.moveaxis(d, -1, 0)[..., None]).reshape(k, k) / n
    np.testing.assert_allclose(got, dW, rtol=1e-13, atol=1e-15)


def test_bias_gradient():
    n = 4
    a, W = rng.random((n, 5, 5)), rng.normal(size=(3, 3))
    d = rng.normal(size=(n, 3, 3))

    def batch_loss(b):
        return sum(np.sum(d[i] * (correlate_valid(a[i], W) + b[0])) for i in range(n)) / n

    db = d.sum() / n  # (B6): Σ d(:) / N
    assert numeric_grad(batch_loss, np.zeros(1))[0] == pytest.approx(db, rel=1e-8)


# ------------------------------------------------------ the whole chain


@pytest.mark.usefixtures("engine")  # the NumPy reference and the compiled kernels
def test_whole_network_matches_the_equations():
    """(F1)–(F3) then (B1)–(B6), written with scipy on the toolbox's layouts, against convprop."""
    net = Network([Input(10, 10), Conv(2, 3), Subsample(2), Conv(2, 3), Subsample(2)], n_outputs=3, seed=5)
    for name, p in net.parameters().items():
        if name.endswith("bias"):
            p[...] = rng.normal(0, 0.5, p.shape)
    n = 2
    x, y = rng.random((n, 10, 10)), rng.random((n, 3))
    net.forward(x)
    net.backward(y)
    k1 = net.layers[1].kernels  # k[i, j] = k{i}{j}
    k3 = net.layers[3].kernels
    b1, b3 = net.layers[1].params["bias"], net.layers[3].params["bias"]
    for s in range(n):  # one sample at a time: per-sample deltas
        a0 = x[s]
        z1 = [convolve2d(a0, k1[0, j], mode="valid") + b1[j] for j in range(2)]  # (F1)
        a1 = [sigm(z) for z in z1]
        a2 = [m.reshape(4, 2, 4, 2).mean(axis=(1, 3)) for m in a1]  # (F2)
        a3 = [sigm(sum(convolve2d(a2[i], k3[i, j], mode="valid") for i in range(2)) + b3[j]) for j in range(2)]
        a4 = [m.reshape(1, 2, 1, 2).mean(axis=(1, 3)) for m in a3]
        f = np.concatenate([m.ravel() for m in a4])  # one value per map here, so any order agrees
        o = sigm(net.output.params["weight"] @ f + net.output.params["bias"])  # (F3)
        np.testing.assert_allclose(o, net.o[s], rtol=1e-14, atol=1e-15)
        od = (o - y[s]) * o * (1 - o)  # (B1)
        np.testing.assert_allclose(od, net.output.d[s], rtol=1e-13, atol=1e-15)
        fvd = net.output.params["weight"].T @ od  # (B2)
        d4 = [fvd[j].reshape(1, 1) for j in range(2)]
        np.testing.assert_allclose(np.stack(d4, -1), net.layers[4].d[s], rtol=1e-13, atol=1e-15)
        d3 = [a3[j] * (1 - a3[j]) * expand(d4[j], 2) / 4 for j in range(2)]  # (B4)
        np.testing.assert_allclose(np.stack(d3, -1), net.layers[3].d[s], rtol=1e-12, atol=1e-15)
        d2 = [sum(convolve2d(d3[j], rot180(k3[i, j]), mode="full") for j in range(2)) for i in range(2)]  # (B5)
        np.testing.assert_allclose(np.stack(d2, -1), net.layers[2].d[s], rtol=1e-12, atol=1e-15)
        d1 = [a1[j] * (1 - a1[j]) * expand(d2[j], 2) / 4 for j in range(2)]  # (B4)
        np.testing.assert_allclose(np.stack(d1, -1), net.layers[1].d[s], rtol=1e-12, atol=1e-18)
    # (B6) on the batch, via flipall, in the toolbox's layout
    a_prev = net.activations[2].transpose(1, 2, 0, 3)  # (H, W, N, C): a{i} is a_prev[..., i]
    d3_all = net.layers[3].d.transpose(1, 2, 0, 3)
    dk = np.array([[convolve(flipall(a_prev[..., i]), d3_all[..., j], mode="valid")[:, :, 0] / n
                    for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(net.layers[3].grads["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3), dk, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.layers[3].grads["bias"], d3_all.sum(axis=(0, 1, 2)) / n, rtol=1e-12, atol=1e-15)
