"""The event-file readers on files the tests write from each format's
description: every decoded field checked exactly, and every malformed file
refused with its path and what is wrong."""

import sys

import numpy as np
import pytest

import flashsnn.data.events as ev
from event_files import (AEDAT2_HEADER, AEDAT31_HEADER, aedat2_bytes, nmnist_bytes, packet,
                         polarity_word, write, write_ntidigits, write_shd)


def fields(e):
    return {k: e[k].tolist() for k in ("t", "x", "y", "p")}


def test_event_dtype():
    assert ev.EVENT_DTYPE.names == ("t", "x", "y", "p")
    assert [ev.EVENT_DTYPE[k] for k in "txyp"] == [np.int64, np.int16, np.int16, np.int8]


# --------------------------------------------------------------------------- N-MNIST

def test_nmnist_every_field(tmp_path):
    rows = [(0, 0, 0, 0), (33, 1, 1, 1), (7, 33, 0, (1 << 23) - 1),   # largest timestamp
            (12, 20, 1, 0x400000), (255, 200, 1, 0x012345)]            # bit 22; bytes 0/1 full
    e = ev.read_nmnist(write(tmp_path / "00001.bin", nmnist_bytes(rows)))
    assert e.dtype == ev.EVENT_DTYPE
    assert fields(e) == {"x": [0, 33, 7, 12, 255], "y": [0, 1, 33, 20, 200], "p": [0, 1, 0, 1, 1],
                         "t": [0, 1, 8388607, 4194304, 74565]}


def test_nmnist_empty_file(tmp_path):
    assert len(ev.read_nmnist(write(tmp_path / "e.bin", b""))) == 0


def test_nmnist_overflow_marker_is_dropped_and_shifts_later_times(tmp_path):
    rows = [(1, 2, 1, 8_000_000), (0, 240, 0, 0), (3, 4, 0, 5), (0, 240, 0, 0), (5, 6, 1, 7)]
    e = ev.read_nmnist(write(tmp_path / "o.bin", nmnist_bytes(rows)))
    assert fields(e) == {"t": [8_000_000, 5 + 2**23, 7 + 2**24], "x": [1, 3, 5],
                         "y": [2, 4, 6], "p": [1, 0, 1]}


def test_nmnist_truncated_and_missing(tmp_path):
    p = write(tmp_path / "cut.bin", nmnist_bytes([(1, 2, 0, 3), (4, 5, 1, 6)])[:-3])
    with pytest.raises(ValueError, match=r"^\[read_nmnist\] .*cut\.bin: 7 bytes is not a "
                                         r"multiple of 5"):
        ev.read_nmnist(p)
    with pytest.raises(FileNotFoundError, match=r"^\[read_nmnist\] no such file: .*nope\.bin"):
        ev.read_nmnist(tmp_path / "nope.bin")


# --------------------------------------------------------------------------- AEDAT 3.1

def test_aedat31_packets_types_validity_and_overflow(tmp_path):
    first = packet(1, [(polarity_word(0, 0, 0), 10),
                       (polarity_word(127, 3, 1), 11),
                       (polarity_word(5, 6, 1, valid=0), 12),          # invalid: skipped
                       (polarity_word(32767, 32767, 0), 2**31 - 1)])   # widest x, y; ts
    frame = packet(2, bytes(range(24)), size=12, tsoffset=8)          # not polarity: skipped
    second = packet(1, [(polarity_word(9, 8, 1), 7), (polarity_word(1, 2, 0), 9)], overflow=3)
    # capacity above number: the unused slot holds garbage that must not be read
    third = packet(1, [(polarity_word(4, 4, 1), 100), (polarity_word(70, 70, 1), 555)],
                   number=1)
    empty = packet(1, [])
    e = ev.read_aedat31(write(tmp_path / "user01_led.aedat",
                              AEDAT31_HEADER + first + frame + second + empty + third))
    assert e.dtype == ev.EVENT_DTYPE
    assert fields(e) == {
        "t": [10, 11, 2**31 - 1, (3 << 31) | 7, (3 << 31) | 9, 100],
        "x": [0, 127, 32767, 9, 1, 4], "y": [0, 3, 32767, 8, 2, 4], "p": [0, 1, 0, 1, 0, 1]}


