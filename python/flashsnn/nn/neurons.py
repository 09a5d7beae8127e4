"""What every ``flashsnn.nn`` neuron layer shares: snnTorch's ``SpikingNeuron``
machinery (hidden state, ``init_hidden``/``output``, learnable or fixed
parameters, graded spikes, inhibition) around a per-family op from
``flashsnn.ops``, which holds all the neuron math.

Stepping a layer (``layer(x_t, *state)``) runs the op with T = 1; a whole
sequence (``layer.sequence(x, *state)``) runs it once over all T steps.
"""

from __future__ import annotations

import re
import warnings
import weakref

import mlx.core as mx
import mlx.nn as nn

from .. import surrogate as _surrogate
from ..ops import _checks
from ..ops._family import OUTPUT_MEM, RESETS


class _NoGrad(set):
    """A module's set of frozen keys that always keeps its fixed parameters.

    ``mlx.nn.Module.unfreeze()`` on a parent clears ``_no_grad`` of every
    submodule directly (it never calls the submodule's own ``unfreeze``), so
    an ``unfreeze`` override, as in MLX's BatchNorm, would not stop
    ``model.unfreeze()`` from making a fixed ``beta`` trainable; this does.
    """

    def __init__(self, items=()):
        super().__init__(items)
        self.fixed = set()

    def fix(self, key: str) -> None:
        self.fixed.add(key)
        self.add(key)

    def clear(self) -> None:
        super().clear()
        self.update(self.fixed)

    def difference_update(self, *others) -> None:
        super().difference_update(*others)
        self.update(self.fixed)

    def discard(self, key) -> None:
        if key not in self.fixed:
            super().discard(key)

    def remove(self, key) -> None:
        if key not in self.fixed:
            super().remove(key)


def fix_parameters(module: nn.Module, keys) -> None:
    """Freeze ``keys`` of ``module`` for good: no ``unfreeze`` (of the module
    or of any parent) makes them trainable again."""
    if not isinstance(module._no_grad, _NoGrad):
        module._no_grad = _NoGrad(module._no_grad)
    for k in keys:
        module._no_grad.fix(k)


def as_param(layer: str, name: str, value) -> mx.array:
    """A neuron parameter as a float32 array (a float, a list, a NumPy or
    MLX array...)."""
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(f"[{layer}] {name} must be a float or an array; "
                        f"got {type(value).__name__}")
    try:
        arr = value if isinstance(value, mx.array) else mx.array(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"[{layer}] {name} must be a float or an array; got "
                        f"{type(value).__name__} ({e})") from None
    if not (mx.issubdtype(arr.dtype, mx.floating) or mx.issubdtype(arr.dtype, mx.integer)) \
            or arr.dtype == mx.bool_:
        raise TypeError(f"[{layer}] {name} must be real-valued; got {arr.dtype}")
    return arr.astype(mx.float32)


_TAG = re.compile(r"\[([A-Za-z_]\w*)\] ")


def _retag(e: Exception, layer: str) -> Exception:
    """An op's tagged error (``[leaky] ...``) as the layer's (``[Leaky] ...
    (in flashsnn.ops.leaky)``), same type; an untagged one unchanged."""
    msg = str(e)
    m = _TAG.match(msg)
    if m is None or m.group(1) == layer:
        return e
    where = "spike_grad" if m.group(1) == "spike_grad" else f"flashsnn.ops.{m.group(1)}"
    return type(e)(f"[{layer}] {msg[m.end():]} (in {where})")


def _surrogate_bypass(v: mx.array) -> mx.array:
    # snnTorch's surrogate_disable: (v > 0).float(), through which no gradient flows.
    return mx.stop_gradient((v > 0).astype(v.dtype))


