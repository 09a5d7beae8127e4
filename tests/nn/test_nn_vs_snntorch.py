"""flashsnn.nn layers against snnTorch 1.0's own layers, with copied parameters.

For each family snnTorch has: step by step and as one ``sequence()`` call,
spikes identical, states to float32 round-off, and the gradients of the
input, of every initial state and of every learnable parameter (random
cotangents on the spikes and on every state at every step), over reset
mechanisms, ``reset_delay``, surrogates, and scalar or per-neuron parameters.
"""

from __future__ import annotations

import zlib

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from nn_helpers import assert_same, run_ours, run_torch

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[test]')")
snn = pytest.importorskip("snntorch", reason="snntorch is not installed (pip install '.[test]')")
from snntorch import surrogate as ss  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SURROGATES = {  # flashsnn surrogate, snnTorch surrogate
    "atan": (fs.surrogate.atan(), ss.atan()),
    "fast_sigmoid": (fs.surrogate.fast_sigmoid(slope=10), ss.fast_sigmoid(slope=10)),
    # snnTorch's sigmoid gradient overflows to NaN below v = -88/slope (ours
    # is rewritten not to): a gentle slope keeps the comparison meaningful.
    "sigmoid": (fs.surrogate.sigmoid(slope=3), ss.sigmoid(slope=3)),
    "triangular": (fs.surrogate.triangular(), ss.triangular()),
    "straight_through": (fs.surrogate.straight_through_estimator(),
                         ss.straight_through_estimator()),
    "spike_rate_escape": (fs.surrogate.spike_rate_escape(beta=2, slope=0.5),
                          ss.spike_rate_escape(beta=2, slope=0.5)),
    "SFS": (fs.surrogate.SFS(slope=5, B=-0.5), ss.SFS(slope=5, B=-0.5)),
}
# (surrogate, per-neuron parameters?): each surrogate once with each kind.
VARIANTS = [("atan", True), ("fast_sigmoid", False), ("sigmoid", True),
            ("triangular", False), ("straight_through", True), ("spike_rate_escape", False),
            ("SFS", True), ("atan", False)]
VARIANT_IDS = [f"{s}-{'per_neuron' if p else 'scalar'}" for s, p in VARIANTS]
# The fused families (leaky, synaptic, alpha, lapicque) are compared on both paths.
BACKENDS = ["reference"] + (["fused"] if fs.fused_unavailable_reason() is None else [])
LEAKY_BACKENDS = BACKENDS


def rng_for(*key) -> np.random.Generator:
    # crc32, not hash(): str hashes change from run to run
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def param(rng, per_neuron: bool, N: int, lo: float, hi: float, scalar: float):
    return rng.uniform(lo, hi, N).astype(np.float32) if per_neuron else np.float32(scalar)


def tt(v):
    """An snnTorch parameter value (a tensor, float32 like ours)."""
    return torch.tensor(np.asarray(v, dtype=np.float32))


# MLX's CUDA matmul and convolution round float32 products TF32-style, so a
# recurrent layer with Linear or Conv2d feedback drifts from snnTorch's CPU
# float32 (measured on an H100: states up to 1e-4, gradients up to 2.7e-3
# relative RMS); the neuron arithmetic itself stays exact (one-to-one
# feedback is compared bitwise on every device).
FEEDBACK_TOL = 1e-2 if mx.default_device() == mx.gpu else None


def leaf(v):
    return torch.tensor(np.asarray(v, dtype=np.float32), requires_grad=True)


def inputs(rng, T, S, n_states, scale=0.8, shift=0.3, state_scale=0.5):
    x = (rng.normal(size=(T, *S)) * scale + shift).astype(np.float32)
    init = [(rng.normal(size=S) * state_scale).astype(np.float32) for _ in range(n_states)]
    return x, init


def cotangents(rng, T, S, n_out):
    return [rng.normal(size=(T, *S)).astype(np.float32) for _ in range(n_out)]


