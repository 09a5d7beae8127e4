"""Latency and delta coding: snnTorch's own examples, and snnTorch itself on
random data over every option."""

import itertools

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

E = fs.encoding
torch = pytest.importorskip("torch")
spikegen = pytest.importorskip("snntorch.spikegen")


def T(a):
    return torch.tensor(np.asarray(a, dtype=np.float32))


# --- hand-derived cases (the examples in snnTorch's docstrings, checked by hand)

def test_linear_normalized_example():
    # tau = 5 - 1 = 4: times 4*(1 - x) = 3.92, 2, 0 -> steps 4, 2, 0
    out = E.latency(mx.array([0.02, 0.5, 1.0]), num_steps=5, normalize=True, linear=True)
    assert out.tolist() == [[0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]]


def test_log_code_times():
    # tau * ln(x / (x - 0.01)): x=0.02 -> ln 2 = 0.693; x=1 -> ln(1/0.99) = 0.01005
    t, below = E.latency_code(mx.array([0.02, 0.5, 1.0, 0.001]), threshold=0.01, tau=10)
    np.testing.assert_allclose(t.tolist()[:3], [10 * np.log(2), 10 * np.log(50 / 49),
                                                10 * np.log(100 / 99)], rtol=1e-5)
    # below threshold: clamped to threshold + 1e-7 -> ln(0.0100001 / 1e-7) = 11.5
    assert t.tolist()[3] == pytest.approx(10 * np.log(0.0100001 / 1e-7), rel=1e-3)
    assert below.tolist() == [False, False, False, True]


def test_clip_and_targets():
    x = mx.array([0.001, 1.0])
    # linear, tau=2: x=0.001 -> min(2*0.999, 2*0.99) = 1.98 -> step 2 unless clipped
    out = E.latency(x, num_steps=3, linear=True, tau=2)
    assert out[:, 0].tolist() == [0, 0, 1] and out[:, 1].tolist() == [1, 0, 0]
    out = E.latency(x, num_steps=3, linear=True, tau=2, clip=True, on_target=2.0,
                    off_target=0.5)
    assert out[:, 0].tolist() == [0.5, 0.5, 0.5] and out[:, 1].tolist() == [2.0, 0.5, 0.5]


def test_bypass_drops_late_spikes_and_infers_steps():
    x = mx.array([0.0, 1.0])          # linear tau=4: times 3.96, 0
    with pytest.raises(ValueError, match=r"^\[latency\] the latest spike time \(4\)"):
        E.latency(x, num_steps=3, linear=True, tau=4)
    out = E.latency(x, num_steps=3, linear=True, tau=4, bypass=True)
    assert out.tolist() == [[0, 1], [0, 0], [0, 0]]
    assert E.latency(x, linear=True, tau=4, bypass=True).shape == (5, 2)
    # 3.96 rounds to 4 = num_steps: past the last step (3), so dropped too
    out = E.latency(x, num_steps=4, linear=True, tau=4, bypass=True)
    assert out.tolist() == [[0, 1], [0, 0], [0, 0], [0, 0]]


@pytest.mark.parametrize("linear, tau", [(True, 25.0), (False, 6.0)])
def test_late_spikes_dropped_like_snntorch(linear, tau):
    x = np.random.default_rng(7).uniform(size=(5, 40)).astype(np.float32)
    kw = dict(num_steps=20, tau=tau, linear=linear, bypass=True)
    ours = np.array(E.latency(mx.array(x), **kw))
    assert ours.sum() < x.size                        # some times fall past the end
    np.testing.assert_array_equal(ours, spikegen.latency(T(x), **kw).numpy())


def test_interpolate_example():
    out = E.latency_interpolate(mx.array([0.0, 4.0]), 5, on_target=1.25, off_target=0.25)
    np.testing.assert_allclose(np.array(out), [[1.25, 0.25], [0.25, 0.5], [0.25, 0.75],
                                               [0.25, 1.0], [0.25, 1.25]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_steps=5, threshold=0.0), r"threshold must lie in \(0, 1\)"),
    (dict(num_steps=5, tau=0), "tau must be > 0"),
    (dict(num_steps=5, first_spike_time=5), r"first_spike_time \(5\) must be <="),
    (dict(), "num_steps must be given"),
])
def test_latency_errors(kwargs, match):
    with pytest.raises(ValueError, match=r"^\[latency\] " + match):
        E.latency(mx.array([0.5]), **kwargs)


