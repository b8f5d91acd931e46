"""Datasets: IDX files, MNIST and Fashion-MNIST (local, cached or downloaded), .mat files, own images.

=====================  ==========================================================
``read_idx``           IDX file (raw or .gz) → ndarray, fully validated
``write_idx``          ndarray → IDX file (``.gz`` name → compressed), atomic
``load_mnist``         (images (N, 28, 28) uint8, labels (N,) uint8)
``load_fashion_mnist`` same for Fashion-MNIST
``load_dataset``       either, by name
``images_to_float``    pixels / 255 in a float dtype
``read_mat``           scipy.io.loadmat with every failure a ConvpropError
``load_mnist_mat``     the toolbox's mnist_uint8.mat (train_x N×784, train_y N×10, …)
``cache_dir``          where downloads go
``load_image_folder``  your own images: class folders or a CSV of path,label
=====================  ==========================================================
"""

from .catalog import DATASETS, SPLITS
from .load import images_to_float, load_dataset, load_fashion_mnist, load_mnist
from ..formats.idx import read_idx, write_idx
from .locate import cache_dir
from .folder import ImageFolder, load_image_folder
from ..formats.mat import load_mnist_mat, mnist_mat_images, read_mat

__all__ = [
    "read_idx",
    "write_idx",
    "load_dataset",
    "load_mnist",
    "load_fashion_mnist",
    "images_to_float",
    "read_mat",
    "load_mnist_mat",
    "mnist_mat_images",
    "cache_dir",
    "load_image_folder",
    "ImageFolder",
    "DATASETS",
    "SPLITS",
]
