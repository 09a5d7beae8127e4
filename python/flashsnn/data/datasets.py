"""The training command's data: scikit-learn's bundled 8x8 digits (no
download) and MNIST from IDX files the user already has. Features come
flattened to ``[N, D]`` float32 in [0, 1], labels ``[N]`` int32."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .idx import read_idx

NAMES = ("digits", "mnist")

# Candidate file names per split, first match wins: the original distribution
# (train-images-idx3-ubyte[.gz]) and the dotted spelling some mirrors use.
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass
class Dataset:
    """A train/test split. ``x_*``: ``[N, D]`` float32 in [0, 1];
    ``y_*``: ``[N]`` int32 class indices; ``image_shape``: (H, W)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    num_classes: int = 10

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def limit(self, train: int | None = None, test: int | None = None) -> "Dataset":
        """The first ``train`` / ``test`` samples (None keeps all)."""
        return Dataset(self.name, self.x_train[:train], self.y_train[:train],
                       self.x_test[:test], self.y_test[:test], self.image_shape,
                       self.num_classes)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"features={self.num_features}, classes={self.num_classes})")


def load_digits(*, test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, bundled with scikit-learn),
    split into train and test with a fixed, seeded, stratified split.

    Args:
        test_fraction: share of the 1797 images held out (0.2: 360 test,
            1437 train).
        split_seed: the split's seed. It is separate from the training
            seed, so every run tests on the same images.

    >>> import flashsnn as fs
    >>> d = fs.data.load_digits()
    >>> d.x_train.shape, d.x_test.shape, float(d.x_train.max())
    ((1437, 64), (360, 64), 1.0)
    """
    op = "load_digits"
    if not 0 < test_fraction < 1:
        raise ValueError(f"[{op}] test_fraction must lie in (0, 1); got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError(f"[{op}] needs scikit-learn: pip install 'flashsnn[train]' "
                          "(or pip install scikit-learn)") from None
    d = _load()
    x = (d.data / 16.0).astype(np.float32)        # pixel values are 0..16
    y = d.target.astype(np.int32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction,
                                          random_state=split_seed, stratify=y)
    return Dataset("digits", xtr, ytr, xte, yte, (8, 8))


def _find(path: str, names: tuple) -> str | None:
    for n in names:
        for cand in (n, n + ".gz"):
            p = os.path.join(path, cand)
            if os.path.isfile(p):
                return p
    return None


def load_mnist(path: str | os.PathLike) -> Dataset:
    """MNIST (or any 10-class dataset in MNIST's IDX layout, such as
    Fashion-MNIST) from a folder the user already has; nothing is downloaded.

    The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly
    gzipped (``.gz``); ``train-images.idx3-ubyte`` spellings work too.

    Raises:
        FileNotFoundError: the folder or a file is missing (the message lists
            the names looked for).
        ValueError: a malformed file (see :func:`read_idx`), images that are
            not ``[N, H, W]`` uint8, labels that are not ``[N]`` uint8 in
            0..9, or image and label counts that differ.
    """
    op = "load_mnist"
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"[{op}] no such directory: {path} (pass the folder that holds "
                                "the four MNIST IDX files)")
    found = {k: _find(path, v) for k, v in MNIST_FILES.items()}
    missing = [" or ".join(f"{n}[.gz]" for n in MNIST_FILES[k]) for k, p in found.items()
               if p is None]
    if missing:
        raise FileNotFoundError(f"[{op}] {path} lacks " + "; ".join(missing))
    splits = {}
    for split in ("train", "test"):
        ip, lp = found[f"{split}_images"], found[f"{split}_labels"]
        images, labels = read_idx(ip), read_idx(lp)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"[{op}] {ip}: images must be [N, H, W] uint8; got shape "
                             f"{images.shape} {images.dtype}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(f"[{op}] {lp}: labels must be [N] uint8; got shape "
                             f"{labels.shape} {labels.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"[{op}] mismatched counts in the {split} split: "
                             f"{images.shape[0]} images ({ip}) but {labels.shape[0]} labels "
                             f"({lp})")
        if labels.size and labels.max() > 9:
            raise ValueError(f"[{op}] {lp}: labels must be 0..9 (10 classes); found "
                             f"{int(labels.max())}")
        splits[split] = (images.reshape(images.shape[0], -1).astype(np.float32) / 255.0,
                         labels.astype(np.int32), images.shape[1:])
    (xtr, ytr, shape), (xte, yte, shape_te) = splits["train"], splits["test"]
    if shape != shape_te:
        raise ValueError(f"[{op}] train images are {shape} but test images are {shape_te}")
    return Dataset("mnist", xtr, ytr, xte, yte, tuple(shape))


def load(name: str, path: str | os.PathLike | None = None) -> Dataset:
    """``load("digits")`` or ``load("mnist", path)``."""
    if name == "digits":
        if path is not None:
            raise ValueError("[load] path is only used with 'mnist'; the digits ship with "
                             "scikit-learn")
        return load_digits()
    if name == "mnist":
        if path is None:
            raise ValueError("[load] 'mnist' needs path: the folder with the IDX files")
        return load_mnist(path)
    raise ValueError(f"[load] unknown dataset {name!r}; valid: "
                     + ", ".join(repr(n) for n in NAMES))


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *,
            rng: np.random.Generator | None = None):
    """Yield ``(x_batch, y_batch)`` NumPy slices; shuffled with ``rng`` when
    given, in order otherwise. The last batch may be smaller.

    >>> import numpy as np, flashsnn as fs
    >>> [len(b) for b, _ in fs.data.batches(np.zeros((5, 2)), np.zeros(5), 2)]
    [2, 2, 1]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"[batches] batch_size must be a positive int; got {batch_size!r}")
    n = len(y)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]
