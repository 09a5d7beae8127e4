"""Running a flashsnn.nn layer and its snnTorch twin side by side.

Both are stepped from the same initial states; ours also runs the whole
sequence in one ``sequence()`` call. The loss is spikes and every state at
every step against random cotangents, so the gradients of the input, of each
initial state and of each learnable parameter are all exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from helpers import describe, rel_rms


@dataclass
class Run:
    spk: np.ndarray                 # [T, *S]
    states: list                    # each [T, *S], the states the layer returns
    grads: dict                     # name -> np.ndarray ("x", "init.<state>", "param.<name>")
    scales: dict = None             # scalar parameter -> sum of |per-neuron contributions|


def _np(a) -> np.ndarray:
    return np.array(a.astype(mx.float32)) if isinstance(a, mx.array) else \
        a.detach().numpy().astype(np.float32)


def run_torch(layer, x, init, cots, params: dict, spk_state: bool) -> Run:
    """Step an snnTorch layer over x [T, *S] from the states ``init``.
    ``params``: name -> torch tensor whose ``.grad`` is that parameter's."""
    import torch  # the test modules importorskip it first

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in init]
    states = list(st)
    spks, traj = [], None
    for t in range(x.shape[0]):
        out = layer(xt[t], *states)
        spks.append(out[0])
        shown = list(out[1:])
        states = list(out) if spk_state else shown
        traj = [[] for _ in shown] if traj is None else traj
        for k, s in enumerate(shown):
            traj[k].append(s)
    spk = torch.stack(spks)
    traj = [torch.stack(s) for s in traj]
    loss = (spk * torch.tensor(cots[0])).sum()
    for s, c in zip(traj, cots[1:]):
        loss = loss + (s * torch.tensor(c)).sum()
    loss.backward()
    leaves = {"x": xt, **{f"init.{i}": s for i, s in enumerate(st)},
              **{f"param.{k}": p for k, p in params.items()}}
    # No .grad: nothing reached that leaf, a zero gradient on our side.
    grads = {k: np.zeros(tuple(v.shape), np.float32) if v.grad is None else _np(v.grad)
             for k, v in leaves.items()}
    return Run(_np(spk), [_np(s) for s in traj], grads)


def run_ours(layer, x, init, cots, sequence: bool) -> Run:
    """Our layer stepped T times (``sequence=False``) or once over the whole
    sequence; gradients of x, the initial states and every trainable
    parameter."""
    cot = [mx.array(c) for c in cots]

    def loss_fn(params, x_, init_):
        layer.update(params)
        if sequence:
            out = layer.sequence(x_, *init_, output_mem="all")
            spk, traj = out[0], list(out[1:])
        else:
            states = list(init_)
            spks, traj = [], None
            for t in range(x_.shape[0]):
                out = layer(x_[t], *states)
                spks.append(out[0])
                shown = list(out[1:])
                states = list(out) if layer._spk_state else shown
                traj = [[] for _ in shown] if traj is None else traj
                for k, s in enumerate(shown):
                    traj[k].append(s)
            spk, traj = mx.stack(spks), [mx.stack(s) for s in traj]
        loss = (spk * cot[0]).sum()
        for s, c in zip(traj, cot[1:]):
            loss = loss + (s * c).sum()
        return loss, (spk, traj)

    params = layer.trainable_parameters()
    args = (mx.array(x), [mx.array(s) for s in init])
    (_, (spk, traj)), (gp, gx, gi) = mx.value_and_grad(loss_fn, argnums=(0, 1, 2))(
        params, *args)
    mx.eval(spk, traj, gp, gx, gi)
    grads = {"x": _np(gx)}
    grads.update({f"init.{i}": _np(g) for i, g in enumerate(gi)})
    grads.update({f"param.{k}": _np(g) for k, g in tree_flatten(gp)})
    # A scalar parameter's gradient sums the contributions of every neuron,
    # which torch and MLX add in different orders: its error is judged
    # against the sum of their magnitudes, not against the (often
    # cancelling) total. The contributions: the same run with the parameter
    # broadcast to every neuron.
    S = tuple(x.shape[1:])
    scalar = {k for k, v in tree_flatten(params) if v.size == 1}
    scales = {}
    if scalar:
        full = tree_unflatten([(k, mx.broadcast_to(v, S) if k in scalar else v)
                               for k, v in tree_flatten(params)])
        g_full = mx.grad(lambda p_, *a: loss_fn(p_, *a)[0])(full, *args)
        scales = {f"param.{k}": float(mx.abs(g).sum()) for k, g in tree_flatten(g_full)
                  if k in scalar}
        layer.update(params)
    return Run(_np(spk), [_np(s) for s in traj], grads, scales)


def assert_same(ours: Run, theirs: Run, what: str, state_tol=1e-6, grad_tol=1e-5,
                tols: dict | None = None) -> None:
    """Spikes identical; states and gradients by relative RMS (``tols``
    overrides the gradient tolerance for named gradients)."""
    assert ours.spk.shape == theirs.spk.shape, (what, ours.spk.shape, theirs.spk.shape)
    diff = int(np.sum(ours.spk != theirs.spk))
    assert diff == 0, f"{what}: spikes differ in {diff} of {ours.spk.size} places"
    assert len(ours.states) == len(theirs.states), what
    for k, (a, b) in enumerate(zip(ours.states, theirs.states)):
        assert a.shape == b.shape, (what, k, a.shape, b.shape)
        assert rel_rms(a, b) <= state_tol, f"{what}: state {k}: {describe(a, b)}"
    assert set(ours.grads) == set(theirs.grads), (what, sorted(ours.grads), sorted(theirs.grads))
    for k in theirs.grads:
        a, b = ours.grads[k], theirs.grads[k]
        assert a.shape == b.shape, (what, k, a.shape, b.shape)
        assert np.all(np.isfinite(b)), f"{what}: snnTorch's own d{k} is not finite"
        tol = (tols or {}).get(k, grad_tol)
        if b.size == 1 and k in (ours.scales or {}):
            scale = ours.scales[k]
            assert abs(a.item() - b.item()) <= tol * scale, \
                f"{what}: d{k}: {a.item()} vs {b.item()}, contributions sum to {scale}"
        else:
            assert rel_rms(a, b) <= tol, f"{what}: d{k}: {describe(a, b)}"
