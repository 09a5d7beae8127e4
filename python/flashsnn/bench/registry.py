"""What `flashsnn bench` times: a declarative registry.

A benchmark names a neuron family, the shapes to run and the implementations
to time. Each implementation turns a Case into two callables (forward,
forward+backward) that return everything that must be evaluated, plus a
forward result for the parity gate. Every family of the fused-family table
(flashsnn/ops/_table.py) gets flashsnn's own paths and the x*2 yardstick on
its ``bench`` parameters with no code here; Leaky also runs against the
other libraries.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx
import numpy as np

import flashsnn as fs
from flashsnn.ops._table import FAMILIES


# Benchmarks that run a table family with other parameters: IF is Leaky with
# beta = 1 (flashsnn.nn.IF), so that it can be timed against SpikingJelly's
# IFNode. Name -> (the table family, its bench parameters).
VARIANTS = {"if": ("leaky", {"beta": 1.0, "threshold": 1.0})}


def table_family(name: str):
    """The fused-family table's entry a benchmark name runs."""
    return FAMILIES[VARIANTS[name][0] if name in VARIANTS else name]


def bench_params(name: str) -> dict:
    """The scalar parameters a benchmark name runs its op with."""
    return VARIANTS[name][1] if name in VARIANTS else FAMILIES[name].bench


@dataclass(frozen=True)
class Case:
    family: str  # a benchmark name: a table family or a VARIANTS key
    T: int
    B: int
    N: int
    dtype: str = "float32"

    @property
    def fam(self):
        return table_family(self.family)

    @property
    def params(self) -> dict:
        return bench_params(self.family)

    def op(self, x, **kw):
        """fs.ops.<table family>(x, **bench parameters, **kw)."""
        return getattr(fs.ops, self.fam.name)(x, **self.params, **kw)

    @property
    def shape(self):
        return (self.T, self.B, self.N)

    @property
    def label(self):
        return f"{self.family} T={self.T} B={self.B} N={self.N} {self.dtype}"


@dataclass
class Prepared:
    """Callables for one implementation on one case.

    fwd() / fwdbwd() run one pass and return the arrays to wait on (fwdbwd
    of flashsnn's paths: mx.vjp's (outputs, grads), dL/dx first); spikes()
    returns the forward spikes and last states (as numpy) for the parity
    gate, compared against the family's reference op with `parity_with`
    (the same semantics). fwdbwd is None where the implementation has no backward.
    """

    fwd: Callable
    fwdbwd: Callable | None
    sync: Callable          # waits for the returned work: mx.eval or torch sync
    launch: Callable = lambda out: None  # starts the returned work without waiting
    spikes: Callable | None = None
    parity_with: dict = field(default_factory=dict)  # kwargs for fs.ops.<family>
    note: str = ""
    # Per-call modes (bench/percall.py): the graphs a user builds, one call
    # at a time. call_fwd: the forward; call_fwdbwd: mx.grad of the spikes'
    # .sum(), returning dL/dx first. None: no per-call modes for this one.
    call_fwd: Callable | None = None
    call_fwdbwd: Callable | None = None


@dataclass
class Impl:
    name: str
    prepare: Callable       # (case, inputs, device) -> Prepared
    available: Callable = lambda device: None  # -> None, or why it cannot run
    yardstick: bool = False  # a bandwidth reference, not an SNN implementation


BETA, THRESHOLD = 0.9, 1.0  # the other libraries' Leaky: FAMILIES["leaky"].bench


def make_inputs(case: Case, seed: int = 0, cotangents: bool = True):
    """x [T, B, N] (mean 0.3, sd 0.8: about 15% of neurons fire per step), a
    random spike cotangent ``cs`` and one last-state cotangent per state of
    the family (``cstates``, [B, N] each, in the op's order; ``cm`` is the
    membrane's, the last state, which the other libraries' Leaky take).
    Without ``cotangents`` they are None: a per-call process holds only x,
    as a user's does. Leaky draws from the same keys as before the family
    table, so its inputs are the ones earlier runs timed."""
    dtype = getattr(mx, case.dtype)
    n_states = case.fam.n_outputs  # a cotangent per state output
    k = mx.random.split(mx.random.key(seed), 2 + n_states)
    x = (mx.random.normal(case.shape, key=k[0]) * 0.8 + 0.3).astype(dtype)
    if not cotangents:
        mx.eval(x)
        return {"x": x, "cs": None, "cstates": None, "cm": None}
    cs = mx.random.normal(case.shape, key=k[1]).astype(dtype)
    cst = [mx.random.normal(case.shape[1:], key=k[2 + i]).astype(dtype)
           for i in range(n_states)]
    mx.eval(x, cs, *cst)
    return {"x": x, "cs": cs, "cstates": cst, "cm": cst[-1]}


