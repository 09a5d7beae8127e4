"""Arguments every family op accepts or refuses (issue 19, items 3 and 7).

Initial states may be floats or arrays broadcastable to the neuron shape, as
the parameters may (fused and reference alike, the gradient summed back to
the state's own shape); NumPy arrays and lists are accepted wherever an array
is; a wrong state shape and a non-bool flag are tagged errors.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.ops._table import FAMILIES
from helpers import np32, rel_rms

from test_families import make, rng_for

fused_only = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

S = (3, 5)
# A state given as each of these broadcasts to S = (3, 5).
STATE_SHAPES = [(), (5,), (1, 5), (3, 1)]


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """A gradient of shape S summed back to a broadcast shape."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(j for j, n in enumerate(shape) if n == 1 and g.shape[j] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _outputs_and_grads(name, x, states, params, backend):
    op = getattr(fs.ops, name)
    sn, pn = list(states), list(params)

    def loss(*args):
        st = dict(zip(sn, args[1:1 + len(sn)]))
        pr = dict(zip(pn, args[1 + len(sn):]))
        outs = op(args[0], **st, **pr, output_mem="all", backend=backend)
        w = [mx.arange(o.size, dtype=mx.float32).reshape(o.shape) / o.size for o in outs]
        return sum((o * wk).sum() for o, wk in zip(outs, w)), outs

    args = [x, *states.values(), *params.values()]
    (_, outs), grads = mx.value_and_grad(loss, argnums=tuple(range(len(args))))(*args)
    mx.eval(outs, grads)
    return outs, grads


@fused_only
@pytest.mark.parametrize("shape", STATE_SHAPES, ids=[str(s) for s in STATE_SHAPES])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_broadcast_states_fused_equals_reference(name, shape):
    """Every initial state given with a broadcastable shape: fused and
    reference agree on values (bitwise) and gradients, each state's gradient
    has the state's own shape, and both equal the run with the states
    materialized to S."""
    rng = rng_for("broadcast-states", name, shape)
    x, states, params = make(name, 13, S, rng)
    small = {k: mx.array(np32(v).reshape(-1)[:int(np.prod(shape))].reshape(shape))
             for k, v in states.items()}
    full = {k: mx.broadcast_to(v, S) + 0 for k, v in small.items()}
    fo, fg = _outputs_and_grads(name, x, small, params, "fused")
    ro, rg = _outputs_and_grads(name, x, small, params, "reference")
    wo, wg = _outputs_and_grads(name, x, full, params, "fused")
    for a, b, c in zip(fo, ro, wo):
        np.testing.assert_array_equal(np32(a), np32(b))
        np.testing.assert_array_equal(np32(a), np32(c))
    n = len(states)
    for k, (a, b) in enumerate(zip(fg, rg)):
        assert a.shape == b.shape
        assert rel_rms(a, b) <= 1e-5, f"gradient {k}: {rel_rms(a, b):.2e}"
    for k, st in enumerate(small.values()):
        g = fg[1 + k]
        assert g.shape == st.shape
        assert rel_rms(g, _sum_to(np32(wg[1 + k]), shape)) <= 1e-5
    assert n == len(FAMILIES[name].arg_states)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_float_and_numpy_states(name):
    """A float state, a NumPy state and a list state run as the mx.array."""
    rng = rng_for("numpy-states", name)
    x, states, params = make(name, 7, (4,), rng)
    op = getattr(fs.ops, name)
    want = op(x, **states, **params)
    as_np = {k: np.array(v) for k, v in states.items()}
    as_list = {k: np.array(v).tolist() for k, v in states.items()}
    for given in (as_np, as_list):
        for a, b in zip(op(x, **given, **params), want):
            np.testing.assert_array_equal(np32(a), np32(b))
    first = next(iter(states))
    as_float = {**states, first: 0.25}
    as_array = {**states, first: mx.full((4,), 0.25)}
    for a, b in zip(op(x, **as_float, **params), op(x, **as_array, **params)):
        np.testing.assert_array_equal(np32(a), np32(b))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_numpy_and_list_parameters(name):
    """Every parameter may be a NumPy array (float64 too), a NumPy scalar or
    a list: the same results as the mx.array."""
    rng = rng_for("numpy-params", name)
    x, states, params = make(name, 7, (4,), rng)
    op = getattr(fs.ops, name)
    want = op(x, **states, **params)
    for conv in (lambda v: np.array(v).astype(np.float64), lambda v: np.array(v).tolist()):
        got = op(x, **states, **{k: conv(v) for k, v in params.items()})
        for a, b in zip(got, want):
            np.testing.assert_array_equal(np32(a), np32(b))
    p = next(iter(params))
    got = op(x, **states, **{**params, p: np.float32(0.5)})
    ref = op(x, **states, **{**params, p: 0.5})
    np.testing.assert_array_equal(np32(got[0]), np32(ref[0]))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_state_of_a_wrong_shape_is_a_tagged_error(name):
    x = mx.zeros((3, 2, 4))
    state = FAMILIES[name].arg_states[-1]
    _, _, params = make(name, 3, (2, 4), rng_for("bad", name))
    with pytest.raises(ValueError, match=rf"\[{name}\] {state} must have shape \(2, 4\) .*"
                                         r"broadcasts to it; got \(3,\)"):
        getattr(fs.ops, name)(x, **{state: mx.zeros((3,))}, **params)
    with pytest.raises(TypeError, match=rf"\[{name}\] {state} must be an mlx.core.array"):
        getattr(fs.ops, name)(x, **{state: "zeros"}, **params)


FLAGS = [("leaky", "reset_delay"), ("leaky", "detach_reset"), ("synaptic", "reset_delay"),
         ("rleaky", "reset_delay"), ("rsynaptic", "reset_delay")]


@pytest.mark.parametrize("value", ["yes", None, 1, 0.0])
@pytest.mark.parametrize("name,flag", FLAGS, ids=[f"{n}-{f}" for n, f in FLAGS])
def test_flags_must_be_bools(name, flag, value):
    _, _, params = make(name, 3, (4,), rng_for("flags", name))
    with pytest.raises(TypeError, match=rf"\[{name}\] {flag} must be True or False; "
                                        rf"got {value!r}"):
        getattr(fs.ops, name)(mx.zeros((3, 4)), **params, **{flag: value})
    getattr(fs.ops, name)(mx.zeros((3, 4)), **params, **{flag: np.bool_(True)})


def test_leaky_readme_example_broadcast_mem():
    """The README's promise: mem=[N] with x [T, B, N]."""
    x = mx.random.uniform(0, 1, (6, 4, 10), key=mx.random.key(3))
    mem = mx.linspace(0, 1, 10)
    spk, m = fs.ops.leaky(x, mem, beta=0.9)
    spk2, m2 = fs.ops.leaky(x, mx.broadcast_to(mem, (4, 10)), beta=0.9)
    np.testing.assert_array_equal(np32(spk), np32(spk2))
    np.testing.assert_array_equal(np32(m), np32(m2))
