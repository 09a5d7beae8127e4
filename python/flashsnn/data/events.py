"""Readers for the event datasets of the Mamba-Spike recipes, from files the
user already has (nothing downloads): N-MNIST ``.bin``, DVS128 Gesture AEDAT
3.1 with its label CSVs, CIFAR10-DVS AEDAT 2 (the original release), and the
HDF5 files of SHD and N-TIDIGITS.

Every reader returns events as a NumPy structured array of
:data:`EVENT_DTYPE`: ``t`` int64 microseconds, ``x``/``y`` int16 pixel
coordinates, ``p`` int8 polarity (1 = ON, 0 = OFF). The audio sets put the
channel in ``x`` with ``y = p = 0``. Bit layouts, units and the sources they
were checked against: docs/events.md.
"""

from __future__ import annotations

import csv
import os
import struct

import numpy as np

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])

# N-TIDIGITS single-digit classes as tonic's NTIDIGITS18 (the recipe's loader)
# numbers them: "o" (oh) 0, "1".."9", "z" (zero) 10.
NTIDIGITS_CLASSES = ("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z")


def make_events(t, x, y=0, p=0) -> np.ndarray:
    """Events from columns (scalars broadcast), sorted as given.

    >>> import flashsnn.data.events as ev
    >>> ev.make_events([5, 9], [1, 2], 3, [1, 0]).tolist()
    [(5, 1, 3, 1), (9, 2, 3, 0)]
    """
    t = np.asarray(t, dtype=np.int64).reshape(-1)
    out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def _read(op: str, path) -> tuple[str, bytes]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[{op}] no such file: {path}")
    with open(path, "rb") as f:
        return path, f.read()


def _text_header(op: str, path: str, raw: bytes) -> tuple[list[str], int]:
    """The ``#`` lines at the top of an AEDAT file and the offset after them."""
    lines, pos = [], 0
    while pos < len(raw) and raw[pos:pos + 1] == b"#":
        end = raw.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"[{op}] {path}: header line at byte {pos} has no end of line "
                             "(truncated file?)")
        lines.append(raw[pos:end].rstrip(b"\r").decode("latin-1"))
        pos = end + 1
    return lines, pos


# --------------------------------------------------------------------------- N-MNIST


def read_nmnist(path) -> np.ndarray:
    """One N-MNIST sample (``.bin``): 5 bytes per event, big-endian bit order.

    byte 0: x; byte 1: y; byte 2 bit 7: polarity (1 = ON); bits 22..0 of
    bytes 2-4: timestamp in µs. Records with y = 240 are the format's
    timestamp-overflow markers (the dataset authors' reader treats them so);
    they are dropped and 2**23 µs is added to every later event. The 34x34
    recordings last about 0.3 s, far below 2**23 µs = 8.4 s, so none is
    expected. Coordinates are not checked here (the same format serves other
    sensor sizes); :func:`~flashsnn.data.frames.to_frames` checks them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a size that is not a multiple of 5 bytes.
    """
    op = "read_nmnist"
    path, raw = _read(op, path)
    if len(raw) % 5:
        raise ValueError(f"[{op}] {path}: {len(raw)} bytes is not a multiple of 5 (one event "
                         f"is 5 bytes); the file is truncated or not an N-MNIST .bin")
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    t = ((b[:, 2] & 0x7F) << 16) | (b[:, 3] << 8) | b[:, 4]
    overflow = b[:, 1] == 240
    if overflow.any():
        t = t + (np.cumsum(overflow) << 23)
    keep = ~overflow
    return make_events(t[keep], b[keep, 0], b[keep, 1], b[keep, 2] >> 7)


# --------------------------------------------------------------------------- DVS128 Gesture

# type, source, event size, ts offset, ts overflow, capacity, number, valid
_PACKET = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1


