"""Latency (time-to-first-spike) coding with snnTorch's ``spikegen.latency``
semantics: one spike per element, earlier for larger values.

Spike times, for data in [0, 1]:

    log (default):  t = tau * ln(x / (x - threshold)),  x clamped to >= threshold + epsilon
    linear:         t = min(tau * (1 - x), tau * (1 - threshold))
    normalize=True: log times rescaled so the latest is num_steps - 1;
                    linear uses tau = num_steps - 1 - first_spike_time
    then + first_spike_time, rounded half-to-even to a step (torch.round and
    mx.round agree). Times past num_steps - 1 give no spike (with
    ``bypass=True``; without it, they are an error). ``clip=True`` silences
    values below ``threshold``, which otherwise fire at the latest time.
"""

from __future__ import annotations

import mlx.core as mx

from . import _checks


def _check_common(op, x, num_steps, threshold, tau, first_spike_time, normalize):
    # The same conditions, in the same order, as snnTorch's _latency_errors.
    if not 0 < threshold < 1:
        raise ValueError(f"[{op}] threshold must lie in (0, 1); got {threshold!r}")
    if tau <= 0:
        raise ValueError(f"[{op}] tau must be > 0; got {tau!r}")
    if isinstance(first_spike_time, bool) or not isinstance(first_spike_time, int) \
            or first_spike_time < 0:
        raise ValueError(f"[{op}] first_spike_time must be an int >= 0; got {first_spike_time!r}")
    if num_steps and first_spike_time > num_steps - 1:
        raise ValueError(f"[{op}] first_spike_time ({first_spike_time}) must be <= "
                         f"num_steps - 1 ({num_steps - 1})")
    if normalize and not num_steps:
        raise ValueError(f"[{op}] normalize=True needs num_steps")


def latency_code(data, num_steps=None, *, threshold: float = 0.01, tau: float = 1.0,
                 first_spike_time: int = 0, normalize: bool = False, linear: bool = False,
                 epsilon: float = 1e-7) -> tuple[mx.array, mx.array]:
    """Spike times (unrounded) for latency coding.

    Args:
        data: ``[*S]`` values in [0, 1].
        num_steps, threshold, tau, first_spike_time, normalize, linear,
            epsilon: as in :func:`latency`.

    Returns:
        ``(spike_time [*S] float32, below [*S] bool)``: ``below`` marks
        values under ``threshold`` (the ones ``clip=True`` silences).

    >>> import mlx.core as mx, flashsnn as fs
    >>> t, _ = fs.encoding.latency_code(mx.array([0.02, 0.5, 1.0]), num_steps=5,
    ...                                 normalize=True, linear=True)
    >>> [round(v, 4) for v in t.tolist()]
    [3.92, 2.0, 0.0]
    """
    op = "latency_code"
    x = _checks.array(op, data).astype(mx.float32)
    T = _checks.steps(op, num_steps, required=False) or 0
    return _code(op, x, T, threshold, tau, first_spike_time, normalize, linear, epsilon)


def _code(op, x, T, threshold, tau, first_spike_time, normalize, linear, epsilon):
    _check_common(op, x, T, threshold, tau, first_spike_time, normalize)
    below = x < threshold
    if linear:
        if normalize:
            tau = T - 1 - first_spike_time
        # data in [0, 1] and tau >= 0 keep these times >= 0, so snnTorch's
        # rescaling of negative linear times never applies.
        t = mx.minimum(-tau * (x - 1.0), -tau * (threshold - 1.0)) + first_spike_time
    else:
        xc = mx.maximum(x, threshold + epsilon)
        t = tau * mx.log(xc / (xc - threshold))
        if first_spike_time > 0:
            t = t + first_spike_time
        if normalize:
            t = (t - first_spike_time) * (T - first_spike_time - 1) \
                / mx.max(t - first_spike_time) + first_spike_time
    return t, below


