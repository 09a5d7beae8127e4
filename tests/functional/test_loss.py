"""Losses and accuracies against snntorch.functional on the same inputs
(values and input gradients), and hand-derived values where snnTorch has no
equivalent or a documented bug."""

import math

import mlx.core as mx
import numpy as np
import pytest

import flashsnn.functional as F

torch = pytest.importorskip("torch")
SF = pytest.importorskip("snntorch.functional")

T_, B_, C_ = 7, 5, 10


def data(seed=0, T=T_, B=B_, C=C_, p=0.3):
    rng = np.random.default_rng(seed)
    spk = (rng.uniform(size=(T, B, C)) < p).astype(np.float32)
    mem = rng.normal(size=(T, B, C)).astype(np.float32)
    y = rng.integers(0, C, size=B).astype(np.int64)
    return spk, mem, y


def both(our_fn, their_fn, x, y, y_torch=None):
    """Value and d loss / d x of ours (MLX) and theirs (torch)."""
    xm, ym = mx.array(x), mx.array(y.astype(np.int32))
    ours = our_fn(xm, ym)
    g_ours = mx.grad(lambda v: our_fn(v, ym).sum())(xm)
    xt = torch.tensor(x, requires_grad=True)
    theirs = their_fn(xt, torch.tensor(y) if y_torch is None else y_torch)
    theirs.sum().backward()
    return (np.array(ours), np.array(g_ours)), (theirs.detach().numpy(), xt.grad.numpy())


def assert_same(ours, theirs, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(ours[0], np.reshape(theirs[0], np.shape(ours[0])),
                               rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=rtol, atol=atol)


W = [0.5, 1.0, 2.0, 1.5, 0.1, 1.0, 3.0, 0.7, 1.2, 0.9]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["ce_rate_loss", "ce_count_loss", "ce_max_membrane_loss"])
def test_cross_entropy_losses_match_snntorch(name, reduction):
    spk, mem, y = data(1)
    x = mem if name == "ce_max_membrane_loss" else spk + mem * 0.1   # graded: no logit ties
    ours = getattr(F, name)(reduction=reduction)
    theirs = getattr(SF, name)(reduction=reduction)
    assert_same(*both(ours, theirs, x, y))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", ["ce_rate_loss", "ce_count_loss", "ce_max_membrane_loss"])
def test_class_weights_match_snntorch(name, reduction):
    spk, mem, y = data(2)
    x = mem if name == "ce_max_membrane_loss" else spk
    ours = getattr(F, name)(reduction=reduction, weight=mx.array(W))
    theirs = getattr(SF, name)(reduction=reduction, weight=torch.tensor(W))
    assert_same(*both(ours, theirs, x, y))


def test_population_code_matches_snntorch():
    spk, _, _ = data(3, C=20)
    y = np.array([0, 4, 2, 2, 1])
    for ours, theirs in [
        (F.ce_count_loss(population_code=True, num_classes=5),
         SF.ce_count_loss(population_code=True, num_classes=5)),
        (F.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2, population_code=True,
                          num_classes=5),
         SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2, population_code=True,
                           num_classes=5)),
    ]:
        assert_same(*both(ours, theirs, spk, y))
    assert F.accuracy_rate(mx.array(spk), mx.array(y), population_code=True, num_classes=5) \
        == pytest.approx(SF.accuracy_rate(torch.tensor(spk), torch.tensor(y),
                                          population_code=True, num_classes=5))


