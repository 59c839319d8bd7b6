"""Image datasets for category discovery: Fashion-MNIST (committed subset) and sklearn's 8x8 digits.

Both come back as an :class:`ImageData` with uint8 images and int64 labels, so the rest of the lab
never cares where pixels came from. Nothing here downloads: Fashion-MNIST is the committed
``data/fashion_mnist_subset.npz`` (rebuilt by ``data/build_fashion_mnist.py`` from the Debian package
``dataset-fashion-mnist``), digits ship inside scikit-learn.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

from lab.utils import LabError, check_choice, data_path

DEBIAN_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DATASETS = ("fashion_mnist", "digits")


@dataclass
class ImageData:
    name: str
    x_train: np.ndarray  # (N, H, W) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic (2 zero bytes, dtype 0x08=uint8, ndim), big-endian dims."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LabError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_fashion_mnist_full(folder: str = DEBIAN_FMNIST_DIR):
    """All 70k Fashion-MNIST images from the Debian package: (x_train, y_train, x_test, y_test)."""
    if not os.path.isdir(folder):
        raise LabError(f"full Fashion-MNIST needs the Debian package dataset-fashion-mnist ({folder} missing); "
                       "install it with `apt-get install dataset-fashion-mnist` or use the committed subset")
    get = lambda n: read_idx(os.path.join(folder, n))  # noqa: E731
    return (get("train-images-idx3-ubyte.gz"), get("train-labels-idx1-ubyte.gz").astype(np.int64),
            get("t10k-images-idx3-ubyte.gz"), get("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def load_fashion_mnist(full: bool = False) -> ImageData:
    """The committed stratified subset (600 train + 100 test per class), or all 70k when ``full``."""
    if full:
        xtr, ytr, xte, yte = read_fashion_mnist_full()
    else:
        path = data_path("fashion_mnist_subset.npz")
        if not os.path.exists(path):
            raise LabError(f"{path} missing: run `python data/build_fashion_mnist.py`")
        with np.load(path, allow_pickle=False) as z:
            xtr, ytr, xte, yte = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    return ImageData("fashion_mnist", xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), list(FMNIST_CLASSES))


def load_digits_data(seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """sklearn's 1,797 8x8 digits (pixel values 0..16 rescaled to 0..255), split stratified by a seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=test_fraction,
                                          stratify=d.target, random_state=seed)
    return ImageData("digits", xtr, ytr, xte, yte, [str(i) for i in range(10)])


def load_dataset(name: str, full: bool = False) -> ImageData:
    check_choice("dataset", name, DATASETS)
    return load_fashion_mnist(full) if name == "fashion_mnist" else load_digits_data()
