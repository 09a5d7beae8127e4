"""flashsnn.ops.selective_scan: the fused CPU kernel against the pure-MLX
reference (outputs and the gradient of every input), against a float64
NumPy model written here from the equations, finite differences, MLX's
transforms, and the argument checks. They run on the test device
(FLASHSNN_TEST_DEVICE) where the scan has a kernel there (the CPU, CUDA),
else on the CPU; the last tests check what a GPU device does."""

from __future__ import annotations

import itertools

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flashsnn as fs
from flashsnn.ops.selective_scan import selective_scan
from scan_cases import NAMES, cotangents, make, run, vjp

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason(mx.cpu) is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason(mx.cpu)}")

TOL = 1e-5  # relative RMS, float32 (the bar)


def scan_device():
    """The test device, or the CPU where the scan has no kernel on it."""
    from flashsnn.ops.selective_scan import _why_not_fused
    return mx.default_device() if _why_not_fused(16) is None else mx.cpu


@pytest.fixture(autouse=True)
def on_scan_device():
    old = mx.default_device()
    mx.set_default_device(scan_device())
    yield
    mx.set_default_device(old)


def rel(a, b) -> float:
    a, b = np.array(a.astype(mx.float32), np.float64), np.array(b.astype(mx.float32), np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-30))


def check_against_reference(inp, softplus=True, chunk=64, tol=TOL):
    cot = cotangents(inp)
    (yf, hf), gf = vjp(inp, "fused", cot, softplus, chunk)
    (yr, hr), gr = vjp(inp, "reference", cot, softplus, chunk)
    assert yf.dtype == inp["u"].dtype and hf.dtype == mx.float32
    assert rel(yf, yr) <= tol and rel(hf, hr) <= tol, (rel(yf, yr), rel(hf, hr))
    assert set(gf) == set(gr)
    for n in gf:
        assert gf[n].shape == inp[n].shape and gf[n].dtype == inp[n].dtype, n
        assert rel(gf[n], gr[n]) <= tol, (n, rel(gf[n], gr[n]))


OPTIONS = list(itertools.product([True, False], repeat=4))


@pytest.mark.parametrize("with_D,with_z,with_bias,with_h0", OPTIONS)
@pytest.mark.parametrize("softplus", [True, False])
def test_every_option_matches_the_reference(with_D, with_z, with_bias, with_h0, softplus):
    """Outputs, last state and every gradient, each optional input present or not."""
    inp = make(2, 70, 37, 4, with_D=with_D, with_z=with_z, with_bias=with_bias,
               with_h0=with_h0, softplus=softplus)
    check_against_reference(inp, softplus)


@pytest.mark.parametrize("B_varies,C_varies", [(True, False), (False, True), (False, False)])
def test_time_invariant_B_and_C(B_varies, C_varies):
    check_against_reference(make(3, 40, 33, 5, B_varies=B_varies, C_varies=C_varies))


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_chunk_size_changes_nothing(chunk):
    """The backward recomputes states from each chunk's entry; any chunk size,
    one that does not divide L, and one longer than L, gives the same."""
    check_against_reference(make(2, 29, 6, 3), chunk=chunk)


@pytest.mark.parametrize("b,L,D,N", [(1, 1, 1, 1), (1, 1, 5, 3), (3, 2, 1, 1), (2, 65, 65, 17),
                                     (1, 130, 3, 16), (4, 5, 31, 2)])
def test_edge_shapes(b, L, D, N):
    """L = 1, one channel, odd D and N, D across a 32-channel group boundary,
    L across chunk boundaries."""
    check_against_reference(make(b, L, D, N))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(b=st.integers(1, 3), L=st.integers(1, 150), D=st.integers(1, 70), N=st.integers(1, 20),
       chunk=st.integers(1, 80), flags=st.integers(0, 127))
def test_property_over_shapes(b, L, D, N, chunk, flags):
    bit = [bool(flags >> k & 1) for k in range(7)]
    inp = make(b, L, D, N, B_varies=bit[0], C_varies=bit[1], with_D=bit[2], with_z=bit[3],
               with_bias=bit[4], with_h0=bit[5], seed=flags, softplus=bit[6])
    check_against_reference(inp, softplus=bit[6], chunk=chunk)


def test_long_sequence_matches_the_reference():
    """L = 1024 over 16 chunks, state carried through all of them."""
    check_against_reference(make(1, 1024, 8, 4))


