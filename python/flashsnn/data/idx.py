"""The IDX format of MNIST (and Fashion-MNIST, KMNIST, EMNIST...), read with
NumPy, gzipped or not.

Layout (big-endian): two zero bytes, a type code, the number of dimensions
n, n uint32 sizes, then the data in C order.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

# type code -> NumPy dtype (big-endian where it matters)
DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:          # sniff, so a misnamed file still reads
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"[read_idx] {path}: not a valid gzip file ({e})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed).

    Args:
        path: the file.

    Returns:
        a NumPy array with the file's shape and dtype (native byte order).

    Raises:
        FileNotFoundError: no such file.
        ValueError: wrong magic number, unknown type code, a truncated
            header or data, or bytes past the end of the data.

    >>> import numpy as np, tempfile, os, flashsnn as fs
    >>> p = os.path.join(tempfile.mkdtemp(), "tiny-idx1-ubyte")
    >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 4]))
    >>> fs.data.read_idx(p).tolist()
    [7, 1, 4]
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[read_idx] no such file: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"[read_idx] {path}: truncated header ({len(raw)} bytes; an IDX "
                         "file starts with a 4-byte magic number)")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in DTYPES or ndim == 0:
        raise ValueError(f"[read_idx] {path}: wrong magic number 0x{magic:08X}; an IDX file "
                         "starts with 0x0000TTNN (TT: type 08/09/0B/0C/0D/0E, NN: number of "
                         "dimensions >= 1), e.g. 0x00000803 for images, 0x00000801 for labels")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"[read_idx] {path}: truncated header (needs {head} bytes for "
                         f"{ndim} dimensions, file has {len(raw)})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = DTYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - head
    if have < need:
        raise ValueError(f"[read_idx] {path}: truncated data: shape {shape} needs {need} bytes, "
                         f"file has {have}")
    if have > need:
        raise ValueError(f"[read_idx] {path}: {have - need} bytes past the end of the data "
                         f"(shape {shape}); the file is not a single IDX array")
    return np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize,
                         offset=head).reshape(shape).astype(dtype.newbyteorder("="))
