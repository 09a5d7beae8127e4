"""Binning events into frames, the isolated-event filter, and the datasets
read from folders the tests write, against hand-computed cases."""

import numpy as np
import pytest

import flashsnn.data.events as ev
import flashsnn.data.frames as fr

E = ev.make_events


# --------------------------------------------------------------------------- to_frames

def frame_dict(f):
    return {tuple(int(i) for i in k): float(f[tuple(k)]) for k in np.argwhere(f)}


def test_equal_bins_by_hand():
    # span 100..110 µs: D = 11, T = 3 -> bin = (t - 100) * 3 // 11
    e = E([100, 103, 104, 109, 110, 110], [0, 2, 1, 0, 2, 2], [1, 0, 1, 0, 1, 1],
          [0, 1, 1, 0, 1, 1])
    f = fr.to_frames(e, (2, 3, 2), steps=3)
    assert f.shape == (3, 2, 3, 2) and f.dtype == np.float32
    assert frame_dict(f) == {(0, 1, 0, 0): 1.0, (0, 0, 2, 1): 1.0,     # t 100, 103
                             (1, 1, 1, 1): 1.0,                         # t 104
                             (2, 0, 0, 0): 1.0, (2, 1, 2, 1): 2.0}      # t 109, 110 x2
    assert frame_dict(fr.to_frames(e, (2, 3, 2), 3, binary=True))[(2, 1, 2, 1)] == 1.0


def test_fixed_bins_drop_events_after_t_bins():
    e = E([100, 103, 104, 109, 110], [0, 2, 1, 0, 2], [1, 0, 1, 0, 1], [0, 1, 1, 0, 1])
    f = fr.to_frames(e, (2, 3, 2), steps=2, bin_us=4)     # bins [100,104), [104,108)
    assert frame_dict(f) == {(0, 1, 0, 0): 1.0, (0, 0, 2, 1): 1.0, (1, 1, 1, 1): 1.0}
    g = fr.to_frames(e, (2, 3, 2), steps=5, bin_us=10)    # short sample: trailing frames empty
    assert frame_dict(g) == {(0, 1, 0, 0): 1.0, (0, 0, 2, 1): 1.0, (0, 1, 1, 1): 1.0,
                             (0, 0, 0, 0): 1.0, (1, 1, 2, 1): 1.0}


def test_single_timestamp_and_empty_and_unsorted():
    one = E([7, 7], [1, 1], 0, 1)
    assert frame_dict(fr.to_frames(one, (1, 2, 2), steps=4)) == {(0, 0, 1, 1): 2.0}
    assert not fr.to_frames(E([], []), (3, 4, 2), steps=5).any()
    shuffled = E([110, 100, 104], [0, 1, 2], 0, 0)        # the bins follow t, not the order
    assert frame_dict(fr.to_frames(shuffled, (1, 3, 1), steps=3)) == {
        (2, 0, 0, 0): 1.0, (0, 0, 1, 0): 1.0, (1, 0, 2, 0): 1.0}


def test_audio_frames_put_the_channel_along_w():
    e = E([0, 10, 20], [699, 0, 699])
    f = fr.to_frames(e, (1, 700, 1), steps=2)
    assert f.shape == (2, 1, 700, 1) and frame_dict(f) == {(0, 0, 699, 0): 1.0,
                                                          (0, 0, 0, 0): 1.0, (1, 0, 699, 0): 1.0}


@pytest.mark.parametrize("kwargs,message", [
    (dict(sensor_size=(2, 2, 2)), r"event x spans 0\.\.3 but sensor_size \(2, 2, 2\) allows "
                                  r"0\.\.1 \(W = 2\)"),
    (dict(sensor_size=(4, 4, 1)), r"event p spans 0\.\.1 but sensor_size \(4, 4, 1\) allows "
                                  r"0\.\.0 \(P = 1\)"),
    (dict(sensor_size=(4, 4)), r"sensor_size must be \(H, W, P\) positive ints"),
    (dict(sensor_size=(4, 4, 2), steps=0), r"steps must be a positive int; got 0"),
    (dict(sensor_size=(4, 4, 2), bin_us=2.5), r"bin_us must be a positive int or None; got 2\.5"),
])
def test_to_frames_refuses(kwargs, message):
    e = E([0, 1], [0, 3], [0, 1], [0, 1])
    kwargs = {"steps": 2, **kwargs}
    with pytest.raises(ValueError, match=r"^\[to_frames\] " + message):
        fr.to_frames(e, **kwargs)
    with pytest.raises(ValueError, match=r"events must be a 1-D structured array with fields "
                                         r"t, x, y, p"):
        fr.to_frames(np.zeros((2, 4)), (4, 4, 2), 2)


