"""Surrogate gradients, with snnTorch's names, formulas and default slopes.

A surrogate is data: a name, a kernel id and up to two parameters. The fused
kernels evaluate its derivative in C++ (``src/step/common.h``, one ``switch``);
the pure-MLX reference path calls the object itself, which fires a Heaviside
spike in the forward pass and takes its gradient from an antiderivative
through the straight-through trick::

    spike = stop_gradient(H(v)) + (F(v) - stop_gradient(F(v)))      # F' = surrogate

The value is exactly H(v); the gradient is exactly F'(v). The two paths share
no code, so each checks the other.

>>> import flashsnn as fs
>>> fs.surrogate.atan()                 # snnTorch's default, alpha=2
Surrogate('atan', alpha=2.0)
>>> fs.surrogate.fast_sigmoid(slope=10)
Surrogate('fast_sigmoid', slope=10.0)

A plain callable ``f(v) -> spikes`` is accepted wherever a surrogate is
(``spike_grad=f``); it runs on the reference path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx

# Kernel ids, in the order of fs::SurrogateId in src/step/common.h.
# tests/ops/test_surrogate.py checks this table against the compiled one.
KERNEL_IDS = {
    "atan": 0,
    "fast_sigmoid": 1,
    "sigmoid": 2,
    "triangular": 3,
    "straight_through": 4,
    "heaviside": 5,
    "spike_rate_escape": 6,
    "sparse_fast_sigmoid": 7,
    "leaky_spike_operator": 8,
}


def _sg(a):
    return mx.stop_gradient(a)


# Antiderivatives F(v, spike, a, b) with F' = the surrogate; written so that no
# branch of an mx.where can overflow (a NaN in the unused branch of a where
# still poisons its gradient).
def _f_atan(v, s, a, b):
    return mx.arctan((math.pi / 2 * a) * v) * (1.0 / math.pi)


def _f_fast_sigmoid(v, s, a, b):
    # F' = 1 / (1 + a|v|)^2. With sign = +-1 held constant, F = -sign/(a (1 +
    # a sign v)) has that derivative as a plain product; the textbook
    # v / (1 + a|v|) differentiates into 1/d - a|v|/d^2, which cancels to a
    # few correct digits for large |v|.
    if a == 0:
        return v
    sign = _sg(mx.where(v >= 0, 1.0, -1.0))
    return -sign / (a * (1.0 + a * sign * v))


def _f_sigmoid(v, s, a, b):
    # F' = a s(av) (1 - s(av)). Differentiating s(av) itself rounds 1 - s to 0
    # for a|v| > ~17 (float32), where the value is a e^-a|v| (3.5e-10 at a|v|
    # = 25, what the kernels give). With sign = +-1 held constant, -sign s(-sign
    # a v) has the same derivative and its s stays small on both sides.
    sign = _sg(mx.where(v >= 0, 1.0, -1.0))
    return -sign * mx.sigmoid(-sign * a * v)


def _f_triangular(v, s, a, b):
    return a * mx.where(v < 0, v, -v)


def _f_straight_through(v, s, a, b):
    return v


def _f_heaviside(v, s, a, b):
    return _sg(s) * v


def _f_spike_rate_escape(v, s, a, b):
    # F' = b * exp(-a |v - 1|). With sign = +-1 held constant, F =
    # sign * (b/a) * (1 - exp(-a * sign * (v - 1))) has that derivative on
    # both sides of v = 1 and never exponentiates a positive number.
    if a == 0:
        return b * v
    sign = _sg(mx.where(v >= 1, 1.0, -1.0))
    return sign * (b / a) * (1.0 - mx.exp(-a * sign * (v - 1.0)))


def _f_sparse_fast_sigmoid(v, s, a, b):
    return mx.where(v > b, _f_fast_sigmoid(v, s, a, b), 0.0)


def _f_leaky_spike_operator(v, s, a, b):
    s = _sg(s)
    return v * (s + (1.0 - s) * a)


def _nan_probe(v):
    """Exactly 0, with a derivative that is NaN where ``v`` is NaN and 0
    elsewhere: the surrogate's slope at a NaN ``v`` is NaN on both paths
    (docs/design.md, "Non-finite values"), but the straight-through term
    above cannot carry it (it is masked by the where; unmasked, NaN - NaN
    would make the spike NaN). ``(|v| + 1)^0`` is 1 for every v, NaN
    included (IEEE pow), and its derivative ``0 * (|v| + 1)^-1 * sign(v)``
    is 0 for every number (``|v| + 1 >= 1``; 0 at +-inf) and NaN for NaN."""
    return mx.power(mx.abs(v) + 1.0, 0.0) - 1.0


_ANTIDERIVATIVES = {
    "atan": _f_atan,
    "fast_sigmoid": _f_fast_sigmoid,
    "sigmoid": _f_sigmoid,
    "triangular": _f_triangular,
    "straight_through": _f_straight_through,
    "heaviside": _f_heaviside,
    "spike_rate_escape": _f_spike_rate_escape,
    "sparse_fast_sigmoid": _f_sparse_fast_sigmoid,
    "leaky_spike_operator": _f_leaky_spike_operator,
}


@dataclass(frozen=True)
class Surrogate:
    """A surrogate gradient: ``name`` and parameters ``a``, ``b``.

    ``kernel_id`` is the id the fused kernels know it by, or None for a
    surrogate that only the reference path can run (``SSO``, ``custom``).
    """

    name: str
    a: float = 0.0
    b: float = 0.0
    params: dict = field(default_factory=dict, compare=False)
    _reference_fn: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def kernel_id(self) -> int | None:
        return KERNEL_IDS.get(self.name) if self._reference_fn is None else None

    def spike(self, v: mx.array, inclusive: bool = False, fired=None) -> mx.array:
        """Spikes for ``v = membrane - threshold`` (``v > 0``, or ``v >= 0``
        when ``inclusive``; or ``fired`` where the caller compared the two
        itself) with this surrogate's gradient."""
        h = fired if fired is not None else ((v >= 0) if inclusive else (v > 0))
        h = h.astype(v.dtype)
        if self._reference_fn is not None:
            return self._reference_fn(v, h)
        f = _ANTIDERIVATIVES[self.name](v, h, self.a, self.b)
        # f - stop_gradient(f) is exactly 0 where f is finite; the where keeps
        # an infinite membrane from turning the spike into inf - inf = NaN, and
        # gives the slope 0 at v = +-inf (F' there is 0 or, for the linear F
        # of triangular, straight_through, heaviside and LSO, is zeroed).
        zero = mx.where(mx.isfinite(f), f - _sg(f), 0.0)
        return _sg(h) + zero.astype(v.dtype) + _nan_probe(v)

    def __call__(self, v: mx.array) -> mx.array:
        return self.spike(v)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Surrogate({self.name!r}{', ' + args if args else ''})"


