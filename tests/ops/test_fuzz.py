"""Property ("fuzz") test of every fused family against its pure-MLX
reference, generated from the family table (flashsnn.ops._table.FAMILIES): a
family added there is fuzzed here with no new test code.

Example i of a family comes from a NumPy generator seeded with (seed, family
id, i): the same on every run. It draws T (1..30, one in 20 up to 300, some
0), S of rank 0-3 with sizes 1..9, a reset the family has, one of its option
sets, a kernel surrogate with random valid parameters (the nine in turn: each
family meets each surrogate every 9 examples), output_mem, x in float32
(70%), float16 or bfloat16, contiguous or a view (transposed, stepped,
offset, reversed, broadcast over time or over neurons), each parameter as a
Python float, a NumPy array or an MLX array (scalar, per neuron, a suffix of
S, with leading 1s, a stepped view, a broadcast shape the op materializes),
each initial state None, a float, a NumPy array or an MLX array (scalar,
full, a suffix of S, a transposed view, 16-bit), and a loss: random
cotangents on every output, a .sum() of them all, or the spikes alone. 15%
put NaN, +inf or -inf at random places of x, of an initial state or of the
threshold (then T <= 30 and the loss reaches every output).

Fused (backend="fused") against reference (backend="reference"): outputs
bitwise, NaN for NaN (16-bit too: both step in float32 and round once); the
gradients of x and of each state and parameter given as an MLX array with
NaN, +inf and -inf in the same places (with finite inputs, only overflow in
a long run: non-finite on both paths, or past 1e30 on one) and the finite
elements within test_families.py's relative RMS (1e-5 float32, 2e-3 float16,
1e-2 bfloat16) or, failing that, each element within that tolerance of the
size of the terms it sums (scales()). A failure prints the example's
configuration in one line and the command that reruns it alone.

FLASHSNN_FUZZ_EXAMPLES=<n> runs n examples per family (default 108: 864,
21-34 s on the 2-core CI machine) and FLASHSNN_FUZZ_SEED=<s> (default 0)
another set; example i is the same whatever n is. By hand, e.g. 8000 in 3
minutes: FLASHSNN_FUZZ_EXAMPLES=1000 pytest -q -n 2 tests/ops/test_fuzz.py.
What the fuzz found is kept below as reduced tests (one bug, fixed; one
difference by design); the mutation tests at the end hand the check wrong
answers.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.ops._table import FAMILIES
from helpers import np32, rel_rms
from test_families import GRAD_TOL, initial_state, option_sets, reset_kw

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")


SEED = int(os.environ.get("FLASHSNN_FUZZ_SEED") or 0)
EXAMPLES = int(os.environ.get("FLASHSNN_FUZZ_EXAMPLES") or 108)


def _r(v: float) -> float:
    """Four significant digits, so that a configuration's line is exact."""
    return float(f"{v:.4g}")


# Every kernel surrogate (fs.surrogate.KERNEL_IDS) with random valid
# parameters; test_every_kernel_surrogate_is_drawn keeps the two in step.
SURROGATES = {
    "atan": lambda r: fs.surrogate.atan(alpha=_r(r.uniform(0.5, 8))),
    "fast_sigmoid": lambda r: fs.surrogate.fast_sigmoid(slope=_r(r.uniform(1, 50))),
    "sigmoid": lambda r: fs.surrogate.sigmoid(slope=_r(r.uniform(1, 30))),
    "triangular": lambda r: fs.surrogate.triangular(threshold=_r(r.uniform(0.2, 2))),
    "straight_through": lambda r: fs.surrogate.straight_through(),
    "heaviside": lambda r: fs.surrogate.heaviside(),
    "spike_rate_escape": lambda r: fs.surrogate.spike_rate_escape(_r(r.uniform(0.2, 5)),
                                                                  _r(r.uniform(0.5, 30))),
    "sparse_fast_sigmoid": lambda r: fs.surrogate.SFS(_r(r.uniform(1, 50)), _r(r.uniform(-1, 1))),
    "leaky_spike_operator": lambda r: fs.surrogate.LSO(0.0 if r.random() < 0.15
                                                       else _r(r.uniform(0, 1))),
}
KINDS = list(SURROGATES)
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
X_VIEWS = ("contiguous", "transposed", "stepped", "offset", "reversed", "broadcast-time",
           "broadcast-neurons")
