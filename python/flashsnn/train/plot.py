"""The training report figure: accuracy and loss per epoch, a spike raster
of one test sample, and its output membranes. Drawn with matplotlib's Agg
canvas directly (no pyplot), so no GUI backend or global state is touched."""

from __future__ import annotations

import numpy as np


def save_report(path: str, summary: dict, sample: dict) -> None:
    """Write the PNG.

    Args:
        path: the PNG file.
        summary: the run summary (``epochs``: per-epoch dicts with
            ``test_accuracy`` and ``train_loss``; ``untrained_test_accuracy``).
        sample: one test sample: ``input`` ``[T, D]``, ``hidden`` ``[T, h]``
            spikes, ``mem`` ``[T, C]`` output membranes, ``label``,
            ``prediction``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("[flashsnn train] the plot needs matplotlib: pip install "
                          "'flashsnn[train]' (or pip install matplotlib)") from None

    fig = Figure(figsize=(13, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax_acc, ax_raster, ax_mem = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.3, 1]})

    ep = [0] + [e["epoch"] for e in summary["epochs"]]
    acc = [summary["untrained_test_accuracy"]] + [e["test_accuracy"] for e in summary["epochs"]]
    ax_acc.plot(ep, [100 * a for a in acc], "o-", color="tab:blue", label="test accuracy")
    ax_acc.set_xlabel("epoch (0 = untrained)")
    ax_acc.set_ylabel("test accuracy (%)", color="tab:blue")
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(alpha=0.3)
    if summary["epochs"]:
        ax_loss = ax_acc.twinx()
        ax_loss.plot(ep[1:], [e["train_loss"] for e in summary["epochs"]], "s--",
                     color="tab:red", ms=3)
        ax_loss.set_ylabel("train loss", color="tab:red")
    cfg = summary["config"]
    ax_acc.set_title(f"{cfg['data']} {cfg['preset']} ({cfg['backend']}): "
                     f"{100 * summary['final_test_accuracy']:.1f}%")

    inp, hid = np.asarray(sample["input"]), np.asarray(sample["hidden"])
    D = inp.shape[1]
    t_in, n_in = np.nonzero(inp)
    t_h, n_h = np.nonzero(hid)
    ax_raster.scatter(t_in, n_in, s=3, marker="|", color="tab:gray", label=f"input ({D})")
    ax_raster.scatter(t_h, n_h + D, s=3, marker="|", color="tab:purple",
                      label=f"hidden ({hid.shape[1]})")
    ax_raster.axhline(D - 0.5, color="k", lw=0.5)
    ax_raster.set_xlim(-0.5, inp.shape[0] - 0.5)
    ax_raster.set_ylim(-0.5, D + hid.shape[1] - 0.5)
    ax_raster.set_xlabel("time step")
    ax_raster.set_ylabel("neuron (input below the line, hidden above)")
    ax_raster.set_title(f"spike raster, test sample 0 (label {sample['label']})")
    ax_raster.legend(loc="upper right", fontsize=7, markerscale=3)

    mem = np.asarray(sample["mem"])
    for c in range(mem.shape[1]):
        hit = c == sample["label"]
        ax_mem.plot(np.arange(mem.shape[0]), mem[:, c], lw=2.2 if hit else 0.8,
                    color="tab:green" if hit else "0.6", label=f"class {c}" if hit else None)
    ax_mem.set_xlabel("time step")
    ax_mem.set_ylabel("output membrane U (no reset)")
    ax_mem.set_title(f"output layer: predicted {sample['prediction']}")
    ax_mem.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
