"""Hidden fully connected layers, every activation, softmax + cross-entropy: PyTorch and central differences."""

import numpy as np
import pytest

from convprop import ConvpropError, Network

from convprop.engine import activations

from convprop.engine import losses
from convprop.engine.layers import Conv, Dense, Input, MaxPool
from layers_oracle import batch, check_against_torch, check_central_differences

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", activations.LeakyReLU(0.3), "identity"]
# dense after conv (flatten), dense after dense, dense on the pixels, dense after max pool
STACKS = {
    "conv-dense-dense": lambda act: [Input(5, 7, 2), Conv(2, (2, 3), "tanh"), Dense(4, act), Dense(3, act)],
    "pixels-dense": lambda act: [Input(4, 3), Dense(5, act)],
    "pool-dense": lambda act: [Input(6, 5), Conv(3, (3, 2), act), MaxPool(2), Dense(4, act)],
}


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("act", ACTS, ids=str)
def test_dense_matches_torch(act, stack, output):
    net = Network(STACKS[stack](act), n_outputs=3, output=output, seed=1)
    x, y = batch(net, n=4, seed=2, labels=output == "softmax")
    check_against_torch(net, x, y)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("act", ACTS, ids=str)
def test_dense_central_differences(act, output):
    net = Network(STACKS["conv-dense-dense"](act), n_outputs=3, output=output, seed=3)
    x, y = batch(net, n=3, seed=4)
    check_central_differences(net, x, y)


def test_softmax_outputs_loss_and_delta():
    net = Network([Input(4, 4), Dense(3, "relu")], n_outputs=4, output="softmax", seed=0)
    x, y = batch(net, n=5, seed=1)
    o = net.forward(x)
    np.testing.assert_allclose(o.sum(axis=1), 1, rtol=1e-15)
    loss = net.backward(y)
    assert loss == pytest.approx(-np.sum(y * np.log(o)) / 5, rel=1e-14)
    np.testing.assert_allclose(net.e, o - y, rtol=0, atol=0)  # the combined delta
    assert net.loss(x, y) == pytest.approx(loss, rel=1e-15)
    assert net.spec == "4x4-3fr-4sm"
    assert "output='softmax'" in repr(net)
    assert net.predict(x).shape == (5,)


def test_softmax_survives_huge_logits():
    """log o comes from the shifted logits, so an underflowed o gives a finite loss."""
    net = Network([Input(2, 2), Dense(2, "identity")], n_outputs=3, output="softmax", seed=0)
    net.output.params["weight"][...] = 0
    net.output.params["bias"][...] = [2000.0, 0.0, -2000.0]
    x = np.ones((1, 2, 2))
    o = net.forward(x)
    assert o[0, 2] == 0
    loss = net.backward(np.array([2]))
    assert loss == pytest.approx(4000.0, rel=1e-12)
    np.testing.assert_allclose(net.e, [[1, 0, -1]], atol=1e-300)


