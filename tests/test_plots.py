import numpy as np
import pytest
from PIL import Image

from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop import plots


@pytest.fixture(scope="module")
def net():
    return Network([Input(28, 28), Conv(3, 5), Subsample(2), Conv(4, 5), Subsample(2)], n_outputs=10, seed=0)


def check_png(path, kind, min_std=10):
    assert path.is_file() and path.stat().st_size > 3000  # a real picture, not an empty canvas
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == plots.SIZES[kind]
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > min_std  # something is drawn


def test_loss(tmp_path):
    rL = 1.2 * 0.99 ** np.arange(121)
    check_png(plots.plot_loss(rL, tmp_path / "loss.png", batches_per_epoch=40), "loss")


def test_kernels_of_each_conv_layer(tmp_path, net):
    assert [name for name, _ in plots.conv_layers(net)] == ["conv1", "conv3"]
    for name, _ in plots.conv_layers(net):
        check_png(plots.plot_kernels(net, name, tmp_path / f"k_{name}.png"), "kernels")
    with pytest.raises(ConvpropError, match="conv1"):
        plots.plot_kernels(net, "conv2", tmp_path / "x.png")


def test_feature_maps(tmp_path, net):
    image = np.random.default_rng(0).random((28, 28))
    path = plots.plot_feature_maps(net, image, tmp_path / "sub" / "fm.png", label=3)
    check_png(path, "feature_maps")


def test_confusion(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.integers(0, 10, 300)
    pred = np.where(rng.random(300) < 0.8, true, rng.integers(0, 10, 300))
    check_png(plots.plot_confusion(true, pred, tmp_path / "cm.png", class_names=list("abcdefghij")), "confusion")
    with pytest.raises(ConvpropError, match="same length"):
        plots.plot_confusion(true, pred[:5], tmp_path / "cm.png")


def test_misclassified(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (50, 28, 28)).astype(np.uint8)
    true = rng.integers(0, 10, 50)
    pred = true.copy()
    pred[::3] = (pred[::3] + 1) % 10
    check_png(plots.plot_misclassified(images, true, pred, tmp_path / "mis.png"), "misclassified")
    # none wrong: still a picture of the right size, saying so
    check_png(plots.plot_misclassified(images, true, true, tmp_path / "none.png"), "misclassified", min_std=1)


def test_empty_loss_is_an_error(tmp_path):
    with pytest.raises(ConvpropError, match="non-empty"):
        plots.plot_loss([], tmp_path / "loss.png")
