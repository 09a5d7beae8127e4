"""snnTorch-compatible neuron layers for MLX.

Class names, arguments, defaults and results follow snnTorch 1.0
(``Leaky``, ``Synaptic``, ``Alpha``, ``Lapicque``, ``RLeaky``, ``RSynaptic``),
plus ``IF``, ``ALIF`` and ``Izhikevich``. Each is an ``mlx.nn.Module``:

* stepping, as in snnTorch: ``spk, mem = lif(x_t, mem)``;
* a whole sequence in one op call: ``spk, mem = lif.sequence(x)`` with
  ``x`` ``[T, ...]`` (Leaky and IF: one fused kernel launch);
* learnable parameters (``learn_beta=True``...) are trainable arrays for
  ``mlx.nn.value_and_grad`` and ``mlx.optimizers``; fixed ones are frozen.

See ``docs/layers.md``.
"""

from .alif import ALIF
from .alpha import Alpha
from .izhikevich import Izhikevich
from .lapicque import Lapicque
from .leaky import IF, Leaky
from .neurons import LIF, SpikingNeuron, reset
from .rleaky import RLeaky
from .rsynaptic import RSynaptic
from .synaptic import Synaptic

__all__ = ["SpikingNeuron", "LIF", "Leaky", "Synaptic", "Alpha", "Lapicque", "RLeaky",
           "RSynaptic", "IF", "ALIF", "Izhikevich", "reset"]
