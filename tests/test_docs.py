"""The documentation's examples run: README code blocks and docstring examples."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["flashsnn", "flashsnn.ops.leaky", "flashsnn.surrogate", "flashsnn.reference.leaky",
           "flashsnn.models.mamba_spike"]


def readme_blocks():
    text = (ROOT / "README.md").read_text()
    blocks = []
    for m in re.finditer(r"(<!-- signature[^\n]*-->\n)?```python\n(.*?)```", text, re.S):
        if m.group(1) is None:
            blocks.append(m.group(2))
    return blocks


@pytest.mark.parametrize("i", range(len(readme_blocks())))
def test_readme_python_blocks_run(i):
    exec(compile(readme_blocks()[i], f"README.md block {i}", "exec"), {})


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
