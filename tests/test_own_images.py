"""Training on your own images: folders of class folders, train/ and test/ folders, CSV files.

The folders are made here from data the tests generate: scikit-learn's bundled 8×8 digits
written as PNGs (and JPEGs) in class folders, and RGB pictures of coloured shapes whose
classes differ only in hue (same brightness), so that only a network that keeps the colour
channels can tell them apart.
"""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from convprop import Conv, Dense, Input, MaxPool, Network, evaluate, train
from convprop.cli import main
from convprop.datasets.folder import find_images, load_image_folder
from convprop.engine.optim import Adam
from convprop.errors import ConvpropError
from image_folders import DIGIT_NAMES, digits_folder, shapes_folder

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return shapes_folder(tmp_path_factory.mktemp("shapes"))


def _small_net(shape, k):
    return Network([Input(*shape), Conv(8, 3, "relu", padding="same"), MaxPool(2), Dense(32, "relu")],
                   n_outputs=k, output="softmax", seed=0, dtype="float32")


def test_a_network_learns_the_folder_of_digits(digits):
    data = load_image_folder(digits, seed=0)
    assert data.image_shape == (8, 8, 1) and data.class_names == sorted(DIGIT_NAMES)
    assert (len(data.y_train), len(data.y_test)) == (1438, 359)  # 20 % of each class held out
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() == 1
    # each class keeps its share: 10 classes of ~180 images, ~36 of each held out
    assert np.bincount(data.y_test).min() >= 35
    net = _small_net(data.image_shape, 10)
    train(net, data.x_train, data.y_train, epochs=10, batch_size=20, seed=0, optimizer=Adam(3e-3))
    assert evaluate(net, data.x_test, data.y_test).error < 0.05  # measured: 2.51 % (9 of 359)


def test_colour_is_kept_as_channels_and_matters(shapes):
    rgb = load_image_folder(shapes, val_split=0.25, seed=0)
    grey = load_image_folder(shapes, val_split=0.25, seed=0, color="grey")
    assert rgb.image_shape == (16, 16, 3) and grey.image_shape == (16, 16, 1)
    assert rgb.class_names == ["blue", "green", "red"]
    assert "135 of 135 training images have colour: read as RGB, 3 input maps" in rgb.notes
    assert "training images: 135 image(s): RGB → grey" in grey.notes  # converted, and said so
    errors = {}
    for name, data in (("rgb", rgb), ("grey", grey)):
        net = _small_net(data.image_shape, 3)
        train(net, data.x_train, data.y_train, epochs=10, batch_size=10, seed=0, optimizer=Adam(3e-3))
        errors[name] = evaluate(net, data.x_test, data.y_test).error
    assert errors["rgb"] < 0.05  # measured: 0 %
    assert errors["grey"] > 0.4  # the hues have one brightness: grey is chance (measured 67 %)


def test_a_folder_larger_than_max_memory_is_read_into_a_file_on_disk(digits):
    small = load_image_folder(digits, seed=0, max_memory=1 << 16)
    assert isinstance(small.x_train, np.memmap) and any("temporary file on disk" in n for n in small.notes)
    full = load_image_folder(digits, seed=0)
    assert not isinstance(full.x_train, np.memmap)
    np.testing.assert_array_equal(small.x_train, full.x_train)
    nets = [_small_net(full.image_shape, 10) for _ in range(2)]
    for net, data in zip(nets, (small, full)):
        train(net, data.x_train, data.y_train, epochs=1, batch_size=20, seed=0, optimizer=Adam(3e-3))
    np.testing.assert_array_equal(nets[0].parameters()["conv1.weight"], nets[1].parameters()["conv1.weight"])


def _mixed_folder(root, digits):
    """train/ and test/ folders; the test images as JPEG at 16×16, a notes.txt to ignore."""
    for name in DIGIT_NAMES[:3]:
        files = sorted((digits / name).glob("*.png"))
        (root / "train" / name).mkdir(parents=True)
        (root / "test" / name).mkdir(parents=True)
        for f in files[:120]:
            shutil.copy(f, root / "train" / name / f.name)
        for f in files[120:150]:
            Image.open(f).resize((16, 16)).save(root / "test" / name / (f.stem + ".jpg"))
    (root / "train" / "notes.txt").write_text("not an image")
    (root / "train" / "zero" / "README.txt").write_text("not an image")
    return root