# The range each surrogate parameter must lie in: slopes and widths are
# positive (a negative one flips the gradient's sign, zero kills it),
# LSO's leak and SSO's variance may be 0, offsets any finite number.
_POSITIVE, _NONNEGATIVE, _FINITE = "a positive finite number", "a finite number >= 0", \
    "a finite number"


def _number(surrogate: str, name: str, v, rule: str = _POSITIVE) -> float:
    """``v`` as a float, checked against ``rule``; errors tagged with the
    surrogate's name."""
    f = None
    if not isinstance(v, (bool, str)) and hasattr(v, "__float__"):
        try:
            f = float(v)
        except (TypeError, ValueError):
            pass
    if f is None:
        raise TypeError(f"[{surrogate}] {name} must be {rule}; got {type(v).__name__}")
    ok = math.isfinite(f) and (f > 0 if rule == _POSITIVE else f >= 0 if rule == _NONNEGATIVE
                               else True)
    if not ok:
        raise ValueError(f"[{surrogate}] {name} must be {rule}; got {v!r}")
    return f


def _make(name, a=0.0, b=0.0, **params):
    return Surrogate(name, float(a), float(b), {k: float(v) for k, v in params.items()})


def atan(alpha: float = 2.0) -> Surrogate:
    """Arctangent: ``(alpha/2) / (1 + (pi/2 * alpha * v)^2)``. snnTorch's default."""
    alpha = _number("atan", "alpha", alpha)
    return _make("atan", alpha, alpha=alpha)