PARAM_FORMS = ("float", "numpy", "scalar", "neuron", "suffix", "lead1", "stepped", "other")
STATE_FORMS = ("none", "float", "numpy", "scalar", "full", "suffix", "transposed", "half")
LOSSES = ("cotangents", "sum", "spikes")
NONFINITE = (np.nan, np.inf, -np.inf)


@dataclass
class Example:
    """One drawn configuration and its inputs."""

    name: str
    index: int
    seed: int
    T: int
    S: tuple
    dtype: str
    reset: str
    options: dict
    surrogate: object
    output_mem: str
    x_view: str
    state_forms: dict
    param_forms: dict
    loss: str
    nonfinite: list = field(default_factory=list)  # (target, position, value)
    x: mx.array | None = None  # the inputs, drawn after the configuration
    states: dict = field(default_factory=dict)  # op keyword -> value as passed
    params: dict = field(default_factory=dict)

    def kwargs(self) -> dict:
        return dict(self.options, **reset_kw(FAMILIES[self.name], self.reset),
                    spike_grad=self.surrogate, output_mem=self.output_mem)

    def describe(self) -> str:
        """The configuration in one line, and how to rerun it alone."""
        nf = ", ".join(f"{t}{list(p)}={v}" for t, p, v in self.nonfinite) or "none"
        return (f"{self.name} example {self.index} (seed {self.seed}): T={self.T} S={self.S} "
                f"{self.dtype} reset={self.reset} options={self.options} {self.surrogate!r} "
                f"output_mem={self.output_mem} x={self.x_view} states={self.state_forms} "
                f"params={self.param_forms} loss={self.loss} nonfinite={nf}; rerun: "
                f"FLASHSNN_FUZZ_SEED={self.seed} FLASHSNN_FUZZ_EXAMPLES={self.index + 1} pytest "
                f"'tests/ops/test_fuzz.py::test_fused_equals_reference[{self.name}-{self.index}]'")


