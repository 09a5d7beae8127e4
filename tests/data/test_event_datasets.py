"""load_events and EventDataset on tiny dataset folders the tests write: the
layouts, labels, splits, lazy reading, batches, and the errors for a wrong
folder."""

import os

import numpy as np
import pytest

import flashsnn.data.events as ev
import flashsnn.data.frames as fr
from event_files import (AEDAT31_HEADER, aedat2_bytes, nmnist_bytes, packet, polarity_word,
                         write, write_ntidigits, write_shd)


def nmnist_folder(root):
    rows = {("Train", 0, "00001"): [(1, 1, 1, 0), (2, 1, 0, 500), (3, 1, 1, 1000)],
            ("Train", 3, "00002"): [(10, 10, 0, 7), (10, 11, 1, 8), (30, 30, 1, 20_000)],
            ("Train", 3, "00003"): [(0, 0, 0, 0)],
            ("Test", 9, "00004"): [(33, 33, 1, 100), (33, 32, 0, 200)]}
    for (split, digit, name), r in rows.items():
        write(os.path.join(root, split, str(digit), name + ".bin"), nmnist_bytes(r))
    os.makedirs(os.path.join(root, "Train", "notes"))          # not a digit: ignored
    return rows


def test_nmnist_layout_labels_and_lazy_reading(tmp_path):
    rows = nmnist_folder(str(tmp_path))
    d = fr.load_events("nmnist", tmp_path)
    assert repr(d) == "EventDataset('nmnist', train=3, test=1, sensor_size=(34, 34, 2), classes=10)"
    assert len(d) == 4 and d.labels("train").tolist() == [0, 3, 3]
    assert d.labels("test").dtype == np.int32
    assert all(callable(src) for src, _ in d.train)               # nothing read yet
    assert d.events("train", 1)["t"].tolist() == [7, 8, 20_000]
    assert d.events("test", 0)["x"].tolist() == [33, 33]
    assert len(rows) == 4


def test_batches_shapes_order_shuffle_and_denoise(tmp_path):
    nmnist_folder(str(tmp_path))
    d = fr.load_events("nmnist", tmp_path)
    got = list(d.batches("train", 2, steps=4))
    assert [(x.shape, x.dtype, y.tolist()) for x, y in got] == [
        ((4, 2, 34, 34, 2), np.float32, [0, 3]), ((4, 1, 34, 34, 2), np.float32, [3])]
    x0 = got[0][0]
    for b in range(2):                          # each slot is that sample's to_frames
        assert np.array_equal(x0[:, b], fr.to_frames(d.events("train", b), (34, 34, 2), 4))
    a = [y.tolist() for _, y in d.batches("train", 1, 3, rng=np.random.default_rng(5))]
    b = [y.tolist() for _, y in d.batches("train", 1, 3, rng=np.random.default_rng(5))]
    assert a == b and sorted(sum(a, [])) == [0, 3, 3]
    (x, _), = d.batches("train", 3, 2, bin_us=1000, denoise_us=10_000)
    for i in range(3):
        want = fr.to_frames(fr.denoise(d.events("train", i), 10_000, sensor_size=(34, 34, 2)),
                            (34, 34, 2), 2, 1000)
        assert np.array_equal(x[:, i], want)
    assert x[:, 0].sum() == 2 and x[:, 1].sum() == 1       # isolated events dropped
    assert np.array_equal(d.frames("train", 1, 2, 1000, denoise_us=10_000), x[:, 1])
    (xb, _), = d.batches("train", 3, 1, binary=True)
    assert xb.max() == 1.0
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'; got 'val'"):
        next(d.batches("val", 2, 4))
    with pytest.raises(ValueError, match=r"^\[EventDataset\.batches\] batch_size must be a "
                                         r"positive int; got 0"):
        next(d.batches("train", 0, 4))


def test_preload_and_limit(tmp_path):
    nmnist_folder(str(tmp_path))
    d = fr.load_events("nmnist", tmp_path).limit(train=2)
    assert (len(d.train), len(d.test)) == (2, 1)
    d.preload()
    assert all(isinstance(src, np.ndarray) for src, _ in d.train + d.test)
    assert d.events("train", 1)["t"].tolist() == [7, 8, 20_000]


