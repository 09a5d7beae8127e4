"""Leaky under bad and edge inputs, on whatever device MLX defaults to.

In CI this runs on the CPU; with FLASHSNN_TEST_DEVICE=gpu it runs on the GPU
(tests/conftest.py), where an argument that slipped past the op's checks
would reach a kernel, or throw inside eval_gpu while MLX records a CUDA graph
or a Metal command buffer. So:

- every bad call raises a tagged error ("[leaky] ...") while the graph is
  built, through ``flashsnn._ext.leaky`` directly, through ``fs.ops.leaky``,
  under ``mx.grad``, ``mx.vmap`` and a shapeless ``mx.compile``; nothing is
  evaluated, so large bad inputs cost no memory;
- every edge call (strided, broadcast and offset views, empty sizes, NaN and
  Inf, 16-bit dtypes, long sequences) matches the pure-MLX reference, or a
  closed form where the reference's Python loop would take minutes.
"""

from __future__ import annotations

import os

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, np32, rel_rms

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

ext = fs._backend.ext
# Everything the direct entry point takes, valid: a [3, 4] layer.
KW = dict(reset=0, mode=0, detach=False, surrogate_id=0, surrogate_a=2.0, surrogate_b=0.0,
          mem_all=False)
# Gradient tolerance by dtype (relative RMS over the finite elements), as in
# test_leaky.py: both paths step in float32; 16-bit gradients differ where a
# last-bit float32 difference rounds to another 16-bit value.
GRAD_TOL = {mx.float32: 1e-5, mx.float16: 2e-3, mx.bfloat16: 1e-2}
SURROGATE_IDS = ("0 (atan), 1 (fast_sigmoid), 2 (sigmoid), 3 (triangular), "
                 "4 (straight_through), 5 (heaviside), 6 (spike_rate_escape), "
                 "7 (sparse_fast_sigmoid), 8 (leaky_spike_operator)")


def direct(x=None, mem=None, beta=None, th=None, **kw):
    """_ext.fused for Leaky (family 0) with valid defaults, any of them replaced."""
    x = mx.ones((3, 4)) if x is None else x
    mem = mx.array(0.0) if mem is None else mem
    beta = mx.array(0.9) if beta is None else beta
    th = mx.array(1.0) if th is None else th
    return ext.fused(0, x, [mem], [beta, th], **{**KW, **kw})


# ---------------------------------------------------------------------------
# Bad calls to the extension itself
# ---------------------------------------------------------------------------

