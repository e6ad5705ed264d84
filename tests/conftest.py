import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in float64 (reference comparisons that need it say so by using this)."""
    with jax.enable_x64(True):
        yield
