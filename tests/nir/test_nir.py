"""flashsnn.nir against independent results: snnTorch's own export_to_nir and
import_from_nir (its networks and ours give the same spikes both ways), a
NumPy forward-Euler run of NIR's equations, and exact flashsnn round trips;
unsupported nodes and a missing `nir` are refused by name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
snn_utils = pytest.importorskip("snntorch.utils")
pytest.importorskip("nirtorch")
pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from snntorch.export_nir import export_to_nir as snn_export  # noqa: E402
from snntorch.import_nir import import_from_nir as snn_import  # noqa: E402

import flashsnn as fs  # noqa: E402
from flashsnn.nir import DT, Flatten, SumPool2d, export_to_nir, import_from_nir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Float32 results of two frameworks (or of float64 NumPy) differ by ~1e-7
# relative; a spike flips only where a membrane lands that close to its
# threshold. assert_clear checks that every spike of a run stays the same with
# all thresholds moved by +-MARGIN (relative), so the comparisons below are
# deterministic; the seeds were picked for that.
MARGIN = 1e-4
T = 6
ZERO = dict(reset_mechanism="zero", reset_delay=False)  # NIR's reset: to 0, in the firing step


@pytest.fixture(autouse=True, scope="module")
def _cpu():
    device = mx.default_device()
    mx.set_default_device(mx.cpu)  # torch runs on the CPU; so does MLX here
    yield
    mx.set_default_device(device)


def neurons(net):
    return [m for m in net.layers if isinstance(m, fs.nn.SpikingNeuron)]


def run_mlx(net, x) -> list:
    """Every neuron layer's spikes, [T, B, ...] each, stepping x [T, B, ...]."""
    fs.nn.reset(net)
    out = [[] for _ in neurons(net)]
    for t in range(x.shape[0]):
        h, i = mx.array(x[t]), 0
        for layer in net.layers:
            h = layer(h)
            if isinstance(layer, fs.nn.SpikingNeuron):
                out[i].append(np.array(h))
                i += 1
    return [np.stack(s) for s in out]


def assert_clear(net, x) -> list:
    """The spikes of net on x, unchanged with every threshold moved by +-MARGIN
    (no membrane within MARGIN of its threshold) and each layer active."""
    base = run_mlx(net, x)
    for f in (1 + MARGIN, 1 - MARGIN):
        saved = [m.threshold for m in neurons(net)]
        for m in neurons(net):
            m.threshold = m.threshold * f
        moved = run_mlx(net, x)
        for m, s in zip(neurons(net), saved):
            m.threshold = s
        for a, b in zip(base, moved):
            np.testing.assert_array_equal(a, b)
    for s in base:
        assert 0 < s.mean() < 1, "a layer that never or always spikes tests nothing"
    return base


def run_torch(net, x) -> list:
    """Every snnTorch neuron layer's spikes stepping a torch.nn.Sequential."""
    snn_utils.reset(net)
    out = {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.from_numpy(x[t])
            for i, layer in enumerate(net):
                h = layer(h)
                if isinstance(layer, snn.SpikingNeuron):
                    out.setdefault(i, []).append(h.numpy().copy())
    return [np.stack(v) for _, v in sorted(out.items())]


def rand(rng, shape, lo, hi):
    return torch.from_numpy(rng.uniform(lo, hi, shape).astype(np.float32))


def set_linear(rng, layer, gain):
    with torch.no_grad():
        layer.weight.copy_(rand(rng, layer.weight.shape, -gain, gain))
        layer.bias.copy_(rand(rng, layer.bias.shape, -0.2, 0.4))


# -- snnTorch's export_to_nir -> flashsnn ------------------------------------

def test_snntorch_export_dense_imports_with_same_spikes():
    """Linear, Leaky, Synaptic, RLeaky (all-to-all) with per-neuron
    parameters: snnTorch's graph (dt = 1e-4) imported gives snnTorch's spikes."""
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        snn.Leaky(beta=rand(rng, 6, 0.5, 0.95), threshold=rand(rng, 6, 0.8, 1.2),
                  init_hidden=True, **ZERO),
        torch.nn.Linear(6, 5),
        snn.Synaptic(alpha=rand(rng, 5, 0.3, 0.8), beta=rand(rng, 5, 0.5, 0.9),
                     threshold=rand(rng, 5, 0.8, 1.2), init_hidden=True, **ZERO),
        torch.nn.Linear(5, 4),
        snn.RLeaky(beta=0.8, threshold=torch.ones(4), linear_features=4, init_hidden=True,
                   **ZERO))
    for i, g in ((0, 1.5), (2, 1.5), (4, 1.5)):
        set_linear(rng, tnet[i], g)
    graph = snn_export(tnet, torch.zeros(4))
    net = import_from_nir(graph)
    x = rng.uniform(0, 1.5, (T, 3, 4)).astype(np.float32)
    ours = assert_clear(net, x)
    for a, b in zip(ours, run_torch(tnet, x)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.array(net.layers[0].weight), tnet[0].weight.detach().numpy())
    assert isinstance(net.layers[5], fs.nn.RLeaky) and net.layers[5].all_to_all