def compare(ours, theirs, tparams, x, init, rng, what, spk_state=False, spiking=True,
            tols=None, exact_states=False, matmul=False):
    n_out = 1 + len(ours._states) - (1 if spk_state else 0)
    cots = cotangents(rng, x.shape[0], x.shape[1:], n_out)
    ref = run_torch(theirs, x, init, cots, tparams, spk_state)
    if spiking:  # a test where nothing (or everything) fires proves little
        assert 0 < ref.spk.sum() < ref.spk.size, f"{what}: degenerate spike train"
    for sequence in (False, True):
        got = run_ours(ours, x, init, cots, sequence)
        how = f"{what} ({'sequence' if sequence else 'step'})"
        if matmul and FEEDBACK_TOL:
            assert_same(got, ref, how, state_tol=FEEDBACK_TOL, grad_tol=FEEDBACK_TOL)
        else:
            assert_same(got, ref, how, tols=tols)
        if exact_states:  # the same float32 operations in the same order
            for k, (a, b) in enumerate(zip(got.states, ref.states)):
                np.testing.assert_array_equal(a, b, err_msg=f"{how}: state {k}")


# -- Leaky -------------------------------------------------------------------

def leaky_pair(rng, N, per_neuron, surrogate, gsf=None, backend="auto", **kw):
    """Leaky twins with learnable beta and threshold (and graded spikes
    factor when ``gsf`` is given)."""
    beta = param(rng, per_neuron, N, 0.5, 1.0, 0.8)
    th = param(rng, per_neuron, N, 0.8, 1.2, 1.0)
    ours_sg, their_sg = SURROGATES[surrogate]
    if gsf is not None:
        kw.update(graded_spikes_factor=gsf, learn_graded_spikes_factor=True)
    ours = fs.nn.Leaky(beta=mx.array(beta), threshold=mx.array(th), spike_grad=ours_sg,
                       learn_beta=True, learn_threshold=True, backend=backend, **kw)
    theirs = snn.Leaky(beta=tt(beta), threshold=tt(th), spike_grad=their_sg, learn_beta=True,
                       learn_threshold=True, **kw)
    tparams = {"beta": theirs.beta, "threshold": theirs.threshold}
    if gsf is not None:
        tparams["graded_spikes_factor"] = theirs.graded_spikes_factor
    return ours, theirs, tparams


