"""Losses on spiking outputs.

Two layers:

- Plain functions, the mlx-snn paper's set: :func:`spike_count_ce` (cross
  entropy on spike counts, or on rates = counts / T), :func:`membrane_ce`
  (cross entropy on the final, max or mean membrane) and
  :func:`spike_count_mse` (spike counts against target rates).
- snnTorch's ``snntorch.functional`` loss objects with the same names,
  arguments and results: ``loss_fn = ce_rate_loss(); loss = loss_fn(spk, y)``.

Every recording is time first, ``[T, B, C]``; targets are class indices
``[B]``. Where snnTorch 1.0 has a bug, the object does the documented thing
and its docstring says how snnTorch differs.
"""

from __future__ import annotations

import mlx.core as mx

from . import _common as c


# --------------------------------------------------------------------------
# Plain functions


def spike_count_ce(spk_out, targets, *, rate: bool = False,
                   reduction: str = "mean") -> mx.array:
    """Cross entropy of the spike counts used as logits.

    Args:
        spk_out: output spikes ``[T, B, C]``.
        targets: class indices ``[B]``.
        rate: divide the counts by T first (mlx-snn's "CE-Rate": the logits
            then stay in [0, 1] whatever T is).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``).

    Returns:
        the loss (a scalar, or ``[B]``). ``rate=False`` equals snnTorch's
        ``ce_count_loss()``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[[1.0, 0.0]], [[1.0, 0.0]]])        # [T=2, B=1, C=2]: counts 2, 0
    >>> round(fs.functional.spike_count_ce(spk, mx.array([0])).item(), 4)   # ln(1 + e^-2)
    0.1269
    """
    op = "spike_count_ce"
    spk = c.record(op, spk_out)
    y = c.labels(op, targets, spk.shape[1], spk.shape[2])
    counts = mx.sum(spk.astype(mx.float32), axis=0)
    if rate:
        counts = counts / spk.shape[0]
    return c.reduce(op, c.nll(c.log_softmax(counts), y), reduction)


def membrane_ce(mem, targets, *, over_time: str = "last",
                reduction: str = "mean") -> mx.array:
    """Cross entropy of the output membrane used as logits (the mlx-snn
    paper's loss, with the output layer's reset off).

    Args:
        mem: ``[B, C]`` (e.g. the final membrane from ``output_mem="last"``),
            or a recording ``[T, B, C]``.
        targets: class indices ``[B]``.
        over_time: how a ``[T, B, C]`` recording becomes logits: ``"last"``
            (final membrane), ``"max"`` (snnTorch's ``ce_max_membrane_loss``)
            or ``"mean"``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> mem = mx.array([[2.0, 0.0], [0.0, 0.0]])            # [B=2, C=2]
    >>> # (ln(1 + e^-2) + ln 2) / 2
    >>> round(fs.functional.membrane_ce(mem, mx.array([0, 1])).item(), 4)
    0.41
    """
    op = "membrane_ce"
    m = c.as_array(op, mem, "mem")
    logits = c.over_time(op, m, over_time)
    y = c.labels(op, targets, logits.shape[0], logits.shape[-1])
    return c.reduce(op, c.nll(c.log_softmax(logits), y), reduction)


def spike_count_mse(spk_out, targets, *, correct_rate: float = 1.0,
                    incorrect_rate: float = 0.0, reduction: str = "mean") -> mx.array:
    """Squared error between spike counts and target counts, over T.

    The target count is ``T * correct_rate`` for the labelled class and
    ``T * incorrect_rate`` for the others; the loss is
    ``reduce((count - target)^2) / T``. With integral target counts this
    equals snnTorch's ``mse_count_loss`` (which truncates ``T * rate`` to an
    int first).

    Args:
        spk_out: ``[T, B, C]``; targets: ``[B]``.
        correct_rate, incorrect_rate: target firing rates in [0, 1].
        reduction: ``"mean"`` (over B and C), ``"sum"`` or ``"none"`` (``[B, C]``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[[1.0, 1.0]], [[0.0, 1.0]]])        # counts 1, 2 over T=2
    >>> fs.functional.spike_count_mse(spk, mx.array([0])).item()    # ((1-2)^2 + 2^2) / 2 / 2
    1.25
    """
    op = "spike_count_mse"
    spk = c.record(op, spk_out)
    T, B, C = spk.shape
    _check_rates(op, correct_rate, incorrect_rate)
    y = c.labels(op, targets, B, C)
    tgt = c.one_hot(y, C, T * correct_rate, T * incorrect_rate)
    err = (mx.sum(spk.astype(mx.float32), axis=0) - tgt) ** 2
    return c.reduce(op, err, reduction) / T


