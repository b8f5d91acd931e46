"""Bounded memory and time for every input (issue 15, classes 1, 2, 4 and 5).

Each hostile file is opened in a child process under an address-space limit (RLIMIT_AS), so
that an allocation the file merely claims shows up as a MemoryError instead of passing unseen;
the time each takes is bounded too. The files come from the fuzzers' own generators
(fuzz/generators.py).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from convprop import Conv, Dense, Input, MaxPool, Network, Subsample
from convprop.engine.network import plan_network
from convprop.errors import ConvpropError
from convprop.formats._npz import read_npy
from convprop.formats.idx import read_idx
from convprop.formats.mat import read_mat
from convprop.formats.model import load_model, save_model

from limits import run_limited

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import generators  # noqa: E402

#: Address space for the children: the interpreter with NumPy and SciPy takes about 150 MiB.
AS_MB = 700


def refused_quickly(body: str, words: str, seconds: float = 5.0, as_mb: int = AS_MB) -> dict:
    out = run_limited(body, as_mb=as_mb, setup="from convprop.errors import ConvpropError")
    assert out.get("error") == "ConvpropError", out
    assert not out["memory_error_inside"], out
    assert words in out["message"] and "\n" not in out["message"], out
    assert out["seconds"] < seconds, out
    return out


# ------------------------------------------------------------ class 1: claimed sizes


@pytest.mark.parametrize("size", [6000, 100_000])
def test_mat_inputsize_is_checked_before_building(tmp_path, size):
    """A 2-kB toolbox struct claiming size×size images (6 GB and 30 s on main; 559 GiB at 10⁵)."""
    path = tmp_path / "big.mat"
    path.write_bytes(generators._toolbox_struct(size, size, 2, 5, 8))
    assert path.stat().st_size < 4096
    refused_quickly(f"from convprop.formats.matlab import load_mat; load_mat({str(path)!r})", "ffW is 2×8")


def _forged_model(tmp_path, **changes) -> Path:
    net = Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    save_model(net, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = tmp_path / "forged.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"layers": "100000f-100000f"}, "describes a network of 10004100003 parameters"),  # raw MemoryError in Dense.build on main
    ({"layers": "100000f-100000f-100000f", "input_shape": [1000000, 1000000, 3]}, "describes a network of"),
    ({"input_shape": [1000000, 1000000, 1]}, "describes a network of"),
    ({"n_outputs": 10**12}, "describes a network of"),
    ({"layers": "2c3-s3"}, "size must be integer"),  # layers that do not fit: no longer skips the guard
])
def test_model_sizes_are_checked_before_building(tmp_path, changes, words):
    path = _forged_model(tmp_path, **changes)
    refused_quickly(f"from convprop.formats.model import load_model; load_model({str(path)!r})", words)


def test_npz_metadata_member_is_capped_before_reading(tmp_path):
    """A 1-MB archive whose deflated metadata is 1 GiB: refused from its header (3.2 GB on main)."""
    path = tmp_path / "meta.npz"
    path.write_bytes(generators._zip_with_zero_meta(1024))
    assert path.stat().st_size < 2 << 20
    refused_quickly(f"from convprop.formats.model import load_model; load_model({str(path)!r})",
                    "more than the 4194304 accepted", seconds=2)


def test_gzip_idx_is_capped_and_read_in_one_copy(tmp_path):
    """1 GiB of zeros in a 1-MB gzip IDX: refused over a cap at once; within the cap, read with a
    peak of the array's size plus a constant (10 GB on main through the dataset loader)."""
    path = tmp_path / "zeros.idx.gz"
    path.write_bytes(generators.idx(bytes([0, 3, 9, 0])))  # uint8, 3 dims, 1024 MiB, header = payload
    assert path.stat().st_size < 2 << 20
    refused_quickly(f"from convprop.formats.idx import read_idx; read_idx({str(path)!r}, max_bytes=64 << 20)",
                    "more than the 67108864 read at most", seconds=1)
    out = run_limited(f"from convprop.formats.idx import read_idx; a = read_idx({str(path)!r}); "
                      "extra = {'nbytes': a.nbytes}", as_mb=1024 + 400, timeout=120)
    assert out.get("ok"), out
    assert out["nbytes"] == 1 << 30
    assert out["maxrss_mb"] < 1024 + 200, out


