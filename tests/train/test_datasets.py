"""Data loading: the digits split, and MNIST IDX files written by the test
(plain and gzipped), with every malformed-file error."""

import os
import struct

import numpy as np
import pytest

import flashsnn as fs
from mnist_files import idx_bytes, make_mnist, write

D = fs.data


def test_digits_split_is_fixed_stratified_and_scaled():
    a, b = D.load_digits(), D.load_digits()
    assert (len(a.y_train), len(a.y_test)) == (1437, 360)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int32
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0
    assert np.bincount(a.y_test).min() >= 35                    # ~36 per class
    assert not np.array_equal(D.load_digits(split_seed=1).y_test, a.y_test)
    # no image in both splits
    tr = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in tr for r in a.x_test)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_reads_idx_files(tmp_path, gz):
    arrays = make_mnist(str(tmp_path), gz=gz)
    d = D.load_mnist(tmp_path)
    assert d.x_train.shape == (12, 784) and d.x_test.shape == (5, 784)
    np.testing.assert_allclose(d.x_train[3], arrays["train_images"][3].ravel() / 255.0)
    assert d.y_test.tolist() == arrays["test_labels"].tolist()
    assert d.image_shape == (28, 28) and d.x_train.dtype == np.float32


def test_mnist_dotted_names(tmp_path):
    names = {k: v[1] for k, v in D.MNIST_FILES.items()}
    make_mnist(str(tmp_path), names=names)
    assert len(D.load_mnist(tmp_path).y_train) == 12


def test_read_idx_other_dtypes(tmp_path):
    a = (np.arange(6).reshape(2, 3) - 3).astype(">i4")        # IDX is big-endian
    p = write(str(tmp_path / "a.idx"), idx_bytes(a, 0x0C))
    out = D.read_idx(p)
    assert out.tolist() == a.tolist() and out.dtype == np.int32


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^\[load_mnist\] no such directory: "):
        D.load_mnist(tmp_path / "nope")
    make_mnist(str(tmp_path))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError,
                       match=r"lacks t10k-labels-idx1-ubyte\[\.gz\] or t10k-labels\.idx1-ubyte"):
        D.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^\[read_idx\] no such file"):
        D.read_idx(tmp_path / "missing")


def corrupt(tmp_path, name, payload, gz=False):
    make_mnist(str(tmp_path))
    p = os.path.join(str(tmp_path), name)
    os.remove(p)
    write(p, payload, gz)


@pytest.mark.parametrize("case, match", [
    ("magic", r"wrong magic number 0x00000703"),
    ("bytes", r"wrong magic number 0x12345678"),
    ("header", r"truncated header \(needs 16 bytes for 3 dimensions, file has 10\)"),
    ("short", r"truncated data: shape \(12, 28, 28\) needs 9408 bytes, file has 9407"),
    ("long", r"1 bytes past the end of the data"),
    ("tiny", r"truncated header \(2 bytes"),
])
def test_malformed_files(tmp_path, case, match):
    imgs = np.zeros((12, 28, 28), np.uint8)
    good = idx_bytes(imgs)
    payload = {
        "magic": struct.pack(">BBBB", 0, 0, 7, 3) + good[4:],
        "bytes": b"\x12\x34\x56\x78" + good[4:],
        "header": good[:10],
        "short": good[:-1],
        "long": good + b"\x00",
        "tiny": b"\x00\x00",
    }[case]
    corrupt(tmp_path, "train-images-idx3-ubyte", payload)
    with pytest.raises(ValueError, match=r"^\[read_idx\] .*train-images-idx3-ubyte: " + match):
        D.load_mnist(tmp_path)


def test_truncated_gzip(tmp_path):
    make_mnist(str(tmp_path), gz=True)
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"^\[read_idx\] .*not a valid gzip file"):
        D.load_mnist(tmp_path)


def test_mismatched_counts_and_bad_contents(tmp_path):
    corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(ValueError, match=r"^\[load_mnist\] mismatched counts in the train split: "
                                         r"12 images .* but 11 labels"):
        D.load_mnist(tmp_path)
    corrupt(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3, 4, 26], np.uint8)))
    with pytest.raises(ValueError, match=r"labels must be 0\.\.9 \(10 classes\); found 26"):
        D.load_mnist(tmp_path)
    corrupt(tmp_path, "t10k-images-idx3-ubyte", idx_bytes(np.zeros((5, 784), np.uint8)))
    with pytest.raises(ValueError, match=r"images must be \[N, H, W\] uint8; got shape \(5, 784\)"):
        D.load_mnist(tmp_path)


def test_load_and_batches():
    with pytest.raises(ValueError, match=r"^\[load\] unknown dataset 'cifar'; valid: 'digits', "
                                         r"'mnist'"):
        D.load("cifar")
    with pytest.raises(ValueError, match=r"^\[load\] 'mnist' needs path"):
        D.load("mnist")
    x, y = np.arange(10)[:, None], np.arange(10)
    seen = np.concatenate([b for _, b in D.batches(x, y, 4, rng=np.random.default_rng(0))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    with pytest.raises(ValueError, match=r"^\[batches\] batch_size"):
        next(D.batches(x, y, 0))
