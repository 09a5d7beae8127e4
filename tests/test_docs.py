"""The documentation's examples run: README code blocks and docstring examples."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["flashsnn", "flashsnn.ops.leaky", "flashsnn.surrogate", "flashsnn.reference.leaky",
           "flashsnn.models.mamba_spike"]


def python_blocks(path: Path) -> list:
    """The ```python blocks of a Markdown file, but those marked as not run
    (an HTML comment ``<!-- signature ... -->`` on the line before)."""
    blocks = []
    for m in re.finditer(r"(<!-- signature[^\n]*-->\n)?```python\n(.*?)```", path.read_text(),
                         re.S):
        if m.group(1) is None:
            blocks.append(m.group(2))
    return blocks


def readme_blocks():
    return python_blocks(ROOT / "README.md")


@pytest.mark.parametrize("i", range(len(readme_blocks())))
def test_readme_python_blocks_run(i):
    exec(compile(readme_blocks()[i], f"README.md block {i}", "exec"), {})


DOC_BLOCKS = [(p.name, i) for p in sorted((ROOT / "docs").glob("*.md"))
              for i in range(len(python_blocks(p)))]


@pytest.mark.parametrize("name, i", DOC_BLOCKS, ids=[f"{n}:{i}" for n, i in DOC_BLOCKS])
def test_docs_python_blocks_run_alone(name, i):
    """Each block of docs/*.md runs on its own, in a fresh namespace: a reader
    copies one block, not the page."""
    code = python_blocks(ROOT / "docs" / name)[i]
    exec(compile(code, f"docs/{name} block {i}", "exec"), {})


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
