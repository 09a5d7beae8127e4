"""What `flashsnn bench-train` times: one training step of the same network
in each library.

Two workloads (:class:`Workload`): the mlx-snn paper's MLP (784-256-10, two
Leaky layers) and a small convolutional SNN (28x28x1 -> conv 3x3, 16 ->
Leaky -> max pool 2 -> conv 3x3, 32 -> Leaky -> max pool 2 -> Linear, 10 ->
Leaky). Every implementation gets the same sizes, the same rate-coded
spikes and labels, the same loss (snnTorch's ``ce_rate_loss``: cross entropy
of the output spikes at every step, averaged over T) and Adam. A step is
forward, loss, backward and the optimizer update, and waits for its
results. Each library runs the network as its own documentation writes it:
snnTorch and mlx-snn step their layers T times in Python; SpikingJelly runs
each layer over all T steps (``step_mode='m'``); flashsnn runs each Linear or
convolution over all T*B rows at once and each LIF layer as one
``flashsnn.ops.leaky`` call.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import flashsnn as fs

SLOPE = 25.0        # fast-sigmoid surrogate slope (the mlx-snn paper's, snnTorch's default)


@dataclass(frozen=True)
class Workload:
    model: str              # "mlp" or "conv"
    T: int
    B: int
    beta: float = 0.85      # the mlx-snn paper's C1
    lr: float = 1e-3
    hidden: int = 256       # mlp
    inputs: int = 784       # mlp: features per step
    frame: tuple = (28, 28, 1)      # conv: H, W, C (channels-last)
    channels: tuple = (16, 32)      # conv
    classes: int = 10

    @property
    def label(self) -> str:
        if self.model == "mlp":
            return f"mlp {self.inputs}-{self.hidden}-{self.classes} T={self.T} B={self.B}"
        H, W, C = self.frame
        return (f"conv {H}x{W}x{C}-c{self.channels[0]}-c{self.channels[1]}-{self.classes} "
                f"T={self.T} B={self.B}")

    @property
    def x_shape(self) -> tuple:
        return (self.T, self.B, self.inputs) if self.model == "mlp" else \
            (self.T, self.B, *self.frame)


def make_data(w: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rate-coded spikes ``[T, B, ...]`` float32 and labels ``[B]``. Each
    class has its own map of firing probabilities (uniform in [0, 1], as
    scaled pixels), so the batch can be learned: with random labels over
    random spikes, 4 Adam steps at lr 1e-3 left the MLP's loss at chance
    (2.30-2.32), too flat for the check to tell a broken step from a working
    one; with class maps it fell 2.31 -> 2.14-2.25 in flashsnn, mlx-snn and
    snnTorch alike."""
    rng = np.random.default_rng(seed)
    maps = rng.uniform(size=(w.classes, *w.x_shape[2:])).astype(np.float32)
    y = rng.integers(0, w.classes, size=w.B)
    x = (rng.uniform(size=w.x_shape) < maps[y][None]).astype(np.float32)
    return x, y.astype(np.int32)


@dataclass
class Prepared:
    """``step()`` runs one training step and waits for it (parameters,
    optimizer state and loss); it returns the loss, which ``value`` turns
    into a float."""

    step: Callable
    value: Callable
    framework: str          # "mlx" or "torch": whose allocator measures its memory
    note: str = ""


@dataclass
class TrainImpl:
    name: str
    prepare: Callable       # (workload, data, device, seed) -> Prepared
    available: Callable = lambda w, device: None   # -> None, or why it cannot run
    own: bool = False       # flashsnn's: held to the same first-step loss


# ---------------------------------------------------------------- flashsnn --

def flashsnn_model(w: Workload, backend: str, seed: int) -> nn.Module:
    """The flashsnn model with the weights that ``seed`` gives, the same for
    every backend."""
    mx.random.seed(seed)
    if w.model == "mlp":
        m = fs.models.SpikingMLP(w.inputs, w.hidden, w.classes, beta=w.beta, backend=backend,
                                 output_reset="subtract")
    else:
        m = fs.models.SpikingCNN(w.frame, w.classes, channels=w.channels, beta=w.beta,
                                 backend=backend, output_reset="subtract")
    mx.eval(m.parameters())
    return m


def _flashsnn(backend: str, compiled: bool):
    def prepare(w, data, device, seed):
        model = flashsnn_model(w, backend, seed)
        opt = optim.Adam(learning_rate=w.lr)
        ce = fs.functional.ce_rate_loss()
        step = fs.train.make_train_step(model, opt, lambda m, x, y: ce(m(x)[0], y),
                                        compile=compiled)
        x, y = mx.array(data[0]), mx.array(data[1])

        def run():
            loss = step(x, y)
            mx.eval(loss, model.parameters(), opt.state)
            return loss
        return Prepared(run, lambda loss: loss.item(), "mlx",
                        ("whole step mx.compile'd; " if compiled else "")
                        + f"flashsnn.ops.leaky backend='{backend}'")
    return prepare