def test_latency_rejects_data_outside_unit_interval():
    with pytest.raises(ValueError, match=r"^\[latency\] data must lie in \[0, 1\]"):
        E.latency(mx.array([1.5]), num_steps=3)


# --- against snnTorch on random data

OPTIONS = list(itertools.product(
    [False, True],            # linear
    [False, True],            # normalize
    [False, True],            # clip
    [0, 2],                   # first_spike_time
    [(1.0, 0.0), (1.5, 0.2)],  # on_target, off_target
))


@pytest.mark.parametrize("linear, normalize, clip, fst, targets", OPTIONS,
                         ids=[f"lin{int(a)}-norm{int(b)}-clip{int(c)}-fst{d}-tg{e[0]}"
                              for a, b, c, d, e in OPTIONS])
def test_latency_matches_snntorch(linear, normalize, clip, fst, targets):
    rng = np.random.default_rng(hash((linear, normalize, clip, fst)) % 2**32)
    x = rng.uniform(size=(6, 33)).astype(np.float32)
    x[0, :5] = [0.0, 0.005, 0.01, 1.0, 0.5]          # below, at and above the threshold
    kw = dict(num_steps=20, threshold=0.01, tau=3 if linear else 4, first_spike_time=fst,
              on_target=targets[0], off_target=targets[1], clip=clip, normalize=normalize,
              linear=linear, bypass=True)
    ours = np.array(E.latency(mx.array(x), **kw))
    theirs = spikegen.latency(T(x), **kw).numpy()
    np.testing.assert_array_equal(ours, theirs)
    t_ours, _ = E.latency_code(mx.array(x), 20, threshold=0.01, tau=kw["tau"],
                               first_spike_time=fst, normalize=normalize, linear=linear)
    t_theirs, _ = spikegen.latency_code(T(x), num_steps=20, threshold=0.01, tau=kw["tau"],
                                        first_spike_time=fst, normalize=normalize,
                                        linear=linear)
    np.testing.assert_allclose(np.array(t_ours), t_theirs.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("targets", [(1.0, 0.0), (1.25, 0.25)])
def test_interpolate_matches_snntorch(targets):
    st = np.array([[0, 3, 7.4, 12, 2.5], [1, 9, 9.6, 0, 15]], dtype=np.float32)
    ours = np.array(E.latency_interpolate(mx.array(st), 10, on_target=targets[0],
                                          off_target=targets[1]))
    theirs = spikegen.latency_interpolate(T(st), 10, on_target=targets[0],
                                          off_target=targets[1]).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # no zero time anywhere: snnTorch's step-0 row comes from the formula
    ours = np.array(E.latency_interpolate(mx.array(st + 1), 10))
    theirs = spikegen.latency_interpolate(T(st + 1), 10).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_latency_interpolate_through_latency_matches_snntorch():
    x = np.random.default_rng(3).uniform(size=(4, 9)).astype(np.float32)
    kw = dict(num_steps=12, normalize=True, linear=True, interpolate=True)
    np.testing.assert_allclose(np.array(E.latency(mx.array(x), **kw)),
                               spikegen.latency(T(x), **kw).numpy(), rtol=1e-6)


# --- delta

def test_delta_examples():
    a = mx.array([1, 2, 2.9, 3, 3.9])
    assert E.delta(a, threshold=1).tolist() == [1, 1, 0, 0, 0]
    assert E.delta(a, threshold=1, padding=True).tolist() == [0, 1, 0, 0, 0]
    b = mx.array([1, 2, 0, 2, 2.9])
    assert E.delta(b, threshold=1, off_spike=True).tolist() == [1, 1, -1, 1, 0]
    assert E.delta(b, threshold=1, padding=True, off_spike=True).tolist() == [0, 1, -1, 1, 0]


@pytest.mark.parametrize("padding, off_spike", list(itertools.product([False, True], repeat=2)))
def test_delta_matches_snntorch(padding, off_spike):
    x = np.random.default_rng(1).normal(size=(30, 4, 17)).astype(np.float32)
    ours = np.array(E.delta(mx.array(x), threshold=0.5, padding=padding, off_spike=off_spike))
    theirs = spikegen.delta(T(x), threshold=0.5, padding=padding, off_spike=off_spike).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_delta_rejects_scalar():
    with pytest.raises(ValueError, match=r"^\[delta\] data must be a sequence"):
        E.delta(mx.array(1.0))
