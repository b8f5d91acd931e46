"""Conv beyond the toolbox: activations, padding, stride, colour input, conv after conv, correlation mode.

Each case is checked against PyTorch autograd (float64, 1e-10 relative to each
tensor's largest entry: outputs, loss, every gradient) and, on a subset,
against central differences.
"""

import itertools

import numpy as np
import pytest

from convprop import ConvpropError, Network

from convprop.engine import activations
from convprop.engine.layers import Conv, Dense, Input
from layers_oracle import batch, check_against_torch, check_central_differences

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

ACTS = ["sigmoid", "tanh", "relu", activations.LeakyReLU(0.1), "identity"]
INPUTS = [(7, 9, 1), (8, 6, 3)]
KERNELS = [(3, 2), (2, 3), 3]
PADDINGS = ["valid", "same", 1]
STRIDES = [1, 2]


def conv_net(image, kernel, act, padding, stride, mode="convolution", output="sigmoid", seed=0):
    """A conv (2×1 kernel, tanh) before the layer under test, so that its input delta is checked too."""
    return Network(
        [Input(*image), Conv(2, (2, 1), "tanh"), Conv(3, kernel, act, padding=padding, stride=stride, mode=mode)],
        n_outputs=3, output=output, seed=seed,
    )


GRID = list(itertools.product(INPUTS, KERNELS, PADDINGS, STRIDES))


@pytest.mark.parametrize("image,kernel,padding,stride", GRID)
@pytest.mark.parametrize("act", ACTS, ids=str)
def test_conv_matches_torch(image, kernel, padding, stride, act):
    net = conv_net(image, kernel, act, padding, stride, seed=stride)
    x, y = batch(net, seed=1, labels=False)
    check_against_torch(net, x, y)


FD_CASES = [
    ((7, 9, 1), (3, 2), "same", 1, "relu"),
    ((7, 9, 1), (2, 3), 1, 2, "tanh"),
    ((8, 6, 3), (2, 3), "valid", 2, activations.LeakyReLU(0.1)),
    ((8, 6, 3), 3, "same", 2, "sigmoid"),
    ((7, 9, 1), (3, 2), "valid", 1, "identity"),
    ((8, 6, 3), (3, 2), 1, 1, "relu"),
]


@pytest.mark.parametrize("image,kernel,padding,stride,act", FD_CASES, ids=str)
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_conv_central_differences(image, kernel, padding, stride, act, output):
    net = conv_net(image, kernel, act, padding, stride, output=output, seed=2)
    x, y = batch(net, seed=3)
    check_central_differences(net, x, y)


@pytest.mark.parametrize("image,kernel,padding,stride", [((7, 9, 1), (3, 2), "same", 2), ((8, 6, 3), (2, 3), 1, 1)])
def test_correlation_mode_is_convolution_with_flipped_kernels(image, kernel, padding, stride):
    conv = conv_net(image, kernel, "tanh", padding, stride, mode="convolution", seed=4)
    corr = conv_net(image, kernel, "tanh", padding, stride, mode="correlation", seed=5)
    for name, layer in conv.named_layers():
        dict(corr.named_layers())[name].params.update({k: v.copy() for k, v in layer.params.items()})
    # same parameters → kernels flipped: what "convolution" reads as K, "correlation" reads as rot180(K)
    k_conv, k_corr = conv.layers[2].kernels, corr.layers[2].kernels
    np.testing.assert_array_equal(k_corr, k_conv[:, :, ::-1, ::-1])
    # and the other way round: kernels K in both modes give outputs that differ unless rot180(K) = K
    x, y = batch(conv, seed=6)
    np.testing.assert_array_equal(conv.forward(x), corr.forward(x))
    corr.layers[2].kernels = k_conv
    assert np.abs(corr.forward(x) - conv.forward(x)).max() > 1e-3
    corr.layers[2].kernels = k_conv[:, :, ::-1, ::-1]
    np.testing.assert_array_equal(conv.forward(x), corr.forward(x))


def test_modes_against_scipy():
    """The two modes are what their names say: true convolution and cross-correlation of ``kernels``."""
    from scipy.signal import convolve2d, correlate2d

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 7))
    k = rng.normal(size=(2, 3))
    for mode, reference in [("convolution", convolve2d), ("correlation", correlate2d)]:
        net = Network([Input(6, 7), Conv(1, (2, 3), "identity", mode=mode)], n_outputs=2, seed=0)
        net.layers[1].kernels = k[None, None]
        net.forward(x)
        a = net.activations[1][..., 0]
        for n in range(2):
            np.testing.assert_allclose(a[n], reference(x[n], k, "valid"), rtol=1e-13, atol=1e-13)


