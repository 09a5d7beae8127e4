"""The fused families' table: the Python side of ``src/step/families.h``.

One entry per fused family says how its op's checked arguments (the
``<Family>Args`` record) map onto the generic kernel's inputs: the initial
states and the parameters in kernel order, the kernel mode the options
select, and any parameter the op derives in MLX before the kernel (Alpha's
tau, computed with the reference's own expression). Everything generic reads
it: the dispatch (``_fused.run``), the generated tests and
``flashsnn bench --family``. ``tests/ops/test_family_table.py`` checks it
against the extension's own list (``_ext.families()``).

Adding a family: its step header, one line in ``src/step/families.h`` and
one entry here (docs/adding-a-family.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx

# fs::Mode (src/step/common.h)
DELAYED, IMMEDIATE, SAME_STEP = 0, 1, 2
# fs::Reset, in snnTorch's order
RESETS = {"subtract": 0, "zero": 1, "none": 2}


def _delay_mode(a) -> int:
    return DELAYED if a.reset_delay else IMMEDIATE


def _alpha_tau(a) -> mx.array:
    # The reference's expression (flashsnn/reference/alpha.py), in the same
    # order, so that the kernel sees the bits the reference computes.
    alpha = mx.where(a.alpha < 0, 0.0, mx.where(a.alpha > 1, 1.0, a.alpha))
    beta = mx.where(a.beta < 0, 0.0, mx.where(a.beta > 1, 1.0, a.beta))
    log_a = mx.log(alpha)
    return log_a / (mx.log(beta) - log_a) + 1


def _rleaky_reason(a) -> str | None:
    if a.recurrent is not None:
        return ("recurrent is a callable (all-to-all or convolutional feedback): the step "
                "is no longer elementwise, so it runs on the reference path; one-to-one "
                "feedback (V) is fused")
    return None


def _alif_spk(a) -> mx.array:
    # The spike entering step 0, P_1 = spike_grad(mem - threshold - b*adapt),
    # computed as the reference does (with the surrogate's gradient), so that
    # the kernel's fed-back spike carries its gradient to these inputs.
    from ..surrogate import fire
    mem = _ZERO if a.mem is None else a.mem
    adapt = _ZERO if a.adapt is None else a.adapt
    return fire(a.spike_grad, mem - a.threshold - a.b * adapt)


def _izhikevich_mem(a) -> mx.array:
    return _V_REST if a.mem is None else a.mem


def _izhikevich_u(a) -> mx.array:
    # The paper's u = b*v (the reference's expression) when u is None.
    return a.b * _izhikevich_mem(a) if a.u is None else a.u


_ZERO = mx.array(0.0, dtype=mx.float32)
_V_REST = mx.array(-65.0, dtype=mx.float32)  # flashsnn.ops.izhikevich.V_REST


@dataclass(frozen=True)
class Family:
    name: str                       # the op, flashsnn.ops.<name>
    id: int                         # fs::FamilyId
    states: tuple[str, ...]         # Args fields of the initial states, kernel order;
                                    # the first `outputs` are the op's state outputs
    params: tuple[str, ...]         # Args fields of the parameters, kernel order
    outputs: int | None = None      # state outputs (None: all); the rest are carried only
    op_states: tuple[str, ...] | None = None  # the states the op takes (None: all)
    resets: tuple[str, ...] = tuple(RESETS)   # the reset mechanisms the op takes
    # Initial states the op makes in MLX (a state field -> fn(Args)) instead
    # of reading the Args field (None there is a scalar 0 for the kernel).
    initial: dict = field(default_factory=dict)
    # Why the kernel does not apply to these arguments (None: it does).
    reason: Callable = lambda a: None
    mode: Callable = lambda a: DELAYED        # Args -> fs::Mode
    modes: tuple[int, ...] = (DELAYED,)       # the modes the kernel has
    derived: tuple[tuple[str, Callable], ...] = ()  # parameters made in MLX, after `params`
    # Values for tests and benchmarks: each parameter's (and, where the
    # defaults do not suit, each initial state's and x's) range for random
    # per-neuron values, and keyword options the op takes.
    sample: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # option name -> the values to test
    bench: dict = field(default_factory=dict)    # scalar parameters flashsnn bench runs with

    @property
    def arg_states(self) -> tuple[str, ...]:
        return self.states if self.op_states is None else self.op_states

    @property
    def n_outputs(self) -> int:
        return len(self.states) if self.outputs is None else self.outputs

    def reset_id(self, a) -> int:
        return RESETS[a.reset] if len(self.resets) > 1 else RESETS[self.resets[0]]

    def kernel_params(self, a) -> list[mx.array]:
        return [getattr(a, p) for p in self.params] + [f(a) for _, f in self.derived]


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("leaky", 0, states=("mem",), params=("beta", "threshold"),
           mode=lambda a: a.mode, modes=(DELAYED, IMMEDIATE, SAME_STEP),
           sample={"beta": (0.5, 0.98), "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False), "convention": ("snntorch", "same_step")},
           bench={"beta": 0.9, "threshold": 1.0}),
    Family("synaptic", 1, states=("syn", "mem"), params=("alpha", "beta", "threshold"),
           mode=_delay_mode, modes=(DELAYED, IMMEDIATE),
           sample={"alpha": (0.3, 0.95), "beta": (0.5, 0.98), "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False)},
           bench={"alpha": 0.8, "beta": 0.9, "threshold": 1.0}),
    Family("alpha", 2, states=("syn_exc", "syn_inh", "mem"),
           params=("alpha", "beta", "threshold"), derived=(("tau", _alpha_tau),),
           # snnTorch's Alpha needs alpha > beta (tau > 0).
           sample={"alpha": (0.85, 0.95), "beta": (0.5, 0.8), "threshold": (0.5, 1.5)},
           bench={"alpha": 0.9, "beta": 0.7, "threshold": 1.0}),
    Family("lapicque", 3, states=("mem",), params=("R", "C", "time_step", "threshold"),
           sample={"R": (2.0, 8.0), "C": (0.5, 2.0), "time_step": (0.5, 1.0),
                   "threshold": (0.5, 1.5)},
           bench={"R": 5.0, "C": 1.0, "time_step": 1.0, "threshold": 1.0}),
    Family("rleaky", 4, states=("mem", "spk"), outputs=1, params=("beta", "V", "threshold"),
           mode=_delay_mode, modes=(DELAYED, IMMEDIATE), reason=_rleaky_reason,
           sample={"beta": (0.5, 0.98), "V": (-0.5, 0.5), "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False)},
           bench={"beta": 0.9, "V": 0.5, "threshold": 1.0}),
    Family("rsynaptic", 5, states=("syn", "mem", "spk"), outputs=2,
           params=("alpha", "beta", "V", "threshold"), mode=_delay_mode,
           modes=(DELAYED, IMMEDIATE), reason=_rleaky_reason,
           sample={"alpha": (0.3, 0.95), "beta": (0.5, 0.98), "V": (-0.5, 0.5),
                   "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False)},
           bench={"alpha": 0.8, "beta": 0.9, "V": 0.5, "threshold": 1.0}),
    Family("alif", 6, states=("mem", "adapt", "spk"), outputs=2, op_states=("mem", "adapt"),
           params=("beta", "threshold", "rho", "b"), initial={"spk": _alif_spk},
           sample={"beta": (0.5, 0.98), "threshold": (0.5, 1.5), "rho": (0.8, 0.99),
                   "b": (0.0, 0.5)},
           bench={"beta": 0.9, "threshold": 1.0, "rho": 0.95, "b": 0.1}),
    Family("izhikevich", 7, states=("mem", "u"), params=("a", "b", "c", "d", "threshold",
                                                         "time_step"),
           resets=("subtract",), initial={"mem": _izhikevich_mem, "u": _izhikevich_u},
           sample={"a": (0.02, 0.1), "b": (0.2, 0.26), "c": (-65.0, -50.0), "d": (2.0, 8.0),
                   "threshold": (25.0, 35.0), "time_step": (0.25, 0.5),
                   # mV and the paper's current units: some neurons start
                   # above threshold, the input drives the rest there.
                   "mem": (-70.0, 35.0), "u": (-15.0, 0.0), "x": (12.0, 8.0)},
           bench={"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0, "threshold": 30.0,
                  "time_step": 0.5}),
)}

BY_ID = {f.id: f for f in FAMILIES.values()}