def _fused_available(w, device):
    from .._device import resolve_device
    return fs.fused_unavailable_reason(resolve_device(device))


# ----------------------------------------------------------------- mlx-snn --

def _mlxsnn_available(w, device):
    return None if importlib.util.find_spec("mlxsnn") else \
        "mlx-snn is not installed (pip install mlx-snn==0.5.0)"


def _mlxsnn(w, data, device, seed):
    import mlxsnn

    def lif():
        return mlxsnn.Leaky(beta=w.beta, threshold=1.0, reset_mechanism="subtract",
                            surrogate_fn="fast_sigmoid", surrogate_scale=SLOPE)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(w.inputs, w.hidden), lif()
            self.fc2, self.lif2 = nn.Linear(w.hidden, w.classes), lif()

        def __call__(self, x):
            s1, s2 = self.lif1.init_state(w.B, w.hidden), self.lif2.init_state(w.B, w.classes)
            out = []
            for t in range(w.T):
                spk, s1 = self.lif1(self.fc1(x[t]), s1)
                spk, s2 = self.lif2(self.fc2(spk), s2)
                out.append(spk)
            return mx.stack(out)

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            (H, W, C), (c1, c2) = w.frame, w.channels
            p = {"beta": w.beta, "threshold": 1.0, "reset_mechanism": "subtract",
                 "surrogate_fn": "fast_sigmoid", "surrogate_scale": SLOPE}
            self.conv1 = mlxsnn.SpikingConv2d(C, c1, 3, padding=1, bn=False, neuron_params=p)
            self.conv2 = mlxsnn.SpikingConv2d(c1, c2, 3, padding=1, bn=False, neuron_params=p)
            self.pool = mlxsnn.SpikingMaxPool2d(2)
            self.fc, self.lif3 = nn.Linear((H // 4) * (W // 4) * c2, w.classes), lif()
            self.hw = (H, W)

        def __call__(self, x):
            H, W = self.hw
            s1 = self.conv1.init_state(w.B, (H, W))
            s2 = self.conv2.init_state(w.B, (H // 2, W // 2))
            s3 = self.lif3.init_state(w.B, w.classes)
            out = []
            for t in range(w.T):
                spk, s1 = self.conv1(x[t], s1)
                spk, s2 = self.conv2(self.pool(spk), s2)
                p = self.pool(spk)
                spk, s3 = self.lif3(self.fc(p.reshape(w.B, -1)), s3)
                out.append(spk)
            return mx.stack(out)

    mx.random.seed(seed)
    model = MLP() if w.model == "mlp" else Conv()
    mx.eval(model.parameters())
    opt = optim.Adam(learning_rate=w.lr)

    def loss_fn(m, x, y):       # snnTorch's ce_rate_loss, in MLX
        spk = m(x)
        return mx.mean(nn.losses.cross_entropy(spk.reshape(-1, w.classes), mx.tile(y, w.T)))

    grad_fn = nn.value_and_grad(model, loss_fn)
    x, y = mx.array(data[0]), mx.array(data[1])

    def run():
        loss, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        mx.eval(loss, model.parameters(), opt.state)
        return loss
    return Prepared(run, lambda loss: loss.item(), "mlx",
                    "mlxsnn.Leaky / SpikingConv2d stepped T times, uncompiled (as its "
                    "examples); same-step reset, >= firing")


# ------------------------------------------------------------ torch-based --

def _torch_available(w, device):
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    import torch
    if device == "gpu" and not torch.cuda.is_available():
        return "torch has no CUDA device"
    return None


def _torch_io(w, data, device):
    import torch
    dev = "cuda" if device == "gpu" else "cpu"
    x = torch.tensor(data[0], device=dev)
    if w.model == "conv":                       # torch is channels-first: [T, B, C, H, W]
        x = x.permute(0, 1, 4, 2, 3).contiguous()
    return x, torch.tensor(data[1], dtype=torch.long, device=dev), dev


def _torch_prepared(net, x, y, dev, forward, lr, note):
    import torch
    import torch.nn.functional as F
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    T = x.shape[0]

    def run():
        opt.zero_grad(set_to_none=True)
        spk = forward(x)                                        # [T, B, classes]
        loss = F.cross_entropy(spk.flatten(0, 1), y.repeat(T))  # = ce_rate_loss
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        return loss
    return Prepared(run, lambda loss: loss.item(), "torch", note)


def _snntorch_available(w, device):
    return _torch_available(w, device) or (
        None if importlib.util.find_spec("snntorch") else "snntorch is not installed")


def _snntorch(w, data, device, seed):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    torch.manual_seed(seed)
    x, y, dev = _torch_io(w, data, device)

    def lif():
        return snn.Leaky(beta=w.beta, spike_grad=surrogate.fast_sigmoid(slope=SLOPE))

    if w.model == "mlp":
        net = torch.nn.ModuleDict({"fc1": torch.nn.Linear(w.inputs, w.hidden), "lif1": lif(),
                                   "fc2": torch.nn.Linear(w.hidden, w.classes),
                                   "lif2": lif()}).to(dev)

        def forward(xs):
            m1, m2 = net["lif1"].init_leaky(), net["lif2"].init_leaky()
            out = []
            for t in range(w.T):
                s, m1 = net["lif1"](net["fc1"](xs[t]), m1)
                s, m2 = net["lif2"](net["fc2"](s), m2)
                out.append(s)
            return torch.stack(out)
    else:
        (H, W, C), (c1, c2) = w.frame, w.channels
        net = torch.nn.ModuleDict({
            "conv1": torch.nn.Conv2d(C, c1, 3, padding=1), "lif1": lif(),
            "conv2": torch.nn.Conv2d(c1, c2, 3, padding=1), "lif2": lif(),
            "fc": torch.nn.Linear((H // 4) * (W // 4) * c2, w.classes), "lif3": lif()}).to(dev)
        pool = torch.nn.MaxPool2d(2)

        def forward(xs):
            m1, m2, m3 = (net[k].init_leaky() for k in ("lif1", "lif2", "lif3"))
            out = []
            for t in range(w.T):
                s, m1 = net["lif1"](net["conv1"](xs[t]), m1)
                s, m2 = net["lif2"](net["conv2"](pool(s)), m2)
                s, m3 = net["lif3"](net["fc"](pool(s).flatten(1)), m3)
                out.append(s)
            return torch.stack(out)
    return _torch_prepared(net, x, y, dev, forward, w.lr,
                           "snn.Leaky stepped T times (its tutorials' loop)")


def _spikingjelly_available(w, device):
    return _torch_available(w, device) or (
        None if importlib.util.find_spec("spikingjelly") else
        "spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)")


def _spikingjelly(w, data, device, seed):
    import torch
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(seed)
    x, y, dev = _torch_io(w, data, device)

    def lif():
        # beta = 1 - 1/tau with no input decay and a soft (subtract) reset is
        # Leaky's equation; SoftSign(alpha) is the fast sigmoid's shape,
        # alpha / (2 (1 + alpha |h|)^2), one of the surrogates its fused
        # CUDA/Triton kernels take (a Python surrogate would fall back to torch).
        return neuron.LIFNode(tau=1.0 / (1.0 - w.beta), decay_input=False, v_threshold=1.0,
                              v_reset=None, surrogate_function=surrogate.SoftSign(alpha=SLOPE),
                              step_mode="m")

    if w.model == "mlp":
        net = torch.nn.Sequential(layer.Linear(w.inputs, w.hidden, step_mode="m"), lif(),
                                  layer.Linear(w.hidden, w.classes, step_mode="m"), lif())
    else:
        (H, W, C), (c1, c2) = w.frame, w.channels
        net = torch.nn.Sequential(
            layer.Conv2d(C, c1, 3, padding=1, step_mode="m"), lif(),
            layer.MaxPool2d(2, 2, step_mode="m"),
            layer.Conv2d(c1, c2, 3, padding=1, step_mode="m"), lif(),
            layer.MaxPool2d(2, 2, step_mode="m"), layer.Flatten(step_mode="m"),
            layer.Linear((H // 4) * (W // 4) * c2, w.classes, step_mode="m"), lif())
    net = net.to(dev)
    chosen = "torch"
    if dev == "cuda":
        chosen = functional.neuron_implementation("lif", torch.device("cuda"))["implementation"]

    def forward(xs):
        functional.reset_net(net)
        return net(xs)
    return _torch_prepared(net, x, y, dev, forward, w.lr,
                           f"LIFNode(step_mode='m'), implementation '{chosen}'; same-step "
                           "reset, >= firing; SoftSign(25) surrogate")


IMPLS = [
    TrainImpl("fused+compile", _flashsnn("fused", True), _fused_available, own=True),
    TrainImpl("fused", _flashsnn("fused", False), _fused_available, own=True),
    TrainImpl("reference", _flashsnn("reference", False), own=True),
    TrainImpl("mlx-snn", _mlxsnn, _mlxsnn_available),
    TrainImpl("snntorch", _snntorch, _snntorch_available),
    TrainImpl("spikingjelly", _spikingjelly, _spikingjelly_available),
]
BASELINE = "fused+compile"