def test_aedat31_header_only(tmp_path):
    assert len(ev.read_aedat31(write(tmp_path / "h.aedat", AEDAT31_HEADER))) == 0


@pytest.mark.parametrize("payload,message", [
    (AEDAT31_HEADER.replace(b"#!END-HEADER\r\n", b"") + packet(1, [(1, 2)]),
     r"no '#!END-HEADER' line"),
    (AEDAT31_HEADER + packet(1, [(1, 2)])[:20], r"truncated packet header at byte 127 \(20 of 28"),
    (AEDAT31_HEADER + packet(1, [(1, 2), (3, 4)])[:-5],
     r"truncated packet at byte 127: 2 events of 8 bytes need 16 bytes, file has 11"),
    (AEDAT31_HEADER + packet(1, bytes(24), size=12),
     r"polarity packet at byte 127 has event size 12 and timestamp offset 4; expected 8 and 4"),
    (AEDAT31_HEADER + packet(1, [(1, 2)], number=3),
     r"packet at byte 127 has event size 8, timestamp overflow 0, capacity 1, number 3"),
    (AEDAT31_HEADER + packet(1, [(1, -5)]), r"packet at byte 127 holds a negative int32 timestamp"),
    (b"#!AER-DAT2.0\r\n#!END-HEADER\r\n", r"the header says 'AER-DAT2.0'"),
    (b"#!AER-DAT3.1\r\n#Source 1: DVS128", r"header line at byte 14 has no end of line"),
], ids=["no-end-header", "cut-header", "cut-body", "size", "number", "negative-ts", "aedat2",
        "cut-text"])
def test_aedat31_malformed(tmp_path, payload, message):
    assert len(AEDAT31_HEADER) == 127
    p = write(tmp_path / "bad.aedat", payload)
    with pytest.raises(ValueError, match=r"^\[read_aedat31\] .*bad\.aedat: " + message):
        ev.read_aedat31(p)


def test_gesture_labels_and_cut(tmp_path):
    csv = write(tmp_path / "user01_led_labels.csv",
                b"class,startTime_usec,endTime_usec\r\n1,100,200\r\n\r\n11,150,400\r\n"
                b"3,2147483648,2147483700\r\n")
    labels = ev.read_gesture_labels(csv)
    assert labels.dtype == np.int64
    assert labels.tolist() == [[1, 100, 200], [11, 150, 400], [3, 2**31, 2**31 + 52]]
    e = ev.make_events([99, 100, 150, 199, 200, 399, 400, 2**31], [1, 2, 3, 4, 5, 6, 7, 8])
    cut = ev.cut_gesture(e, labels)
    assert [(s["x"].tolist(), c) for s, c in cut] == [([2, 3, 4], 0), ([3, 4, 5, 6], 10),
                                                      ([8], 2)]


@pytest.mark.parametrize("text,message", [
    (b"label,start,end\n1,2,3\n", r"the first line must be 'class,startTime_usec,endTime_usec'"),
    (b"", r"the first line must be .*; got 'an empty file'"),
    (b"class,startTime_usec,endTime_usec\n1,2\n", r"row 2 must be three integers"),
    (b"class,startTime_usec,endTime_usec\n1,2,x\n", r"row 2 must be three integers"),
    (b"class,startTime_usec,endTime_usec\n12,2,3\n", r"row 2: class 12 is outside 1\.\.11"),
    (b"class,startTime_usec,endTime_usec\n0,2,3\n", r"row 2: class 0 is outside"),
    (b"class,startTime_usec,endTime_usec\n1,5,5\n", r"row 2: end 5 is not after start 5"),
])
def test_gesture_labels_malformed(tmp_path, text, message):
    p = write(tmp_path / "x_labels.csv", text)
    with pytest.raises(ValueError, match=r"^\[read_gesture_labels\] .*x_labels\.csv: " + message):
        ev.read_gesture_labels(p)


