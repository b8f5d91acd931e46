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
    from convprop.engine import activations

    assert main(["gradcheck", "--model", str(relu_model), "--images", "2"]) == 0
    assert main(["explain", str(relu_model)]) == 0
    monkeypatch.setattr(activations.ReLU, "backward", lambda self, d, a: np.where(a > 0, 1.1 * d, 0))
    assert main(["gradcheck", "--model", str(relu_model), "--images", "2"]) == 1
    assert main(["explain", str(relu_model)]) == 1
    assert capsys.readouterr().out.count("gradient check FAILED") == 2
