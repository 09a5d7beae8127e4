"""NIR (Neuromorphic Intermediate Representation) export and import.

``export_to_nir(module, sample_data, dt=1e-4)`` turns an ``mlx.nn.Sequential``
(or any module whose ``layers`` list is called in order) into a
``nir.NIRGraph``; ``import_from_nir(graph, dt=1e-4)`` builds an
``mlx.nn.Sequential`` that steps the graph: ``spk = net(x_t)`` per time step,
neuron layers keeping their state (``init_hidden=True``), ``flashsnn.nn.reset(net)``
between sequences.

Neuron parameters follow snnTorch 1.0's own NIR mapping (forward Euler of
NIR's ODEs at a time step ``dt``, 1e-4 s by default as snnTorch fixes it), so
graphs go both ways between flashsnn and snnTorch: see ``docs/nir.md`` for the
per-neuron table and the channels-first (NIR) / channels-last (MLX) layout.
The optional dependency is imported lazily: ``pip install "flashsnn[nir]"``.
"""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.nn.layers.pooling import _Pool2d

from .nn import IF, Lapicque, Leaky, RLeaky, RSynaptic, Synaptic
from .nn.neurons import SpikingNeuron

TAG = "[flashsnn.nir]"
# snnTorch's export_to_nir and import_from_nir both fix dt = 1e-4 s; the same
# default makes graphs from either side import unscaled on the other.
DT = 1e-4
EXPORTS = ("mlx.nn.Linear", "mlx.nn.Conv2d", "mlx.nn.AvgPool2d", "flashsnn.nir.SumPool2d",
           "flashsnn.nir.Flatten", "flashsnn.nn.Leaky", "flashsnn.nn.IF",
           "flashsnn.nn.Synaptic", "flashsnn.nn.Lapicque", "flashsnn.nn.RLeaky",
           "flashsnn.nn.RSynaptic")
IMPORTS = ("Input", "Output", "Identity", "Affine", "Linear", "Conv2d", "AvgPool2d",
           "SumPool2d", "Flatten", "LIF", "IF", "CubaLIF",
           "a LIF or CubaLIF in a cycle with one Affine/Linear (RLeaky, RSynaptic)")
# Metadata keys: what NIR's neurons cannot say (NIR resets to v_reset in the
# step a neuron fires), kept so that a flashsnn round trip is exact.
META_LAYER, META_RESET, META_DELAY, META_STEP = (
    "flashsnn_layer", "flashsnn_reset_mechanism", "flashsnn_reset_delay",
    "flashsnn_time_step")


def _nir():
    try:
        import nir
    except ImportError as e:
        raise ImportError(f"{TAG} needs the `nir` package, an optional dependency of "
                          f"flashsnn: pip install \"flashsnn[nir]\" ({e})") from None
    return nir


class Flatten(nn.Module):
    """Flattens every axis after the batch axis, in channels-first order.

    MLX maps are ``[B, H, W, C]``; NIR's (and PyTorch's) flatten reads
    ``[C, H, W]``, so ``[B, H, W, C]`` is moved to ``[B, C, H, W]`` first:
    the Linear after it then has the same weights as in NIR and PyTorch.
    """

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim > 2:
            x = mx.moveaxis(x, -1, 1)
        return x.reshape(x.shape[0], -1)


class SumPool2d(_Pool2d):
    """Sum pooling over channels-last maps (NIR's SumPool2d): MLX's AvgPool2d
    without the division (zero padding, as AvgPool2d pads)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(mx.sum, 0, kernel_size, stride, padding)


# -- helpers -----------------------------------------------------------------

def _cf(shape) -> tuple:
    """A per-sample MLX shape in NIR's order: (H, W, C) -> (C, H, W)."""
    shape = tuple(int(s) for s in shape)
    return (shape[-1], *shape[:-1]) if len(shape) == 3 else shape


def _to_cf(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 0) if a.ndim == 3 else a


def _to_cl(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 0, -1) if a.ndim == 3 else a


def _per_neuron(value, shape) -> np.ndarray:
    """A neuron parameter broadcast to the layer's (channels-last) neuron
    shape, in float64 for the conversions, then put in NIR's order."""
    a = np.asarray(value if not isinstance(value, mx.array) else np.array(value), np.float64)
    return _to_cf(np.array(np.broadcast_to(a, shape)))


