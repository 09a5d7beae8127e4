"""flashsnn.ops.leaky: the fused kernel against the pure-MLX reference.

Forward: float32 spikes identical, membranes equal to round-off. Backward:
every gradient (x, mem, beta, threshold) under random cotangents on both
outputs within relative RMS 1e-5. The reference shares no code with the
kernels (python/flashsnn/reference/leaky.py).
"""

from __future__ import annotations

import zlib

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import SURROGATES, describe, np32, rel_rms, vjp_both

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

# (convention, reset_delay, detach_reset)
MODES = {
    "snntorch": ("snntorch", True, False),
    "snntorch_nodelay": ("snntorch", False, False),
    "same_step": ("same_step", True, False),
    "same_step_detach": ("same_step", True, True),
}
RESETS = ["subtract", "zero", "none"]
# Gradient tolerances by dtype (relative RMS). Both paths do float32 state
# arithmetic; 16-bit dtypes differ only where a float32 gradient that
# differs in its last bits rounds to a different 16-bit value.
GRAD_TOL = {mx.float32: 1e-5, mx.float16: 2e-3, mx.bfloat16: 1e-2}


def make_inputs(T, S, *, seed=0, dtype=mx.float32, per_neuron=True, scale=0.8, shift=0.3):
    key = mx.random.key(seed)
    k = mx.random.split(key, 6)
    x = (mx.random.normal((T, *S), key=k[0]) * scale + shift).astype(dtype)
    mem = mx.random.normal(S, key=k[1]) * 0.5
    if per_neuron:
        beta = mx.random.uniform(0.5, 1.0, S[-1:], key=k[2])
        th = mx.random.uniform(0.8, 1.2, S[-1:], key=k[3])
    else:
        beta, th = mx.array(0.9), mx.array(1.0)
    return x, mem, beta, th, k[4], k[5]


def run_both(x, mem, beta, th, key_s, key_m, **kw):
    """Forward outputs and all four gradients from both backends."""
    T, S = x.shape[0], x.shape[1:]
    mem_shape = x.shape if kw.get("output_mem") == "all" else S
    cot = [mx.random.normal(x.shape, key=key_s).astype(x.dtype),
           mx.random.normal(mem_shape, key=key_m).astype(x.dtype)]
    res = {}
    for backend in ("fused", "reference"):
        def f(x_, m_, b_, t_):
            return fs.ops.leaky(x_, m_, beta=b_, threshold=t_, backend=backend, **kw)
        res[backend] = vjp_both(f, [x, mem, beta, th], cot)
    # A parameter shared by many neurons gets a sum of their contributions,
    # which the two paths add in different orders: its error is relative to
    # the sum of the contributions' magnitudes, not to the (possibly
    # cancelling) total. Get those per-neuron contributions from the
    # reference with the parameters broadcast to every neuron.
    full = [mx.broadcast_to(p, S) for p in (beta, th)]
    _, g = vjp_both(lambda x_, b_, t_: fs.ops.leaky(x_, mem, beta=b_, threshold=t_,
                                                    backend="reference", **kw), [x, *full], cot)
    res["scale"] = {"beta": float(mx.abs(g[1]).sum()), "threshold": float(mx.abs(g[2]).sum())}
    return res


def check(res, dtype=mx.float32, mem_tol=None, grad_tol=None):
    (fs_out, fs_grad), (rf_out, rf_grad) = res["fused"], res["reference"]
    assert fs_out[0].dtype == rf_out[0].dtype
    assert np.array_equal(np32(fs_out[0]), np32(rf_out[0])), \
        f"spikes differ in {int(np.sum(np32(fs_out[0]) != np32(rf_out[0])))} places"
    if mem_tol is None:
        np.testing.assert_array_equal(np32(fs_out[1]), np32(rf_out[1]))
    else:
        assert rel_rms(fs_out[1], rf_out[1]) <= mem_tol, describe(fs_out[1], rf_out[1])
    tol = GRAD_TOL[dtype] if grad_tol is None else grad_tol
    for name, a, b in zip(("x", "mem", "beta", "threshold"), fs_grad, rf_grad):
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape)
        if a.size == 1 and name in res.get("scale", {}):
            assert abs(a.item() - b.item()) <= tol * res["scale"][name], \
                f"d{name}: {a.item()} vs {b.item()}, contributions sum to {res['scale'][name]}"
        else:
            assert rel_rms(a, b) <= tol, f"d{name}: {describe(a, b)}"