def _pick(rng, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def draw(name: str, index: int, seed: int = SEED) -> Example:
    """Example `index` of family `name`: the configuration, then its inputs."""
    fam = FAMILIES[name]
    rng = np.random.default_rng([seed, fam.id, index])
    # Non-finite inputs only in short runs: a long one may overflow a
    # gradient, which the paths need not spell alike (inf or NaN).
    nonfinite = rng.random() < 0.15
    T = (int(rng.integers(1, 31)) if nonfinite else int(rng.integers(31, 301))
         if rng.random() < 0.05 else int(rng.integers(0, 31)))
    S = tuple(int(n) for n in rng.integers(1, 10, size=int(rng.integers(0, 4))))
    dtype = _pick(rng, list(DTYPES), [0.7, 0.15, 0.15])
    views = [v for v in X_VIEWS if not (v == "broadcast-time" and T == 0)
             and not (v == "broadcast-neurons" and not S)]
    ex = Example(
        name=name, index=index, seed=seed, T=T, S=S, dtype=dtype,
        reset=_pick(rng, fam.resets), options=_pick(rng, option_sets(fam)),
        surrogate=SURROGATES[KINDS[(index + fam.id) % len(KINDS)]](rng),
        output_mem=_pick(rng, ["last", "all"]),
        x_view="contiguous" if rng.random() < 0.4 else _pick(rng, views),
        state_forms={s: _pick(rng, [f for f in STATE_FORMS if f != "half" or dtype != "float32"])
                     for s in fam.arg_states},
        param_forms={p: _pick(rng, PARAM_FORMS) for p in fam.params},
        # (not the spikes alone with non-finite inputs: the paths differ
        # there by design, test_nan_outside_the_loss)
        loss=_pick(rng, LOSSES[:2], [0.75, 0.25]) if nonfinite else
        _pick(rng, LOSSES, [0.7, 0.2, 0.1]))
    if nonfinite:
        targets = ["x", "threshold"] + [f"state:{s}" for s in fam.arg_states]
        target = _pick(rng, targets)
        if target.startswith("state:") and ex.state_forms[target[6:]] in ("none", "float"):
            ex.state_forms[target[6:]] = "full"
        for _ in range(int(rng.integers(1, 4))):
            pos = tuple(int(rng.integers(0, n)) for n in ((T, *S) if target == "x" else S))
            ex.nonfinite.append((target, pos, _pick(rng, NONFINITE)))
    _build(ex, rng)
    return ex


def _inject(ex: Example, target: str, a: np.ndarray) -> np.ndarray:
    """`a` (of x's or of a state's full shape) with the example's non-finite
    values at their places."""
    a = np.array(a, np.float32)
    for t, pos, v in ex.nonfinite:
        if t == target:
            a[pos] = v
    return a


def _x(ex: Example, rng) -> mx.array:
    mean, std = FAMILIES[ex.name].sample.get("x", (0.35, 0.8))
    T, S, v = ex.T, ex.S, ex.x_view

    def values(shape):
        return (rng.normal(size=shape) * std + mean).astype(np.float32)

    def mlx(a):
        c = np.empty(a.shape, np.float32)  # fresh C strides (a size-1 axis may keep -4)
        c[...] = a
        a = mx.array(c).astype(DTYPES[ex.dtype])  # before the view: astype copies
        mx.eval(a)
        return a

    if v == "broadcast-time":  # every step reads one row: a place in x is that neuron
        row = values((1, *S))
        for _, pos, val in [n for n in ex.nonfinite if n[0] == "x"]:
            row[(0, *pos[1:])] = val
        x = mx.broadcast_to(mlx(row), (T, *S))
    elif v == "broadcast-neurons":
        col = values((T, 1, *S[1:]))
        for _, pos, val in [n for n in ex.nonfinite if n[0] == "x"]:
            col[(pos[0], 0, *pos[2:])] = val
        x = mx.broadcast_to(mlx(col), (T, *S))
    else:
        X = _inject(ex, "x", values((T, *S)))
        if v == "contiguous":
            x = mlx(X)
        elif v == "transposed":
            x = mx.transpose(mlx(X.transpose()))
        elif v == "reversed":
            x = mlx(X[::-1])[::-1]
        else:  # stepped, or offset by one step and one neuron (off any alignment)
            k = 2 if v == "stepped" else 1
            base = values((k * T + 1, *S[:-1], k * S[-1] + 1) if S else (k * T + 1,))
            idx = (slice(1, None, k),) + ((Ellipsis, slice(1, None, k)) if S else ())
            base[idx] = X
            x = mlx(base)[idx]
    mx.eval(x)
    return x


def _state(ex: Example, s: str, form: str, rng):
    S = ex.S
    v = _inject(ex, f"state:{s}", initial_state(FAMILIES[ex.name], s, S, rng))
    if form in ("none", "float", "numpy", "scalar"):
        return {"none": None, "float": _r(float(v.flat[0])), "numpy": v,
                "scalar": mx.array(v.flat[0])}[form]
    if form == "suffix" and S:
        return mx.array(v[(0,) * (len(S) - 1)])
    if form == "transposed" and len(S) >= 2:
        return mx.transpose(mx.array(v.transpose().copy(order="C")))
    return mx.array(v).astype(DTYPES[ex.dtype] if form == "half" else mx.float32)


def _param(ex: Example, p: str, form: str, rng):
    (lo, hi), S = FAMILIES[ex.name].sample[p], ex.S
    if form == "float":
        return ([_r(rng.uniform(lo, hi))] + [float(v) for t, _, v in ex.nonfinite if t == p])[-1]
    shape = {"scalar": (), "neuron": S, "suffix": S[-1:], "numpy": S[-1:] if S else (),
             "stepped": S[-1:],
             "lead1": (1,) * (len(S) - 1) + S[-1:] if len(S) >= 2 else S[-1:],
             "other": (S[0],) + (1,) * (len(S) - 1) if len(S) >= 2 else S}[form]
    vals = rng.uniform(lo, hi, shape).astype(np.float32)
    for t, pos, val in ex.nonfinite:
        if t == p:  # the place in S, where this shape has it
            vals[tuple(i % n for i, n in zip(pos[len(pos) - len(shape):], shape))] = val
    if form == "numpy":
        return vals
    if form == "stepped" and S:
        big = np.repeat(vals, 2)
        big[1::2] = rng.uniform(lo, hi, S[-1])
        out = mx.array(big)[::2]
        mx.eval(out)
        return out
    return mx.array(vals)


def _build(ex: Example, rng) -> None:
    fam, ex.x = FAMILIES[ex.name], _x(ex, rng)
    ex.states = {s: _state(ex, s, ex.state_forms[s], rng) for s in fam.arg_states}
    ex.params = {p: _param(ex, p, ex.param_forms[p], rng) for p in fam.params}
    mx.eval([v for v in (*ex.states.values(), *ex.params.values()) if isinstance(v, mx.array)])


# -- running both paths ------------------------------------------------------

def primals(ex: Example) -> dict:
    """The differentiable arguments: x and every state and parameter given as
    an MLX array, by name."""
    out = {"x": ex.x}
    out.update({k: v for k, v in {**ex.states, **ex.params}.items() if isinstance(v, mx.array)})
    return out


def _loss(ex: Example, outs):
    """What the vjp differentiates: every output, their .sum(), or the spikes."""
    if ex.loss == "sum":
        return [sum((o.sum() for o in outs), mx.array(0.0, outs[0].dtype))]
    return list(outs[:1]) if ex.loss == "spikes" else list(outs)


def run(ex: Example, backend: str, cots=None):
    """(outputs, gradients by primal name, cotangents) of the op under
    mx.vjp; cotangents `cots` (None: drawn from the example's seed) for the
    example's loss."""
    op = getattr(fs.ops, ex.name)
    prim = primals(ex)
    names = list(prim)
    fixed = {k: v for k, v in {**ex.states, **ex.params}.items() if k not in prim}
    kw = ex.kwargs()

    def call(x, **a):
        return op(x, **fixed, **a, **kw, backend=backend)

    def f(*args):
        a = dict(zip(names, args))
        return _loss(ex, call(a.pop("x"), **a))

    fam = FAMILIES[ex.name]
    shapes = [(ex.T, *ex.S)] + [(ex.T, *ex.S) if ex.output_mem == "all" else ex.S] * fam.n_outputs
    if cots is None:
        rng = np.random.default_rng([ex.seed, fam.id, ex.index, 1])
        dt = DTYPES[ex.dtype]
        cots = ([mx.array(1.0, dt)] if ex.loss == "sum" else
                [mx.array(rng.normal(size=s).astype(np.float32)).astype(dt)
                 for s in shapes[:1 if ex.loss == "spikes" else len(shapes)]])
    outs, grads = mx.vjp(f, list(prim.values()), cots)
    if ex.loss != "cotangents":  # the vjp returned the loss: the outputs themselves
        outs = call(**prim)
    mx.eval(outs, grads)
    return list(outs), dict(zip(names, grads)), cots


def reduce_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `a` (of shape S) down to `shape`, a broadcast source of S."""
    if len(shape) < a.ndim:
        a = a.sum(axis=tuple(range(a.ndim - len(shape))))
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and a.shape[k] != 1)
    return (a.sum(axis=axes, keepdims=True) if axes else a).reshape(shape)


def summed(ex: Example) -> list:
    """The gradients that are sums: every parameter's (over steps and
    neurons) and a state's given in a shape smaller than S."""
    fam = FAMILIES[ex.name]
    return [k for k, v in primals(ex).items()
            if k in fam.params or (k != "x" and tuple(v.shape) != ex.S)]


