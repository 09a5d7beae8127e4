"""Delta modulation with snnTorch's ``spikegen.delta`` semantics: a spike
where a sequence rises by at least ``threshold`` from one step to the next,
and optionally an off-spike (-1) where it falls by at least ``threshold``."""

from __future__ import annotations

import mlx.core as mx

from . import _checks


def delta(data, threshold: float = 0.1, padding: bool = False,
          off_spike: bool = False) -> mx.array:
    """Delta-modulate a time-first sequence.

    Args:
        data: ``[T, B, ...]`` sequence.
        threshold: the change (``>=``) that fires a spike.
        padding: step 0 is compared with itself (no spike at step 0) when
            True, with zeros (so a large first value fires) when False.
        off_spike: also emit -1 where ``data[t] - data[t-1] <= -threshold``.

    Returns:
        ``[T, B, ...]`` spikes in {0, 1} (or {-1, 0, 1} with off-spikes), in
        data's float dtype (float32 for integer input).

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.encoding.delta(mx.array([1, 2, 2.9, 3, 3.9]), threshold=1).tolist()
    [1.0, 1.0, 0.0, 0.0, 0.0]
    >>> fs.encoding.delta(mx.array([1, 2, 0, 2, 2.9]), threshold=1, padding=True,
    ...                   off_spike=True).tolist()
    [0.0, 1.0, -1.0, 1.0, 0.0]
    """
    op = "delta"
    x = _checks.array(op, data)
    if x.ndim < 1:
        raise ValueError(f"[{op}] data must be a sequence [T, ...]; got a scalar")
    dt = _checks.out_dtype(x)
    xf = x.astype(mx.float32)
    first = xf[:1] if padding else mx.zeros_like(xf[:1])
    d = xf - mx.concatenate([first, xf[:-1]], axis=0)
    spk = (d >= threshold).astype(mx.float32)
    if off_spike:
        spk = spk - (d <= -threshold).astype(mx.float32)
    return spk.astype(dt)