@pytest.mark.parametrize("backend", LEAKY_BACKENDS)
@pytest.mark.parametrize("surrogate,per_neuron", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_leaky(reset, reset_delay, surrogate, per_neuron, backend):
    rng = rng_for("leaky", reset, reset_delay, surrogate, per_neuron)
    T, S = 25, (3, 9)
    ours, theirs, tp = leaky_pair(rng, S[-1], per_neuron, surrogate, reset_mechanism=reset,
                                  reset_delay=reset_delay, backend=backend)
    x, init = inputs(rng, T, S, 1)
    compare(ours, theirs, tp, x, init, rng, f"Leaky {reset} delay={reset_delay}",
            exact_states=True)


@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("backend", LEAKY_BACKENDS)
def test_leaky_graded_spikes(backend, reset_delay):
    """graded_spikes_factor scales the spikes outside the op; the same-step
    reset still uses the raw spike (snnTorch divides it back out)."""
    rng = rng_for("graded", backend, reset_delay)
    ours, theirs, tp = leaky_pair(rng, 6, True, "atan", gsf=0.7, reset_delay=reset_delay,
                                  backend=backend)
    x, init = inputs(rng, 20, (4, 6), 1)
    compare(ours, theirs, tp, x, init, rng, "Leaky graded")


@pytest.mark.parametrize("backend", LEAKY_BACKENDS)
def test_leaky_inhibition(backend):
    rng = rng_for("inhibition", backend)
    ours, theirs, tp = leaky_pair(rng, 7, True, "atan", inhibition=True, backend=backend)
    x, init = inputs(rng, 20, (5, 7), 1, scale=1.0, shift=0.6)
    compare(ours, theirs, tp, x, init, rng, "Leaky inhibition")


@pytest.mark.parametrize("backend", LEAKY_BACKENDS)
@pytest.mark.parametrize("T,S", [(1, (3, 5)), (63, (2, 7)), (9, (2, 3, 4)), (30, (4, 1)),
                                 (12, (33,))], ids=["T1", "T63", "4d", "N1", "1d"])
def test_leaky_awkward_shapes(T, S, backend):
    rng = rng_for("leaky-shapes", T, S, backend)
    ours, theirs, tp = leaky_pair(rng, S[-1], True, "fast_sigmoid", backend=backend)
    x, init = inputs(rng, T, S, 1, shift=0.6)
    compare(ours, theirs, tp, x, init, rng, f"Leaky T={T} S={S}", spiking=T > 1)


@pytest.mark.parametrize("backend", LEAKY_BACKENDS)
def test_if_is_snntorch_leaky_with_beta_one(backend):
    rng = rng_for("IF", backend)
    th = rng.uniform(0.8, 1.2, 5).astype(np.float32)
    ours = fs.nn.IF(threshold=mx.array(th), learn_threshold=True, reset_mechanism="zero",
                    backend=backend)
    theirs = snn.Leaky(beta=1.0, threshold=tt(th), learn_threshold=True,
                       reset_mechanism="zero")
    x, init = inputs(rng, 30, (3, 5), 1, shift=0.1, scale=0.4)
    compare(ours, theirs, {"threshold": theirs.threshold}, x, init, rng, "IF")


# -- Synaptic ------------------------------------------------------------------

def synaptic_pair(rng, N, per_neuron, surrogate, backend="auto", **kw):
    alpha = param(rng, per_neuron, N, 0.3, 0.9, 0.7)
    beta = param(rng, per_neuron, N, 0.5, 1.0, 0.8)
    th = param(rng, per_neuron, N, 0.8, 1.2, 1.0)
    ours_sg, their_sg = SURROGATES[surrogate]
    ours = fs.nn.Synaptic(alpha=mx.array(alpha), beta=mx.array(beta), threshold=mx.array(th),
                          spike_grad=ours_sg, learn_alpha=True, learn_beta=True,
                          learn_threshold=True, backend=backend, **kw)
    theirs = snn.Synaptic(alpha=tt(alpha), beta=tt(beta), threshold=tt(th), spike_grad=their_sg,
                          learn_alpha=True, learn_beta=True, learn_threshold=True, **kw)
    return ours, theirs, {"alpha": theirs.alpha, "beta": theirs.beta,
                          "threshold": theirs.threshold}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate,per_neuron", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_synaptic(reset, reset_delay, surrogate, per_neuron, backend):
    rng = rng_for("synaptic", reset, reset_delay, surrogate, per_neuron)
    ours, theirs, tp = synaptic_pair(rng, 9, per_neuron, surrogate, reset_mechanism=reset,
                                     reset_delay=reset_delay, backend=backend)
    x, init = inputs(rng, 25, (3, 9), 2, scale=0.6, shift=0.1)
    compare(ours, theirs, tp, x, init, rng, f"Synaptic {reset} delay={reset_delay}",
            exact_states=True)


@pytest.mark.parametrize("T,S", [(1, (3, 5)), (63, (2, 7)), (9, (2, 3, 4))],
                         ids=["T1", "T63", "4d"])
def test_synaptic_awkward_shapes(T, S):
    rng = rng_for("synaptic-shapes", T, S)
    ours, theirs, tp = synaptic_pair(rng, S[-1], True, "atan")
    x, init = inputs(rng, T, S, 2, scale=0.6, shift=0.2)
    compare(ours, theirs, tp, x, init, rng, f"Synaptic T={T}", spiking=T > 1)


# -- Alpha -----------------------------------------------------------------------

def alpha_pair(rng, N, per_neuron, surrogate, backend="auto", **kw):
    alpha = param(rng, per_neuron, N, 0.85, 0.95, 0.9)
    beta = param(rng, per_neuron, N, 0.5, 0.8, 0.7)
    th = param(rng, per_neuron, N, 0.8, 1.2, 1.0)
    ours_sg, their_sg = SURROGATES[surrogate]
    ours = fs.nn.Alpha(alpha=mx.array(alpha), beta=mx.array(beta), threshold=mx.array(th),
                       spike_grad=ours_sg, learn_alpha=True, learn_beta=True,
                       learn_threshold=True, backend=backend, **kw)
    # snnTorch 1.0's learn_alpha=True fails in the constructor; its alpha
    # buffer, replaced by a leaf tensor, carries the gradient instead.
    theirs = snn.Alpha(alpha=tt(alpha), beta=tt(beta), threshold=tt(th), spike_grad=their_sg,
                       learn_beta=True, learn_threshold=True, **kw)
    theirs.alpha = leaf(alpha)
    return ours, theirs, {"alpha": theirs.alpha, "beta": theirs.beta,
                          "threshold": theirs.threshold}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate,per_neuron", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_alpha(reset, surrogate, per_neuron, backend):
    rng = rng_for("alpha", reset, surrogate, per_neuron)
    ours, theirs, tp = alpha_pair(rng, 9, per_neuron, surrogate, reset_mechanism=reset,
                                  backend=backend)
    x, init = inputs(rng, 25, (3, 9), 3, scale=1.0, shift=0.2)
    # tau_alpha goes through log(): a few ulp apart from torch's
    compare(ours, theirs, tp, x, init, rng, f"Alpha {reset}")


@pytest.mark.parametrize("T,S", [(1, (3, 5)), (63, (2, 7)), (9, (2, 3, 4))],
                         ids=["T1", "T63", "4d"])
def test_alpha_awkward_shapes(T, S):
    rng = rng_for("alpha-shapes", T, S)
    ours, theirs, tp = alpha_pair(rng, S[-1], True, "atan")
    x, init = inputs(rng, T, S, 3, scale=1.0, shift=0.3)
    compare(ours, theirs, tp, x, init, rng, f"Alpha T={T}", spiking=T > 1)


# -- Lapicque --------------------------------------------------------------------

LAPICQUE_CIRCUITS = {  # snnTorch's four ways to give the circuit
    "beta": dict(beta=0.9),
    "R_C": dict(R=2.0, C=3.0),
    "beta_R": dict(beta=0.85, R=2.0),
    "beta_C": dict(beta=0.8, C=4.0, time_step=0.5),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "triangular"])
