"""Spike coding of multi-channel signals (EEG, EMG, LFP...), time-first.

The signal's own time axis (its last axis, L samples, as MNE and most EEG
loaders lay data out: ``[B, C, L]``) becomes the spike train's time axis, so
an event at sample l lands at step l. ``num_steps`` < L merges samples into
T equal-width bins (bin i holds samples ``floor(i*L/T)`` up to
``floor((i+1)*L/T)``).

Methods:

- ``"rate"``: each channel is min-max normalized over L to [0, 1]; the
  normalized amplitude (the bin's mean) is the spike probability of that
  step. A constant channel never fires.
- ``"delta"``: a spike where the signal rises by ``>= threshold`` from one
  sample to the next, an off-spike (-1) where it falls by as much. Sample 0
  is compared with itself, so a DC offset does not fire.
- ``"threshold_crossing"``: a spike where the signal crosses ``+threshold``
  upwards (``s[l-1] < threshold <= s[l]``), an off-spike where it crosses
  ``-threshold`` downwards (``s[l-1] > -threshold >= s[l]``).

With ``normalize=True`` (default) delta and threshold crossing first z-score
each channel over L, so ``threshold`` is in standard deviations and one
setting works across subjects and amplifier gains. Binned events: a bin
holds a spike if any of its samples does (on and off counted apart, so a bin
with both gives 0).
"""

from __future__ import annotations

import mlx.core as mx

from . import _checks

METHODS = ("rate", "delta", "threshold_crossing")


def _bins(L: int, T: int) -> mx.array:
    """[L, T] 0/1 matrix: sample l belongs to bin floor(l * T / L)."""
    b = (mx.arange(L) * T) // L
    return (b[:, None] == mx.arange(T)[None, :]).astype(mx.float32)


def _zscore(x: mx.array) -> mx.array:
    mean = mx.mean(x, axis=-1, keepdims=True)
    std = mx.sqrt(mx.var(x, axis=-1, keepdims=True))
    return (x - mean) / mx.where(std > 0, std, 1.0)


def eeg(signal, method: str = "delta", *, num_steps: int | None = None,
        threshold: float = 0.5, off_spike: bool = True, normalize: bool = True,
        key: mx.array | None = None) -> mx.array:
    """Encode a multi-channel signal ``[..., L]`` into spikes ``[T, ...]``.

    Args:
        signal: ``[B, C, L]`` (or ``[C, L]``, or any ``[..., L]``): L samples
            per channel, time last.
        method: ``"rate"``, ``"delta"`` or ``"threshold_crossing"`` (module
            docstring).
        num_steps: T <= L; None keeps one step per sample (T = L).
        threshold: delta / crossing level (in standard deviations with
            ``normalize=True``). Unused by ``"rate"``.
        off_spike: emit -1 for falls / downward crossings; with False only
            the +1 events are kept.
        normalize: z-score each channel over L before delta / crossing.
        key: MLX PRNG key for ``"rate"`` (reproducible spikes).

    Returns:
        ``[T, ...]`` float32 spikes: for ``[B, C, L]`` input, ``[T, B, C]``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> sig = mx.array([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])      # [C=1, L=6]
    >>> fs.encoding.eeg(sig, "delta", threshold=0.5, normalize=False)[:, 0].tolist()
    [0.0, 0.0, 1.0, 0.0, -1.0, 0.0]
    >>> fs.encoding.eeg(sig, "delta", num_steps=3, threshold=0.5,
    ...                 normalize=False)[:, 0].tolist()
    [0.0, 1.0, -1.0]
    """
    op = "eeg"
    _checks.choice(op, "method", method, METHODS)
    x = _checks.array(op, signal, "signal").astype(mx.float32)
    if x.ndim < 2:
        raise ValueError(f"[{op}] signal must be [..., C, L] (channels, then samples); "
                         f"got shape {tuple(x.shape)}")
    L = x.shape[-1]
    if L < 1:
        raise ValueError(f"[{op}] signal has no samples (L = 0)")
    T = _checks.steps(op, num_steps, required=False) or L
    if T > L:
        raise ValueError(f"[{op}] num_steps ({T}) must be <= the number of samples L ({L}); "
                         "upsampling invents data")
    k = _checks.key(op, key)
    if method == "rate":
        lo = mx.min(x, axis=-1, keepdims=True)
        span = mx.max(x, axis=-1, keepdims=True) - lo
        p = mx.where(span > 0, (x - lo) / mx.where(span > 0, span, 1.0), 0.0)
        if T != L:
            w = _bins(L, T)
            p = (p @ w) / mx.sum(w, axis=0)
        return mx.random.bernoulli(mx.moveaxis(p, -1, 0), key=k).astype(mx.float32)

    s = _zscore(x) if normalize else x
    prev = mx.concatenate([s[..., :1], s[..., :-1]], axis=-1)
    if method == "delta":
        on = (s - prev) >= threshold
        off = (s - prev) <= -threshold
    else:
        first = mx.arange(L) == 0        # sample 0 has no predecessor: no crossing
        on = (prev < threshold) & (s >= threshold) & ~first
        off = (prev > -threshold) & (s <= -threshold) & ~first
    on = on.astype(mx.float32)
    off = off.astype(mx.float32) if off_spike else mx.zeros_like(on)
    if T != L:
        w = _bins(L, T)
        on, off = ((on @ w) > 0).astype(mx.float32), ((off @ w) > 0).astype(mx.float32)
    return mx.moveaxis(on - off, -1, 0)


class EEGEncoder:
    """:func:`eeg` with its options bound: ``EEGEncoder("rate", num_steps=100)(signal)``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> enc = fs.encoding.EEGEncoder("threshold_crossing", threshold=1.0)
    >>> enc(mx.random.normal((4, 8, 256), key=mx.random.key(0))).shape   # [B, C, L]
    (256, 4, 8)
    """

    def __init__(self, method: str = "delta", *, num_steps: int | None = None,
                 threshold: float = 0.5, off_spike: bool = True, normalize: bool = True):
        _checks.choice("EEGEncoder", "method", method, METHODS)
        self.method = method
        self.num_steps = num_steps
        self.threshold = threshold
        self.off_spike = off_spike
        self.normalize = normalize

    def __call__(self, signal, *, key: mx.array | None = None) -> mx.array:
        return eeg(signal, self.method, num_steps=self.num_steps, threshold=self.threshold,
                   off_spike=self.off_spike, normalize=self.normalize, key=key)

    def __repr__(self) -> str:
        return (f"EEGEncoder({self.method!r}, num_steps={self.num_steps}, "
                f"threshold={self.threshold}, off_spike={self.off_spike}, "
                f"normalize={self.normalize})")
