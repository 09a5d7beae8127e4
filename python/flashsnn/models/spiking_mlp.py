"""The mlx-snn paper's spiking MLP, each layer's whole sequence in one op call.

    x [T, B, D] -> Linear(D, h) -> LIF -> Linear(h, 10) -> LIF (reset off) -> U_T [B, 10]

(``output_reset="subtract"`` gives snnTorch's plain two-Leaky MLP instead.)

Classification is the argmax of the output layer's final membrane U_T and
training minimizes its cross entropy (``flashsnn.functional.membrane_ce``),
with Adam, rate-coded input, threshold 1 and the fast-sigmoid surrogate
(slope 25), as in the paper (Qin, "mlx-snn: Spiking Neural Networks on Apple
Silicon via MLX", arXiv:2603.03529v1, section 5 and Table "MNIST
classification").

The Linear layers run once over all T*B rows ([T*B, D] @ [D, h]), and each
LIF layer is one ``flashsnn.ops.leaky`` call over all T steps: the fused
kernel with ``backend="fused"``, the pure-MLX per-step loop with
``backend="reference"``. Both paths share every other op, so timing them
measures the neuron implementation and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mlx.core as mx
import mlx.nn as nn


from ._lif import LIFNetwork


@dataclass(frozen=True)
class Preset:
    """One hyperparameter configuration of the paper's MNIST sweep."""

    name: str
    beta: float
    hidden: int
    lr: float
    batch_size: int
    epochs: int
    steps: int = 25
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# arXiv:2603.03529v1, Table "MNIST classification: 5 hyperparameter
# configurations x 3 backends" (784-h-10, T = 25, fast sigmoid, Adam, batch
# 128 unless noted; C1-C4 25 epochs, C5 15). The values agree with the
# sweep script the paper was produced with (mlx-snn repository history,
# paper/benchmarks/bench_full_grid.py). The paper's MNIST test accuracy
# (mlx-snn / snnTorch MPS) is kept in `note`.
PRESETS = {
    "C1": Preset("C1", beta=0.85, hidden=256, lr=1e-3, batch_size=128, epochs=25,
                 note="paper MNIST: 97.28% mlx-snn, 98.00% snnTorch"),
    "C2": Preset("C2", beta=0.90, hidden=256, lr=1e-3, batch_size=128, epochs=25,
                 note="paper MNIST: 97.02% mlx-snn, 98.03% snnTorch"),
    "C3": Preset("C3", beta=0.90, hidden=256, lr=1e-3, batch_size=256, epochs=25,
                 note="paper MNIST: 96.91% mlx-snn, 98.03% snnTorch"),
    "C4": Preset("C4", beta=0.90, hidden=128, lr=1e-3, batch_size=128, epochs=25,
                 note="paper MNIST: 96.90% mlx-snn, 97.84% snnTorch"),
    "C5": Preset("C5", beta=0.95, hidden=128, lr=2e-3, batch_size=128, epochs=15,
                 note="paper MNIST: 94.98% mlx-snn, 97.09% snnTorch"),
}


class SpikingMLP(LIFNetwork):
    """Two spiking layers: ``Linear -> LIF -> Linear -> LIF (no reset)``.

    Args:
        num_inputs: D, features per time step.
        hidden: h, hidden LIF neurons.
        num_outputs: classes (10).
        beta: membrane decay of both layers.
        threshold: firing threshold of both layers.
        spike_grad: surrogate (default: fast sigmoid, slope 25, as the paper).
        backend: ``"fused"`` (the kernel; an error where none applies),
            ``"reference"`` (pure MLX, per-step loop) or ``"auto"``.
        output_reset: the output layer's reset: ``"none"`` (default, the
            paper's: its membrane integrates the evidence), ``"subtract"``
            or ``"zero"`` (snnTorch's ``Leaky`` in both layers, for losses on
            the output spikes such as ``ce_rate_loss``).

    Call: ``model(x)`` with rate-coded ``x`` ``[T, B, D]`` returns
    ``(spk_out [T, B, C], mem_out [B, C])``, the output spikes and final
    membrane (the logits). ``model(x, record=True)`` returns a dict with
    the hidden spikes ``spk1`` ``[T, B, h]``, ``spk2`` and the output
    membrane at every step ``mem2`` ``[T, B, C]``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> model = fs.models.SpikingMLP(64, 32, beta=0.9)
    >>> x = fs.encoding.rate(mx.random.uniform(shape=(4, 64)), num_steps=25)   # [25, 4, 64]
    >>> spk, mem = model(x)
    >>> spk.shape, mem.shape
    ((25, 4, 10), (4, 10))
    """

    def __init__(self, num_inputs: int, hidden: int, num_outputs: int = 10, *,
                 beta: float = 0.9, threshold: float = 1.0, spike_grad=None,
                 backend: str = "fused", output_reset: str = "none"):
        super().__init__()
        op = "SpikingMLP"
        for name, v in (("num_inputs", num_inputs), ("hidden", hidden),
                        ("num_outputs", num_outputs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"[{op}] {name} must be a positive int; got {v!r}")
        self.fc1 = nn.Linear(num_inputs, hidden)
        self.fc2 = nn.Linear(hidden, num_outputs)
        self._set_lif(op, beta, threshold, spike_grad, backend, output_reset)

    def __call__(self, x: mx.array, *, record: bool = False):
        if x.ndim != 3:
            raise ValueError(f"[SpikingMLP] x must be [T, B, D] (time first); got shape "
                             f"{tuple(x.shape)}")
        spk1, _ = self._lif(self.fc1(x), "subtract")
        spk2, mem2 = self._lif(self.fc2(spk1), self.output_reset,
                               "all" if record else "last")
        if record:
            return {"spk1": spk1, "spk2": spk2, "mem2": mem2}
        return spk2, mem2
