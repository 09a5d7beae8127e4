"""The docstring examples of the layers and of the reference-backed family
ops run (tests/test_docs.py covers the modules that existed before them), and
so do the code blocks of docs/layers.md, in order, sharing one namespace."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

LAYERS_MD = Path(__file__).resolve().parents[2] / "docs" / "layers.md"

FAMILIES = ["synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "alif", "izhikevich"]
MODULES = (["flashsnn.nn", "flashsnn.nn.neurons", "flashsnn.nn.leaky"]
           + [f"flashsnn.nn.{f}" for f in FAMILIES]
           + [f"flashsnn.ops.{f}" for f in FAMILIES]
           + [f"flashsnn.reference.{f}" for f in FAMILIES])


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_layers_md_code_runs():
    blocks = re.findall(r"```python\n(.*?)```", LAYERS_MD.read_text(), re.S)
    assert len(blocks) >= 4
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/layers.md block {i}", "exec"), namespace)