def test_snntorch_export_conv_imports_with_same_spikes():
    """Conv2d, Leaky on [C, H, W] neurons, AvgPool2d, Flatten, Linear: NIR's
    channels-first graph runs channels-last in flashsnn with snnTorch's spikes."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(rand(rng, conv.weight.shape, -0.6, 0.6))
        conv.bias.copy_(rand(rng, 4, 0.0, 0.3))
    lin = torch.nn.Linear(64, 5)
    set_linear(rng, lin, 0.5)
    tnet = torch.nn.Sequential(
        conv, snn.Leaky(beta=rand(rng, (4, 8, 8), 0.5, 0.9), threshold=torch.ones(4, 8, 8),
                        init_hidden=True, **ZERO),
        torch.nn.AvgPool2d((2, 2)), torch.nn.Flatten(), lin,
        snn.Leaky(beta=torch.full((5,), 0.7), threshold=torch.ones(5), init_hidden=True, **ZERO))
    graph = snn_export(tnet, torch.zeros(1, 2, 8, 8), ignore_dims=[0])
    net = import_from_nir(graph)
    assert [type(m).__name__ for m in net.layers] == [
        "Conv2d", "Leaky", "AvgPool2d", "Flatten", "Linear", "Leaky"]
    x = rng.uniform(0, 1.5, (T, 2, 2, 8, 8)).astype(np.float32)       # NCHW for torch
    ours = assert_clear(net, np.ascontiguousarray(x.transpose(0, 1, 3, 4, 2)))
    theirs = run_torch(tnet, x)
    np.testing.assert_array_equal(ours[0], theirs[0].transpose(0, 1, 3, 4, 2))
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_snntorch_export_rsynaptic_maps_parameters():
    """snnTorch 1.0's RSynaptic resets a step late whatever reset_delay says, so
    its spikes are not NIR's; its graph's parameters are what flashsnn reads."""
    V = torch.tensor([0.5, -0.25, 0.75])
    tnet = torch.nn.Sequential(torch.nn.Linear(2, 3), snn.RSynaptic(
        alpha=0.6, beta=0.7, threshold=torch.full((3,), 1.5), V=V, all_to_all=False,
        init_hidden=True))
    layer = import_from_nir(snn_export(tnet, torch.zeros(2))).layers[1]
    assert isinstance(layer, fs.nn.RSynaptic) and not layer.all_to_all
    np.testing.assert_allclose(np.array(layer.V), V.numpy(), rtol=0)
    np.testing.assert_allclose([float(layer.alpha), float(layer.beta)], [0.6, 0.7], rtol=1e-6)
    np.testing.assert_allclose(float(layer.threshold), 1.5, rtol=1e-6)
    assert (layer.reset_mechanism, layer.reset_delay) == ("zero", False)


# -- flashsnn's export_to_nir -> snnTorch's import_from_nir ------------------

def run_graph_module(tnet, x) -> np.ndarray:
    """snnTorch's imported network over x [T, B, ...], one sample at a time:
    its Flatten (from NIR's start_dim=0) would flatten the batch axis too."""
    out = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            snn_utils.reset(tnet)
            out.append([tnet(torch.from_numpy(x[t, b:b + 1]))[0].numpy().reshape(-1)
                        for t in range(x.shape[0])])
    return np.array(out).transpose(1, 0, 2)


def test_flashsnn_export_snntorch_imports_dense():
    mx.random.seed(1)
    net = nn.Sequential(
        nn.Linear(4, 6), fs.nn.Leaky(beta=mx.random.uniform(0.5, 0.9, (6,)), threshold=1.2,
                                     init_hidden=True, **ZERO),
        nn.Linear(6, 5), fs.nn.Synaptic(alpha=0.5, beta=0.8, init_hidden=True, **ZERO))
    net.layers[0].weight = net.layers[0].weight * 3
    net.layers[2].weight = net.layers[2].weight * 3
    tnet = snn_import(export_to_nir(net))
    x = np.random.default_rng(0).uniform(0, 1.5, (T, 3, 4)).astype(np.float32)
    ours = assert_clear(net, x)
    np.testing.assert_array_equal(ours[-1], run_graph_module(tnet, x))


def test_flashsnn_export_snntorch_imports_conv():
    """Conv2d, AvgPool2d and Flatten: the weights transposed to NIR's
    [C_out, C_in, kH, kW]; flashsnn.nir.Flatten reads maps in (C, H, W) order."""
    mx.random.seed(4)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), fs.nn.Leaky(beta=0.8, init_hidden=True, **ZERO),
        nn.AvgPool2d(2), Flatten(), nn.Linear(64, 5),
        fs.nn.Leaky(beta=0.8, init_hidden=True, **ZERO))
    net.layers[0].weight = net.layers[0].weight * 2
    net.layers[4].weight = net.layers[4].weight * 4
    tnet = snn_import(export_to_nir(net, mx.zeros((1, 8, 8, 2))))
    x = np.random.default_rng(1).uniform(0, 1.5, (T, 2, 8, 8, 2)).astype(np.float32)
    ours = assert_clear(net, x)
    np.testing.assert_array_equal(
        ours[-1], run_graph_module(tnet, np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))))


