"""Look-up order: explicit path, $CONVPROP_DATA, the user cache, the system copy, then download."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from convprop.datasets import cache_dir, load_dataset, write_idx
from convprop.datasets import catalog
from convprop.errors import ConvpropError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No CONVPROP_* variables, a home and cache under tmp_path, no system copy, no network."""
    for var in ("CONVPROP_DATA", "CONVPROP_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONVPROP_MIRRORS", "http://127.0.0.1:9/")  # the discard port: refused
    for name, spec in list(catalog.DATASETS.items()):
        monkeypatch.setitem(catalog.DATASETS, name,
                            dataclasses.replace(spec, system_dirs=(str(tmp_path / "system"),)))
    return monkeypatch


def marked_set(directory, marker, n=3):
    """Tiny test split whose first pixel is ``marker``, to tell the sources apart."""
    directory.mkdir(parents=True, exist_ok=True)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = marker
    write_idx(directory / "t10k-images-idx3-ubyte.gz", images)
    write_idx(directory / "t10k-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))


def source(name="mnist", **kwargs):
    return int(load_dataset(name, "test", progress=False, **kwargs)[0][0, 0, 0])


def test_cache_dir_precedence(clean_env, tmp_path):
    assert cache_dir() == tmp_path / "home" / ".cache" / "convprop"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "convprop"
    clean_env.setenv("CONVPROP_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_order_data_then_cache_then_system(clean_env, tmp_path):
    marked_set(tmp_path / "system", 4)
    assert source() == 4
    marked_set(tmp_path / "home" / ".cache" / "convprop" / "mnist", 3)
    assert source() == 3
    clean_env.setenv("CONVPROP_DATA", str(tmp_path / "data"))
    marked_set(tmp_path / "data", 2)  # files directly in $CONVPROP_DATA
    assert source() == 2
    marked_set(tmp_path / "data" / "mnist", 1)  # a per-dataset sub-directory wins
    assert source() == 1
    marked_set(tmp_path / "explicit", 5)
    assert source(path=tmp_path / "explicit") == 5


def test_fashion_subdirectory_spellings(clean_env, tmp_path):
    clean_env.setenv("CONVPROP_DATA", str(tmp_path / "data"))
    marked_set(tmp_path / "data" / "fashion_mnist", 7)
    assert source("fashion-mnist") == 7
    marked_set(tmp_path / "data" / "fashion-mnist", 8)
    assert source("fashion_mnist") == 8


def test_explicit_path_is_the_only_place_looked(clean_env, tmp_path):
    marked_set(tmp_path / "home" / ".cache" / "convprop" / "mnist", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvpropError, match=r"empty: no mnist test files found there \(need "
                                            r"t10k-images-idx3-ubyte.gz and t10k-labels"):
        source(path=tmp_path / "empty")
    with pytest.raises(ConvpropError, match="missing: no such directory"):
        source(path=tmp_path / "missing")


def test_nothing_found_without_download(clean_env, tmp_path):
    clean_env.setenv("CONVPROP_DATA", str(tmp_path / "data"))
    with pytest.raises(ConvpropError) as info:
        load_dataset("mnist", "test", download=False)
    text = str(info.value)
    assert "download=False" in text and "CONVPROP_DATA" in text
    for searched in [tmp_path / "data" / "mnist", tmp_path / "data",
                     tmp_path / "home" / ".cache" / "convprop" / "mnist", tmp_path / "system"]:
        assert str(searched) in text


def test_other_dataset_is_recognised(clean_env, tmp_path, shared):
    """Real MNIST labels in $CONVPROP_DATA are skipped for Fashion-MNIST, refused as a path."""
    mnist = shared / "data" / "mnist"
    d = tmp_path / "data"
    d.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (d / f"{stem}.gz").write_bytes((mnist / f"{stem}.gz").read_bytes())
    with pytest.raises(ConvpropError, match="these are mnist files, not fashion-mnist"):
        load_dataset("fashion-mnist", "test", path=d)
    clean_env.setenv("CONVPROP_DATA", str(d))
    marked_set(tmp_path / "system", 6)
    assert source("fashion-mnist") == 6  # skipped $CONVPROP_DATA's MNIST, found the system copy
    assert load_dataset("mnist", "test", download=False)[1][:5].tolist() == [7, 2, 1, 0, 4]


def test_download_refused_names_urls_and_variables(clean_env, tmp_path):
    with pytest.raises(ConvpropError) as info:
        load_dataset("mnist", "test", progress=False)
    text = str(info.value)
    assert text.startswith("mnist test files not found locally (searched: ")
    assert "and could not download mnist file t10k-images-idx3-ubyte.gz: tried " in text
    assert "http://127.0.0.1:9/t10k-images-idx3-ubyte.gz (unreachable" in text
    assert "CONVPROP_MIRRORS" in text and "CONVPROP_DATA" in text and "\n" not in text
    cache = Path(tmp_path / "home" / ".cache" / "convprop" / "mnist")
    assert list(cache.iterdir()) == []  # nothing half-written
