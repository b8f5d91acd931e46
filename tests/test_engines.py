"""The two engines: selection, thread count, and the compiled kernels against the NumPy reference."""

import numpy as np
import pytest

import convprop
from conftest import random_batch
from convprop import Conv, ConvpropError, Dense, Input, MaxPool, Network, Subsample
from convprop.engine import backend, ops, parallel, slices
import nhwc_reference as nhwc

numba_only = pytest.mark.skipif(not backend.available(), reason="Numba is not installed")


@pytest.fixture(autouse=True)
def _restore():
    yield
    convprop.set_engine(None)
    convprop.set_num_threads(None)


def _lenet_like(dtype):
    return Network([Input(20, 20), Conv(4, 5, "relu", padding="same"), MaxPool(2), Conv(6, 3, "leaky_relu", stride=2),
                    Subsample(2), Dense(7, "tanh")], n_outputs=3, output="softmax", dtype=dtype, seed=4)


def _toolbox(dtype):  # its 12c5 on 12×12 maps takes the weight gradient's shifted layout
    return Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, dtype=dtype,
                   seed=4)


def _run(net, x, y):
    o = net.forward(x).copy()
    net.backward(y)
    return o, {k: g.copy() for k, g in net.gradients().items()}


def test_engine_choice(monkeypatch):
    monkeypatch.setenv("CONVPROP_ENGINE", "numpy")
    assert backend.engine() == "numpy" and backend.compiled() is None
    convprop.set_engine("auto")  # overrides the environment
    assert backend.engine() == ("numba" if backend.available() else "numpy")
    convprop.set_engine(None)
    assert backend.engine() == "numpy"
    monkeypatch.setenv("CONVPROP_ENGINE", "fortran")
    with pytest.raises(ConvpropError, match="CONVPROP_ENGINE must be one of numba, numpy, auto"):
        backend.engine()
    with pytest.raises(ConvpropError, match="the engine must be one of"):
        convprop.set_engine("cuda")


def test_thread_count(monkeypatch):
    monkeypatch.delenv("CONVPROP_THREADS", raising=False)
    assert convprop.get_num_threads() == parallel.cores() >= 1  # every core by default
    monkeypatch.setenv("CONVPROP_THREADS", "3")
    assert convprop.get_num_threads() == 3
    convprop.set_num_threads(2)  # overrides the environment
    assert convprop.get_num_threads() == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConvpropError, match="thread count must be a positive integer"):
            convprop.set_num_threads(bad)


def test_the_environment_is_read_at_every_call(monkeypatch):
    """getenv (one dictionary lookup) says what os.environ.get says after every kind of change."""
    import os

    from convprop.engine.environment import getenv

    name = "CONVPROP_TEST_SETTING"
    monkeypatch.delenv(name, raising=False)
    assert getenv(name) is None
    for value in ("3", "3", "", "ünïcödé", "2"):
        monkeypatch.setenv(name, value)
        assert getenv(name) == os.environ.get(name) == value
    os.environ[name] = "x"
    assert getenv(name) == "x"
    del os.environ[name]
    assert getenv(name) is None
    os.environ.update({name: "4"})
    assert getenv(name) == "4"
    monkeypatch.setattr(os, "environ", {name: "a replaced mapping"})
    assert getenv(name) == "a replaced mapping"


def test_the_core_count_is_read_again_after_a_second(monkeypatch):
    """cores() keeps the affinity's size for a second (a step asks often), then reads it again."""
    import os
    import time

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity here")
    now, cpus = [1000.0], [{0, 1, 2}]
    monkeypatch.setattr(parallel, "_cores", (0, 0.0, 1))
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus[0])
    monkeypatch.delenv("CONVPROP_THREADS", raising=False)
    assert parallel.cores() == convprop.get_num_threads() == 3
    cpus[0] = {0}
    now[0] += 0.5
    assert parallel.cores() == 3
    now[0] += 0.6
    assert parallel.cores() == convprop.get_num_threads() == 1
    monkeypatch.setenv("CONVPROP_THREADS", "2")  # set: the affinity is not asked
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: pytest.fail("asked"))
    now[0] += 5
    assert convprop.get_num_threads() == 2