def read_aedat31(path) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (DVS128 Gesture's recordings).

    Layout: ``#`` header lines up to ``#!END-HEADER``, then packets. Each has
    a 28-byte little-endian header (int16 type, int16 source, int32 event
    size, int32 timestamp offset, int32 timestamp overflow, int32 capacity,
    int32 number, int32 valid) and ``capacity * size`` bytes of events, of
    which the first ``number`` are filled (files written by cAER store
    ``capacity == number``). Polarity events (type 1, 8 bytes): uint32 data
    (bit 0 valid, bit 1 polarity, bits 2-16 y, bits 17-31 x) and int32
    timestamp; t = (overflow << 31) | timestamp µs. Other packet types and
    events whose valid bit is 0 are skipped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no ``#!END-HEADER`` line, an AEDAT version other than 3,
            a truncated packet, or a polarity packet whose sizes are wrong.
    """
    op = "read_aedat31"
    path, raw = _read(op, path)
    lines, pos = _text_header(op, path, raw)
    if lines and lines[0].startswith("#!AER-DAT") and not lines[0].startswith("#!AER-DAT3"):
        raise ValueError(f"[{op}] {path}: the header says {lines[0][2:]!r}; this reader reads "
                         "AEDAT 3.1 (CIFAR10-DVS's AEDAT 2: read_aedat2_cifar10dvs)")
    if "#!END-HEADER" not in lines:
        raise ValueError(f"[{op}] {path}: no '#!END-HEADER' line; an AEDAT 3.1 file starts with "
                         "'#' header lines ending with '#!END-HEADER'")
    parts = []
    while pos < len(raw):
        if len(raw) - pos < _PACKET.size:
            raise ValueError(f"[{op}] {path}: truncated packet header at byte {pos} "
                             f"({len(raw) - pos} of {_PACKET.size} bytes)")
        kind, _, size, tsoff, overflow, capacity, number, _ = _PACKET.unpack_from(raw, pos)
        start = pos + _PACKET.size
        if size <= 0 or overflow < 0 or not 0 <= number <= capacity:
            raise ValueError(f"[{op}] {path}: packet at byte {pos} has event size {size}, "
                             f"timestamp overflow {overflow}, capacity {capacity}, number "
                             f"{number} (need size > 0, overflow >= 0, 0 <= number <= capacity)")
        end = start + capacity * size
        if end > len(raw):
            raise ValueError(f"[{op}] {path}: truncated packet at byte {pos}: {capacity} events "
                             f"of {size} bytes need {end - start} bytes, file has "
                             f"{len(raw) - start}")
        if kind == POLARITY_EVENT:
            if size != 8 or tsoff != 4:
                raise ValueError(f"[{op}] {path}: polarity packet at byte {pos} has event size "
                                 f"{size} and timestamp offset {tsoff}; expected 8 and 4")
            ev = np.frombuffer(raw, dtype="<u4", count=2 * number, offset=start).reshape(-1, 2)
            ev = ev[(ev[:, 0] & 1) == 1].astype(np.int64)
            ts = ev[:, 1]
            if (ts >= 1 << 31).any():
                raise ValueError(f"[{op}] {path}: packet at byte {pos} holds a negative int32 "
                                 "timestamp")
            data = ev[:, 0]
            parts.append(make_events((overflow << 31) | ts, (data >> 17) & 0x7FFF,
                                     (data >> 2) & 0x7FFF, (data >> 1) & 1))
        pos = end
    return np.concatenate(parts) if parts else make_events([], [])


GESTURE_CSV_HEADER = ("class", "startTime_usec", "endTime_usec")


def read_gesture_labels(path) -> np.ndarray:
    """A DVS Gesture ``*_labels.csv``: ``[K, 3]`` int64 rows (class as in the
    file, 1..11; start µs; end µs), after the header line
    ``class,startTime_usec,endTime_usec``. Blank lines are skipped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a wrong header, a row without three integers, a class
            outside 1..11, or an end not after its start.
    """
    op = "read_gesture_labels"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[{op}] no such file: {path}")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows or tuple(c.strip() for c in rows[0]) != GESTURE_CSV_HEADER:
        got = ",".join(rows[0]) if rows else "an empty file"
        raise ValueError(f"[{op}] {path}: the first line must be "
                         f"'{','.join(GESTURE_CSV_HEADER)}'; got {got!r}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            cls, start, end = (int(c) for c in row)
        except ValueError:
            raise ValueError(f"[{op}] {path}: row {line} must be three integers "
                             f"(class, start µs, end µs); got {','.join(row)!r}") from None
        if not 1 <= cls <= 11:
            raise ValueError(f"[{op}] {path}: row {line}: class {cls} is outside 1..11")
        if end <= start:
            raise ValueError(f"[{op}] {path}: row {line}: end {end} is not after start {start}")
        out.append((cls, start, end))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def cut_gesture(events: np.ndarray, labels: np.ndarray) -> list:
    """Cut a recording into ``(events, class 0..10)`` samples, one per label
    row: the events with start <= t < end; the file's class minus 1."""
    return [(events[(events["t"] >= s) & (events["t"] < e)], int(c) - 1) for c, s, e in labels]


def read_trial_list(path) -> list[str]:
    """``trials_to_train.txt`` / ``trials_to_test.txt``: one recording file
    name per line (``user01_fluorescent.aedat``); blank lines are skipped."""
    op = "read_trial_list"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[{op}] no such file: {path}")
    with open(path) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    bad = [n for n in names if not n.endswith(".aedat")]
    if bad:
        raise ValueError(f"[{op}] {path}: every line must name a .aedat recording; got "
                         f"{bad[0]!r}")
    return names


# --------------------------------------------------------------------------- CIFAR10-DVS

_JAER_SPECIAL = 0x80008000          # bit 15 (DVS128 sync event) and bit 31 (jAER special event)


def read_aedat2_cifar10dvs(path) -> np.ndarray:
    """One CIFAR10-DVS recording of the original release (jAER AEDAT 2.0,
    DVS128 camera): ``#`` header lines, then big-endian 8-byte records
    (uint32 address, uint32 timestamp µs).

    Decoded as jAER's own DVS128 extractor does: x = 127 - address bits 1-7,
    y = bits 8-14 (jAER's y points up), polarity ON (1) when bit 0 is 0.
    Records with bit 15 or bit 31 set (sync / special events) are dropped; a
    32-bit timestamp wrap-around is undone. SpikingJelly rotates the same
    events to (127 - y, x); docs/events.md compares the conventions.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an AEDAT version other than 2 in the header, or a body
            that is not a whole number of 8-byte records.
    """
    op = "read_aedat2_cifar10dvs"
    path, raw = _read(op, path)
    lines, pos = _text_header(op, path, raw)
    for ln in lines[:1]:
        if ln.startswith("#!AER-DAT") and not ln.startswith("#!AER-DAT2"):
            raise ValueError(f"[{op}] {path}: the header says {ln[2:]!r}; this reader reads the "
                             "original AEDAT 2.0 release (the AEDAT 4 re-encoding that tonic "
                             "downloads is another format)")
    body = len(raw) - pos
    if body % 8:
        raise ValueError(f"[{op}] {path}: {body} bytes after the header is not a multiple of 8 "
                         "(one record is 8 bytes); the file is truncated")
    rec = np.frombuffer(raw, dtype=">u4", offset=pos).reshape(-1, 2).astype(np.int64)
    rec = rec[(rec[:, 0] & _JAER_SPECIAL) == 0]
    addr, t = rec[:, 0], rec[:, 1]
    if t.size > 1:
        t = t + (np.concatenate([[0], np.cumsum(np.diff(t) < -(1 << 31))]) << 32)
    return make_events(t, 127 - ((addr >> 1) & 0x7F), (addr >> 8) & 0x7F, 1 - (addr & 1))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


# --------------------------------------------------------------------------- SHD, N-TIDIGITS


def _h5py(op: str):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"[{op}] reading HDF5 needs h5py: pip install 'flashsnn[events]' "
                          "(or pip install h5py)") from None
    return h5py