def test_cross_entropy_function():
    o = np.array([[0.2, 0.8], [0.5, 0.5]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    loss, e = losses.cross_entropy(o, y)
    assert loss == pytest.approx(-(np.log(0.8) + np.log(0.5)) / 2)
    np.testing.assert_array_equal(e, o - y)


@pytest.mark.parametrize("act", ACTS, ids=str)
def test_activation_derivatives_by_central_differences(act):
    """f'(z) computed from a = f(z), against (f(z+h) − f(z−h))/2h, away from the kinks."""
    act = activations.get(act)
    z = np.linspace(-3, 3, 61) + 0.0123  # never exactly 0
    h = 1e-6
    numeric = (act.forward(z + h) - act.forward(z - h)) / (2 * h)
    a = act.forward(z.copy())
    np.testing.assert_allclose(act.backward(np.ones_like(z), a), numeric, rtol=1e-8, atol=1e-9)


def test_activation_values_and_the_derivative_at_zero():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(activations.get("relu").forward(z.copy()), [0, 0, 3])
    np.testing.assert_allclose(activations.LeakyReLU(0.25).forward(z.copy()), [-0.5, 0, 3])
    np.testing.assert_allclose(activations.get("tanh").forward(z.copy()), np.tanh(z))
    np.testing.assert_allclose(activations.get("identity").forward(z.copy()), z)
    ones = np.ones(3)
    # at z = 0: ReLU' = 0, leaky' = slope (documented; PyTorch agrees)
    np.testing.assert_array_equal(activations.get("relu").backward(ones, np.array([0.0, 0.0, 3.0])), [0, 0, 1])
    np.testing.assert_array_equal(activations.LeakyReLU(0.25).backward(ones, np.array([-0.5, 0.0, 3.0])), [0.25, 0.25, 1])
    t = torch.tensor([0.0], requires_grad=True)
    torch.relu(t).backward()
    assert t.grad.item() == 0


def test_activation_errors():
    with pytest.raises(ConvpropError, match="activation must be one of sigmoid, tanh, relu, leaky_relu, identity"):
        Dense(3, "swish")
    with pytest.raises(ConvpropError, match=r"slope must lie in \[0, 1\)"):
        activations.LeakyReLU(-0.1)


def test_output_choice_errors_and_shapes():
    with pytest.raises(ConvpropError, match="output must be one of sigmoid, softmax"):
        Network([Input(4, 4)], 2, output="linear")
    net = Network([Input(6, 6), Conv(2, 3), Dense(5), Dense(4)], 3, seed=0)
    assert net.map_shape == (4,) and net.n_features == 4
    assert net.spec == "6x6-2c3-5f-4f-3o"
    assert repr(net.layers[2]) == "Dense(5)" and repr(Dense(2, "relu")) == "Dense(2, 'relu')"
    x, y = batch(net, n=2)
    net.forward(x)
    net.backward(y)
    assert [a.shape for a in net.activations] == [(2, 6, 6, 1), (2, 4, 4, 2), (2, 5), (2, 4)]
    assert net.layers[3].d.shape == (2, 4)


def test_float32_network_with_new_layers_trains_close_to_float64():
    layers = [Input(8, 8, 3), Conv(3, 3, "relu", padding="same"), MaxPool(2), Dense(6, "tanh")]
    n64 = Network(layers, 4, output="softmax", seed=0)
    n32 = n64.copy(dtype=np.float32)
    x, y = batch(n64, n=4, seed=1)
    o64, o32 = n64.forward(x), n32.forward(x)
    assert o32.dtype == np.float32
    np.testing.assert_allclose(o32, o64, rtol=1e-5, atol=1e-6)
    n64.backward(y), n32.backward(y)
    for k, g in n64.gradients().items():
        assert n32.gradients()[k].dtype == np.float32
        np.testing.assert_allclose(n32.gradients()[k], g, rtol=1e-4, atol=1e-5 * np.abs(g).max())


def test_he_initialisation_bounds_and_default():
    layers = [Input(12, 12), Conv(8, 5, "relu"), MaxPool(2), Dense(50, "relu")]
    toolbox = Network(layers, 10, seed=0)
    he = Network(layers, 10, seed=0, init="he")
    for name in ["conv1", "dense3"]:
        layer = dict(he.named_layers())[name]
        w = layer.params["weight"]
        bound = np.sqrt(6 / layer.fan_in)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        # the same draws, scaled: He's bound over the toolbox's
        ratio = bound / np.sqrt(6 / (layer.fan_in + layer.fan_out))
        np.testing.assert_allclose(w, dict(toolbox.named_layers())[name].params["weight"] * ratio, rtol=1e-12)
    np.testing.assert_array_equal(he.output.params["weight"], toolbox.output.params["weight"])
    with pytest.raises(ConvpropError, match="init must be one of toolbox, he"):
        Network(layers, 10, init="xavier")
