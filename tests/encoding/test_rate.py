"""Rate and direct coding: exact edge cases, statistics, reproducibility."""

import math

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

E = fs.encoding


def test_certain_probabilities_are_exact():
    x = mx.array([[0.0, 1.0, -0.5, 3.0]])           # clipped to [0, 1]
    spk = E.rate(x, num_steps=7, key=mx.random.key(3))
    assert spk.shape == (7, 1, 4)
    assert spk[:, 0].tolist() == [[0.0, 1.0, 0.0, 1.0]] * 7


def test_mean_firing_matches_probability():
    # 200 steps x 500 samples = 1e5 draws per probability: binomial std of
    # the mean <= sqrt(0.25 / 1e5) = 0.0016, so 0.01 is > 6 sigma.
    p = mx.array([0.05, 0.3, 0.5, 0.8])
    x = mx.broadcast_to(p, (500, 4))
    spk = E.rate(x, num_steps=200, key=mx.random.key(0))
    rate = np.array(mx.mean(spk, axis=(0, 1)))
    np.testing.assert_allclose(rate, np.array(p), atol=0.01)
    # and the steps are not all alike (independent draws per step)
    assert 0 < float(mx.mean(mx.abs(spk[1:] - spk[:-1]))) < 1


def test_gain_and_offset():
    x = mx.full((400, 2), 0.5)
    spk = E.rate(x, num_steps=100, gain=0.4, offset=0.1, key=mx.random.key(1))
    assert abs(float(mx.mean(spk)) - 0.3) < 0.01     # 0.5 * 0.4 + 0.1


def test_same_key_same_spikes_and_other_key_differs():
    x = mx.random.uniform(shape=(8, 64), key=mx.random.key(5))
    a = E.rate(x, num_steps=25, key=mx.random.key(42))
    b = E.rate(x, num_steps=25, key=mx.random.key(42))
    c = E.rate(x, num_steps=25, key=mx.random.key(43))
    assert mx.array_equal(a, b)
    assert not mx.array_equal(a, c)


def test_first_spike_time_static_silences_leading_steps():
    spk = E.rate(mx.ones((2, 3)), num_steps=5, first_spike_time=2, key=mx.random.key(0))
    assert spk.shape == (5, 2, 3)
    assert spk[:2].sum().item() == 0 and spk[2:].sum().item() == 3 * 2 * 3


def test_time_varying_input_and_prepended_silence():
    x = mx.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])          # [T=3, 2]
    spk = E.rate(x, time_var_input=True, key=mx.random.key(0))
    assert spk.tolist() == x.tolist()
    spk = E.rate(x, time_var_input=True, first_spike_time=2, key=mx.random.key(0))
    assert spk.shape == (5, 2) and spk[:2].sum().item() == 0
    assert spk[2:].tolist() == x.tolist()


def test_dtype_follows_floating_input():
    assert E.rate(mx.ones((2,), dtype=mx.float16), num_steps=2).dtype == mx.float16
    assert E.rate(mx.ones((2,), dtype=mx.int32), num_steps=2).dtype == mx.float32
    assert E.rate(np.ones((2,)), num_steps=2).dtype == mx.float32


def test_snntorch_statistics_agree():
    torch = pytest.importorskip("torch")
    spikegen = pytest.importorskip("snntorch.spikegen")
    torch.manual_seed(0)
    x = np.random.default_rng(0).uniform(size=(300, 10)).astype(np.float32)
    ours = np.array(E.rate(mx.array(x), num_steps=100, key=mx.random.key(0)).mean(axis=0))
    theirs = spikegen.rate(torch.tensor(x), num_steps=100).mean(0).numpy()
    # each entry averages 100 draws: std <= 0.05; the two codes agree with
    # the probabilities and hence with each other on average
    assert abs(ours.mean() - x.mean()) < 0.005 and abs(theirs.mean() - x.mean()) < 0.005
    assert np.abs(ours - x).max() < 0.25 and np.abs(theirs - x).max() < 0.25


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "num_steps must be given"),
    (dict(num_steps=-1), "num_steps must be a positive int"),
    (dict(num_steps=3, first_spike_time=3), r"first_spike_time \(3\) must be <= num_steps - 1"),
    (dict(num_steps=3, time_var_input=True), "num_steps must not be given with time_var_input"),
    (dict(num_steps=3, key=7), "key must be an mlx.core.array"),
])
def test_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=r"^\[rate\] " + match):
        E.rate(mx.ones((2, 2)), **kwargs)


def test_rate_rejects_non_arrays():
    with pytest.raises(TypeError, match=r"^\[rate\] data must be"):
        E.rate("abc", num_steps=2)


def test_direct_repeats_and_gradient_sums_over_time():
    x = mx.array([[0.25, -1.0]])
    out = E.direct(x, 4)
    assert out.shape == (4, 1, 2) and out[3].tolist() == x.tolist()
    g = mx.grad(lambda v: (E.direct(v, 4) * mx.arange(4.0)[:, None, None]).sum())(x)
    assert g.tolist() == [[6.0, 6.0]]                # 0 + 1 + 2 + 3
    with pytest.raises(ValueError, match=r"^\[direct\] num_steps"):
        E.direct(x, None)


def test_rate_conv_is_one_draw():
    out = E.rate_conv(mx.full((1000,), 0.25), key=mx.random.key(9))
    assert out.shape == (1000,)
    assert abs(out.mean().item() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 1000)