def fast_sigmoid(slope: float = 25) -> Surrogate:
    """Fast sigmoid: ``1 / (slope * |v| + 1)^2``."""
    slope = _number("fast_sigmoid", "slope", slope)
    return _make("fast_sigmoid", slope, slope=slope)


def sigmoid(slope: float = 25) -> Surrogate:
    """Sigmoid: ``slope * e^(-slope v) / (e^(-slope v) + 1)^2``."""
    slope = _number("sigmoid", "slope", slope)
    return _make("sigmoid", slope, slope=slope)


def triangular(threshold: float = 1) -> Surrogate:
    """snnTorch's triangular: ``threshold`` for ``v < 0``, ``-threshold`` for ``v >= 0``."""
    threshold = _number("triangular", "threshold", threshold)
    return _make("triangular", threshold, threshold=threshold)


def straight_through_estimator() -> Surrogate:
    """Straight-through: gradient 1 everywhere."""
    return _make("straight_through")


straight_through = straight_through_estimator


def heaviside() -> Surrogate:
    """Heaviside: the gradient is the spike itself (1 where it fired, else 0)."""
    return _make("heaviside")


def spike_rate_escape(beta: float = 1, slope: float = 25) -> Surrogate:
    """Spike-rate escape: ``slope * exp(-beta * |v - 1|)``."""
    beta = _number("spike_rate_escape", "beta", beta)
    slope = _number("spike_rate_escape", "slope", slope)
    return _make("spike_rate_escape", beta, slope, beta=beta, slope=slope)


def SFS(slope: float = 25, B: float = 1) -> Surrogate:  # noqa: N802 (snnTorch's name)
    """Sparse fast sigmoid: ``1 / (slope * |v| + 1)^2`` where ``v > B``, else 0."""
    slope = _number("SFS", "slope", slope)
    B = _number("SFS", "B", B, _FINITE)
    return _make("sparse_fast_sigmoid", slope, B, slope=slope, B=B)


sparse_fast_sigmoid = SFS


def LSO(slope: float = 0.1) -> Surrogate:  # noqa: N802 (snnTorch's name)
    """Leaky spike operator: gradient 1 where the neuron spiked, ``slope`` elsewhere.

    (snnTorch 1.0's ``LSO`` factory calls the stochastic operator by mistake
    and fails; this is the ``LeakySpikeOperator`` it means.)
    """
    slope = _number("LSO", "slope", slope, _NONNEGATIVE)
    return _make("leaky_spike_operator", slope, slope=slope)


leaky_spike_operator = LSO


def SSO(mean: float = 0, variance: float = 0.2, key: mx.array | None = None) -> Surrogate:  # noqa: N802
    """Stochastic spike operator: gradient 1 where spiking, else
    ``(U(0,1) - 0.5 + mean) * variance`` drawn afresh. Random, so it runs on
    the reference path only; pass ``key`` for reproducible draws."""
    mean = _number("SSO", "mean", mean, _FINITE)
    variance = _number("SSO", "variance", variance, _NONNEGATIVE)

    def fn(v, h):
        noise = mx.random.uniform(shape=v.shape, key=key) if key is not None else \
            mx.random.uniform(shape=v.shape)
        noise = (noise - 0.5 + mean) * variance
        hs = _sg(h)
        f = v * (hs + (1.0 - hs) * _sg(noise.astype(v.dtype)))
        return hs + (f - _sg(f))

    return Surrogate("SSO", float(mean), float(variance),
                     {"mean": float(mean), "variance": float(variance)}, fn)