# --------------------------------------------------------------------------- denoise

def test_denoise_by_hand():
    S = (8, 10, 2)
    rows = [  # t, x, y, p, kept with 4 neighbours, kept with 8
        (0, 5, 5, 0, False, False),       # nothing before it
        (100, 6, 5, 1, True, True),       # (5,5) fired 100 µs ago; other polarity counts
        (100, 5, 5, 0, True, True),       # (6,5) fired at the same time, listed first
        (200, 7, 6, 1, False, True),      # only a diagonal neighbour (6,5)
        (300, 1, 1, 0, False, False),     # same time as the next, listed first
        (300, 2, 1, 0, True, True),
        (400, 9, 2, 0, False, False),     # last pixel of row 2 ...
        (450, 0, 3, 0, False, False),     # ... is not a neighbour of the first of row 3
        (10_300, 2, 2, 0, False, False),  # (2,1) and diagonal (1,1): exactly 10000 µs old
        (20_000, 5, 6, 0, False, False),  # (5,5) last fired at 100: too old
        (20_050, 5, 7, 1, True, True),    # (5,6) fired 50 µs ago, though it was dropped
    ]
    e = E(*(list(c) for c in list(zip(*rows))[:4]))
    for k, col in ((4, 4), (8, 5)):
        out = fr.denoise(e, 10_000, sensor_size=S, neighbours=k)
        assert out.dtype == ev.EVENT_DTYPE
        assert out["t"].tolist() == [r[0] for r in rows if r[col]], k
        assert out["x"].tolist() == [r[1] for r in rows if r[col]], k
    # one µs more of memory keeps the exactly-10000-old case
    assert 10_300 in fr.denoise(e, 10_001, sensor_size=S)["t"].tolist()


def brute_force_denoise(e, filter_us, w, h, neighbours):
    """The docstring's definition, one event at a time."""
    last = {}
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if neighbours == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    keep = []
    for t, x, y in zip(e["t"].tolist(), e["x"].tolist(), e["y"].tolist()):
        keep.append(any(0 <= x + dx < w and 0 <= y + dy < h and (x + dx, y + dy) in last
                        and t - last[(x + dx, y + dy)] < filter_us for dx, dy in steps))
        last[(x, y)] = t
    return e[np.array(keep, dtype=bool)]


@pytest.mark.parametrize("neighbours", [4, 8])
@pytest.mark.parametrize("seed", range(3))
def test_denoise_matches_its_definition(seed, neighbours):
    rng = np.random.default_rng(seed)
    n = 3000
    t = np.sort(rng.integers(0, 200_000, n))
    t[rng.random(n) < 0.1] = t[0]                       # ties, and times out of order
    e = E(t, rng.integers(0, 12, n), rng.integers(0, 9, n), rng.integers(0, 2, n))
    want = brute_force_denoise(e, 5_000, 12, 9, neighbours)
    got = fr.denoise(e, 5_000, sensor_size=(9, 12, 2), neighbours=neighbours)
    assert np.array_equal(got, want) and 0 < len(got) < n


def test_denoise_refuses():
    e = E([0], [0], [0], [0])
    with pytest.raises(ValueError, match=r"^\[denoise\] neighbours must be 4 or 8; got 6"):
        fr.denoise(e, sensor_size=(2, 2, 2), neighbours=6)
    with pytest.raises(ValueError, match=r"^\[denoise\] filter_us must be a positive int"):
        fr.denoise(e, 0, sensor_size=(2, 2, 2))
    with pytest.raises(ValueError, match=r"^\[denoise\] event y spans 1\.\.1 but sensor_size "
                                         r"\(1, 2, 2\) allows 0\.\.0 \(H = 1\)"):
        fr.denoise(E([0], [0], [1], [0]), sensor_size=(1, 2, 2))
    assert len(fr.denoise(E([], []), sensor_size=(2, 2, 2))) == 0
