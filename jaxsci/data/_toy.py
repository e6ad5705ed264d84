"""Toy 2-D datasets for generative models, drawn with JAX from a key (seeded, reproducible)."""

import jax
import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_int, check_key, check_positive
from .._custom_types import Array, ArrayLike, Float, Key


def two_moons(key: Key, n: int, noise: Real[ArrayLike, ""] = 0.05) -> Float[Array, "n 2"]:
    """Two interleaved half circles plus Gaussian noise (the layout of scikit-learn's
    `make_moons`, with the angle drawn uniformly rather than on a grid).

    Each point picks a moon with probability 1/2 and an angle theta ~ U[0, pi]: the upper
    moon (cos theta, sin theta), the lower one (1 - cos theta, 1/2 - sin theta); then
    N(0, noise^2 I) is added.

    Arguments:
        key: PRNG key.
        n: number of points (>= 1).
        noise: std of the added Gaussian noise (>= 0).

    Returns:
        (n, 2) points in the default float dtype.
    """
    key = check_key("key", key)
    n = check_int("n", n, 1)
    check_positive("noise", noise, allow_zero=True)
    k_side, k_angle, k_noise = jax.random.split(key, 3)
    upper = jax.random.bernoulli(k_side, 0.5, (n,))
    theta = jnp.pi * jax.random.uniform(k_angle, (n,))
    x = jnp.where(upper, jnp.cos(theta), 1.0 - jnp.cos(theta))
    y = jnp.where(upper, jnp.sin(theta), 0.5 - jnp.sin(theta))
    return jnp.stack([x, y], axis=1) + noise * jax.random.normal(k_noise, (n, 2))


def ring(
    key: Key, n: int, components: int = 8, std: Real[ArrayLike, ""] = 0.05
) -> Float[Array, "n 2"]:
    """A ring of equal-weight Gaussians: `components` isotropic Gaussians of std `std`
    centred at the angles 2 pi k / components on the unit circle.

    Arguments:
        key: PRNG key.
        n: number of points (>= 1).
        components: number of Gaussians (>= 1).
        std: their standard deviation (>= 0).

    Returns:
        (n, 2) points in the default float dtype.
    """
    key = check_key("key", key)
    n = check_int("n", n, 1)
    components = check_int("components", components, 1)
    check_positive("std", std, allow_zero=True)
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.randint(k_comp, (n,), 0, components)
    angle = 2 * jnp.pi * comp / components
    centres = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return centres + std * jax.random.normal(k_noise, (n, 2))
