import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convprop import Network
from convprop.engine import backend
from convprop.cli import main
from convprop.formats.model import load_model
from convprop.formats.checkpoint import load_checkpoint
from idx_helpers import tiny_dataset, write_idx

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--layers", "2c5-s4", "--batch-size", "10", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def run3(tmp_path_factory, data_dir):
    """An uninterrupted 3-epoch run through the CLI (with plots)."""
    out = tmp_path_factory.mktemp("run3")
    assert main(["train", "--data-dir", str(data_dir), "--out", str(out), "--epochs", "3", *TINY]) == 0
    return out


def one_line_error(capsys, code, argv, *words):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_train_writes_model_checkpoint_summary_and_plots(run3, capsys):
    summary = json.loads((run3 / "summary.json").read_text())
    assert summary["network"] == "28x28-2c5-s4-10o" and summary["epochs"] == 3
    assert len(summary["test_error"]) == 3 and len(summary["epoch_seconds"]) == 3
    net = load_model(run3 / "model.npz")
    extra = net.extra
    assert extra["class_names"][0] == "0" and extra["dataset"] == "mnist"
    _, state = load_checkpoint(run3 / "checkpoint.npz")
    assert state.epoch == 3 and len(state.rL) == 3 * 6 + 1
    names = sorted(p.name for p in (run3 / "plots").iterdir())
    assert names == ["confusion.png", "feature_maps.png", "kernels_conv1.png", "loss.png", "metrics.png",
                     "misclassified.png"]
    metrics = (run3 / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "epoch,rL,mean_loss,test_error,seconds" and len(metrics) == 4
    assert [float(line.split(",")[3]) for line in metrics[1:]] == summary["test_error"]
    for p in (run3 / "plots").iterdir():
        with Image.open(p) as im:
            assert im.size[0] >= 800 and p.stat().st_size > 3000


def test_train_prints_progress_and_summary_table(tmp_path, data_dir, capsys):
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path), "--layers", "2c5-s4",
            "--batch-size", "20", "--epochs", "2", "--no-plots"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/2" in err and "img/s" in err and "loss=" in err  # the tqdm bar
    assert " epoch | test error | time (s)" in out
    lines = out.splitlines()
    assert any(line.strip().startswith("2 |") for line in lines)
    assert lines[-1].startswith("test error after 2 epoch(s): ")
    assert not (tmp_path / "plots").exists()


def test_float32_run(tmp_path, data_dir):
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path), "--dtype", "float32", "--no-plots", *TINY]
    assert main(argv) == 0
    net = load_model(tmp_path / "model.npz")
    assert net.dtype == np.float32 and net.parameters()["conv1.weight"].dtype == np.float32


def test_resume_through_the_cli_is_bit_identical(tmp_path, data_dir, run3):
    assert main(["train", "--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", "1", "--no-plots", *TINY]) == 0
    assert main(["train", "--resume", str(tmp_path), "--data-dir", str(data_dir), "--epochs", "3",
                 "--no-plots", "--quiet"]) == 0
    a, sa = load_checkpoint(tmp_path / "checkpoint.npz")
    b, sb = load_checkpoint(run3 / "checkpoint.npz")
    assert sa.rL == sb.rL and sa.test_error == sb.test_error
    # the engine of every epoch, the first one's carried over from the first invocation's summary
    engine = backend.engine()
    assert json.loads((tmp_path / "summary.json").read_text())["engines"] == [engine] * 3
    for name, arr in b.parameters().items():
        assert np.array_equal(a.parameters()[name], arr), name


def test_the_engines_of_earlier_epochs_are_read_with_care(tmp_path):
    """A resumed run takes the earlier epochs' engines from summary.json, which may be missing,
    malformed or another program's: then they are unknown (None), never an error."""
    from convprop.cli.report import earlier_engines

    path = tmp_path / "summary.json"
    assert earlier_engines(path, 2) == [None, None]  # no file
    for text, want in [('{"engines": ["numpy", "numba", "numba"]}', ["numpy", "numba"]),
                       ('{"engines": ["numba"]}', ["numba", None]), ('{"engines": ["gpu", 1]}', [None, None]),
                       ('{"engines": "numba"}', [None, None]), ("[1, 2]", [None, None]), ("{not json", [None, None]),
                       (b"\xff\xfe".decode("latin-1"), [None, None])]:
        path.write_text(text, encoding="latin-1" if "\xff" in text else "utf-8")
        assert earlier_engines(path, 2) == want, text