def _param(a: np.ndarray):
    """A channels-last NIR parameter as a flashsnn one, in float32: a Python
    float when every neuron has the same value (the layer broadcasts it)."""
    a = np.asarray(a, np.float64).astype(np.float32)
    if a.size and np.all(a == a.flat[0]):
        return float(a.flat[0])
    return mx.array(a)


def _f32(a) -> np.ndarray:
    if hasattr(a, "detach"):  # snnTorch's export leaves torch tensors in Conv2d nodes
        a = a.detach().cpu().numpy()
    return np.array(a, dtype=np.float32)


def _pair(v) -> tuple:
    v = np.asarray(v).reshape(-1)
    return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))


def _layers(module) -> list:
    layers = getattr(module, "layers", None)
    if isinstance(module, (list, tuple)):
        layers = module
    if not isinstance(layers, (list, tuple)):
        raise ValueError(f"{TAG} export_to_nir takes an mlx.nn.Sequential or a module with a "
                         f"`layers` list called in order; got {type(module).__name__}")
    return list(layers)


# -- export ------------------------------------------------------------------

def _reset_meta(layer, name: str, delay: bool) -> dict:
    reset = layer.reset_mechanism if layer.reset_mechanism is not None else "none"
    if reset != "zero" or delay:
        warnings.warn(f"{TAG} {name}: NIR's neurons reset to v_reset = 0 in the step they fire; "
                      f"this layer has reset_mechanism={reset!r}, reset_delay={delay}. "
                      "flashsnn's import restores them from the node's metadata; other NIR "
                      "tools reset to zero at once (docs/nir.md)", UserWarning, stacklevel=4)
    return {META_LAYER: type(layer).__name__, META_RESET: reset, META_DELAY: bool(delay)}


def _check_neuron(layer, name: str) -> None:
    if layer.inhibition:
        raise ValueError(f"{TAG} {name}: inhibition has no NIR equivalent; use inhibition=False")
    g = layer.get("graded_spikes_factor")
    if g is not None and not bool(mx.all(g == 1).item()):
        raise ValueError(f"{TAG} {name}: graded_spikes_factor != 1 has no NIR equivalent "
                         "(NIR's neurons emit spikes of 1)")


def _decay_tau(nir_name: str, name: str, decay: np.ndarray, dt: float) -> np.ndarray:
    """tau = dt / (1 - decay): NIR's Euler step decays by 1 - dt/tau."""
    if np.any(decay >= 1):
        raise ValueError(f"{TAG} {name}: a decay of 1 makes NIR's {nir_name} infinite "
                         "(no leak); use flashsnn.nn.IF for a neuron without leak")
    return dt / (1 - decay)


def _lif(nir, layer, name, shape, dt, meta):
    beta = np.clip(_per_neuron(layer.beta, shape), 0, 1)  # the ops clamp beta to [0, 1]
    thr = _per_neuron(layer.threshold, shape)
    zero = np.zeros_like(thr)
    if isinstance(layer, Lapicque):
        # NIR's Euler step v += dt/tau (-v + r I) is Lapicque's update
        # U += Δt/(R C) (-U + R X) with r = R and tau = R C dt/Δt.
        R, C = (_per_neuron(v, shape) for v in layer._circuit())
        ts = float(np.asarray(layer.time_step))
        meta[META_STEP] = ts
        return nir.LIF(tau=R * C * dt / ts, r=R, v_leak=zero, v_threshold=thr, v_reset=zero,
                       metadata=meta)
    if np.all(beta == 1) and isinstance(layer, Leaky):
        # beta = 1 (IF, or a Leaky without leak): NIR's IF, dv/dt = r I, with r = 1/dt.
        return nir.IF(r=np.full_like(thr, 1 / dt), v_threshold=thr, v_reset=zero, metadata=meta)
    if isinstance(layer, (Synaptic, RSynaptic)):
        alpha = np.clip(_per_neuron(layer.alpha, shape), 0, 1)
        tau_syn = _decay_tau("CubaLIF's tau_syn", name, alpha, dt)
        tau_mem = _decay_tau("CubaLIF's tau_mem", name, beta, dt)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=zero,
                           v_threshold=thr, v_reset=zero, w_in=tau_syn / dt, metadata=meta)
    tau = _decay_tau("LIF's tau", name, beta, dt)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=zero, v_threshold=thr, v_reset=zero,
                   metadata=meta)