def test_against_a_float64_numpy_model():
    """The equations of ops/selective_scan.py, in float64, written here."""
    inp = make(2, 23, 7, 3)
    y, h = run(inp, "fused")
    g = {k: None if v is None else np.array(v, np.float64) for k, v in inp.items()}
    dt = g["delta"] + g["delta_bias"]
    dt = np.log1p(np.exp(dt))
    s = g["initial_state"].copy()
    ys = []
    for t in range(g["u"].shape[1]):
        a = np.exp(dt[:, t, :, None] * g["A"])
        s = a * s + (dt[:, t, :, None] * g["u"][:, t, :, None]) * g["B"][:, t, None, :]
        ys.append((s * g["C"][:, t, None, :]).sum(-1))
    want = np.stack(ys, 1) + g["D"] * g["u"]
    want = want * g["z"] / (1 + np.exp(-g["z"]))
    np.testing.assert_allclose(np.array(y), want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.array(h), s, rtol=2e-5, atol=2e-5)


def test_finite_differences():
    """<grad, v> against a central difference of the fused op along a random
    direction v of every input, for L(out, last) = sum(w1 out) + sum(w2 last)."""
    inp = make(1, 6, 3, 2, seed=3)
    names = [n for n in NAMES if inp[n] is not None]
    r = np.random.default_rng(7)
    w1, w2 = cotangents(inp, seed=9)

    def loss(*xs):
        y, h = run({**inp, **dict(zip(names, xs))}, "fused")
        return (w1 * y).sum() + (w2 * h).sum()
    xs = [inp[n] for n in names]
    grads = mx.grad(loss, argnums=tuple(range(len(xs))))(*xs)
    for k, n in enumerate(names):
        v = mx.array(r.normal(size=xs[k].shape).astype(np.float32))
        eps = 1e-2
        hi = loss(*[x + eps * v if j == k else x for j, x in enumerate(xs)])
        lo = loss(*[x - eps * v if j == k else x for j, x in enumerate(xs)])
        fd = (hi - lo).item() / (2 * eps)
        an = (grads[k] * v).sum().item()
        assert abs(fd - an) <= 2e-2 * max(1.0, abs(an)), (n, fd, an)


@pytest.mark.parametrize("dtype,rtol,atol", [(mx.float16, 3e-3, 5e-3), (mx.bfloat16, 3e-2, 5e-2)])
def test_16_bit_inputs(dtype, rtol, atol):
    """mamba_ssm's own tolerances for 16-bit; the state stays float32."""
    inp = make(2, 40, 9, 4, dtype=dtype)
    cot = cotangents(inp)
    (yf, hf), gf = vjp(inp, "fused", cot)
    (yr, hr), gr = vjp(inp, "reference", cot)
    assert yf.dtype == dtype and hf.dtype == mx.float32
    for a, b in [(yf, yr), (hf, hr), *((gf[n], gr[n]) for n in gf)]:
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32)),
                                   rtol=rtol, atol=atol * max(1.0, float(mx.abs(b).max())))


def test_gradients_are_deterministic():
    inp = make(3, 50, 70, 5)
    cot = cotangents(inp)
    _, g1 = vjp(inp, "fused", cot)
    _, g2 = vjp(inp, "fused", cot)
    for n in g1:
        assert np.array_equal(np.array(g1[n]), np.array(g2[n])), n


def test_grad_compile_and_shapeless_compile():
    """mx.grad under mx.compile, and one shapeless compiled function called
    with two batch sizes and sequence lengths (the primitives'
    output_shapes). D < 32 and batch 1 are the case where a sum over a
    size-1 axis of the backward's output crashed MLX 0.32.4's shapeless
    compile, before the kernel summed its partials itself."""
    def loss(u, delta, A, B, C):
        return selective_scan(u, delta, A, B, C, delta_softplus=True, backend="fused").sum()
    g = mx.grad(loss, argnums=(0, 1, 2, 3, 4))
    compiled, shapeless = mx.compile(g), mx.compile(g, shapeless=True)
    for b, L in ((2, 30), (1, 11)):
        inp = make(b, L, 6, 3, seed=L)
        args = [inp[n] for n in ("u", "delta", "A", "B", "C")]
        want = g(*args)
        for fn in (compiled, shapeless):
            got = fn(*args)
            for a, b in zip(got, want):
                assert a.shape == b.shape and rel(a, b) <= 1e-6