@pytest.mark.parametrize("surrogate", list(SURROGATES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", RESETS)
def test_matrix(reset, mode, surrogate):
    conv, delay, detach = MODES[mode]
    T = 63
    # A same-step reset that passes gradient multiplies it by (1 - theta *
    # slope) every step; with steep surrogates that grows like 20^T and
    # overflows in both paths, so those cases use a shorter sequence.
    if conv == "same_step" or not delay:
        if not detach and surrogate in ("fast_sigmoid", "spike_rate_escape", "sigmoid"):
            T = 12
    x, mem, beta, th, ks, km = make_inputs(T, (4, 33), seed=zlib.crc32(f"{reset}{mode}{surrogate}".encode()) % 1000)
    res = run_both(x, mem, beta, th, ks, km, reset_mechanism=reset, reset_delay=delay,
                   convention=conv, detach_reset=detach, spike_grad=SURROGATES[surrogate],
                   output_mem="all")
    check(res)


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("shape", [(1, 1), (63, 1), (63, 31), (63, 33), (20, 500), (7, 2, 3, 5),
                                   (5,)])
def test_shapes(shape, output_mem):
    x, mem, beta, th, ks, km = make_inputs(shape[0], shape[1:], seed=len(shape) * 7 + shape[0])
    res = run_both(x, mem, beta, th, ks, km, output_mem=output_mem)
    check(res)


@pytest.mark.parametrize("stream", ["0", "1"])
@pytest.mark.parametrize("reset_delay", [True, False])
def test_layer_spanning_several_blocks(monkeypatch, stream, reset_delay):
    """21000 neurons: each of two CPU threads walks a block of 8192 and a
    shorter one, in chunks of 256; per-neuron parameters of 7000 values start
    mid-run in the second block (suffix arrays, src/ops/family.h)."""
    monkeypatch.setenv("FLASHSNN_CPU_STREAM", stream)
    x, mem, beta, th, ks, km = make_inputs(6, (3, 7000), seed=13)
    res = run_both(x, mem, beta, th, ks, km, reset_delay=reset_delay, output_mem="all")
    check(res)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("mode", ["snntorch", "snntorch_nodelay", "same_step"])
def test_half_dtypes(dtype, mode):
    conv, delay, detach = MODES[mode]
    x, mem, beta, th, ks, km = make_inputs(40, (3, 37), seed=11, dtype=dtype)
    res = run_both(x, mem, beta, th, ks, km, convention=conv, reset_delay=delay,
                   detach_reset=detach, output_mem="all")
    # Both paths read the same 16-bit inputs and step in float32, so even the
    # membranes (rounded to the same dtype) agree exactly.
    check(res, dtype=dtype)
    assert res["fused"][0][0].dtype == dtype and res["fused"][0][1].dtype == dtype


@pytest.mark.parametrize("beta_shape,th_shape,mem_given", [
    ((), (), False),            # Python-float-like scalars, no initial membrane
    ((33,), (), True),          # per-feature beta
    ((), (33,), True),          # per-feature threshold
    ((4, 33), (4, 33), True),   # per-neuron (full)
    ((4, 1), (1, 33), True),    # broadcast shapes that are not a suffix
    ((1, 1), (1,), False),      # size-1 arrays with leading ones
])
def test_parameter_shapes(beta_shape, th_shape, mem_given):
    x, mem, _, _, ks, km = make_inputs(30, (4, 33), seed=3)
    k = mx.random.split(mx.random.key(9))
    beta = mx.random.uniform(0.6, 1.0, beta_shape, key=k[0])
    th = mx.random.uniform(0.8, 1.2, th_shape, key=k[1])
    if not mem_given:
        cot = [mx.random.normal(x.shape, key=ks), mx.random.normal((4, 33), key=km)]
        res = {}
        for backend in ("fused", "reference"):
            def f(x_, b_, t_):
                return fs.ops.leaky(x_, beta=b_, threshold=t_, backend=backend)
            res[backend] = vjp_both(f, [x, beta, th], cot)
        (o1, g1), (o2, g2) = res["fused"], res["reference"]
        assert np.array_equal(np32(o1[0]), np32(o2[0]))
        for a, b in zip(g1, g2):
            assert a.shape == b.shape
            assert rel_rms(a, b) <= 1e-5, describe(a, b)
    else:
        check(run_both(x, mem, beta, th, ks, km))


def test_python_float_parameters():
    x, mem, *_ = make_inputs(25, (8, 16), seed=4)
    a = fs.ops.leaky(x, mem, beta=0.8, threshold=0.7, backend="fused")
    b = fs.ops.leaky(x, mem, beta=0.8, threshold=0.7, backend="reference")
    assert np.array_equal(np32(a[0]), np32(b[0]))
    np.testing.assert_array_equal(np32(a[1]), np32(b[1]))


def test_beta_clamp_and_its_gradient():
    """beta outside [0, 1] is clamped; its gradient passes on [0, 1] inclusive
    (torch.clamp's rule) and is zero outside."""
    x, mem, _, th, ks, km = make_inputs(20, (2, 6), seed=5)
    beta = mx.array([-0.5, 0.0, 0.3, 1.0, 1.5, 0.99])
    res = run_both(x, mem, beta, th, ks, km)
    check(res)
    g = np32(res["fused"][1][2])
    assert g[0] == 0 and g[4] == 0
    assert np.all(g[[2, 3, 5]] != 0)


@pytest.mark.parametrize("convention", ["snntorch", "same_step"])
def test_exact_threshold_ties(convention):
    """Membranes landing exactly on the threshold: snnTorch fires on >, the
    same-step convention on >=; both paths agree with the hand-derived spikes."""
    # beta = 0.5, theta = 1: U = 0.5*U_prev + x. Step 0: 0 + 1.0 = 1.0 (tie);
    # step 1 (no spike yet under snnTorch): 0.5 + 0.5 = 1.0 (tie again).
    x = mx.array([[1.0], [0.5], [0.0]])
    for backend in ("fused", "reference"):
        spk, mem = fs.ops.leaky(x, beta=0.5, convention=convention, backend=backend,
                                output_mem="all")
        if convention == "snntorch":
            assert np32(spk)[:, 0].tolist() == [0.0, 0.0, 0.0]
            assert np32(mem)[:, 0].tolist() == [1.0, 1.0, 0.5]
        else:
            # fires at step 0, subtract-reset to 0; step 1: 0 + 0.5
            assert np32(spk)[:, 0].tolist() == [1.0, 0.0, 0.0]
            assert np32(mem)[:, 0].tolist() == [0.0, 0.5, 0.25]


def test_ties_fused_vs_reference_random():
    """Many membranes on a grid of eighths (beta = 1 keeps them there
    exactly) that hit the threshold exactly, in both conventions."""
    rng = np.random.default_rng(0)
    x = mx.array(rng.integers(-3, 5, (50, 3, 40)).astype(np.float32) / 8)
    for conv in ("snntorch", "same_step"):
        a = fs.ops.leaky(x, beta=1.0, threshold=0.75, convention=conv, backend="fused",
                         output_mem="all", reset_mechanism="zero")
        b = fs.ops.leaky(x, beta=1.0, threshold=0.75, convention=conv, backend="reference",
                         output_mem="all", reset_mechanism="zero")
        assert np.array_equal(np32(a[0]), np32(b[0]))
        assert np.array_equal(np32(a[1]), np32(b[1]))
        if conv == "snntorch":  # the grid really produced ties (mem is h here)
            assert np.sum(np32(b[1]) == 0.75) > 20


def test_nan_and_inf_propagate():
    x, mem, beta, th, *_ = make_inputs(10, (2, 5), seed=6)
    xn = np.array(x)
    xn[3, 0, 1] = np.nan
    xn[4, 1, 2] = np.inf
    xn[5, 1, 3] = -np.inf
    x = mx.array(xn)
    a = fs.ops.leaky(x, mem, beta=beta, threshold=th, backend="fused", output_mem="all")
    b = fs.ops.leaky(x, mem, beta=beta, threshold=th, backend="reference", output_mem="all")
    np.testing.assert_array_equal(np32(a[0]), np32(b[0]))
    np.testing.assert_array_equal(np32(a[1]), np32(b[1]))  # NaN == NaN positionally
    assert np.isnan(np32(a[1])[3, 0, 1])
    g = mx.grad(lambda x_: fs.ops.leaky(x_, mem, beta=beta, threshold=th, backend="fused")[1]
                .sum())(x)
    mx.eval(g)  # no crash; NaN stays in its own neuron
    assert np.all(np.isfinite(np32(g)[:, 0, 0]))


@pytest.mark.parametrize("output_mem", ["last", "all"])
def test_empty_time_axis(output_mem):
    x = mx.zeros((0, 3, 4))
    mem = mx.ones((3, 4)) * 0.25
    for backend in ("fused", "reference"):
        spk, m = fs.ops.leaky(x, mem, beta=0.9, backend=backend, output_mem=output_mem)
        assert spk.shape == (0, 3, 4)
        if output_mem == "last":
            np.testing.assert_array_equal(np32(m), np32(mem))
        else:
            assert m.shape == (0, 3, 4)


def test_gradients_are_deterministic():
    x, mem, beta, th, ks, km = make_inputs(64, (16, 300), seed=7)
    scalar_beta = mx.array(0.9)

    def grads():
        def f(x_, m_, b_, t_, sb):
            return fs.ops.leaky(x_, m_, beta=b_ * sb, threshold=t_, backend="fused")
        cot = [mx.random.normal(x.shape, key=ks), mx.random.normal(mem.shape, key=km)]
        _, g = vjp_both(f, [x, mem, beta, th, scalar_beta], cot)
        return [np32(a) for a in g]

    first, second = grads(), grads()
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_forward_recomputes_when_not_saved():
    """The forward skips writing h outside gradient tracing; a vjp on such a
    forward recomputes it (forced here through the extension's save flag)."""
    x, mem, beta, th, ks, km = make_inputs(30, (4, 9), seed=8)
    ext = fs._backend.ext
    cot = [mx.random.normal(x.shape, key=ks), mx.random.normal(mem.shape, key=km)]

    def fused(save):
        def f(x_, m_, b_, t_):
            return ext.fused(0, x_, [m_], [b_, t_], reset=0, mode=0, detach=False,
                             surrogate_id=0, surrogate_a=2.0, surrogate_b=0.0, mem_all=False,
                             save=save)
        return vjp_both(f, [x, mem, beta, th], cot)

    (o0, g0), (o1, g1) = fused(0), fused(1)
    for a, b in zip(o0 + g0, o1 + g1):
        np.testing.assert_array_equal(np32(a), np32(b))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", RESETS)
def test_gradient_subsets_match_the_full_backward(reset, mode):
    """vjp asks only for the gradients it needs; without beta and threshold
    the CPU backward skips their accumulation (FamilyOptions::param_grads).
    Every subset must give bitwise the gradients of the full backward."""
    convention, delay, detach = MODES[mode]
    x, mem, beta, th, ks, km = make_inputs(40, (3, 37), seed=11)
    cot = [mx.random.normal(x.shape, key=ks), mx.random.normal(mem.shape, key=km)]
    primals = [x, mem, beta, th]

    def grads(argnums):
        def f(*args):
            full = list(primals)
            for a, v in zip(argnums, args):
                full[a] = v
            return fs.ops.leaky(full[0], full[1], beta=full[2], threshold=full[3],
                                reset_mechanism=reset, reset_delay=delay,
                                convention=convention, detach_reset=detach, backend="fused")
        _, g = mx.vjp(f, [primals[a] for a in argnums], cot)
        return dict(zip(argnums, (np32(a) for a in g)))

    full = grads([0, 1, 2, 3])
    assert np.abs(full[2]).sum() > 0 and np.abs(full[3]).sum() > 0
    for subset in ([0], [1], [0, 1], [2], [3], [0, 3]):
        for a, g in grads(subset).items():
            np.testing.assert_array_equal(g, full[a], err_msg=f"input {a} of {subset}")


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("shape", [(9, 1), (20, 33), (13, 3, 700), (5, 2049)])
def test_streaming_stores_change_nothing(monkeypatch, dtype, shape):
    """Large layers write their outputs with streaming stores (whole 64-byte
    lines; plain stores for partial lines at a row's ends). Forced on for
    small, oddly sized rows here, the result must be bitwise the plain one."""
    x, mem, beta, th, ks, km = make_inputs(shape[0], shape[1:], seed=12, dtype=dtype)
    cot = [mx.random.normal(x.shape, key=ks).astype(dtype),
           mx.random.normal(x.shape, key=km).astype(dtype)]

    def run(stream):
        monkeypatch.setenv("FLASHSNN_CPU_STREAM", stream)
        def f(x_, m_, b_, t_):
            return fs.ops.leaky(x_, m_, beta=b_, threshold=t_, reset_delay=False,
                                output_mem="all", backend="fused")
        outs, g = mx.vjp(f, [x, mem, beta, th], cot)
        plain = fs.ops.leaky(x, mem, beta=beta, threshold=th, backend="fused")
        mx.eval(outs, g, plain)
        return [np32(a) for a in [*outs, *g, *plain]]

    for a, b in zip(run("0"), run("1")):
        np.testing.assert_array_equal(a, b)


def test_reference_gradient_matches_finite_differences():
    """The reference's gradient on a smooth case (no reset, a loss on the
    membrane) against central differences in float64 numpy."""
    T, N = 12, 5
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(T, N)).astype(np.float32)
    beta0 = rng.uniform(0.5, 0.95, size=N).astype(np.float32)
    w = rng.normal(size=(T, N)).astype(np.float32)

    def loss_np(x, beta):
        u = np.zeros(N)
        total = 0.0
        for t in range(T):
            u = beta * u + x[t]
            total += np.sum(w[t] * u ** 2)
        return total

    def loss_mx(x, beta):
        _, m = fs.reference.leaky(x, beta=beta, reset_mechanism="none", output_mem="all")
        return (mx.array(w) * m * m).sum()

    gx, gb = mx.grad(loss_mx, argnums=(0, 1))(mx.array(x0), mx.array(beta0))
    eps = 1e-4
    x64, b64 = x0.astype(np.float64), beta0.astype(np.float64)
    fd_x = np.zeros_like(x64)
    for idx in np.ndindex(*x64.shape):
        d = np.zeros_like(x64)
        d[idx] = eps
        fd_x[idx] = (loss_np(x64 + d, b64) - loss_np(x64 - d, b64)) / (2 * eps)
    fd_b = np.array([(loss_np(x64, b64 + eps * np.eye(N)[j]) - loss_np(x64, b64 - eps * np.eye(N)[j]))
                     / (2 * eps) for j in range(N)])
    assert rel_rms(gx, fd_x) < 1e-4, describe(gx, fd_x)
    assert rel_rms(gb, fd_b) < 1e-4, describe(gb, fd_b)


def _loss(backend, **kw):
    def f(x, b, t):
        s, m = fs.ops.leaky(x, beta=b, threshold=t, backend=backend, **kw)
        return (s * x).sum() + (m * m).sum()
    return f


def test_compile_and_value_and_grad():
    x, _, beta, th, *_ = make_inputs(20, (4, 8), seed=12)
    ref = mx.value_and_grad(_loss("reference"), argnums=(0, 1, 2))(x, beta, th)
    got = mx.compile(mx.value_and_grad(_loss("fused"), argnums=(0, 1, 2)))(x, beta, th)
    assert abs(ref[0].item() - got[0].item()) <= 1e-5 * abs(ref[0].item())
    for a, b in zip(got[1], ref[1]):
        assert rel_rms(a, b) <= 1e-5, describe(a, b)


def test_shapeless_compile():
    _, _, beta, th, *_ = make_inputs(2, (4, 8), seed=13)
    fwd = mx.compile(lambda x, b, t: fs.ops.leaky(x, beta=b, threshold=t, backend="fused"),
                     shapeless=True)
    grad = mx.compile(mx.grad(_loss("fused"), argnums=(0, 1, 2)), shapeless=True)
    for i, shape in enumerate([(20, 4, 8), (7, 3, 8), (9, 8), (11, 2, 2, 8)]):
        x = mx.random.normal(shape, key=mx.random.key(i)) + 0.4
        a = fwd(x, beta, th)
        b = fs.ops.leaky(x, beta=beta, threshold=th, backend="reference")
        assert np.array_equal(np32(a[0]), np32(b[0])) and a[1].shape == b[1].shape
        g = grad(x, beta, th)
        r = mx.grad(_loss("reference"), argnums=(0, 1, 2))(x, beta, th)
        for p, q in zip(g, r):
            assert p.shape == q.shape and rel_rms(p, q) <= 1e-5, (shape, describe(p, q))


@pytest.mark.parametrize("case", ["x", "x_beta", "x_mem_all", "mem_only", "x_axis2"])
def test_vmap_and_vmap_of_grad(case):
    k = mx.random.split(mx.random.key(14), 3)
    xv = mx.random.normal((5, 20, 8), key=k[0]) + 0.4
    bv = mx.random.uniform(0.5, 1, (5, 8), key=k[1])
    mv = mx.random.normal((5, 8), key=k[2])
    beta = mx.array(np.linspace(0.6, 0.95, 8).astype(np.float32))
    cases = {
        "x": (lambda be: lambda x: fs.ops.leaky(x, beta=beta, backend=be), (xv,), 0),
        "x_beta": (lambda be: lambda x, b: fs.ops.leaky(x, beta=b, backend=be), (xv, bv), (0, 0)),
        "x_mem_all": (lambda be: lambda x, m: fs.ops.leaky(x, m, beta=beta, backend=be,
                                                           output_mem="all"), (xv, mv), (0, 0)),
        "mem_only": (lambda be: lambda m: fs.ops.leaky(xv[0], m, beta=beta, backend=be),
                     (mv,), 0),
        "x_axis2": (lambda be: lambda x: fs.ops.leaky(x, beta=beta, backend=be),
                    (xv.transpose(1, 2, 0),), 2),
    }
    make, args, axes = cases[case]
    out = {be: mx.vmap(make(be), in_axes=axes)(*args) for be in ("fused", "reference")}
    assert np.array_equal(np32(out["fused"][0]), np32(out["reference"][0]))
    assert rel_rms(out["fused"][1], out["reference"][1]) <= 1e-6

    def loss(be):
        fn = make(be)

        def f(*a):
            s, m = fn(*a)
            return (s * mx.cos(a[0].sum())).sum() + (m * m).sum()
        return f
    argnums = tuple(range(len(args)))
    g = {be: mx.vmap(mx.grad(loss(be), argnums=argnums), in_axes=axes)(*args)
         for be in ("fused", "reference")}
    for a, b in zip(g["fused"], g["reference"]):
        assert a.shape == b.shape and rel_rms(a, b) <= 1e-5, describe(a, b)


def test_auto_picks_the_kernel_and_falls_back_for_callables():
    x, *_ = make_inputs(10, (3, 4), seed=15)

    def my_spike(v):  # a user's own surrogate: straight-through on a sigmoid
        sg = mx.sigmoid(4 * v)
        return mx.stop_gradient((v > 0).astype(v.dtype) - sg) + sg

    a = fs.ops.leaky(x, beta=0.9, spike_grad=my_spike)  # auto -> reference
    b = fs.ops.leaky(x, beta=0.9, spike_grad=my_spike, backend="reference")
    assert np.array_equal(np32(a[0]), np32(b[0]))
    with pytest.raises(RuntimeError, match=r"\[leaky\] backend='fused'.*spike_grad"):
        fs.ops.leaky(x, beta=0.9, spike_grad=my_spike, backend="fused")
    # SSO is stochastic: reference only
    with pytest.raises(RuntimeError, match=r"\[leaky\]"):
        fs.ops.leaky(x, beta=0.9, spike_grad=fs.surrogate.SSO(), backend="fused")


def test_surrogate_by_name():
    x, *_ = make_inputs(10, (3, 4), seed=16)
    a = mx.grad(lambda x_: fs.ops.leaky(x_, beta=0.9, spike_grad="fast_sigmoid")[0].sum())(x)
    b = mx.grad(lambda x_: fs.ops.leaky(x_, beta=0.9, spike_grad=fs.surrogate.fast_sigmoid(),
                                        backend="reference")[0].sum())(x)
    assert rel_rms(a, b) <= 1e-5


BAD = [
    (lambda: fs.ops.leaky(mx.array(1.0), beta=0.9), ValueError, r"\[leaky\] x must be \[T, \*S\]"),
    (lambda: fs.ops.leaky(mx.ones((3, 2), dtype=mx.int32), beta=0.9), ValueError,
     r"\[leaky\] x must be float32, float16 or bfloat16; got .*int32"),
    (lambda: fs.ops.leaky(mx.ones((3, 2), dtype=mx.complex64), beta=0.9), ValueError,
     r"\[leaky\] x must be float32"),
    (lambda: fs.ops.leaky(np.ones((3, 2)), beta=0.9), TypeError, r"\[leaky\] x must be an mlx"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), mx.ones((3,)), beta=0.9), ValueError,
     r"\[leaky\] mem must have shape \(2,\)"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), mx.ones((2,), dtype=mx.int32), beta=0.9), ValueError,
     r"\[leaky\] mem must be float32, float16 or bfloat16"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=mx.ones((3,))), ValueError,
     r"\[leaky\] beta of shape \(3,\) does not broadcast"),
    (lambda: fs.ops.leaky(mx.ones((3, 4, 2)), beta=0.9, threshold=mx.ones((4,))), ValueError,
     r"\[leaky\] threshold of shape \(4,\) does not broadcast"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta="0.9"), TypeError, r"\[leaky\] beta must be"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=mx.array([True, False])), ValueError,
     r"\[leaky\] beta must be a real-valued array"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, reset_mechanism="soft"), ValueError,
     r"\[leaky\] unknown reset_mechanism 'soft'; valid: 'subtract', 'zero', 'none'"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, spike_grad="arctangent"), ValueError,
     r"\[leaky\] unknown surrogate 'arctangent'; valid names: .*atan"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, spike_grad=3), TypeError,
     r"\[leaky\] spike_grad must be"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, backend="gpu"), ValueError,
     r"\[leaky\] unknown backend 'gpu'; valid: 'auto', 'fused', 'reference'"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, output_mem="final"), ValueError,
     r"\[leaky\] unknown output_mem 'final'; valid: 'last', 'all'"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, convention="spikingjelly"), ValueError,
     r"\[leaky\] unknown convention"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, convention="same_step", reset_delay=False),
     ValueError, r"\[leaky\] reset_delay=False is snnTorch's option"),
]


