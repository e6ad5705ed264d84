r"""`interpolate_scattered`: a coordinate network fitted to values at scattered points of a
periodic box and evaluated on its grid (the sparse-increment interpolation of MEDIDA,
Mojgani, Chattopadhyay & Hassanzadeh 2024)."""

import functools
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import as_float_array, check_int, check_key, check_positive, check_shape
from .._custom_types import Array, ArrayLike, Float, Key
from ..spectral import PeriodicGrid
from ..train import fit
from ._fourier_features import FourierFeatureMLP
from ._init import subkey

#: Points per vmapped block when a network is evaluated on the grid (bounds the memory of
#: the hidden activations: 4096 points x 256 units x 4 bytes = 4 MiB per layer).
_EVAL_BLOCK = 4096


class InterpolationInfo(NamedTuple):
    """What `interpolate_scattered` fitted, and how well.

    network: the trained network; on the unit-torus coordinates u = (x / length) mod 1 it
        returns the standardised values, so the field at any point x is
        `mean + std * network(u)`.
    mean, std: (channels,) the per-channel mean and standard deviation of the data that
        standardised them (std 1 for a constant channel).
    loss: the last training loss, the mean squared misfit at the data points in units of
        each channel's variance (a relative mean squared error).
    data_error: the relative L2 misfit of the trained network at the data points,
        ||f(x_i) - v_i|| / ||v_i|| over all points and channels.
    loss_history: (num_steps,) the training loss per step.
    compile_seconds, train_seconds: the wall times of `train.fit`'s compilation and of its
        steps.
    """

    network: Any
    mean: Float[Array, " channels"]
    std: Float[Array, " channels"]
    loss: float
    data_error: float
    loss_history: np.ndarray
    compile_seconds: float
    train_seconds: float


def _standardised_mse(model, batch, *, key=None):
    """Mean squared misfit of `model` over the points of `batch` = (u, z)."""
    del key
    u, z = batch
    return jnp.mean((jax.vmap(model)(u) - z) ** 2), {}


@eqx.filter_jit
def _evaluate(network, u: Float[Array, "points d"]) -> Float[Array, "points channels"]:
    return jax.lax.map(network, u, batch_size=_EVAL_BLOCK)


def _check_network(network, d: int, channels: int) -> None:
    if not isinstance(network, eqx.Module) or not callable(network):
        raise TypeError(
            f"`network` must be a callable equinox module, network(point of shape ({d},)) "
            f"-> ({channels},), got {type(network).__name__}."
        )
    try:
        out = eqx.filter_eval_shape(network, jax.ShapeDtypeStruct((d,), jnp.float32))
    except Exception as error:  # any failure to trace it on one point
        raise ValueError(
            f"`network` must map one point of shape ({d},) to ({channels},); calling it on "
            f"one point failed: {error}"
        ) from error
    if getattr(out, "shape", None) != (channels,):
        raise ValueError(
            f"`network` must map one point of shape ({d},) to ({channels},) (one output per "
            f"channel of `values`), got output shape {getattr(out, 'shape', out)!r}."
        )


def _default_network(
    num_dims: int, channels: int, fourier_scale: float, *, key: Key
) -> FourierFeatureMLP:
    """`interpolate_scattered`'s network: a `FourierFeatureMLP` on the unit torus (periods 1:
    integer wavenumbers of the box) with 128 features and 3 tanh layers of 128 units."""
    return FourierFeatureMLP(
        num_dims,
        channels,
        128,
        3,
        num_features=128,
        scale=fourier_scale,
        periods=(1.0,) * num_dims,
        key=key,
    )


