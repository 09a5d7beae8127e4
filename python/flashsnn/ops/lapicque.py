"""Lapicque's RC neuron (snnTorch's ``Lapicque``) over a whole sequence.

Equations: ``python/flashsnn/ops/README.md`` (Lapicque). Fused: all T steps in
one kernel launch, forward and backward (``src/step/lapicque.h`` through the family
engine, docs/adding-a-family.md); the pure-MLX reference
(``flashsnn.reference.lapicque``) runs where no kernel applies. The op takes
the circuit's ``R``, ``C`` and ``time_step``; the layer
(:class:`flashsnn.nn.Lapicque`) derives them from ``beta`` as snnTorch does.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "lapicque"


@dataclass
class LapicqueArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    mem: mx.array | None      # float32 [*S] or None (zeros)
    R: mx.array               # float32, broadcastable to S
    C: mx.array
    time_step: mx.array
    threshold: mx.array
    reset: str
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, mem, R, C, time_step, threshold, reset_mechanism, spike_grad,
               output_mem) -> LapicqueArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    return LapicqueArgs(
        x=x,
        mem=_checks.state(OP, "mem", mem, S),
        **_checks.params(OP, S, R=R, C=C, time_step=time_step, threshold=threshold),
        reset=reset_mechanism,
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def lapicque(x: mx.array, mem: mx.array | None = None, *, R, C, time_step=1.0,
             threshold=1.0, reset_mechanism: str = "subtract",
             spike_grad=_surrogate.atan(), output_mem: str = "last",
             backend: str = "auto") -> tuple[mx.array, mx.array]:
    """Lapicque's RC neuron over all T steps of ``x``: snnTorch's
    ``Lapicque`` stepped T times (forward-Euler RC circuit).

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        mem: initial membrane ``[*S]`` (zeros when None).
        R, C: resistance and capacitance, floats or arrays broadcastable to
            ``S``. Differentiable.
        time_step: the Euler step, likewise.
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final membrane ``[*S]``,
            ``"all"`` the membrane after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, mem)``: spikes ``[T, *S]`` and the membrane, in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, mem = fs.ops.lapicque(mx.full((3, 1), 2.0), R=1.0, C=2.0)
    >>> spk.tolist(), mem.tolist()
    ([[0.0], [1.0], [0.0]], [0.75])
    """
    a = check_args(x, mem, R, C, time_step, threshold, reset_mechanism, spike_grad,
                   output_mem)
    return _fused.dispatch(OP, backend, a)
