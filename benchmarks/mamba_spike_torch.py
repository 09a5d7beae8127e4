"""Mamba-Spike in plain PyTorch, the same model as ``flashsnn.models.MambaSpike``.

Written from the model's semantics (``docs/mamba-spike.md``), not from the
public repository: the side-by-side baseline for flashsnn's MLX model, with
the same layout, parameter names and init scheme, so that weights copy across
(:func:`copy_from_mlx`) and the two can be checked against each other
(``tests/train/test_mamba_spike_torch.py``) or trained from the same recipe
(:func:`train_torch`)::

    x [T, B, H, W, 2]   time first, channels last (as flashsnn); NCHW inside
    front end           conv3x3 -> maxpool 2 -> LIF, conv3x3 -> maxpool 2 -> LIF,
                        conv3x3 -> LIF; each LIF's input also gets a 1x1 conv of
                        the layer's spikes one step before (none at t = 0)
    LIF                 snnTorch's Leaky as flashsnn runs it: beta 0.97,
                        threshold 1, subtract reset by the previous step's
                        detached spike, fast-sigmoid surrogate (slope 25)
    interface           flatten each step channels-last (h, w, c), causal mean of
                        the last 5 steps' spikes, Linear F -> d_model
    backbone            n_layers x (x + Mamba(LayerNorm(x))), Mamba-1 blocks with a
                        bias-free depthwise causal conv1d and a float32
                        sequential selective scan (flashsnn's reference math)
    head                mean over time -> LayerNorm -> Linear -> logits [B, classes]

Init follows flashsnn's model: MLX's defaults where it uses them (Linear:
uniform +-1/sqrt(fan_in) for weight and bias, as PyTorch's; conv: the same
weight bound, **zero bias**, which PyTorch would draw uniform) and the Mamba
init (dt_proj, A_log = log(n + 1), D = 1) as flashsnn writes it.

    >>> model = TorchMambaSpike.from_preset("smnist")
    >>> count_parameters(model)
    903626
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OP = "TorchMambaSpike"


@dataclass(frozen=True)
class Preset:
    """As ``flashsnn.models.MambaSpikePreset``."""
    in_shape: tuple
    steps: int
    channels: int
    d_model: int
    n_layers: int
    d_state: int
    num_classes: int


# The same recipes as flashsnn.models.MAMBA_SPIKE_PRESETS (the test checks).
PRESETS = {
    "smnist": Preset((28, 28, 2), 100, 64, 128, 4, 16, 10),
    "nmnist": Preset((34, 34, 2), 300, 64, 128, 4, 16, 10),
    "dvs_gesture": Preset((128, 128, 2), 500, 128, 256, 6, 16, 11),
    "cifar10_dvs": Preset((128, 128, 2), 100, 128, 256, 6, 16, 10),
    "ntidigits": Preset((1, 64, 1), 300, 64, 128, 4, 16, 11),
}


# -- spiking front end --------------------------------------------------------

class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside spike ``v > 0`` with snnTorch's fast-sigmoid surrogate
    gradient ``1 / (1 + slope |v|)^2``."""

    @staticmethod
    def forward(ctx, v, slope):
        ctx.save_for_backward(v)
        ctx.slope = float(slope)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad / (ctx.slope * v.abs() + 1.0) ** 2, None


def lif_step(x, mem, beta: float, threshold: float, slope: float):
    """One step of snnTorch's ``Leaky`` (subtract reset, ``reset_delay``):
    the reset is the previous membrane's spike, detached; the new spike
    carries the surrogate gradient. Returns ``(spk, mem)``."""
    reset = (mem.detach() - threshold > 0).to(mem.dtype)
    mem = beta * mem + x - reset * threshold
    return FastSigmoidSpike.apply(mem - threshold, slope), mem