# (id, arguments of `direct`, exception, message). A lazily created array of
# 2^31 + 2^16 neurons costs nothing as long as nothing evaluates it.
BAD_DIRECT = [
    ("reset-1", dict(reset=-1), ValueError,
     r"\[leaky\] reset must be 0 \(subtract\), 1 \(zero\) or 2 \(none\); got -1"),
    ("reset3", dict(reset=3), ValueError, r"\[leaky\] reset must be .*; got 3"),
    ("mode-1", dict(mode=-1), ValueError,
     r"\[leaky\] mode must be 0 \(delayed\), 1 \(immediate\) or 2 \(same-step\); got -1"),
    ("mode3", dict(mode=3), ValueError, r"\[leaky\] mode must be .*; got 3"),
    ("surrogate-1", dict(surrogate_id=-1), ValueError, r"\[leaky\] unknown surrogate id -1; valid: "),
    ("surrogate9", dict(surrogate_id=9), ValueError, r"\[leaky\] unknown surrogate id 9; valid: "),
    ("surrogate42", dict(surrogate_id=42), ValueError,
     r"\[leaky\] unknown surrogate id 42; valid: " + SURROGATE_IDS.replace("(", r"\(")
     .replace(")", r"\)")),
    ("save2", dict(save=2), ValueError,
     r"\[leaky\] save must be -1 \(decide from the inputs\), 0 or 1; got 2"),
    ("save-2", dict(save=-2), ValueError, r"\[leaky\] save must be .*; got -2"),
    ("x-scalar", dict(x=mx.array(1.0)), ValueError, r"\[leaky\] x must be \[T, \*S\]"),
    ("x-int32", dict(x=mx.ones((3, 4), dtype=mx.int32)), ValueError,
     r"\[leaky\] x must be float32, float16 or bfloat16; got int32"),
    ("x-bool", dict(x=mx.ones((3, 4), dtype=mx.bool_)), ValueError,
     r"\[leaky\] x must be float32, float16 or bfloat16; got bool"),
    ("x-float64", dict(x=mx.ones((3, 4), dtype=mx.float64, stream=mx.cpu)), ValueError,
     r"\[leaky\] x must be float32, float16 or bfloat16; got float64"),
    ("x-complex", dict(x=mx.ones((3, 4), dtype=mx.complex64)), ValueError,
     r"\[leaky\] x must be float32, float16 or bfloat16; got complex64"),
    ("mem-float16", dict(mem=mx.zeros((4,), dtype=mx.float16)), ValueError,
     r"\[leaky\] mem must be float32 here"),
    ("beta-int32", dict(beta=mx.array(1, dtype=mx.int32)), ValueError,
     r"\[leaky\] beta must be float32 here"),
    ("th-bfloat16", dict(th=mx.array(1.0, dtype=mx.bfloat16)), ValueError,
     r"\[leaky\] threshold must be float32 here"),
    ("mem-shape", dict(mem=mx.ones((3,))), ValueError,
     r"\[leaky\] mem of shape \(3,\) must be a scalar or match the trailing dimensions of \(4,\)"),
    ("beta-not-suffix", dict(beta=mx.ones((2, 4))), ValueError,
     r"\[leaky\] beta of shape \(2, 4\) must be a scalar or match"),
    ("th-too-long", dict(th=mx.ones((5,))), ValueError, r"\[leaky\] threshold of shape \(5,\)"),
    ("beta-empty", dict(beta=mx.ones((0,))), ValueError, r"\[leaky\] beta of shape \(0,\)"),
    ("neurons-past-2^31", dict(x=mx.zeros((2, 65536, 32769))), ValueError,
     r"\[leaky\] x of shape \(2, 65536, 32769\) has 2147549184 neurons per step; one call "
     r"takes at most 2\^31 - 1"),
    ("surrogate-type", dict(surrogate_id="atan"), TypeError,
     r"fused\(\): incompatible function arguments"),
    ("x-numpy", dict(x=np.ones((3, 4), np.float32)), TypeError,
     r"fused\(\): incompatible function arguments"),
]


@pytest.mark.parametrize("args,exc,msg", [c[1:] for c in BAD_DIRECT],
                         ids=[c[0] for c in BAD_DIRECT])
def test_extension_rejects_bad_calls(args, exc, msg):
    with pytest.raises(exc, match=msg):
        direct(**args)


@pytest.mark.parametrize("args,exc,msg", [c[1:] for c in BAD_DIRECT if c[2] is ValueError],
                         ids=[c[0] for c in BAD_DIRECT if c[2] is ValueError])
def test_extension_rejects_bad_calls_under_grad(args, exc, msg):
    """The same errors while mx.grad traces, differentiating with respect to
    a parameter the case leaves valid."""
    name = next(p for p in ("th", "beta", "mem") if p not in args)
    start = {"th": 1.0, "beta": 0.9, "mem": 0.0}[name]

    def loss(p):
        spk, mem = direct(**{**args, name: p})
        return spk.sum() + mem.sum()
    with pytest.raises(exc, match=msg):
        mx.grad(loss)(mx.array(start))


