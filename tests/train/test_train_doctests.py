"""The docstring examples of the encoders, losses, data, model and training
modules run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "flashsnn.encoding", "flashsnn.encoding.rate", "flashsnn.encoding.latency",
    "flashsnn.encoding.delta", "flashsnn.encoding.eeg",
    "flashsnn.functional", "flashsnn.functional.loss", "flashsnn.functional.acc",
    "flashsnn.functional.bptt",
    "flashsnn.data", "flashsnn.data.idx", "flashsnn.data.datasets",
    "flashsnn.models.spiking_mlp", "flashsnn.models.spiking_cnn", "flashsnn.train.loop",
    "flashsnn.train.step", "flashsnn.train.mamba_spike", "flashsnn.train.mamba_spike_data",
    "flashsnn._device",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_training_md_python_blocks_run():
    import re
    from pathlib import Path
    md = Path(__file__).resolve().parents[2] / "docs" / "training.md"
    blocks = re.findall(r"```python\n(.*?)```", md.read_text(), re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/training.md block {i}", "exec"), {})