def _seconds_to_us(t) -> np.ndarray:
    # Round to the nearest µs: times are stored as floats in seconds, and
    # truncating 0.0123 (float16/32) could give 12299 instead of 12300.
    return np.rint(np.asarray(t, dtype=np.float64) * 1e6).astype(np.int64)


def _audio_events(op, path, what, times, units) -> np.ndarray:
    times, units = np.asarray(times), np.asarray(units)
    if times.shape != units.shape or times.ndim != 1:
        raise ValueError(f"[{op}] {path}: {what}: {times.shape[0] if times.ndim else 0} times "
                         f"but {units.shape[0] if units.ndim else 0} channel ids")
    return make_events(_seconds_to_us(times), units.astype(np.int64))


def _open_h5(op, path, need, what):
    h5py = _h5py(op)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[{op}] no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"[{op}] {path}: not a readable HDF5 file ({e})") from None
    missing = [k for k in need if k not in f]
    if missing:
        f.close()
        raise ValueError(f"[{op}] {path}: lacks {', '.join(missing)} ({what} file holds "
                         f"{', '.join(need)})")
    return path, f


def read_shd(path, indices=None) -> list:
    """Samples of a Spiking Heidelberg Digits file (``shd_train.h5`` /
    ``shd_test.h5``) as ``(events, label)`` pairs.

    Layout: ``spikes/times`` (ragged float, seconds), ``spikes/units``
    (ragged uint16 channel ids 0..699), ``labels`` (0..19). Events: ``x`` =
    channel, ``y = p = 0``, ``t`` in µs rounded to the nearest.

    Args:
        path: the file.
        indices: which samples (all when None).

    Raises:
        ImportError: h5py is missing.
        FileNotFoundError: no such file.
        ValueError: not HDF5, a missing dataset, or times and units of
            different lengths in a sample.
    """
    op = "read_shd"
    path, f = _open_h5(op, path, ("spikes/times", "spikes/units", "labels"),
                       "an SHD")
    with f:
        times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"]
        n = len(labels)
        if len(times) != n or len(units) != n:
            raise ValueError(f"[{op}] {path}: {n} labels but {len(times)} time lists and "
                             f"{len(units)} unit lists")
        idx = range(n) if indices is None else indices
        out = []
        for i in idx:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"[{op}] {path}: sample {i} out of range (file has {n})")
            out.append((_audio_events(op, path, f"sample {i}", times[i], units[i]),
                        int(labels[i])))
    return out


