"""Which path an op took: ``flashsnn.ops.last_path``, and the warning when
``backend="auto"`` falls back to the reference (once per op and reason)."""

import warnings

import mlx.core as mx
import pytest

import flashsnn as fs
from flashsnn.ops import _checks

pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(_checks, "_WARNED", set())     # other tests may have warned


def own_surrogate(v):
    return mx.sigmoid(v) * (1 - mx.sigmoid(v))


def test_fused_and_explicit_reference_are_recorded():
    x = mx.random.normal((6, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs.ops.leaky(x, beta=0.5)
        assert fs.ops.last_path("leaky") == {"path": "fused", "why": None}
        fs.ops.synaptic(x, alpha=0.5, beta=0.5, backend="reference")
        assert fs.ops.last_path("synaptic") == {"path": "reference",
                                                "why": "backend='reference'"}


def test_auto_fallback_warns_once_per_reason_and_says_why():
    x = mx.random.normal((6, 4))
    with pytest.warns(fs.ops.ReferenceFallbackWarning,
                      match=r"\[leaky\] backend='auto' runs the pure-MLX reference.*"
                            r"spike_grad is not one of the kernels' surrogates"):
        fs.ops.leaky(x, beta=0.5, spike_grad=own_surrogate)
    last = fs.ops.last_path("leaky")
    assert last["path"] == "reference" and "spike_grad" in last["why"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # the second time: silent
        fs.ops.leaky(x, beta=0.5, spike_grad=own_surrogate)
        fs.ops.leaky(x, beta=0.5, spike_grad=own_surrogate, backend="reference")
    with pytest.warns(fs.ops.ReferenceFallbackWarning, match=r"\[alpha\]"):
        fs.ops.alpha(x, alpha=0.6, beta=0.5, spike_grad=own_surrogate)   # another op


def test_a_layer_reports_through_its_op():
    lif = fs.nn.Leaky(beta=0.9, spike_grad=own_surrogate)
    with pytest.warns(fs.ops.ReferenceFallbackWarning, match=r"\[leaky\]"):
        lif.sequence(mx.random.normal((4, 2, 3)))
    assert fs.ops.last_path("leaky")["path"] == "reference"


def test_an_op_that_has_not_run():
    with pytest.raises(ValueError, match=r"\[last_path\] 'nope' has not run in this process"):
        fs.ops.last_path("nope")


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_no_shapeless_graph_is_traced_at_zero_steps(backend):
    """A shapeless compile traced at T = 0 used to give (0, S) results at every
    later T, silently; it is refused, and T = 0 outside a transformation and
    shapeless graphs traced at T > 0 still work."""
    m = mx.zeros((3,))
    g = mx.compile(lambda x, m: fs.ops.leaky(x, m, beta=0.5, backend=backend), shapeless=True)
    with pytest.raises(ValueError, match=r"\[leaky\] x has T = 0 steps inside mx.compile"):
        g(mx.zeros((0, 3)), m)
    spk, mem = g(mx.ones((4, 3)), m)
    assert spk.shape == (4, 3) and mem.shape == (3,)
    spk, mem = fs.ops.leaky(mx.zeros((0, 3)), m, beta=0.5, backend=backend)
    assert spk.shape == (0, 3) and mem.shape == (3,)
    with pytest.raises(ValueError, match=r"T = 0 steps inside mx.compile or mx.vmap"):
        mx.vmap(lambda x: fs.ops.synaptic(x, alpha=0.5, beta=0.5, backend=backend)[0],
                in_axes=1)(mx.zeros((0, 2, 3)))