@numba_only
@pytest.mark.parametrize("make", [_lenet_like, _toolbox])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_results_do_not_depend_on_the_thread_count(dtype, make, monkeypatch):
    convprop.set_engine("numba")
    # a 9-image batch is too small to cut into slices: every kernel's rows are shared out,
    # however little work they hold
    monkeypatch.setattr(parallel, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(parallel, "MIN_MACS_PER_THREAD", 1)
    results = []
    for threads in (1, 2, 3, 1):
        convprop.set_num_threads(threads)
        net = make(dtype)
        x, y = random_batch(net, 9, seed=1, labels=True)
        results.append(_run(net, x, y))
    for o, g in results[1:]:  # bit-identical, not just close
        np.testing.assert_array_equal(o, results[0][0])
        for k in g:
            np.testing.assert_array_equal(g[k], results[0][1][k], err_msg=k)


@numba_only
@pytest.mark.parametrize("make", [_lenet_like, _toolbox])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_compiled_engine_agrees_with_numpy(dtype, rtol, make):
    out = {}
    for eng in ("numpy", "numba"):
        convprop.set_engine(eng)
        net = make(dtype)
        x, y = random_batch(net, 6, seed=2, labels=True)
        out[eng] = _run(net, x, y)
    (o1, g1), (o2, g2) = out["numpy"], out["numba"]
    np.testing.assert_allclose(o2, o1, rtol=rtol, atol=0)
    for k in g1:
        scale = np.abs(g1[k]).max()
        np.testing.assert_allclose(g2[k], g1[k], rtol=0, atol=rtol * scale, err_msg=k)


@numba_only
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 4e-16), (np.float32, 2.5e-7)])
def test_compiled_sigmoid(dtype, rtol):
    from convprop.engine.kernels import activation

    z = np.concatenate([np.linspace(-40, 40, 20001), [-1e4, -800, -100, 0, 100, 800, 1e4]]).astype(dtype)
    got = z.copy()
    activation.sigmoid_(got)
    exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    # beyond the clamp of e^−z (|z| > 708 / 87) the result is a few times the smallest normal number, not 0
    assert np.all(np.abs(got - exact) <= rtol * exact + 2 * np.finfo(dtype).tiny)
    special = np.array([np.nan, np.inf, -np.inf], dtype=dtype)
    activation.sigmoid_(special)
    assert np.isnan(special[0]) and special[1] == 1 and 0 <= special[2] <= 2 * np.finfo(dtype).tiny


@numba_only
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 5e-7)])
def test_compiled_tanh(dtype, rtol):
    """The compiled tanh (a Taylor series below |x| = 1/4, the sigmoid's exp above) against the long
    double tanh, across the switch, out to where it is ±1, and at ±0, ±inf and NaN."""
    from convprop.engine.kernels import activation

    rng = np.random.default_rng(0)
    z = np.concatenate([np.linspace(-1, 1, 40001), np.linspace(-40, 40, 20001), rng.standard_normal(20000) * 1e-3,
                        [0.25, -0.25, np.nextafter(0.25, 0), 1e-30, 1e4, -1e4]]).astype(dtype)
    got = z.copy()
    activation.apply_(got, activation.TANH, 0.0)
    exact = np.tanh(z.astype(np.longdouble))
    assert np.all(np.abs(got - exact) <= rtol * np.abs(exact))
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    activation.apply_(special, activation.TANH, 0.0)
    assert np.isnan(special[0]) and special[1] == 1 and special[2] == -1
    assert special[3] == 0 and not np.signbit(special[3]) and np.signbit(special[4])  # tanh(−0) = −0


@numba_only
def test_compiled_max_pool_ties_and_nan_like_numpy():
    from convprop.engine.kernels import pool

    a = np.zeros((2, 4, 6, 3))
    a[0, 1, 1, 0] = a[0, 0, 1, 0] = 5  # a tie: the first in row-major order wins
    a[1, 2:, 2:, :] = -1
    out, arg = np.empty((2, 2, 3, 3)), np.empty((2, 2, 3, 3), np.uint8)
    pool.max_pool(a, 2, out, arg, 0, 4)
    ref_out, ref_arg = ops.max_pool(a, 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)


@numba_only
def test_strided_convolution_computes_only_the_kept_outputs():
    """The strided kernel writes every kept output itself (no stride-1 result is sampled)."""
    from convprop.engine.kernels import conv

    rng = np.random.default_rng(0)
    x, w, b = rng.random((2, 11, 11, 3)), rng.random((3, 2, 3, 3)), rng.random(3)
    z = np.full((3, 5, 5, 3), np.nan)
    conv.forward_strided(x, w, b, 2, 4, 0.0, z, 0, 15)
    ref, _ = nhwc.correlate_valid(np.ascontiguousarray(ops.to_nhwc(x)), w)
    np.testing.assert_allclose(ops.to_nhwc(z), ref[:, ::2, ::2] + b, rtol=1e-14)