# -- flashsnn's export against NIR's equations --------------------------------

def nir_euler(graph, x, dt=DT) -> list:
    """NIR's ODEs by forward Euler at dt in float64: [T, B, N] spikes of every
    neuron node of a chain graph (a NIRGraph node: neuron + recurrent weight).
    Neurons reset to v_reset when v > v_threshold (no reset for flashsnn's
    reset_mechanism "none", which the metadata records)."""
    order, k = [], "input"
    while True:
        k = next(b for a, b in graph.edges if a == k)
        if k == "output":
            break
        order.append(graph.nodes[k])
    state, out = {}, {}
    for t in range(x.shape[0]):
        h, j = x[t].astype(np.float64), 0
        for i, node in enumerate(order):
            rec = None
            if isinstance(node, nir.NIRGraph):
                node, rec = node.nodes["lif"], node.nodes["w_rec"]
            if isinstance(node, (nir.Affine, nir.Linear)):
                h = h @ node.weight.T + (node.bias if isinstance(node, nir.Affine) else 0)
                continue
            s = state.setdefault(i, {"v": np.zeros_like(h), "i": np.zeros_like(h),
                                     "z": np.zeros_like(h)})
            if rec is not None:
                h = h + s["z"] @ rec.weight.T
            if isinstance(node, nir.IF):
                s["v"] = s["v"] + dt * node.r * h
            elif isinstance(node, nir.LIF):
                s["v"] = s["v"] + dt / node.tau * (node.v_leak - s["v"] + node.r * h)
            else:
                s["i"] = s["i"] + dt / node.tau_syn * (-s["i"] + node.w_in * h)
                s["v"] = s["v"] + dt / node.tau_mem * (node.v_leak - s["v"] + node.r * s["i"])
            z = s["v"] > node.v_threshold
            if node.metadata.get("flashsnn_reset_mechanism") != "none":
                s["v"] = np.where(z, node.v_reset, s["v"])
            s["z"] = h = z.astype(np.float64)
            out.setdefault(j, []).append(h)
            j += 1
    return [np.stack(out[j]) for j in sorted(out)]