def test_cli_trains_on_train_and_test_folders_and_names_the_classes(tmp_path, digits, capsys):
    root = _mixed_folder(tmp_path / "photos", digits)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(root), "--layers", "8c3rps-m2-16fr", "--output", "softmax",
            "--optimizer", "adam", "--alpha", "0.003", "--epochs", "4", "--batch-size", "10", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "3 classes: one, two, zero; 8x8 grey; test: the train/ and test/ folders" in text
    assert "note: test images: 90 image(s): resized to 8x8" in text  # never silent
    assert "ignored 1 file(s) that are not images (.txt: 1)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_names"] == ["one", "two", "zero"] and summary["test_error"][-1] < 0.1
    two = sorted((root / "test" / "two").glob("*.jpg"))[0]
    assert main(["predict", str(out), str(two)]) == 0
    assert capsys.readouterr().out.startswith(f"{two}: two (output")
    assert main(["test", str(out)]) == 0
    assert f"test error: {100 * summary['test_error'][-1]:.2f} %" in capsys.readouterr().out


def test_cli_held_out_split_is_seeded_and_resumes(tmp_path, digits, capsys):
    out = tmp_path / "run"
    base = ["train", "--data-dir", str(digits), "--layers", "8c3rps-16fr", "--output", "softmax", "--optimizer",
            "adam", "--alpha", "0.003", "--batch-size", "20", "--val-split", "0.3", "--no-plots", "-q"]
    assert main([*base, "--epochs", "1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2", "-q"]) == 0  # --data-dir remembered
    assert main([*base, "--epochs", "2", "--out", str(tmp_path / "once")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(";")[0] == lines[2].split(";")[0]  # same test error: same split, same training
    assert "(539/" not in lines[1] and "/539 wrong" in lines[1]  # 30 % of 1797 held out


def test_csv_of_path_label(tmp_path, digits):
    rows = ["path,label"] + [f"{p.relative_to(digits.parent)},{p.parent.name}"
                              for p in sorted(digits.glob("*/*.png"))[::4]]
    csv = digits.parent / "digits.csv"
    csv.write_text("\n".join(rows) + "\n")
    train_list, test_list = find_images(csv)
    assert test_list is None and len(train_list.paths) == len(rows) - 1
    data = load_image_folder(csv, seed=0)
    assert data.class_names == sorted(DIGIT_NAMES) and data.image_shape == (8, 8, 1)
    net = _small_net(data.image_shape, 10)
    train(net, data.x_train, data.y_train, epochs=15, batch_size=20, seed=0, optimizer=Adam(3e-3))
    assert evaluate(net, data.x_test, data.y_test).error < 0.15  # 450 images; measured: 4.44 % (4 of 90)


@pytest.mark.parametrize("argv, message", [
    (["--data-dir", "{root}/zero/0000.png"], "--data-dir {root}/zero/0000.png is a file; give the directory"),
    (["--data-dir", "{root}/nothing"], "--data-dir {root}/nothing: no such directory"),
    (["--data-dir", "{root}", "--val-split", "1.5"], "--val-split must be between 0 and 1"),
    (["--data-dir", "{root}", "--image-size", "0x3"], "--image-size: an image size is N or HxW"),
    (["--data-dir", "{root}/zero"], "--data-dir {root}/zero: no class folders: it holds images itself"),
    (["--data-dir", "{root}", "--dataset", "mnist"], "holds image folders, not mnist IDX files"),
])
def test_cli_errors_name_the_flag(tmp_path, digits, capsys, argv, message):
    root = str(digits)
    assert main(["train", *[a.format(root=root) for a in argv], "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert message.format(root=root) in err and err.count("\n") == 1


def test_one_class_folder_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(ConvpropError, match="one sub-folder of images per class, at least two; found 1"):
        load_image_folder(tmp_path)
