"""What each dataset is made of: file names, sizes, SHA-256 sums and public mirrors.

Checksums are of the *decompressed* IDX files, so a mirror that re-compresses the data (as the
Debian package does) still verifies. They were computed here from ``../shared/data/mnist`` and
``/usr/share/datasets/fashion-mnist`` and agree with the values published for the original files.
For MNIST the SHA-256 of the publisher's ``.gz`` files is recorded as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConvpropError

__all__ = ["FileSpec", "DatasetSpec", "DATASETS", "SPLITS", "dataset_spec", "check_split"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class FileSpec:
    """One IDX file of a dataset."""

    stem: str  #: standard name without ``.gz``, e.g. ``"train-images-idx3-ubyte"``
    size: int  #: bytes once decompressed
    sha256: str  #: SHA-256 of the decompressed file
    gz_sha256: str | None = None  #: SHA-256 of the publisher's .gz file, where known

    @property
    def gz_name(self) -> str:
        return self.stem + ".gz"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files per split and the mirrors that serve ``<mirror>/<stem>.gz``."""

    name: str
    files: dict[str, tuple[FileSpec, FileSpec]]  #: split → (images, labels)
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()  #: where a distribution package installs it
    package: str = ""  #: the Debian / Ubuntu package that installs it there


MNIST = DatasetSpec(
    name="mnist",
    files={
        "train": (
            FileSpec("train-images-idx3-ubyte", 47_040_016,
                     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            FileSpec("train-labels-idx1-ubyte", 60_008,
                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ),
        "test": (
            FileSpec("t10k-images-idx3-ubyte", 7_840_016,
                     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            FileSpec("t10k-labels-idx1-ubyte", 10_008,
                     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ),
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist",
    ),
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    files={
        "train": (
            FileSpec("train-images-idx3-ubyte", 47_040_016,
                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            FileSpec("train-labels-idx1-ubyte", 60_008,
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        ),
        "test": (
            FileSpec("t10k-images-idx3-ubyte", 7_840_016,
                     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            FileSpec("t10k-labels-idx1-ubyte", 10_008,
                     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    package="dataset-fashion-mnist",
)

DATASETS: dict[str, DatasetSpec] = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST}
_ALIASES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist"}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name`` (case-insensitive; ``fashion_mnist`` = ``fashion-mnist``)."""
    key = _ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ConvpropError(
            f"unknown dataset {name!r}: valid names are {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[key]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConvpropError(f"unknown split {split!r}: valid splits are {', '.join(SPLITS)}")
    return split