def test_extension_rejects_a_stream_it_cannot_run_on():
    """stream=mx.gpu: MLX without a GPU, or a build without its kernels, is a
    tagged error while the graph is built (before: MLX's untagged error, or
    the no-GPU stub throwing inside eval_gpu)."""
    if not mx.is_available(mx.gpu):
        with pytest.raises(ValueError, match=r"\[leaky\] no stream to run on: .*gpu"):
            direct(stream=mx.gpu)
    elif fs.gpu_backend() == "none":
        with pytest.raises(ValueError, match=r"\[leaky\] this flashsnn was built without a GPU"):
            direct(stream=mx.gpu)
    else:
        spk, mem = direct(stream=mx.gpu)
        ref = direct(stream=mx.cpu)
        assert np.array_equal(np32(spk), np32(ref[0])) and np.array_equal(np32(mem), np32(ref[1]))


# ---------------------------------------------------------------------------
# Bad calls through the op, and through transforms
# ---------------------------------------------------------------------------

BAD_OP = [
    ("reset", dict(reset_mechanism="soft"), ValueError, r"\[leaky\] unknown reset_mechanism"),
    ("surrogate", dict(spike_grad="arctan"), ValueError, r"\[leaky\] unknown surrogate 'arctan'"),
    ("convention", dict(convention="sj"), ValueError, r"\[leaky\] unknown convention 'sj'"),
    ("output_mem", dict(output_mem="first"), ValueError, r"\[leaky\] unknown output_mem"),
    ("threshold", dict(threshold=mx.ones((5,))), ValueError,
     r"\[leaky\] threshold of shape \(5,\) does not broadcast"),
    ("mem", dict(mem=mx.ones((2,))), ValueError, r"\[leaky\] mem must have shape \(4,\)"),
    ("neurons-past-2^31", dict(x=mx.zeros((1, 65536, 32769))), ValueError,
     r"\[leaky\] x of shape \(1, 65536, 32769\) has 2147549184 neurons"),
]


@pytest.mark.parametrize("kw,exc,msg", [c[1:] for c in BAD_OP], ids=[c[0] for c in BAD_OP])
def test_op_rejects_bad_calls_under_grad(kw, exc, msg):
    kw = dict(kw)
    x0 = kw.pop("x", mx.ones((3, 4)))

    def loss(b):
        spk, mem = fs.ops.leaky(x0, kw.pop("mem", None), beta=b, backend="fused", **kw)
        return spk.sum() + mem.sum()
    with pytest.raises(exc, match=msg):
        mx.grad(loss)(mx.array(0.9))


def _loss(x, b):
    spk, mem = fs.ops.leaky(x, beta=b, backend="fused")
    return (spk * mx.arange(spk.size).reshape(spk.shape)).sum() + mem.sum()


@pytest.mark.parametrize("shape", [(5, 5), (5, 7)])
def test_shapeless_compile_with_parameters_that_no_longer_fit(shape):
    """Traced with 4 neurons, replayed with 5 or 7 against a beta of 4: the
    kernels would read beta[i % 4] (wrong) and the backward would write 5 or
    7 partial sums into 4 (a heap overrun: glibc aborted with 'corrupted size
    vs. prev_size' before these checks)."""
    b = mx.full((4,), 0.9)
    fwd = mx.compile(lambda x_, b_: fs.ops.leaky(x_, beta=b_, backend="fused"), shapeless=True)
    grad = mx.compile(mx.grad(_loss, argnums=(0, 1)), shapeless=True)
    mx.eval(fwd(mx.ones((5, 4)), b), grad(mx.ones((5, 4)), b))
    msg = r"\[leaky\] beta of shape \(4,\) must be .* under mx.compile\(shapeless=True\)"
    with pytest.raises(ValueError, match=msg):
        fwd(mx.ones(shape), b)
    with pytest.raises(ValueError, match=msg):
        grad(mx.ones(shape), b)


