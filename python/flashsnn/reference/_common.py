"""Plumbing the pure-MLX references share: parameter clamping, initial
states, the membrane resets that several families write alike, and
collecting each step's outputs into what the op returns.

Each family's step equations stay in its own file; these helpers compute
exactly the operations the families wrote inline, in the same order (the
snnTorch comparisons are bitwise).
"""

from __future__ import annotations

import mlx.core as mx


def clamp01(p: mx.array) -> mx.array:
    # torch.clamp's gradient: passes on [0, 1] inclusive, zero outside.
    return mx.where(p < 0, 0.0, mx.where(p > 1, 1.0, p))


def zeros_if_none(S: tuple, *states: mx.array | None) -> list[mx.array]:
    """Each initial state as given, or float32 zeros ``[*S]`` where None."""
    zeros = mx.zeros(S, dtype=mx.float32)
    return [zeros if s is None else s for s in states]


def reset(mem: mx.array, r: mx.array, threshold: mx.array, mechanism: str) -> mx.array:
    """snnTorch's delayed reset of ``mem`` by ``r``, the previous step's
    detached spike: ``mem - r*threshold`` (subtract), ``mem - mem*r`` (zero),
    ``mem`` (none)."""
    if mechanism == "subtract":
        return mem - r * threshold
    if mechanism == "zero":
        return mem - mem * r
    return mem


def reset_same_step(mem: mx.array, s: mx.array, r: mx.array, threshold: mx.array,
                    mechanism: str) -> mx.array:
    """snnTorch's ``reset_delay=False``: reset ``mem`` again in the step that
    fires, by the new spike ``s`` less the reset ``r`` already applied (``s``
    keeps its surrogate gradient): ``mem - (s - r)*threshold`` (subtract),
    ``mem - (s - r)*mem`` (zero), ``mem`` (none)."""
    if mechanism == "subtract":
        return mem - (s - r) * threshold
    if mechanism == "zero":
        return mem - (s - r) * mem
    return mem


class Steps:
    """Each step's spikes and, with ``output_mem="all"``, its states; then
    the op's outputs in x's dtype.

    ``add(spk, *states)`` once per step; ``outputs(*states)`` with the
    final states returns ``(spk [T, *S], *states)``: every step's states
    ``[T, *S]`` with ``"all"``, else the final ones ``[*S]``. For T = 0 the
    spikes (and with ``"all"`` the states) are zeros of x's shape.
    """

    def __init__(self, a):
        self.shape, self.dtype, self.mem_all = a.x.shape, a.x.dtype, a.mem_all
        self.spks: list[mx.array] = []
        self.traces: list[list[mx.array]] = []

    def add(self, spk: mx.array, *states: mx.array) -> None:
        self.spks.append(spk)
        if self.mem_all:
            if not self.traces:
                self.traces = [[] for _ in states]
            for trace, s in zip(self.traces, states):
                trace.append(s)

    def outputs(self, *states: mx.array) -> tuple[mx.array, ...]:
        dtype = self.dtype
        if self.shape[0] == 0:
            empty = mx.zeros(self.shape, dtype=dtype)
            if self.mem_all:
                return (empty,) * (1 + len(states))
            return (empty, *(s.astype(dtype) for s in states))
        spk = mx.stack(self.spks).astype(dtype)
        if self.mem_all:
            return (spk, *(mx.stack(trace).astype(dtype) for trace in self.traces))
        return (spk, *(s.astype(dtype) for s in states))
