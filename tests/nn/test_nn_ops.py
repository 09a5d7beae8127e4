"""The contract every family op other than leaky keeps (synaptic, alpha,
lapicque, rleaky, rsynaptic, alif, izhikevich), checked once for all of them:
backend handling, output_mem, T = 0, dtypes, one T-step call == T chained
one-step calls (values and gradients), broadcast parameters, argument errors.
Every family runs it twice: as the op runs by default (the fused kernel) and
as "<name>@reference" on the pure-MLX path.
Family-specific cases live in tests/ops/test_<family>.py."""

from __future__ import annotations

import functools

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.ops._table import FAMILIES as FUSED
from helpers import describe, rel_rms


def p(v, N, per_neuron, spread=0.05):
    """A float, or a per-neuron array around it."""
    return mx.array(v + spread * np.linspace(-1, 1, N), dtype=mx.float32) if per_neuron else v


# name -> (op, reference, state names, params(N, per_neuron), input scale)
FAMILIES = {
    "synaptic": (fs.ops.synaptic, fs.reference.synaptic, ("syn", "mem"),
                 lambda N, pn: dict(alpha=p(0.7, N, pn), beta=p(0.8, N, pn),
                                    threshold=p(1.0, N, pn)), 1.0),
    "alpha": (fs.ops.alpha, fs.reference.alpha, ("syn_exc", "syn_inh", "mem"),
              lambda N, pn: dict(alpha=p(0.9, N, pn, 0.03), beta=p(0.7, N, pn),
                                 threshold=p(1.0, N, pn)), 1.0),
    "lapicque": (fs.ops.lapicque, fs.reference.lapicque, ("mem",),
                 lambda N, pn: dict(R=p(2.0, N, pn), C=p(3.0, N, pn), time_step=0.5,
                                    threshold=p(1.0, N, pn)), 3.0),
    "rleaky": (fs.ops.rleaky, fs.reference.rleaky, ("spk", "mem"),
               lambda N, pn: dict(beta=p(0.8, N, pn), V=p(0.3, N, pn),
                                  threshold=p(1.0, N, pn)), 1.0),
    "rsynaptic": (fs.ops.rsynaptic, fs.reference.rsynaptic, ("spk", "syn", "mem"),
                  lambda N, pn: dict(alpha=p(0.6, N, pn), beta=p(0.8, N, pn), V=p(0.3, N, pn),
                                     threshold=p(1.0, N, pn)), 1.0),
    "alif": (fs.ops.alif, fs.reference.alif, ("mem", "adapt"),
             lambda N, pn: dict(beta=p(0.8, N, pn), rho=p(0.9, N, pn), b=p(0.3, N, pn),
                                threshold=p(1.0, N, pn)), 1.0),
    "izhikevich": (fs.ops.izhikevich, fs.reference.izhikevich, ("mem", "u"),
                   lambda N, pn: dict(a=p(0.02, N, pn, 0.005), b=p(0.2, N, pn, 0.02),
                                      c=p(-65.0, N, pn, 5.0), d=p(8.0, N, pn, 2.0),
                                      threshold=p(30.0, N, pn, 1.0)), 12.0),
}
for _name in [n for n in FAMILIES if n in FUSED]:
    _op, *_rest = FAMILIES[_name]
    FAMILIES[f"{_name}@reference"] = (functools.partial(_op, backend="reference"), *_rest)
NAMES = list(FAMILIES)
SPK_STATE = {"rleaky", "rsynaptic"}  # the op returns spk [T] as its first state
SPK_STATE |= {f"{n}@reference" for n in SPK_STATE}


def data(name, T, S, seed=0):
    _, _, states, _, scale = FAMILIES[name]
    k = mx.random.split(mx.random.key(seed), 2 + len(states))
    x = (mx.random.normal((T, *S), key=k[0]) * 0.8 + 0.5) * scale
    init = [mx.random.normal(S, key=k[2 + i]) * 0.5 for i in range(len(states))]
    if name in SPK_STATE:
        init[0] = (init[0] > 0).astype(mx.float32)
    if name.startswith("izhikevich"):
        init = [init[0] * 10 - 65.0, init[1] * 2 - 13.0]
    return x, init


def split(name, out):
    """(spk, returned states) -> the states to carry into the next call."""
    return list(out) if name in SPK_STATE else list(out[1:])


