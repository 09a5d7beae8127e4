"""Rate (Bernoulli / "Poisson") coding and direct coding, time-first.

snnTorch's ``spikegen.rate`` semantics: each value, times ``gain`` plus
``offset`` and clipped to [0, 1], is the probability of a spike at every
step. Draws come from MLX's generator; pass ``key=mx.random.key(seed)`` for
spikes that are identical run after run.
"""

from __future__ import annotations

import mlx.core as mx

from . import _checks


def rate_conv(data, *, key: mx.array | None = None) -> mx.array:
    """One Bernoulli draw per element: ``P(spike) = clip(data, 0, 1)``.

    Args:
        data: probabilities, any shape ``[*S]``.
        key: an MLX PRNG key for reproducible spikes (None: global generator).

    Returns:
        spikes ``[*S]`` of 0s and 1s in data's float dtype (float32 for
        integer input).

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.encoding.rate_conv(mx.array([0.0, 1.0, 1.0])).tolist()
    [0.0, 1.0, 1.0]
    """
    x = _checks.array("rate_conv", data)
    k = _checks.key("rate_conv", key)
    p = mx.clip(x.astype(mx.float32), 0.0, 1.0)
    return mx.random.bernoulli(p, key=k).astype(_checks.out_dtype(x))


def rate(data, num_steps=None, *, gain: float = 1.0, offset: float = 0.0,
         first_spike_time: int = 0, time_var_input: bool = False,
         key: mx.array | None = None) -> mx.array:
    """Rate-code ``data`` into Bernoulli spike trains.

    Args:
        data: ``[B, ...]`` static features (usually in [0, 1]) repeated over
            ``num_steps``, or, with ``time_var_input=True``, a sequence
            ``[T, B, ...]`` coded step by step.
        num_steps: T for static input; must not be given for time-varying
            input (its first axis is T).
        gain, offset: ``P(spike) = clip(gain * data + offset, 0, 1)``.
        first_spike_time: no spikes before this step. Static input: the
            first steps are silenced (T is unchanged). Time-varying input:
            this many silent steps are prepended (T grows), as in snnTorch.
        time_var_input: see ``data``.
        key: an MLX PRNG key (``mx.random.key(seed)``) for reproducible
            spikes; None draws from MLX's global generator.

    Returns:
        spikes ``[T, B, ...]`` (0/1) in data's float dtype (float32 for
        integer input).

    Differs from snnTorch 1.0 in one place: snnTorch ignores ``gain`` and
    ``offset`` when ``time_var_input=True``; here they apply in both cases.

    >>> import mlx.core as mx, flashsnn as fs
    >>> x = mx.array([[0.0, 1.0, 0.5]])                      # [B=1, 3]
    >>> spk = fs.encoding.rate(x, num_steps=4, key=mx.random.key(0))
    >>> spk.shape, spk[:, 0, :2].tolist()
    ((4, 1, 3), [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    """
    op = "rate"
    x = _checks.array(op, data)
    k = _checks.key(op, key)
    T = _checks.steps(op, num_steps, required=False)
    if isinstance(first_spike_time, bool) or not isinstance(first_spike_time, int) \
            or first_spike_time < 0:
        raise ValueError(f"[{op}] first_spike_time must be an int >= 0; got {first_spike_time!r}")
    if time_var_input:
        if T is not None:
            raise ValueError(f"[{op}] num_steps must not be given with time_var_input=True: "
                             "the first axis of data is T")
        if x.ndim < 1:
            raise ValueError(f"[{op}] time-varying data must be [T, ...]; got a scalar")
        p = x.astype(mx.float32) * gain + offset
        spk = rate_conv(p, key=k).astype(_checks.out_dtype(x))
        if first_spike_time > 0:
            pad = mx.zeros((first_spike_time,) + tuple(spk.shape[1:]), dtype=spk.dtype)
            spk = mx.concatenate([pad, spk], axis=0)
        return spk
    if T is None:
        raise ValueError(f"[{op}] num_steps must be given for static data (or pass "
                         "time_var_input=True for data that is already [T, ...])")
    if first_spike_time > T - 1:
        raise ValueError(f"[{op}] first_spike_time ({first_spike_time}) must be <= "
                         f"num_steps - 1 ({T - 1})")
    p = mx.broadcast_to(x.astype(mx.float32) * gain + offset, (T,) + tuple(x.shape))
    spk = rate_conv(p, key=k).astype(_checks.out_dtype(x))
    if first_spike_time > 0:
        live = (mx.arange(T) >= first_spike_time).reshape((T,) + (1,) * x.ndim)
        spk = spk * live.astype(spk.dtype)
    return spk


def direct(data, num_steps: int) -> mx.array:
    """Direct coding: the same input at every step.

    Args:
        data: ``[B, ...]`` analog input.
        num_steps: T.

    Returns:
        ``[T, B, ...]``, data repeated (a broadcast, so gradients reach
        ``data`` summed over T).

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.encoding.direct(mx.array([[0.25, 0.5]]), 3)[:, 0].tolist()
    [[0.25, 0.5], [0.25, 0.5], [0.25, 0.5]]
    """
    x = _checks.array("direct", data)
    T = _checks.steps("direct", num_steps, required=True)
    return mx.broadcast_to(x[None], (T,) + tuple(x.shape))