def _mlx_sync(out):
    mx.eval(out)


def _mlx_launch(out):
    mx.async_eval(out)


def _np(a):
    return np.array(a.astype(mx.float32))


# ---------------------------------------------------------------- flashsnn --

def _family_fs(family: str, backend: str, compiled: bool, learn: bool = False):
    """fs.ops.<family> with the table's ``bench`` parameters. learn: those
    parameters are differentiated too (a layer with learn_beta etc.);
    otherwise only x, as for snnTorch's default fixed parameters, where the
    fused backward skips their accumulation."""
    fam, bench = table_family(family), bench_params(family)
    op = getattr(fs.ops, fam.name)
    names = tuple(bench)

    def prepare(case, inp, device):
        x, cs, cst = inp["x"], inp["cs"], inp["cstates"]
        params = [mx.array(bench[n]) for n in names]

        def f(x_, *p):
            kw = dict(zip(names, p)) if p else bench
            return op(x_, backend=backend, **kw)

        def vjp(x_, cs_, *cst_):
            return mx.vjp(f, [x_, *params] if learn else [x_], [cs_, *cst_])

        # Per call, as users write it: fs.ops.<family>(x, beta=0.9, ...)
        # (arrays for learn) and mx.grad of the spikes' plain sum.
        user_grad = mx.grad(lambda *a: f(*a)[0].sum(),
                            argnums=tuple(range(1 + len(params))) if learn else 0)
        fwd_user = mx.compile(f) if compiled else f
        grad_user = mx.compile(user_grad) if compiled else user_grad
        args = (x, *params) if learn else (x,)

        fwd_fn = mx.compile(f) if compiled else f
        vjp_fn = mx.compile(vjp) if compiled else vjp
        return Prepared(
            fwd=lambda: fwd_fn(x),
            fwdbwd=lambda: vjp_fn(x, cs, *cst),
            sync=_mlx_sync, launch=_mlx_launch,
            spikes=lambda: tuple(_np(a) for a in f(x)),
            parity_with={},
            note=f"{' and '.join(names)} differentiated too" if learn else "",
            call_fwd=lambda: fwd_user(*args), call_fwdbwd=lambda: grad_user(*args),
        )
    return prepare


def _fused_available(device):
    return fs.fused_unavailable_reason()


# ------------------------------------------------------------- yardstick --

def _x_times_2(case, inp, device):
    x = inp["x"]
    # Per call, one x * 2 with an eval and a sync is MLX's fixed cost per
    # evaluation: the floor under any op's per-call latency.
    return Prepared(fwd=lambda: x * 2, fwdbwd=None, sync=_mlx_sync, launch=_mlx_launch,
                    note="one read and one write of x", call_fwd=lambda: x * 2)


def _torch_x2(case, inp, device):
    x = _to_torch(inp["x"], device)
    return Prepared(fwd=lambda: x * 2, fwdbwd=None, sync=_torch_sync(device),
                    note="x*2 in torch: device memory from its caching allocator")


# ----------------------------------------------------------------- mlx-snn --

def _mlxsnn_available(device):
    return None if importlib.util.find_spec("mlxsnn") else "mlx-snn is not installed (pip install mlx-snn==0.5.0)"


