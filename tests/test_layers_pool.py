"""Max pooling (and the toolbox's mean pooling in the same grid): PyTorch, central differences, ties, sizes."""

import numpy as np
import pytest

from convprop import ConvpropError, Network

from convprop.engine import ops
from convprop.engine.layers import Conv, Dense, Input, MaxPool, Subsample
from layers_oracle import batch, check_against_torch, check_central_differences

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (input, conv kernel before the pool, pool): the conv makes the pool's input delta checked too
CASES = [
    ((9, 11, 1), (2, 3), MaxPool(2, crop=True)),   # 8×9 → 4×4, last column dropped
    ((9, 8, 3), (1, 2), MaxPool(3, crop=True)),    # colour, 9×7 → 3×2
    ((7, 9, 1), (3, 1), MaxPool(2, crop=True)),    # 5×9 → 2×4
    ((10, 7, 2), (3, 2), MaxPool(2)),              # 8×6 → 4×3
    ((10, 7, 2), (3, 2), Subsample(2)),            # the toolbox's mean pooling, same grid
    ((12, 9, 1), (3, 3), MaxPool(3, crop=True)),   # 10×7 → 3×2
]


def pool_net(image, kernel, pool, act="relu", output="sigmoid", seed=0):
    return Network([Input(*image), Conv(2, kernel, act), pool, Dense(3, "tanh")], n_outputs=3, output=output, seed=seed)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("act", ["relu", "sigmoid"])
@pytest.mark.parametrize("image,kernel,pool", CASES, ids=str)
def test_pool_matches_torch(image, kernel, pool, act, output):
    net = pool_net(image, kernel, pool, act, output, seed=1)
    x, y = batch(net, seed=2)
    check_against_torch(net, x, y)


@pytest.mark.parametrize("image,kernel,pool", CASES, ids=str)
def test_pool_central_differences(image, kernel, pool):
    net = pool_net(image, kernel, pool, "tanh", "softmax", seed=3)
    x, y = batch(net, seed=4)
    check_central_differences(net, x, y)


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order():
    a = np.zeros((1, 4, 4, 1))
    a[0, :2, :2, 0] = [[1, 5], [5, 5]]     # tie among (0,1), (1,0), (1,1) → (0,1), index 1
    a[0, :2, 2:, 0] = [[3, 3], [3, 3]]     # all equal → (0,0), index 0
    a[0, 2:, :2, 0] = [[0, 0], [2, 2]]     # tie in the second row → (1,0), index 2
    a[0, 2:, 2:, 0] = [[-1, -1], [-1, 0]]  # single maximum → index 3
    out, arg = ops.max_pool(a, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 3], [2, 0]])
    np.testing.assert_array_equal(arg[0, :, :, 0], [[1, 0], [2, 3]])
    back = ops.max_pool_backward(np.full((1, 2, 2, 1), 7.0), arg, 2, (4, 4))[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[0, 2] = expected[3, 0] = expected[3, 3] = 7
    np.testing.assert_array_equal(back, expected)
    # PyTorch's CPU max_pool2d picks the same elements
    t = torch.tensor(a.transpose(0, 3, 1, 2), requires_grad=True)
    torch.nn.functional.max_pool2d(t, 2).sum().mul(7).backward()
    np.testing.assert_array_equal(t.grad[0, 0].numpy(), expected)


def test_max_pool_with_ties_in_a_network_matches_torch():
    """Constant regions (ReLU zeros, saturated inputs) make ties: routing still agrees with torch."""
    net = Network([Input(6, 8), Conv(2, 1, "relu"), MaxPool(2), Dense(3)], n_outputs=2, seed=0)
    x = np.zeros((2, 6, 8))
    x[:, ::3, ::2] = 1.0  # many equal values in each block
    y = np.eye(2)[[0, 1]]
    check_against_torch(net, x, y)


def test_sizes_that_do_not_divide():
    with pytest.raises(ConvpropError, match=r"Layer 2 \(m2\) size must be integer.*7x9.*crop=True"):
        Network([Input(9, 11), Conv(2, 3), MaxPool(2)], 2)
    net = Network([Input(9, 11), Conv(2, 3), MaxPool(2, crop=True)], 2)
    assert net.map_shape == (3, 4, 2)
    with pytest.raises(ConvpropError, match="smaller than the 4x4 block"):
        Network([Input(5, 5), Conv(2, 3), MaxPool(4, crop=True)], 2)
    with pytest.raises(ConvpropError, match=r"Layer 2 \(m2\) needs maps as input"):
        Network([Input(6, 6), Dense(3), MaxPool(2)], 2)
    with pytest.raises(ConvpropError, match=r"Layer 2 \(s2\) needs maps as input"):
        Network([Input(6, 6), Dense(3), Subsample(2)], 2)


def test_cropped_rows_get_a_zero_delta():
    net = Network([Input(5, 5), MaxPool(2, crop=True)], 2, seed=0)
    x, y = batch(net, n=2)
    net.forward(x)
    net.backward(y)
    # the delta reaching the input layer: run the pool's backward by hand
    d = net.layers[1].backward(net.layers[1]._d)
    assert d.shape == (1, 5, 5, 2)
    assert not d[:, 4].any() and not d[:, :, 4].any()
    assert np.count_nonzero(d) == 4 * 2


def test_spec_and_repr():
    assert MaxPool(2).spec() == "m2" and MaxPool(3, crop=True).spec() == "m3c"
    assert repr(MaxPool(3, crop=True)) == "MaxPool(3, crop=True)"
