"""A real learning check: the toolbox's example network on a slice of MNIST.

6,000 training images, 3 epochs, batch 10, alpha 1, seed 0 reach about 12 %
error on the first 2,000 test images (measured 12.25 %); a network that does
not learn stays near 90 %.
"""

import pytest

from convprop import Conv, Input, Network, Subsample

from convprop import evaluate

from convprop import train
from mnist_idx import load_mnist


@pytest.fixture(scope="module")
def mnist_slice(shared):
    return (*load_mnist(shared, "train", 6000), *load_mnist(shared, "test", 2000))


def test_dlt_example_learns_mnist(mnist_slice):
    x, y, xt, yt = mnist_slice
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)],
                  n_outputs=10, seed=0)
    before = evaluate(net, xt, yt).error
    history = train(net, x, y, epochs=3, batch_size=10, alpha=1.0, seed=0)
    after = evaluate(net, xt, yt).error
    assert before > 0.8
    assert after < 0.16, f"test error {after:.2%} after 3 epochs on 6000 images"
    # the smoothed loss falls from the untrained ~1.2 to well under 0.2
    assert history.rL[0] > 1.0 and history.rL[-1] < 0.2
    assert len(history.rL) == 3 * 600 + 1
