"""Izhikevich's (2003) neuron over a whole sequence.

snnTorch has no Izhikevich neuron. This one is the paper's model and its
integration scheme (two half steps for ``v``, then ``u``), with the reset
applied in the step after the spike, as in the paper's own simulation loop
and in snnTorch's convention. Equations: ``python/flashsnn/ops/README.md``
(Izhikevich). Fused: ``src/step/izhikevich.h``; the pure-MLX reference is
``flashsnn.reference.izhikevich``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "izhikevich"
# (a, b, c, d) from Izhikevich (2003), Fig. 2: regular spiking, intrinsically
# bursting, chattering, fast spiking, low-threshold spiking, thalamo-cortical,
# resonator.
PRESETS = {
    "RS": (0.02, 0.2, -65.0, 8.0),
    "IB": (0.02, 0.2, -55.0, 4.0),
    "CH": (0.02, 0.2, -50.0, 2.0),
    "FS": (0.1, 0.2, -65.0, 2.0),
    "LTS": (0.02, 0.25, -65.0, 2.0),
    "TC": (0.02, 0.25, -65.0, 0.05),
    "RZ": (0.1, 0.26, -65.0, 2.0),
}
# The paper's initial condition: v = -65 mV, u = b*v.
V_REST = -65.0


@dataclass
class IzhikevichArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    mem: mx.array | None      # float32 [*S] or None (-65 mV)
    u: mx.array | None        # float32 [*S] or None (b * mem)
    a: mx.array               # float32, broadcastable to S
    b: mx.array
    c: mx.array
    d: mx.array
    threshold: mx.array
    time_step: mx.array
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, mem, u, a, b, c, d, threshold, time_step, spike_grad,
               output_mem) -> IzhikevichArgs:
    S = _checks.input_sequence(OP, x)
    _checks.choice(OP, "output_mem", output_mem, _family.OUTPUT_MEM)
    return IzhikevichArgs(
        x=x,
        **_checks.states(OP, S, mem=mem, u=u),
        **_checks.params(OP, S, a=a, b=b, c=c, d=d, threshold=threshold,
                         time_step=time_step),
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def izhikevich(x: mx.array, mem: mx.array | None = None, u: mx.array | None = None, *,
               a, b, c, d, threshold=30.0, time_step=1.0, spike_grad=_surrogate.atan(),
               output_mem: str = "last", backend: str = "auto"
               ) -> tuple[mx.array, mx.array, mx.array]:
    """Izhikevich neurons over all T steps of ``x`` (input current in the
    paper's units, membrane in mV, one step = ``time_step`` ms).

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        mem: initial membrane potential ``v`` ``[*S]`` (-65 mV when None).
        u: initial recovery variable ``[*S]`` (``b * mem`` when None).
        a, b, c, d: the model's parameters, floats or arrays broadcastable
            to ``S`` (differentiable); ``PRESETS`` holds the paper's cell
            types, e.g. ``**dict(zip("abcd", PRESETS["RS"]))``.
        threshold: spike peak: a neuron fires when ``v >= threshold``
            (30 mV). Differentiable.
        time_step: the step in ms (1.0, the paper's network code; <= 0.25
            reproduces the paper's single-cell firing patterns, see README).
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes`` (evaluated on ``v - threshold``).
        output_mem: ``"last"`` returns the final ``mem`` and ``u`` ``[*S]``;
            ``"all"`` returns both after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, mem, u)``: spikes ``[T, *S]`` and the states, in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> x = mx.full((100, 1), 10.0)                        # 100 ms of 10 units
    >>> spk, mem, u = fs.ops.izhikevich(x, a=0.02, b=0.2, c=-65.0, d=8.0)
    >>> int(spk.sum().item())                              # regular spiking
    3
    """
    args = check_args(x, mem, u, a, b, c, d, threshold, time_step, spike_grad,
                      output_mem)
    return _fused.dispatch(OP, backend, args)
