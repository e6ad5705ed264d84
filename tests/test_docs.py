"""The documentation site's sources (`make docs` builds them; CI runs it with --strict).

Checked here, fast: every public name of every subpackage is documented by the API pages
(docs/api/*.md), the config-reference rows (`jaxsci.pipelines.schema_rows`) list every key
with the sibling-dependent sections per value, the generated config pages carry every key,
and the tutorial scripts split into cells as the docs hook expects.
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from jaxsci.pipelines import PIPELINES, schema_rows

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
HOOKS = ROOT / "docs" / "hooks"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _top_level_names() -> list[str]:
    """jaxsci.__all__: the subpackages and the names re-exported at the top level."""
    tree = ast.parse((ROOT / "jaxsci" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            return list(ast.literal_eval(node.value))
    raise AssertionError("jaxsci/__init__.py has no __all__")


def _subpackages() -> list[str]:
    """Every public subpackage: a folder of jaxsci/ with an __init__.py, not `_`-prefixed."""
    inits = (ROOT / "jaxsci").glob("*/__init__.py")
    return sorted(p.parent.name for p in inits if not p.parent.name.startswith("_"))


def _public(package: str) -> dict[str, str | None]:
    """Public name -> the sibling subpackage it is re-exported from (None: its own).

    Public = imported in the package's __init__.py as `X as X`."""
    tree = ast.parse((ROOT / "jaxsci" / package / "__init__.py").read_text())
    names: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            # `from ..filters import X as X`: re-exported from a sibling subpackage;
            # `from .._checks import X as X`: the package's own public name
            sibling = node.level == 2 and node.module in _subpackages()
            other = node.module if sibling else None
            for alias in node.names:
                if alias.asname is not None and alias.asname == alias.name:
                    names[alias.name] = other
    return names


def _directives(text: str) -> set[str]:
    return set(re.findall(r"^::: ([\w.]+)\s*$", text, flags=re.M))


def _references(text: str) -> set[str]:
    return set(re.findall(r"\]\[([\w.]+)\]", text))


PACKAGES = _subpackages()


def test_every_subpackage_is_listed():
    assert {"dynamics", "filters", "diffusion", "pipelines"} <= set(PACKAGES)
    nav = (ROOT / "mkdocs.yml").read_text()
    for package in PACKAGES:
        assert (API / f"{package}.md").exists(), f"docs/api/{package}.md is missing"
        assert f"api/{package}.md" in nav, f"docs/api/{package}.md is not in mkdocs.yml's nav"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_documented(package):
    """A name is documented by a `::: jaxsci.<package>.<name>` directive on its package's
    page, or, re-exported from a sibling subpackage, by a reference to it there
    (`[name][jaxsci.<sibling>.<name>]`) whose target the sibling's page documents."""
    page = (API / f"{package}.md").read_text()
    direct, refs = _directives(page), _references(page)
    missing = []
    for name, other in _public(package).items():
        if other is None:
            if f"jaxsci.{package}.{name}" not in direct:
                missing.append(f"::: jaxsci.{package}.{name}")
            continue
        target = f"jaxsci.{other}.{name}"
        documented = target in _directives((API / f"{other}.md").read_text())
        if target not in refs or not documented:
            missing.append(f"[{name}][{target}]")
    assert not missing, f"docs/api/{package}.md does not document: {missing}"


def test_no_directive_names_a_private_or_unknown_name():
    for page in sorted(API.glob("*.md")):
        for path in _directives(page.read_text()):
            parts = path.split(".")
            if len(parts) == 2:
                assert parts[1] in PACKAGES + _top_level_names(), f"{page.name}: {path}"
                continue
            package, name = parts[1], parts[2]
            assert name in _public(package), f"{page.name}: {path} is not public"


def test_top_level_names_are_on_the_index():
    names = _top_level_names()
    index = (API / "index.md").read_text()
    refs = _references(index)
    for name in names:
        if name in PACKAGES:
            assert f"({name}.md)" in index, name
        else:
            assert any(r.endswith(f".{name}") for r in refs), f"jaxsci.{name} is not linked"


# --- config reference pages ----------------------------------------------------------


@pytest.mark.parametrize("name", list(PIPELINES))
def test_config_page_lists_every_key_and_shipped_config(name):
    hook = _load(HOOKS / "config_reference.py")
    configs = hook._shipped_configs()
    page = hook.pipeline_page(name, PIPELINES[name], configs.get(name, []))
    for row in schema_rows(PIPELINES[name].schema):
        assert f"`{row.key}`" in page, row.key
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        uses = (yaml.safe_load(path.read_text()) or {}).get("pipeline") == name
        assert (f"configs/{path.name}" in page) == uses, path.name


# --- tutorial scripts --------------------------------------------------------------------


def test_tutorial_cells_split():
    cells = _load(HOOKS / "tutorial_cells.py")
    source = (
        '"""My title\n\nIntro *markdown*.\n"""\n\nimport math\n\n# %%\n# ## Part\n#\n'
        "# Prose.\nx = 1\n# not prose\ny = 2\n# %%\nprint(x)\n"
    )
    title, intro, parts = cells.split_cells(source)
    assert title == "My title" and intro == "Intro *markdown*."
    assert parts == [
        ("", "import math"),
        ("## Part\n\nProse.", "x = 1\n# not prose\ny = 2"),
        ("", "print(x)"),
    ]


def test_tutorial_scripts_follow_the_convention():
    cells = _load(HOOKS / "tutorial_cells.py")
    scripts = sorted((ROOT / "examples").glob("tutorial_*.py"))
    stems = {s.stem for s in scripts}
    assert {
        f"tutorial_{p}" for p in ("simulate", "assimilate", "infer", "learn", "sample")
    } <= stems
    nav = (ROOT / "mkdocs.yml").read_text()
    for script in scripts:
        source = script.read_text()
        title, _, parts = cells.split_cells(source)
        assert title and parts, script.name
        assert "argparse" not in source, f"{script.name}: tutorials take no arguments"
        page = f"tutorials/{script.stem.removeprefix('tutorial_')}.md"
        assert page in nav, f"{page} is not in mkdocs.yml's nav"