def test_nmnist_wrong_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^\[load_events\] no such directory: .*nope "
                                                r"\(pass the folder that holds Train/<digit>"):
        fr.load_events("nmnist", tmp_path / "nope")
    os.makedirs(tmp_path / "Train" / "0")
    with pytest.raises(FileNotFoundError, match=r"is not an N-MNIST folder: it lacks Test/ "
                                                r"\(expected Train/<digit>/\*\.bin and "
                                                r"Test/<digit>/\*\.bin, digits 0-9\)"):
        fr.load_events("nmnist", tmp_path)
    os.makedirs(tmp_path / "Test")
    with pytest.raises(FileNotFoundError, match=r"Train holds no <digit>/\*\.bin files"):
        fr.load_events("nmnist", tmp_path)


def gesture_folder(root):
    def rec(name, events, labels):
        pk = packet(1, [(polarity_word(x, y, p), t) for t, x, y, p in events])
        write(os.path.join(root, name + ".aedat"), AEDAT31_HEADER + pk)
        write(os.path.join(root, name + "_labels.csv"),
              ("class,startTime_usec,endTime_usec\n" +
               "".join(f"{c},{s},{e}\n" for c, s, e in labels)).encode())
    rec("user01_fluorescent", [(5, 1, 1, 1), (10, 2, 2, 0), (15, 3, 3, 1), (20, 4, 4, 0),
                               (30, 127, 127, 1)],
        [(1, 10, 20), (11, 15, 31)])
    rec("user24_led", [(100, 9, 9, 1), (200, 8, 8, 0)], [(6, 100, 201)])
    write(os.path.join(root, "trials_to_train.txt"), b"user01_fluorescent.aedat\n")
    write(os.path.join(root, "trials_to_test.txt"), b"user24_led.aedat\n\n")


def test_dvs_gesture_cuts_recordings_into_labelled_samples(tmp_path):
    gesture_folder(str(tmp_path))
    d = fr.load_events("dvs_gesture", tmp_path)
    assert (d.sensor_size, d.num_classes) == ((128, 128, 2), 11)
    assert d.labels("train").tolist() == [0, 10] and d.labels("test").tolist() == [5]
    assert d.events("train", 0)["t"].tolist() == [10, 15]                 # 10 <= t < 20
    assert d.events("train", 1)["x"].tolist() == [3, 4, 127]              # 15 <= t < 31
    assert d.events("test", 0)["t"].tolist() == [100, 200]
    (x, y), = d.batches("train", 2, steps=2)
    assert x.shape == (2, 2, 128, 128, 2) and y.tolist() == [0, 10]
    assert "user01_fluorescent.aedat" in repr(d.train[0][0])


def test_dvs_gesture_wrong_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a DVS Gesture folder: it lacks "
                                                r"trials_to_train\.txt and trials_to_test\.txt "
                                                r"\(expected trials_to_train\.txt, "
                                                r"trials_to_test\.txt and the user\*_\*\.aedat"):
        fr.load_events("dvs_gesture", tmp_path)
    gesture_folder(str(tmp_path))
    os.remove(tmp_path / "user24_led_labels.csv")
    with pytest.raises(FileNotFoundError, match=r"trials_to_test\.txt lists user24_led\.aedat "
                                                r"but .* lacks user24_led_labels\.csv"):
        fr.load_events("dvs_gesture", tmp_path)


def cifar_folder(root, per_class=3):
    for k, c in enumerate(ev.CIFAR10_CLASSES):
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            write(os.path.join(root, c, f"cifar10_{c}_{i}.aedat"),
                  aedat2_bytes([(0x0102 + 2 * k, 10 * i), (0x0203, 10 * i + 5)]))
    write(os.path.join(root, "airplane", "readme.txt"), b"not a recording")


def test_cifar10_dvs_seeded_split(tmp_path):
    cifar_folder(str(tmp_path))
    d = fr.load_events("cifar10_dvs", tmp_path)
    assert (len(d.train), len(d.test), d.num_classes) == (27, 3, 10)
    paths = lambda s: [src.path for src, _ in s]                          # noqa: E731
    assert not set(paths(d.train)) & set(paths(d.test))
    again = fr.load_events("cifar10_dvs", tmp_path)
    assert paths(again.test) == paths(d.test)
    other = fr.load_events("cifar10_dvs", tmp_path, split_seed=1)
    assert paths(other.test) != paths(d.test)
    half = fr.load_events("cifar10_dvs", tmp_path, test_fraction=0.5)
    assert (len(half.train), len(half.test)) == (15, 15)
    for src, label in d.train + d.test:                                   # label = class folder
        assert os.path.basename(os.path.dirname(src.path)) == ev.CIFAR10_CLASSES[label]
        assert src()["x"].tolist() == [127 - (1 + label) % 128, 126]