def test_trial_list(tmp_path):
    p = write(tmp_path / "trials_to_train.txt", b"user01_fluorescent.aedat\n\nuser02_led.aedat  \n")
    assert ev.read_trial_list(p) == ["user01_fluorescent.aedat", "user02_led.aedat"]
    bad = write(tmp_path / "trials_to_test.txt", b"user01_led.aedat\nuser01_led_labels.csv\n")
    with pytest.raises(ValueError, match=r"trials_to_test\.txt: every line must name a \.aedat "
                                         r"recording; got 'user01_led_labels\.csv'"):
        ev.read_trial_list(bad)


# --------------------------------------------------------------------------- CIFAR10-DVS

def test_cifar10dvs_fields_by_hand(tmp_path):
    # addresses written from the bit layout: bit 0 raw polarity, bits 1-7 raw x, bits 8-14 y
    records = [(0x0000, 5),            # raw x 0 -> x 127, y 0, bit0 0 -> ON
               (0x4A03, 6),            # bit0 1 -> OFF; raw x 1 -> x 126; y 0x4A = 74
               (0x7FFE, 7),            # raw x 127 -> x 0; y 127; ON
               (0x8000 | 0x0102, 8),   # bit 15: DVS128 sync event, dropped
               (0x80000000, 9),        # bit 31: jAER special event, dropped
               (0x00FF, 2**32 - 2)]    # raw x 127 -> 0, OFF; the largest timestamps
    e = ev.read_aedat2_cifar10dvs(write(tmp_path / "cifar10_cat_0.aedat", aedat2_bytes(records)))
    assert e.dtype == ev.EVENT_DTYPE
    assert fields(e) == {"t": [5, 6, 7, 2**32 - 2], "x": [127, 126, 0, 0], "y": [0, 74, 127, 0],
                         "p": [1, 0, 1, 0]}


def test_cifar10dvs_timestamp_wrap(tmp_path):
    records = [(0, 2**32 - 10), (0, 2**32 - 1), (0, 3), (0, 2), (0, 40)]
    e = ev.read_aedat2_cifar10dvs(write(tmp_path / "w.aedat", aedat2_bytes(records)))
    assert e["t"].tolist() == [2**32 - 10, 2**32 - 1, 2**32 + 3, 2**32 + 2, 2**32 + 40]


def test_cifar10dvs_header_only_and_no_header(tmp_path):
    assert len(ev.read_aedat2_cifar10dvs(write(tmp_path / "h.aedat", AEDAT2_HEADER))) == 0
    raw = aedat2_bytes([(0x0102, 1)])[len(AEDAT2_HEADER):]
    assert ev.read_aedat2_cifar10dvs(write(tmp_path / "n.aedat", raw))["y"].tolist() == [1]


@pytest.mark.parametrize("payload,message", [
    (aedat2_bytes([(1, 2), (3, 4)])[:-3], r"13 bytes after the header is not a multiple of 8"),
    (b"#!AER-DAT3.1\r\n#!END-HEADER\r\n", r"the header says 'AER-DAT3\.1'"),
    (b"#!AER-DAT4.0\r\n", r"the header says 'AER-DAT4\.0'.*AEDAT 4 re-encoding"),
])
def test_cifar10dvs_malformed(tmp_path, payload, message):
    p = write(tmp_path / "bad.aedat", payload)
    with pytest.raises(ValueError, match=r"^\[read_aedat2_cifar10dvs\] .*bad\.aedat: " + message):
        ev.read_aedat2_cifar10dvs(p)


# --------------------------------------------------------------------------- SHD, N-TIDIGITS