@pytest.mark.parametrize("circuit", list(LAPICQUE_CIRCUITS))
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_lapicque(reset, circuit, surrogate, backend):
    rng = rng_for("lapicque", reset, circuit, surrogate)
    kw = LAPICQUE_CIRCUITS[circuit]
    learn_beta = "beta" in kw
    ours_sg, their_sg = SURROGATES[surrogate]
    ours = fs.nn.Lapicque(**kw, threshold=1.1, spike_grad=ours_sg, learn_beta=learn_beta,
                          learn_threshold=True, reset_mechanism=reset, backend=backend)
    # snnTorch derives C (or R) from beta once, in the constructor, and its
    # learn_beta fails when R or C is also given; a leaf tensor as beta
    # carries the gradient through that derivation for one backward.
    their_kw = {**kw, "beta": leaf(kw["beta"])} if learn_beta else kw
    theirs = snn.Lapicque(**their_kw, threshold=1.1, spike_grad=their_sg,
                          learn_threshold=True, reset_mechanism=reset)
    tp = {"threshold": theirs.threshold}
    if learn_beta:
        tp["beta"] = their_kw["beta"]
    x, init = inputs(rng, 25, (3, 9), 1, scale=2.0, shift=1.2)
    compare(ours, theirs, tp, x, init, rng, f"Lapicque {circuit} {reset}")


def test_lapicque_stores_snntorchs_circuit():
    for kw in LAPICQUE_CIRCUITS.values():
        ours, theirs = fs.nn.Lapicque(**kw), snn.Lapicque(**kw)
        for name in ("beta", "R", "C", "time_step"):
            np.testing.assert_allclose(np.array(getattr(ours, name)).reshape(-1),
                                       getattr(theirs, name).numpy().reshape(-1), rtol=1e-6)


# -- RLeaky and RSynaptic --------------------------------------------------------

def copy_linear(ours_linear, their_linear):
    ours_linear.weight = mx.array(their_linear.weight.detach().numpy())
    ours_linear.bias = mx.array(their_linear.bias.detach().numpy())


# One-to-one feedback on both backends; all-to-all (a Linear) has no kernel.
FEEDBACK_CASES = [(False, b) for b in BACKENDS] + [(True, "auto")]
FEEDBACK_IDS = [f"one_to_one-{b}" for b in BACKENDS] + ["linear"]