def _export_neuron(nir, layer, name, shape, dt):
    _check_neuron(layer, name)
    delay = getattr(layer, "reset_delay", True)  # Lapicque always resets a step late
    meta = _reset_meta(layer, name, delay)
    node = _lif(nir, layer, name, shape, dt, meta)
    if not isinstance(layer, (RLeaky, RSynaptic)):
        return node
    if len(shape) != 1:
        raise ValueError(f"{TAG} {name}: recurrent layers export for [B, N] neurons only "
                         f"(NIR's recurrent weight is a matrix); got neuron shape {shape}")
    n = shape[0]
    if layer.all_to_all:
        rec = layer.recurrent
        if not isinstance(rec, nn.Linear):
            raise ValueError(f"{TAG} {name}: only a Linear recurrent connection exports; "
                             f"got {type(rec).__name__}")
        w_rec = (nir.Affine(weight=_f32(rec.weight), bias=_f32(rec.bias)) if "bias" in rec
                 else nir.Linear(weight=_f32(rec.weight)))
    else:
        v = np.broadcast_to(np.array(layer.V, dtype=np.float32), (n,))
        w_rec = nir.Linear(weight=np.diag(v).astype(np.float32))
    # snnTorch's layout of a recurrent layer: a subgraph with the cycle lif <-> w_rec.
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": node, "w_rec": w_rec,
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        type_check=False)


def _export_layer(nir, layer, name, shape, dt):
    if isinstance(layer, SpikingNeuron):
        if not isinstance(layer, (Leaky, Synaptic, Lapicque, RLeaky, RSynaptic)):
            raise ValueError(f"{TAG} cannot export {name}: no NIR neuron for "
                             f"{type(layer).__name__}; exported layers: {', '.join(EXPORTS)}")
        return _export_neuron(nir, layer, name, shape, dt)
    if isinstance(layer, nn.Linear):
        if "bias" in layer:
            return nir.Affine(weight=_f32(layer.weight), bias=_f32(layer.bias))
        return nir.Linear(weight=_f32(layer.weight))
    if isinstance(layer, nn.Conv2d):
        # MLX weights are [C_out, kH, kW, C_in]; NIR's (PyTorch's) [C_out, C_in, kH, kW].
        w = np.ascontiguousarray(_f32(layer.weight).transpose(0, 3, 1, 2))
        bias = _f32(layer.bias) if "bias" in layer else np.zeros(w.shape[0], np.float32)
        return nir.Conv2d(input_shape=tuple(shape[:2]), weight=w, stride=_pair(layer.stride),
                          padding=_pair(layer.padding), dilation=_pair(layer.dilation),
                          groups=int(layer.groups), bias=bias)
    if isinstance(layer, (nn.AvgPool2d, SumPool2d)):
        kind = nir.SumPool2d if isinstance(layer, SumPool2d) else nir.AvgPool2d
        return kind(kernel_size=np.array(layer._kernel_size), stride=np.array(layer._stride),
                    padding=np.array([p[0] for p in layer._padding]))
    if isinstance(layer, nn.MaxPool2d):
        raise ValueError(f"{TAG} cannot export {name} (MaxPool2d): NIR has no max pooling "
                         "(its pools are SumPool2d and AvgPool2d, which a max equals only "
                         f"for 1x1 windows); exported layers: {', '.join(EXPORTS)}")
    if isinstance(layer, Flatten):
        return nir.Flatten(input_type={"input": np.array(_cf(shape))}, start_dim=0, end_dim=-1)
    raise ValueError(f"{TAG} cannot export {name} ({type(layer).__name__}); exported layers: "
                     f"{', '.join(EXPORTS)}")


def _input_shape(layers, sample_data) -> tuple:
    if sample_data is None:
        if layers and isinstance(layers[0], nn.Linear):
            return (int(layers[0].weight.shape[1]),)
        raise ValueError(f"{TAG} export_to_nir needs sample_data (one step's input [B, ...], "
                         "or the per-sample shape, e.g. (28, 28, 1)) unless the first layer "
                         "is a Linear")
    if isinstance(sample_data, (tuple, list)):
        return tuple(int(s) for s in sample_data)
    return tuple(int(s) for s in np.shape(sample_data)[1:])


