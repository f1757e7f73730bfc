"""Security hygiene: the package never deserializes or evaluates code.

Checkpoints must go through Orbax (plain arrays and JSON metadata), so the
package imports no pickle-like module and calls no ``eval``/``exec``/
``compile``/``__import__``. The scan walks the syntax tree, so identifiers
that merely contain these words (``evaluate``, ``executor``) never match.
"""

import ast
import pathlib

import pytest

import optaxswap

PACKAGE_DIR = pathlib.Path(optaxswap.__file__).parent
SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))

# Modules that turn bytes into arbitrary Python objects (or run code).
FORBIDDEN_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
)
FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "__import__"})


def forbidden_uses(source: str) -> list[str]:
    """Every forbidden import, call or pickle-enabling keyword in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        found += [
            f"line {node.lineno}: import {module}"
            for module in modules
            if module.split(".")[0] in FORBIDDEN_MODULES
        ]
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
            found.append(f"line {node.lineno}: {node.id}")
        if isinstance(node, ast.Attribute) and (
            node.attr in FORBIDDEN_CALLS or _is_forbidden_module(node.value)
        ):
            # builtins.eval or pickle.loads, reached through an attribute.
            found.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            found.append(f"line {node.value.lineno}: allow_pickle=")
    return found


def _is_forbidden_module(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in FORBIDDEN_MODULES


def test_package_has_source_files_to_scan():
    assert PACKAGE_DIR / "__init__.py" in SOURCES
    assert len(SOURCES) >= 5


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_package_source_uses_no_pickle_eval_or_exec(path):
    assert forbidden_uses(path.read_text()) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import cloudpickle as cp",
        "from pickle import loads",
        "from marshal import loads",
        "import shelve.x",
        "eval('1 + 1')",
        "exec('x = 1')",
        "fn = eval",
        "import builtins\nbuiltins.exec('x = 1')",
        "compile('1', '<string>', 'eval')",
        "__import__('os')",
        "import numpy as np\nnp.load('f.npy', allow_pickle=True)",
    ],
)
def test_scanner_flags_forbidden_code(snippet):
    assert forbidden_uses(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "def evaluate(x):\n    return x",
        "executor = None",
        "pickled_name = 'eval'",
        "import picklescan_helpers",
        "result = model.evaluate(data)",
        "import json\njson.loads('{}')",
    ],
)
def test_scanner_ignores_names_that_only_contain_the_words(snippet):
    assert forbidden_uses(snippet) == []
