"""One training step (forward, loss, backward, optimizer update) as one
function of the batch, compiled with ``mx.compile`` by default.

Compiling the whole step lets MLX fuse the element-wise work around the
kernels (the loss, Adam's update of every parameter) and skip rebuilding
the graph in Python each step: on an H200 the mlx-snn paper's MLP step
(784-256-10, T = 25, B = 128, Adam) went from 1.98 to 1.06 ms with this
alone. The model's parameters, the optimizer's state and MLX's global random
state are the compiled function's inputs and outputs (MLX's documented
pattern for compiling training graphs), so the step updates them in place
exactly as the uncompiled one does.
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map


def make_train_step(model: nn.Module, optimizer, loss_fn, *, compile: bool = True,
                    clip: float | None = None, group=None):
    """Return ``step(*batch) -> loss``: one optimizer step on ``model``.

    Args:
        model: an ``mlx.nn.Module``; its trainable parameters are updated.
        optimizer: an ``mlx.optimizers.Optimizer``; its state is created
            here (``optimizer.init``) so that it exists before compiling.
        loss_fn: ``loss_fn(model, *batch) -> scalar`` (as for
            ``mlx.nn.value_and_grad``).
        compile: compile the whole step with ``mx.compile`` (default). The
            first call with new input shapes traces and compiles it (tens
            to hundreds of ms); later calls reuse the compiled graph.
        clip: clip the gradient's global norm at this value before the
            update (None: no clipping).
        group: an ``mx.distributed`` group of more than one process for
            data parallelism: each process passes its shard of the batch
            (labels last, batch first), and the step uses the whole batch's
            mean loss and gradient, weighting each shard by its share of the
            rows (``mlx.nn.average_gradients`` over the group), so K shards
            give a single process's step on the whole batch to float32
            round-off. Every process gets the same loss and parameters. A
            process whose shard is empty calls ``step(*one_row, rows=0)``
            (:func:`flashsnn.train.distributed.shard`).

    The returned loss is lazy: evaluate it together with
    ``model.parameters()`` and ``optimizer.state`` (``mx.eval``) to wait
    for the step. Compiled and uncompiled steps give the same losses to
    float32 round-off (tests/train/test_train_step.py).

    >>> import mlx.core as mx, mlx.optimizers as optim, flashsnn as fs
    >>> model = fs.models.SpikingMLP(64, 32)
    >>> opt = optim.Adam(learning_rate=1e-3)
    >>> step = fs.train.make_train_step(
    ...     model, opt, lambda m, x, y: fs.functional.membrane_ce(m(x)[1], y))
    >>> x = fs.encoding.rate(mx.random.uniform(shape=(8, 64)), 25)      # [25, 8, 64]
    >>> loss = step(x, mx.arange(8) % 10)
    >>> mx.eval(loss, model.parameters(), opt.state)
    >>> loss.shape
    ()
    """
    optimizer.init(model.trainable_parameters())
    grad_fn = nn.value_and_grad(model, loss_fn)

    shards = group is not None and group.size() > 1

    def step(*batch, rows=None):
        loss, grads = grad_fn(model, *batch)
        if shards:
            # each shard's mean weighted by its rows: the whole batch's mean.
            # A process without rows of a batch (a last batch smaller than
            # the group) passes some row with rows=0 and adds zeros.
            rows = mx.array(batch[-1].shape[0] if rows is None else rows, mx.float32)
            share = rows / mx.distributed.all_sum(rows, group=group)
            some = rows > 0
            loss = mx.distributed.all_sum(mx.where(some, loss * share, 0.0), group=group)
            scale = share * group.size()          # average_gradients divides by the size
            grads = nn.average_gradients(
                tree_map(lambda g: mx.where(some, g * scale, 0.0).astype(g.dtype), grads),
                group=group)
        if clip is not None:
            grads, _ = optim.clip_grad_norm(grads, clip)
        optimizer.update(model, grads)
        return loss

    if not compile:
        return step
    # mx.random.state too: a model that draws without explicit keys (dropout,
    # a stochastic surrogate) then gets fresh randomness every call instead
    # of the numbers traced into the graph at the first one.
    state = [model.state, optimizer.state, mx.random.state]
    return partial(mx.compile, inputs=state, outputs=state)(step)