def chained(ex: Example, cots) -> dict:
    """For each summed gradient: the sum of the magnitudes of its terms, by
    primal name. The fused op runs one step per call, with a copy of each
    parameter per step and neuron (and each state per neuron), so that every
    term is a gradient of its own. {} when that chain does not reproduce the
    example's forward (a family whose carried state the op cannot take back)."""
    fam = FAMILIES[ex.name]
    op, kw = getattr(fs.ops, ex.name), dict(ex.kwargs(), output_mem="last")
    prim, keys = primals(ex), summed(ex)
    if ex.T == 0 or not keys:
        return {}
    n_out = fam.n_outputs
    # float32 x: 16-bit states would round between calls (the op steps in float32)
    x = ex.x.astype(mx.float32)
    fixed = {k: v for k, v in {**ex.states, **ex.params}.items() if k not in prim}
    st_names = [k for k in fam.arg_states if k in prim]
    pr_names = [k for k in fam.params if k in prim]
    full = {k: mx.array(np.broadcast_to(np32(prim[k]), ex.S).copy()) for k in st_names + pr_names}
    leaves = [full[k] for k in st_names] + [full[k] for k in pr_names for _ in range(ex.T)]

    def chain(*leaves):
        cur = {k: fixed[k] for k in fam.arg_states if k in fixed}
        cur.update(zip(st_names, leaves[:len(st_names)]))
        per = leaves[len(st_names):]
        spk, states = [], []
        for t in range(ex.T):
            p = {k: per[j * ex.T + t] for j, k in enumerate(pr_names)}
            outs = op(x[t:t + 1], **cur, **{k: v for k, v in fixed.items() if k in fam.params},
                      **p, **kw, backend="fused")
            spk.append(outs[0])
            states.append(outs[1:])
            for k in fam.arg_states:
                if k in fam.states[:n_out]:
                    cur[k] = outs[1 + fam.states.index(k)]
                elif k == "spk":
                    cur[k] = outs[0][-1]
                else:
                    raise LookupError(k)
        st = [mx.stack([s[i] for s in states]) if ex.output_mem == "all" else states[-1][i]
              for i in range(n_out)]
        return [mx.concatenate(spk)] + st

    try:
        outs = chain(*leaves)
    except LookupError:
        return {}
    want, _, _ = run(ex, "fused", cots)
    for a, b in zip(outs, want):
        if not np.array_equal(np32(a.astype(DTYPES[ex.dtype])), np32(b), equal_nan=True):
            return {}
    _, g = mx.vjp(lambda *lv: _loss(ex, chain(*lv)), leaves, [c.astype(mx.float32) for c in cots])
    mag = [np.nan_to_num(np.abs(np32(v).astype(np.float64)), posinf=1e30) for v in g]
    out = {k: mag[i] for i, k in enumerate(st_names)}
    for j, k in enumerate(pr_names):
        out[k] = sum(mag[len(st_names) + j * ex.T: len(st_names) + (j + 1) * ex.T])
    return {k: reduce_to(out[k], tuple(prim[k].shape)) for k in keys}


