"""Tiny event-dataset files for the tests, written with struct.pack straight
from each format's description (never with flashsnn's decoders). The test
folder is on sys.path."""

import os
import struct

import numpy as np


def write(path, payload: bytes):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(payload)
    return str(path)


# N-MNIST: x byte, y byte, then 24 bits: polarity (bit 23) and timestamp (bits 22..0).
def nmnist_record(x, y, p, t):
    return bytes([x, y]) + ((p << 23) | t).to_bytes(3, "big")


def nmnist_bytes(rows):
    return b"".join(nmnist_record(*r) for r in rows)


# AEDAT 3.1
AEDAT31_HEADER = (b"#!AER-DAT3.1\r\n"
                  b"#Format: RAW\r\n"
                  b"#Source 1: DVS128\r\n"
                  b"# a comment line # with hashes\r\n"
                  b"#Start-Time: 2017-04-19 12:00:00\r\n"
                  b"#!END-HEADER\r\n")


def polarity_word(x, y, p, valid=1):
    return (x << 17) | (y << 2) | (p << 1) | valid


def packet(kind, payload_events, overflow=0, size=8, tsoffset=4, capacity=None,
           number=None, source=1, pad=b""):
    """28-byte header + events. ``payload_events``: (word, ts) pairs for
    polarity packets, or raw bytes for other types."""
    if isinstance(payload_events, bytes):
        body = payload_events
        count = len(body) // size
    else:
        body = b"".join(struct.pack("<Ii", w, ts) for w, ts in payload_events)
        count = len(payload_events)
    number = count if number is None else number
    capacity = count if capacity is None else capacity
    valid = number
    head = struct.pack("<hhiiiiii", kind, source, size, tsoffset, overflow, capacity, number,
                       valid)
    return head + body + pad


# CIFAR10-DVS AEDAT 2.0 (jAER): big-endian uint32 address, uint32 timestamp.
AEDAT2_HEADER = (b"#!AER-DAT2.0\r\n"
                 b"# This is a raw AE data file - do not edit\r\n"
                 b"# Data format is int32 address, int32 timestamp (8 bytes total)\r\n"
                 b"# created Mon Jan 01 00:00:00 CET 2017\r\n")


def aedat2_bytes(records):
    return AEDAT2_HEADER + b"".join(struct.pack(">II", a, t) for a, t in records)


# HDF5
def write_shd(path, times, units, labels):
    import h5py
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (a, b) in enumerate(zip(times, units)):
            t[i] = np.asarray(a, dtype=np.float32)
            u[i] = np.asarray(b, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"d%d" % i for i in range(20)]))
    return str(path)


def write_ntidigits(path, splits):
    """``splits``: {"train": {name: (times_s, channels)}, "test": {...}}."""
    import h5py
    with h5py.File(path, "w") as f:
        for split, samples in splits.items():
            f.create_dataset(f"{split}_labels", data=np.array([n.encode() for n in samples]))
            a, t = f.create_group(f"{split}_addresses"), f.create_group(f"{split}_timestamps")
            for name, (times, chans) in samples.items():
                t.create_dataset(name, data=np.asarray(times, dtype=np.float64))
                a.create_dataset(name, data=np.asarray(chans, dtype=np.uint8))
    return str(path)
