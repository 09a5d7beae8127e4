"""The Leaky integrate-and-fire neuron over a whole sequence, in one launch.

Equations and the three reset conventions: ``python/flashsnn/ops/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "leaky"
RESETS = {"subtract": 0, "zero": 1, "none": 2}
_RESET_NAMES = tuple(RESETS)
CONVENTIONS = ("snntorch", "same_step")
# fs::Mode in src/step/common.h
DELAYED, IMMEDIATE, SAME_STEP = 0, 1, 2


@dataclass
class LeakyArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by the fused and reference paths."""

    x: mx.array
    mem: mx.array | None      # float32 [*S] or None (zeros)
    beta: mx.array            # float32, broadcastable to S
    threshold: mx.array       # float32, broadcastable to S
    reset: str
    mode: int
    detach: bool
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, mem, beta, threshold, reset_mechanism, reset_delay, spike_grad,
               output_mem, convention, detach_reset) -> LeakyArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem, _RESET_NAMES)
    _checks.choice(OP, "convention", convention, CONVENTIONS)
    reset_delay = _checks.flag(OP, "reset_delay", reset_delay)
    if convention == "same_step":
        if not reset_delay:
            raise ValueError(f"[{OP}] reset_delay=False is snnTorch's option; the same_step "
                             "convention always resets in the step that fires")
        mode = SAME_STEP
    else:
        mode = DELAYED if reset_delay else IMMEDIATE
    return LeakyArgs(
        x=x,
        mem=_checks.state(OP, "mem", mem, S),
        beta=_checks.param(OP, "beta", beta, S),
        threshold=_checks.param(OP, "threshold", threshold, S),
        reset=reset_mechanism,
        mode=mode,
        detach=_checks.flag(OP, "detach_reset", detach_reset),
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def leaky(x: mx.array, mem: mx.array | None = None, *, beta, threshold=1.0,
          reset_mechanism: str = "subtract", reset_delay: bool = True,
          spike_grad=_surrogate.atan(), output_mem: str = "last",
          convention: str = "snntorch", detach_reset: bool = False,
          backend: str = "auto") -> tuple[mx.array, mx.array]:
    """Leaky integrate-and-fire over all T steps of ``x``.

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        mem: initial membrane ``[*S]``, or a float or an array broadcastable
            to ``S`` (zeros when None). Differentiable.
        beta: decay, a float or an array broadcastable to ``S``; clamped to
            [0, 1] as snnTorch does. Differentiable.
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        reset_delay: snnTorch's option: False also resets in the step that
            fires.
        spike_grad: a ``flashsnn.surrogate`` surrogate (kernels) or any
            callable ``f(v) -> spikes`` (reference path).
        output_mem: ``"last"`` returns the final membrane ``[*S]``,
            ``"all"`` the membrane after every step ``[T, *S]``.
        convention: ``"snntorch"`` (default; exactly snnTorch's ``Leaky``
            stepped T times) or ``"same_step"`` (SpikingJelly / mlx-snn:
            charge, fire with ``>=``, reset in the same step).
        detach_reset: with a same-step reset, pass no gradient through it
            (SpikingJelly's ``detach_reset``).
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, mem)``: spikes ``[T, *S]`` and the membrane, in x's dtype.
        ``mem`` has snnTorch's meaning: stepping ``snntorch.Leaky`` T times
        from the same initial membrane gives the same spikes and membranes.

    >>> import mlx.core as mx, flashsnn as fs
    >>> x = mx.full((3, 1), 0.75)            # T = 3, one neuron
    >>> spk, mem = fs.ops.leaky(x, beta=0.5, output_mem="all")
    >>> mem[:, 0].tolist()                   # 0.75, 0.5*0.75+0.75, 0.5*1.125+0.75-1
    [0.75, 1.125, 0.3125]
    >>> spk[:, 0].tolist()                   # fires when U > threshold = 1
    [0.0, 1.0, 0.0]
    """
    a = check_args(x, mem, beta, threshold, reset_mechanism, reset_delay, spike_grad,
                   output_mem, convention, detach_reset)
    return _fused.dispatch(OP, backend, a)