def test_ctrl_c_saves_and_exits_130_then_resumes(tmp_path, data_dir, run3, monkeypatch, capsys):
    calls = []
    step = Network.step

    def step_and_ctrl_c(self, alpha):
        calls.append(1)
        if len(calls) == 8:
            os.kill(os.getpid(), signal.SIGINT)
        step(self, alpha)

    monkeypatch.setattr(Network, "step", step_and_ctrl_c)
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", "3", *TINY]
    one_line_error(capsys, 130, argv, "interrupted at epoch 2, batch 2",
                   f"resume with: convprop train --resume {tmp_path / 'checkpoint.npz'} --epochs 3")
    monkeypatch.undo()
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 1  # written each epoch
    one_line_error(capsys, 2, ["train", "--resume", str(tmp_path), "--epochs", "1"],
                   "the checkpoint has done 1 epochs and 2 batches; ask for more with --epochs")
    assert main(["train", "--resume", str(tmp_path / "checkpoint.npz"), "--data-dir", str(data_dir),
                 "--epochs", "3", "--quiet", "--no-plots"]) == 0
    a, sa = load_checkpoint(tmp_path / "checkpoint.npz")
    b, sb = load_checkpoint(run3 / "checkpoint.npz")
    assert sa.rL == sb.rL
    for name, arr in b.parameters().items():
        assert np.array_equal(a.parameters()[name], arr), name


def test_divergence_is_a_one_line_error_keeping_the_checkpoint(tmp_path, data_dir, monkeypatch, capsys):
    calls = []
    step = Network.step

    def step_to_inf(self, alpha):
        step(self, alpha)
        calls.append(1)
        if len(calls) == 9:
            self.output.params["weight"][0, 0] = np.inf

    monkeypatch.setattr(Network, "step", step_to_inf)
    argv = ["train", "--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", "3", *TINY]
    one_line_error(capsys, 2, argv, "training diverged at epoch 2, batch 3/6", "output.weight",
                   "last good checkpoint", "smaller --alpha")
    _, state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert (state.epoch, state.batch) == (1, 0)


