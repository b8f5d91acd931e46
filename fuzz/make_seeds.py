"""Write the seed corpora: small valid files for every fuzz target (nothing binary is committed).

Usage: ``python3 fuzz/make_seeds.py OUT_DIR [TARGET ...]`` writes ``OUT_DIR/<target>/seed-*``.
Targets whose loader is not in this checkout yet are skipped with a note.
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import numpy as np

import _harness  # noqa: F401  (puts src/ on sys.path)


def idx_seeds() -> dict[str, bytes]:
    from convprop.datasets import write_idx

    rng = np.random.default_rng(0)
    arrays = {
        "u8_images": rng.integers(0, 256, (3, 4, 5), dtype=np.uint8),
        "u8_labels": np.arange(7, dtype=np.uint8),
        "i8": np.array([[-1, 2], [3, -4]], dtype=np.int8),
        "i16": np.array([1, -300, 7], dtype=np.int16),
        "i32": np.array([[1 << 20, -5]], dtype=np.int32),
        "f32": rng.random((2, 3)).astype(np.float32),
        "f64": rng.random((2, 1, 2)),
        "empty": np.zeros((0, 3), dtype=np.uint8),
    }
    out = {}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in arrays.items():
            for suffix in ("", ".gz"):
                p = Path(tmp) / f"{name}.idx{suffix}"
                write_idx(p, arr)
                out[f"{name}{suffix.replace('.', '_')}"] = p.read_bytes()
    return out


def mat_seeds() -> dict[str, bytes]:
    import scipy.io
    import scipy.sparse

    variables = {
        "double": {"a": np.arange(6.0).reshape(2, 3)},
        "uint8": {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.eye(2, dtype=np.uint8)},
        "char": {"s": "hello"},
        "logical": {"b": np.array([[True, False]])},
        "complex": {"z": np.array([1 + 2j, 3 - 1j])},
        "cell": {"c": np.array([np.arange(2.0), "ab"], dtype=object)},
        "struct": {"st": {"f": np.arange(3.0), "g": "x", "h": {"k": np.float32(2)}}},
        "sparse": {"sp": scipy.sparse.csc_matrix(np.array([[0, 1.0], [2.0, 0]]))},
        "net": {"cnn": {"layers": np.array([{"type": "i"}, {"type": "c", "outputmaps": 2.0,
                                                            "kernelsize": 3.0}], dtype=object),
                        "ffW": np.ones((2, 4)), "ffb": np.zeros((2, 1))}},
    }
    out = {}
    for name, data in variables.items():
        for compress in (False, True):
            buf = io.BytesIO()
            scipy.io.savemat(buf, data, do_compression=compress)
            out[f"{name}{'_z' if compress else ''}"] = buf.getvalue()
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"a": np.arange(4.0).reshape(2, 2), "t": "txt"}, format="4")
    out["v4"] = buf.getvalue()
    try:  # a toolbox net as convprop.formats.matlab.save_mat writes it
        import tempfile

        from convprop import Conv, Input, Network, Subsample
        from convprop.formats.matlab import save_mat
    except ImportError:
        return out
    net = Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        save_mat(net, Path(tmp) / "cnn.mat")
        out["dlt_net"] = (Path(tmp) / "cnn.mat").read_bytes()
    return out


def checkpoint_seeds() -> dict[str, bytes]:
    from convprop import Conv, Input, Network, Subsample
    import convprop as cio
    import tempfile

    net = Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "model.npz"
        cio.save_model(net, p)
        out["model"] = p.read_bytes()
        if hasattr(cio, "save_checkpoint") and hasattr(cio, "TrainingState"):
            state = cio.TrainingState(epoch=1, batch=0,
                                      rng_state=np.random.default_rng(0).bit_generator.state,
                                      rL=[0.5, 0.4], L=[0.4], epoch_seconds=[0.1])
            p = Path(tmp) / "ckpt.npz"
            cio.save_checkpoint(net, p, state)
            out["checkpoint"] = p.read_bytes()
            out["checkpoint_sgd"] = p.read_bytes()
            try:  # a checkpoint with an optimiser's state (Adam: slots m and v)
                from convprop.engine.optim import make_optimizer
                from convprop import fit

                rng = np.random.default_rng(0)
                fit(net, rng.random((4, 6, 6)), np.arange(4) % 3, epochs=1, batch_size=2, seed=0,
                    optimizer=make_optimizer("adam", 0.01), checkpoint=p)
                out["checkpoint"] = p.read_bytes()
            except (ImportError, TypeError):
                out["checkpoint"] = out.pop("checkpoint_sgd")
            # Metadata alone: fuzz_checkpoint.py packs inputs starting with "J" into an archive.
            with np.load(p, allow_pickle=False) as npz:
                out["meta_json"] = b"J" + npz["meta"].tobytes()
    return out


def image_seeds() -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = {}
    for mode, shape in (("L", (4, 4)), ("RGB", (3, 5, 3)), ("RGBA", (2, 2, 4)), ("1", (8, 8))):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        im = Image.fromarray(arr[..., 0] if mode == "1" else arr, "L" if mode == "1" else mode)
        if mode == "1":
            im = im.convert("1")
        for fmt in ("PNG", "BMP", "GIF", "TIFF") if mode != "RGBA" else ("PNG",):
            buf = io.BytesIO()
            im.save(buf, format=fmt)
            out[f"{mode}_{fmt.lower()}"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8), "L").save(buf, format="JPEG")
    out["L_jpeg"] = buf.getvalue()
    return out


def generator_seeds() -> dict[str, bytes]:
    """Inputs for the targets' size-claim generators (``G`` + parameters; see generators.py)."""
    rng = np.random.default_rng(1)
    return {f"gen{k}": b"G" + rng.integers(0, 256, 24, dtype=np.uint8).tobytes() for k in range(12)}


SEEDS = {"idx": idx_seeds, "mat": mat_seeds, "checkpoint": checkpoint_seeds, "image": image_seeds}


def write_seeds(out_dir: str | Path, targets=None) -> dict[str, int]:
    """Write the seeds of ``targets`` (default: all) under ``out_dir``; return files per target."""
    counts = {}
    for target in targets or SEEDS:
        try:
            seeds = SEEDS[target]()
        except (ImportError, AttributeError) as exc:
            print(f"make_seeds: skipping {target}: {exc}", file=sys.stderr)
            continue
        folder = Path(out_dir) / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in {**seeds, **generator_seeds()}.items():
            (folder / f"seed-{name}").write_bytes(blob)
        counts[target] = len(seeds)
    return counts


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(write_seeds(sys.argv[1], sys.argv[2:] or None))