def test_initialisation_draws_the_same_kernels_in_both_modes():
    a = Network([Input(6, 6), Conv(2, 3)], 2, seed=7).layers[1]
    b = Network([Input(6, 6), Conv(2, 3, mode="correlation")], 2, seed=7).layers[1]
    np.testing.assert_array_equal(a.kernels, b.kernels)
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"][:, :, ::-1, ::-1])


@pytest.mark.parametrize("h,w,kernel,padding,stride,expected", [
    (7, 9, (3, 2), "same", 1, (7, 9)),
    (7, 9, (4, 4), "same", 1, (7, 9)),
    (7, 9, (3, 2), "same", 2, (4, 5)),
    (7, 9, 3, 1, 2, (4, 5)),
    (7, 9, 3, "valid", 2, (3, 4)),
    (28, 28, 5, "same", 1, (28, 28)),
    (32, 32, 3, 0, 3, (10, 10)),
])
def test_output_sizes(h, w, kernel, padding, stride, expected):
    net = Network([Input(h, w, 3), Conv(2, kernel, padding=padding, stride=stride)], 2, seed=0)
    assert net.map_shape == (*expected, 2)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_with_an_even_kernel_puts_the_extra_zero_bottom_right():
    assert Conv(1, (4, 2), padding="same").pads == (1, 2, 0, 1)  # (top, bottom, left, right), as PyTorch
    net = Network([Input(5, 6), Conv(1, (4, 2), "identity", padding="same", mode="correlation")], 2, seed=0)
    x, _ = batch(net, n=1)
    net.forward(x)
    got = net.activations[1][0, :, :, 0]
    w = torch.tensor(net.layers[1].params["weight"])
    ref = torch.nn.functional.conv2d(torch.tensor(x[:, None]), w, padding="same")[0, 0].numpy()
    np.testing.assert_allclose(got, ref + net.layers[1].params["bias"][0], rtol=1e-12, atol=1e-12)


def test_colour_lenet_like_network_matches_torch():
    """32×32×3 input, conv after conv, strided and padded convs, dense layers, softmax."""
    net = Network(
        [Input(32, 32, 3), Conv(4, 3, "relu", padding="same"), Conv(4, 3, "relu", stride=2), Conv(6, (3, 2), "tanh"),
         Dense(5, "relu")],
        n_outputs=4, output="softmax", seed=1,
    )
    x, y = batch(net, n=2, seed=2)
    check_against_torch(net, x, y)


def test_defaults_are_the_toolbox_layer():
    layer = Conv(6, 5)
    assert layer.is_toolbox and layer.spec() == "6c5" and repr(layer) == "Conv(6, 5)"
    assert not Conv(6, 5, "relu").is_toolbox
    assert not Conv(6, 5, padding="same").is_toolbox
    assert not Conv(6, 5, stride=2).is_toolbox
    assert not Conv(6, 5, mode="correlation").is_toolbox
    assert Conv(6, (5, 3), "relu", padding="same", stride=2, mode="correlation").spec() == "6cc5x3rps/2"
    assert Conv(2, 3, activations.LeakyReLU(0.2), padding=1).spec() == "2c3l0.2p1"


@pytest.mark.parametrize("kwargs,message", [
    (dict(padding="full"), "padding must be 'valid', 'same' or an integer"),
    (dict(padding=-1), "padding must be"),
    (dict(stride=0), "stride must be a positive integer"),
    (dict(mode="conv"), "mode must be 'convolution' or 'correlation'"),
    (dict(activation="softplus"), "activation must be one of"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConvpropError, match=message):
        Conv(2, 3, **kwargs)


def test_kernel_larger_than_padded_input_names_the_layer():
    with pytest.raises(ConvpropError, match=r"Layer 2 \(2c7p1\): kernel 7x7 is larger than its padded input maps 6x6"):
        Network([Input(6, 6), Conv(2, 3), Conv(2, 7, padding=1)], 2)
    Network([Input(6, 6), Conv(2, 3), Conv(2, 7, padding="same")], 2)  # 'same' always fits


def test_conv_after_dense_is_an_error_naming_the_layer():
    with pytest.raises(ConvpropError, match=r"Layer 2 \(2c3\) needs maps as input.*vector of 4"):
        Network([Input(6, 6), Dense(4), Conv(2, 3)], 2)