def rleaky_pair(rng, N, per_neuron, surrogate, all_to_all, backend="auto", **kw):
    beta = param(rng, per_neuron, N, 0.5, 1.0, 0.8)
    th = param(rng, per_neuron, N, 0.8, 1.2, 1.0)
    V = param(rng, per_neuron, N, -0.5, 0.5, 0.3)
    ours_sg, their_sg = SURROGATES[surrogate]
    common = dict(threshold=th, learn_beta=True, learn_threshold=True, **kw)
    if all_to_all:
        torch.manual_seed(int(rng.integers(1 << 30)))
        theirs = snn.RLeaky(beta=tt(beta), linear_features=N, spike_grad=their_sg,
                            **{**common, "threshold": tt(th)})
        ours = fs.nn.RLeaky(beta=mx.array(beta), linear_features=N, spike_grad=ours_sg,
                            **{**common, "threshold": mx.array(th)})
        copy_linear(ours.recurrent, theirs.recurrent)
        rec = {"recurrent.weight": theirs.recurrent.weight,
               "recurrent.bias": theirs.recurrent.bias}
    else:
        theirs = snn.RLeaky(beta=tt(beta), V=tt(V), all_to_all=False, spike_grad=their_sg,
                            **{**common, "threshold": tt(th)})
        ours = fs.nn.RLeaky(beta=mx.array(beta), V=mx.array(V), all_to_all=False,
                            spike_grad=ours_sg, backend=backend,
                            **{**common, "threshold": mx.array(th)})
        rec = {"V": theirs.V}
    return ours, theirs, {"beta": theirs.beta, "threshold": theirs.threshold, **rec}


@pytest.mark.parametrize("all_to_all,backend", FEEDBACK_CASES, ids=FEEDBACK_IDS)
@pytest.mark.parametrize("surrogate,per_neuron", VARIANTS[:6], ids=VARIANT_IDS[:6])
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_rleaky(reset, reset_delay, surrogate, per_neuron, all_to_all, backend):
    rng = rng_for("rleaky", reset, reset_delay, surrogate, per_neuron, all_to_all)
    ours, theirs, tp = rleaky_pair(rng, 9, per_neuron, surrogate, all_to_all, backend,
                                   reset_mechanism=reset, reset_delay=reset_delay)
    x, init = inputs(rng, 25, (3, 9), 2, scale=0.6, shift=0.3)
    init[0] = (init[0] > 0).astype(np.float32)  # the initial state is a spike train
    compare(ours, theirs, tp, x, init, rng, f"RLeaky {reset} delay={reset_delay}",
            spk_state=True, exact_states=not all_to_all, matmul=all_to_all)


def rsynaptic_pair(rng, N, per_neuron, surrogate, all_to_all, backend="auto", **kw):
    # Decays kept below 0.9: with alpha, beta -> 1 the membrane integrates the
    # recurrent current without bound and snnTorch's sigmoid overflows.
    alpha = param(rng, per_neuron, N, 0.3, 0.8, 0.7)
    beta = param(rng, per_neuron, N, 0.5, 0.9, 0.8)
    th = param(rng, per_neuron, N, 0.8, 1.2, 1.0)
    V = param(rng, per_neuron, N, -0.5, 0.5, 0.3)
    ours_sg, their_sg = SURROGATES[surrogate]
    common = dict(learn_alpha=True, learn_beta=True, learn_threshold=True, **kw)
    if all_to_all:
        torch.manual_seed(int(rng.integers(1 << 30)))
        theirs = snn.RSynaptic(alpha=tt(alpha), beta=tt(beta), threshold=tt(th),
                               linear_features=N, spike_grad=their_sg, **common)
        ours = fs.nn.RSynaptic(alpha=mx.array(alpha), beta=mx.array(beta),
                               threshold=mx.array(th), linear_features=N, spike_grad=ours_sg,
                               **common)
        copy_linear(ours.recurrent, theirs.recurrent)
        rec = {"recurrent.weight": theirs.recurrent.weight,
               "recurrent.bias": theirs.recurrent.bias}
    else:
        theirs = snn.RSynaptic(alpha=tt(alpha), beta=tt(beta), threshold=tt(th), V=tt(V),
                               all_to_all=False, spike_grad=their_sg, **common)
        ours = fs.nn.RSynaptic(alpha=mx.array(alpha), beta=mx.array(beta),
                               threshold=mx.array(th), V=mx.array(V), all_to_all=False,
                               spike_grad=ours_sg, backend=backend, **common)
        rec = {"V": theirs.V}
    return ours, theirs, {"alpha": theirs.alpha, "beta": theirs.beta,
                          "threshold": theirs.threshold, **rec}


