"""Pipelines are thin: no module under `jaxsci/pipelines/` defines an equinox module (a model,
a network, any `eqx.Module`) or runs a loop over time with `lax.scan`, `lax.fori_loop` or
`lax.while_loop`. Algorithms live in the library; a pipeline maps a config to library
objects, calls them, and writes files and plots."""

import ast
import importlib
import inspect
from pathlib import Path

import equinox as eqx
import pytest

import jaxsci.pipelines

PIPELINES = Path(jaxsci.pipelines.__file__).parent
MODULES = sorted(p for p in PIPELINES.glob("*.py"))
LOOPS = {"scan", "fori_loop", "while_loop"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


def _offences(path: Path) -> set[str]:
    """'class NAME' for classes with an equinox base, 'lax.LOOP' for loop calls (by AST)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    from_equinox, from_lax, lax_aliases = set(), set(), {"lax", "jax.lax"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.asname or a.name for a in node.names}
            if node.module.split(".")[0] == "equinox":
                from_equinox |= names
            if node.module == "jax.lax":
                from_lax |= {a.asname or a.name for a in node.names if a.name in LOOPS}
            if node.module == "jax":
                lax_aliases |= {a.asname or a.name for a in node.names if a.name == "lax"}
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "jax.lax" and a.asname:
                    lax_aliases.add(a.asname)
    equinox_roots = {"eqx", "equinox"}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = _dotted(base)
                if name.split(".")[0] in equinox_roots or name in from_equinox:
                    out.add(f"class {node.name}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, last = name.rpartition(".")
            if (last in LOOPS and head in lax_aliases) or name in from_lax:
                out.add(f"lax.{last or name}")
    return out


def test_there_are_pipeline_modules():
    assert len(MODULES) >= 8


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_no_equinox_modules_and_no_loops_over_time(path):
    found = _offences(path)
    module = importlib.import_module(f"jaxsci.pipelines.{path.stem}")
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and obj.__module__ == module.__name__:
            if issubclass(obj, eqx.Module):  # also through a library base class
                found.add(f"class {name}")
    assert not found, (
        f"{path.name} defines equinox modules or loops over time: {sorted(found)}; "
        "move them into the library"
    )


def test_the_checker_finds_what_it_must(tmp_path):
    source = """
import equinox as eqx
import jax
from jax import lax as L
from jax.lax import fori_loop
from equinox import Module

class A(eqx.Module):
    pass

class B(Module):
    pass

def f(x):
    class C(eqx.nn.Linear):
        pass
    jax.lax.scan(None, x, None)
    L.while_loop(None, None, x)
    return fori_loop(0, 1, None, x)
"""
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _offences(path) == {
        "class A",
        "class B",
        "class C",
        "lax.scan",
        "lax.while_loop",
        "lax.fori_loop",
    }
