"""The toolbox's layouts: flipped kernels, column-major feature vector, exact round trips."""

import numpy as np
from scipy.signal import convolve

from convprop import Conv, Input, Network, Subsample

from convprop.engine import layout


def test_kernel_round_trip_is_exact_and_is_a_rot180():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((2, 3, 4, 5))  # k[i, j] = k{i}{j}
    w = layout.kernels_from_dlt(k)
    assert w.shape == (3, 2, 4, 5)
    np.testing.assert_array_equal(w[2, 1], np.rot90(k[1, 2], 2))
    np.testing.assert_array_equal(layout.kernels_to_dlt(w), k)


def test_conv_layer_is_a_true_convolution_with_the_toolbox_kernels():
    net = Network([Input(9, 8), Conv(2, (3, 2))], n_outputs=2, seed=0)
    conv = net.layers[1]
    x = np.random.default_rng(1).random((1, 9, 8))
    net.forward(x)
    k = conv.kernels  # k[i, j] = k{i}{j}, true-convolution kernels
    for j in range(2):
        z = convolve(x[0], k[0, j], mode="valid") + conv.params["bias"][j]
        np.testing.assert_allclose(net.activations[1][0, :, :, j], 1 / (1 + np.exp(-z)), rtol=1e-14)


def test_feature_vector_is_column_major_map_after_map():
    h, w, c = 3, 4, 2
    maps = np.arange(h * w * c, dtype=float).reshape(1, h, w, c)  # NHWC
    fv_dlt = layout.fv_to_dlt(maps.reshape(1, -1), (h, w, c))[:, 0]
    expected = np.concatenate([maps[0, :, :, j].reshape(-1, order="F") for j in range(c)])
    np.testing.assert_array_equal(fv_dlt, expected)
    perm = layout.fv_permutation(h, w, c)
    np.testing.assert_array_equal(fv_dlt[perm], maps.reshape(-1))


def test_ffw_round_trip_is_exact():
    rng = np.random.default_rng(2)
    shape = (4, 3, 5)
    ffw = rng.standard_normal((10, 60))
    np.testing.assert_array_equal(layout.ffw_to_dlt(layout.ffw_from_dlt(ffw, shape), shape), ffw)
    # Same product either way: ffW·fv in the toolbox's order equals convprop's.
    maps = rng.standard_normal((1, *shape))
    fv_ours = maps.reshape(1, -1)
    fv_dlt = layout.fv_to_dlt(fv_ours, shape)
    np.testing.assert_allclose(layout.ffw_from_dlt(ffw, shape) @ fv_ours[0], ffw @ fv_dlt[:, 0], rtol=1e-13)


def test_image_and_map_layouts():
    x = np.arange(2 * 3 * 4).reshape(3, 4, 2)  # H×W×N
    imgs = layout.images_from_dlt(x)
    assert imgs.shape == (2, 3, 4)
    np.testing.assert_array_equal(imgs[1], x[:, :, 1])
    np.testing.assert_array_equal(layout.images_to_dlt(imgs), x)
    maps = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    cells = layout.maps_to_dlt(maps)
    assert len(cells) == 5 and cells[4].shape == (3, 4, 2)
    np.testing.assert_array_equal(cells[4][:, :, 1], maps[1, :, :, 4])


def test_network_layers_are_copied():
    layers = [Input(8, 8), Conv(2, 3), Subsample(2)]
    a = Network(layers, n_outputs=2, seed=0)
    b = Network(layers, n_outputs=2, seed=1)
    assert a.layers[1] is not b.layers[1]
    assert not np.array_equal(a.layers[1].params["weight"], b.layers[1].params["weight"])