@numba_only
def test_a_small_batch_keeps_its_convolutions_on_one_thread(monkeypatch):
    """Sharing a 10-image batch's convolution rows over threads cost more than it gained (a
    training step 1.4× slower on 2 threads): below MIN_MACS_PER_THREAD a kernel call stays put."""
    convprop.set_engine("numba")
    convprop.set_num_threads(2)
    shared = []
    real = parallel._share
    monkeypatch.setattr(parallel, "_share", lambda call, parts, k: (shared.append(parts), real(call, parts, k)))
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=0)
    x, y = random_batch(net, 10, seed=1, labels=True)  # 1.0 and 1.2 million multiply-adds
    net.forward(x)
    net.backward(y)
    assert shared == []
    monkeypatch.setattr(parallel, "MIN_MACS_PER_THREAD", 100_000)
    net.forward(x)
    net.backward(y)
    assert len(shared) >= 4  # both convolutions' forward, weight and input gradients


@numba_only
@pytest.mark.parametrize("c_in, c_out, h, w, kh, kw", [(1, 6, 28, 28, 5, 5), (6, 12, 12, 12, 5, 5), (3, 5, 9, 11, 3, 5),
                                                       (2, 3, 7, 6, 2, 3), (3, 2, 22, 21, 3, 3), (2, 3, 6, 7, 1, 1)])
