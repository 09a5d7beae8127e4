"""Tiny MNIST-layout IDX files for the tests (the test folder is on sys.path)."""

import gzip
import os
import struct

import numpy as np

import flashsnn as fs


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    return struct.pack(">BBBB", 0, 0, code, arr.ndim) + \
        b"".join(struct.pack(">I", n) for n in arr.shape) + arr.astype(arr.dtype).tobytes()


def write(path, payload: bytes, gz: bool = False):
    if gz:
        payload = gzip.compress(payload)
        path = path + ".gz"
    with open(path, "wb") as f:
        f.write(payload)
    return path


def make_mnist(folder, n_train=12, n_test=5, gz=False, names=None, hw=(28, 28)):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, *hw), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, *hw), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    names = names or {k: v[0] for k, v in fs.data.MNIST_FILES.items()}
    for k, a in arrays.items():
        write(os.path.join(folder, names[k]), idx_bytes(a), gz)
    return arrays