def scales(ex: Example, cots, dx) -> dict:
    """The size each state's and parameter's gradient error is held to
    (times the tolerance), by primal name, where the relative RMS is not
    enough (a gradient of a few elements that cancel): the sum of the
    magnitudes of a summed gradient's terms (chained), plus, for a state,
    sum_t |dx_t| (the adjoints its gradient is built from), and for a
    parameter sum_t |dx_t x_t| / its sampled magnitude (a parameter scaling
    the input, as Lapicque's R in x R / (R C), has terms of that size that
    cancel within each step)."""
    fam = FAMILIES[ex.name]
    dx = np.nan_to_num(np.abs(np32(dx).astype(np.float64)), posinf=1e30)  # (overflow)
    x = np.nan_to_num(np.abs(np32(ex.x).astype(np.float64)), posinf=1e30)
    steps, inputs = dx.sum(axis=0), (dx * x).sum(axis=0)
    out = {}
    for k, v in primals(ex).items():
        if k in fam.params:
            out[k] = reduce_to(inputs, tuple(v.shape)) / max(map(abs, fam.sample[k]))
        elif k != "x":
            out[k] = reduce_to(steps, tuple(v.shape))
    for k, v in chained(ex, cots).items():
        out[k] = out[k] + v
    return out


# -- the check ---------------------------------------------------------------

def check_forward(got, want, what: str) -> None:
    assert len(got) == len(want), f"{what}\n{len(got)} outputs against {len(want)}"
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, \
            f"{what}\noutput {k}: {a.shape} {a.dtype} against {b.shape} {b.dtype}"
        np.testing.assert_array_equal(np32(a), np32(b), err_msg=f"{what}\noutput {k}")


