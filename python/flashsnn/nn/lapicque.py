"""``Lapicque``: snnTorch's RC-circuit neuron, on :func:`flashsnn.ops.lapicque`."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from .neurons import MembraneLIF


def _given(v) -> bool:
    # snnTorch's "not specified" is False (its default); None means the same here.
    return v is not None and v is not False


class Lapicque(MembraneLIF):
    """Lapicque's RC neuron, snnTorch's ``Lapicque`` with its arguments,
    defaults and results.

    Give ``beta``, or ``R`` and ``C``, or ``beta`` with one of them; the rest
    follows as in snnTorch: ``beta = exp(-time_step/(R*C))``; from ``beta``
    alone ``R = 1`` and ``C = time_step/(R*log(1/beta))``. The membrane update
    uses ``R``, ``C`` and ``time_step`` (see ``ops/README.md``). With
    ``learn_beta=True`` the derived ``R``/``C`` are recomputed from the
    current ``beta`` in every call, so ``beta`` trains (the ``R``, ``C``
    attributes keep their values at construction).

    Stepping: ``spk, mem = layer(x_t, mem)``. Whole sequences:
    ``spk, mem = layer.sequence(x, mem=None, output_mem="last")``: one call
    of :func:`flashsnn.ops.lapicque`.

    Args (as snnTorch): ``beta``, ``R``, ``C``, ``time_step``, ``threshold``,
    ``spike_grad``, ``surrogate_disable``, ``init_hidden``, ``inhibition``,
    ``learn_beta``, ``learn_threshold``, ``reset_mechanism``, ``state_quant``
    (only False), ``output``; and ``backend``. Unlike snnTorch, ``beta``,
    ``R`` and ``C`` may be per-neuron arrays.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, mem = fs.nn.Lapicque(R=1.0, C=2.0).sequence(mx.full((3, 1), 2.0))
    >>> spk[:, 0].tolist(), mem.tolist()
    ([0.0, 1.0, 0.0], [0.75])
    """

    _unit_params = ()  # beta derives R and C here; the op clamps nothing

    def __init__(self, beta=False, R=False, C=False, time_step=1, threshold=1.0,
                 spike_grad=None, surrogate_disable=False, init_hidden=False,
                 inhibition=False, learn_beta=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False, *,
                 backend="auto"):
        has_beta, has_R, has_C = _given(beta), _given(R), _given(C)
        if not has_beta and not (has_R and has_C):
            raise ValueError("[Lapicque] Either beta or 2 of beta, R and C must be "
                             "specified as an input argument.")
        if has_beta and has_R and has_C:
            # snnTorch accepts this and then fails on the first step.
            raise ValueError("[Lapicque] give beta, or R and C, or beta with one of R and "
                             "C; not all three (they over-determine the circuit)")
        if learn_beta and not has_beta:
            raise ValueError("[Lapicque] learn_beta=True needs beta: with R and C given, "
                             "beta is derived from them and the update does not use it")
        super().__init__(1.0 if not has_beta else beta, threshold, spike_grad,
                         surrogate_disable, init_hidden, inhibition, learn_beta,
                         learn_threshold, reset_mechanism, state_quant, output,
                         backend=backend)
        self._param("time_step", time_step, False)
        self._mode = "RC" if not has_beta else ("beta_R" if has_R else
                                                ("beta_C" if has_C else "beta"))
        if has_R:
            self._param("R", R, False)
        if has_C:
            self._param("C", C, False)
        R_, C_ = self._circuit()
        for name, value in (("R", R_), ("C", C_)):
            if name not in self:
                self._param(name, value, False)
        if self._mode == "RC":
            self._param("beta", mx.exp(-self.time_step / (self.R * self.C)), False)

    def _circuit(self) -> tuple[mx.array, mx.array]:
        """(R, C) for this step, derived from beta where snnTorch derives them."""
        dt, beta = self.time_step, self.beta
        if self._mode == "RC":
            return self.R, self.C
        if self._mode == "beta":
            R = mx.array(1.0)
            return R, dt / (R * mx.log(1 / beta))
        if self._mode == "beta_R":
            return self.R, dt / (self.R * mx.log(1 / beta))
        return dt / (self.C * mx.log(1 / beta)), self.C

    def _op(self, x, mem, *, output_mem):
        R, C = self._circuit()
        return ops.lapicque(x, mem, R=R, C=C, time_step=self.time_step,
                            threshold=self.threshold, reset_mechanism=self.reset_mechanism,
                            spike_grad=self.spike_grad, output_mem=output_mem,
                            backend=self.backend)

    def init_lapicque(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()