class SpikingConv(nn.Module):
    """conv3x3 (-> maxpool ``pool``) -> LIF, the LIF's input plus a 1x1 conv
    of the layer's own spikes one step before (from the second step on)."""

    def __init__(self, c_in: int, c_out: int, pool, beta: float, threshold: float,
                 slope: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.rec = nn.Conv2d(c_out, c_out, 1)
        for conv in (self.conv, self.rec):
            nn.init.zeros_(conv.bias)  # MLX's Conv2d starts its bias at zero
        self.pool = pool
        self.beta, self.threshold, self.slope = float(beta), float(threshold), float(slope)

    def forward(self, x, mems: list | None = None):
        """``x`` ``[T, B, C, H, W]`` -> spikes ``[T, B, C', H', W']``; appends
        each step's membrane to ``mems`` when given."""
        T, B = x.shape[:2]
        cur = self.conv(x.reshape(T * B, *x.shape[2:]))  # every frame in one call
        if self.pool:
            cur = F.max_pool2d(cur, self.pool)
        cur = cur.reshape(T, B, *cur.shape[1:])
        mem = torch.zeros_like(cur[0])
        spk, out = None, []
        # unbind, not cur[t]: each index's backward would fill a whole [T, ...] gradient
        for c in cur.unbind(0):
            c = c if spk is None else c + self.rec(spk)
            spk, mem = lif_step(c, mem, self.beta, self.threshold, self.slope)
            out.append(spk)
            if mems is not None:
                mems.append(mem)
        return torch.stack(out)


# -- Mamba-1 ------------------------------------------------------------------

def selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """Mamba-1's selective scan, channels-last as flashsnn's, as a plain
    sequential loop over L with a float32 state::

        u, delta, z [b, L, D]; A [D, N]; B, C [b, L, N]; D, delta_bias [D]
        delta <- softplus(delta + delta_bias)
        h_l = exp(delta_l A) h_{l-1} + delta_l B_l u_l ;  y_l = sum_n h_l C_l + D u_l
        out = y * silu(z)
    """
    dt = F.softplus(delta + delta_bias)
    dA = torch.exp(dt[..., None] * A)                          # [b, L, D, N]
    dBu = (dt * u)[..., None] * B[:, :, None, :]               # [b, L, D, N]
    h = torch.zeros(u.shape[0], u.shape[2], A.shape[1], dtype=torch.float32,
                    device=u.device)
    hs = []
    for a, b in zip(dA.unbind(1), dBu.unbind(1)):  # unbind: one gradient buffer, not L
        h = a * h + b
        hs.append(h)
    y = (torch.stack(hs, dim=1) * C[:, :, None, :]).sum(-1) + D * u
    return y * F.silu(z)


def _inverse_softplus(x):
    return x + torch.log(-torch.expm1(-x))


class MambaBlock(nn.Module):
    """``x + Mamba(LayerNorm(x))`` on ``[B, L, d_model]``: in_proj (no bias)
    -> depthwise causal conv1d (no bias) -> SiLU -> x_proj -> (delta, B, C),
    dt_proj, the selective scan, ``y * silu(z)``, out_proj (no bias)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, *,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.d_inner, self.d_state, self.dt_rank, self.d_conv = d_inner, d_state, dt_rank, d_conv
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        # PyTorch's default init: uniform +-1/sqrt(K), flashsnn's bound too.
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1,
                                bias=False)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        with torch.no_grad():
            std = dt_rank ** -0.5
            self.dt_proj.weight.uniform_(-std, std)
            dt = torch.exp(torch.empty(d_inner).uniform_(math.log(dt_min), math.log(dt_max)))
            self.dt_proj.bias.copy_(_inverse_softplus(dt.clamp(min=1e-4)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).expand(d_inner, d_state)
        self.A_log = nn.Parameter(torch.log(A).clone())
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):
        L = x.shape[1]
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)
        # Padded K - 1 on both sides; the first L outputs are the causal ones.
        u = F.silu(self.conv1d(u.transpose(1, 2))[..., :L].transpose(1, 2))
        r, N = self.dt_rank, self.d_state
        delta, B, C = self.x_proj(u).split([r, N, N], dim=-1)
        delta = delta @ self.dt_proj.weight.T  # the bias goes in with the softplus
        y = selective_scan(u, delta, -torch.exp(self.A_log), B, C, self.D, z,
                           self.dt_proj.bias)
        return x + self.out_proj(y)


# -- the model ----------------------------------------------------------------

class TorchMambaSpike(nn.Module):
    """Mamba-Spike (module docstring). ``model(x)`` with ``x``
    ``[T, B, H, W, C]`` returns logits ``[B, num_classes]``;
    ``model(x, record=True)`` a dict with ``logits``, each front-end layer's
    spikes ``spk1..spk3`` (NCHW per step, ``[T, B, C, H, W]``), their
    membranes ``mem1..mem3`` (same shapes) and the interface's ``rates``
    ``[T, B, F]`` (features channels-last, as flashsnn's)."""

    def __init__(self, in_shape: tuple = (28, 28, 2), num_classes: int = 10, *,
                 channels: int = 64, d_model: int = 128, n_layers: int = 4, d_state: int = 16,
                 beta: float = 0.97, threshold: float = 1.0, slope: float = 25.0,
                 window: int = 5):
        super().__init__()
        H, W, C = (int(v) for v in in_shape)
        if not (H >= 4 or H == 1) or W < 4:
            raise ValueError(f"[{OP}] frames must be at least 4x4 (two 2x2 pools), or one row "
                             f"at least 4 wide (audio, two 1x2 pools); got {H}x{W}")
        self.in_shape, self.window = (H, W, C), int(window)
        lif = dict(beta=beta, threshold=threshold, slope=slope)
        pool = (1 if H == 1 else 2, 2)  # a one-row (audio) frame pools its channels only
        self.front = nn.ModuleList([SpikingConv(C, 32, pool, **lif),
                                    SpikingConv(32, 32, pool, **lif),
                                    SpikingConv(32, channels, None, **lif)])
        self.features = (H // pool[0] ** 2) * (W // 4) * channels
        self.interface = nn.Linear(self.features, d_model)
        self.blocks = nn.ModuleList([MambaBlock(d_model, d_state) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "TorchMambaSpike":
        if name not in PRESETS:
            raise ValueError(f"[{OP}] unknown preset {name!r}; valid: {', '.join(PRESETS)}")
        p = PRESETS[name]
        args = dict(channels=p.channels, d_model=p.d_model, n_layers=p.n_layers,
                    d_state=p.d_state)
        args.update(kwargs)
        return cls(p.in_shape, p.num_classes, **args)

    def rates(self, spk):
        """Causal mean of the last ``window`` steps of ``spk`` ``[T, B, F]``
        (zeros before the start)."""
        cs = torch.cumsum(spk, dim=0)
        w = self.window
        if spk.shape[0] > w:
            cs = torch.cat([cs[:w], cs[w:] - cs[:-w]], dim=0)
        return cs / w

    def forward(self, x, record: bool = False):
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim != 5 or tuple(x.shape[2:]) != self.in_shape:
            raise ValueError(f"[{OP}] x must be [T, B, {', '.join(map(str, self.in_shape))}] "
                             f"(time first, channels last); got {list(x.shape)}")
        h = x.permute(0, 1, 4, 2, 3)                       # [T, B, C, H, W]
        spikes, mems = [], []
        for layer in self.front:
            m = [] if record else None
            h = layer(h, m)
            spikes.append(h)
            mems.append(torch.stack(m) if record else None)
        T, B = h.shape[:2]
        r = self.rates(h.permute(0, 1, 3, 4, 2).reshape(T, B, -1))  # channels-last features
        s = self.interface(r).transpose(0, 1)              # [B, T, d_model]
        for block in self.blocks:
            s = block(s)
        logits = self.head(self.norm(s.mean(dim=1)))
        if not record:
            return logits
        out = {"logits": logits, "rates": r}
        for i in range(3):
            out[f"spk{i + 1}"], out[f"mem{i + 1}"] = spikes[i], mems[i]
        return out


def count_parameters(model: nn.Module) -> int:
    """Trainable scalars of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- weights from flashsnn ----------------------------------------------------

def mlx_name(torch_name: str) -> str:
    """The flashsnn ``MambaSpike`` parameter a torch parameter mirrors (the
    names are the same but for the depthwise conv1d)."""
    return torch_name.replace("conv1d.weight", "conv_weight")


def to_torch_layout(name: str, value) -> torch.Tensor:
    """An MLX parameter (or its gradient) named ``name`` (flashsnn's name) in
    the layout of its torch twin: 2-D conv weights ``[out, kh, kw, in]`` ->
    ``[out, in, kh, kw]``; the depthwise conv1d ``conv_weight`` ``[d_inner, K]``
    -> ``[d_inner, 1, K]``; everything else as is."""
    a = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
    if a.ndim == 4:
        return a.permute(0, 3, 1, 2).contiguous()
    if name.endswith("conv_weight"):
        return a[:, None, :].contiguous()
    return a


def copy_from_mlx(torch_model: TorchMambaSpike, mlx_model) -> TorchMambaSpike:
    """Copy every trainable parameter of a flashsnn ``MambaSpike`` into
    ``torch_model``. Raises ``ValueError`` when a parameter of either side
    has no twin on the other or the shapes differ (nothing is copied then)."""
    from mlx.utils import tree_flatten
    src = dict(tree_flatten(mlx_model.trainable_parameters()))
    dst = dict(torch_model.named_parameters())
    problems, pairs = [], []
    for name, p in dst.items():
        m = mlx_name(name)
        if m not in src:
            problems.append(f"torch {name}: no flashsnn parameter {m}")
            continue
        v = to_torch_layout(m, src[m])
        if tuple(v.shape) != tuple(p.shape):
            problems.append(f"{name}: torch {tuple(p.shape)} vs flashsnn {m} "
                            f"{tuple(src[m].shape)} (as torch: {tuple(v.shape)})")
        pairs.append((p, v))
    used = {mlx_name(n) for n in dst}
    problems += [f"flashsnn {m}: no torch parameter" for m in src if m not in used]
    if problems:
        raise ValueError(f"[{OP}] copy_from_mlx: the models differ:\n  " + "\n  ".join(problems))
    with torch.no_grad():
        for p, v in pairs:
            p.copy_(v)
    return torch_model


# -- training -----------------------------------------------------------------

def cosine_lr(step: int, lr: float, total_steps: int, lr_min: float) -> float:
    """MLX's ``optim.cosine_decay(lr, total_steps, lr_min)`` at ``step``
    (0 for the first update; flat after ``total_steps``)."""
    s = min(step, total_steps)
    return lr_min + 0.5 * (1.0 + math.cos(math.pi / total_steps * s)) * (lr - lr_min)


class MLXAdamW(torch.optim.Optimizer):
    """MLX's ``optim.AdamW`` with its default ``bias_correction=False``:
    ``p <- p (1 - lr wd); m, v as Adam; p <- p - lr m / (sqrt(v) + eps)``,
    without Adam's ``1 - beta^t`` corrections (torch.optim.AdamW has them)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                p.mul_(1 - g["lr"] * g["weight_decay"])
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.sub_(g["lr"] * st["m"] / (st["v"].sqrt() + g["eps"]))


def evaluate(model: nn.Module, x, y, batch_size: int = 256) -> float:
    """Accuracy of ``model`` on ``x`` ``[T, N, H, W, C]`` (time first) and
    labels ``y`` ``[N]``, in batches of ``batch_size`` samples."""
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            pred = model(x[:, i:i + batch_size]).argmax(-1)
            correct += int((pred == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def train_torch(model: nn.Module, batches_fn, epochs: int, *, lr: float = 1e-3,
                weight_decay: float = 1e-4, lr_min: float = 1e-5, clip: float = 1.0,
                steps_per_epoch: int | None = None, bias_correction: bool = True,
                eval_data=None, log=None) -> dict:
    """Train ``model`` with the public recipe: AdamW (``weight_decay``), the
    learning rate cosine-decayed per step from ``lr`` to ``lr_min`` over all
    steps (as flashsnn's trainer), gradient global norm clipped at ``clip``,
    mean cross-entropy.

    ``batches_fn(epoch)`` (epoch from 1) returns that epoch's iterable of
    ``(x [T, B, H, W, C], y [B])``; the total step count comes from
    ``steps_per_epoch`` or else from ``len()`` of the first epoch's batches.
    ``bias_correction=True`` is ``torch.optim.AdamW`` (the public code's);
    False is :class:`MLXAdamW` (MLX's default, what flashsnn's trainer runs).
    ``eval_data=(x, y)`` adds each epoch's test accuracy.

    Returns ``{"epochs": [{"epoch", "train_loss", "train_seconds",
    "median_step_ms", "learning_rate"[, "test_accuracy"]}], "num_threads",
    "steps"}``.
    """
    first = batches_fn(1)
    if steps_per_epoch is None:
        first = first if hasattr(first, "__len__") else list(first)
        steps_per_epoch = len(first)
    total = max(1, epochs * steps_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if bias_correction
           else MLXAdamW(params, lr=lr, weight_decay=weight_decay))
    model.train()
    step, history = 0, []
    for epoch in range(1, epochs + 1):
        batches = first if epoch == 1 else batches_fn(epoch)
        losses, step_s, t0 = [], [], time.perf_counter()
        for xb, yb in batches:
            ts = time.perf_counter()
            cur = cosine_lr(step, lr, total, lr_min)
            for g in opt.param_groups:
                g["lr"] = cur
            loss = F.cross_entropy(model(xb), torch.as_tensor(yb, dtype=torch.long))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            step += 1
            losses.append(loss.item())
            step_s.append(time.perf_counter() - ts)
        e = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
             "train_seconds": time.perf_counter() - t0,
             "median_step_ms": float(np.median(step_s)) * 1e3 if step_s else float("nan"),
             "learning_rate": cosine_lr(max(step - 1, 0), lr, total, lr_min)}  # the last used
        if eval_data is not None:
            e["test_accuracy"] = evaluate(model, *eval_data)
        history.append(e)
        if log is not None:
            log(e)
    return {"epochs": history, "num_threads": torch.get_num_threads(), "steps": step}