def export_to_nir(module, sample_data=None, *, dt: float = DT):
    """Export a flashsnn/MLX network as a ``nir.NIRGraph``.

    ``module``: an ``mlx.nn.Sequential`` (or a module with a ``layers`` list
    called in order) of the layers in ``EXPORTS``. ``sample_data``: one step's
    input ``[B, ...]`` (channels-last ``[B, H, W, C]`` for convolutions) or
    the per-sample shape without the batch axis, e.g. ``(28, 28, 1)``;
    optional when the first layer is a Linear. ``dt``: the time step that the
    neuron time constants are expressed in (NIR's ``tau = dt / (1 - beta)``).

    Nodes are named ``"0"``, ``"1"``... after the layer indices, between
    ``"input"`` and ``"output"``; NIR shapes are channels-first ``(C, H, W)``.
    """
    nir = _nir()
    layers = _layers(module)
    shape = _input_shape(layers, sample_data)
    nodes = {"input": nir.Input(input_type=np.array(_cf(shape)))}
    edges, prev = [], "input"
    x = mx.zeros((1, *shape))
    for i, layer in enumerate(layers):
        name = f"layer {i} ({type(layer).__name__})"
        nodes[str(i)] = _export_layer(nir, layer, name, tuple(x.shape[1:]), dt)
        if not isinstance(layer, SpikingNeuron):
            x = layer(x)  # tracks the shape: neurons keep it
        edges.append((prev, str(i)))
        prev = str(i)
    nodes["output"] = nir.Output(output_type=np.array(_cf(x.shape[1:])))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


# -- import ------------------------------------------------------------------

def _identity() -> type:
    from nir.ir.graph import Identity  # not in nir's top-level names (1.0.8)
    return Identity


def _unsupported(key, node, why: str = "") -> ValueError:
    return ValueError(f"{TAG} cannot import node {key!r} ({type(node).__name__}){why}; "
                      f"supported nodes: {', '.join(IMPORTS)}")


def _inline(nir, graph) -> tuple[dict, list, set]:
    """The graph's nodes and edges with every NIRGraph node replaced by its
    contents (named ``"sub.inner"``), and the names of the pass-through nodes
    (the subgraphs' Input and Output, Identity)."""
    nodes, edges, through, enter, leave = {}, [], set(), {}, {}
    for k, n in graph.nodes.items():
        if isinstance(n, nir.NIRGraph):
            sub_nodes, sub_edges, sub_through = _inline(nir, n)
            ins = [s for s, v in sub_nodes.items() if isinstance(v, nir.Input)]
            outs = [s for s, v in sub_nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise _unsupported(k, n, f": a subgraph needs one Input and one Output, not "
                                         f"{len(ins)} and {len(outs)}")
            nodes.update({f"{k}.{s}": v for s, v in sub_nodes.items()})
            edges += [(f"{k}.{a}", f"{k}.{b}") for a, b in sub_edges]
            through |= {f"{k}.{s}" for s in (*sub_through, ins[0], outs[0])}
            enter[k], leave[k] = f"{k}.{ins[0]}", f"{k}.{outs[0]}"
        else:
            nodes[k] = n
            if isinstance(n, _identity()):
                through.add(k)
    edges += [(leave.get(a, a), enter.get(b, b)) for a, b in graph.edges]
    return nodes, edges, through


def _chain(nir, graph) -> tuple[list, dict, dict]:
    """The graph as a chain of node names from its Input to its Output, with
    each recurrent LIF/CubaLIF's feedback node (``{lif: w_rec}``)."""
    nodes, edges, through = _inline(nir, graph)
    for p in through:
        pre = [a for a, b in edges if b == p]
        post = [b for a, b in edges if a == p]
        edges = [e for e in edges if p not in e] + [(a, b) for a in pre for b in post]
        del nodes[p]
    edges = list(dict.fromkeys(edges))  # snnTorch's graphs may repeat an edge
    rec = {}
    for a, b in list(edges):
        if ((b, a) in edges and isinstance(nodes.get(a), (nir.LIF, nir.CubaLIF))
                and isinstance(nodes.get(b), (nir.Affine, nir.Linear))
                and sum(e[1] == b for e in edges) == 1 and sum(e[0] == b for e in edges) == 1):
            rec[a] = nodes.pop(b)
            edges = [e for e in edges if b not in e]
    ins = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(f"{TAG} import_from_nir takes a graph with one Input and one Output; "
                         f"got {len(ins)} and {len(outs)}")
    order, k = [], ins[0]
    while True:
        post = [b for a, b in edges if a == k]
        if len(post) != 1:
            raise ValueError(f"{TAG} import_from_nir takes a chain of nodes (the only cycles "
                             f"a LIF/CubaLIF with its recurrent weight); node {k!r} feeds "
                             f"{len(post)} nodes")
        k = post[0]
        if isinstance(nodes[k], nir.Output):
            break
        if k in order or sum(e[1] == k for e in edges) != 1:
            raise ValueError(f"{TAG} import_from_nir takes a chain of nodes; node {k!r} has "
                             f"{sum(e[1] == k for e in edges)} inputs")
        order.append(k)
    if len(order) + 2 != len(nodes):
        raise ValueError(f"{TAG} import_from_nir takes a chain of nodes; "
                         f"{len(nodes) - len(order) - 2} nodes are off the Input-Output path")
    return order, nodes, rec


def _meta(node) -> dict:
    out = {}
    for k, v in (node.metadata or {}).items():
        v = v.decode() if isinstance(v, bytes) else v
        out[k] = v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray)
                                                           and v.ndim == 0) else v
    return out


