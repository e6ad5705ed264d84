"""The README's API tour runs as written."""

import pathlib
import re

import jax.numpy as jnp
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).splitlines()
    assert first_block[0].startswith("make run")
    assert first_block[1].startswith("make test")


@pytest.mark.slow
def test_readme_tour_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.splitlines()) <= 22
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["traj"].ys.shape == (200, 64)
    assert namespace["lyap"].exponents.shape == (3,)
    assert jnp.isfinite(namespace["dloss_dF"])
    assert namespace["finals"].shape == (16, 40)
    # More forcing, more energy: the ensemble over F is ordered on average.
    energy = jnp.mean(namespace["finals"] ** 2, axis=1)
    assert energy[-1] > energy[0]