@pytest.mark.parametrize("shape", [(0, 4), (5, 0), (0, 0)])
def test_shapeless_compile_on_empty_inputs(shape):
    """An empty replay of a graph traced on a non-empty x reaches the
    primitives (the op's own empty path is not in the graph): the backward
    divided by T = 0 (SIGFPE) before these checks."""
    fwd = mx.compile(lambda x_, b_: fs.ops.leaky(x_, beta=b_, backend="fused"), shapeless=True)
    grad = mx.compile(mx.grad(_loss, argnums=(0, 1)), shapeless=True)
    b = mx.array(0.9)
    mx.eval(fwd(mx.ones((5, 4)), b), grad(mx.ones((5, 4)), b))
    msg = r"\[leaky\] x of shape .* is empty under mx.compile"
    with pytest.raises(ValueError, match=msg):
        fwd(mx.ones(shape), b)  # CUDA: a launch of 0 blocks
    with pytest.raises(ValueError, match=msg):
        grad(mx.ones(shape), b)


def test_vmap_over_an_empty_axis():
    """vmap(grad) over a size-0 axis divided by V = 0 (SIGFPE) before."""
    msg = r"\[leaky\] mx.vmap over an axis of size 0 has no fused kernel"
    with pytest.raises(ValueError, match=msg):
        mx.vmap(lambda x: fs.ops.leaky(x, beta=0.9, backend="fused"))(mx.zeros((0, 5, 4)))
    with pytest.raises(ValueError, match=msg):
        mx.vmap(mx.grad(lambda x: _loss(x, mx.array(0.9))))(mx.zeros((0, 5, 4)))


def test_vmap_past_2_31_neurons():
    """vmap multiplies the neurons of one call by the batch: 32769 x 65536."""
    x = mx.zeros((65536, 1, 32769))  # never evaluated
    with pytest.raises(ValueError, match=r"\[leaky\] x of shape \(1, 65536, 32769\) has "
                                         r"2147549184 neurons.* under mx.vmap"):
        mx.vmap(lambda x_: fs.ops.leaky(x_, beta=0.9, backend="fused"))(x)


# ---------------------------------------------------------------------------
# Edge calls: the fused op against the reference
# ---------------------------------------------------------------------------

def same_nonfinite(a, b) -> bool:
    a, b = np32(a), np32(b)
    return a.shape == b.shape and all(
        np.array_equal(f(a), f(b)) for f in (np.isnan, np.isposinf, np.isneginf))


def compare(x, mem, beta, th, *, seed=0, **kw):
    """Forward (exact, NaN for NaN) and every gradient under random
    cotangents on both outputs, fused against reference."""
    mem_shape = x.shape if kw.get("output_mem") == "all" else x.shape[1:]
    k = mx.random.split(mx.random.key(seed))
    cot = [mx.random.normal(x.shape, key=k[0]).astype(x.dtype),
           mx.random.normal(mem_shape, key=k[1]).astype(x.dtype)]
    primals = [x, beta, th] + ([] if mem is None else [mem])
    res = {}
    for backend in ("fused", "reference"):
        def f(x_, b_, t_, *m_):
            return fs.ops.leaky(x_, m_[0] if m_ else None, beta=b_, threshold=t_,
                                backend=backend, **kw)
        outs, grads = mx.vjp(f, primals, cot)
        mx.eval(outs, grads)
        res[backend] = outs, grads
    (fo, fg), (ro, rg) = res["fused"], res["reference"]
    for name, a, b in zip(("spk", "mem"), fo, ro):
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape)
        np.testing.assert_array_equal(np32(a), np32(b), err_msg=name)  # NaN == NaN
    for name, a, b in zip(("x", "beta", "threshold", "mem"), fg, rg):
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape)
        assert same_nonfinite(a, b), f"d{name}: NaN/Inf in other places"
        ok = np.isfinite(np32(b))
        tol = GRAD_TOL[x.dtype]
        if name in ("beta", "threshold") and b.size < x.size // max(x.shape[0], 1):
            # A shared parameter sums many contributions in another order:
            # hold its error to the contributions' size (the x gradient's).
            scale = float(np.sqrt(np.mean(np32(rg[0])[np.isfinite(np32(rg[0]))] ** 2))
                          if rg[0].size else 0.0) * np.sqrt(x.size)
            err = float(np.max(np.abs(np32(a)[ok] - np32(b)[ok]))) if ok.any() else 0.0
            assert err <= tol * max(scale, 1e-30), f"d{name}: {err} vs scale {scale}"
        else:
            assert rel_rms(np32(a)[ok], np32(b)[ok]) <= tol, f"d{name}: {describe(a, b)}"
    return res