def _reset(meta: dict, delay: bool = True) -> dict:
    """NIR's reset (to 0, in the firing step) unless flashsnn's metadata says otherwise."""
    kw = {"reset_mechanism": str(meta.get(META_RESET, "zero"))}
    if delay:
        kw["reset_delay"] = bool(meta.get(META_DELAY, False))
    return kw


def _f64(node, name) -> np.ndarray:
    return _to_cl(np.asarray(getattr(node, name), np.float64))


def _recurrent(nir, cls, key, lif, w_rec, kw):
    W = _f32(w_rec.weight)
    n = int(np.asarray(lif.v_threshold).size)
    if W.shape != (n, n) or np.asarray(lif.v_threshold).ndim != 1:
        raise _unsupported(key, lif, f": its recurrent weight {W.shape} must be [N, N] over "
                                     f"N = {n} neurons in one axis")
    if isinstance(w_rec, nir.Linear) and np.array_equal(W, np.diag(np.diag(W))):
        return cls(V=_param(np.diag(W)), all_to_all=False, **kw)
    layer = cls(all_to_all=True, linear_features=n, **kw)
    layer.recurrent.weight = mx.array(W)
    layer.recurrent.bias = mx.array(_f32(w_rec.bias) if isinstance(w_rec, nir.Affine)
                                    else np.zeros(n, np.float32))
    return layer


def _import_neuron(nir, key, node, rec, dt):
    for attr in ("v_leak", "v_reset"):
        if np.any(np.asarray(getattr(node, attr, 0)) != 0):
            raise _unsupported(key, node, f": {attr} != 0 has no flashsnn equivalent (its "
                                          "neurons rest and reset at 0)")
    meta = _meta(node)
    thr = _f64(node, "v_threshold")
    if isinstance(node, nir.IF):
        # Euler: v += dt r I. flashsnn's IF adds I; scaling the threshold by
        # 1/(dt r) gives the same spikes (its membrane is v / (dt r)).
        kw = dict(threshold=_param(thr / (dt * _f64(node, "r"))), init_hidden=True,
                  **_reset(meta))
        return Leaky(beta=1.0, **kw) if meta.get(META_LAYER) == "Leaky" else IF(**kw)
    if isinstance(node, nir.LIF):
        tau, r = _f64(node, "tau"), _f64(node, "r")
        if meta.get(META_LAYER) == "Lapicque" and key not in rec:
            ts = float(meta[META_STEP])
            return Lapicque(R=_param(r), C=_param(tau * ts / (dt * r)), time_step=ts,
                            threshold=_param(thr), init_hidden=True, **_reset(meta, False))
        # Euler: v = (1 - dt/tau) v + (dt r/tau) I, so beta = 1 - dt/tau and
        # the input scale dt r/tau moves into the threshold (exact for spikes).
        beta, scale = 1 - dt / tau, dt * r / tau
        cls, kw = (RLeaky, Leaky), dict(beta=_param(beta))
    else:
        tau_syn, tau_mem = _f64(node, "tau_syn"), _f64(node, "tau_mem")
        # Euler: I = (1 - dt/tau_syn) I + (dt w_in/tau_syn) S and
        # v = (1 - dt/tau_mem) v + (dt r/tau_mem) I: both scales into the threshold.
        scale = (dt * _f64(node, "w_in") / tau_syn) * (dt * _f64(node, "r") / tau_mem)
        cls = (RSynaptic, Synaptic)
        kw = dict(alpha=_param(1 - dt / tau_syn), beta=_param(1 - dt / tau_mem))
    kw.update(threshold=_param(thr / scale), init_hidden=True, **_reset(meta))
    if key in rec:
        return _recurrent(nir, cls[0], key, node, rec[key], kw)
    return cls[1](**kw)


