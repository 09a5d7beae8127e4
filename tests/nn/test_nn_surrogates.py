"""flashsnn.surrogate against snnTorch 1.0's surrogate module: every factory
snnTorch has exists here with its parameter names and defaults, and the ones
tests/ops/test_surrogate.py does not compare (LSO, custom_surrogate, SSO)
give snnTorch's gradients."""

import inspect

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, rel_rms

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[test]')")
ss = pytest.importorskip("snntorch.surrogate", reason="snntorch is not installed")
snn = pytest.importorskip("snntorch", reason="snntorch is not installed")

SNNTORCH_FACTORIES = ["straight_through_estimator", "triangular", "fast_sigmoid", "atan",
                      "heaviside", "sigmoid", "spike_rate_escape", "SSO", "LSO", "SFS",
                      "custom_surrogate"]


def test_the_factory_list_is_snntorchs():
    theirs = {n for n, f in vars(ss).items() if inspect.isfunction(f)
              and f.__module__ == ss.__name__}
    assert theirs == set(SNNTORCH_FACTORIES)


@pytest.mark.parametrize("name", SNNTORCH_FACTORIES)
def test_same_names_and_defaults(name):
    ours = inspect.signature(getattr(fs.surrogate, name)).parameters
    theirs = inspect.signature(getattr(ss, name)).parameters
    extra = {"key"} if name == "SSO" else set()  # MLX's explicit random key
    assert list(theirs) == [p for p in ours if p not in extra]
    for p in theirs:
        assert ours[p].default == theirs[p].default, (name, p)


def grad_ours(g, v):
    return np.array(mx.grad(lambda a: g.spike(a).sum())(mx.array(v)))


def test_lso_is_snntorchs_leaky_spike_operator():
    """snnTorch 1.0's LSO() factory calls the stochastic operator by mistake,
    and its LeakySpikeOperator returns one gradient for two inputs, so
    neither runs under autograd; its backward code, called directly, is the
    reference."""
    v = np.linspace(-2, 2, 81).astype(np.float32)
    t = torch.tensor(v)
    with pytest.raises(RuntimeError):
        x = t.clone().requires_grad_(True)
        ss.LeakySpikeOperator.apply(x, 0.1).sum().backward()

    class Ctx:  # what forward() would have saved
        saved_tensors = ((t > 0).float(),)

    for slope in (0.1, 0.37):
        Ctx.slope = slope
        theirs = ss.LeakySpikeOperator.backward(Ctx, torch.ones_like(t)).numpy()
        assert rel_rms(grad_ours(fs.surrogate.LSO(slope=slope), v), theirs) < 1e-7


def test_custom_surrogate_in_a_layer_matches_snntorch():
    def theirs_fn(input_, grad_input, spikes):
        return grad_input / (7 * torch.abs(input_) + 1.0) ** 2

    def ours_fn(input_, grad_input, spikes):
        return grad_input / (7 * mx.abs(input_) + 1.0) ** 2

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(20, 3, 6)) * 0.8 + 0.4).astype(np.float32)
    cot = rng.normal(size=x.shape).astype(np.float32)
    theirs = snn.Leaky(beta=0.8, spike_grad=ss.custom_surrogate(theirs_fn))
    xt = torch.tensor(x, requires_grad=True)
    mem, spks = theirs.reset_mem(), []
    for t in range(x.shape[0]):
        s, mem = theirs(xt[t], mem)
        spks.append(s)
    (torch.stack(spks) * torch.tensor(cot)).sum().backward()
    ours = fs.nn.Leaky(beta=0.8, spike_grad=fs.surrogate.custom_surrogate(ours_fn))
    g = mx.grad(lambda a: (ours.sequence(a)[0] * mx.array(cot)).sum())(mx.array(x))
    assert rel_rms(g, xt.grad.numpy()) < 1e-6, describe(g, xt.grad.numpy())


def test_sso_subthreshold_gradient_is_snntorchs_distribution():
    """SSO: gradient 1 where spiking, else (U[0,1) - 0.5 + mean) * variance."""
    v = np.concatenate([np.full(20000, -0.5), np.full(100, 0.5)]).astype(np.float32)
    mean, variance = 0.2, 0.5
    g = grad_ours(fs.surrogate.SSO(mean=mean, variance=variance, key=mx.random.key(0)), v)
    t = torch.tensor(v, requires_grad=True)
    ss.SSO(mean=mean, variance=variance)(t).sum().backward()
    for grads in (g, t.grad.numpy()):
        sub = grads[:20000]
        assert np.all(grads[20000:] == 1.0)
        lo, hi = (-0.5 + mean) * variance, (0.5 + mean) * variance
        assert lo <= sub.min() and sub.max() < hi
        assert abs(sub.mean() - mean * variance) < 0.01
        assert abs(sub.std() - variance / np.sqrt(12)) < 0.01
