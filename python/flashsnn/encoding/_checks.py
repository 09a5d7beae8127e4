"""Argument checks shared by the encoders. Errors name the encoder: ``[rate] ...``."""

from __future__ import annotations

import numpy as np

import mlx.core as mx

from ..ops._checks import FLOAT_DTYPES, choice  # noqa: F401 (choice: for eeg.py)


def array(op: str, data, name: str = "data") -> mx.array:
    """An mlx array from an mlx array, a NumPy array or a nested list."""
    if isinstance(data, mx.array):
        return data
    if isinstance(data, (np.ndarray, list, tuple, int, float)) and not isinstance(data, bool):
        return mx.array(np.asarray(data, dtype=np.float32))
    raise TypeError(f"[{op}] {name} must be an mlx.core.array (or a NumPy array); "
                    f"got {type(data).__name__}")


def out_dtype(x: mx.array):
    """Spikes come out in x's floating dtype, or float32 for integer/bool input."""
    return x.dtype if x.dtype in FLOAT_DTYPES else mx.float32


def steps(op: str, num_steps, *, required: bool) -> int | None:
    """``num_steps``: a positive int; None/False/0 mean "not given" (snnTorch's
    default is ``False``)."""
    if num_steps is None or num_steps is False or (
            isinstance(num_steps, int) and not isinstance(num_steps, bool) and num_steps == 0):
        if required:
            raise ValueError(f"[{op}] num_steps must be given (a positive int)")
        return None
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) \
            or num_steps < 0:
        raise ValueError(f"[{op}] num_steps must be a positive int; got {num_steps!r}")
    return int(num_steps)


def key(op: str, k):
    """An MLX PRNG key (``mx.random.key(seed)``) or None (MLX's global generator)."""
    if k is None or isinstance(k, mx.array):
        return k
    raise TypeError(f"[{op}] key must be an mlx.core.array from mx.random.key(seed) or None; "
                    f"got {type(k).__name__}")
