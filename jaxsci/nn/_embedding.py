"""Sinusoidal embeddings of a scalar time or noise level."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_int, check_positive, check_range
from .._custom_types import Array, Float, ScalarLike
from ._base import check_example


class SinusoidalEmbedding(eqx.Module):
    r"""Sinusoidal embedding of a scalar (Vaswani et al. 2017, section 3.5; Ho et al. 2020).

        e(t) = [sin(s t w_0), ..., sin(s t w_{h-1}), cos(s t w_0), ..., cos(s t w_{h-1})]
        w_j = max_period^{-j / h},   h = dim / 2

    Frequencies are geometric from 1 down to max_period^{-(h-1)/h}, Vaswani et al.'s
    positional encoding with the sines and cosines grouped (the layout DDPM uses). The
    scale s maps the time range onto the frequencies: continuous diffusion times in
    [0, 1] with s = 1000 match DDPM's 1000 discrete steps. No parameters.

    Arguments:
        dim: embedding size (even, >= 2).
        scale: s, multiplies t before embedding.
        max_period: the longest period (Vaswani et al.: 10000).
    """

    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    max_period: float = eqx.field(static=True)

    def __init__(self, dim: int, *, scale: float = 1.0, max_period: float = 10000.0):
        self.dim = check_int("dim", dim, minimum=2)
        if self.dim % 2:
            raise ValueError(f"`dim` must be even, got {dim}.")
        check_positive("scale", scale)
        check_range("max_period", max_period, 1.0, lower_open=True)
        self.scale = float(scale)
        self.max_period = float(max_period)

    def frequencies(self) -> np.ndarray:
        """The h = dim / 2 angular frequencies w_j (a numpy constant)."""
        half = self.dim // 2
        return self.max_period ** (-np.arange(half) / half)

    def __call__(self, t: ScalarLike) -> Float[Array, " dim"]:
        t = as_float_array("t", t)
        check_example("t", t, (), "a scalar ()")
        arg = (self.scale * t) * jnp.asarray(self.frequencies(), t.dtype)
        return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)])
