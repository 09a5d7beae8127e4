"""``flashsnn train``: train the mlx-snn paper's spiking MLP with BPTT, or
Mamba-Spike (``--model mamba-spike``, :mod:`flashsnn.train.cli_mamba`).

    flashsnn train                                   # 8x8 digits, preset C1, fused LIF
    flashsnn train --model mamba-spike               # Mamba-Spike on the digits as ON/OFF frames
    flashsnn train --backend reference               # the same model on the pure-MLX path
    flashsnn train --device gpu                      # MLX's CUDA or Metal GPU
    flashsnn train --no-compile                      # the step without mx.compile
    flashsnn train --data mnist --path ~/data/mnist --preset C5
"""

from __future__ import annotations

import argparse
from functools import partial

from .._device import DEVICES
from ..cli import fail
from ..data import NAMES
from ..models import PRESETS
from . import cli_mamba

_fail = partial(fail, "train")

MODELS = ("mlp", "mamba-spike")

BACKENDS = ("fused", "reference")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {s!r}")
    return v


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {s!r}") from None


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {s!r}")
    return v


def _unit_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1]; got {s!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1]; got {s!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    presets = "; ".join(f"{k}: beta {v.beta}, hidden {v.hidden}, lr {v.lr:g}, batch "
                        f"{v.batch_size}, {v.epochs} epochs" for k, v in PRESETS.items())
    p.description = ("Train the mlx-snn paper's spiking MLP (input -> Linear -> LIF -> "
                     "Linear -> LIF without reset; rate-coded input; cross entropy on the final "
                     "membrane; Adam) with BPTT, each layer's whole sequence in one "
                     "flashsnn.ops.leaky call. Presets: " + presets + ".")
    p.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp: the spiking MLP (default); mamba-spike: spiking conv front end "
                        "+ Mamba-1 backbone (its own options below)")
    p.add_argument("--data", choices=tuple(dict.fromkeys(NAMES + cli_mamba.DATA)),
                   default="digits",
                   help="digits: scikit-learn's bundled 8x8 digits (default, no download); "
                        "mnist: IDX files in --path (mlp); nmnist, dvs_gesture, cifar10_dvs, "
                        "ntidigits, shd: event files in --path (mamba-spike, docs/events.md)")
    p.add_argument("--path", metavar="DIR", help="folder with the MNIST IDX files "
                   "(train-images-idx3-ubyte[.gz], ...) or the event dataset")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="mlp: the paper's configuration (default C1); the options below "
                        "override it")
    p.add_argument("--epochs", type=_positive_int, metavar="N", help="epochs (preset: 25, C5: 15)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="batch size (preset: 128, C3: 256)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps T (preset: 25)")
    p.add_argument("--hidden", type=_positive_int, metavar="N", help="hidden LIF neurons (preset)")
    p.add_argument("--lr", type=_positive_float, metavar="LR", help="Adam learning rate (preset)")
    p.add_argument("--beta", type=_unit_float, metavar="B",
                   help="membrane decay of both layers (preset)")
    p.add_argument("--seed", type=_int, default=0, metavar="N",
                   help="seed of the weights, batch order and spike coding (default 0); the "
                        "digits' train/test split is fixed")
    p.add_argument("--backend", choices=BACKENDS, default="fused",
                   help="fused: the LIF kernel (default); reference: the same model on the "
                        "pure-MLX per-step path")
    p.add_argument("--out", metavar="DIR",
                   help="where summary.json and training.png go "
                        "(default runs/train-DATA-PRESET-BACKEND)")
    p.add_argument("--limit-train", type=_positive_int, metavar="N",
                   help="train on the first N training samples only")
    p.add_argument("--limit-test", type=_positive_int, metavar="N",
                   help="test on the first N test samples only")
    p.add_argument("--device", choices=DEVICES, default=None,
                   help="where MLX runs (default: MLX's default device, the GPU where MLX has "
                        "one); gpu needs MLX's CUDA build or Apple silicon")
    p.add_argument("--no-compile", action="store_true",
                   help="run the training step without mx.compile (default: the whole step "
                        "is one compiled function)")
    p.add_argument("--save", metavar="DIR", help="write a checkpoint into DIR after every "
                   "epoch (model and optimizer state in safetensors, config, epoch, random "
                   "state; replaced atomically: docs/training.md)")
    p.add_argument("--resume", metavar="DIR", help="go on from the checkpoint in DIR (same "
                   "options; --epochs is the total and may grow) and keep saving there "
                   "unless --save names another folder")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is off anyway when stderr is not a terminal)")
    cli_mamba.add_arguments(p, _positive_int, _positive_float)


def run(args: argparse.Namespace) -> int:
    from .._blas import notice
    notice(args.device, "flashsnn train")  # once, on Linux CPU without OpenBLAS
    from .. import fused_unavailable_reason
    from .._device import resolve_device
    from .loop import TrainConfig, train

    why = cli_mamba.misuse(args)
    if why:
        return _fail(why)
    if args.model == "mlp" and args.data == "mnist" and not args.path:
        return _fail("--data mnist needs --path DIR, the folder with the MNIST IDX files "
                     "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                     "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")
    if args.model == "mlp" and args.data != "mnist" and args.path:
        return _fail(f"--path is only used with --data mnist (the {args.data} ship with "
                     "scikit-learn)")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        return _fail(f"--device {args.device}: {e}")
    if args.backend == "fused":
        why = fused_unavailable_reason(device)
        if why:
            return _fail(f"--backend fused: no fused kernel here ({why}); "
                         "use --backend reference")
    if args.model == "mamba-spike":
        return cli_mamba.run(args, _fail)
    cfg = TrainConfig(data=args.data, path=args.path, preset=args.preset or "C1",
                      epochs=args.epochs,
                      batch_size=args.batch_size, steps=args.steps, hidden=args.hidden,
                      lr=args.lr, beta=args.beta, seed=args.seed, backend=args.backend,
                      out=args.out, limit_train=args.limit_train, limit_test=args.limit_test,
                      progress=not args.no_progress, compile=not args.no_compile,
                      device=args.device, save=args.save, resume=args.resume)
    try:
        train(cfg)
    except (FileNotFoundError, ValueError, ImportError, OSError) as e:
        return _fail(str(e))
    return 0