def _conv_padding(key, node, k, d):
    p = node.padding
    if isinstance(p, (str, bytes)):
        p = p.decode() if isinstance(p, bytes) else p
        if p == "valid":
            return (0, 0)
        if _pair(node.stride) == (1, 1) and all(di * (ki - 1) % 2 == 0 for ki, di in zip(k, d)):
            return tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
        raise _unsupported(key, node, ": padding='same' needs stride 1 and odd kernels")
    return _pair(p)


def _import_node(nir, key, node, rec, dt):
    if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
        return _import_neuron(nir, key, node, rec, dt)
    if isinstance(node, (nir.Affine, nir.Linear)):
        W = _f32(node.weight)
        layer = nn.Linear(W.shape[1], W.shape[0], bias=isinstance(node, nir.Affine))
        layer.weight = mx.array(W)
        if isinstance(node, nir.Affine):
            layer.bias = mx.array(_f32(node.bias))
        return layer
    if isinstance(node, nir.Conv2d):
        W = _f32(node.weight)  # [C_out, C_in/groups, kH, kW] -> MLX's [C_out, kH, kW, C_in/groups]
        k, d, g = tuple(W.shape[2:]), _pair(node.dilation), int(node.groups)
        layer = nn.Conv2d(W.shape[1] * g, W.shape[0], k, stride=_pair(node.stride),
                          padding=_conv_padding(key, node, k, d), dilation=d, groups=g)
        layer.weight = mx.array(np.ascontiguousarray(W.transpose(0, 2, 3, 1)))
        layer.bias = mx.array(_f32(node.bias))
        return layer
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        cls = nn.AvgPool2d if isinstance(node, nir.AvgPool2d) else SumPool2d
        return cls(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
    if isinstance(node, nir.Flatten):
        shape = node.input_type.get("input") if node.input_type else None
        last = -1 if shape is None else len(shape) - 1
        if node.start_dim != 0 or node.end_dim not in (-1, last):
            raise _unsupported(key, node, f": only a flatten of the whole sample (start_dim=0, "
                                          f"end_dim=-1) imports; got start_dim="
                                          f"{node.start_dim}, end_dim={node.end_dim}")
        return Flatten()
    raise _unsupported(key, node)


def import_from_nir(graph, *, dt: float = DT) -> nn.Sequential:
    """Build an ``mlx.nn.Sequential`` that steps a NIR graph (a chain of the
    nodes in ``IMPORTS``; a file path is read with ``nir.read``).

    Run it one time step at a time, ``spk = net(x_t)`` with ``x_t`` ``[B, ...]``
    (channels-last ``[B, H, W, C]`` for convolutions); the neuron layers keep
    their states (``init_hidden=True``): ``flashsnn.nn.reset(net)`` before each
    sequence. ``dt``: the time step of the Euler discretisation (snnTorch's 1e-4).
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRNode):
        graph = nir.read(graph)
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.NIRGraph.from_list(graph)
    order, nodes, rec = _chain(nir, graph)
    return nn.Sequential(*[_import_node(nir, k, nodes[k], rec, dt) for k in order])