def test_flashsnn_export_matches_nir_equations():
    """IF, Lapicque, RSynaptic and RLeaky (one-to-one V) against a NumPy Euler
    run of the exported graph: the parameters mean in NIR what they do in flashsnn."""
    mx.random.seed(0)
    net = nn.Sequential(
        nn.Linear(3, 6), fs.nn.IF(threshold=1.0, init_hidden=True, **ZERO),
        nn.Linear(6, 6), fs.nn.Lapicque(R=2.0, C=0.5, time_step=0.5, reset_mechanism="none",
                                        init_hidden=True),
        nn.Linear(6, 5), fs.nn.RSynaptic(alpha=0.5, beta=0.75, V=0.5, all_to_all=False,
                                         init_hidden=True, **ZERO),
        nn.Linear(5, 4), fs.nn.RLeaky(beta=0.8, V=mx.array([0.5, -0.5, 0.25, 1.0]),
                                      all_to_all=False, init_hidden=True, **ZERO))
    for i, g in ((0, 3), (2, 3), (4, 4), (6, 4)):
        net.layers[i].weight = net.layers[i].weight * g
        net.layers[i].bias = net.layers[i].bias + 0.3
    with pytest.warns(UserWarning, match=r"\[flashsnn.nir\] layer 3 \(Lapicque\)"):
        graph = export_to_nir(net)
    x = np.random.default_rng(5).uniform(0, 1, (T, 4, 3)).astype(np.float32)
    ours = assert_clear(net, x)
    for a, b in zip(ours, nir_euler(graph, x)):
        np.testing.assert_array_equal(a, b)


def test_lapicque_round_trip_matches_snntorch_lapicque():
    layer = fs.nn.Lapicque(R=3.0, C=0.5, time_step=0.25, threshold=0.8, init_hidden=True)
    net = nn.Sequential(nn.Linear(3, 4), layer)
    net.layers[0].weight = net.layers[0].weight * 4
    with pytest.warns(UserWarning):
        back = import_from_nir(export_to_nir(net))
    assert isinstance(back.layers[1], fs.nn.Lapicque)
    x = np.random.default_rng(0).uniform(0, 1, (T, 2, 3)).astype(np.float32)
    tl = snn.Lapicque(R=3.0, C=0.5, time_step=0.25, threshold=0.8, init_hidden=True)
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), tl)
    with torch.no_grad():
        tnet[0].weight.copy_(torch.from_numpy(np.array(net.layers[0].weight)))
        tnet[0].bias.copy_(torch.from_numpy(np.array(net.layers[0].bias)))
    np.testing.assert_array_equal(assert_clear(back, x)[0], run_torch(tnet, x)[0])


# -- flashsnn -> NIR -> flashsnn ---------------------------------------------

def every_layer_net():
    mx.random.seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        fs.nn.Leaky(beta=mx.random.uniform(0.5, 0.9, (8, 8, 4)), init_hidden=True),
        nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, stride=1, padding=1), fs.nn.IF(init_hidden=True),
        SumPool2d(2), Flatten(), nn.Linear(16, 10),
        fs.nn.Synaptic(alpha=0.5, beta=0.8, reset_mechanism="none", init_hidden=True),
        nn.Linear(10, 6), fs.nn.Lapicque(R=2.0, C=3.0, time_step=0.5, init_hidden=True),
        nn.Linear(6, 5, bias=False),
        fs.nn.RLeaky(beta=0.7, V=mx.array([0.1, 0.2, 0.3, 0.4, 0.5]), all_to_all=False,
                     init_hidden=True, **ZERO),
        fs.nn.RLeaky(beta=mx.array([0.6, 0.7, 0.8, 0.9, 0.5]), linear_features=5,
                     init_hidden=True),
        fs.nn.RSynaptic(alpha=0.6, beta=0.7, threshold=mx.array([1.0, 0.5, 1.5, 1.0, 2.0]),
                        linear_features=5, init_hidden=True))


