"""The recurrent Leaky neuron (snnTorch's ``RLeaky``) over a whole sequence.

Equations: ``python/flashsnn/ops/README.md`` (RLeaky). The feedback is either
one-to-one (``V``, elementwise: fused, ``src/step/rleaky.h``) or any callable
``recurrent(spk) -> current`` (an ``mlx.nn.Linear`` or ``Conv2d``), which is
no longer elementwise and runs the pure-MLX reference
(``flashsnn.reference.rleaky``); ``backend="fused"`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "rleaky"


def recurrent_arg(op: str, V, recurrent, S: tuple):
    """``V`` (one-to-one weight, 1.0 when both are None) or ``recurrent``
    (a callable), never both. Returns ``(V or None, recurrent or None)``."""
    if recurrent is not None:
        if V is not None:
            raise ValueError(f"[{op}] pass either V (one-to-one feedback) or recurrent "
                             "(a callable, e.g. an mlx.nn.Linear), not both")
        if not callable(recurrent):
            raise TypeError(f"[{op}] recurrent must be a callable spk -> current "
                            f"(e.g. an mlx.nn.Linear); got {type(recurrent).__name__}")
        return None, recurrent
    return _checks.param(op, "V", 1.0 if V is None else V, S), None


@dataclass
class RLeakyArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    spk: mx.array | None      # float32 [*S] or None (zeros): the previous step's spikes
    mem: mx.array | None      # float32 [*S] or None (zeros)
    beta: mx.array            # float32, broadcastable to S
    V: mx.array | None        # one-to-one feedback weight, or None with `recurrent`
    recurrent: Callable | None
    threshold: mx.array
    reset: str
    reset_delay: bool
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, spk, mem, beta, V, recurrent, threshold, reset_mechanism, reset_delay,
               spike_grad, output_mem) -> RLeakyArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    V, recurrent = recurrent_arg(OP, V, recurrent, S)
    return RLeakyArgs(
        x=x,
        **_checks.states(OP, S, spk=spk, mem=mem),
        **_checks.params(OP, S, beta=beta, threshold=threshold),
        V=V,
        recurrent=recurrent,
        reset=reset_mechanism,
        reset_delay=_checks.flag(OP, "reset_delay", reset_delay),
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def rleaky(x: mx.array, spk: mx.array | None = None, mem: mx.array | None = None, *,
           beta, V=None, recurrent: Callable | None = None, threshold=1.0,
           reset_mechanism: str = "subtract", reset_delay: bool = True,
           spike_grad=_surrogate.atan(), output_mem: str = "last",
           backend: str = "auto") -> tuple[mx.array, mx.array]:
    """Recurrent Leaky over all T steps of ``x``: snnTorch's ``RLeaky``
    stepped T times, each step's spikes fed back into the next.

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        spk: the spikes before the first step ``[*S]`` (zeros when None).
        mem: initial membrane ``[*S]`` (zeros when None).
        beta: decay, a float or an array broadcastable to ``S``; clamped to
            [0, 1]. Differentiable.
        V: one-to-one feedback weight (float or array broadcastable to
            ``S``, differentiable); 1.0 when neither ``V`` nor ``recurrent``
            is given.
        recurrent: instead of ``V``, any callable mapping ``[*S]`` spikes to
            a ``[*S]`` current (an ``mlx.nn.Linear`` for all-to-all
            feedback, an ``mlx.nn.Conv2d`` on channels-last maps).
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        reset_delay: False also resets in the step that fires.
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final membrane ``[*S]``,
            ``"all"`` the membrane after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, mem)``: spikes ``[T, *S]`` (``spk[-1]`` is the next call's
        ``spk`` state) and the membrane, in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, mem = fs.ops.rleaky(mx.full((3, 1), 0.75), beta=0.5, V=0.5)
    >>> spk.tolist(), mem.tolist()
    ([[0.0], [1.0], [0.0]], [0.8125])
    """
    a = check_args(x, spk, mem, beta, V, recurrent, threshold, reset_mechanism,
                   reset_delay, spike_grad, output_mem)
    return _fused.dispatch(OP, backend, a)