class SpikingNeuron(nn.Module):
    """Base of every neuron layer (snnTorch's ``SpikingNeuron``).

    Subclasses set ``_states`` (hidden-state names in snnTorch's order),
    create their parameters with :meth:`_param` and implement
    ``_op(x, *states, output_mem)`` by calling their ``flashsnn.ops`` op.

    Hidden states live under the private key ``_hidden`` (read them as
    ``layer.mem``...): outside :meth:`parameters`, so no optimizer or
    gradient touches them, but inside :attr:`state`, so ``mx.compile`` can
    capture them. Fixed parameters (``learn_beta=False``...) are frozen for
    good (snnTorch's buffers); learnable ones are ordinary trainable arrays.
    """

    _states: tuple = ("mem",)
    _spk_state = False          # the spikes are fed back as a state (RLeaky, RSynaptic)
    _instances: list = []       # weak references, for reset_hidden()/detach_hidden()

    def __init__(self, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 graded_spikes_factor=None, learn_graded_spikes_factor=False,
                 backend="auto"):
        super().__init__()
        self._no_grad = _NoGrad()
        object.__setattr__(self, "_warned", set())  # _check_unit_params, once per name
        object.__setattr__(self, "_checked", {})    # ... and once per array of a name
        tag = type(self).__name__
        if state_quant is not False and state_quant is not None:
            raise NotImplementedError(
                f"[{tag}] state_quant is not supported: flashsnn keeps neuron states in "
                "float32 and has no quantizer hook in its ops; pass state_quant=False")
        if reset_mechanism is not None:
            _checks.choice(tag, "reset_mechanism", reset_mechanism, RESETS)
        _checks.choice(tag, "backend", backend, _checks.BACKENDS)
        self.surrogate_disable = bool(surrogate_disable)
        self.spike_grad = (_surrogate_bypass if surrogate_disable
                           else _surrogate.resolve(spike_grad, tag))
        self.init_hidden = bool(init_hidden)
        self.inhibition = bool(inhibition)
        if inhibition:
            warnings.warn("Inhibition is an unstable feature that has only been tested for "
                          "dense (fully-connected) layers. Use with caution!", UserWarning,
                          stacklevel=3)
        self.output = bool(output)
        self.reset_mechanism = reset_mechanism
        self.state_quant = False
        self.backend = backend
        self._param("threshold", threshold, learn_threshold)
        if graded_spikes_factor is not None:
            self._param("graded_spikes_factor", graded_spikes_factor,
                        learn_graded_spikes_factor)
        # The untouched fixed factor 1.0 needs no multiply (a full pass over
        # [T, *S]); any replacement (load_weights, assignment) is multiplied.
        g = self.get("graded_spikes_factor")
        one = g if (g is not None and not learn_graded_spikes_factor
                    and bool(mx.all(g == 1).item())) else None
        object.__setattr__(self, "_graded_one", one)
        self["_hidden"] = {k: mx.zeros((0,)) for k in self._states}
        SpikingNeuron._live()  # drop the dead entries before adding this one
        SpikingNeuron._instances.append(weakref.ref(self))

    def __init_subclass__(cls, **kwargs):
        # help(fs.nn.Leaky) would show mlx.nn.Module's "Should be called by
        # the subclasses of Module." for __init__ and "Call self as a
        # function." for __call__: point both at the class's own text.
        super().__init_subclass__(**kwargs)
        for name, text in (("__init__", "Build the layer; the arguments are in "
                                        f"help(flashsnn.nn.{cls.__name__})."),
                           ("__call__", "One step: ``spk, *states = layer(x_t, *states)``; "
                                        f"see help(flashsnn.nn.{cls.__name__}).")):
            fn = cls.__dict__.get(name)
            if fn is not None and not fn.__doc__:
                fn.__doc__ = text

    # -- parameters and hidden state --------------------------------------

    def _param(self, name: str, value, learn: bool) -> None:
        """Store a neuron parameter: trainable when ``learn``, else fixed."""
        setattr(self, name, as_param(type(self).__name__, name, value))
        if not learn:
            self._no_grad.fix(name)

    def __getattr__(self, key):
        hidden = self.get("_hidden")
        if hidden is not None and key in hidden:
            return hidden[key]
        return super().__getattr__(key)

    def __setattr__(self, key, val):
        if key in type(self)._states and "_hidden" in self:
            self["_hidden"][key] = val
            return
        if key == "reset_mechanism" and val is not None:
            _checks.choice(type(self).__name__, "reset_mechanism", val, RESETS)
        elif key == "backend":
            _checks.choice(type(self).__name__, "backend", val, _checks.BACKENDS)
        super().__setattr__(key, val)

    def _rest(self, name: str, like: mx.array) -> mx.array:
        """The value ``reset_mem`` gives a state (zeros, as snnTorch)."""
        return mx.zeros_like(like)

    def reset_mem(self):
        """Reset the hidden states (zeros of their current shape, as
        snnTorch) and return them in snnTorch's order."""
        hidden = self["_hidden"]
        for k in self._states:
            hidden[k] = self._rest(k, hidden[k])
        out = tuple(hidden[k] for k in self._states)
        return out[0] if len(out) == 1 else out

    @classmethod
    def _live(cls):
        alive = [r for r in SpikingNeuron._instances if r() is not None]
        SpikingNeuron._instances[:] = alive
        return [r() for r in alive if isinstance(r(), cls)]

    @classmethod
    def reset_hidden(cls):
        """``reset_mem()`` on every live layer of this class."""
        for layer in cls._live():
            layer.reset_mem()

    @classmethod
    def detach_hidden(cls):
        """Stop gradients through the hidden states of every live layer of
        this class (truncated BPTT)."""
        for layer in cls._live():
            hidden = layer["_hidden"]
            for k in layer._states:
                hidden[k] = mx.stop_gradient(hidden[k])

    @classmethod
    def init(cls):
        """Forget every registered layer (snnTorch's ``SpikingNeuron.init``)."""
        SpikingNeuron._instances.clear()

    # -- running ----------------------------------------------------------

    def _op(self, x, *states, output_mem):
        raise NotImplementedError

    def _forward(self, x, given: dict, sequence: bool, output_mem: str = "last"):
        tag = type(self).__name__
        if not isinstance(x, mx.array):
            raise TypeError(f"[{tag}] input must be an mlx.core.array; got {type(x).__name__}")
        passed = [k for k, v in given.items() if v is not None]
        if self.init_hidden and passed:
            raise TypeError(f"[{tag}] {', '.join(f'`{k}`' for k in passed)} should not be "
                            "passed as an argument while `init_hidden=True`")
        if sequence:
            _checks.choice(tag, "output_mem", output_mem, OUTPUT_MEM)
            if x.ndim < 1:
                raise ValueError(f"[{tag}] sequence() takes x of shape [T, ...]; got a scalar")
        hidden = self["_hidden"]
        S = tuple(x.shape[1:]) if sequence else tuple(x.shape)
        init = []
        for k in self._states:
            v = given.get(k)
            # Stepping without a state continues from the stored one, as in
            # snnTorch; a sequence starts from zeros unless init_hidden.
            if v is not None:
                v = self._given_state(k, v, sequence)
            elif self.init_hidden or not sequence:
                v = hidden[k]
                # snnTorch: a stored state whose shape differs from the
                # input's (a stale batch, the empty one after construction)
                # starts at zeros.
                if tuple(v.shape) != S:
                    v = None
            init.append(v)

        T = x.shape[0] if sequence else 1
        want_all = sequence and output_mem == "all"
        # fire_inhibition needs every step's membrane.
        om = "all" if want_all or (sequence and self.inhibition and T > 0) else "last"
        self._check_unit_params()
        self._check_input(x, sequence)
        try:
            out = self._op(x if sequence else x[None], *init, output_mem=om)
        except _checks.StateShapeError as e:
            raise self._state_shape_error(e, sequence) from None
        except (ValueError, TypeError, RuntimeError) as e:
            raise _retag(e, tag) from None
        spk, states = out[0], list(out[1:])
        names = self._states[1:] if self._spk_state else self._states
        if self.inhibition:
            mem = dict(zip(names, states))["mem"]
            spk = spk * self._inhibition_mask(mem if om == "all" else mem[None])
        else:
            g = self.get("graded_spikes_factor")
            if g is not None and g is not self._graded_one:
                spk = spk * g.astype(spk.dtype)

        if om == "last":
            finals = states
        else:
            finals = [s[-1] for s in states] if T > 0 else None
        # Stepping stores the state as snnTorch does; a sequence is a pure
        # function (safe under mx.compile and vmap, no graph kept between
        # batches) unless init_hidden asks the layer to carry its state.
        if finals is not None and (self.init_hidden or not sequence):
            for k, v in zip(names, finals):
                hidden[k] = v
            if self._spk_state and T > 0:
                hidden["spk"] = spk[-1]
        spk_out = spk if sequence else spk[0]
        shown = states if want_all else finals
        if self.output or not self.init_hidden:
            return (spk_out, *shown)
        return spk_out

    def _given_state(self, name: str, v, sequence: bool):
        """A state the caller passed: None for an empty one (what
        ``init_leaky()``... return: zeros), else the array (a list or NumPy
        array made one) for the op. The op checks its shape against the
        input's (:func:`flashsnn.ops._checks.state`, the one copy of that
        rule) and the layer words that error as its own
        (:meth:`_state_shape_error`).

        Two checks stay here because the op cannot make them: a tuple of
        state arrays must be refused before ``mx.array`` stacks it (the
        tuple ``init_synaptic()`` returns before the first call would stack
        into an empty ``[2, 0]`` array, zeros without a word, and two
        ``[N]`` states into a ``[2, N]`` one that broadcasts to an input of
        batch 2; any other would get a shape error with no word of
        unpacking); and an empty array meaning zeros is the layers'
        convention (snnTorch's ``reset_mem()``), not the op's (None)."""
        if isinstance(v, (tuple, list)) and any(isinstance(e, mx.array) for e in v):
            raise TypeError(
                f"[{type(self).__name__}] {name} must be an array; got a {type(v).__name__} "
                f"of {len(v)} arrays: unpack the states, e.g. `{self._call_hint(sequence)}`")
        if not isinstance(v, mx.array):
            v = _checks.as_array(type(self).__name__, name, v, "an mlx.core.array or None")
            if not isinstance(v, mx.array):
                return v  # a float: the op takes it (or says what is wrong)
        return None if v.size == 0 else v

    def _state_shape_error(self, e: "_checks.StateShapeError", sequence: bool) -> ValueError:
        """The op's error for a state that does not broadcast to the neuron
        shape, in the layer's words: the input the user passed has no time
        axis when stepping, and an empty array means zeros."""
        what = "the input's shape without its time axis" if sequence else "the input's shape"
        return ValueError(
            f"[{type(self).__name__}] {e.name} of shape {e.shape} does not fit the input: "
            f"expected {e.S} ({what}) or a shape that broadcasts to it; an empty array (as "
            f"reset_mem() returns before the first call) means zeros")

    def _call_hint(self, sequence: bool) -> str:
        states = ", ".join(self._states)
        outs = ", ".join(("spk",) + tuple(k for k in self._states if k != "spk"))
        call = "layer.sequence(x, " if sequence else "layer(x_t, "
        return f"{outs} = {call}{states})"

    def _check_input(self, x: mx.array, sequence: bool) -> None:
        """Layer-specific checks of the input (RLeaky's recurrent features)."""

    # Learnable parameters the ops clamp to [0, 1] (gradient zero outside).
    _unit_params: tuple = ()

    def _check_unit_params(self) -> None:
        """Warn once per layer when a learnable parameter that the op clamps
        to [0, 1] (beta...) has left it: its gradient is then zero and it
        stops learning. Fixed parameters (the default) cost nothing here."""
        for name in self._unit_params:
            if name in self._no_grad or name in self._warned:
                continue
            p = self.get(name)
            # Once per array, not per call: reading the value waits for it,
            # and a stepped layer is called T times between two updates of p.
            if not isinstance(p, mx.array) or self._checked.get(name) is p:
                continue
            try:
                out = bool(mx.any((p < 0) | (p > 1)).item())
            except ValueError:  # under mx.compile / mx.vmap: no value to read
                continue
            self._checked[name] = p
            if out:
                self._warned.add(name)
                warnings.warn(
                    f"[{type(self).__name__}] learnable {name} has values outside [0, 1] "
                    f"(min {mx.min(p).item():.4g}, max {mx.max(p).item():.4g}); the op "
                    f"clamps it, so the gradient of those values is zero and they stop "
                    f"learning (see docs/layers.md, Parameters)", UserWarning, stacklevel=4)

    def _inhibition_mask(self, mem: mx.array) -> mx.array:
        """snnTorch's fire_inhibition: per row, only the neuron with the
        largest ``mem - threshold`` may spike. ``mem`` is ``[T, B, N]``."""
        if mem.ndim != 3:
            raise ValueError(f"[{type(self).__name__}] inhibition needs [batch, features] "
                             f"inputs (one winner per row, as snnTorch); got neuron shape "
                             f"{tuple(mem.shape[1:])}")
        winner = mx.argmax(mem - self.threshold, axis=-1)
        return (mx.arange(mem.shape[-1]) == winner[..., None]).astype(mem.dtype)

    def _extra_repr(self) -> str:
        params = ", ".join(
            (f"{k}={v.item():.6g}" if v.size == 1 else f"{k}={tuple(v.shape)}")
            + ("" if k in self._no_grad else " (learned)")
            for k, v in self.items() if isinstance(v, mx.array) and not k.startswith("_"))
        reset = "" if self.reset_mechanism is None else \
            f", reset_mechanism={self.reset_mechanism!r}"
        return params + reset


