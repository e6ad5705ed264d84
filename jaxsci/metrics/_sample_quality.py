r"""Sample quality: the squared maximum mean discrepancy between two samples.

For a kernel k, MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) with x, x' ~ P and
y, y' ~ Q independent (Gretton et al. 2012, "A kernel two-sample test", JMLR 13, lemma 6).
It is zero iff P = Q for a characteristic kernel such as the Gaussian.
"""

from collections.abc import Sequence

import jax.numpy as jnp
from jaxtyping import Real

from .._checks import as_float_array, check_int, check_positive
from .._custom_types import Array, ArrayLike, Float


def mmd2(
    x: Float[ArrayLike, "m d"],
    y: Float[ArrayLike, "n d"],
    bandwidths: Sequence[int | float] | Real[ArrayLike, " k"],
) -> Float[Array, ""]:
    r"""Unbiased estimate of the squared MMD between samples `x` and `y`.

    The U-statistic of Gretton et al. (2012), eq. 3:

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
                  - 2 sum_{i, j} k(x_i, y_j) / (m n),

    with the kernel k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2)), a sum of Gaussian kernels over
    the `bandwidths` h (a mixture of scales, as in Gretton et al. 2012, section 8, so no
    single bandwidth has to be tuned). Unbiased: its expectation is the population MMD^2,
    so it can be negative when the two laws are equal; it is O(1/sqrt(min(m, n))) noisy.

    Arguments:
        x: (m, d) samples, m >= 2.
        y: (n, d) samples, n >= 2, of the same dimension.
        bandwidths: positive kernel bandwidths h (in the units of the data).

    Returns:
        The scalar estimate (in the dtype of `x`).
    """
    x, y = as_float_array("x", x), as_float_array("y", y)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2:
            raise ValueError(f"`{name}` must be a 2-D array (samples, dim), got shape {a.shape}.")
        check_int(f"{name}.shape[0]", a.shape[0], 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"`x` and `y` must have the same dimension, got shapes {x.shape} and {y.shape}."
        )
    hs = jnp.asarray(bandwidths, x.dtype)
    if hs.ndim != 1 or hs.shape[0] == 0:
        raise ValueError(f"`bandwidths` must be a non-empty 1-D list, got shape {hs.shape}.")
    check_positive("bandwidths", hs)

    def gram(a, b):
        d2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
        return jnp.sum(jnp.exp(-d2[..., None] / (2 * hs**2)), axis=-1)

    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (m * (m - 1))
    syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (n * (n - 1))
    return sxx + syy - 2 * jnp.mean(kxy)
