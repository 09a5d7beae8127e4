"""Fused multi-step neuron ops: ``flashsnn.ops.<family>(x, *state, **params)``.

Each op runs all T steps in one kernel launch, forward and backward, where a
kernel exists for the device and options, and falls back to its pure-MLX
reference (``flashsnn.reference.<family>``) elsewhere.
"""

from .leaky import leaky

__all__ = ["leaky"]