class LIF(SpikingNeuron):
    """Base of the leaky integrate-and-fire families: adds ``beta``
    (snnTorch's ``LIF``)."""

    _unit_params = ("beta",)

    def __init__(self, beta, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_beta=False,
                 learn_threshold=False, reset_mechanism="subtract", state_quant=False,
                 output=False, graded_spikes_factor=None, learn_graded_spikes_factor=False,
                 backend="auto"):
        super().__init__(threshold, spike_grad, surrogate_disable, init_hidden, inhibition,
                         learn_threshold, reset_mechanism, state_quant, output,
                         graded_spikes_factor, learn_graded_spikes_factor, backend)
        self._param("beta", beta, learn_beta)


class MembraneLIF(LIF):
    """Base of the LIF families whose only state is the membrane (Leaky, IF,
    Lapicque): stepping ``spk, mem = layer(x_t, mem)`` and whole sequences
    ``spk, mem = layer.sequence(x, mem=None, output_mem="last")``."""

    _states = ("mem",)

    def __call__(self, input_: mx.array, mem: mx.array | None = None):
        return self._forward(input_, {"mem": mem}, sequence=False)

    def sequence(self, x: mx.array, mem: mx.array | None = None, *,
                 output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S],
        mem)``, ``mem`` ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"mem": mem}, sequence=True, output_mem=output_mem)


def reset(net: nn.Module) -> nn.Module:
    """Reset the hidden states of every neuron layer inside ``net`` (like
    ``snntorch.utils.reset``, but only for the layers of ``net``).

    >>> import mlx.nn, flashsnn as fs
    >>> net = mlx.nn.Sequential(mlx.nn.Linear(4, 3), fs.nn.Leaky(beta=0.9, init_hidden=True))
    >>> _ = fs.nn.reset(net)
    """
    for m in net.modules():
        if isinstance(m, SpikingNeuron):
            m.reset_mem()
    return net