def ntidigits_names(path, split: str = "train") -> list[str]:
    """The sample names of one split of ``n-tidigits.hdf5`` (the
    ``<split>_labels`` dataset), in file order. The text after the last ``-``
    is the spoken digit sequence (``"o"``, ``"3"``, ``"4z1"``...)."""
    op = "ntidigits_names"
    if split not in ("train", "test"):
        raise ValueError(f"[{op}] split must be 'train' or 'test'; got {split!r}")
    path, f = _open_h5(op, path, (f"{split}_labels",), "an N-TIDIGITS")
    with f:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in f[f"{split}_labels"][()]]


def read_ntidigits(path, split: str = "train", names=None) -> list:
    """Samples of ``n-tidigits.hdf5`` as ``(name, events)`` pairs.

    Layout: ``<split>_labels`` lists the sample names; ``<split>_addresses/
    <name>`` holds channel ids 0..63 and ``<split>_timestamps/<name>`` their
    times in seconds. Events: ``x`` = channel, ``y = p = 0``, ``t`` in µs
    rounded to the nearest.

    Args:
        path: the file.
        split: ``"train"`` or ``"test"``.
        names: which samples (all of the split when None).
    """
    op = "read_ntidigits"
    if split not in ("train", "test"):
        raise ValueError(f"[{op}] split must be 'train' or 'test'; got {split!r}")
    need = (f"{split}_labels", f"{split}_addresses", f"{split}_timestamps")
    path, f = _open_h5(op, path, need, "an N-TIDIGITS")
    with f:
        a, t = f[f"{split}_addresses"], f[f"{split}_timestamps"]
        if names is None:
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in f[f"{split}_labels"][()]]
        out = []
        for name in names:
            if name not in a or name not in t:
                raise ValueError(f"[{op}] {path}: sample {name!r} lacks "
                                 f"{split}_addresses/{name} or {split}_timestamps/{name}")
            out.append((name, _audio_events(op, path, f"sample {name!r}", t[name][()],
                                            a[name][()])))
    return out


def ntidigits_label(name: str) -> int | None:
    """The class (0..10, :data:`NTIDIGITS_CLASSES`) of a single-digit sample
    name, None for a digit sequence."""
    digits = name.rsplit("-", 1)[-1]
    return NTIDIGITS_CLASSES.index(digits) if digits in NTIDIGITS_CLASSES else None