def rnd(shape, seed, lo=-0.5, hi=1.5):
    return mx.random.uniform(lo, hi, shape, key=mx.random.key(seed))


# Views the kernels must read as the arrays they stand for (kernel_input
# makes them row-contiguous): a transpose, a time axis broadcast with stride
# 0, slices with steps, and an offset that breaks the CUDA kernels' 16-byte
# row alignment (the 1-neuron-per-thread path).
VIEWS = {
    "transposed": lambda: rnd((7, 9), 1).T,                         # [9, 7]
    "broadcast-time": lambda: mx.broadcast_to(rnd((1, 2, 6), 2), (8, 2, 6)),
    "stepped": lambda: rnd((16, 3, 12), 3)[::2, :, 1::2],          # [8, 3, 6]
    "offset": lambda: rnd((9, 33), 4)[1:, 1:],                       # [8, 32]
    "reversed-time": lambda: rnd((6, 5), 5)[::-1],
    "expanded": lambda: mx.expand_dims(rnd((6, 5), 6), 1),           # [6, 1, 5]
}


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("view", list(VIEWS))
def test_views(view, dtype):
    x = VIEWS[view]().astype(dtype)
    S = x.shape[1:]
    big = rnd((2 * S[-1] + 1,), 7, 0.3, 1.0)
    beta = big[1::2]                                    # a stepped view, per feature
    th = mx.broadcast_to(mx.array([0.9]), (1,) * (len(S) - 1) + S[-1:])  # stride 0
    mem = rnd((*S[:-1], 2 * S[-1]), 8, -0.5, 0.5)[..., ::2]
    compare(x, mem, beta, th, output_mem="all")


EMPTY = [(0, (4,)), (3, (0,)), (3, (2, 0)), (0, (0,)), (0, (3, 2))]


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("T,S", EMPTY, ids=[f"T{t}-S{s}" for t, s in EMPTY])
def test_empty_sizes(T, S, output_mem):
    x = mx.zeros((T, *S))
    mem = rnd(S, 9, -0.5, 0.5)
    compare(x, mem, mx.array(0.9), mx.full(S[-1:], 1.0), output_mem=output_mem)
    compare(x, None, mx.array(0.9), mx.array(1.0), output_mem=output_mem)


NONFINITE = [("x", np.nan), ("x", np.inf), ("x", -np.inf), ("mem", np.nan), ("mem", np.inf),
             ("beta", np.nan), ("beta", np.inf), ("beta", -np.inf), ("threshold", np.nan),
             ("threshold", np.inf), ("threshold", -np.inf)]


@pytest.mark.parametrize("convention", ["snntorch", "snntorch_nodelay", "same_step"])
@pytest.mark.parametrize("where,value", NONFINITE, ids=[f"{w}={v}" for w, v in NONFINITE])
def test_nan_and_inf(where, value, convention):
    rng = np.random.default_rng(10)
    T, S = 6, (2, 5)
    a = {"x": rng.normal(0.5, 0.8, (T, *S)), "mem": rng.normal(0, 0.5, S),
         "beta": rng.uniform(0.5, 1, S[-1:]), "threshold": rng.uniform(0.8, 1.2, S[-1:])}
    a = {k: v.astype(np.float32) for k, v in a.items()}
    a[where][(2, 0, 1) if where == "x" else (1, 3) if where == "mem" else (2,)] = value
    x, mem, beta, th = (mx.array(a[k]) for k in ("x", "mem", "beta", "threshold"))
    kw = {"snntorch": {}, "snntorch_nodelay": dict(reset_delay=False),
          "same_step": dict(convention="same_step")}[convention]
    compare(x, mem, beta, th, output_mem="all", **kw)
    compare(x, mem, beta, th, output_mem="last", reset_mechanism="zero", **kw)