@pytest.mark.parametrize("n", [1, 3, 57])
def test_one_call_backward_on_flat_and_row_kernels(c_in, c_out, h, w, kh, kw, n):
    """kernels.conv.backward (a layer's backward in one call) against the NHWC reference, on short
    rows (the flat kernels) and long ones (row by row), odd map counts (the unpaired last map)."""
    from convprop.engine.kernels import conv

    rng = np.random.default_rng(n)
    x, w_ = rng.standard_normal((c_in, h, w, n)), rng.standard_normal((c_out, c_in, kh, kw))
    ho, wo = h - kh + 1, w - kw + 1
    a, delta = rng.random((c_out, ho, wo, n)), rng.standard_normal((c_out, ho, wo, n))
    d, dw, db, dx = conv.backward(delta, a, x, w_, 0, 0.0, 1, True)  # code 0: sigmoid
    np.testing.assert_allclose(d, delta * a * (1 - a), rtol=1e-15)
    dz = np.ascontiguousarray(ops.to_nhwc(d))
    _, cols = nhwc.correlate_valid(np.ascontiguousarray(ops.to_nhwc(x)), w_)
    np.testing.assert_allclose(dw, nhwc.correlate_valid_weight_grad(cols, dz).reshape(w_.shape) / n, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(db, dz.sum(axis=(0, 1, 2)) / n, rtol=1e-12)
    np.testing.assert_allclose(ops.to_nhwc(dx), nhwc.correlate_valid_input_grad(dz, w_), rtol=1e-12, atol=1e-13)
    layout = conv.weight_layout(1, kw, w, wo, n, 8)  # the weight gradient's
    if 10 * wo >= 7 * w:  # (1, 6, 28, 28 …), (3, 2, 22, 21 …), 1×1: row by row on 57 images, padded flat runs else
        assert layout == (conv.ROWS if n == 57 else conv.PADDED)
    else:  # at most 70 % of the padded runs' products would count: the toolbox's 12c5, (3, 5 …), (2, 3 …)
        assert layout == conv.SHIFTED
    # the input gradient: flat for kernels of five taps a row and more, else flat up to 128 KiB of accumulators
    assert conv.flat_input(1, kw, h, w, n, 8) == (kw >= 5 or (h, n) != (22, 57))


@numba_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c_in, c_out, h, n", [(1, 6, 28, 1), (6, 12, 12, 25), (2, 5, 11, 3), (3, 4, 5, 7)])
def test_two_row_5x5_forward_gives_the_one_row_kernels_bits(dtype, c_in, c_out, h, n):
    """kernels.conv.forward takes 5×5 kernels two output rows at a time: the bits of one row at a time
    (each work item alone), also when a thread's share of rows starts or ends between two rows, with
    an odd map count (the unpaired last map) and an odd row count (the last row alone)."""
    from convprop.engine.kernels import conv

    rng = np.random.default_rng(h)
    x = rng.standard_normal((c_in, h, h + 1, n)).astype(dtype)
    w, b = rng.standard_normal((c_out, c_in, 5, 5)).astype(dtype), rng.standard_normal(c_out).astype(dtype)
    ho = h - 4
    items = (c_out + 1) // 2 * ho
    whole, rows, cut = (np.empty((c_out, ho, h - 3, n), dtype=dtype) for _ in range(3))
    conv.forward(x, w, b, 1, 0, 0.0, whole, 0, items)
    for t in range(items):  # one row at a time: the one-row kernel
        conv.forward(x, w, b, 1, 0, 0.0, rows, t, t + 1)
    cuts = sorted({0, min(3, items), items // 2, items})
    for lo, hi in zip(cuts[:-1], cuts[1:]):  # shares that start at odd rows
        conv.forward(x, w, b, 1, 0, 0.0, cut, lo, hi)
    np.testing.assert_array_equal(whole, rows)
    np.testing.assert_array_equal(cut, rows)
    z = nhwc.correlate_valid(np.ascontiguousarray(ops.to_nhwc(x)), w)[0] + b
    # float32: sums of up to 150 products near 1 carry ~1e-5 of round-off, σ' ≤ 1/4 of it
    tol = dict(rtol=1e-5, atol=5e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ops.to_nhwc(rows), 1 / (1 + np.exp(-z)), **tol)


@numba_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c_in, c_out, h, w, n", [(6, 12, 12, 12, 25), (4, 5, 13, 14, 3), (2, 3, 10, 10, 1),
                                                  (8, 2, 18, 6, 2)])
def test_winograd_forward_is_the_direct_sums_however_shared(dtype, c_in, c_out, h, w, n):
    """kernels.winograd (F(2, 5)), where kernels.conv.forward takes it: the direct sums to round-off, and the
    same bits whatever work items a thread gets (four-row blocks cut anywhere, each item alone), with an
    odd map count (the pair's last map alone) and row counts that are not multiples of four."""
    from convprop.engine.kernels import conv, winograd

    rng = np.random.default_rng(h)
    x = rng.standard_normal((c_in, h, w, n)).astype(dtype)
    k, b = rng.standard_normal((c_out, c_in, 5, 5)).astype(dtype), rng.standard_normal(c_out).astype(dtype)
    ho, wo = h - 4, w - 4
    assert winograd.fits(k, wo) == (c_in >= (2 if dtype == "float64" else 4))
    assert not winograd.fits(k, wo + 1) and not winograd.fits(k[:, :1], wo) and not winograd.fits(k[..., 1:], wo)
    if not winograd.fits(k, wo):
        return
    items = (c_out + 1) // 2 * ho
    whole, single, cut, direct = (np.full((c_out, ho, wo, n), np.nan, dtype=dtype) for _ in range(4))
    winograd.forward(x, k, b, 4, 0.0, whole, 0, items)  # code 4: the identity, the raw sums
    for t in range(items):
        winograd.forward(x, k, b, 4, 0.0, single, t, t + 1)
    np.testing.assert_array_equal(single, whole)
    pairs = (c_out + 1) // 2
    for first in range(1, min(items, 13)):  # two threads' shares, cut at every row of a block and map pair
        cuts = (0, first, items) if first % 2 else (0, first // 2, first, items)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            winograd.forward(x, k, b, 4, 0.0, cut, lo, hi)
        np.testing.assert_array_equal(cut, whole)
        share, mine = np.full_like(whole, np.nan), np.zeros((c_out, ho), dtype=bool)
        winograd.forward(x, k, b, 4, 0.0, share, 0, first)
        for t in range(first):  # item t: row t // pairs of the maps 2q, 2q + 1 (q = t % pairs)
            mine[2 * (t % pairs) : 2 * (t % pairs) + 2, t // pairs] = True
        np.testing.assert_array_equal(~np.isnan(share).all(axis=(2, 3)), mine)  # its items' rows, no others
    conv.forward(x, k, b, 1, 4, 0.0, direct, 0, items)
    np.testing.assert_array_equal(direct, whole)  # conv.forward takes it
    exact = nhwc.correlate_valid(np.ascontiguousarray(ops.to_nhwc(x.astype(np.float64))), k.astype(np.float64))[0] + b
    scale = np.abs(exact).max()  # sums of up to 200 products of normal numbers, some near zero
    np.testing.assert_allclose(ops.to_nhwc(whole), exact, rtol=0, atol=(2e-15 if dtype == "float64" else 1e-6) * scale)
    winograd.forward(x, k, b, 0, 0.0, whole, 0, items)  # code 0: the sigmoid, applied to each row as it is done
    np.testing.assert_allclose(ops.to_nhwc(whole), 1 / (1 + np.exp(-exact)), rtol=0,
                               atol=5e-16 * scale if dtype == "float64" else 3e-7 * scale)


@numba_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c_in, c_out, h, w, n", [(6, 12, 12, 12, 25), (4, 5, 13, 14, 3), (2, 3, 10, 10, 1)])
def test_winograd_weight_gradient_is_the_direct_sums_however_shared(dtype, c_in, c_out, h, w, n):
    """kernels.winograd's weight gradient (F(5, 2)), where kernels.conv.weight_grad_into takes it: the direct
    sums to round-off, the same bits whatever work items a thread gets, an odd map count."""
    from convprop.engine.kernels import conv, winograd

    rng = np.random.default_rng(h)
    x = rng.standard_normal((c_in, h, w, n)).astype(dtype)
    d = rng.standard_normal((c_out, h - 4, w - 4, n)).astype(dtype)
    whole, cut, into = (np.full((c_out, c_in, 5, 5), np.nan, dtype=dtype) for _ in range(3))
    if not winograd.fits(whole, w - 4):
        assert dtype == "float32" and c_in < 4
        return
    scale = whole.dtype.type(1 / n)
    vx, dt = winograd.weight_operands(x, d)
    items = (c_out + 1) // 2 * c_in
    winograd.weight_grad(vx, dt, scale, whole, 0, items)
    for first in range(1, items):
        winograd.weight_grad(vx, dt, scale, cut, 0, first)
        winograd.weight_grad(vx, dt, scale, cut, first, items)
        np.testing.assert_array_equal(cut, whole)
    conv.weight_grad_into(x, d, 1, scale, into)
    np.testing.assert_array_equal(into, whole)  # weight_grad_into takes it
    x64, d64 = x.astype(np.float64), d.astype(np.float64)
    _, cols = nhwc.correlate_valid(np.ascontiguousarray(ops.to_nhwc(x64)), np.zeros((c_out, c_in, 5, 5)))
    exact = nhwc.correlate_valid_weight_grad(cols, np.ascontiguousarray(ops.to_nhwc(d64))).reshape(whole.shape) / n
    # sums of (h − 4)·(w − 4)·n products of normal numbers, some near zero: against the largest
    np.testing.assert_allclose(whole, exact, rtol=0, atol=(5e-15 if dtype == "float64" else 3e-6) * np.abs(exact).max())


@numba_only
@pytest.mark.parametrize("c_in, c_out, h, w, n", [(6, 12, 12, 12, 25), (5, 4, 13, 14, 3), (2, 3, 10, 10, 1),
                                                  (3, 2, 15, 6, 2)])
def test_winograd_input_gradient_is_the_full_correlation_however_shared(c_in, c_out, h, w, n):
    """kernels.winograd's input gradient (the adjoint of F(2, 5)), where kernels.conv.backward_into takes it
    (float64): the 'full' correlation to round-off, the same bits whatever work items a thread gets, an odd
    map count, rows of d taken four at a time and one at a time (h − 4 = 9, 11)."""
    from convprop.engine.kernels import conv, winograd

    rng = np.random.default_rng(h)
    x, k = rng.standard_normal((c_in, h, w, n)), rng.standard_normal((c_out, c_in, 5, 5))
    d = rng.standard_normal((c_out, h - 4, w - 4, n))
    assert winograd.fits_input(k, w - 4) and not winograd.fits_input(k.astype(np.float32), w - 4)
    assert not winograd.fits_input(k, w - 3) and not winograd.fits_input(k[:1], w - 4)
    whole, cut = np.full_like(x, np.nan), np.full_like(x, np.nan)
    ad, items = winograd.input_operands(d), (c_in + 1) // 2
    winograd.input_grad(ad, k, whole, 0, items)
    for first in range(1, items):
        winograd.input_grad(ad, k, cut, 0, first)
        winograd.input_grad(ad, k, cut, first, items)
        np.testing.assert_array_equal(cut, whole)
    _, _, _, dx = conv.backward(d, np.full_like(d, 0.5), x, k, 4, 0.0, 1, True)  # code 4: identity, d = δ
    np.testing.assert_array_equal(dx, whole)  # backward_into takes it
    exact = nhwc.correlate_valid_input_grad(np.ascontiguousarray(ops.to_nhwc(d)), k)
    np.testing.assert_allclose(ops.to_nhwc(whole), exact, rtol=0, atol=4e-15 * np.abs(exact).max())


@numba_only
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-13, 1e-16), ("float32", 2e-5, 5e-7)])
def test_compiled_output_layer_and_loss_match_numpy(output, dtype, rtol, atol):
    """The output layer's kernels (forward, loss, backward in one call each) against the NumPy layer,
    with logits far outside exp's range (softmax: shifted by its maximum; sigmoid: 0 and 1)."""
    from convprop.engine.layers import SigmoidOutput, SoftmaxOutput

    rng = np.random.default_rng(5)
    layers = {}
    for eng in ("numpy", "numba"):
        convprop.set_engine(eng)
        layer = (SoftmaxOutput if output == "softmax" else SigmoidOutput)(4)
        layer.build((30,), np.dtype(dtype), "output")
        layer.params["weight"][...] = rng.standard_normal((4, 30)) if eng == "numpy" else layers["numpy"].params["weight"]
        layer.params["bias"][...] = [0, 1, -2, 3]
        layers[eng] = layer
    fv = (rng.standard_normal((7, 30)) * np.array([1] * 6 + [400])[:, None]).astype(dtype)  # the last row: huge z
    y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 7)]
    out = {}
    for eng, layer in layers.items():
        convprop.set_engine(eng)
        o = layer.forward(fv)
        loss, e = layer.loss(o, y)
        fvd = layer.backward(e)
        out[eng] = [np.array(o), np.array(e), np.array(fvd), layer.grads["weight"], layer.grads["bias"], loss]
    for got, want in zip(out["numba"][:5], out["numpy"][:5]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)  # float32: NumPy's σ is ½·tanh(z/2) + ½
    assert out["numba"][5] == pytest.approx(out["numpy"][5], rel=rtol)
    assert np.isfinite(out["numba"][5])