def _mlxsnn(compiled: bool):
    def prepare(case, inp, device):
        import mlxsnn
        x, cs, cm = inp["x"], inp["cs"], inp["cm"]
        lif = mlxsnn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="subtract")

        def f(x_):
            state = lif.init_state(case.B, case.N)
            spks = []
            for t in range(case.T):
                s, state = lif(x_[t], state)
                spks.append(s)
            return mx.stack(spks), state["mem"]

        def vjp(x_, cs_, cm_):
            return mx.vjp(f, [x_], [cs_, cm_])

        fwd_fn = mx.compile(f) if compiled else f
        vjp_fn = mx.compile(vjp) if compiled else vjp
        grad = mx.grad(lambda x_: f(x_)[0].sum())
        grad = mx.compile(grad) if compiled else grad
        return Prepared(
            fwd=lambda: fwd_fn(x), fwdbwd=lambda: vjp_fn(x, cs, cm), sync=_mlx_sync,
            launch=_mlx_launch, call_fwd=lambda: fwd_fn(x), call_fwdbwd=lambda: grad(x),
            spikes=lambda: tuple(_np(a) for a in f(x)),
            # mlx-snn fires with >= and resets in the same step, gradient not detached
            parity_with={"convention": "same_step"},
            note="same-step reset, >= firing (flashsnn convention='same_step')")
    return prepare


# ------------------------------------------------------------ torch-based --

def _torch_device(device):
    return "cuda" if device == "gpu" else "cpu"


def _torch_available(device):
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    import torch
    if device == "gpu" and not torch.cuda.is_available():
        return "torch has no CUDA device"
    return None


def _torch_sync(device):
    import torch

    def sync(_out):
        if device == "gpu":
            torch.cuda.synchronize()
    return sync


def _to_torch(a, device):
    import torch
    return torch.tensor(np.array(a.astype(mx.float32)), device=_torch_device(device),
                        dtype=getattr(torch, "float32"))


def _snntorch_available(device):
    why = _torch_available(device)
    if why:
        return why
    return None if importlib.util.find_spec("snntorch") else "snntorch is not installed"


def _snntorch(case, inp, device):
    import snntorch as snn
    import torch
    x = _to_torch(inp["x"], device).requires_grad_(True)
    cs, cm = _to_torch(inp["cs"], device), _to_torch(inp["cm"], device)
    lif = snn.Leaky(beta=BETA, threshold=THRESHOLD).to(_torch_device(device))

    def f():
        mem = lif.reset_mem()
        spks = []
        for t in range(case.T):
            s, mem = lif(x[t], mem)
            spks.append(s)
        return torch.stack(spks), mem

    def fwd():
        with torch.no_grad():
            return f()

    def fwdbwd():
        x.grad = None
        spk, mem = f()
        torch.autograd.backward([spk, mem], [cs, cm])
        return x.grad

    def spikes():
        with torch.no_grad():
            s, m = f()
        return s.cpu().numpy(), m.cpu().numpy()

    return Prepared(fwd=fwd, fwdbwd=fwdbwd, sync=_torch_sync(device), spikes=spikes,
                    parity_with={})


def _spikingjelly_available(device):
    why = _torch_available(device)
    if why:
        return why
    if importlib.util.find_spec("spikingjelly") is None:
        return "spikingjelly is not installed"
    if device != "gpu":
        return "its fused multi-step backends need CUDA"
    return None


def _spikingjelly(case, inp, device):
    """SpikingJelly's fused multi-step node of the same semantics: LIFNode
    for Leaky, IFNode for IF (Leaky with beta = 1)."""
    import torch
    from spikingjelly.activation_based import functional, neuron, surrogate
    x = _to_torch(inp["x"], device).requires_grad_(True)
    cs = _to_torch(inp["cs"], device)
    # beta = 1 - 1/tau, no input decay, soft (subtract) reset, the same atan
    # surrogate; SpikingJelly fires with >= and resets in the same step
    # (flashsnn's convention="same_step"). SpikingJelly 2.0 picks its CUDA
    # implementation itself (SJ_LIF_CUDA_IMPLEMENTATION=auto|cuda|triton).
    p = case.params
    common = dict(v_threshold=p["threshold"], v_reset=None, detach_reset=False, step_mode="m",
                  surrogate_function=surrogate.ATan(alpha=2.0))
    if case.family == "if":
        kind, node = "if", neuron.IFNode(**common).to("cuda")
    else:
        kind = "lif"
        node = neuron.LIFNode(tau=1.0 / (1.0 - p["beta"]), decay_input=False, **common).to("cuda")
    chosen = functional.neuron_implementation(kind, torch.device("cuda"))["implementation"]

    def fwd():
        with torch.no_grad():
            node.reset()
            return node(x)

    def fwdbwd():
        x.grad = None
        node.reset()
        torch.autograd.backward([node(x)], [cs])
        return x.grad

    def spikes():
        with torch.no_grad():
            node.reset()
            s = node(x)
        return s.cpu().numpy(), node.v.cpu().numpy()

    return Prepared(fwd=fwd, fwdbwd=fwdbwd, sync=_torch_sync(device), spikes=spikes,
                    parity_with={"convention": "same_step"},
                    note=f"{type(node).__name__}(step_mode='m'), implementation '{chosen}'; "
                         "same-step reset; its backward takes no membrane cotangent")


