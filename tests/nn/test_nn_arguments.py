"""What the layers used to accept silently or report in MLX's or the op's
words (issue 19, items 3, 4 and 7): states of a wrong shape, state tuples,
non-bool flags, a learnable beta outside [0, 1], RLeaky's linear_features,
errors named by the layer, and help() text."""

from __future__ import annotations

import pydoc
import warnings

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

LAYERS = {
    "Leaky": lambda: fs.nn.Leaky(beta=0.5),
    "IF": lambda: fs.nn.IF(),
    "Synaptic": lambda: fs.nn.Synaptic(alpha=0.5, beta=0.5),
    "Alpha": lambda: fs.nn.Alpha(alpha=0.9, beta=0.7),
    "Lapicque": lambda: fs.nn.Lapicque(beta=0.9),
    "RLeaky": lambda: fs.nn.RLeaky(beta=0.5, V=0.5, all_to_all=False),
    "RSynaptic": lambda: fs.nn.RSynaptic(alpha=0.5, beta=0.5, V=0.5, all_to_all=False),
    "ALIF": lambda: fs.nn.ALIF(beta=0.5),
    "Izhikevich": lambda: fs.nn.Izhikevich(),
}
B, N = 2, 4
X_T = mx.random.uniform(0, 1.5, (B, N), key=mx.random.key(1))
X = mx.random.uniform(0, 1.5, (5, B, N), key=mx.random.key(2))


def _np(a):
    return np.array(a.astype(mx.float32))


