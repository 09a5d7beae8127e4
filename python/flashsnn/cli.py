"""The ``flashsnn`` command: ``flashsnn train``, ``flashsnn bench`` and
``flashsnn bench-train``.

Each subcommand lives in its own module with ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "train": ("flashsnn.train.cli", "train the spiking MLP on digits (or MNIST) with BPTT"),
    "bench": ("flashsnn.bench.runner", "time the fused kernels against the other paths"),
    "bench-train": ("flashsnn.bench.train_step",
                    "time one training step (MLP, conv SNN) against other SNN libraries"),
}


def fail(command: str, msg: str) -> int:
    """A subcommand's usage error: ``flashsnn COMMAND: error: MSG`` on
    stderr, as argparse says its own, and 2, argparse's exit status for
    them. Each subcommand binds its name (``functools.partial(fail,
    "bench")``)."""
    print(f"flashsnn {command}: error: {msg}", file=sys.stderr)
    return 2


class _Version(argparse.Action):
    """``--version``: flashsnn's and MLX's, imported only when asked."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        import mlx.core as mx

        import flashsnn
        print(f"flashsnn {flashsnn.__version__} (MLX {mx.__version__})")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flashsnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version, help="print flashsnn's and MLX's versions")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if a in COMMANDS), None)
    modules = {}
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:  # import only the command that runs (torch etc. load lazily)
            modules[name] = importlib.import_module(module)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
