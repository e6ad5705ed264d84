"""Split a tutorial script into its title, introduction and cells.

The convention of `examples/tutorial_*.py`: the module docstring is markdown whose first
line is the page title; cells are separated by lines that start with `# %%`; the `#`
comment lines at the top of a cell are its markdown prose, the rest is its code.
"""

import ast


def _prose_line(line: str) -> str:
    text = line.strip()[1:]
    return text[1:] if text.startswith(" ") else text


def split_cells(source: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(title, introduction, [(prose, code), ...]) of a tutorial script's source."""
    module = ast.parse(source)
    doc = ast.get_docstring(module)
    if not doc:
        raise ValueError("a tutorial script needs a module docstring whose first line is a title")
    title, _, intro = doc.partition("\n")
    first = module.body[0]
    rest = source.splitlines()[first.end_lineno or 0 :]
    chunks: list[list[str]] = [[]]
    for line in rest:
        if line.startswith("# %%"):
            chunks.append([])
        else:
            chunks[-1].append(line)
    cells = []
    for chunk in chunks:
        i = 0
        while i < len(chunk) and (chunk[i].strip().startswith("#") or not chunk[i].strip()):
            i += 1
        prose = "\n".join(_prose_line(line) for line in chunk[:i] if line.strip()).strip()
        code = "\n".join(chunk[i:]).strip("\n")
        if prose or code:
            cells.append((prose, code))
    return title.strip(), intro.strip(), cells
