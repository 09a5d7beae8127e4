"""``bptt_forward``: step a model over the time axis and stack what it returns."""

from __future__ import annotations

import mlx.core as mx


def _stack(op, outs):
    first = outs[0]
    if isinstance(first, mx.array):
        return mx.stack(outs)
    if isinstance(first, (tuple, list)):
        return tuple(mx.stack([o[i] for o in outs]) for i in range(len(first)))
    raise TypeError(f"[{op}] the model must return an mlx.core.array or a tuple of them; "
                    f"got {type(first).__name__}")


def bptt_forward(model, x, *state, num_steps: int | None = None):
    """Run ``model`` once per time step of ``x`` and stack its outputs time first.

    Two calling conventions, chosen by whether initial state is passed:

    - ``bptt_forward(model, x)``: ``model(x[t])`` each step; the model keeps
      its own state (snnTorch's ``init_hidden=True`` style). Reset that
      state before the call as the model requires.
    - ``bptt_forward(model, x, *state)``: ``model(x[t], *state)`` each step
      must return ``(out, *new_state)`` (snnTorch's ``spk, mem = lif(x, mem)``);
      the last ``len(state)`` values are fed back.

    Gradients flow through every step, so ``mx.grad`` of a loss on the
    result is backpropagation through time. A model that takes a whole
    ``[T, ...]`` sequence (the fused layers, :class:`flashsnn.models.SpikingMLP`)
    needs no helper: call it on ``x``.

    Args:
        model: a callable, see above.
        x: ``[T, B, ...]`` time-first input; or a static ``[B, ...]`` input
            with ``num_steps`` (fed unchanged at every step).
        *state: initial state arrays, or nothing.
        num_steps: T for a static input.

    Returns:
        ``[T, ...]`` if the model returns one array per step, else a tuple
        of ``[T, ...]`` arrays, one per returned value (``spk_rec, mem_rec``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> def lif(x, mem, beta=0.5):                     # snnTorch-style step
    ...     mem = beta * mem + x
    ...     spk = (mem > 1.0).astype(mx.float32)
    ...     return spk, mem - spk
    >>> spk, mem = fs.functional.bptt_forward(lif, mx.full((4, 1), 0.8), mx.zeros((1,)))
    >>> spk[:, 0].tolist(), [round(v, 2) for v in mem[:, 0].tolist()]
    ([0.0, 1.0, 0.0, 1.0], [0.8, 0.2, 0.9, 0.25])
    """
    op = "bptt_forward"
    if not callable(model):
        raise TypeError(f"[{op}] model must be callable; got {type(model).__name__}")
    if not isinstance(x, mx.array):
        raise TypeError(f"[{op}] x must be an mlx.core.array; got {type(x).__name__}")
    if num_steps is not None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"[{op}] num_steps must be a positive int; got {num_steps!r}")
        steps = [x] * num_steps
    else:
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"[{op}] x must be [T, B, ...] with T >= 1 (or pass num_steps "
                             f"for a static input); got shape {tuple(x.shape)}")
        steps = [x[t] for t in range(x.shape[0])]
    outs = []
    n = len(state)
    for xt in steps:
        if n == 0:
            outs.append(model(xt))
            continue
        r = model(xt, *state)
        if not isinstance(r, (tuple, list)) or len(r) < n + 1:
            raise ValueError(f"[{op}] with {n} state argument(s) the model must return "
                             f"(out, *new_state): at least {n + 1} values")
        state = tuple(r[len(r) - n:])
        outs.append(tuple(r))
    return _stack(op, outs)
