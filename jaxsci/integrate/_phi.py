r"""The phi-functions of exponential integrators, stable for small arguments.

phi_0(z) = e^z and phi_k(z) = (phi_{k-1}(z) - 1/(k-1)!) / z, so phi_k(0) = 1/k! and
phi_k(z) = sum_{j>=0} z^j / (j+k)!. The recurrence cancels catastrophically for small |z|
(Kassam & Trefethen 2005, SIAM J. Sci. Comput. 26(4), section 2), so inside the disc
|z| < `TAYLOR_RADIUS` the Taylor series is summed instead. With radius 1 and 20 terms the
series truncation error is below 1/(20+k)! ~ 4e-19, and the recurrence outside the disc
loses at most a factor ~k! of precision. Works for real and complex z.

Both the ETDRK integrators for stiff PDEs (`jaxsci.integrate`) and the exponential-
integrator diffusion samplers (DEIS, DPM-Solver) use these functions.
"""

import math

import jax.numpy as jnp

TAYLOR_RADIUS = 1.0
TAYLOR_TERMS = 20


def phi_functions(z, order: int):
    """Return the tuple (phi_0(z), ..., phi_order(z)), elementwise.

    Arguments:
        z: real or complex array.
        order: the largest k (>= 0).

    Returns:
        A tuple of `order + 1` arrays shaped like `z`.
    """
    if order < 0:
        raise ValueError(f"`order` must be >= 0, got {order}.")
    z = jnp.asarray(z)
    small = jnp.abs(z) < TAYLOR_RADIUS
    # Double-where: neither branch ever sees an argument that would make it inf/NaN, so
    # gradients through the unused branch stay finite.
    z_big = jnp.where(small, jnp.ones_like(z), z)
    z_small = jnp.where(small, z, jnp.zeros_like(z))

    out = [jnp.exp(z)]
    prev_big = jnp.exp(z_big)
    for k in range(1, order + 1):
        prev_big = (prev_big - 1.0 / math.factorial(k - 1)) / z_big
        # Horner evaluation of sum_j z^j / (j+k)!
        series = jnp.full_like(z_small, 1.0 / math.factorial(TAYLOR_TERMS - 1 + k))
        for j in range(TAYLOR_TERMS - 2, -1, -1):
            series = series * z_small + 1.0 / math.factorial(j + k)
        out.append(jnp.where(small, series, prev_big))
    return tuple(out)


def phi(k: int, z):
    """phi_k(z), elementwise (see the module docstring)."""
    return phi_functions(z, k)[k]