def test_vmap_of_forward_and_gradient():
    """vmap over a leading axis of u and delta (A, B, C shared) equals a loop."""
    inp = make(2, 12, 4, 3)
    us = mx.stack([inp["u"], inp["u"] * 0.5, -inp["u"]])
    ds = mx.stack([inp["delta"], inp["delta"] + 0.1, inp["delta"] * 2])

    def f(u, delta):
        return run({**inp, "u": u, "delta": delta}, "fused")[0]
    got = mx.vmap(f)(us, ds)
    want = mx.stack([f(us[i], ds[i]) for i in range(3)])
    assert rel(got, want) <= 1e-7
    gf = mx.vmap(mx.grad(lambda u, d: f(u, d).sum(), argnums=(0, 1)))(us, ds)
    for k in range(2):
        want = mx.stack([mx.grad(lambda u, d: f(u, d).sum(), argnums=(0, 1))(us[i], ds[i])[k]
                         for i in range(3)])
        assert rel(gf[k], want) <= 1e-7


def test_returns_out_alone_by_default():
    inp = make(1, 5, 2, 2)
    y = selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"])
    assert isinstance(y, mx.array) and y.shape == (1, 5, 2)


@pytest.mark.parametrize("change,message", [
    (dict(u=mx.zeros((2, 3))), "u must be [batch, L, D]"),
    (dict(delta=mx.zeros((1, 4, 3))), "delta must have shape"),
    (dict(A=mx.zeros((2, 2))), "A must have shape [D, N] with D = 3"),
    (dict(B=mx.zeros((1, 5, 3))), "B must be [batch, L, N]"),
    (dict(C=mx.zeros((3, 2), dtype=mx.float16)), "C must be float32"),
    (dict(D=mx.zeros((4,))), "D must have shape [D]"),
    (dict(z=mx.zeros((1, 5, 3), dtype=mx.float16)), "z must have u's dtype"),
    (dict(initial_state=mx.zeros((1, 3, 3))), "initial_state must have shape"),
    (dict(u=mx.zeros((1, 5, 3), dtype=mx.int32)), "u must be floating"),
    (dict(u=[[1.0]]), "u must be an mlx.core.array"),
])
def test_bad_inputs_are_tagged_errors(change, message):
    inp = {**make(1, 5, 3, 2), **change}
    with pytest.raises((ValueError, TypeError)) as e:
        run(inp, "fused")
    assert str(e.value).startswith("[selective_scan] ") and message in str(e.value)


def test_bad_options_are_tagged_errors():
    inp = make(1, 5, 3, 2)
    with pytest.raises(ValueError, match=r"\[selective_scan\] unknown backend 'gpu'; valid: "
                                         r"'auto', 'fused', 'reference'"):
        run(inp, "gpu")
    with pytest.raises(ValueError, match=r"\[selective_scan\] chunk must be a positive int"):
        run(inp, "fused", chunk=0)
    with pytest.raises(TypeError, match=r"\[selective_scan\] delta_softplus must be True"):
        run(inp, "fused", softplus="yes")


def test_the_extension_checks_shapes_itself():
    """A direct _ext call with a bad shape is an error, not a read past an array."""
    inp = make(1, 5, 3, 2)
    with pytest.raises(ValueError, match=r"\[selective_scan\] B must be"):
        fs._backend.ext.selective_scan(inp["u"], inp["delta"], inp["A"], mx.zeros((1, 4, 2)),
                                       inp["C"], D=[], z=[], delta_bias=[], initial_state=[],
                                       softplus=False)
    with pytest.raises(ValueError, match=r"\[selective_scan\] chunk must be >= 1"):
        fs._backend.ext.selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"],
                                       D=[], z=[], delta_bias=[], initial_state=[],
                                       softplus=False, chunk=0)


@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU in this MLX build")
def test_on_a_gpu_more_states_than_the_kernels_take_run_the_reference():
    inp = make(1, 8, 3, 129)
    with mx.stream(mx.gpu):
        mx.set_default_device(mx.gpu)
        y_auto = run(inp, "auto")[0]
        y_ref = run(inp, "reference")[0]
        assert rel(y_auto, y_ref) == 0.0
        with pytest.raises(RuntimeError, match=r"\[selective_scan\] backend='fused' but no "
                                               r"fused kernel applies: the (cuda|metal) kernels take up to "
                                               r"(64|128) states per channel, A has N=129"):
            run(inp, "fused")


@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU in this MLX build")
def test_on_a_gpu_auto_runs_the_kernel():
    """auto runs the GPU kernel for N = 16: fused's bits exactly."""
    inp = make(2, 40, 37, 16)
    with mx.stream(mx.gpu):
        mx.set_default_device(mx.gpu)
        y_auto, y_fused, y_ref = (run(inp, b)[0] for b in ("auto", "fused", "reference"))
        assert np.array_equal(np.array(y_auto), np.array(y_fused))
        assert rel(y_fused, y_ref) <= TOL
