"""``flashsnn train --model mamba-spike``: the options that only Mamba-Spike
takes, and its run. :mod:`flashsnn.train.cli` owns the command and the
options both models share.

    flashsnn train --model mamba-spike                        # digits as ON/OFF frames
    flashsnn train --model mamba-spike --data nmnist --path ~/data/N-MNIST
    flashsnn train --model mamba-spike --data dvs_gesture --path ~/data/DvsGesture \\
        --steps 500 --bin-us 1000 --denoise-us 10000
    flashsnn train --model mamba-spike --data ntidigits --path ~/data/n-tidigits
"""

from __future__ import annotations

import argparse

from ..models.mamba_spike import NEURONS
from .mamba_spike_data import AUDIO_SETS, EVENT_SETS, FRAME_SETS

DATA = ("digits",) + EVENT_SETS
# dest -> flag, for "only with --model ..." errors
ONLY = {"channels": "--channels", "d_model": "--d-model", "layers": "--layers",
        "d_state": "--d-state", "threshold": "--threshold", "neuron": "--neuron",
        "gain": "--gain",
        "bin_us": "--bin-us", "denoise_us": "--denoise-us"}


def add_arguments(p: argparse.ArgumentParser, positive_int, positive_float) -> None:
    g = p.add_argument_group(
        "Mamba-Spike (--model mamba-spike)",
        "A spiking convolutional front end feeding Mamba-1 blocks on the fused selective "
        "scan, trained with the public code's recipe (AdamW lr 1e-3, weight decay 1e-4, "
        "cosine to 1e-5, clipping at 1). Data: digits (default; ON/OFF frames, 8x8, T 16) "
        f"or an event folder: {', '.join(FRAME_SETS)} (frames) or {', '.join(AUDIO_SETS)} "
        "(audio channels, one-row frames) (docs/events.md). Model sizes default "
        "to a CI-sized one for digits and to the recipe's preset for event sets (SHD, which "
        "has no recipe: N-TIDIGITS's model over 100 steps) "
        "(docs/mamba-spike.md).")
    g.add_argument("--channels", type=positive_int, metavar="C",
                   help="the front end's last conv channels (digits: 32)")
    g.add_argument("--d-model", type=positive_int, metavar="N", help="backbone width (64)")
    g.add_argument("--layers", type=positive_int, metavar="N", help="Mamba blocks (2)")
    g.add_argument("--d-state", type=positive_int, metavar="N", help="scan states (16)")
    g.add_argument("--threshold", type=positive_float, metavar="V",
                   help="the LIF layers' threshold (digits 0.5, events 1)")
    g.add_argument("--neuron", choices=NEURONS, default=None,
                   help="the front end's neuron: leaky (the public code's, default), alif "
                        "(adaptive threshold) or synaptic (synaptic current)")
    g.add_argument("--gain", type=positive_float, metavar="G",
                   help="digits only: scales the ON/OFF spike probabilities (5)")
    g.add_argument("--bin-us", type=positive_int, metavar="US",
                   help="events only: bins of this many microseconds (default: the sample's "
                        "span in --steps equal bins)")
    g.add_argument("--denoise-us", type=positive_int, metavar="US",
                   help="events only: drop events with no neighbour event within US "
                        "microseconds before (the recipes' visual sets use 10000)")


def misuse(args: argparse.Namespace) -> str | None:
    """Why ``args`` mix the two models' options, or None."""
    if args.model == "mamba-spike":
        for dest, flag in (("preset", "--preset"), ("hidden", "--hidden"), ("beta", "--beta")):
            if getattr(args, dest) is not None:
                return f"{flag} is an option of --model mlp, not mamba-spike"
        if args.data == "mnist":
            return ("--data mnist is for --model mlp; Mamba-Spike takes digits or an event "
                    f"set: {', '.join(DATA)}")
        return None
    given = [flag for dest, flag in ONLY.items() if getattr(args, dest) is not None]
    if given:
        return f"{', '.join(given)}: only with --model mamba-spike"
    if args.data not in ("digits", "mnist"):
        return f"--data {args.data} is for --model mamba-spike; the MLP takes digits or mnist"
    return None


def run(args: argparse.Namespace, fail) -> int:
    from .mamba_spike import MambaSpikeConfig, train_mamba_spike

    backend = args.backend
    cfg = MambaSpikeConfig(
        data=args.data, path=args.path, epochs=args.epochs, batch_size=args.batch_size,
        steps=args.steps, channels=args.channels, d_model=args.d_model, n_layers=args.layers,
        d_state=args.d_state, threshold=args.threshold, neuron=args.neuron or "leaky",
        gain=args.gain, bin_us=args.bin_us,
        denoise_us=args.denoise_us, seed=args.seed, lif_backend=backend, scan_backend=backend, out=args.out,
        limit_train=args.limit_train, limit_test=args.limit_test,
        progress=not args.no_progress, compile=not args.no_compile, device=args.device,
        save=args.save, resume=args.resume,
        **({"lr": args.lr} if args.lr is not None else {}))
    try:
        train_mamba_spike(cfg)
    except (FileNotFoundError, ValueError, ImportError, OSError) as e:
        return fail(str(e))
    return 0
