"""flashsnn.nn layers as modules: hidden state (init_hidden, output, reset_mem
and the init functions, as snnTorch), training with mlx.nn.value_and_grad and
mlx.optimizers, argument errors, dtypes, mx.compile, and that a sequence is
one op call."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import flashsnn as fs
import flashsnn.nn.leaky as nn_leaky

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUSED = fs.fused_unavailable_reason() is None


def key(i):
    return mx.random.key(i)


# (our layer, snnTorch's constructor arguments) for every family snnTorch has
SNN_FAMILIES = {
    "Leaky": (lambda **k: fs.nn.Leaky(beta=0.8, **k), "Leaky", dict(beta=0.8)),
    "Synaptic": (lambda **k: fs.nn.Synaptic(alpha=0.6, beta=0.8, **k), "Synaptic",
                 dict(alpha=0.6, beta=0.8)),
    "Alpha": (lambda **k: fs.nn.Alpha(alpha=0.9, beta=0.7, **k), "Alpha",
              dict(alpha=0.9, beta=0.7)),
    "Lapicque": (lambda **k: fs.nn.Lapicque(beta=0.9, **k), "Lapicque", dict(beta=0.9)),
    "RLeaky": (lambda **k: fs.nn.RLeaky(beta=0.8, V=0.5, all_to_all=False, **k), "RLeaky",
               dict(beta=0.8, V=0.5, all_to_all=False)),
    "RSynaptic": (lambda **k: fs.nn.RSynaptic(alpha=0.6, beta=0.8, V=0.5, all_to_all=False,
                                              **k), "RSynaptic",
                  dict(alpha=0.6, beta=0.8, V=0.5, all_to_all=False)),
}
ALL_FAMILIES = {
    **{k: v[0] for k, v in SNN_FAMILIES.items()},
    "IF": lambda **k: fs.nn.IF(**k),
    "ALIF": lambda **k: fs.nn.ALIF(beta=0.8, rho=0.9, b=0.2, **k),
    "Izhikevich": lambda **k: fs.nn.Izhikevich("RS", **k),
}
INIT_FUNCTIONS = {"Leaky": "init_leaky", "Synaptic": "init_synaptic", "Alpha": "init_alpha",
                  "Lapicque": "init_lapicque", "RLeaky": "init_rleaky",
                  "RSynaptic": "init_rsynaptic", "IF": "init_leaky", "ALIF": "init_alif",
                  "Izhikevich": "init_izhikevich"}


def drive(name, T=12, S=(3, 5), seed=0):
    scale = 20.0 if name == "Izhikevich" else 1.0
    return (mx.random.normal((T, *S), key=key(seed)) * 0.8 + 0.6) * scale


# -- hidden state, as snnTorch --------------------------------------------------

def snntorch_twin(name, **kw):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    ours, cls, args = SNN_FAMILIES[name]
    return torch, ours(**kw), getattr(snn, cls)(**args, **kw)


@pytest.mark.parametrize("output", [False, True])
@pytest.mark.parametrize("name", list(SNN_FAMILIES))
def test_init_hidden_steps_like_snntorch(name, output):
    torch, ours, theirs = snntorch_twin(name, init_hidden=True, output=output)
    x = drive(name)
    for t in range(x.shape[0]):
        a = ours(x[t])
        b = theirs(torch.tensor(np.array(x[t])))
        if output:
            assert isinstance(a, tuple) and len(a) == len(b)
            for u, v in zip(a, b):
                np.testing.assert_allclose(np.array(u), v.detach().numpy(), rtol=1e-6,
                                           atol=1e-6)
        else:
            assert isinstance(a, mx.array)
            np.testing.assert_array_equal(np.array(a), b.detach().numpy())
        for state in ours._states:  # layer.mem, layer.syn... as in snnTorch
            np.testing.assert_allclose(np.array(getattr(ours, state)),
                                       getattr(theirs, state).detach().numpy(), atol=1e-6)
    # reset_mem: zeros of the stored shape, returned in snnTorch's order
    a, b = ours.reset_mem(), theirs.reset_mem()
    a, b = (a, b) if isinstance(b, tuple) else ((a,), (b,))
    assert [tuple(u.shape) for u in a] == [tuple(v.shape) for v in b]
    assert all(float(mx.abs(u).sum()) == 0 for u in a)


@pytest.mark.parametrize("name", list(SNN_FAMILIES))
def test_stepping_without_state_continues_like_snntorch(name):
    """snnTorch keeps the state on the layer even without init_hidden: a call
    without states continues from the last one, and a state whose shape is
    not the input's (init_leaky()'s empty one) means zeros."""
    torch, ours, theirs = snntorch_twin(name)
    x = drive(name, seed=1)
    init_fn = INIT_FUNCTIONS[name]
    first_a, first_b = getattr(ours, init_fn)(), getattr(theirs, init_fn)()
    first_a = first_a if isinstance(first_a, tuple) else (first_a,)
    first_b = first_b if isinstance(first_b, tuple) else (first_b,)
    assert [tuple(u.shape) for u in first_a] == [tuple(v.shape) for v in first_b] == \
        [(0,)] * len(first_a)
    a = ours(x[0], *first_a)
    b = theirs(torch.tensor(np.array(x[0])), *first_b)
    for t in range(1, x.shape[0]):
        a = ours(x[t])
        b = theirs(torch.tensor(np.array(x[t])))
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.array(u), v.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("name", list(SNN_FAMILIES))
def test_init_hidden_rejects_a_passed_state_as_snntorch(name):
    torch, ours, theirs = snntorch_twin(name, init_hidden=True)
    x = drive(name)[0]
    state = mx.zeros(x.shape)
    with pytest.raises(TypeError):
        theirs(torch.tensor(np.array(x)), torch.zeros(tuple(x.shape)))
    with pytest.raises(TypeError, match=rf"\[{name}\].*init_hidden=True"):
        ours(x, state)
    with pytest.raises(TypeError, match=rf"\[{name}\].*init_hidden=True"):
        ours.sequence(x[None], state)


@pytest.mark.parametrize("name", list(ALL_FAMILIES))
def test_sequence_is_stepping(name):
    """sequence() equals stepping T times; pure unless init_hidden, which
    carries the state from call to call exactly as stepping does."""
    layer = ALL_FAMILIES[name]()
    x = drive(name, T=10)
    seq = layer.sequence(x, output_mem="all")
    before = {k: getattr(layer, k) for k in layer._states}
    again = layer.sequence(x, output_mem="all")
    for k in layer._states:  # pure: the stored state is untouched
        assert getattr(layer, k) is before[k]
    for u, v in zip(seq, again):
        np.testing.assert_array_equal(np.array(u), np.array(v))
    steps, states = [], [None] * len(layer._states)
    for t in range(x.shape[0]):
        out = layer(x[t], *states)
        steps.append(out)
        states = list(out) if layer._spk_state else list(out[1:])
    for k in range(len(seq)):
        np.testing.assert_allclose(np.array(seq[k]), np.array(mx.stack([s[k] for s in steps])),
                                   rtol=1e-6, atol=1e-5)
    last = layer.sequence(x, output_mem="last")
    for u, v in zip(last[1:], seq[1:]):
        np.testing.assert_array_equal(np.array(u), np.array(v[-1]))

    hidden = ALL_FAMILIES[name](init_hidden=True, output=True)
    a = hidden.sequence(x[:4])
    b = hidden.sequence(x[4:])
    got = mx.concatenate([a[0], b[0]])
    np.testing.assert_allclose(np.array(got), np.array(seq[0]), atol=1e-6)
    for k, state in enumerate(hidden._states[1:] if hidden._spk_state else hidden._states):
        np.testing.assert_allclose(np.array(getattr(hidden, state)), np.array(seq[k + 1][-1]),
                                   rtol=1e-6, atol=1e-5)
    assert isinstance(ALL_FAMILIES[name](init_hidden=True).sequence(x), mx.array)


@pytest.mark.parametrize("name", list(ALL_FAMILIES))
def test_empty_sequence(name):
    layer = ALL_FAMILIES[name]()
    out = layer.sequence(mx.zeros((0, 2, 3)))
    assert out[0].shape == (0, 2, 3)
    assert all(s.shape == (2, 3) for s in out[1:])
    out = layer.sequence(mx.zeros((0, 2, 3)), output_mem="all")
    assert all(s.shape == (0, 2, 3) for s in out)


def test_reset_functions():
    a, b = fs.nn.Leaky(beta=0.5, init_hidden=True), fs.nn.Synaptic(0.5, 0.5, init_hidden=True)
    net = nn.Sequential(nn.Linear(3, 4), a, nn.Linear(4, 4), b)
    net(mx.ones((2, 3)))
    assert a.mem.shape == (2, 4) and float(mx.abs(b.mem).sum()) > 0
    fs.nn.reset(net)
    assert a.mem.shape == (2, 4) and float(mx.abs(a.mem).sum()) == 0
    assert float(mx.abs(b.syn).sum()) == 0 and float(mx.abs(b.mem).sum()) == 0
    net(mx.ones((2, 3)))
    fs.nn.Synaptic.reset_hidden()  # snnTorch's class-wide reset: only Synaptic layers
    assert float(mx.abs(b.mem).sum()) == 0 and float(mx.abs(a.mem).sum()) > 0
    fs.nn.SpikingNeuron.detach_hidden()
    izh = fs.nn.Izhikevich("FS", init_hidden=True)
    izh(mx.full((2, 3), 10.0))
    mem, u = izh.reset_mem()  # Izhikevich rests at v = -65, u = b*v
    assert mem.tolist() == [[-65.0] * 3] * 2 and np.allclose(np.array(u), 0.2 * -65.0)


# -- training ---------------------------------------------------------------------

LEARNABLE = {  # family -> (constructor with every learn_* on, the names that train)
    "Leaky": (lambda: fs.nn.Leaky(beta=mx.full((5,), 0.8), learn_beta=True, learn_threshold=True,
                                  learn_graded_spikes_factor=True),
              {"beta", "threshold", "graded_spikes_factor"}),
    "Synaptic": (lambda: fs.nn.Synaptic(0.6, 0.8, learn_alpha=True, learn_beta=True,
                                        learn_threshold=True), {"alpha", "beta", "threshold"}),
    "Alpha": (lambda: fs.nn.Alpha(0.9, 0.7, learn_alpha=True, learn_beta=True,
                                  learn_threshold=True), {"alpha", "beta", "threshold"}),
    "Lapicque": (lambda: fs.nn.Lapicque(beta=0.9, learn_beta=True, learn_threshold=True),
                 {"beta", "threshold"}),
    "RLeaky": (lambda: fs.nn.RLeaky(0.8, linear_features=5, learn_beta=True,
                                    learn_threshold=True),
               {"beta", "threshold", "recurrent.weight", "recurrent.bias"}),
    "RSynaptic": (lambda: fs.nn.RSynaptic(0.6, 0.8, V=0.5, all_to_all=False, learn_alpha=True,
                                          learn_beta=True, learn_threshold=True),
                  {"alpha", "beta", "threshold", "V"}),
    "IF": (lambda: fs.nn.IF(learn_threshold=True), {"threshold"}),
    "ALIF": (lambda: fs.nn.ALIF(0.8, learn_beta=True, learn_rho=True, learn_b=True,
                                learn_threshold=True), {"beta", "rho", "b", "threshold"}),
    "Izhikevich": (lambda: fs.nn.Izhikevich("RS", learn_a=True, learn_b=True, learn_c=True,
                                            learn_d=True, learn_threshold=True),
                   {"a", "b", "c", "d", "threshold"}),
}


class Net(nn.Module):
    def __init__(self, neuron):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.neuron = neuron

    def __call__(self, x):  # x [T, B, 4]
        out = self.neuron.sequence(self.fc(x), output_mem="all")
        return out[0], out[-1]


@pytest.mark.parametrize("name", list(LEARNABLE))
def test_value_and_grad_and_an_optimizer_train_learnable_parameters_only(name):
    make, learnable = LEARNABLE[name]
    mx.random.seed(11)  # nn.Linear draws from MLX's global, time-seeded generator
    net = Net(make())
    trainable = {k for k, _ in tree_flatten(net.neuron.trainable_parameters())}
    assert trainable == learnable
    assert "threshold=" in repr(net.neuron) and "(learned)" in repr(net.neuron)
    fixed = {k for k, _ in tree_flatten(net.neuron.parameters())} - learnable
    net.unfreeze()  # a parent's unfreeze must not make fixed parameters trainable
    assert {k for k, _ in tree_flatten(net.neuron.trainable_parameters())} == learnable
    # strong enough that neurons spike: weights that multiply spikes (the
    # recurrent ones, the graded factor) get no gradient from silence
    scale = {"Izhikevich": 30.0, "Lapicque": 20.0}.get(name, 3.0)  # Lapicque: gain 1/(RC)
    x = mx.random.uniform(-1, 1, (16, 3, 4), key=key(5)) * scale
    target = mx.random.normal((16, 3, 5), key=key(6))

    def loss_fn(model, x):
        spk, mem = model(x)
        return ((mem / scale - target) ** 2).mean() + spk.mean()

    spikes = net(x)[0].sum().item()
    assert 0 < spikes < 16 * 3 * 5, spikes
    before = {k: np.array(v) for k, v in tree_flatten(net.neuron.parameters())}
    opt = optim.Adam(learning_rate=1e-2)
    loss, grads = nn.value_and_grad(net, loss_fn)(net, x)
    assert {k for k, _ in tree_flatten(grads["neuron"])} == learnable
    opt.update(net, grads)
    mx.eval(net.parameters(), opt.state)
    after = {k: np.array(v) for k, v in tree_flatten(net.neuron.parameters())}
    for k in learnable:
        assert not np.array_equal(before[k], after[k]), f"learnable {k} did not change"
    for k in fixed:
        np.testing.assert_array_equal(before[k], after[k], err_msg=f"fixed {k} changed")


def test_fixed_parameters_are_saved_like_snntorch_buffers(tmp_path):
    a = fs.nn.Leaky(beta=mx.array([0.5, 0.75]), threshold=0.875)
    a.save_weights(str(tmp_path / "w.safetensors"))
    b = fs.nn.Leaky(beta=mx.array([0.1, 0.1]))
    b.load_weights(str(tmp_path / "w.safetensors"))
    assert b.beta.tolist() == [0.5, 0.75] and b.threshold.item() == 0.875
    assert "mem" not in dict(tree_flatten(b.parameters()))


def test_graded_spikes_factor_assigned_later_is_used():
    lif = fs.nn.Leaky(beta=0.5)
    x = mx.full((3, 2), 1.5)
    assert lif.sequence(x)[0].tolist() == [[1.0, 1.0]] * 3
    lif.graded_spikes_factor = mx.array(2.0)
    assert lif.sequence(x)[0].tolist() == [[2.0, 2.0]] * 3


# -- the op underneath --------------------------------------------------------------

def test_leaky_sequence_is_one_call_of_the_fused_op(monkeypatch):
    calls = []
    real = fs.ops.leaky

    def spy(x, *a, **k):
        calls.append((x.shape, k["backend"]))
        return real(x, *a, **k)

    monkeypatch.setattr(nn_leaky.ops, "leaky", spy)
    x = drive("Leaky", T=40)
    fs.nn.Leaky(beta=0.9).sequence(x)
    assert calls == [((40, 3, 5), "auto")]
    fs.nn.Leaky(beta=0.9)(x[0])
    assert calls[-1] == ((1, 3, 5), "auto")


@pytest.mark.skipif(not FUSED, reason=f"no fused kernel: {fs.fused_unavailable_reason()}")
def test_leaky_layer_runs_the_kernel_and_it_matches_the_reference():
    x = drive("Leaky", T=30)
    fused = fs.nn.Leaky(beta=0.9, backend="fused").sequence(x, output_mem="all")
    ref = fs.nn.Leaky(beta=0.9, backend="reference").sequence(x, output_mem="all")
    for u, v in zip(fused, ref):
        np.testing.assert_array_equal(np.array(u), np.array(v))


@pytest.mark.skipif(not FUSED, reason=f"no fused kernel: {fs.fused_unavailable_reason()}")
@pytest.mark.parametrize("name", ["Synaptic", "Alpha", "Lapicque", "RLeaky", "RSynaptic", "ALIF",
                                  "Izhikevich"])
def test_fused_families_run_their_kernel_from_the_layer(name):
    """backend="fused" reaches the kernel through .sequence() (same values as
    the reference; tests/ops/test_families.py compares them in depth)."""
    x = drive(name, T=6)
    a = ALL_FAMILIES[name](backend="fused").sequence(x, output_mem="all")
    b = ALL_FAMILIES[name](backend="reference").sequence(x, output_mem="all")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.array(u), np.array(v))


@pytest.mark.parametrize("name", ["RLeaky", "RSynaptic"])
def test_all_to_all_feedback_under_fused_says_why(name):
    """A Linear's feedback is not elementwise: no kernel, and backend="fused"
    says so (backend="auto" runs the reference)."""
    kw = dict(alpha=0.6) if name == "RSynaptic" else {}
    layer = getattr(fs.nn, name)(beta=0.8, linear_features=5, backend="fused", **kw)
    with pytest.raises(RuntimeError, match=r"no fused kernel applies: recurrent is a callable"):
        layer.sequence(drive(name, T=3))


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("name", list(ALL_FAMILIES))
def test_half_precision_inputs(name, dtype):
    layer = ALL_FAMILIES[name]()
    x = drive(name, T=8)
    lo = layer.sequence(x.astype(dtype), output_mem="all")
    hi = layer.sequence(x.astype(dtype).astype(mx.float32), output_mem="all")
    assert all(a.dtype == dtype for a in lo)
    # same input values, float32 state either way: only the final rounding differs
    np.testing.assert_array_equal(np.array(lo[0].astype(mx.float32)), np.array(hi[0]))
    for a, b in zip(lo[1:], hi[1:]):
        np.testing.assert_allclose(np.array(a.astype(mx.float32)), np.array(b),
                                   rtol=1e-2, atol=1e-2)


def test_compiled_stepping_with_captured_state_matches_eager():
    x = drive("Synaptic", T=6)
    eager = fs.nn.Synaptic(0.6, 0.8, init_hidden=True)
    comp = fs.nn.Synaptic(0.6, 0.8, init_hidden=True)
    step = mx.compile(lambda v: comp(v), inputs=comp.state, outputs=comp.state)
    # On the CPU compiled and eager MLX round identically; on a GPU the
    # compiled (fused) elementwise kernel may differ in the last bit.
    same = np.testing.assert_array_equal if mx.default_device() == mx.cpu else \
        (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7))
    for t in range(x.shape[0]):
        same(np.array(step(x[t])), np.array(eager(x[t])))
    same(np.array(comp.mem), np.array(eager.mem))
    lif = fs.nn.Leaky(beta=0.8)
    seq = mx.compile(lambda v: lif.sequence(v)[0])  # pure without init_hidden
    np.testing.assert_array_equal(np.array(seq(x)), np.array(lif.sequence(x)[0]))


def test_surrogate_disable_matches_snntorch():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    x = np.array(drive("Leaky", T=15))
    ours = fs.nn.Leaky(beta=0.8, surrogate_disable=True)
    theirs = snn.Leaky(beta=0.8, surrogate_disable=True)
    xt = torch.tensor(x, requires_grad=True)
    mem, mems = theirs.reset_mem(), []
    for t in range(x.shape[0]):
        _, mem = theirs(xt[t], mem)
        mems.append(mem)
    torch.stack(mems).sum().backward()
    g = mx.grad(lambda v: ours.sequence(v, output_mem="all")[1].sum())(mx.array(x))
    np.testing.assert_allclose(np.array(g), xt.grad.numpy(), rtol=1e-6)
    assert ours.sequence(mx.array(x))[0].tolist() == \
        fs.nn.Leaky(beta=0.8).sequence(mx.array(x))[0].tolist()


# -- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: fs.nn.Leaky(beta=0.5, reset_mechanism="soft"), ValueError,
     r"\[Leaky\] unknown reset_mechanism 'soft'; valid: 'subtract', 'zero', 'none'"),
    (lambda: fs.nn.Synaptic(0.5, 0.5, backend="gpu"), ValueError,
     r"\[Synaptic\] unknown backend 'gpu'; valid: 'auto', 'fused', 'reference'"),
    (lambda: fs.nn.Leaky(beta=0.5, state_quant=lambda u: u), NotImplementedError,
     r"\[Leaky\] state_quant is not supported"),
    (lambda: fs.nn.Leaky(beta=0.5, inhibition=True, reset_delay=False), NotImplementedError,
     r"\[Leaky\] inhibition with reset_delay=False"),
    (lambda: fs.nn.RLeaky(0.5, linear_features=3, inhibition=True), NotImplementedError,
     r"\[RLeaky\] inhibition is not supported for recurrent layers"),
    (lambda: fs.nn.Leaky(beta="0.5"), TypeError, r"\[Leaky\] beta must be a float or an array"),
    (lambda: fs.nn.Leaky(beta=0.5, spike_grad="tanh"), ValueError,
     r"\[Leaky\] unknown surrogate 'tanh'; valid names: .*atan"),
    (lambda: fs.nn.Alpha(alpha=0.5, beta=0.7), ValueError,
     r"\[Alpha\] alpha must be greater than beta"),
    (lambda: fs.nn.Alpha(alpha=1.0, beta=1.0), ValueError, r"\[Alpha\] alpha must be greater"),
    (lambda: fs.nn.Alpha(alpha=2.0, beta=1.0), ValueError, r"\[Alpha\] alpha must be greater"),
    (lambda: fs.nn.Lapicque(), ValueError, r"\[Lapicque\] Either beta or 2 of beta, R and C"),
    (lambda: fs.nn.Lapicque(R=2.0), ValueError, r"\[Lapicque\] Either beta"),
    (lambda: fs.nn.Lapicque(beta=0.9, R=1.0, C=2.0), ValueError, r"\[Lapicque\] .*not all three"),
    (lambda: fs.nn.Lapicque(R=1.0, C=2.0, learn_beta=True), ValueError,
     r"\[Lapicque\] learn_beta=True needs beta"),
    (lambda: fs.nn.RLeaky(0.5), TypeError, r"\[RLeaky\] all_to_all=True needs linear_features"),
    (lambda: fs.nn.RSynaptic(0.5, 0.5, conv2d_channels=3), TypeError,
     r"\[RSynaptic\] conv2d_channels and kernel_size must both"),
    (lambda: fs.nn.RLeaky(0.5, linear_features=3, kernel_size=3), TypeError,
     r"\[RLeaky\] linear_features cannot be specified together"),
    (lambda: fs.nn.RLeaky(0.5, all_to_all=False, linear_features=3), TypeError,
     r"\[RLeaky\] with all_to_all=False none of"),
    (lambda: fs.nn.Izhikevich("XY"), ValueError,
     r"\[Izhikevich\] unknown preset 'XY'; valid: 'RS', 'IB', 'CH', 'FS'"),
    (lambda: fs.nn.Izhikevich(None, a=0.02, b=0.2), ValueError,
     r"\[Izhikevich\] preset=None needs a, b, c and d; missing c, d"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_constructor_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_call_errors():
    lif = fs.nn.Leaky(beta=0.5)
    with pytest.raises(ValueError, match=r"\[Leaky\] unknown output_mem 'every'; valid: "
                                         r"'last', 'all'"):
        lif.sequence(mx.zeros((2, 3)), output_mem="every")
    with pytest.raises(TypeError, match=r"\[Leaky\] input must be an mlx.core.array"):
        lif(np.zeros(3))
    with pytest.raises(ValueError, match=r"\[Leaky\] beta of shape \(4,\) does not broadcast"):
        fs.nn.Leaky(beta=mx.full((4,), 0.5)).sequence(mx.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[Leaky\] unknown reset_mechanism"):
        lif.reset_mechanism = "hard"
    inhibited = fs.nn.Leaky(beta=0.5, inhibition=True)
    with pytest.raises(ValueError, match=r"\[Leaky\] inhibition needs \[batch, features\]"):
        inhibited.sequence(mx.zeros((2, 3, 4, 5)))
    with pytest.warns(UserWarning, match="Inhibition is an unstable feature"):
        fs.nn.Synaptic(0.5, 0.5, inhibition=True)
