"""The sigmoid surrogate's gradient far from the threshold: the reference
(the oracle of the kernels' tests) and the fused kernel both give the
float64 value ``k e^{-k|v|} / (1 + e^{-k|v|})^2``, where the reference used to
round to 0 for k|v| above about 17."""

import math

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")


def exact(k, v):
    e = math.exp(-k * abs(v))
    return k * e / (1 + e) ** 2


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_sigmoid_surrogate_tails_are_exact(backend):
    k = 25.0
    vs = [-3.0, -1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 3.0]     # k|v| up to 75
    x = mx.array([[1.0 + v for v in vs]])                      # threshold 1, T = 1
    grad = mx.grad(lambda x: fs.ops.leaky(x, beta=0.0, spike_grad=fs.surrogate.sigmoid(k),
                                          backend=backend)[0].sum())(x)
    got = np.array(grad)[0].astype(np.float64)
    want = np.array([exact(k, v) for v in vs])
    assert got[0] > 0 and got[-1] > 0                           # 2.7e-31, not 0
    np.testing.assert_allclose(got, want, rtol=2e-5)


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_inclusive_firing_at_an_infinite_threshold(backend):
    """Same-step firing is ``membrane >= threshold`` on both paths, also where
    both are infinite (inf - inf is NaN, and NaN >= 0 used to keep the
    reference silent); the strict ``>`` of snnTorch's convention fires on
    neither."""
    inf = float("inf")
    x = mx.array([[inf, 1.0], [-inf, inf]])
    spk, _ = fs.ops.leaky(x, beta=0.5, threshold=inf, reset_mechanism="none",
                          convention="same_step", backend=backend)
    assert spk.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    spk, _ = fs.ops.leaky(x, beta=0.5, threshold=inf, reset_mechanism="none", backend=backend)
    assert spk.tolist() == [[0.0, 0.0], [0.0, 0.0]]
