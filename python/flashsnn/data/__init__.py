"""Data for ``flashsnn train``: scikit-learn's bundled 8x8 digits (real data,
no download) with a fixed seeded split, and MNIST from IDX files the user
already has.

>>> import flashsnn as fs
>>> d = fs.data.load("digits")
>>> d
Dataset('digits', train=1437, test=360, features=64, classes=10)
"""

from .datasets import (MNIST_FILES, NAMES, Dataset, batches, load, load_digits,
                       load_mnist)
from .idx import read_idx

__all__ = ["Dataset", "load", "load_digits", "load_mnist", "read_idx", "batches",
           "NAMES", "MNIST_FILES"]