@pytest.mark.parametrize("rates", [(1, 0), (0.8, 0.2), (0.5, 0.1)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_count_loss_matches_snntorch(rates, reduction):
    spk, _, y = data(4, T=25)
    assert_same(*both(F.mse_count_loss(*rates, reduction=reduction),
                      SF.mse_count_loss(*rates, reduction=reduction), spk, y))


@pytest.mark.parametrize("targets", [(1, 0), (2.0, 0.5), (0.3, 0.3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_membrane_loss_matches_snntorch(targets, reduction):
    _, mem, y = data(5)
    kw = dict(on_target=targets[0], off_target=targets[1], reduction=reduction)
    assert_same(*both(F.mse_membrane_loss(**kw), SF.mse_membrane_loss(**kw), mem, y))


def test_mse_membrane_time_varying_targets():
    # snnTorch 1.0 cannot run this mode (its targets_convert fails on [T, B]
    # labels), so compare with the definition: per-step MSE, mean over T.
    _, mem, _ = data(6)
    yt = np.random.default_rng(6).integers(0, C_, size=(T_, B_))
    ours = F.mse_membrane_loss(time_var_targets=True, on_target=2.0, off_target=0.5)(
        mx.array(mem), mx.array(yt)).item()
    tgt = np.where(yt[..., None] == np.arange(C_), 2.0, 0.5)
    assert ours == pytest.approx(np.mean([((mem[t] - tgt[t]) ** 2).mean() for t in range(T_)]),
                                 rel=1e-5)


def test_negative_off_target_is_used_as_given():
    # snnTorch 1.0 clamps one_hot * on_target at off_target, so a negative
    # off_target becomes 0 for the other classes; here it is -1 as asked.
    mem = np.zeros((1, 1, 3), np.float32)
    y = np.array([0])
    ours = F.mse_membrane_loss(on_target=1, off_target=-1)(mx.array(mem), mx.array(y)).item()
    assert ours == pytest.approx((1 + 1 + 1) / 3)
    theirs = SF.mse_membrane_loss(on_target=1, off_target=-1)(torch.tensor(mem),
                                                              torch.tensor(y)).item()
    assert theirs == pytest.approx(1 / 3)                    # the documented snnTorch bug


# on_target < off_target: snnTorch 1.0 clamps the off target otherwise (see
# test_mse_temporal_default_targets); negative times are covered with
# target_is_time below.
@pytest.mark.parametrize("kw", [dict(on_target=2, off_target=10),
                                dict(on_target=2, off_target=5, tolerance=2)],
                         ids=["labels", "tolerance"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_mse_temporal_loss_matches_snntorch(kw, reduction):
    spk, _, y = data(7, T=12, p=0.15)
    assert_same(*both(F.mse_temporal_loss(reduction=reduction, **kw),
                      SF.mse_temporal_loss(reduction=reduction, **kw), spk, y))


def test_mse_temporal_loss_target_times_match_snntorch():
    spk, _, _ = data(8, T=12, p=0.15)
    times = np.random.default_rng(8).integers(-3, 12, size=(B_, C_)).astype(np.float32)
    ours = F.mse_temporal_loss(target_is_time=True)
    theirs = SF.mse_temporal_loss(target_is_time=True)
    assert_same(*both(lambda s, _: ours(s, mx.array(times)),
                      lambda s, _: theirs(s, torch.tensor(times)), spk, np.zeros(B_, int)))


def test_mse_temporal_default_targets():
    # one neuron fires at step 0 (the labelled class 0), one never (T - 1)
    spk = mx.array([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]])       # [T=3, B=1, C=2]
    assert F.mse_temporal_loss()(spk, mx.array([0])).item() == 0.0
    # snnTorch 1.0 sends every neuron to step 0: ((2/3)^2) / 2 for the silent one
    theirs = SF.mse_temporal_loss()(torch.tensor(np.array(spk)), torch.tensor([0])).item()
    assert theirs == pytest.approx((2 / 3) ** 2 / 2)


@pytest.mark.parametrize("inverse", ["negate", "reciprocal"])
@pytest.mark.parametrize("weight", [None, W], ids=["unweighted", "weighted"])
def test_ce_temporal_loss_matches_snntorch(inverse, weight):
    spk, _, y = data(9, T=12, p=0.15)
    ours = F.ce_temporal_loss(inverse=inverse,
                              weight=None if weight is None else mx.array(weight))
    theirs = SF.ce_temporal_loss(inverse=inverse,
                                 weight=None if weight is None else torch.tensor(weight))
    assert_same(*both(ours, theirs, spk, y))


def test_accuracies_match_snntorch():
    for seed in range(3):
        spk, _, y = data(10 + seed, T=25, C=4, p=0.2)
        st, yt = torch.tensor(spk), torch.tensor(y)
        assert F.accuracy_rate(mx.array(spk), mx.array(y)) == \
            pytest.approx(SF.accuracy_rate(st, yt))
        assert F.accuracy_temporal(mx.array(spk), mx.array(y)) == \
            pytest.approx(SF.accuracy_temporal(st, yt))


# --- plain functions (hand-derived, and their snnTorch equivalents)

def test_spike_count_ce_hand_values():
    spk = mx.array([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])          # counts 2, 1, 0
    y = mx.array([1])
    z = math.log(math.exp(2) + math.exp(1) + 1)
    assert F.spike_count_ce(spk, y).item() == pytest.approx(z - 1, rel=1e-6)
    zr = math.log(math.exp(1) + math.exp(0.5) + 1)                   # rates 1, 0.5, 0
    assert F.spike_count_ce(spk, y, rate=True).item() == pytest.approx(zr - 0.5, rel=1e-6)


def test_plain_functions_equal_the_snntorch_objects():
    spk, mem, y = data(11, T=20)
    s, m, ym = mx.array(spk), mx.array(mem), mx.array(y)
    assert F.spike_count_ce(s, ym).item() == pytest.approx(F.ce_count_loss()(s, ym).item())
    assert F.membrane_ce(m, ym, over_time="max").item() == \
        pytest.approx(F.ce_max_membrane_loss()(m, ym).item())
    assert F.spike_count_mse(s, ym, correct_rate=0.75, incorrect_rate=0.25).item() == \
        pytest.approx(F.mse_count_loss(0.75, 0.25)(s, ym).item())   # 15 and 5: integral
    last = torch.nn.functional.cross_entropy(torch.tensor(mem[-1]), torch.tensor(y)).item()
    assert F.membrane_ce(m, ym).item() == pytest.approx(last, rel=1e-6)
    assert F.membrane_ce(m[-1], ym).item() == pytest.approx(last, rel=1e-6)
    mean = torch.nn.functional.cross_entropy(torch.tensor(mem.mean(0)), torch.tensor(y)).item()
    assert F.membrane_ce(m, ym, over_time="mean").item() == pytest.approx(mean, rel=1e-6)


def test_membrane_ce_gradient_is_softmax_minus_onehot():
    mem = mx.array([[1.0, 2.0, 0.5]])
    g = mx.grad(lambda v: F.membrane_ce(v, mx.array([2])))(mem)
    p = np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum()
    np.testing.assert_allclose(np.array(g)[0], p - np.array([0, 0, 1]), rtol=1e-5)


def test_accuracy_membrane_and_ties():
    mem = mx.array([[[0.0, 5.0]], [[1.0, 0.0]]])                     # [T=2, B=1, C=2]
    y = mx.array([0])
    assert F.accuracy_membrane(mem, y) == 1.0                          # last: [1, 0]
    assert F.accuracy_membrane(mem, y, over_time="max") == 0.0        # max: [1, 5]
    assert F.accuracy_rate(mx.zeros((3, 1, 4)), y) == 1.0              # all tie -> class 0


def test_first_spike_time_gradient_is_sign_estimator():
    spk = mx.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    g = mx.grad(lambda s: (F.first_spike_time(s) * mx.array([2.0, 3.0])).sum())(spk)
    assert g.tolist() == [[0, 0], [-2, 0], [0, -3]]                   # never fired: at T - 1


@pytest.mark.parametrize("call, match", [
    (lambda: F.ce_rate_loss(reduction="avg"),
     r"^\[ce_rate_loss\] unknown reduction 'avg'; valid: 'mean', 'sum', 'none'"),
    (lambda: F.ce_rate_loss(population_code=True, num_classes=2),
     r"^\[ce_rate_loss\] population_code=True is not supported"),
    (lambda: F.ce_count_loss()(mx.zeros((4, 3)), mx.array([0, 1, 2, 0])),
     r"^\[ce_count_loss\] spk_out must be \[T, B, C\]"),
    (lambda: F.ce_count_loss()(mx.zeros((2, 3, 4)), mx.array([0, 1])),
     r"^\[ce_count_loss\] targets must be class indices \[B\] with B = 3"),
    (lambda: F.ce_count_loss()(mx.zeros((2, 3, 4)), mx.array([0.0, 1.0, 2.0])),
     r"^\[ce_count_loss\] targets must be integer"),
    (lambda: F.ce_count_loss(population_code=True, num_classes=3)(
        mx.zeros((2, 1, 4)), mx.array([0])), r"^\[ce_count_loss\] the number of outputs \(4\)"),
    (lambda: F.ce_count_loss(weight=mx.ones(3))(mx.zeros((2, 1, 4)), mx.array([0])),
     r"^\[ce_count_loss\] weight must have one entry per class"),
    (lambda: F.membrane_ce(mx.zeros((2, 3)), mx.array([0, 1]), over_time="first"),
     r"^\[membrane_ce\] unknown over_time 'first'; valid: 'last', 'max', 'mean'"),
    (lambda: F.mse_count_loss(correct_rate=1.5), r"^\[mse_count_loss\] correct_rate"),
    (lambda: F.ce_temporal_loss(inverse="flip"), r"^\[ce_temporal_loss\] unknown inverse"),
    (lambda: F.mse_temporal_loss(multi_spike=True), r"^\[mse_temporal_loss\] multi_spike"),
])
def test_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