def test_cifar10_dvs_wrong_folders(tmp_path):
    os.makedirs(tmp_path / "airplane")
    os.makedirs(tmp_path / "truck")
    with pytest.raises(FileNotFoundError, match=r"is not a CIFAR10-DVS folder: it lacks "
                                                r"automobile/, bird/, .*ship/ \(expected one "
                                                r"folder per class"):
        fr.load_events("cifar10_dvs", tmp_path)
    cifar_folder(str(tmp_path), per_class=0)
    with pytest.raises(FileNotFoundError, match=r"found 0 \.aedat files in the class folders"):
        fr.load_events("cifar10_dvs", tmp_path)
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\); got 1\.0"):
        fr.load_events("cifar10_dvs", tmp_path, test_fraction=1.0)


def test_shd_folder(tmp_path):
    write_shd(tmp_path / "shd_train.h5", [[0.001, 0.002], [0.5]], [[1, 699], [3]], [4, 19])
    write_shd(tmp_path / "shd_test.h5", [[0.25]], [[0]], [7])
    d = fr.load_events("shd", tmp_path)
    assert repr(d) == "EventDataset('shd', train=2, test=1, sensor_size=(1, 700, 1), classes=20)"
    assert d.labels("train").tolist() == [4, 19]
    assert d.events("train", 0)["x"].tolist() == [1, 699]
    (x, y), = d.batches("train", 2, steps=2)
    assert x.shape == (2, 2, 1, 700, 1) and x[0, 0, 0, 1, 0] == 1 and x[1, 0, 0, 699, 0] == 1


def test_shd_wrong_folder_says_decompress(tmp_path):
    write(tmp_path / "shd_train.h5.gz", b"\x1f\x8b")
    with pytest.raises(FileNotFoundError, match=r"is not an SHD folder: it lacks "
                                                r"shd_train\.h5 \(shd_train\.h5\.gz is there: decompress it "
                                                r"first\) \(expected shd_train\.h5, shd_test\.h5\)"):
        fr.load_events("shd", tmp_path)


def test_ntidigits_folder_keeps_single_digits(tmp_path):
    write_ntidigits(tmp_path / "n-tidigits.hdf5", {
        "train": {"ae-o": ([0.001], [5]), "ae-12": ([0.002], [6]), "bc-z": ([0.003], [63])},
        "test": {"cd-9": ([0.5, 0.75], [0, 1])}})
    d = fr.load_events("ntidigits", tmp_path)
    assert (d.sensor_size, d.num_classes) == ((1, 64, 1), 11)
    assert d.labels("train").tolist() == [0, 10] and d.labels("test").tolist() == [9]
    assert d.events("train", 1)["x"].tolist() == [63]
    assert d.events("test", 0)["t"].tolist() == [500_000, 750_000]
    with pytest.raises(FileNotFoundError, match=r"is not an N-TIDIGITS folder: it lacks "
                                                r"n-tidigits\.hdf5"):
        fr.load_events("ntidigits", tmp_path / "..")


def test_load_events_names_and_options(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; valid: 'nmnist', "
                                         r"'dvs_gesture', 'cifar10_dvs', 'shd', 'ntidigits'"):
        fr.load_events("mnist", tmp_path)
    with pytest.raises(ValueError, match=r"'nmnist' takes no option 'split_seed'; valid: none"):
        fr.load_events("nmnist", tmp_path, split_seed=1)
    with pytest.raises(ValueError, match=r"'cifar10_dvs' takes no option 'seed'; valid: "
                                         r"test_fraction, split_seed"):
        fr.load_events("cifar10_dvs", tmp_path, seed=1)


def test_docstring_examples():
    import doctest
    assert doctest.testmod(fr).failed == 0


def test_docs_events_md_python_blocks_run():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/events.md block {i}", "exec"), {})