@pytest.mark.parametrize("via_file", [False, True])
def test_round_trip_is_exact(tmp_path, via_file):
    net = every_layer_net()
    with pytest.warns(UserWarning, match=r"\[flashsnn.nir\]"):
        graph = export_to_nir(net, (8, 8, 2))
    if via_file:
        nir.write(tmp_path / "net.nir", graph)
        graph = tmp_path / "net.nir"
    back = import_from_nir(graph)
    assert [type(m) for m in back.layers] == [type(m) for m in net.layers]
    ours, theirs = dict(tree_flatten(net.parameters())), dict(tree_flatten(back.parameters()))
    assert ours.keys() == theirs.keys()
    for k, v in ours.items():
        assert v.dtype == theirs[k].dtype and v.shape == theirs[k].shape, k
        assert np.array_equal(np.array(v).view(np.uint32), np.array(theirs[k]).view(np.uint32)), k
    for a, b in zip(net.layers, back.layers):
        if isinstance(a, fs.nn.SpikingNeuron):
            assert (a.reset_mechanism, getattr(a, "reset_delay", None)) == \
                (b.reset_mechanism, getattr(b, "reset_delay", None))
    x = (np.random.default_rng(0).uniform(0, 1, (T, 3, 8, 8, 2)) < 0.6).astype(np.float32) * 2
    for a, b in zip(run_mlx(net, x), run_mlx(back, x)):
        np.testing.assert_array_equal(a, b)
    assert run_mlx(net, x)[-1].any()


# -- refusals ------------------------------------------------------------------

@pytest.mark.parametrize("layer, name", [
    (nn.MaxPool2d(2), "MaxPool2d"), (nn.ReLU(), "ReLU"), (fs.nn.Alpha(0.9, 0.8), "Alpha"),
    (fs.nn.Leaky(beta=0.9, graded_spikes_factor=2.0), "Leaky")])
def test_export_refuses_by_name(layer, name):
    with pytest.raises(ValueError, match=rf"\[flashsnn.nir\].*\b{name}\b") as e:
        export_to_nir(nn.Sequential(nn.Conv2d(2, 2, 1), layer), (4, 4, 2))
    if name != "Leaky":
        assert "mlx.nn.Linear" in str(e.value) and "flashsnn.nn.RSynaptic" in str(e.value)


def lif(n=3, **kw):
    p = dict(tau=np.full(n, 2e-4), r=np.full(n, 2.0), v_leak=np.zeros(n),
             v_threshold=np.ones(n))
    p.update(kw)
    return nir.LIF(**p)


@pytest.mark.parametrize("node, name", [
    (nir.Scale(scale=np.ones(3)), "Scale"),
    (nir.Threshold(threshold=np.ones(3)), "Threshold"),
    (nir.Delay(delay=np.ones(3)), "Delay"),
    (lif(v_leak=np.full(3, 0.1)), "LIF"),
    (nir.Flatten(input_type={"input": np.array([3])}, start_dim=1), "Flatten")])
def test_import_refuses_by_name(node, name):
    graph = nir.NIRGraph.from_list(nir.Linear(weight=np.eye(3)), node, type_check=False)
    with pytest.raises(ValueError, match=rf"\[flashsnn.nir\].*\({name}\).*supported nodes: "
                                         r"Input, Output"):
        import_from_nir(graph)


def test_import_refuses_branches():
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "a": lif(), "b": lif(),
               "output": nir.Output(np.array([3]))},
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(ValueError, match=r"\[flashsnn.nir\].*chain.*'input' feeds 2"):
        import_from_nir(graph)


def test_missing_nir_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=re.escape('pip install "flashsnn[nir]"')):
        export_to_nir(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ImportError, match=r"\[flashsnn.nir\]"):
        import_from_nir("net.nir")


def test_docs_example_runs():
    text = (ROOT / "docs" / "nir.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/nir.md block {i}", "exec"), {})