@pytest.mark.parametrize("all_to_all,backend", FEEDBACK_CASES, ids=FEEDBACK_IDS)
@pytest.mark.parametrize("surrogate,per_neuron", VARIANTS[:6], ids=VARIANT_IDS[:6])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_rsynaptic(reset, surrogate, per_neuron, all_to_all, backend):
    rng = rng_for("rsynaptic", reset, surrogate, per_neuron, all_to_all)
    ours, theirs, tp = rsynaptic_pair(rng, 9, per_neuron, surrogate, all_to_all, backend,
                                      reset_mechanism=reset)
    x, init = inputs(rng, 25, (3, 9), 3, scale=0.5, shift=0.1)
    init[0] = (init[0] > 0).astype(np.float32)
    # a Linear's matmul sums in its own order: bitwise only for one-to-one feedback
    compare(ours, theirs, tp, x, init, rng, f"RSynaptic {reset}", spk_state=True,
            exact_states=not all_to_all, matmul=all_to_all)


@pytest.mark.parametrize("layer", ["RLeaky", "RSynaptic"])
def test_recurrent_conv2d_channels_last(layer):
    """snnTorch's Conv2d feedback on NCHW maps is ours on NHWC maps (MLX's
    layout), with the kernel transposed accordingly."""
    rng = rng_for("conv", layer)
    B, C, H, W, T = 2, 3, 5, 4, 12
    torch.manual_seed(7)
    kw = dict(conv2d_channels=C, kernel_size=3, learn_beta=True, learn_threshold=True)
    if layer == "RLeaky":
        theirs = snn.RLeaky(beta=0.8, **kw)
        ours = fs.nn.RLeaky(beta=0.8, **kw)
        extra = {}
    else:
        theirs = snn.RSynaptic(alpha=0.7, beta=0.8, learn_alpha=True, **kw)
        ours = fs.nn.RSynaptic(alpha=0.7, beta=0.8, learn_alpha=True, **kw)
        extra = {"alpha": theirs.alpha}
    w = theirs.recurrent.weight.detach().numpy()            # [out, in, kh, kw]
    ours.recurrent.weight = mx.array(w.transpose(0, 2, 3, 1))  # [out, kh, kw, in]
    ours.recurrent.bias = mx.array(theirs.recurrent.bias.detach().numpy())
    n_states = len(ours._states)
    x = (rng.normal(size=(T, B, C, H, W)) * 0.6 + 0.4).astype(np.float32)
    init = [(rng.normal(size=(B, C, H, W)) * 0.5).astype(np.float32) for _ in range(n_states)]
    init[0] = (init[0] > 0).astype(np.float32)
    cots = [rng.normal(size=(T, B, C, H, W)).astype(np.float32) for _ in range(n_states)]
    tp = {"beta": theirs.beta, "threshold": theirs.threshold, **extra}
    ref = run_torch(theirs, x, init, cots, {**tp, "recurrent.weight": theirs.recurrent.weight,
                                             "recurrent.bias": theirs.recurrent.bias}, True)
    assert 0 < ref.spk.sum() < ref.spk.size

    def nhwc(a):  # [..., C, H, W] -> [..., H, W, C]
        return np.moveaxis(a, -3, -1)

    ref.spk = nhwc(ref.spk)
    ref.states = [nhwc(s) for s in ref.states]
    ref.grads = {k: (nhwc(g) if k == "x" or k.startswith("init") else g)
                 for k, g in ref.grads.items()}
    ref.grads["param.recurrent.weight"] = ref.grads["param.recurrent.weight"].transpose(
        0, 2, 3, 1)
    for sequence in (False, True):
        got = run_ours(ours, nhwc(x), [nhwc(s) for s in init], [nhwc(c) for c in cots],
                       sequence)
        assert_same(got, ref, f"{layer} conv2d ({'sequence' if sequence else 'step'})",
                    **({"state_tol": FEEDBACK_TOL, "grad_tol": FEEDBACK_TOL} if FEEDBACK_TOL
                       else {"grad_tol": 1e-5}))