def check_grads(got: dict, want: dict, scale, tol: float, what: str, exact=True) -> None:
    """NaN, +inf and -inf in the same places (`exact`; else only the finite
    places the same), the finite elements within relative RMS `tol`, or each
    within `tol` x `scale()[name]` (called only then)."""
    assert list(got) == list(want), f"{what}\ngradients of {list(got)} against {list(want)}"
    def overflow(a, b):  # finite on one path, past 1e30 on the other
        fa, fb = np.isfinite(a), np.isfinite(b)
        huge = (np.abs(np.where(fa, a, 0)) > 1e30) | (np.abs(np.where(fb, b, 0)) > 1e30)
        return (fa != fb) & ~huge
    kinds = [(w, lambda a, b, t=t: t(a) != t(b)) for w, t in
             (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf))] if exact else \
        [("a non-finite value", overflow)]
    for k in got:
        a, b = got[k], want[k]
        assert a.shape == b.shape and a.dtype == b.dtype, \
            f"{what}\nd{k}: {a.shape} {a.dtype} against {b.shape} {b.dtype}"
        a, b = np32(a), np32(b)
        for where, test in kinds:
            bad = np.flatnonzero(test(a, b))  # (argwhere misses a 0-d array)
            at = np.unravel_index(bad[0], a.shape) if bad.size else None
            assert not bad.size, (f"{what}\nd{k}: {where} in other places ({bad.size}), first "
                                  f"at {tuple(map(int, at))}: fused {a[at]}, reference {b[at]}")
        ok = np.isfinite(b)
        err = rel_rms(a[ok], b[ok])
        if err <= tol:
            continue
        sc = scale().get(k)
        assert sc is not None, f"{what}\nd{k}: relative RMS {err:.2e} > {tol:.0e}"
        diff = np.where(ok, np.abs(a.astype(np.float64) - np.where(ok, b, 0)), 0.0)
        bound = tol * sc + 1e-30
        worst = np.unravel_index(np.argmax(diff / bound), diff.shape)
        assert diff[worst] <= bound[worst], (
            f"{what}\nd{k}: at {tuple(worst)} fused {a[worst]!r}, reference {b[worst]!r}: "
            f"|diff| {diff[worst]:.2e} > {tol:.0e} x {sc[worst]:.2e} (the size of its terms); "
            f"relative RMS {err:.2e}")


def compare(ex: Example, fused, reference, scale) -> None:
    """`scale`: a dict, or a function returning one (scales())."""
    (fo, fg), (ro, rg) = fused, reference
    sc = functools.cache(scale if callable(scale) else lambda: scale)
    what = ex.describe()
    check_forward(fo, ro, what)
    # Finite inputs may still overflow a gradient in a long run, as inf on
    # one path and NaN (inf - inf) or 3e38 on the other: there a non-finite
    # value must meet a non-finite one or one past 1e30.
    check_grads(fg, rg, sc, GRAD_TOL[DTYPES[ex.dtype]], what, exact=bool(ex.nonfinite))


def run_example(ex: Example):
    """(fused, reference, scale) for the example, ready for compare()."""
    ro, rg, cots = run(ex, "reference")
    fo, fg, _ = run(ex, "fused", cots)
    return (fo, fg), (ro, rg), lambda: scales(ex, cots, fg["x"])


# ---------------------------------------------------------------------------

def _cases():
    return [pytest.param(name, i, id=f"{name}-{i}") for i in range(EXAMPLES) for name in FAMILIES]


@pytest.mark.parametrize("name,index", _cases())
def test_fused_equals_reference(name, index):
    ex = draw(name, index)
    compare(ex, *run_example(ex))


def test_nan_outside_the_loss():
    """Found by the fuzz (seed 1, izhikevich example 169, before the spikes
    alone left the non-finite examples), reduced; the one difference the
    paths keep by design (docs/design.md, "Non-finite values"): Izhikevich,
    T = 1, a NaN membrane and a loss on the spikes alone. The kernel gets a
    zero cotangent for the final u, an output the loss leaves out, and 0 x
    NaN is NaN; the reference's autograd never reaches u. With explicit zero
    cotangents on every output both are NaN."""
    x, mem = mx.full((1, 2), 10.0), mx.array([np.nan, -65.0])

    def da(backend):
        return mx.grad(lambda a: fs.ops.izhikevich(x, mem, a=a, b=0.2, c=-65.0, d=8.0,
                                                   backend=backend)[0].sum())(mx.array(0.02))

    def da_zero_cotangents(backend):
        def f(a):
            out = fs.ops.izhikevich(x, mem, a=a, b=0.2, c=-65.0, d=8.0, backend=backend)
            return out[0].sum() + sum((o * 0).sum() for o in out[1:])
        return mx.grad(f)(mx.array(0.02))

    assert np.isnan(np32(da("fused"))) and np32(da("reference")) == 0.0
    assert np.isnan(np32(da_zero_cotangents("fused")))
    assert np.isnan(np32(da_zero_cotangents("reference")))


@pytest.mark.parametrize("name,kw", [("izhikevich", dict(a=0.02, c=-65.0, d=8.0)),
                                     ("alif", dict(beta=0.9))], ids=["izhikevich", "alif"])
