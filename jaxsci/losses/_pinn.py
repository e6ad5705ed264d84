"""Physics-informed loss: PDE residuals by automatic differentiation, optional causal weights."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_int, check_ndim, check_positive, concrete
from .._custom_types import Array, ArrayLike, Float, Key
from ._base import AbstractLoss
from ._scores import check_same_shape


def derivative(f: Callable, x: Float[Array, " d"], axes: Sequence[int]) -> Array:
    r"""The mixed partial derivative d^n f / (dx_{a_1} ... dx_{a_n}) at the point `x`.

    Nested forward-mode directional derivatives along the unit vectors e_{a_i}
    (`jax.jvp`), exact to rounding; `axes=()` returns f(x). `f` maps a point of shape (d,)
    to an array of any shape (the derivative has that shape). Example: for u(x, t) with
    x = (x, t), u_t = derivative(u, p, (1,)) and u_xx = derivative(u, p, (0, 0)).
    """
    x = jnp.asarray(x)
    check_ndim("x", x, 1, "(one point of shape (d,))")
    for a in axes:
        if not 0 <= int(a) < x.shape[0]:
            raise ValueError(
                f"`axes` entry {a} is out of range for a point of dimension {x.shape[0]}."
            )
    g = f
    for a in axes:
        g = _directional(g, jnp.zeros_like(x).at[int(a)].set(1.0))
    return g(x)


def _directional(h: Callable, e: Array) -> Callable:
    """p -> the derivative of h at p along e (forward mode)."""
    return lambda p: jax.jvp(h, (p,), (e,))[1]


def _boundary_term(model, pair, name):
    points, values = pair
    pred = jax.vmap(model)(points)
    check_same_shape(pred, values, f"model({name} points) (batched)", f"batch['{name}'] values")
    return jnp.mean((pred - values) ** 2)


class PINNLoss(AbstractLoss):
    r"""Physics-informed loss (Raissi, Perdikaris & Karniadakis 2019) with causal weights.

    The model is a field u(p) of one point p (space and time coordinates, shape (d,));
    `residual(u, p)` returns the PDE residual at p, computing derivatives of u by automatic
    differentiation (e.g. with `losses.derivative`). `batch` is a dict:

    * "collocation": points, shape (N, d), or (N, N_t, d) where [:, i] is the i-th time
      slab, t_1 < ... < t_{N_t} (the leading axis stays the batch axis, so `fit` can draw
      minibatches of it without mixing slabs);
    * "boundary" (optional): (points (N_b, d), values (N_b, ...)) for u = g on the boundary;
    * "initial" (optional): (points, values) for the initial condition.

        loss = L_r + boundary_weight * L_b + initial_weight * L_0,

    L_b, L_0 mean squared misfits, L_r the mean squared residual. With `causal_epsilon`
    (Wang, Sankaran & Perdikaris 2022, "Respecting causality is all you need for training
    physics-informed neural networks") the collocation points must be slabs (N, N_t, d)
    ordered in time along the second axis, and

        L_r = (1/N_t) sum_i w_i L_r(t_i),   w_i = exp(-eps sum_{k < i} L_r(t_k)),  w_1 = 1,

    with the weights held constant in the gradient (stop-gradient), so a later slab is only
    fitted once the residual before it is small. aux reports each term and min_i w_i.

    The weights and epsilon are array fields (sweep them with `vmap`); whether the loss is
    causal (`causal_epsilon` given) is static, since it fixes the collocation layout.
    """

    residual: Callable
    boundary_weight: Float[Array, ""]
    initial_weight: Float[Array, ""]
    causal_epsilon: Float[Array, ""]
    causal: bool = eqx.field(static=True)

    def __init__(
        self,
        residual: Callable,
        *,
        boundary_weight: Real[ArrayLike, ""] = 1.0,
        initial_weight: Real[ArrayLike, ""] = 1.0,
        causal_epsilon: Real[ArrayLike, ""] | None = None,
    ):
        if not callable(residual):
            raise TypeError(f"`residual` must be callable residual(u, point), got {residual!r}.")
        self.residual = residual
        self.boundary_weight = jnp.asarray(boundary_weight, dtype=float)
        self.initial_weight = jnp.asarray(initial_weight, dtype=float)
        self.causal = causal_epsilon is not None
        self.causal_epsilon = jnp.asarray(0.0 if causal_epsilon is None else causal_epsilon, float)

    def __check_init__(self):
        check_positive("boundary_weight", self.boundary_weight, allow_zero=True)
        check_positive("initial_weight", self.initial_weight, allow_zero=True)
        check_positive("causal_epsilon", self.causal_epsilon, allow_zero=True)

    def causal_weights(self, slab_losses: Float[Array, " N_t"]) -> Float[Array, " N_t"]:
        """w_i = exp(-eps sum_{k<i} L_r(t_k)) (no gradient flows through the weights)."""
        eps = self.causal_epsilon
        before = jnp.cumsum(slab_losses) - slab_losses
        return jax.lax.stop_gradient(jnp.exp(-eps * before))

    def slab_losses(self, model, points: Float[Array, "N N_t d"]) -> Float[Array, " N_t"]:
        """L_r(t_i): the mean squared residual of `model` over each time slab of `points`
        (N, N_t, d), the quantities the causal weights are built from (e.g. to plot
        `causal_weights(slab_losses(model, points))` during training)."""
        pts = jnp.asarray(points)
        check_ndim("points", pts, 3, "(time slabs of shape (N, N_t, d))")
        res_fn = jax.vmap(lambda p: jnp.mean(jnp.square(self.residual(model, p))))
        return jnp.mean(jax.vmap(res_fn)(pts), axis=0)

    def __call__(self, model, batch, *, key=None):
        if not isinstance(batch, dict) or "collocation" not in batch:
            raise TypeError(
                "`batch` for PINNLoss must be a dict with key 'collocation' (and optionally "
                f"'boundary', 'initial'), got {type(batch).__name__}"
                + (f" with keys {sorted(batch)}" if isinstance(batch, dict) else "")
                + "."
            )
        unknown = set(batch) - {"collocation", "boundary", "initial"}
        if unknown:
            raise ValueError(f"`batch` has unknown keys {sorted(unknown)} for PINNLoss.")
        pts = jnp.asarray(batch["collocation"])
        causal = self.causal
        if causal and pts.ndim != 3:
            raise ValueError(
                "with `causal_epsilon`, batch['collocation'] must be time slabs of shape "
                f"(N, N_t, d), got shape {pts.shape}."
            )
        if pts.ndim not in (2, 3):
            raise ValueError(
                f"batch['collocation'] must have shape (N, d) or (N, N_t, d), got {pts.shape}."
            )
        res_fn = jax.vmap(lambda p: jnp.mean(jnp.square(self.residual(model, p))))
        aux = {}
        if causal:
            slab = self.slab_losses(model, pts)
            w = self.causal_weights(slab)
            loss_r = jnp.mean(w * slab)
            aux["causal_min_weight"] = jnp.min(w)
        else:
            loss_r = jnp.mean(res_fn(pts.reshape(-1, pts.shape[-1])))
        aux["residual"] = loss_r
        value = loss_r
        for name, weight in (("boundary", self.boundary_weight), ("initial", self.initial_weight)):
            if name in batch:
                term = _boundary_term(model, batch[name], name)
                aux[name] = term
                value = value + weight * term
        aux["loss"] = value
        return value, aux


def time_slab_points(
    key: Key,
    num_points: int,
    num_slabs: int,
    lower: Real[ArrayLike, "..."] | Sequence[float],
    upper: Real[ArrayLike, "..."] | Sequence[float],
) -> Float[Array, "num_points num_slabs d"]:
    r"""Collocation points in time slabs for `PINNLoss` (causal or not), shape (N, N_t, d).

    The last coordinate is time. Slab i covers [t_lo + i dt, t_lo + (i + 1) dt),
    dt = (t_hi - t_lo) / N_t, and every point p[n, i] has its time drawn uniformly in slab i
    and its space coordinates uniformly in the box [lower, upper) (stratified in time,
    so the slab means L_r(t_i) of the causal weights are means over the slab, the
    discretisation of Wang, Sankaran & Perdikaris 2022 with fresh points in each slab).

    Arguments:
        key: PRNG key.
        num_points: N, points per slab.
        num_slabs: N_t.
        lower, upper: the box's corners (d,), time last.
    """
    n = check_int("num_points", num_points)
    n_t = check_int("num_slabs", num_slabs)
    lo = jnp.asarray(lower, dtype=float)
    hi = jnp.asarray(upper, dtype=float)
    check_ndim("lower", lo, 1, "(the box's lower corner (d,), time last)")
    if hi.shape != lo.shape:
        raise ValueError(f"`upper` must have the shape of `lower` {lo.shape}, got {hi.shape}.")
    lo_c, hi_c = concrete(lo), concrete(hi)  # None under jit: the check is skipped there
    if lo_c is not None and hi_c is not None and not np.all(hi_c > lo_c):
        raise ValueError(f"`upper` must exceed `lower` in every coordinate, got {lo_c} and {hi_c}.")
    d = lo.shape[0]
    u = jax.random.uniform(key, (n, n_t, d), dtype=lo.dtype)
    slab = jnp.arange(n_t, dtype=lo.dtype)[None, :]
    t = (slab + u[..., -1]) / n_t
    unit = jnp.concatenate([u[..., :-1], t[..., None]], axis=-1)
    return lo + (hi - lo) * unit