def interpolate_scattered(
    key: Key,
    locations: Float[ArrayLike, "points d"],
    values: Float[ArrayLike, " points *channels"],
    grid: PeriodicGrid,
    *,
    network: eqx.Module | None = None,
    fourier_scale: float | None = None,
    num_steps: int = 2000,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    progress: bool = True,
) -> tuple[Float[Array, "..."], InterpolationInfo]:
    r"""Fit a coordinate network to values at scattered points of a periodic box and
    evaluate it on the box's grid.

    The points x_i (any real coordinates; the box [0, length)^d is periodic) are mapped to
    the unit torus, u_i = (x_i / length) mod 1, the values v_i (per channel) standardised,
    z_i = (v_i - mean) / std, and the network f (default: a `FourierFeatureMLP` on integer
    wavenumbers, so f is exactly periodic) minimises

        L(f) = (1 / (N C)) sum_i |f(u_i) - z_i|^2

    full batch with Adam for `num_steps` steps (`train.fit`; the Fourier frequencies of the
    default network are frozen, `trainable=lambda m: m.mlp`). The gridded field is
    mean + std f(u) at the grid points (`grid.coordinates()`). This is the interpolation
    step of MEDIDA on sparse observations (Mojgani, Chattopadhyay & Hassanzadeh 2024,
    JAMES): a plain MLP there is too smooth (spectral bias) for the spectral derivatives
    of the term library, random Fourier features remove that bias (Tancik et al. 2020).
    One network serves every channel (e.g. both layers of a two-layer QG increment).

    Arguments:
        key: PRNG key (the default network's initialisation, then `train.fit`'s).
        locations: (points, d) coordinates, column a along grid axis a (the order of
            `grid.coordinates()`; for a state indexed [layer, y, x] that is (y, x)).
        values: (points,) or (points, channels) values at the locations.
        grid: the `spectral.PeriodicGrid` of the box and of the output.
        network: an equinox module mapping one unit-torus point (d,) to (channels,), e.g. an
            `MLP` to compare with; its inexact arrays are all trained (a frozen buffer
            read through `stop_gradient` stays put). None: the default network, a
            `FourierFeatureMLP` on the unit torus (periods 1, so its frequencies are integer
            wavenumbers of the box: the interpolant is exactly periodic) with 128 features
            and 3 tanh layers of 128 units.
        fourier_scale: the standard deviation s of the default network's wavenumbers (modes
            per box). None: s = N^(1/d) / 6 for N points, a third of the data's mean
            Nyquist wavenumber N^(1/d) / 2. Larger s fits finer scales and overfits
            between the points sooner (Tancik et al. 2020, section 6): on a 64^2 random
            field with a k^-3 spectrum sampled at 1 in 8 points (N = 512, N^(1/2) / 6 =
            3.8), s = 4 gave a gridded error of 0.33, s = 8 gave 0.94
            (benchmarks/RESULTS_nn.md).
        num_steps: full-batch Adam steps.
        learning_rate: the peak learning rate of the default optimizer, Adam with a cosine
            decay to 1% of it over `num_steps` (Loshchilov & Hutter 2017): the decay lets the
            last steps settle the fine scales that a constant rate keeps jittering.
        optimizer: an optax transformation instead of the default (`learning_rate` unused).
        progress: show `train.fit`'s progress bar.

    Returns:
        The field on the grid, (*grid.shape) for 1-D `values` or (channels, *grid.shape),
        and an `InterpolationInfo`.
    """
    key = check_key("key", key)
    if not isinstance(grid, PeriodicGrid):
        raise TypeError(f"`grid` must be a spectral.PeriodicGrid, got {type(grid).__name__}.")
    d = grid.ndim
    dtype = as_float_array("locations", locations).dtype  # the float dtype of the fit
    # The data are small: checks and standardisation in float64 on the host (no eager jax
    # ops, each of which would compile once per shape).
    x = np.asarray(locations, np.float64)
    check_shape("locations", x, (None, d), f"(points, d) = (points, {d}), d the grid's dimension")
    n = x.shape[0]
    if n < 1:
        raise ValueError("`locations` must hold at least one point, got 0.")
    as_float_array("values", values)
    v = np.asarray(values, np.float64)
    if v.ndim not in (1, 2) or v.shape[0] != n:
        raise ValueError(
            f"`values` has shape {tuple(v.shape)}, expected (points,) or (points, channels) "
            f"with points = {n} (the rows of `locations`)."
        )
    squeeze = v.ndim == 1
    if squeeze:
        v = v[:, None]
    for name, arr in (("locations", x), ("values", v)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains non-finite values (NaN or inf).")
    num_steps = check_int("num_steps", num_steps)
    check_positive("learning_rate", learning_rate)
    channels = v.shape[1]

    mean = v.mean(axis=0)
    spread = v.std(axis=0)
    std = np.where(spread > 0, spread, 1.0)
    z = jnp.asarray((v - mean) / std, dtype)
    u = jnp.asarray(np.mod(x / grid.length, 1.0), dtype)

    net_key, fit_key = subkey(key, 0), subkey(key, 1)
    trainable = None
    if network is None:
        scale = n ** (1.0 / d) / 6.0 if fourier_scale is None else fourier_scale
        check_positive("fourier_scale", scale)
        network = _default_network(d, channels, float(scale), key=net_key)
        trainable = _mlp_part
    else:
        _check_network(network, d, channels)
        if isinstance(network, FourierFeatureMLP):
            trainable = _mlp_part
    if optimizer is None:
        optimizer = _default_optimizer(float(learning_rate), num_steps)

    trained, history = fit(
        network,
        _standardised_mse,
        (u, z),
        optimizer=optimizer,
        key=fit_key,
        batch_size=n,
        num_steps=num_steps,
        trainable=trainable,
        progress=progress,
    )

    # the data points and the grid in one evaluation (one compilation)
    points = np.stack([c.ravel() for c in grid.coordinates()], axis=-1) / grid.length
    out = np.asarray(_evaluate(trained, jnp.concatenate([u, jnp.asarray(points, dtype)])))
    out = mean + std * out.astype(np.float64)
    fitted, gridded = out[:n], out[n:]
    data_error = float(np.linalg.norm(fitted - v) / max(float(np.linalg.norm(v)), 1e-300))
    field = jnp.asarray(np.moveaxis(gridded, -1, 0).reshape((channels, *grid.shape)), dtype)
    if squeeze:
        field = field[0]
    info = InterpolationInfo(
        network=trained,
        mean=jnp.asarray(mean, dtype),
        std=jnp.asarray(std, dtype),
        loss=float(history["loss"][-1]),
        data_error=data_error,
        loss_history=history["loss"],
        compile_seconds=float(history["compile_seconds"]),
        train_seconds=float(history["train_seconds"]),
    )
    return field, info


@functools.lru_cache(maxsize=16)
def _default_optimizer(learning_rate: float, num_steps: int) -> optax.GradientTransformation:
    """Adam with a cosine decay to 1% of `learning_rate` over `num_steps`; one object per
    setting, so that repeated calls (one per window of MEDIDA's increments) reuse
    `train.fit`'s compiled step (a new optax closure is a new static argument: a recompile)."""
    schedule = optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01)
    return optax.adam(schedule)


def _mlp_part(model: FourierFeatureMLP) -> Any:
    return model.mlp