def test_wide_layers():
    """More neurons than one wave of 1-neuron threads on an H100/H200 (132
    SMs x 384 forward, x 512 backward): the CUDA kernels' 4-neuron threads,
    aligned (N % 4 == 0) and not."""
    for i, n in enumerate((70000, 70001)):
        x = rnd((3, n), 20 + i)
        compare(x, rnd((n,), 30 + i, -0.5, 0.5), rnd((n,), 40 + i, 0.4, 1.0), mx.array(1.0),
                output_mem="all")


def test_random_configurations():
    """40 seeded mixes of everything above (shapes with 1s, dtypes, views,
    parameter forms, resets, conventions, surrogates, output forms)."""
    rng = np.random.default_rng(2026)
    surrogates = [fs.surrogate.atan(), fs.surrogate.fast_sigmoid(slope=5),
                  fs.surrogate.sigmoid(slope=3), fs.surrogate.triangular(),
                  fs.surrogate.straight_through(), fs.surrogate.heaviside(),
                  fs.surrogate.spike_rate_escape(beta=1, slope=2),
                  fs.surrogate.SFS(slope=5, B=-0.5), fs.surrogate.LSO(slope=0.2)]
    dtypes = [mx.float32, mx.float16, mx.bfloat16]
    for case in range(40):
        T = int(rng.integers(1, 10))
        S = tuple(int(d) for d in rng.integers(1, 7, size=int(rng.integers(1, 4))))
        dtype = dtypes[int(rng.integers(0, 3)) if case % 2 else 0]
        x = rnd((T, *S), 100 + case, -0.5, 1.6)
        if rng.random() < 0.3:
            x = mx.swapaxes(rnd((S[-1], *S[:-1], T), 200 + case, -0.5, 1.6), 0, -1) \
                if len(S) == 1 else x[:, ::-1]
        pick = int(rng.integers(0, 3))
        beta = [mx.array(float(rng.uniform(0.3, 1.0))), rnd(S[-1:], 300 + case, 0.3, 1.0),
                rnd(S, 300 + case, 0.3, 1.0)][pick]
        th = [mx.array(1.0), rnd(S[-1:], 400 + case, 0.7, 1.3), rnd(S, 400 + case, 0.7, 1.3)][
            int(rng.integers(0, 3))]
        mem = None if rng.random() < 0.3 else rnd(S, 500 + case, -0.5, 0.5)
        conv = ["snntorch", "snntorch_nodelay", "same_step"][int(rng.integers(0, 3))]
        kw = dict(reset_mechanism=["subtract", "zero", "none"][int(rng.integers(0, 3))],
                  spike_grad=surrogates[int(rng.integers(0, len(surrogates)))],
                  output_mem=["last", "all"][int(rng.integers(0, 2))],
                  convention="same_step" if conv == "same_step" else "snntorch",
                  reset_delay=conv != "snntorch_nodelay",
                  detach_reset=conv == "same_step" and rng.random() < 0.5)
        try:
            compare(x.astype(dtype), mem, beta, th, seed=case, **kw)
        except AssertionError as e:
            raise AssertionError(f"case {case}: T={T} S={S} {dtype} {kw}: {e}") from e


# ---------------------------------------------------------------------------
# Long sequences: closed forms instead of the reference's loop
# ---------------------------------------------------------------------------