def test_dataset_loader_refuses_more_than_the_catalogued_files(tmp_path):
    from convprop.datasets import load_dataset, write_idx

    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((60_001, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(60_001, np.uint8))
    with pytest.raises(ConvpropError, match="more than the 47040016 read at most"):
        load_dataset("mnist", "train", path=tmp_path)


@pytest.mark.parametrize("layers, shape", [
    ([Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], (28, 28, 1)),
    ([Conv(4, (3, 2), "relu", padding="same", stride=2), MaxPool(2, crop=True), Dense(7)], (13, 11, 3)),
    ([Dense(5), Dense(3, "tanh")], (4, 4, 2)),
    ([Conv(3, 3, padding=2), MaxPool(3)], (7, 7, 1)),
])
def test_layer_plans_agree_with_the_built_network(layers, shape):
    plan = plan_network([Input(*shape), *layers], 4)
    net = Network([Input(*shape), *layers], 4, seed=0)
    assert plan.params == sum(p.size for p in net.parameters().values())
    assert plan.map_shape == net.map_shape
    for layer in net.layers:
        assert layer.plan(layer.in_shape or layer.out_shape, "x").out_shape == layer.out_shape


# ------------------------------------------------------------ class 2: MATLAB cell arrays


@pytest.mark.parametrize("call", [
    "from convprop.formats.mat import read_mat; read_mat({p!r})",
    "from convprop.formats.matlab import load_mat; load_mat({p!r})",
    "from convprop.cli import main; import sys; sys.exit(main(['explain', '--input', {p!r}, '--no-gradcheck']))",
])
def test_cell_array_of_empties_is_refused_quickly(tmp_path, call):
    """2²² empty matrices compressed into 9 kB (scipy: minutes and gigabytes for such files)."""
    path = tmp_path / "cell.mat"
    path.write_bytes(generators._compressed_empty_cell(1 << 22))
    assert path.stat().st_size < 64 << 10
    if "cli" in call:
        out = run_limited(call.format(p=str(path)), as_mb=AS_MB)
        assert out.get("error") == "SystemExit" and out["message"] == "2", out
        assert out["seconds"] < 5, out
    else:
        refused_quickly(call.format(p=str(path)), "more array elements than the file could hold")


def test_cell_arrays_a_file_really_holds_are_read(tmp_path):
    cell = np.empty((1, 300), dtype=object)
    for i in range(300):
        cell[0, i] = np.full((2, 2), float(i))
    scipy.io.savemat(tmp_path / "c.mat", {"c": cell}, do_compression=True)
    assert read_mat(tmp_path / "c.mat")["c"][0, 299][1, 1] == 299


# ------------------------------------------------------------ class 4: errors that were not ConvpropError


@pytest.mark.parametrize("params", [[1, 2], [None], ["conv1.weight", 3], [[1]]])
def test_non_string_parameter_names(tmp_path, params):
    path = _forged_model(tmp_path, params=params)
    with pytest.raises(ConvpropError, match="do not match"):
        load_model(path)


def test_more_than_64_dimensions(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "1, " * 65 + "), }"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    (tmp_path / "a.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                     + header.encode() + np.float64(1).tobytes())
    with pytest.raises(ConvpropError, match="65 dimensions"):
        read_npy(tmp_path / "a.npy")
    (tmp_path / "a.idx").write_bytes(bytes([0, 0, 8, 65]) + b"\0\0\0\1" * 65 + b"\7")
    with pytest.raises(ConvpropError, match="65 dimensions"):
        read_idx(tmp_path / "a.idx")
    (tmp_path / "a.mat").write_bytes(generators.mat(bytes([3, 2])))  # 65 dimensions
    with pytest.raises(ConvpropError, match="65 dimensions"):
        read_mat(tmp_path / "a.mat")


@pytest.mark.parametrize("value, words", [
    (np.array([np.zeros((2, 2)), np.ones((2, 2))], dtype=object), "cell array"),
    ({"a": np.zeros((2, 2))}, "struct"),
    ("text", "text"),
    (np.array([[1 + 2j, 3j], [1, 2]]), "complex numbers"),
])
def test_explain_input_refuses_non_images(tmp_path, capsys, value, words):
    from convprop.cli import main

    scipy.io.savemat(tmp_path / "in.mat", {"x": value})
    assert main(["explain", "--input", str(tmp_path / "in.mat"), "--var", "x", "--no-gradcheck"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "internal error" not in err, err


def test_explain_input_refuses_sparse(tmp_path, capsys):
    import scipy.sparse

    from convprop.cli import main

    scipy.io.savemat(tmp_path / "in.mat", {"x": scipy.sparse.csc_matrix(np.eye(4))})
    assert main(["explain", "--input", str(tmp_path / "in.mat"), "--var", "x", "--no-gradcheck"]) == 2
    assert "not images" in capsys.readouterr().err


# ------------------------------------------------------------ class 5: memory that grew with the input


def test_predict_proba_releases_its_maps_and_chunks_by_bytes():
    net = Network([Input(300, 300), Conv(4, 5), Subsample(4)], n_outputs=3, seed=0)
    assert net.chunk_size() * net.plan.values * 8 <= 64 << 20 < (net.chunk_size() + 1) * net.plan.values * 8
    x = np.random.default_rng(0).random((3, 300, 300))
    expected = np.stack([net.predict_proba(im) for im in x])
    np.testing.assert_allclose(net.predict_proba(x), expected, rtol=1e-12)
    assert net._maps == [] and net.o is None
    assert all(not layer._cache for layer in [*net.layers, net.output])


def test_predict_proba_memory_does_not_scale_with_image_size_times_count():
    """40 images of 1000×1000 took 4.4 GB on main (500-image chunks whatever the size), 3.7 GB kept after."""
    out = run_limited("""
        import gc
        from convprop import Conv, Input, Network, Subsample
        net = Network([Input(1000, 1000), Conv(6, 5), Subsample(2)], n_outputs=2, seed=0, dtype="float32")
        x = np.zeros((40, 1000, 1000), dtype=np.float32)  # 160 MB
        p = net.predict_proba(x)
        extra = {"kept": sum(a.nbytes for layer in net.layers for a in layer._cache.values()) + sum(m.nbytes for m in net._maps)}
    """, setup="import numpy as np", timeout=300)
    assert out.get("ok"), out
    assert out["kept"] == 0
    assert out["maxrss_mb"] < 160 + 500, out


def test_cli_predict_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Peak RSS of ``convprop predict`` on 5,000 and on 60,000 IDX images: the same within 25 MB
    (main: about 20 KB per image, i.e. +1.1 GB)."""
    from convprop.datasets import write_idx

    net = Network([Input(28, 28), Conv(2, 5), Subsample(4)], n_outputs=10, seed=0)
    save_model(net, tmp_path / "m.npz")
    rng = np.random.default_rng(0)
    peaks = []
    for n in (5_000, 60_000):
        write_idx(tmp_path / f"{n}.idx", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        out = run_limited(f"from convprop.cli import main; main(['predict', {str(tmp_path / 'm.npz')!r}, "
                          f"{str(tmp_path / f'{n}.idx')!r}, '--limit', '2'])", timeout=300)
        assert out.get("ok"), out
        peaks.append(out["maxrss_mb"])
    assert peaks[1] - peaks[0] < 25, peaks


def test_mat_variable_name_with_a_newline_gives_one_line(tmp_path):
    """Found by fuzz_mat under the new harness: the name was quoted raw into the message."""
    import struct

    body = generators._tag(9, struct.pack("<d", 1.0))  # one value where the dimensions need two
    (tmp_path / "n.mat").write_bytes(generators._mat_header() + generators._matrix(6, [1, 2], b"a\nb", body))
    with pytest.raises(ConvpropError) as info:
        read_mat(tmp_path / "n.mat")
    assert "\n" not in str(info.value) and "'a\\nb'" in str(info.value)


def test_streaming_idx_chunks_are_bounded_by_bytes(tmp_path):
    """Found by fuzz_idx under RLIMIT_AS: iter_idx read 1000 entries per chunk whatever their size,
    so 34 entries of 26 MB (a 1-MB gzip file) made one 890 MB chunk."""
    import base64

    path = tmp_path / "rows.idx.gz"
    path.write_bytes(generators.idx(base64.b64decode("R2JHgR+LR4EAFNTHAOwrOLf///b/Cw==")[1:]))
    assert path.stat().st_size < 2 << 20
    out = run_limited(f"""
        from convprop.formats.idx import iter_idx
        shape, dtype, chunks = iter_idx({str(path)!r}, 1000)
        sizes = [next(chunks).nbytes for _ in range(3)]
        chunks.close()
        extra = {{"shape": list(shape), "largest": max(sizes)}}
    """, as_mb=AS_MB, timeout=120)
    assert out.get("ok"), out
    assert out["shape"] == [34, 13095956] and out["largest"] <= 64 << 20, out
    from convprop.formats.idx import iter_idx

    with pytest.raises(ConvpropError, match="more than the 1048576 read at once"):
        iter_idx(path, 10, max_chunk_bytes=1 << 20)
