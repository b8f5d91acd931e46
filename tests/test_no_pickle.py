"""No loader ever unpickles: crafted files carrying a pickle are refused, and the pickle's
payload (it would create a marker file) never runs.

Every convprop file is data: models and checkpoints are ``.npz`` archives of plain numeric
arrays read with ``allow_pickle=False`` (and checked member by member), .mat files are decoded by
scipy after a structural check (MATLAB function handles and opaque objects are refused), IDX and
image files are raw pixels.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convprop.errors import ConvpropError

SRC = Path(__file__).resolve().parents[1] / "src" / "convprop"


class Payload:
    """Unpickling this creates the file ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({"meta": Payload(marker)}, protocol=pickle.HIGHEST_PROTOCOL)


def _npy_with_object_array(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _model_file(tmp_path: Path) -> Path:
    io_mod = pytest.importorskip("convprop.formats.model", reason="convprop.formats.model (branch cli) not merged yet")
    from convprop import Conv, Input, Network, Subsample

    net = Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    return io_mod.save_model(net, tmp_path / "good.npz")


def _rewrite_npz(good: Path, out: Path, replace: dict[str, bytes]) -> Path:
    """Copy the archive ``good`` to ``out`` with some members' raw bytes replaced/added."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            key = info.filename[:-4]
            dst.writestr(info.filename, replace.pop(key) if key in replace else src.read(info))
        for key, blob in replace.items():
            dst.writestr(key + ".npy", blob)
    return out


def _crafted_npz(tmp_path: Path, marker: Path) -> dict[str, Path]:
    good = _model_file(tmp_path)
    obj = _npy_with_object_array(marker)
    files = {
        "object array as a parameter": _rewrite_npz(good, tmp_path / "param.npz", {"param/output.bias": obj}),
        "object array as the metadata": _rewrite_npz(good, tmp_path / "meta.npz", {"meta": obj}),
        "extra object member": _rewrite_npz(good, tmp_path / "extra.npz", {"evil": obj}),
        "raw pickle as a member": _rewrite_npz(good, tmp_path / "raw.npz", {"meta": _pickle_bytes(marker)}),
        "a pickle named .npz": tmp_path / "pickle.npz",
        "a pickled .npy named .npz": tmp_path / "npy.npz",
    }
    files["a pickle named .npz"].write_bytes(_pickle_bytes(marker))
    files["a pickled .npy named .npz"].write_bytes(obj)
    return files


@pytest.mark.parametrize("loader", ["load_model", "load_checkpoint"])
def test_model_and_checkpoint_loaders_refuse_pickles(tmp_path, loader):
    marker = tmp_path / "PWNED"
    import convprop as io_mod  # load_model, load_checkpoint
    for case, path in _crafted_npz(tmp_path, marker).items():
        with pytest.raises(ConvpropError) as info:
            getattr(io_mod, loader)(path)
        text = str(info.value)
        assert str(path) in text and "\n" not in text, case
        assert re.search(r"pickle|not a \.npz|not a \.npy|plain|numeric|not a convprop", text), (case, text)
        assert not marker.exists(), f"{case}: the pickle ran"


def test_cli_refuses_pickled_model(tmp_path, capsys):
    cli = pytest.importorskip("convprop.cli", reason="convprop.cli (branch cli) not merged yet")
    from PIL import Image

    marker = tmp_path / "PWNED"
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    for case, path in _crafted_npz(tmp_path, marker).items():
        code = cli.main(["predict", str(path), str(image)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and str(path) in err, (case, code, err)
    assert not marker.exists()


def test_mat_readers_refuse_pickles(tmp_path):
    from convprop.datasets import read_mat

    marker = tmp_path / "PWNED"
    p = tmp_path / "net.mat"
    for blob in (_pickle_bytes(marker), _npy_with_object_array(marker)):
        p.write_bytes(blob)
        with pytest.raises(ConvpropError, match="not a MATLAB .mat file|corrupt"):
            read_mat(p)
        try:
            from convprop.formats.matlab import load_mat
        except ImportError:
            continue
        with pytest.raises(ConvpropError, match="not a readable MATLAB .mat file"):
            load_mat(p)
    assert not marker.exists()


def test_mat_function_handles_and_opaque_objects_refused(tmp_path):
    """A .mat file can hold MATLAB function handles and opaque objects: never decoded."""
    import struct

    from convprop.datasets import read_mat

    def el(mtype, data):
        return struct.pack("<II", mtype, len(data)) + data + b"\0" * (-len(data) % 8)

    for cls, words in ((16, "function handle"), (17, "opaque object")):
        sub = el(6, struct.pack("<II", cls, 0)) + el(5, struct.pack("<2i", 1, 1)) + el(1, b"f")
        blob = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + b"\x00\x01IM" + struct.pack("<II", 14, len(sub)) + sub
        p = tmp_path / "f.mat"
        p.write_bytes(blob)
        with pytest.raises(ConvpropError, match=words):
            read_mat(p)


def test_idx_and_image_readers_refuse_pickles(tmp_path):
    from convprop.datasets import read_idx

    marker = tmp_path / "PWNED"
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(_pickle_bytes(marker))
    with pytest.raises(ConvpropError, match="not an IDX file"):
        read_idx(p)
    from convprop.datasets.images import read_image
    q = tmp_path / "digit.png"
    q.write_bytes(_pickle_bytes(marker))
    with pytest.raises(ConvpropError, match="not an image file"):
        read_image(q, (28, 28, 1), False)
    assert not marker.exists()


def test_no_pickle_in_the_source():
    """No module of the library can unpickle: no pickle import, no allow_pickle=True, no torch.load."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern in (r"^\s*import pickle", r"^\s*from pickle", r"allow_pickle\s*=\s*True",
                        r"\btorch\.load\(", r"\bpickle\.loads?\(", r"\bjoblib\b", r"\bdill\b",
                        r"\beval\(", r"\bexec\("):
            if re.search(pattern, text, re.M):
                offenders.append(f"{path.relative_to(SRC)}: {pattern}")
    assert not offenders, offenders
    for path in SRC.rglob("*.py"):  # every np.load says allow_pickle=False
        for call in re.findall(r"np\.load\([^)]*\)", path.read_text()):
            assert "allow_pickle=False" in call, f"{path.name}: {call}"
