"""What the example networks share: their LIF layers' settings, checked once,
and one fused (or reference) Leaky call per layer."""

from __future__ import annotations

import mlx.nn as nn

from .. import ops, surrogate

BACKENDS = ("fused", "reference", "auto")
RESETS = ("none", "subtract", "zero")


class LIFNetwork(nn.Module):
    """Base of SpikingMLP and SpikingCNN: every LIF layer shares beta,
    threshold, surrogate and backend; the output layer's reset is its own."""

    def _set_lif(self, op: str, beta, threshold, spike_grad, backend: str,
                 output_reset: str) -> None:
        if not 0 <= beta <= 1:
            raise ValueError(f"[{op}] beta must lie in [0, 1]; got {beta!r}")
        if backend not in BACKENDS:
            raise ValueError(f"[{op}] unknown backend {backend!r}; valid: "
                             + ", ".join(repr(b) for b in BACKENDS))
        if output_reset not in RESETS:
            raise ValueError(f"[{op}] unknown output_reset {output_reset!r}; valid: "
                             + ", ".join(repr(r) for r in RESETS))
        # plain Python values: not parameters, so the optimizer leaves them alone
        self.beta = float(beta)
        self.threshold = float(threshold)
        self.spike_grad = spike_grad if spike_grad is not None else surrogate.fast_sigmoid(25)
        self.backend = backend
        self.output_reset = output_reset

    def _lif(self, x, reset: str, output_mem: str = "last"):
        return ops.leaky(x, beta=self.beta, threshold=self.threshold, reset_mechanism=reset,
                         spike_grad=self.spike_grad, output_mem=output_mem,
                         backend=self.backend)