def _check_rates(op, correct_rate, incorrect_rate):
    if not (0 <= correct_rate <= 1 and 0 <= incorrect_rate <= 1):
        raise ValueError(f"[{op}] correct_rate ({correct_rate}) and incorrect_rate "
                         f"({incorrect_rate}) must lie in [0, 1]")


# --------------------------------------------------------------------------
# snnTorch-compatible loss objects (``snntorch.functional``)


class _Loss:
    name = "loss"

    def __init__(self, reduction="mean", weight=None):
        c.choice(self.name, "reduction", reduction, c.REDUCTIONS)
        self.reduction = reduction
        self.weight = weight
        self.__name__ = self.name

    def _weighted(self, per: mx.array, y: mx.array, C: int) -> mx.array:
        """``per`` [B] or [B, C'] times the weight of each sample's class.
        snnTorch reduces weighted losses with a plain mean (not PyTorch's
        weighted mean), and so do we."""
        w = c.class_weight(self.name, self.weight, C)
        if w is None:
            return per
        wy = w[y.astype(mx.int32)]
        return per * (wy if per.ndim == 1 else wy[:, None])

    def __repr__(self):
        return f"{self.name}(reduction={self.reduction!r})"


class ce_rate_loss(_Loss):  # noqa: N801 (snnTorch's name)
    """snnTorch's ``ce_rate_loss``: cross entropy of the spikes at every step
    (as logits), averaged over the T steps.

    ``loss_fn(spk_out [T, B, C], targets [B])``. ``population_code=True``
    is refused: snnTorch 1.0 ignores it in this loss (and then fails
    unless ``weight`` has two entries).

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[[1.0, 0.0]], [[0.0, 0.0]]])        # step 0: class 0 fires
    >>> round(fs.functional.ce_rate_loss()(spk, mx.array([0])).item(), 4)   # (0.3133 + ln 2) / 2
    0.5032
    """

    name = "ce_rate_loss"

    def __init__(self, population_code=False, num_classes=False, reduction="mean",
                 weight=None):
        super().__init__(reduction, weight)
        if population_code:
            raise ValueError("[ce_rate_loss] population_code=True is not supported (snnTorch "
                             "1.0 ignores it here); use ce_count_loss(population_code=True)")
        self.num_classes = num_classes

    def __call__(self, spk_out, targets):
        spk = c.record(self.name, spk_out)
        T, B, C = spk.shape
        y = c.labels(self.name, targets, B, C)
        logp = c.log_softmax(spk)                                     # [T, B, C]
        idx = mx.broadcast_to(y.astype(mx.int32)[None, :, None], (T, B, 1))
        per = -mx.mean(mx.take_along_axis(logp, idx, axis=-1)[..., 0], axis=0)   # [B]
        return c.reduce(self.name, self._weighted(per, y, C), self.reduction)


class ce_count_loss(_Loss):  # noqa: N801
    """snnTorch's ``ce_count_loss``: cross entropy of the spike counts (or
    of the population counts ``[B, num_classes]``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[[1.0, 0.0]], [[1.0, 0.0]]])
    >>> round(fs.functional.ce_count_loss()(spk, mx.array([1])).item(), 4)   # ln(1 + e^2)
    2.1269
    """

    name = "ce_count_loss"

    def __init__(self, population_code=False, num_classes=False, reduction="mean",
                 weight=None):
        super().__init__(reduction, weight)
        self.population_code = population_code
        self.num_classes = num_classes

    def __call__(self, spk_out, targets):
        spk = c.record(self.name, spk_out).astype(mx.float32)
        y = c.labels(self.name, targets, spk.shape[1],
                     self.num_classes if self.population_code else spk.shape[2])
        counts = c.population_counts(self.name, spk, self.num_classes) \
            if self.population_code else mx.sum(spk, axis=0)
        per = c.nll(c.log_softmax(counts), y)
        return c.reduce(self.name, self._weighted(per, y, counts.shape[-1]), self.reduction)


