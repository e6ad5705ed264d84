"""MkDocs hook: the config reference, one page per pipeline, generated from the schemas.

For every entry of `jaxsci.pipelines.PIPELINES` the page `config/<name>.md` lists every key
of its schema (`jaxsci.pipelines.schema_rows`, the rows `jaxsci list --schema` prints too):
type, default, allowed values or range and description; the keys of a section that depends
on an earlier key (a model's parameters on its name) in one table per value of that key;
and the shipped `configs/*.yaml` that run the pipeline. `config/index.md` lists the
pipelines.
"""

import importlib
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def _table(rows, base_depth: int) -> list[str]:
    lines = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for row in rows:
        indent = "&nbsp;&nbsp;" * (row.depth - base_depth)
        default = "*required*" if row.required else _code(row.default)
        allowed = ", ".join(_code(c) for c in row.constraints)
        kind = "section" if row.section and not row.default else row.type
        text = _cell(row.help)
        if row.objects:
            names = " or ".join(f"`{o}`" for o in row.objects)
            text += f" *From Python also: an instance of {names}.*"
        lines.append(f"| {indent}`{row.key}` | {_cell(kind)} | {default} | {allowed} | {text} |")
    return lines


def _shipped_configs() -> dict[str, list[Path]]:
    by_pipeline: dict[str, list[Path]] = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        by_pipeline.setdefault(str(raw.get("pipeline", "")), []).append(path)
    return by_pipeline


def pipeline_page(name: str, pipeline, configs: list[Path]) -> str:
    """The markdown page of pipeline `name`."""
    from jaxsci.pipelines import schema_rows

    module = importlib.import_module(pipeline.run.__module__)
    parts = [f"# `{name}`", f"*{pipeline.description}*", (module.__doc__ or "").strip()]
    parts.append(
        "Every key, its type, default and allowed values; a config gives only the keys it "
        f"changes (`pipeline: {name}` and the required keys). "
        f"`jaxsci run CONFIG.yaml --dry-run` prints a config with every default filled in."
    )
    rows = schema_rows(pipeline.schema)
    parts.append("## Keys")
    parts.append("\n".join(_table([r for r in rows if not r.when], 0)))
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        if row.when:
            section = row.key.rsplit(".", 1)[0]
            groups.setdefault((section, row.when), []).append(row)
    if groups:
        parts.append("## Keys that depend on another key")
    for (section, when), group in groups.items():
        condition = ", ".join(f"`{c}`" for c in when.split(", "))
        parts.append(f"### `{section}` when {condition}")
        parts.append("\n".join(_table(group, group[0].depth)))
    parts.append("## Shipped configs")
    if configs:
        for path in configs:
            text = path.read_text().rstrip()
            body = "\n".join("    " + line if line else "" for line in text.splitlines())
            parts.append(
                f'??? example "configs/{path.name}"\n\n    ```yaml\n{body}\n    ```\n\n'
                f"    `jaxsci run configs/{path.name}`"
            )
    else:
        parts.append("No shipped config uses this pipeline.")
    return "\n\n".join(p for p in parts if p) + "\n"


def index_page(pipelines) -> str:
    lines = [
        "# Config reference",
        "",
        "A config is a YAML file whose `pipeline:` key picks one of the pipelines below; "
        "`jaxsci run CONFIG.yaml` validates it against the pipeline's schema (an unknown key "
        "or a value out of range is an error naming the key) and runs it. These pages are "
        "generated from the schemas, as `jaxsci list --schema` is.",
        "",
        "| pipeline | what it does |",
        "|---|---|",
    ]
    for name, pipeline in pipelines.items():
        lines.append(f"| [`{name}`]({name}.md) | {_cell(pipeline.description)} |")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    from mkdocs.structure.files import File  # here: tests import this module without mkdocs

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from jaxsci.pipelines import PIPELINES

    configs = _shipped_configs()
    files.append(File.generated(config, "config/index.md", content=index_page(PIPELINES)))
    for name, pipeline in PIPELINES.items():
        page = pipeline_page(name, pipeline, configs.get(name, []))
        files.append(File.generated(config, f"config/{name}.md", content=page))
    return files
