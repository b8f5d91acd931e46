import numpy as np
import pytest
from PIL import Image

from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop import plots


@pytest.fixture(scope="module")
def net():
    return Network([Input(28, 28), Conv(3, 5), Subsample(2), Conv(4, 5), Subsample(2)], n_outputs=10, seed=0)


def check_png(path, kind, min_std=10, size=None):
    assert path.is_file() and path.stat().st_size > 3000  # a real picture, not an empty canvas
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (size or plots.SIZES[kind])
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > min_std  # something is drawn


def test_loss(tmp_path):
    rL = 1.2 * 0.99 ** np.arange(121)
    check_png(plots.plot_loss(rL, tmp_path / "loss.png", batches_per_epoch=40), "loss")


def test_kernels_of_each_conv_layer(tmp_path, net):
    assert [name for name, _ in plots.conv_layers(net)] == ["conv1", "conv3"]
    for name, layer in plots.conv_layers(net):
        n_out, n_in = layer.params["weight"].shape[:2]
        size = plots.kernel_figure_size(n_in, n_out, layer.kernelsize)
        check_png(plots.plot_kernels(net, name, tmp_path / f"k_{name}.png"), "kernels", size=size)
    assert plots.kernel_figure_size(1, 3, (5, 5)) == (900, 316)  # a row of kernels: a short canvas
    assert plots.kernel_figure_size(4, 3, (5, 5)) == (900, 700)
    with pytest.raises(ConvpropError, match="conv1"):
        plots.plot_kernels(net, "conv2", tmp_path / "x.png")


def test_first_layer_kernels_fill_their_canvas(tmp_path):
    """A 1×6 grid of 5×5 kernels: 12 % of a 900×700 canvas was coloured (issue 14, item 10); now 35 %
    of a 900×220 one (the rest: the title, labels, white space between kernels, near-zero weights)."""
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2)], n_outputs=10, seed=0)
    with Image.open(plots.plot_kernels(net, "conv1", tmp_path / "k.png")) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    coloured = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max(axis=2) > 20  # the kernels and the colour bar
    assert coloured.mean() > 0.3


def test_metrics_per_epoch(tmp_path):
    rows = [[1, 0.5, 0.6, 0.12, 7.0], [2, 0.3, 0.35, 0.08, 7.1], [3, 0.2, 0.25, "", 7.0]]
    check_png(plots.plot_metrics(rows, tmp_path / "metrics.png"), "metrics")
    with pytest.raises(ConvpropError, match="at least one finished epoch"):
        plots.plot_metrics([], tmp_path / "m.png")


def test_loss_on_a_log_scale_and_one_batch(tmp_path):
    check_png(plots.plot_loss(1e-3 * 0.5 ** np.arange(200), tmp_path / "log.png", log=True), "loss")
    check_png(plots.plot_loss([0.9, 0.8], tmp_path / "one.png"), "loss", min_std=5)


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