@pytest.mark.parametrize("name", ["rleaky", "rsynaptic"])
def test_callable_feedback_under_fused_raises_and_auto_is_the_reference(name):
    """All-to-all feedback (a recurrent callable) has no kernel: "fused"
    says why, "auto" is the reference exactly, values and gradients."""
    import mlx.nn as nn
    op, ref, _, params, _ = FAMILIES[name]
    x, init = data(name, 9, (2, 5))
    kw = params(5, True)
    del kw["V"]
    kw["recurrent"] = nn.Linear(5, 5)
    with pytest.raises(RuntimeError, match=rf"\[{name}\] backend='fused' but no fused kernel "
                                           r"applies: recurrent is a callable"):
        op(x, *init, **kw, backend="fused")

    def loss(fn, x_, init_):
        out = fn(x_, *init_, **kw, output_mem="all")
        return sum((o * (i + 1)).sum() for i, o in enumerate(out))

    va, ga = mx.value_and_grad(lambda a, b: loss(op, a, b), argnums=(0, 1))(x, init)
    vb, gb = mx.value_and_grad(lambda a, b: loss(ref, a, b), argnums=(0, 1))(x, init)
    assert va.item() == vb.item()
    np.testing.assert_array_equal(np.array(ga[0]), np.array(gb[0]))
    for u, v in zip(ga[1], gb[1]):
        np.testing.assert_array_equal(np.array(u), np.array(v))
    out_auto = op(x, *init, **kw, backend="auto")
    out_ref = op(x, *init, **kw, backend="reference")
    for u, v in zip(out_auto, out_ref):
        np.testing.assert_array_equal(np.array(u), np.array(v))


@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("T,S", [(1, (3,)), (17, (2, 5)), (6, (2, 3, 4))])
@pytest.mark.parametrize("name", NAMES)
def test_one_call_equals_chained_single_steps(name, T, S, per_neuron):
    """Values and gradients (input, initial states, every parameter): the
    op over T steps is the op applied T times with T = 1."""
    op, _, states, params, _ = FAMILIES[name]
    x, init = data(name, T, S, seed=T)
    kw = params(S[-1], per_neuron)
    arrays = {k: v for k, v in kw.items() if isinstance(v, mx.array)}
    plain = {k: v for k, v in kw.items() if not isinstance(v, mx.array)}
    cots = [mx.random.normal((T, *S), key=mx.random.key(100 + i)) for i in range(len(states) + 1)]
    if name in SPK_STATE:
        cots = cots[:-1]

    def whole(x_, init_, ps):
        out = op(x_, *init_, **ps, **plain, output_mem="all")
        return sum((o * c).sum() for o, c in zip(out, cots)), out

    def chained(x_, init_, ps):
        carry, outs = list(init_), []
        for t in range(T):
            out = op(x_[t:t + 1], *carry, **ps, **plain)
            outs.append([out[0][0]] + [s for s in out[1:]])
            carry = [out[0][0]] + list(out[1:]) if name in SPK_STATE else list(out[1:])
        out = [mx.stack([o[k] for o in outs]) for k in range(len(outs[0]))]
        return sum((o * c).sum() for o, c in zip(out, cots)), out

    (la, oa), ga = mx.value_and_grad(whole, argnums=(0, 1, 2))(x, init, arrays)
    (lb, ob), gb = mx.value_and_grad(chained, argnums=(0, 1, 2))(x, init, arrays)
    for u, v in zip(oa, ob):
        np.testing.assert_array_equal(np.array(u), np.array(v))
    assert rel_rms(ga[0], gb[0]) < 1e-6, describe(ga[0], gb[0])
    for u, v in zip(ga[1], gb[1]):
        assert rel_rms(u, v) < 1e-6, describe(u, v)
    for k in arrays:
        assert ga[2][k].shape == arrays[k].shape, k  # custom VJPs are not shape-checked
        assert rel_rms(ga[2][k], gb[2][k]) < 1e-5, (k, describe(ga[2][k], gb[2][k]))