def test_test_command_and_its_plots(run3, data_dir, capsys):
    # without --data-dir, the directory the model was trained from is used
    assert main(["test", str(run3), "--plots", str(run3 / "t")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((run3 / "summary.json").read_text())
    assert f"test error: {100 * summary['test_error'][-1]:.2f} %" in out
    assert (run3 / "t" / "confusion.png").is_file() and (run3 / "t" / "misclassified.png").is_file()


def test_predict_png_jpeg_and_idx(run3, tmp_path, capsys):
    net = load_model(run3 / "model.npz")
    img = np.zeros((28, 28), np.uint8)
    img[8:11, 4:24] = 255  # class 3 of the tiny dataset
    Image.fromarray(img).save(tmp_path / "three.png")
    Image.fromarray(img).resize((56, 56)).save(tmp_path / "big.jpg")
    write_idx(tmp_path / "imgs-idx3-ubyte", np.stack([img, img]))
    assert main(["predict", str(run3 / "model.npz"), str(tmp_path / "three.png")]) == 0
    out = capsys.readouterr().out.strip()
    expected = net.predict(img / 255.0)
    assert out.startswith(f"{tmp_path / 'three.png'}: {expected} (output ")
    assert main(["predict", str(run3), str(tmp_path / "big.jpg"), str(tmp_path / "imgs-idx3-ubyte")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith(f"{tmp_path / 'imgs-idx3-ubyte'}[0]: {expected} ")
    one_line_error(capsys, 2, ["predict", str(run3), str(tmp_path / "nope.png")], "nope.png: no such file")
    write_idx(tmp_path / "labels-idx1-ubyte", np.arange(5))
    one_line_error(capsys, 2, ["predict", str(run3), str(tmp_path / "labels-idx1-ubyte")],
                   "shape (5,), not images of 28x28")
    (tmp_path / "bad.png").write_text("not an image")
    one_line_error(capsys, 2, ["predict", str(run3), str(tmp_path / "bad.png")], "bad.png", "not an image")


def test_plot_command_redraws_from_the_checkpoint(run3, data_dir, tmp_path, capsys):
    assert main(["plot", str(run3), "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 6 and all(Path(p).is_file() for p in printed)  # with metrics.png


def test_gradcheck_command(capsys):
    assert main(["gradcheck", "--layers", "2c3-s2", "--size", "8", "--outputs", "3", "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert "gradient check passed" in out and "conv1.weight" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--layers", "6c5-x2", "--data-dir", "."], ["layer spec", "'x2'"]),
        (["test", "missing-model.npz"], ["missing-model.npz: no such file"]),
        (["train", "--epochs", "many"], ["invalid int value"]),
        (["train", "--dataset", "cifar"], ["invalid choice"]),
        (["frobnicate"], ["invalid choice"]),
        (["train", "--data-dir", "/nonexistent/dir", "--quiet"], ["/nonexistent/dir"]),
    ],
)
def test_errors_are_one_line_with_status_2(argv, words, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_resume_refuses_changed_settings(run3, data_dir, capsys):
    one_line_error(capsys, 2, ["train", "--resume", str(run3), "--epochs", "4", "--alpha", "0.5",
                               "--data-dir", str(data_dir)], "--alpha 0.5 (checkpoint: 1.0)")
    one_line_error(capsys, 2, ["train", "--resume", str(run3), "--epochs", "2", "--data-dir", str(data_dir)],
                   "has done 3 epochs")


def test_python_dash_m_convprop(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-m", "convprop", "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and all(c in done.stdout for c in ("train", "test", "predict", "gradcheck", "plot"))
    done = subprocess.run([sys.executable, "-m", "convprop", "test", str(tmp_path / "x.npz")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such file" in done.stderr


def test_adam_run_resumes_bit_identically_and_refuses_another_optimizer(tmp_path, data_dir, capsys):
    adam = ["--optimizer", "adam", "--alpha", "0.01", "--weight-decay", "0.001"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--data-dir", str(data_dir), "--out", str(straight), "--epochs", "2", "--no-plots",
                 *adam, *TINY]) == 0
    assert main(["train", "--data-dir", str(data_dir), "--out", str(split), "--epochs", "1", "--no-plots",
                 *adam, *TINY]) == 0
    one_line_error(capsys, 2, ["train", "--resume", str(split), "--epochs", "2", "--optimizer", "sgd"],
                   "--optimizer sgd (checkpoint: adam)")
    assert main(["train", "--resume", str(split), "--data-dir", str(data_dir), "--epochs", "2",
                 "--no-plots", "--quiet"]) == 0
    a, sa = load_checkpoint(split / "checkpoint.npz")
    b, sb = load_checkpoint(straight / "checkpoint.npz")
    assert sa.rL == sb.rL and sa.optimizer["t"] == sb.optimizer["t"] > 0
    for name, arr in b.parameters().items():
        assert np.array_equal(a.parameters()[name], arr), name
    assert json.loads((straight / "summary.json").read_text())["optimizer"].startswith("Adam(")
    one_line_error(capsys, 2, ["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
                               "--optimizer", "adam", "--momentum", "0.9", *TINY], "momentum")


def test_predict_tells_idx_files_by_their_bytes_and_inverts_them_too(run3, tmp_path, capsys):
    net = load_model(run3 / "model.npz")
    img = np.zeros((28, 28), np.uint8)
    img[8:11, 4:24] = 255
    Image.fromarray(img).save(tmp_path / "idx_digit.png")  # an image whose name says idx
    write_idx(tmp_path / "digits.bin", np.stack([255 - img]))  # IDX under any name
    assert main(["predict", str(run3), str(tmp_path / "idx_digit.png")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'idx_digit.png'}: {net.predict(img / 255.0)} ")
    assert main(["predict", str(run3), str(tmp_path / "digits.bin"), "--invert"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'digits.bin'}[0]: {net.predict(img / 255.0)} ")