@pytest.mark.parametrize("call,exc,msg", BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_extension_rejects_bad_direct_calls():
    """The C++ op checks its own inputs too (it is callable from _ext)."""
    ext = fs._backend.ext
    x = mx.ones((3, 4))
    kw = dict(reset=0, mode=0, detach=False, surrogate_id=0, surrogate_a=2.0, surrogate_b=0.0,
              mem_all=False)
    with pytest.raises(ValueError, match=r"\[leaky\] mem of shape \(3,\)"):
        ext.fused(0, x, [mx.ones((3,))], [mx.array(0.9), mx.array(1.0)], **kw)
    with pytest.raises(ValueError, match=r"\[leaky\] unknown surrogate id 42"):
        ext.fused(0, x, [mx.array(0.0)], [mx.array(0.9), mx.array(1.0)],
                  **{**kw, "surrogate_id": 42})
    with pytest.raises(ValueError, match=r"\[leaky\] reset must be"):
        ext.fused(0, x, [mx.array(0.0)], [mx.array(0.9), mx.array(1.0)], **{**kw, "reset": 7})
    with pytest.raises(ValueError, match=r"\[leaky\] x must be float32"):
        ext.fused(0, mx.ones((3, 4), dtype=mx.int32), [mx.array(0.0)],
                  [mx.array(0.9), mx.array(1.0)], **kw)


def test_jvp_is_a_clear_error():
    x = mx.ones((3, 2))
    with pytest.raises(ValueError, match=r"\[leaky\] forward-mode"):
        mx.jvp(lambda x_: fs.ops.leaky(x_, beta=0.9, backend="fused")[1], [x], [x])


@pytest.mark.skipif(mx.default_device() != mx.gpu, reason="needs the GPU as default device")
def test_gpu_kernel_matches_cpu_kernel_bitwise():
    """With FLASHSNN_TEST_DEVICE=gpu: the GPU kernel against the CPU kernel."""
    x, mem, beta, th, ks, km = make_inputs(100, (64, 257), seed=17)
    cot = [mx.random.normal(x.shape, key=ks), mx.random.normal(mem.shape, key=km)]
    res = {}
    for dev in (mx.gpu, mx.cpu):
        with mx.stream(dev):
            def f(x_, m_, b_, t_):
                return fs.ops.leaky(x_, m_, beta=b_, threshold=t_, backend="fused")
            res[dev] = vjp_both(f, [x, mem, beta, th], cot)
    (og, gg), (oc, gc) = res[mx.gpu], res[mx.cpu]
    np.testing.assert_array_equal(np32(og[0]), np32(oc[0]))
    np.testing.assert_array_equal(np32(og[1]), np32(oc[1]))
    for a, b in zip(gg, gc):
        assert rel_rms(a, b) <= 1e-6, describe(a, b)


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(T=st.integers(1, 24), S=st.lists(st.integers(1, 9), min_size=1, max_size=3),
           reset=st.sampled_from(RESETS), mode=st.sampled_from(list(MODES)),
           surrogate=st.sampled_from(["atan", "triangular", "straight_through", "LSO"]),
           per_neuron=st.booleans(), output_mem=st.sampled_from(["last", "all"]),
           seed=st.integers(0, 2**16))
    def test_random_configurations(T, S, reset, mode, surrogate, per_neuron, output_mem, seed):
        """Property: on any shape and option set, fused == reference."""
        conv, delay, detach = MODES[mode]
        x, mem, beta, th, ks, km = make_inputs(T, tuple(S), seed=seed, per_neuron=per_neuron)
        res = run_both(x, mem, beta, th, ks, km, reset_mechanism=reset, reset_delay=delay,
                       convention=conv, detach_reset=detach, spike_grad=SURROGATES[surrogate],
                       output_mem=output_mem)
        check(res)