def test_derived_state_of_a_broadcast_parameter(name, kw):
    """Found by this fuzz (Izhikevich, b of shape [S[0], 1, ...] and u None),
    reduced; ALIF's threshold did the same: a parameter broadcast in a shape
    that is no suffix of S reached the kernel unbroadcast through the state
    the op derives from it ("[izhikevich] u of shape (2, 1) must be a scalar
    or match the trailing dimensions of (2, 4)")."""
    x, p = mx.full((3, 2, 4), 10.0), {"izhikevich": "b", "alif": "threshold"}[name]
    op = getattr(fs.ops, name)
    args = dict(kw, **{p: mx.full((2, 1), 0.2 if p == "b" else 1.0)})
    check_forward(op(x, **args, backend="fused"), op(x, **args, backend="reference"), name)


def test_every_kernel_surrogate_is_drawn():
    assert sorted(SURROGATES) == sorted(fs.surrogate.KERNEL_IDS)
    drawn = {(n, draw(n, i).surrogate.name) for n in FAMILIES for i in range(len(KINDS))}
    assert drawn == {(n, k) for n in FAMILIES for k in KINDS}


def test_examples_are_deterministic():
    a, b = draw("leaky", 5), draw("leaky", 5)
    assert a.describe() == b.describe()
    for u, v in zip(primals(a).values(), primals(b).values()):
        np.testing.assert_array_equal(np32(u), np32(v))


# -- the check can fail ------------------------------------------------------

@pytest.fixture(scope="module")
def mutant():
    """A float32 example with spikes, a state or parameter given in a shape
    smaller than S and no non-finite input: (example, fused, reference, scale)."""
    for i in range(200):
        ex = draw("leaky", i)
        if (ex.dtype == "float32" and not ex.nonfinite and ex.loss == "cotangents" and ex.T > 3
                and ex.S[-1:] > (1,) and any(k != "x" and tuple(v.shape) != ex.S
                                             for k, v in primals(ex).items())):
            fused, ref, scale = run_example(ex)
            if 0 < np32(ref[0][0]).sum() < ref[0][0].size:
                return ex, fused, ref, scale()
    raise AssertionError("no example fits the mutation tests")


def _as(a: np.ndarray, like: mx.array) -> mx.array:
    return mx.array(a).astype(like.dtype)


def test_the_example_itself_passes(mutant):
    ex, fused, ref, scale = mutant
    compare(ex, fused, ref, scale)


def test_check_catches_a_flipped_spike(mutant):
    ex, (fo, fg), ref, scale = mutant
    spk = np32(fo[0]).copy()
    spk.flat[int(np.argmax(spk))] = 0.0
    with pytest.raises(AssertionError, match="output 0") as e:
        compare(ex, ([_as(spk, fo[0])] + fo[1:], fg), ref, scale)
    assert "FLASHSNN_FUZZ_SEED=" in str(e.value) and ex.describe() in str(e.value)


def test_check_catches_a_one_ulp_state(mutant):
    ex, (fo, fg), ref, scale = mutant
    mem = np32(fo[1]).copy()
    mem.flat[0] = np.nextafter(mem.flat[0], np.float32(np.inf))
    with pytest.raises(AssertionError, match="output 1"):
        compare(ex, ([fo[0], _as(mem, fo[1])] + fo[2:], fg), ref, scale)


@pytest.mark.parametrize("which", ["x", "reduced"])
def test_check_catches_a_scaled_gradient_element(mutant, which):
    """One element of dx, or of a gradient summed over neurons, 1% off."""
    ex, (fo, fg), ref, scale = mutant
    k = "x" if which == "x" else next(k for k in summed(ex) if tuple(fg[k].shape) != ex.S)
    g = np32(fg[k]).copy()
    g.flat[int(np.argmax(np.abs(g)))] *= 1.01
    with pytest.raises(AssertionError, match=f"d{k}"):
        compare(ex, (fo, dict(fg, **{k: _as(g, fg[k])})), ref, scale)


@pytest.mark.parametrize("exact", [True, False], ids=["non-finite-inputs", "finite-inputs"])
def test_check_catches_a_nan_in_the_wrong_place(mutant, exact):
    ex, (fo, fg), (ro, rg), scale = mutant
    g = np32(fg["x"]).copy()
    g.flat[0] = np.nan
    with pytest.raises(AssertionError, match="in other places"):
        check_grads(dict(fg, x=_as(g, fg["x"])), rg, lambda: scale, 1e-5, "mutant", exact)