class ce_max_membrane_loss(_Loss):  # noqa: N801
    """snnTorch's ``ce_max_membrane_loss``: cross entropy of each output's
    largest membrane over time. ``loss_fn(mem_out [T, B, C], targets [B])``."""

    name = "ce_max_membrane_loss"

    def __call__(self, mem_out, targets):
        mem = c.record(self.name, mem_out, "mem_out")
        y = c.labels(self.name, targets, mem.shape[1], mem.shape[2])
        per = c.nll(c.log_softmax(mx.max(mem, axis=0)), y)
        return c.reduce(self.name, self._weighted(per, y, mem.shape[-1]), self.reduction)


class mse_count_loss(_Loss):  # noqa: N801
    """snnTorch's ``mse_count_loss``: spike counts against ``int(T * rate)``
    target counts, MSE, divided by T.

    ``weight`` scales each sample by its class's weight (snnTorch 1.0
    multiplies ``[B, C]`` by ``weight[targets]`` ``[B]``, which broadcasts
    over the wrong axis and fails unless B == C).
    """

    name = "mse_count_loss"

    def __init__(self, correct_rate=1, incorrect_rate=0, population_code=False,
                 num_classes=False, reduction="mean", weight=None):
        super().__init__(reduction, weight)
        _check_rates(self.name, correct_rate, incorrect_rate)
        self.correct_rate = correct_rate
        self.incorrect_rate = incorrect_rate
        self.population_code = population_code
        self.num_classes = num_classes

    def __call__(self, spk_out, targets):
        spk = c.record(self.name, spk_out).astype(mx.float32)
        T, B, N = spk.shape
        y = c.labels(self.name, targets, B, self.num_classes if self.population_code else N)
        if self.population_code:
            counts = c.population_counts(self.name, spk, self.num_classes)
            per_class = N / self.num_classes
            on = int(T * self.correct_rate * per_class)
            off = int(T * self.incorrect_rate * per_class)
        else:
            counts = mx.sum(spk, axis=0)
            on, off = int(T * self.correct_rate), int(T * self.incorrect_rate)
        err = (counts - c.one_hot(y, counts.shape[-1], on, off)) ** 2
        err = self._weighted(err, y, counts.shape[-1])
        return c.reduce(self.name, err, self.reduction) / T


class mse_membrane_loss(_Loss):  # noqa: N801
    """snnTorch's ``mse_membrane_loss``: MSE of the membrane at every step
    against ``on_target`` (labelled class) / ``off_target`` (others),
    averaged over T. With ``time_var_targets=True`` targets are ``[T, B]``
    (snnTorch 1.0 fails in that mode: its ``targets_convert`` rejects 2-D
    labels).

    A negative ``off_target`` is used as given (snnTorch 1.0 turns it into
    0 when ``on_target > off_target``).
    """

    name = "mse_membrane_loss"

    def __init__(self, time_var_targets=False, on_target=1, off_target=0, reduction="mean",
                 weight=None):
        super().__init__(reduction, weight)
        if time_var_targets and weight is not None:
            raise ValueError("[mse_membrane_loss] weight is per sample; it is not supported "
                             "with time_var_targets=True")
        self.time_var_targets = time_var_targets
        self.on_target = on_target
        self.off_target = off_target

    def __call__(self, mem_out, targets):
        mem = c.record(self.name, mem_out, "mem_out").astype(mx.float32)
        T, B, C = mem.shape
        if self.time_var_targets:
            y = c.as_array(self.name, targets, "targets")
            if y.shape != (T, B):
                raise ValueError(f"[{self.name}] with time_var_targets=True, targets must be "
                                 f"[T, B] = {(T, B)}; got {tuple(y.shape)}")
            c.label_range(self.name, y, C)
            tgt = c.one_hot(y, C, self.on_target, self.off_target)       # [T, B, C]
        else:
            y = c.labels(self.name, targets, B, C)
            tgt = c.one_hot(y, C, self.on_target, self.off_target)[None]
        err = mx.mean((mem - tgt) ** 2, axis=0)                         # [B, C]
        if not self.time_var_targets:
            err = self._weighted(err, y, C)
        return c.reduce(self.name, err, self.reduction)


# --------------------------------------------------------------------------
# Spike times (snnTorch's SpikeTime, single spike)


@mx.custom_function
def first_spike_time(spk: mx.array) -> mx.array:
    """The step of each neuron's first spike, ``[T, *S] -> [*S]`` (float32);
    T - 1 where it never fires. Gradient (snnTorch's sign estimator): -1 to
    the spike at that step, 0 elsewhere.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])   # [T=3, 2]
    >>> fs.functional.first_spike_time(spk).tolist()
    [1.0, 2.0]
    """
    T = spk.shape[0]
    fired = spk != 0
    first = mx.argmax(fired.astype(mx.int32), axis=0)     # the first of equal maxima
    return mx.where(mx.any(fired, axis=0), first, T - 1).astype(mx.float32)