def _spikingjelly_izhikevich(case, inp, device):
    import torch
    from spikingjelly.activation_based import functional, neuron, surrogate
    x = _to_torch(inp["x"], device).requires_grad_(True)
    cs = _to_torch(inp["cs"], device)
    # SpikingJelly's IzhikevichNode is another model than Izhikevich (2003)
    # (a normalized quadratic membrane with an adaptation current, its
    # defaults): the same kind of work per step (two coupled states, a
    # quadratic term, a reset and a jump), timed only, with no parity check.
    node = neuron.IzhikevichNode(step_mode="m",
                                 surrogate_function=surrogate.ATan(alpha=2.0)).to("cuda")
    chosen = functional.neuron_implementation("izhikevich", torch.device("cuda"))[
        "implementation"]

    def fwd():
        with torch.no_grad():
            node.reset()
            return node(x)

    def fwdbwd():
        x.grad = None
        node.reset()
        torch.autograd.backward([node(x)], [cs])
        return x.grad

    return Prepared(fwd=fwd, fwdbwd=fwdbwd, sync=_torch_sync(device), spikes=None,
                    parity_with={},
                    note=f"IzhikevichNode(step_mode='m'), implementation '{chosen}'; its own "
                         "model and defaults, so timed with no parity check")


# --------------------------------------------------------------- registry --

def family_impls(family: str) -> list[Impl]:
    """flashsnn's own paths of a family in the table, and the x*2 yardstick."""
    return [
        Impl("fused", _family_fs(family, "fused", False), _fused_available),
        Impl("fused+learn", _family_fs(family, "fused", False, learn=True), _fused_available),
        Impl("reference", _family_fs(family, "reference", False)),
        Impl("reference+compile", _family_fs(family, "reference", True)),
        Impl("x*2", _x_times_2, yardstick=True),
    ]


# Leaky also runs against the other libraries' Leaky (same semantics).
_own = {i.name: i for i in family_impls("leaky")}
LEAKY_IMPLS = [
    _own["fused"], _own["fused+learn"], _own["reference"], _own["reference+compile"],
    Impl("mlx-snn", _mlxsnn(False), _mlxsnn_available),
    Impl("mlx-snn+compile", _mlxsnn(True), _mlxsnn_available),
    Impl("snntorch", _snntorch, _snntorch_available),
    Impl("spikingjelly", _spikingjelly, _spikingjelly_available),
    _own["x*2"],
    Impl("torch x*2", _torch_x2,
         lambda device: _torch_available(device) or (None if device == "gpu" else "GPU only"),
         yardstick=True),
]

# Each benchmark's peers beside flashsnn's own paths and the yardstick:
# SpikingJelly's fused node where it has one (its Izhikevich is its own model).
_PEERS = {
    "if": [Impl("spikingjelly", _spikingjelly, _spikingjelly_available)],
    "izhikevich": [Impl("spikingjelly", _spikingjelly_izhikevich, _spikingjelly_available)],
}

# Every family runs on Leaky's shapes: the same planes, so that the byte
# floors and times compare across families.
BENCHMARKS = {
    name: {
        "cpu": [Case(name, 100, 32, 1024), Case(name, 25, 128, 256)],
        "gpu": [Case(name, 100, 64, 4096), Case(name, 500, 32, 1024),
                Case(name, 25, 128, 256)],
        "impls": LEAKY_IMPLS if name == "leaky" else family_impls(name) + _PEERS.get(name, []),
    }
    for name in (*FAMILIES, *VARIANTS)
}


def unknown_family(name: str) -> str | None:
    """None for a family `flashsnn bench` knows, else the tagged error
    listing the valid ones."""
    if name in BENCHMARKS:
        return None
    return f"[bench] unknown family {name!r}; valid: {', '.join(sorted(BENCHMARKS))}"