def test_rsynaptic_reset_delay_false_resets_in_the_firing_step():
    """snnTorch 1.0's RSynaptic ignores reset_delay=False (a deliberate
    difference, docs/layers.md): ours resets as Synaptic does, so with V = 0
    it is Synaptic exactly."""
    rng = rng_for("rsyn-delay")
    x, _ = inputs(rng, 30, (3, 6), 0, shift=0.5)
    for reset in ("subtract", "zero"):
        r = fs.nn.RSynaptic(alpha=0.6, beta=0.8, V=0.0, all_to_all=False,
                            reset_mechanism=reset, reset_delay=False)
        s = fs.nn.Synaptic(alpha=0.6, beta=0.8, reset_mechanism=reset, reset_delay=False)
        a, b = r.sequence(mx.array(x), output_mem="all"), s.sequence(mx.array(x),
                                                                      output_mem="all")
        assert 0 < float(b[0].sum()) < b[0].size
        for u, v in zip(a, b):
            np.testing.assert_array_equal(np.array(u), np.array(v))
        theirs = snn.Synaptic(alpha=0.6, beta=0.8, reset_mechanism=reset, reset_delay=False)
        syn, mem = theirs.reset_mem()
        for t in range(x.shape[0]):
            spk, syn, mem = theirs(torch.tensor(x[t]), syn, mem)
            np.testing.assert_array_equal(np.array(a[0][t]), spk.numpy())


@pytest.mark.parametrize("family", ["Leaky", "Synaptic", "RLeaky", "RSynaptic", "Alpha"])
def test_decays_at_and_beyond_the_clamp(family):
    """Decays of exactly 0 and 1 (and outside [0, 1]) as snnTorch: clamped in
    the step, gradient passed on [0, 1] ends included (torch.clamp's rule;
    mx.clip passes none at the ends)."""
    rng = rng_for("clamp", family)
    N = 6
    beta = np.array([0.0, 1.0, 0.5, 1.2, -0.1, 0.9], np.float32)
    alpha = np.array([1.0, 0.0, 0.7, 1.0, 1.3, 0.95], np.float32)
    th = np.float32(1.0)
    if family == "Leaky":
        ours = fs.nn.Leaky(beta=mx.array(beta), learn_beta=True)
        theirs = snn.Leaky(beta=tt(beta), learn_beta=True)
        tp = {"beta": theirs.beta}
    elif family == "Synaptic":
        ours = fs.nn.Synaptic(alpha=mx.array(alpha), beta=mx.array(beta), learn_alpha=True,
                              learn_beta=True)
        theirs = snn.Synaptic(alpha=tt(alpha), beta=tt(beta), learn_alpha=True, learn_beta=True)
        tp = {"alpha": theirs.alpha, "beta": theirs.beta}
    elif family == "RLeaky":
        ours = fs.nn.RLeaky(beta=mx.array(beta), V=0.3, all_to_all=False, learn_beta=True)
        theirs = snn.RLeaky(beta=tt(beta), V=tt(0.3), all_to_all=False, learn_beta=True)
        tp = {"beta": theirs.beta, "V": theirs.V}
    elif family == "RSynaptic":
        ours = fs.nn.RSynaptic(alpha=mx.array(alpha), beta=mx.array(beta), V=0.3,
                               all_to_all=False, learn_alpha=True, learn_beta=True)
        theirs = snn.RSynaptic(alpha=tt(alpha), beta=tt(beta), V=tt(0.3), all_to_all=False,
                               learn_alpha=True, learn_beta=True)
        tp = {"alpha": theirs.alpha, "beta": theirs.beta, "V": theirs.V}
    else:  # alpha > beta > 0 (log beta); alpha = 1 (also stored clamped from 1.3)
        a = np.array([1.0, 0.9, 0.8, 1.3, 0.99, 0.95], np.float32)
        b = np.array([0.2, 0.5, 0.7, 0.9, 0.3, 0.1], np.float32)
        ours = fs.nn.Alpha(alpha=mx.array(a), beta=mx.array(b), learn_alpha=True,
                           learn_beta=True)
        theirs = snn.Alpha(alpha=tt(a), beta=tt(b), learn_beta=True)
        theirs.alpha = leaf(np.clip(a, 0, 1))  # snnTorch stores alpha clamped
        tp = {"alpha": theirs.alpha, "beta": theirs.beta}
    ours.threshold = mx.array(th)
    x, init = inputs(rng, 15, (3, N), len(ours._states), scale=0.6, shift=0.3)
    if ours._spk_state:
        init[0] = (init[0] > 0).astype(np.float32)
    compare(ours, theirs, tp, x, init, rng, f"{family} clamp", spk_state=ours._spk_state)
