"""``Izhikevich``: the 2003 model with the paper's cell types, on
:func:`flashsnn.ops.izhikevich`. snnTorch has no Izhikevich neuron."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from ..ops import _checks
from ..ops.izhikevich import PRESETS, V_REST
from .neurons import SpikingNeuron


class Izhikevich(SpikingNeuron):
    """Izhikevich (2003) neurons: ``v`` in mV, one step = ``time_step`` ms,
    input in the paper's current units; a spike when ``v >= threshold``
    (30 mV), then ``v = c`` and ``u += d`` in the next step.

    ``preset`` picks the paper's cell type: ``"RS"`` (regular spiking,
    default), ``"IB"`` (intrinsically bursting), ``"CH"`` (chattering),
    ``"FS"`` (fast spiking), ``"LTS"``, ``"TC"``, ``"RZ"``; any of ``a``,
    ``b``, ``c``, ``d`` given overrides the preset's value (``preset=None``
    needs all four). Each may be a per-neuron array.

    ``time_step`` is in ms: 1.0 as the paper's network code; 0.25 or less
    reproduces the firing patterns of the paper's Fig. 2 (at 1 ms the spike's
    overshoot feeds into ``u`` and FS fires irregularly).

    Stepping: ``spk, mem, u = layer(x_t, mem, u)``. Whole sequences:
    ``spk, mem, u = layer.sequence(x, mem=None, u=None, output_mem="last")``:
    one call of :func:`flashsnn.ops.izhikevich`. States start at rest
    (``mem = -65``, ``u = b*mem``); :meth:`reset_mem` returns there.

    Args: ``preset``, ``a``, ``b``, ``c``, ``d``, ``threshold``,
    ``time_step``, ``spike_grad``, ``surrogate_disable``, ``init_hidden``,
    ``inhibition``, ``learn_a``/``learn_b``/``learn_c``/``learn_d``,
    ``learn_threshold``, ``state_quant`` (only False), ``output``,
    ``graded_spikes_factor``, ``learn_graded_spikes_factor``; ``backend``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> x = mx.full((200, 1), 10.0)                      # 200 ms of input 10
    >>> [int(fs.nn.Izhikevich(p).sequence(x)[0].sum().item()) for p in ("RS", "FS")]
    [5, 14]
    """

    _states = ("mem", "u")

    def __init__(self, preset="RS", a=None, b=None, c=None, d=None, threshold=30.0,
                 time_step=1.0, spike_grad=None, surrogate_disable=False, init_hidden=False,
                 inhibition=False, learn_a=False, learn_b=False, learn_c=False,
                 learn_d=False, learn_threshold=False, state_quant=False, output=False,
                 graded_spikes_factor=1.0, learn_graded_spikes_factor=False, *,
                 backend="auto"):
        super().__init__(threshold, spike_grad, surrogate_disable, init_hidden, inhibition,
                         learn_threshold, None, state_quant, output, graded_spikes_factor,
                         learn_graded_spikes_factor, backend)
        given = {"a": a, "b": b, "c": c, "d": d}
        if preset is None:
            missing = [k for k, v in given.items() if v is None]
            if missing:
                raise ValueError(f"[Izhikevich] preset=None needs a, b, c and d; missing "
                                 f"{', '.join(missing)}")
            values = given
        else:
            _checks.choice("Izhikevich", "preset", preset, tuple(PRESETS))
            values = {k: (v if v is not None else p)
                      for (k, v), p in zip(given.items(), PRESETS[preset])}
        self.preset = preset
        learn = {"a": learn_a, "b": learn_b, "c": learn_c, "d": learn_d}
        for k, v in values.items():
            self._param(k, v, learn[k])
        self._param("time_step", time_step, False)

    def _rest(self, name, like):
        """reset_mem: back to rest (v = -65 mV, u = b v), not to zeros."""
        if like.size == 0:  # never run: stay empty, the op starts at rest
            return like
        rest = V_REST if name == "mem" else self.b * V_REST
        return mx.broadcast_to(rest, like.shape).astype(like.dtype)

    def __call__(self, input_: mx.array, mem: mx.array | None = None,
                 u: mx.array | None = None):
        return self._forward(input_, {"mem": mem, "u": u}, sequence=False)

    def sequence(self, x: mx.array, mem: mx.array | None = None, u: mx.array | None = None,
                 *, output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S], mem,
        u)``, the states ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"mem": mem, "u": u}, sequence=True, output_mem=output_mem)

    def _op(self, x, mem, u, *, output_mem):
        return ops.izhikevich(x, mem, u, a=self.a, b=self.b, c=self.c, d=self.d,
                              threshold=self.threshold, time_step=self.time_step,
                              spike_grad=self.spike_grad, output_mem=output_mem,
                              backend=self.backend)

    def init_izhikevich(self):
        """Same as :meth:`reset_mem`: states back at rest."""
        return self.reset_mem()

    def _extra_repr(self) -> str:
        return f"preset={self.preset!r}, " + super()._extra_repr()
