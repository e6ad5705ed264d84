"""Coordinate networks for physics-informed fields: an exactly periodic input embedding and a
hard initial condition."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_callable, check_int, finite_float
from .._custom_types import Array, Float
from ._base import check_example


class PeriodicEmbedding(eqx.Module):
    r"""Fourier features of the periodic coordinates of a point; the other coordinates pass.

    For a point p of shape (d,) and periods P_a (None: coordinate a is not periodic),

        e(p) = [cos(2 pi m p_a / P_a), sin(2 pi m p_a / P_a)  (m = 1..M, periodic a),
                p_b  (non-periodic b)]

    so any network of e(p) is exactly P_a-periodic in p_a with all its derivatives: the
    periodic boundary condition holds by construction instead of as a loss term (Dong & Ni
    2021, "A method for representing periodic functions and enforcing exactly periodic
    boundary conditions with deep neural networks"; used for Allen-Cahn by Wang, Sankaran &
    Perdikaris 2022, "Respecting causality is all you need for training PINNs", with
    M = 10 harmonics on x in [-1, 1]). M bounds the resolved spatial frequency only through
    the first layer: the network's nonlinearity composes harmonics into sharper features.
    No parameters.

    Arguments:
        periods: one entry per input coordinate: its period, or None.
        num_harmonics: M, the number of harmonics per periodic coordinate.
    """

    periods: tuple[float | None, ...] = eqx.field(static=True)
    num_harmonics: int = eqx.field(static=True)

    def __init__(self, periods: Sequence[float | None], num_harmonics: int = 1):
        periods = tuple(periods)
        if not periods or all(p is None for p in periods):
            raise ValueError(
                f"`periods` must give at least one period (None for a non-periodic coordinate), "
                f"got {periods!r}."
            )
        checked = []
        for i, p in enumerate(periods):
            if p is None:
                checked.append(None)
                continue
            value = finite_float(f"periods[{i}]", p)
            if value <= 0:
                raise ValueError(f"`periods[{i}]` must be positive, got {p!r}.")
            checked.append(value)
        self.periods = tuple(checked)
        self.num_harmonics = check_int("num_harmonics", num_harmonics)

    @property
    def in_size(self) -> int:
        return len(self.periods)

    @property
    def out_size(self) -> int:
        """2 M per periodic coordinate plus one per other coordinate."""
        n_periodic = sum(p is not None for p in self.periods)
        return 2 * self.num_harmonics * n_periodic + (self.in_size - n_periodic)

    def __call__(self, p: Float[Array, " d"]) -> Float[Array, " features"]:
        p = as_float_array("p", p)
        check_example("p", p, (self.in_size,), f"(d,) = ({self.in_size},)")
        m = jnp.arange(1, self.num_harmonics + 1, dtype=p.dtype)
        parts = []
        for a, period in enumerate(self.periods):
            if period is None:
                parts.append(p[a : a + 1])
            else:
                z = (2 * np.pi / period) * m * p[a]
                parts.extend([jnp.cos(z), jnp.sin(z)])
        return jnp.concatenate(parts)


class HardInitialCondition(eqx.Module):
    r"""A field that equals a given initial condition at t = t0 exactly:

        u(x, t) = u0(x) + (t - t0) net(x, t),

    with the time the last coordinate of the point p = (x, t) (Lagaris, Likas & Fotiadis
    1998, "Artificial neural networks for solving ordinary and partial differential
    equations"). A physics-informed loss then needs no initial-condition term, and the
    network learns only the departure from u0. `net` maps a point (d,) to any shape that
    broadcasts against u0(x); u0 maps the spatial coordinates (d - 1,) to the field.
    `t0` is a static float (the start of the time window).

    Periodicity: with a periodic `net` (e.g. over a `PeriodicEmbedding`) u is periodic in
    x exactly when u0 is, and its x-derivatives only as far as u0's are: Allen-Cahn's
    u0 = x^2 cos(pi x) on [-1, 1) has equal values but slopes -+2 at x = +-1, a kink that
    u0 + (t - t0) net keeps at every t (the periodic solution smooths it out; the PINN
    benchmark accepts that error at the seam).
    """

    network: Callable
    initial: Callable
    t0: float = eqx.field(static=True)

    def __init__(self, network: Callable, initial: Callable, *, t0: float = 0.0):
        self.network = check_callable("network", network, "network(point)")
        self.initial = check_callable("initial", initial, "initial(x)")
        self.t0 = finite_float("t0", t0)

    def __call__(self, p: Float[Array, "..."]) -> Float[Array, "..."]:
        p = as_float_array("p", p)
        check_example("p", p, (None,), "one point (x..., t) of shape (d,), d >= 2")
        if p.shape[0] < 2:
            raise ValueError(f"`p` has shape {p.shape}, but a point (x..., t) needs d >= 2.")
        return self.initial(p[:-1]) + (p[-1] - self.t0) * self.network(p)


class EmbeddedNetwork(eqx.Module):
    """network(embedding(p)): a coordinate network on an input embedding (e.g.
    `PeriodicEmbedding` followed by an `MLP` whose `in_size` is the embedding's `out_size`)."""

    embedding: Callable
    network: Callable

    def __init__(self, embedding: Callable, network: Callable):
        self.embedding = check_callable("embedding", embedding, "embedding(point)")
        self.network = check_callable("network", network, "network(features)")

    def __call__(self, p: Float[Array, " d"]) -> Array:
        return self.network(self.embedding(p))