def test_shd_samples(tmp_path):
    p = write_shd(tmp_path / "shd_train.h5",
                  times=[[0.0, 0.0123, 0.5, 1.25], [], [0.000001]],
                  units=[[0, 699, 3, 3], [], [42]], labels=[19, 0, 7])
    out = ev.read_shd(p)
    assert [lab for _, lab in out] == [19, 0, 7]
    e = out[0][0]
    assert e.dtype == ev.EVENT_DTYPE
    # float32 seconds, rounded to the nearest µs (0.0123 in float32 is 0.012299999...)
    assert fields(e) == {"t": [0, 12300, 500000, 1250000], "x": [0, 699, 3, 3],
                         "y": [0, 0, 0, 0], "p": [0, 0, 0, 0]}
    assert len(out[1][0]) == 0 and out[2][0]["t"].tolist() == [1]
    sel = ev.read_shd(p, indices=[2])
    assert len(sel) == 1 and sel[0][1] == 7 and sel[0][0]["x"].tolist() == [42]
    with pytest.raises(IndexError, match=r"sample 3 out of range \(file has 3\)"):
        ev.read_shd(p, indices=[3])


def test_shd_malformed(tmp_path):
    import h5py
    p = str(tmp_path / "no_units.h5")
    with h5py.File(p, "w") as f:
        f.create_dataset("labels", data=np.zeros(2, np.uint8))
        f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.float32))
    with pytest.raises(ValueError, match=r"^\[read_shd\] .*no_units\.h5: lacks spikes/units "
                                         r"\(an SHD file holds spikes/times, spikes/units, labels"):
        ev.read_shd(p)
    q = write_shd(tmp_path / "ragged.h5", [[0.1, 0.2]], [[1]], [0])
    with pytest.raises(ValueError, match=r"ragged\.h5: sample 0: 2 times but 1 channel ids"):
        ev.read_shd(q)
    r = write(tmp_path / "text.h5", b"not hdf5 at all")
    with pytest.raises(ValueError, match=r"^\[read_shd\] .*text\.h5: not a readable HDF5 file"):
        ev.read_shd(r)
    with pytest.raises(FileNotFoundError, match=r"^\[read_shd\] no such file"):
        ev.read_shd(tmp_path / "gone.h5")


def test_ntidigits_samples_and_labels(tmp_path):
    p = write_ntidigits(tmp_path / "n-tidigits.hdf5", {
        "train": {"ae-o": ([0.001, 0.0025], [63, 0]), "ae-4z1": ([0.1], [5]),
                  "bc-z": ([0.2, 0.3, 0.4], [1, 2, 3])},
        "test": {"cd-7": ([0.05], [9])}})
    assert ev.ntidigits_names(p, "train") == ["ae-o", "ae-4z1", "bc-z"]
    out = ev.read_ntidigits(p, "train")
    assert [n for n, _ in out] == ["ae-o", "ae-4z1", "bc-z"]
    assert fields(out[0][1]) == {"t": [1000, 2500], "x": [63, 0], "y": [0, 0], "p": [0, 0]}
    assert ev.read_ntidigits(p, "test", ["cd-7"])[0][1]["t"].tolist() == [50000]
    assert [ev.ntidigits_label(n) for n in ("ae-o", "ae-4z1", "bc-z", "cd-7", "x-1")] == \
        [0, None, 10, 7, 1]
    with pytest.raises(ValueError, match=r"sample 'nope' lacks train_addresses/nope"):
        ev.read_ntidigits(p, "train", ["nope"])
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'; got 'valid'"):
        ev.read_ntidigits(p, "valid")
    with pytest.raises(ValueError, match=r"lacks test_labels, test_addresses, test_timestamps "
                                         r"\(an N-TIDIGITS file"):
        ev.read_ntidigits(write_shd(tmp_path / "shd.h5", [[0.1]], [[1]], [0]), "test")


def test_missing_h5py_says_how_to_install(tmp_path, monkeypatch):
    p = write_shd(tmp_path / "s.h5", [[0.1]], [[1]], [0])
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"^\[read_shd\] reading HDF5 needs h5py: pip install "
                                          r"'flashsnn\[events\]' \(or pip install h5py\)"):
        ev.read_shd(p)


def test_docstring_examples():
    import doctest
    assert doctest.testmod(ev).failed == 0