def test_long_sequence_closed_form():
    """T = 50,000 with beta = 1 and no reset: the membrane is a running sum,
    which np.cumsum adds in the same order in float32 (bit for bit), spikes
    are U > threshold, and with the straight-through surrogate and unit
    cotangents on spikes and every membrane dx_t = 2 (T - t), exact in
    float32 (integers below 2^24)."""
    T, N = 50_000, 3
    xn = np.random.default_rng(11).uniform(-0.01, 0.0102, (T, N)).astype(np.float32)
    x = mx.array(xn)
    kw = dict(beta=1.0, threshold=1.0, reset_mechanism="none", output_mem="all",
              spike_grad=fs.surrogate.straight_through(), backend="fused")
    spk, mem = fs.ops.leaky(x, **kw)
    u = np.cumsum(xn, axis=0, dtype=np.float32)
    np.testing.assert_array_equal(np32(mem), u)
    np.testing.assert_array_equal(np32(spk), (u > 1.0).astype(np.float32))
    assert 0 < np32(spk).sum() < T * N  # both sides of the threshold were visited
    dx = mx.grad(lambda x_: sum(o.sum() for o in fs.ops.leaky(x_, **kw)))(x)
    want = 2.0 * (T - np.arange(T, dtype=np.float32))[:, None]
    np.testing.assert_array_equal(np32(dx), np.broadcast_to(want, (T, N)))


def _device_memory() -> int:
    """Bytes of GPU memory (CUDA says total_memory, Metal memory_size)."""
    if mx.default_device() != mx.gpu:
        return 0
    info = mx.device_info()
    return int(info.get("total_memory", info.get("memory_size", 0)))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FLASHSNN_TEST_HUGE") != "1" and _device_memory() < 64 << 30,
                    reason="needs about 30 GB: runs on a GPU with 64 GB or more "
                           "(or anywhere with FLASHSNN_TEST_HUGE=1)")
def test_offsets_past_2_31_elements():
    """[32770, 65536] float16: the last two steps sit at element offsets
    >= 2^31, where a 32-bit index would wrap. beta = 0 and reset 'zero' make
    U_t = x_t; x is 0 but for step 32768 (2.0) and the last (1.5), so both
    fire, the final membrane is 1.5, and under spk.sum() + mem.sum() with the
    straight-through surrogate dx = 1, plus 1 at the last step."""
    T, N = 32770, 65536
    assert T * N > 2 ** 31
    f16 = mx.float16
    x = mx.concatenate([mx.zeros((T - 2, N), f16), mx.full((1, N), 2.0, f16),
                        mx.full((1, N), 1.5, f16)])
    kw = dict(beta=0.0, threshold=1.0, reset_mechanism="zero", backend="fused",
              spike_grad=fs.surrogate.straight_through())
    spk, mem = fs.ops.leaky(x, **kw)
    assert not mx.any(spk[:T - 2]).item()  # no spike landed anywhere else
    assert mx.all(spk[T - 2:] == 1).item() and mx.all(mem == 1.5).item()
    del spk, mem
    # The loss itself overflows float16 (2^31 ones); its gradient is exact.
    dx = mx.grad(lambda x_: sum(o.sum() for o in fs.ops.leaky(x_, **kw)))(x)
    assert mx.all(dx[:T - 1] == 1).item() and mx.all(dx[T - 1] == 2).item()


def test_vmap_of_vjp_over_cotangents_past_2_31_neurons():
    """Only the cotangents batched: the forward runs once, unbatched, and the
    backward's vmap broadcasts h to 65536 x 32769 neurons."""
    x = mx.zeros((1, 32769))
    cot = mx.zeros((65536, 1, 32769))  # never evaluated

    def vjp(c):
        return mx.vjp(lambda x_: fs.ops.leaky(x_, beta=0.9, backend="fused")[0], [x], [c])[1][0]
    with pytest.raises(ValueError, match=r"\[leaky\] x of shape \(1, 65536, 32769\) has "
                                         r"2147549184 neurons.* under mx.vmap"):
        mx.vmap(vjp)(cot)