@pytest.mark.parametrize("name", NAMES)
def test_output_mem_and_empty_sequences(name):
    op, _, states, params, _ = FAMILIES[name]
    x, init = data(name, 7, (2, 3))
    kw = params(3, False)
    last = op(x, *init, **kw)
    full = op(x, *init, **kw, output_mem="all")
    n_carried = len(states) - (1 if name in SPK_STATE else 0)
    assert len(last) == len(full) == 1 + n_carried
    np.testing.assert_array_equal(np.array(last[0]), np.array(full[0]))
    for a, b in zip(last[1:], full[1:]):
        assert a.shape == (2, 3) and b.shape == (7, 2, 3)
        np.testing.assert_array_equal(np.array(a), np.array(b[-1]))
    empty = op(mx.zeros((0, 2, 3)), *init, **kw)
    assert empty[0].shape == (0, 2, 3)
    carried = init[1:] if name in SPK_STATE else init
    for a, b in zip(empty[1:], carried):  # no step: the initial state comes back
        np.testing.assert_array_equal(np.array(a), np.array(b))
    assert all(a.shape == (0, 2, 3) for a in op(mx.zeros((0, 2, 3)), **kw, output_mem="all"))


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("izhikevich")])
def test_no_state_means_zeros(name):
    op, _, states, params, _ = FAMILIES[name]
    x, _ = data(name, 8, (2, 4))
    kw = params(4, True)
    a = op(x, **kw, output_mem="all")
    b = op(x, *[mx.zeros((2, 4))] * len(states), **kw, output_mem="all")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.array(u), np.array(v))


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_keeps_its_dtype_and_float32_state(name, dtype):
    op, _, _, params, _ = FAMILIES[name]
    x, init = data(name, 6, (2, 3))
    xh = x.astype(dtype)
    lo = op(xh, *[s.astype(dtype) for s in init], **params(3, True), output_mem="all")
    hi = op(xh.astype(mx.float32), *[s.astype(dtype).astype(mx.float32) for s in init],
            **params(3, True), output_mem="all")
    assert all(o.dtype == dtype for o in lo)
    np.testing.assert_array_equal(np.array(lo[0].astype(mx.float32)), np.array(hi[0]))
    for a, b in zip(lo[1:], hi[1:]):  # the same float32 state, rounded once at the end
        np.testing.assert_array_equal(np.array(a.astype(mx.float32)),
                                      np.array(b.astype(dtype).astype(mx.float32)))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_shapes_broadcast(name):
    """A per-neuron parameter as [N], [1, N] or the full [B, N] gives the same
    result, and its gradient has the parameter's own shape."""
    op, _, _, params, _ = FAMILIES[name]
    x, init = data(name, 6, (3, 4))
    kw = params(4, True)
    first = next(k for k, v in kw.items() if isinstance(v, mx.array))
    outs = []
    for shape in [(4,), (1, 4), (3, 4)]:
        v = mx.broadcast_to(kw[first], shape)
        g = mx.grad(lambda v_: op(x, *init, **{**kw, first: v_})[0].sum()
                    + op(x, *init, **{**kw, first: v_})[-1].sum())(v)
        assert g.shape == shape, (first, shape, g.shape)
        outs.append(op(x, *init, **{**kw, first: v}, output_mem="all"))
    for other in outs[1:]:
        for u, w in zip(outs[0], other):
            np.testing.assert_array_equal(np.array(u), np.array(w))


@pytest.mark.parametrize("name", NAMES)
def test_argument_errors(name):
    op, _, states, params, _ = FAMILIES[name]
    x, init = data(name, 4, (2, 3))
    kw = params(3, False)
    tag = rf"\[{name.split('@')[0]}\]"
    with pytest.raises(ValueError, match=tag + r" unknown output_mem 'every'; valid: 'last', "
                                               r"'all'"):
        op(x, **kw, output_mem="every")
    with pytest.raises(ValueError, match=tag + r" unknown backend 'cuda'; valid: 'auto', "
                                               r"'fused', 'reference'"):
        op(x, **kw, backend="cuda")
    with pytest.raises(ValueError, match=tag + rf" {states[0]} must have shape \(2, 3\)"):
        op(x, mx.zeros((3, 2)), **kw)
    with pytest.raises(TypeError, match=tag + r" x must be an mlx.core.array"):
        op(np.zeros((4, 2, 3)), **kw)
    with pytest.raises(ValueError, match=tag + r" x must be float32, float16 or bfloat16"):
        op(mx.zeros((4, 2, 3), dtype=mx.int32), **kw)
    name0 = next(iter(kw))
    with pytest.raises(ValueError, match=tag + rf" {name0} of shape \(5,\) does not broadcast"):
        op(x, **{**kw, name0: mx.zeros((5,))})
    with pytest.raises(TypeError, match=tag + r" spike_grad must be"):
        op(x, **kw, spike_grad=3)
    if not name.startswith("izhikevich"):
        with pytest.raises(ValueError, match=tag + r" unknown reset_mechanism 'hard'; valid: "
                                                   r"'subtract', 'zero', 'none'"):
            op(x, **kw, reset_mechanism="hard")


@pytest.mark.parametrize("name", NAMES)
def test_user_callable_surrogate_runs(name):
    """A plain callable f(v) -> spikes is a spike function (reference path)."""
    op, _, _, params, _ = FAMILIES[name]
    x, init = data(name, 5, (2, 3))
    kw = params(3, False)
    a = op(x, *init, **kw, spike_grad=lambda v: (v > 0).astype(v.dtype))
    b = op(x, *init, **kw, spike_grad=fs.surrogate.straight_through())
    if name.startswith("izhikevich"):  # the callable fires on v > 0, the surrogate on v >= 0
        return
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.array(u), np.array(v))
