"""The multi-channel (EEG) encoder: hand-derived cases for each method,
binning, statistics and errors."""

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

E = fs.encoding


def test_delta_events_at_their_samples():
    sig = mx.array([[0.0, 0.0, 1.0, 1.0, 0.0, 0.3],
                    [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])          # [C=2, L=6]
    out = E.eeg(sig, "delta", threshold=0.5, normalize=False)
    assert out.shape == (6, 2)
    assert out[:, 0].tolist() == [0, 0, 1, 0, -1, 0]          # +1 at the rise, -1 at the fall
    assert out[:, 1].tolist() == [0] * 6                      # a DC offset does not fire
    on_only = E.eeg(sig, "delta", threshold=0.5, normalize=False, off_spike=False)
    assert on_only[:, 0].tolist() == [0, 0, 1, 0, 0, 0]


def test_threshold_crossing_counts_crossings_not_levels():
    s = mx.array([[0.0, 1.0, 1.5, 0.2, -1.2, -2.0, 0.0, 1.1]])
    out = E.eeg(s, "threshold_crossing", threshold=1.0, normalize=False)
    # up through +1 at l=1 (0 -> 1.0, reaching the level counts), not again at
    # l=2 (already above); down through -1 at l=4; up again at l=7
    assert out[:, 0].tolist() == [0, 1, 0, 0, -1, 0, 0, 1]


def test_normalize_makes_threshold_scale_free():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 200)).astype(np.float32)
    a = E.eeg(mx.array(x), "threshold_crossing", threshold=1.0)
    b = E.eeg(mx.array(x * 250.0 + 40.0), "threshold_crossing", threshold=1.0)   # uV, offset
    assert mx.array_equal(a, b) and a.shape == (200, 2, 3)
    assert 0 < mx.abs(a).sum().item()


def test_binning_merges_samples():
    s = mx.array([[[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]])    # [B=1, C=1, L=9]
    out = E.eeg(s, "delta", num_steps=3, threshold=0.5, normalize=False)
    # bins [0,1,2] [3,4,5] [6,7,8]: rise at 2; fall at 4; rise at 6 and fall at 7 -> 0
    assert out.shape == (3, 1, 1)
    assert out[:, 0, 0].tolist() == [1, -1, 0]


def test_rate_follows_normalized_amplitude():
    # one channel ramps 0..1 (min-max normalized: probability = ramp), one is constant
    L = 4
    ramp = np.linspace(0.0, 1.0, L, dtype=np.float32) * 30 - 10
    sig = np.stack([ramp, np.full(L, 3.0, np.float32)])               # [C=2, L]
    sig = np.broadcast_to(sig, (4000, 2, L))                          # [B, C, L]
    out = E.eeg(mx.array(sig), "rate", key=mx.random.key(0))
    assert out.shape == (L, 4000, 2)
    rates = np.array(out.mean(axis=1))                                # [L, C]
    # 4000 draws per step: std <= 0.008; tolerance 0.04 is 5 sigma
    np.testing.assert_allclose(rates[:, 0], np.linspace(0, 1, L), atol=0.04)
    assert rates[:, 1].tolist() == [0.0] * L                          # constant: never fires
    # binned: each bin's probability is the mean of its samples
    out2 = E.eeg(mx.array(sig), "rate", num_steps=2, key=mx.random.key(1))
    np.testing.assert_allclose(np.array(out2.mean(axis=1))[:, 0],
                               [np.mean([0, 1 / 3]), np.mean([2 / 3, 1])], atol=0.04)


def test_rate_reproducible_with_key():
    x = mx.random.normal((2, 4, 50), key=mx.random.key(2))
    a = E.eeg(x, "rate", key=mx.random.key(7))
    assert mx.array_equal(a, E.eeg(x, "rate", key=mx.random.key(7)))
    assert not mx.array_equal(a, E.eeg(x, "rate", key=mx.random.key(8)))


def test_encoder_object_binds_options():
    enc = E.EEGEncoder("delta", num_steps=10, threshold=0.3)
    x = mx.random.normal((2, 3, 40), key=mx.random.key(0))
    assert mx.array_equal(enc(x), E.eeg(x, "delta", num_steps=10, threshold=0.3))
    assert "delta" in repr(enc)


@pytest.mark.parametrize("args, kwargs, match", [
    ((mx.zeros((3, 5)), "fourier"), {}, (r"unknown method 'fourier'; valid: 'rate', 'delta', "
                                        r"'threshold_crossing'")),
    ((mx.zeros((5,)), "delta"), {}, r"signal must be \[\.\.\., C, L\]"),
    ((mx.zeros((3, 5)), "delta"), dict(num_steps=6), r"num_steps \(6\) must be <= "),
])
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=r"^\[eeg\] " + match):
        E.eeg(*args, **kwargs)
    if len(args) > 1 and args[1] == "fourier":
        with pytest.raises(ValueError, match=r"^\[EEGEncoder\] unknown method"):
            E.EEGEncoder("fourier")