@numba_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_call_updates_round_as_numpy(dtype):
    """kernels.arrays: SGD, the slices' weighted join, the division of the MPI hook's buffer and the
    finiteness check over all parameters at once give NumPy's numbers bit for bit (no fused multiply-adds)."""
    from convprop.engine.kernels import arrays

    rng = np.random.default_rng(3)
    shapes = [(6, 1, 5, 5), (6,), (10, 192), (10,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) * 1e-3 for s in shapes]
    want = [p.copy() for p in params]
    for p, g in zip(want, grads):
        p -= 0.37 * g
    arrays.sgd(tuple(p.reshape(-1) for p in params), tuple(g.reshape(-1) for g in grads), 0.37)
    for got, ref in zip(params, want):
        np.testing.assert_array_equal(got, ref)
    parts = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    weights = [17 / 50, 17 / 50, 16 / 50]
    outs = [np.empty(s, dtype=dtype) for s in shapes]
    arrays.weighted_join(tuple(tuple(a.reshape(-1) for a in part) for part in parts), np.array(weights),
                         tuple(o.reshape(-1) for o in outs))
    for j, out in enumerate(outs):
        np.testing.assert_array_equal(out, slices.weighted_sum([part[j] for part in parts], weights))
    for divisor in (2, 3, 7):
        flat, want = params[2].reshape(-1).copy(), params[2].reshape(-1) / divisor
        arrays.divide(flat, divisor)
        np.testing.assert_array_equal(flat, want)
    assert arrays.all_finite(tuple(p.reshape(-1) for p in params))
    big = np.finfo(dtype).max
    assert arrays.all_finite((np.array([big, -big, big], dtype=dtype), np.zeros(0, dtype=dtype)))
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, 1, 7, 8, 37, params[2].size - 1):  # first, inside a vector, across, last
            flat = params[2].reshape(-1).copy()
            flat[at] = bad
            assert not arrays.all_finite((params[0].reshape(-1), flat)), (bad, at)
        params[2][3, 7] = bad
        assert not arrays.all_finite(tuple(p.reshape(-1) for p in params))
        net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, dtype=dtype)
        assert net.all_finite()
        net.output.params["weight"][3, 7] = bad
        assert not net.all_finite()
