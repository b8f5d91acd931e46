"""A newcomer's first hour (issue 14): each numbered item, as the user met it, checked."""

import numpy as np
import pytest

from convprop import Conv, Input, MaxPool, Network, save_model
from convprop.cli import main


# --- 1. gradcheck and explain on ReLU / max-pool networks

def test_gradcheck_on_max_pool_passes_and_says_why_steps_were_refined(capsys):
    assert main(["gradcheck", "--layers", "6c5-m2", "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("network 28x28-6c5-m2-10o, 2 random images: 8806 parameter entries, two passes each\n")
    assert "gradient check passed (epsilon 0.0001, tolerance 1e-08)" in out
    assert "crossed a ReLU kink or a max-pool tie for 62 entries" in out


@pytest.fixture
def relu_model(tmp_path):
    path = tmp_path / "relu.npz"
    save_model(Network([Input(12, 12), Conv(3, 3, "relu"), MaxPool(2)], n_outputs=4, seed=0), path)
    return path


def test_gradcheck_and_explain_agree_on_exit_codes(relu_model, monkeypatch, capsys):
    from convprop.engine import activations, backend

    assert main(["gradcheck", "--model", str(relu_model), "--images", "2"]) == 0
    assert main(["explain", str(relu_model)]) == 0
    monkeypatch.setattr(activations.ReLU, "backward", lambda self, d, a: np.where(a > 0, 1.1 * d, 0))
    if backend.engine() == "numba":  # the compiled engine's derivative, δ·[a > 0], on 1.1·δ
        from convprop.engine.kernels import activation as kernel, conv, stack

        real, real_backward = kernel.derivative, conv.backward  # alone, and in a layer's one-call backward
        monkeypatch.setattr(kernel, "derivative", lambda d, a, *rest: real(1.1 * d, a, *rest))
        monkeypatch.setattr(conv, "backward", lambda d, a, *rest: real_backward(1.1 * d, a, *rest))
        real_stack = stack.backward  # and in the map layers' one call: 1.1·δ into the last of them
        monkeypatch.setattr(stack, "backward", lambda *args: real_stack(*args[:6], (*args[6][:-1], 1.1 * args[6][-1]),
                                                                        *args[7:]))
    assert main(["gradcheck", "--model", str(relu_model), "--images", "2"]) == 1
    assert main(["explain", str(relu_model)]) == 1
    assert capsys.readouterr().out.count("gradient check FAILED") == 2


# --- 5. predict: .npy, conversions said, bad files skipped, --limit, images whose meaning was lost

@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small network trained on scikit-learn's 8×8 digits (pixels / 16), and 20 test digits."""
    from sklearn.datasets import load_digits

    from convprop import Dense, train
    from convprop.engine.optim import Adam

    d = load_digits()
    x, y = d.images / 16.0, d.target
    net = Network([Input(8, 8), Conv(8, 3, "relu", padding="same"), Dense(32, "relu")], n_outputs=10,
                  output="softmax", seed=0)
    train(net, x[:1500], y[:1500], epochs=8, batch_size=20, seed=0, optimizer=Adam(3e-3))
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    save_model(net, path, {"class_names": [str(i) for i in range(10)]})
    return path, x[1500:1520], y[1500:1520]


def _predicted(out: str) -> list[str]:
    return [line.split(": ")[1].split(" ")[0] for line in out.splitlines() if "(output" in line]


def test_predict_reads_float_tiffs_and_alpha_pictures_as_what_they_show(tmp_path, digits_model, capsys):
    from PIL import Image

    path, x, y = digits_model
    plain, tiffs, alphas = [], [], []
    for i, img in enumerate(x):
        grey = np.round(img * 255).astype(np.uint8)
        Image.fromarray(grey).save(tmp_path / f"{i}.png")
        Image.fromarray(img.astype(np.float32), mode="F").save(tmp_path / f"{i}.tif")  # values in [0, 1]
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[..., 3] = grey  # black ink, the digit drawn in the alpha channel
        Image.fromarray(rgba, mode="RGBA").save(tmp_path / f"{i}-alpha.png")
        plain.append(str(tmp_path / f"{i}.png"))
        tiffs.append(str(tmp_path / f"{i}.tif"))
        alphas.append(str(tmp_path / f"{i}-alpha.png"))
    assert main(["predict", str(path), *plain]) == 0
    expected = _predicted(capsys.readouterr().out)
    assert np.mean(np.array(expected, int) == y) >= 0.9  # measured: 20 of 20 right
    assert main(["predict", str(path), *tiffs]) == 0
    out = capsys.readouterr().out
    assert _predicted(out) == expected and out.count("[floating-point pixels read as [0, 1]]") == 20
    assert main(["predict", str(path), *alphas]) == 0
    out = capsys.readouterr().out
    assert _predicted(out) == expected and out.count("the picture is in the alpha channel") == 20


def test_predict_says_what_it_converted_and_skips_unreadable_files(tmp_path, digits_model, capsys):
    from PIL import Image

    path, x, _ = digits_model
    photo = np.zeros((480, 640, 3), np.uint8)
    photo[100:380, 200:440] = (255, 200, 0)
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    np.save(tmp_path / "x.npy", np.round(x[:3] * 255).astype(np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    argv = ["predict", str(path), str(tmp_path / "photo.jpg"), str(tmp_path / "broken.png"), str(tmp_path / "x.npy")]
    assert main(argv) == 1  # some files could not be read; the others are classified
    captured = capsys.readouterr()
    assert "[RGB → grey; resized 640x480 → 8x8]" in captured.out
    assert captured.out.count("[uint8 pixels / 255]") == 3 and f"{tmp_path / 'x.npy'}[2]: " in captured.out
    assert f"convprop predict: error: {tmp_path / 'broken.png'}: " in captured.err
    assert "1 of 3 file(s) could not be read; the others are classified above" in captured.err
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(path), str(tmp_path / "photo.jpg"), "--limit", "-1"])
    assert exc.value.code == 2 and "--limit must be 0 (print all) or more, got -1" in capsys.readouterr().err


def test_uint8_pixels_given_to_a_network_are_warned_about(tmp_path, relu_model, capsys):
    from convprop import load_model

    net = load_model(relu_model)
    pixels = np.full((2, 12, 12), 200, np.uint8)
    with pytest.warns(UserWarning, match=r"uint8 pixels \(0-255\) and are used as they are"):
        net.predict(pixels)
    np.save(tmp_path / "u8.npy", pixels)
    assert main(["explain", str(relu_model), "--input", str(tmp_path / "u8.npy"), "--no-gradcheck"]) == 0
    assert "u8.npy holds uint8 pixels (0-255): divided by 255" in capsys.readouterr().out


# --- 4. messages that speak CLI to CLI users

def test_data_dir_messages_name_the_flag(tmp_path, capsys, monkeypatch):
    from convprop.datasets import load_mnist
    from convprop.errors import ConvpropError

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", "--data-dir", str(afile), "-q"]) == 2
    assert capsys.readouterr().err == (f"convprop train: error: --data-dir {afile} is a file; give the directory that "
                                       "holds the IDX files, a folder of class folders, or a .csv of path,label\n")
    assert main(["train", "--data-dir", str(tmp_path / "nope"), "-q"]) == 2
    assert capsys.readouterr().err == f"convprop train: error: --data-dir {tmp_path / 'nope'}: no such directory\n"
    with pytest.raises(ConvpropError, match="afile is a file; name the directory that holds the mnist IDX files"):
        load_mnist(path=afile)  # Python: not "no such directory" either
    monkeypatch.setenv("CONVPROP_MIRRORS", "http://127.0.0.1:9")
    monkeypatch.setenv("CONVPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVPROP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # the default --out, runs/fashion-mnist, lands here
    import convprop.datasets.locate as locate  # as if Debian's dataset-fashion-mnist were not installed

    monkeypatch.setattr(locate, "find_in_dir", _without_debian_fashion(locate.find_in_dir))
    assert main(["train", "--dataset", "fashion-mnist", "-q"]) == 2
    err = capsys.readouterr().err
    assert "(--data-dir on the command line, path= in Python)" in err
    assert err.endswith("sudo apt-get install dataset-fashion-mnist puts it in /usr/share/datasets/fashion-mnist\n")


# --- 6. examples/lenet.py without Fashion-MNIST

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _without_debian_fashion(find_in_dir):
    """``find_in_dir`` that finds nothing in /usr/share/datasets (where Debian's package puts Fashion-MNIST)."""
    return lambda d, spec, split: None if str(d).startswith("/usr/share/datasets") else find_in_dir(d, spec, split)


#: Runs the script given after it as ``__main__``, with Debian's Fashion-MNIST out of sight.
WITHOUT_DEBIAN_FASHION = (
    "import runpy, sys\n"
    "import convprop.datasets.locate as locate\n"
    "real = locate.find_in_dir\n"
    "locate.find_in_dir = lambda d, spec, split: (None if str(d).startswith('/usr/share/datasets')\n"
    "                                             else real(d, spec, split))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _env(tmp_path, **extra):
    import os

    env = {**os.environ, "CONVPROP_MIRRORS": "http://127.0.0.1:9", "CONVPROP_CACHE": str(tmp_path / "cache"), **extra}
    env.pop("CONVPROP_DATA", None)
    return env


def test_lenet_example_skips_a_missing_fashion_mnist(tmp_path, shared):
    import subprocess
    import sys

    cmd = [sys.executable, "-c", WITHOUT_DEBIAN_FASHION, str(ROOT / "examples" / "lenet.py"), "--epochs", "1",
           "--train-size", "200",
           "--data-dir", str(shared / "data" / "mnist")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "MNIST epoch 1:" in done.stdout
    assert "Fashion-MNIST skipped (--dataset both makes this an error): fashion-mnist train files not found" in done.stdout
    done = subprocess.run([*cmd, "--dataset", "fashion"], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)
    assert done.returncode == 1 and "sudo apt-get install dataset-fashion-mnist" in done.stderr


# --- 7. Ctrl-C in the first moments

@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, shared, delay):
    """Ctrl-C while NumPy, the sub-commands and the data load, before training starts: one line, status 130.

    The launcher is the console script's own (``from convprop.cli import main; sys.exit(main())``)
    with a line printed when ``main`` starts building its parser (its first step, under its own
    handler); before that, only the interpreter's start-up and the import of ``convprop.cli``
    (argparse and the error classes: about 12 ms) remain. The line used to be printed between the
    import and ``main()``: on a loaded machine a Ctrl-C sent on reading it reached the launcher
    before ``main`` ran (a KeyboardInterrupt in the launcher's own line), a window the print's write
    opened: the console script goes from the import to ``main()`` in a few bytecodes.
    """
    import signal
    import subprocess
    import sys
    import time

    launcher = ("import sys\n"
                "import convprop.cli as cli\n"
                "build = cli.build_parser\n"
                "def build_parser():\n"
                "    print('started', flush=True)\n"
                "    return build()\n"
                "cli.build_parser = build_parser\n"
                "sys.exit(cli.main())\n")
    proc = subprocess.Popen([sys.executable, "-c", launcher, "train", "--data-dir", str(shared / "data" / "mnist"),
                             "--out", str(tmp_path / "run"), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(tmp_path))
    assert proc.stdout.readline() == "started\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("convprop: interrupted"), err


def test_a_ctrl_c_that_python_loses_while_the_command_starts_still_stops_it(tmp_path, shared):
    """A KeyboardInterrupt raised while a ``__del__`` or weakref callback runs (an import's module-lock
    clean-up, say) is lost by CPython: it printed a traceback and training went on to status 0 (seen
    once in CI). Here a ``__del__`` in the warm-up's start takes the Ctrl-C: the run stops after its
    first batch, as for a Ctrl-C during training, with one line and status 130."""
    import subprocess
    import sys

    launcher = (
        "import os, signal, sys\n"
        "from convprop.engine import warmup\n"
        "class Lost:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(10000): pass  # the handler runs here, inside __del__\n"
        "held, start = [Lost()], warmup.start\n"
        "def losing_start(*a, **k):\n"
        "    held.clear()\n"
        "    return start(*a, **k)\n"
        "warmup.start = losing_start\n"
        "from convprop.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", launcher, "train", "--data-dir", str(shared / "data" / "mnist"),
                           "--out", str(tmp_path / "run"), "-q"], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("convprop: interrupted at epoch 1, batch 1; checkpoint saved"), done.stderr


CTRL_C_IN_A_C_IMPORT = (
    "import os, signal, sys\n"
    "def ctrl_c_in_a_c_import():  # what CPython does with a Ctrl-C while a C extension initialises\n"
    "    try:\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "        for _ in range(10000): pass  # the handler runs here\n"
    "    except KeyboardInterrupt as exc:\n"
    "        raise ImportError('PyCapsule_Import could not import module \"datetime\"') from exc\n"
)


@pytest.mark.parametrize("where", ["swallowed", "error"])
def test_a_ctrl_c_that_an_import_turns_into_an_import_error_still_stops_the_command(tmp_path, shared, where):
    """A Ctrl-C while a C extension initialises comes out as an ImportError. A ``try: import
    _speedups / except ImportError`` fallback swallows it: training went on to status 0 (seen once
    in CI). Unhandled, it ended the command with a traceback. Either way: one line and status 130,
    after the first batch when training follows."""
    import subprocess
    import sys

    if where == "swallowed":  # in the warm-up's start, before the data load
        launcher = CTRL_C_IN_A_C_IMPORT + (
            "from convprop.engine import warmup\n"
            "start = warmup.start\n"
            "def start_with_a_fallback(*a, **k):\n"
            "    try:\n"
            "        ctrl_c_in_a_c_import()\n"
            "    except ImportError:\n"
            "        pass  # the pure-Python fallback\n"
            "    return start(*a, **k)\n"
            "warmup.start = start_with_a_fallback\n")
        expected = "convprop: interrupted at epoch 1, batch 1; checkpoint saved"
    else:  # while the sub-commands are imported, before any handler of the command's
        launcher = CTRL_C_IN_A_C_IMPORT + (
            "import convprop.cli as cli\n"
            "build = cli.build_parser\n"
            "def build_parser():\n"
            "    ctrl_c_in_a_c_import()\n"
            "cli.build_parser = build_parser\n")
        expected = "convprop: interrupted\n"
    launcher += "from convprop.cli import main\nsys.exit(main())\n"
    done = subprocess.run([sys.executable, "-c", launcher, "train", "--data-dir", str(shared / "data" / "mnist"),
                           "--out", str(tmp_path / "run"), "-q"], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(expected), done.stderr


def test_a_lost_ctrl_c_that_no_training_takes_over_ends_the_command(monkeypatch, capsys):
    """A command that does not train (or a Ctrl-C lost after training) still ends with one line and
    130; any other unraisable report goes to the hook that was there, and main() leaves the SIGINT
    handler and the hook as it found them."""
    import os
    import signal
    import sys

    import convprop.cli as cli

    class Lost:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10000):  # the handler runs here, inside __del__: CPython loses it
                pass

    class Broken:
        def __del__(self):
            raise ValueError("not ours")

    def command(argv):
        Broken()
        Lost()
        return 0

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: seen.append(type(report.exc_value)))
    monkeypatch.setattr(cli, "_main", command)
    assert cli.main([]) == 130
    assert capsys.readouterr().err == "convprop: interrupted\n"
    assert seen == [ValueError]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and sys.unraisablehook is not None
    assert sys.unraisablehook.__name__ == "<lambda>"


# --- 8. help texts

def test_train_and_gradcheck_help_explain_themselves(capsys):
    for argv in (["train", "--help"], ["gradcheck", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    out = capsys.readouterr().out
    assert "Train a network on MNIST, Fashion-MNIST or your own images" in out
    assert "examples:\n  convprop train --data-dir ../shared/data/mnist --out runs/mnist-1epoch" in out
    assert "--image-size HxW" in out and "--val-split F" in out
    for flag, words in (("--epsilon EPS", "finite-difference step"), ("--tolerance TOL", "largest |numerical"),
                        ("--seed SEED", "seed of the network's weights")):
        assert flag in out and words in out