def latency(data, num_steps=None, *, threshold: float = 0.01, tau: float = 1.0,
            first_spike_time: int = 0, on_target: float = 1.0, off_target: float = 0.0,
            clip: bool = False, normalize: bool = False, linear: bool = False,
            interpolate: bool = False, bypass: bool = False,
            epsilon: float = 1e-7) -> mx.array:
    """Latency-code ``data`` (values in [0, 1]) into one spike per element.

    Args:
        data: ``[B, ...]`` features in [0, 1].
        num_steps: T. Required unless ``bypass=True``, which then takes the
            latest spike time + 1.
        threshold: values below it fire at the latest time (never, with
            ``clip=True``); must lie in (0, 1).
        tau: the RC time constant of the log code, or the slope of the
            linear code.
        first_spike_time: the earliest spike step.
        on_target, off_target: the value at the spike, and the floor
            elsewhere (``max(spike * on_target, off_target)``, as snnTorch).
        clip: silence values below ``threshold``.
        normalize: stretch the code so the latest spike is at T - 1.
        linear: linear code instead of the log code.
        interpolate: return snnTorch's interpolated targets
            (:func:`latency_interpolate`) instead of spikes.
        bypass: allow spike times past T - 1 (they are dropped) and infer T.
        epsilon: keeps ``x - threshold`` away from 0 in the log code.

    Returns:
        ``[T, B, ...]`` float32 spikes.

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.encoding.latency(mx.array([0.02, 0.5, 1.0]), num_steps=5, normalize=True,
    ...                     linear=True).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    op = "latency"
    x = _checks.array(op, data).astype(mx.float32)
    T = _checks.steps(op, num_steps, required=False)
    lo, hi = mx.min(x).item(), mx.max(x).item()
    if lo < 0 or hi > 1:
        raise ValueError(f"[{op}] data must lie in [0, 1]; got [{lo}, {hi}]")
    if T is None and not bypass:
        raise ValueError(f"[{op}] num_steps must be given (or bypass=True to take the "
                         "latest spike time + 1)")
    t, below = _code(op, x, T or 0, threshold, tau, first_spike_time, normalize, linear,
                     epsilon)
    last = int(mx.round(mx.max(t)).item())
    if T is None:
        T = last + 1
        if T <= 0:
            raise ValueError(f"[{op}] the inferred num_steps ({T}) must be positive")
    if last > T - 1 and not bypass:
        raise ValueError(f"[{op}] the latest spike time ({last}) is past num_steps - 1 "
                         f"({T - 1}); pass bypass=True to drop those spikes, lower tau, "
                         "or normalize=True")
    if interpolate:
        return latency_interpolate(t, T, on_target=on_target, off_target=off_target)
    steps = mx.arange(T, dtype=mx.float32).reshape((T,) + (1,) * x.ndim)
    at = mx.round(mx.minimum(t, T - 1))
    keep = mx.round(t) <= T - 1          # a time past the end is dropped, not clamped
    if clip:
        keep = keep & ~below
    spk = ((steps == at) & keep).astype(mx.float32)
    return mx.maximum(spk * on_target, off_target)


def latency_interpolate(spike_time, num_steps: int, *, on_target: float = 1.0,
                        off_target: float = 0.0) -> mx.array:
    """snnTorch's interpolated latency targets: a ramp ``t / spike_time``
    rising to ``on_target`` at each element's spike step, ``off_target``
    after it.

    Args:
        spike_time: ``[*S]`` spike times in steps (rounded here).
        num_steps: T.
        on_target, off_target: the ramp's top and floor (``on >= off``).

    Returns:
        ``[T, *S]`` float32 targets.

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.encoding.latency_interpolate(mx.array([0.0, 4.0]), 5).tolist()
    [[1.0, 0.0], [0.0, 0.25], [0.0, 0.5], [0.0, 0.75], [0.0, 1.0]]
    """
    op = "latency_interpolate"
    if on_target < off_target:
        raise ValueError(f"[{op}] on_target ({on_target}) must be >= off_target ({off_target})")
    T = _checks.steps(op, num_steps, required=True)
    st = mx.round(_checks.array(op, spike_time, "spike_time").astype(mx.float32))
    # snnTorch sets spike times past T, and then times of 0, to 0.5 so that
    # t / 0.5 > 1 for every t >= 1 (those steps drop to off_target); a time
    # of 0 instead gets 1 at step 0.
    zero = st == 0
    st = mx.where((st > T) | zero, 0.5, st)
    steps = mx.arange(T, dtype=mx.float32).reshape((T,) + (1,) * st.ndim)
    ramp = steps / st
    ramp = mx.where((steps == 0) & zero, 1.0, ramp)
    out = ramp * (on_target - off_target) + off_target
    return mx.where(out > on_target, off_target, out)
