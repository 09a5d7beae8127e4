"""Data parallelism for ``flashsnn train`` on MLX's own ``mx.distributed``.

Launched by ``mlx.launch -n K`` (or any launcher MLX's ``mx.distributed.init``
understands: ring over TCP, MPI, NCCL on CUDA, JACCL over Thunderbolt), every
process runs the same command: it builds the same model from the same seed,
reads the same batches in the same order, codes each whole batch as a single
process would (so the spikes are the same), and trains on its rows of it
(:func:`rows`). The step weights each shard's mean loss and gradient by its
share of the rows and averages them over the group
(``flashsnn.train.make_train_step(group=...)``), so K processes take the
single process's step on the whole batch. Test accuracy is counted on each
process's rows of the test set and summed. Process 0 alone prints, writes
``summary.json``, the plot and the checkpoints. Started without a launcher,
the group has one process and nothing changes.
"""

from __future__ import annotations

import mlx.core as mx


def group():
    """The processes this run was launched with (a group of one without a
    launcher)."""
    return mx.distributed.init()


def rows(n: int, g) -> slice:
    """This process's rows of a batch of ``n``: ``numpy.array_split``'s
    near-equal parts, in rank order (a process may get none); all of them
    without a group."""
    if g is None:
        return slice(0, n)
    k, r = g.size(), g.rank()
    q, m = divmod(n, k)  # the first m processes take q + 1 rows, the others q
    start = r * q + min(r, m)
    return slice(start, start + q + (r < m))


def shard(x, y, g, axis: int = 1):
    """This process's rows of a batch ``x`` (batch on ``axis``) and labels
    ``y``, and the keyword arguments for the step: where the process has no
    rows, the batch's first row stands in with ``rows=0`` (every process must
    take part in the step's sums, and a model's loss of zero rows is NaN or
    an error)."""
    part = rows(y.shape[0], g)
    if part.stop > part.start:
        return _take(x, part, axis), y[part], {}
    return _take(x, slice(0, 1), axis), y[0:1], {"rows": 0}


def _take(x, part: slice, axis: int):
    return x[(slice(None),) * axis + (part,)]


def total(value, g) -> float:
    """``value`` summed over the group's processes (itself without a group)."""
    if g is None or g.size() == 1:
        return float(value)
    return float(mx.distributed.all_sum(mx.array(float(value), mx.float32), group=g).item())


def quiet(*args, **kwargs) -> None:
    """The log of every process but the first."""


def describe(g) -> str:
    """For the run's first log line."""
    return "" if g.size() == 1 else f", data-parallel over {g.size()} processes"