@pytest.mark.parametrize("sequence", [False, True], ids=["step", "sequence"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_state_of_a_wrong_shape_raises(name, sequence):
    """Before: replaced by zeros without a word."""
    layer = LAYERS[name]()
    for k in layer._states:
        states = {s: None for s in layer._states}
        states[k] = mx.zeros((3,))
        call = layer.sequence if sequence else layer
        with pytest.raises(ValueError, match=rf"\[{name}\] {k} of shape \(3,\) does not fit "
                                             rf"the input: expected \(2, 4\)"):
            call(X if sequence else X_T, **states)


@pytest.mark.parametrize("sequence", [False, True], ids=["step", "sequence"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_broadcast_states_equal_materialized(name, sequence):
    layer = LAYERS[name]()
    call = layer.sequence if sequence else layer
    x = X if sequence else X_T
    small = {k: mx.full((N,), 0.3) for k in layer._states}
    full = {k: mx.full((B, N), 0.3) for k in layer._states}
    for a, b in zip(call(x, **small), call(x, **full)):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize("name", list(LAYERS))
def test_empty_and_stale_stored_states_still_mean_zeros(name):
    """snnTorch's habits that stay: reset_mem()'s empty state, and a stored
    state of a stale batch, start at zeros."""
    layer = LAYERS[name]()
    want = LAYERS[name]()(X_T)
    states = layer.reset_mem()
    states = states if isinstance(states, tuple) else (states,)
    for a, b in zip(layer(X_T, *states), want):
        np.testing.assert_array_equal(_np(a), _np(b))
    layer(mx.ones((3, N)))          # stores a [3, N] state
    for a, b in zip(layer(X_T), LAYERS[name]()(X_T)):  # a stale batch: zeros
        np.testing.assert_array_equal(_np(a), _np(b))


def test_a_state_tuple_passed_as_mem_says_unpack():
    syn = fs.nn.Synaptic(alpha=0.5, beta=0.5)
    states = syn.init_synaptic()
    with pytest.raises(TypeError, match=r"\[Synaptic\] syn must be an array; got a tuple of 2 "
                                        r"arrays: unpack the states, e\.g\. `spk, syn, mem = "
                                        r"layer\(x_t, syn, mem\)`"):
        syn(X_T, states)
    lif = fs.nn.Leaky(beta=0.5)
    with pytest.raises(TypeError, match=r"\[Leaky\] mem must be an array; got a tuple .*"
                                        r"`spk, mem = layer\.sequence\(x, mem\)`"):
        lif.sequence(X, lif(X_T))


def test_layer_errors_name_the_layer_and_the_op():
    with pytest.raises(ValueError, match=r"^\[Leaky\] threshold of shape \(3,\) does not "
                                         r"broadcast .*\(in flashsnn\.ops\.leaky\)$"):
        fs.nn.Leaky(beta=0.5, threshold=mx.ones((3,)))(X_T)
    with pytest.raises(RuntimeError, match=r"^\[Synaptic\] backend='fused' but no fused "
                                           r"kernel applies"):
        fs.nn.Synaptic(alpha=0.5, beta=0.5, spike_grad=lambda v: (v > 0).astype(v.dtype),
                       backend="fused")(X_T)


def test_spike_grad_returning_a_non_array_is_named():
    """Before: stop_gradient(): incompatible function arguments."""
    lif = fs.nn.Leaky(beta=0.5, spike_grad=lambda v: 1.0)
    with pytest.raises(TypeError, match=r"^\[Leaky\] the callable '<lambda>' returned float; "
                                        r".*\(in spike_grad\)$"):
        lif(X_T)


@pytest.mark.parametrize("cls,kw", [(fs.nn.Leaky, dict(beta=0.5)),
                                    (fs.nn.Synaptic, dict(alpha=0.5, beta=0.5)),
                                    (fs.nn.RLeaky, dict(beta=0.5, all_to_all=False)),
                                    (fs.nn.RSynaptic, dict(alpha=0.5, beta=0.5,
                                                           all_to_all=False))])
@pytest.mark.parametrize("value", ["yes", None, 1])
def test_reset_delay_must_be_a_bool(cls, kw, value):
    with pytest.raises(TypeError, match=rf"\[{cls.__name__}\] reset_delay must be True or "
                                        rf"False; got {value!r}"):
        cls(**kw, reset_delay=value)


def test_numpy_beta_in_layer_and_op():
    beta = np.full((N,), 0.5)
    a = fs.nn.Leaky(beta=beta)(X_T)
    b = fs.ops.leaky(X_T[None], beta=beta)
    np.testing.assert_array_equal(_np(a[0]), _np(b[0][0]))


# --------------------------------------------------------------------------
# A learnable beta outside [0, 1]

@pytest.mark.parametrize("make,name", [
    (lambda v: fs.nn.Leaky(beta=v, learn_beta=True), "beta"),
    (lambda v: fs.nn.RLeaky(beta=v, learn_beta=True, all_to_all=False), "beta"),
    (lambda v: fs.nn.Synaptic(alpha=v, beta=0.5, learn_alpha=True), "alpha"),
    (lambda v: fs.nn.ALIF(beta=0.5, rho=v, learn_rho=True), "rho"),
])
def test_learnable_unit_parameter_outside_01_warns_once(make, name):
    layer = make(mx.array([0.5, 1.5, 0.9, -0.1]))
    tag = type(layer).__name__
    with pytest.warns(UserWarning, match=rf"\[{tag}\] learnable {name} has values outside "
                                         r"\[0, 1\] \(min -0\.1, max 1\.5\)"):
        layer.sequence(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.sequence(X)          # once per layer
        layer(X_T)


def test_in_range_or_fixed_beta_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs.nn.Leaky(beta=mx.array([0.0, 1.0, 0.5, 0.9]), learn_beta=True).sequence(X)
        fs.nn.Leaky(beta=1.5)(X_T)   # fixed: snnTorch's clamp, nothing learns


def test_beta_stepped_out_by_training_warns():
    """The case that went silent: an optimizer step takes beta above 1."""
    lif = fs.nn.Leaky(beta=mx.full((N,), 0.95), learn_beta=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lif(X_T)
    lif.beta = lif.beta + 0.1
    with pytest.warns(UserWarning, match=r"\[Leaky\] learnable beta"):
        lif(X_T)


def test_unit_check_is_skipped_under_compile():
    """A beta traced by mx.compile has no value to read: no check, no error."""
    lif = fs.nn.Leaky(beta=mx.full((N,), 1.5), learn_beta=True)
    f = mx.compile(lambda beta, x: fs.nn.Leaky(beta=beta, learn_beta=True).sequence(x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mx.eval(f(lif.beta, X))


# --------------------------------------------------------------------------
# RLeaky / RSynaptic all-to-all: the input against linear_features

@pytest.mark.parametrize("cls,kw", [(fs.nn.RLeaky, dict(beta=0.5)),
                                    (fs.nn.RSynaptic, dict(alpha=0.5, beta=0.5))])
def test_linear_features_mismatch(cls, kw):
    layer = cls(**kw, linear_features=3)
    msg = (rf"^\[{cls.__name__}\] the input's last dimension is 4, but linear_features=3: "
           r"the recurrent Linear\(3, 3\)")
    with pytest.raises(ValueError, match=msg):
        layer(X_T)
    with pytest.raises(ValueError, match=msg):
        layer.sequence(X)
    layer = cls(**kw, linear_features=N)
    layer(X_T)
    layer.sequence(X)


def test_conv2d_channels_mismatch():
    layer = fs.nn.RLeaky(beta=0.5, conv2d_channels=3, kernel_size=3)
    with pytest.raises(ValueError, match=r"^\[RLeaky\] the recurrent Conv2d takes "
                                         r"channels-last maps \[B, H, W, C\]"):
        layer(mx.zeros((2, 5, 5, 4)))
    layer(mx.zeros((2, 5, 5, 3)))
    layer.sequence(mx.zeros((2, 2, 5, 5, 3)))


# --------------------------------------------------------------------------
# help()

@pytest.mark.parametrize("name", list(LAYERS))
def test_help_shows_flashsnn_text(name):
    cls = getattr(fs.nn, name)
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert "Should be called by the subclasses of" not in text
    assert "Call self as a function" not in text
    assert cls.__doc__.split("\n")[0].strip() in text