def custom_surrogate(custom_surrogate_function: Callable) -> Surrogate:
    """snnTorch's ``custom_surrogate``: ``fn(input_, grad_input, out) -> grad``.
    Runs on the reference path."""

    @mx.custom_function
    def spike(v):
        return (v > 0).astype(v.dtype)

    @spike.vjp
    def spike_vjp(primals, cotangent, output):
        return custom_surrogate_function(primals, cotangent, output)

    # The user's function sees snnTorch's strict firing (v > 0) whatever the
    # convention, since it defines the whole spike operator.
    return Surrogate("custom", 0.0, 0.0, {}, lambda v, h: spike(v))


def fire(spike_grad, v: mx.array, inclusive: bool = False, fired=None) -> mx.array:
    """Spikes for ``v = membrane - threshold`` on the reference path.

    A :class:`Surrogate` fires with ``v > 0`` (``v >= 0`` when ``inclusive``),
    or where ``fired`` says, and carries its straight-through gradient; a
    plain callable ``f(v)`` decides its own firing rule (snnTorch's spike
    functions all use ``v > 0``). ``fired`` is ``membrane >= threshold``
    computed by an inclusive caller: with both infinite, ``v`` is inf - inf =
    NaN and ``v >= 0`` false, where the kernels (and IEEE's ``inf >= inf``)
    fire. (For the strict ``>`` both sides agree: nothing fires.)

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.surrogate.fire(fs.surrogate.atan(), mx.array([-0.5, 0.0, 0.5])).tolist()
    [0.0, 0.0, 1.0]
    """
    if isinstance(spike_grad, Surrogate):
        return spike_grad.spike(v, inclusive=inclusive, fired=fired)
    out = spike_grad(v)
    # A Python-side check of what the user's callable returned (no array op):
    # MLX's own error further on ("stop_gradient(): incompatible function
    # arguments") would not say whose value it was.
    if not isinstance(out, mx.array) or tuple(out.shape) != tuple(v.shape):
        got = (f"an array of shape {tuple(out.shape)}" if isinstance(out, mx.array)
               else type(out).__name__)
        raise TypeError(f"[spike_grad] the callable {getattr(spike_grad, '__name__', spike_grad)!r} "
                        f"returned {got}; a spike_grad callable must map v = mem - threshold "
                        f"(an mlx.core.array of shape {tuple(v.shape)}) to an mlx.core.array "
                        "of spikes of the same shape")
    return out


def resolve(spike_grad, op: str) -> Surrogate | Callable:
    """Check a ``spike_grad`` argument: a Surrogate, or a callable ``f(v)``."""
    if spike_grad is None:
        return atan()
    if isinstance(spike_grad, Surrogate):
        return spike_grad
    if isinstance(spike_grad, str):
        factories = {n: f for n, f in _FACTORIES.items()}
        if spike_grad not in factories:
            raise ValueError(f"[{op}] unknown surrogate {spike_grad!r}; valid names: "
                             f"{', '.join(sorted(factories))}")
        return factories[spike_grad]()
    if callable(spike_grad):
        return spike_grad
    raise TypeError(f"[{op}] spike_grad must be a flashsnn.surrogate.Surrogate, a surrogate "
                    f"name or a callable f(v) -> spikes; got {type(spike_grad).__name__}")


_FACTORIES = {
    "atan": atan,
    "fast_sigmoid": fast_sigmoid,
    "sigmoid": sigmoid,
    "triangular": triangular,
    "straight_through": straight_through_estimator,
    "straight_through_estimator": straight_through_estimator,
    "heaviside": heaviside,
    "spike_rate_escape": spike_rate_escape,
    "SFS": SFS,
    "sparse_fast_sigmoid": SFS,
    "LSO": LSO,
    "leaky_spike_operator": LSO,
    "SSO": SSO,
}
