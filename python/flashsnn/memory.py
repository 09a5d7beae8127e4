"""Memory of the fused kernels' outputs: flashsnn's own buffer cache.

The fused ops give their large outputs memory from a cache of flashsnn's own,
kept apart from MLX's (why, with numbers: ``src/ops/buffers.h``): on an NVIDIA
GPU, device memory from a stream-ordered pool (MLX's is not open to
extensions, and the memory open to them is managed memory that faults page by
page onto the GPU); on the Linux CPU, blocks that keep their pages between
calls. Metal builds use MLX's allocator and report an empty cache.

MLX's own ``mx.get_active_memory()`` / ``mx.get_peak_memory()`` do not count
these buffers; the functions here do. A whole program's peak is at most
``mx.get_peak_memory() + flashsnn.memory.get_peak_memory()``.

>>> import mlx.core as mx, flashsnn as fs
>>> spk, mem = fs.ops.leaky(mx.ones((100, 32, 1024)), beta=0.9)
>>> mx.eval(spk, mem)
>>> fs.memory.get_active_memory() >= spk.nbytes   # doctest: +SKIP
True

The cache keeps at most ``get_cache_limit()`` bytes of freed buffers (an
eighth of the device's memory, unless the environment variable
``FLASHSNN_CACHE_LIMIT_MB`` or ``set_cache_limit`` says otherwise);
``clear_cache()`` frees them now.
"""

from __future__ import annotations

import mlx.core as mx

from . import _backend

__all__ = ["get_active_memory", "get_peak_memory", "reset_peak_memory", "get_cache_memory",
           "get_cache_limit", "set_cache_limit", "clear_cache"]


def _stats(device: mx.Device | None) -> tuple[int, int, int, int]:
    if _backend.ext is None:
        return (0, 0, 0, 0)
    return tuple(_backend.ext.memory_stats(device or mx.default_device()))


def get_active_memory(device: mx.Device | None = None) -> int:
    """Bytes of flashsnn's buffers held by arrays now (default device if None)."""
    return _stats(device)[0]


def get_peak_memory(device: mx.Device | None = None) -> int:
    """Most bytes of flashsnn's buffers held at once since `reset_peak_memory`."""
    return _stats(device)[1]


def reset_peak_memory(device: mx.Device | None = None) -> None:
    """Start the peak over from the bytes held now."""
    if _backend.ext is not None:
        _backend.ext.reset_peak_memory(device or mx.default_device())


def get_cache_memory(device: mx.Device | None = None) -> int:
    """Bytes of freed buffers the cache keeps for reuse."""
    return _stats(device)[2]


def get_cache_limit(device: mx.Device | None = None) -> int:
    """Most bytes of freed buffers the cache keeps."""
    return _stats(device)[3]


def set_cache_limit(limit: int, device: mx.Device | None = None) -> int:
    """Keep at most `limit` bytes of freed buffers (0: none); returns the previous limit."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"[memory] limit must be a whole number of bytes >= 0; got {limit!r}")
    if _backend.ext is None:
        return 0
    return _backend.ext.set_cache_limit(device or mx.default_device(), limit)


def clear_cache(device: mx.Device | None = None) -> None:
    """Free every buffer the cache keeps."""
    if _backend.ext is not None:
        _backend.ext.clear_cache(device or mx.default_device())