@first_spike_time.vjp
def _first_spike_time_vjp(primals, cotangent, output):
    # a one-argument custom_function gets its primal as is, not in a tuple
    spk = primals if isinstance(primals, mx.array) else primals[0]
    T = spk.shape[0]
    at = mx.arange(T, dtype=mx.float32).reshape((T,) + (1,) * output.ndim) == output[None]
    return (-(cotangent[None] * at).astype(spk.dtype),)


def _spike_times(op, spk, targets, *, target_is_time, on_target, off_target, tolerance):
    T, B, N = spk.shape
    st = first_spike_time(spk)
    if target_is_time:
        tgt = c.as_array(op, targets, "targets").astype(mx.float32)
    else:
        tgt = c.one_hot(c.labels(op, targets, B, N), N, on_target, off_target)
    tgt = mx.where(tgt < 0, T + tgt, tgt)                 # -1 means the last step
    if tolerance:
        # close enough counts as on time; the gradient still reaches st
        st = st + mx.stop_gradient(mx.where(mx.abs(st - tgt) < tolerance, tgt - st, 0.0))
    return st, tgt


class mse_temporal_loss:  # noqa: N801
    """snnTorch's ``mse_temporal_loss`` (single spike): squared error of the
    first spike time against the target time, both divided by T.

    Labels become times ``on_target`` (labelled class) and ``off_target``
    (others); -1 means the last step. snnTorch 1.0 turns ``off_target=-1``
    into 0 when ``on_target > off_target``, so its default sends every
    neuron to step 0; here the defaults mean what the docs say (correct
    class at 0, others at T - 1). ``multi_spike`` and ``weight`` are not
    supported.
    """

    name = "mse_temporal_loss"

    def __init__(self, target_is_time=False, on_target=0, off_target=-1, tolerance=0,
                 multi_spike=False, reduction="mean", weight=None):
        if multi_spike:
            raise ValueError("[mse_temporal_loss] multi_spike=True is not supported")
        if weight is not None:
            raise ValueError("[mse_temporal_loss] weight is not supported")
        c.choice(self.name, "reduction", reduction, c.REDUCTIONS)
        self.target_is_time = target_is_time
        self.on_target, self.off_target = on_target, off_target
        self.tolerance = tolerance
        self.reduction = reduction
        self.__name__ = self.name

    def __call__(self, spk_rec, targets):
        spk = c.record(self.name, spk_rec, "spk_rec")
        T = spk.shape[0]
        st, tgt = _spike_times(self.name, spk, targets, target_is_time=self.target_is_time,
                               on_target=self.on_target, off_target=self.off_target,
                               tolerance=self.tolerance)
        return c.reduce(self.name, (st / T - tgt / T) ** 2, self.reduction)


class ce_temporal_loss:  # noqa: N801
    """snnTorch's ``ce_temporal_loss``: cross entropy of the inverted first
    spike times (``inverse="negate"``: ``-t``; ``"reciprocal"``: ``1/(t+1)``),
    so the labelled class is pushed to fire first. ``weight`` follows
    PyTorch's ``CrossEntropyLoss`` (a weighted mean), as snnTorch passes it
    there."""

    name = "ce_temporal_loss"

    def __init__(self, inverse="negate", reduction="mean", weight=None):
        c.choice(self.name, "inverse", inverse, ("negate", "reciprocal"))
        c.choice(self.name, "reduction", reduction, c.REDUCTIONS)
        self.inverse, self.reduction, self.weight = inverse, reduction, weight
        self.__name__ = self.name

    def __call__(self, spk_rec, targets):
        spk = c.record(self.name, spk_rec, "spk_rec")
        y = c.labels(self.name, targets, spk.shape[1], spk.shape[2])
        st = first_spike_time(spk)
        z = -st if self.inverse == "negate" else 1.0 / (st + 1.0)
        per = c.nll(c.log_softmax(z), y)
        w = c.class_weight(self.name, self.weight, spk.shape[-1])
        if w is None:
            return c.reduce(self.name, per, self.reduction)
        wy = w[y.astype(mx.int32)]
        if self.reduction == "mean":
            return mx.sum(per * wy) / mx.sum(wy)
        return c.reduce(self.name, per * wy, self.reduction)
