"""Fused multi-step neuron ops: ``flashsnn.ops.<family>(x, *state, **params)``.

Each op runs all T steps in one kernel launch, forward and backward, where a
kernel exists for the device and options, and falls back to its pure-MLX
reference (``flashsnn.reference.<family>``) elsewhere. Fused: ``leaky``,
``synaptic``, ``alpha``, ``lapicque`` (the table ``ops/_table.py``). The others
(``rleaky``, ``rsynaptic``, ``alif``, ``izhikevich``) have no kernel yet and
run their reference under ``backend="auto"``; ``backend="fused"`` says so in
an error.
"""

from .alif import alif
from .alpha import alpha
from .izhikevich import izhikevich
from .lapicque import lapicque
from .leaky import leaky
from .rleaky import rleaky
from .rsynaptic import rsynaptic
from .synaptic import synaptic

__all__ = ["leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "alif",
           "izhikevich"]
