"""Checkpoints of ``flashsnn train`` (``--save DIR``, ``--resume DIR``).

A checkpoint is a folder:

    checkpoint.json          what the files are: format, model kind, the run's
                             config, the epoch it ends, the epochs so far, the
                             random state (numpy's batch order, MLX keys), and
                             each file's size and SHA-256
    model-e<N>.safetensors   the model's parameters after epoch N (MLX's own
                             safetensors writer)
    optimizer-e<N>.safetensors   the optimizer's state (step, learning rate,
                             moments)

Saving writes the new epoch's files under new names, then replaces
``checkpoint.json`` in one ``os.replace`` (after an fsync), then removes the
files of earlier epochs: a run killed at any moment leaves a checkpoint.json
that names complete files, the old epoch's or the new one's. Loading checks
the format, the model kind, the config fields that shape the model and the
data, and each file's size and hash before touching the model, so a corrupt
or mismatched checkpoint raises a ``ValueError`` that names the file or the
fields, and nothing in the folder changes.

Resuming restores the parameters, the optimizer's state and the random state
the next epoch starts from (numpy's generator of the batch order and the
explicit MLX keys the spike coding draws from; neither model draws from MLX's
global random state after its initialization, which MLX offers no way to set
back), so its losses are those of an uninterrupted run
(``tests/train/test_checkpoint.py``). ``--epochs`` may differ (a longer run);
so may the fields in ``RUN_ONLY``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

FORMAT = 1
INDEX = "checkpoint.json"
# Config fields a resumed run may change: where and how it runs, how long.
RUN_ONLY = ("epochs", "out", "progress", "compile", "device", "save", "resume")


def _op(kind: str) -> str:
    return f"train {kind} checkpoint"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_arrays(directory: str, name: str, tree) -> dict:
    """``tree``'s arrays to ``directory/name`` (via a temporary name)."""
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{os.getpid()}-{name}")
    mx.save_safetensors(tmp, dict(tree_flatten(tree)))
    os.replace(tmp, path)
    return {"file": name, "bytes": os.path.getsize(path), "sha256": _sha256(path)}


def save(directory: str, model, optimizer, *, kind: str, config: dict, epoch: int,
         epochs: list, rng: np.random.Generator, keys: dict, extra: dict | None = None) -> str:
    """Write the checkpoint after ``epoch`` into ``directory``; returns the
    index's path. ``keys``: MLX random keys the next epoch draws from, by
    name; ``extra``: JSON values the run wants back (load returns them)."""
    os.makedirs(directory, exist_ok=True)
    files = {"model": _write_arrays(directory, f"model-e{epoch}.safetensors",
                                    model.parameters()),
             "optimizer": _write_arrays(directory, f"optimizer-e{epoch}.safetensors",
                                        optimizer.state)}
    index = {"format": FORMAT, "model": kind, "epoch": epoch, "config": config,
             "epochs": epochs, "files": files, "extra": extra or {},
             "random": {"numpy": rng.bit_generator.state,
                        "mlx": {k: np.array(v).tolist() for k, v in keys.items()}}}
    path = os.path.join(directory, INDEX)
    tmp = os.path.join(directory, f".{os.getpid()}-{INDEX}")
    with open(tmp, "w") as f:
        json.dump(index, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    keep = {v["file"] for v in files.values()}
    for old in glob.glob(os.path.join(directory, "*-e*.safetensors")):
        if os.path.basename(old) not in keep:
            os.remove(old)
    return path


def _read_index(directory: str, kind: str) -> dict:
    op = _op(kind)
    path = os.path.join(directory, INDEX)
    if not os.path.isdir(directory):
        raise ValueError(f"[{op}] {directory}: no such directory")
    if not os.path.isfile(path):
        raise ValueError(f"[{op}] {directory} is not a checkpoint: it has no {INDEX} "
                         "(written by flashsnn train --save DIR)")
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"[{op}] {path} is corrupt: {e}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"[{op}] {path}: format {index.get('format') if isinstance(index, dict) else None!r} "
                         f"is not {FORMAT}, the one this flashsnn reads")
    if index.get("model") != kind:
        raise ValueError(f"[{op}] {path} holds a --model {index.get('model')} run, "
                         f"not --model {kind}")
    return index


def _differences(saved: dict, config: dict) -> list:
    keys = sorted((set(saved) | set(config)) - set(RUN_ONLY))
    return [f"{k}: checkpoint {saved.get(k)!r}, now {config.get(k)!r}"
            for k in keys if saved.get(k) != config.get(k)]


def _load_arrays(directory: str, entry: dict, what: str, op: str) -> dict:
    path = os.path.join(directory, entry["file"])
    if not os.path.isfile(path):
        raise ValueError(f"[{op}] {path} is missing ({what}, named by {INDEX})")
    if os.path.getsize(path) != entry["bytes"] or _sha256(path) != entry["sha256"]:
        raise ValueError(f"[{op}] {path} is corrupt: its size or SHA-256 is not the one "
                         f"{INDEX} recorded when it was written")
    return mx.load(path)


def _match(op: str, path: str, what: str, got: dict, want: dict) -> None:
    """``got`` (from the file) has exactly ``want``'s names and shapes."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise ValueError(f"[{op}] {path} does not fit this {what}: "
                         + "; ".join(s for s in (
                             f"missing {', '.join(missing[:5])}" if missing else "",
                             f"unexpected {', '.join(extra[:5])}" if extra else "") if s))
    for k, v in want.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise ValueError(f"[{op}] {path}: {k} has shape {tuple(got[k].shape)}, this "
                             f"{what} {tuple(v.shape)}")


def load(directory: str, model, optimizer, *, kind: str, config: dict,
         epochs: int | None = None) -> dict:
    """Restore ``model`` and ``optimizer`` from ``directory`` (before the
    training step is built: a compiled step holds the optimizer's state).
    ``epochs``: the run's total, which must lie past the checkpoint's (not
    checked when None).
    Returns ``{"epoch", "epochs", "rng", "keys", "extra"}``: the epoch the
    checkpoint ends, the epochs' records, a numpy Generator and the MLX keys
    to go on with, and save's ``extra``. Checks everything before changing
    anything."""
    op = _op(kind)
    index = _read_index(directory, kind)
    if epochs is not None and int(index["epoch"]) >= epochs:
        raise ValueError(f"[{op}] {directory} already ends epoch {index['epoch']} of "
                         f"--epochs {epochs}: ask for more epochs to go on")
    diff = _differences(index.get("config", {}), config)
    if diff:
        raise ValueError(f"[{op}] {directory} was trained with another configuration "
                         f"({'; '.join(diff)}); only {', '.join(RUN_ONLY)} may change on "
                         "--resume")
    files = index["files"]
    params = _load_arrays(directory, files["model"], "the model", op)
    state = _load_arrays(directory, files["optimizer"], "the optimizer's state", op)
    _match(op, os.path.join(directory, files["model"]["file"]), "model", params,
           dict(tree_flatten(model.parameters())))
    model.update(tree_unflatten(list(params.items())))
    optimizer.state = tree_unflatten(list(state.items()))
    rng = np.random.default_rng()
    rng.bit_generator.state = index["random"]["numpy"]
    keys = {k: mx.array(v, dtype=mx.uint32) for k, v in index["random"]["mlx"].items()}
    mx.eval(model.parameters(), optimizer.state)
    return {"epoch": int(index["epoch"]), "epochs": list(index["epochs"]), "rng": rng,
            "keys": keys, "extra": index.get("extra", {})}
