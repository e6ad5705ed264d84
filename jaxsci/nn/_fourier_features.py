r"""Random Fourier features (Tancik et al. 2020) as an embedding, optionally on integer
wavenumbers of a periodic box, and the coordinate network on them."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_int, check_positive, finite_float
from .._custom_types import Array, Float, Key
from ._base import AbstractNetwork, check_example
from ._init import normal, subkey
from ._layers import fourier_map
from ._mlp import MLP


def _check_periods(periods, in_size: int) -> tuple[float | None, ...] | None:
    if periods is None:
        return None
    if isinstance(periods, str) or not isinstance(periods, Sequence):
        raise TypeError(
            f"`periods` must be None or a sequence of {in_size} periods (None for a "
            f"non-periodic coordinate), got {periods!r}."
        )
    periods = tuple(periods)
    if len(periods) != in_size:
        raise ValueError(
            f"`periods` must give one period (or None) per input coordinate ({in_size}), "
            f"got {len(periods)}: {periods!r}."
        )
    checked: list[float | None] = []
    for i, p in enumerate(periods):
        if p is None:
            checked.append(None)
            continue
        value = finite_float(f"periods[{i}]", p)
        check_positive(f"periods[{i}]", value)
        checked.append(value)
    return tuple(checked)


def _round_to_wavenumbers(b: Array, periods: tuple[float | None, ...]) -> Array:
    """round(P_j b_ij) / P_j in the columns with a period (float64 on the host, so that any
    finite period works; jax ops when `b` is traced, e.g. built under vmap)."""
    p = np.array([1.0 if q is None else q for q in periods])
    keep = np.array([q is None for q in periods])
    try:
        host = np.asarray(b, np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return jnp.where(keep, b, jnp.round(b * p) / p).astype(b.dtype)
    return jnp.asarray(np.where(keep, host, np.round(host * p) / p), b.dtype)


class RandomFourierFeatures(eqx.Module):
    r"""Random Fourier features of a point (Tancik et al. 2020, "Fourier features let
    networks learn high frequency functions in low dimensional domains", NeurIPS):

        gamma(x) = [cos(2 pi B x), sin(2 pi B x)],   B in R^{m x d},   B_ij ~ N(0, s^2),

    so an MLP on gamma(x) is a network whose neural tangent kernel is stationary with a
    bandwidth set by s: it learns the small scales that a plain coordinate MLP, biased to
    the lowest frequencies ("spectral bias", Rahaman et al. 2019), learns last or never.
    B is in cycles per unit of x; s = `scale`. Mojgani, Chattopadhyay & Hassanzadeh (2024,
    JAMES, "Interpretable structural model error discovery from sparse assimilation
    increments using spectral bias-reduced neural networks") interpolate sparse
    quasi-geostrophic increments with such a network (`interpolate_scattered`).

    **Periodic boxes.** With `periods` P_j, each entry is rounded to the nearest multiple of
    1 / P_j:

        B_ij = round(P_j b_ij) / P_j,   b_ij ~ N(0, s^2),

    i.e. to an integer wavenumber k_ij = P_j B_ij of the box (standard deviation about
    s P_j modes). Then every feature, and any network of them, is exactly P_j-periodic in
    x_j with all its derivatives. Without the rounding the features are not periodic: the
    interpolant of data on a torus would jump across the seam x_j = 0 = P_j, and spectral
    derivatives of the gridded field (the term library of a model-error regression) would
    ring there (Gibbs). The rounding keeps the Gaussian's spread and only moves each
    frequency by at most half a mode; features with k = 0 (probability about
    erf(1 / (2 sqrt(2) s P))^d) are a constant and a zero, harmless. Coordinates whose
    period is None keep their Gaussian frequencies. (`PeriodicEmbedding` is the
    deterministic counterpart: all harmonics 1..M of each periodic coordinate separately.)

    B is drawn once from `key` and is a fixed buffer, not a parameter: it is read through
    `jax.lax.stop_gradient`, so its gradient is exactly zero; `interpolate_scattered` also
    leaves it out of the optimizer (`train.fit(trainable=...)`). It is counted by
    `count_params` (m d entries).

    Arguments:
        in_size: d, the number of coordinates.
        num_features: m, the number of random frequencies (the output has 2 m entries).
        scale: s, the standard deviation of the entries of B, in cycles per unit of x.
        periods: None, or one period per coordinate (None for a non-periodic one).
        key: PRNG key of the draw of B.
    """

    frequencies: Float[Array, "features in_size"]
    periods: tuple[float | None, ...] | None = eqx.field(static=True)
    in_size: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        num_features: int,
        *,
        scale: float,
        periods: Sequence[float | None] | None = None,
        key: Key,
    ):
        self.in_size = check_int("in_size", in_size)
        self.num_features = check_int("num_features", num_features)
        scale = finite_float("scale", scale)
        check_positive("scale", scale)
        self.periods = _check_periods(periods, self.in_size)
        b = normal(key, (self.num_features, self.in_size), scale)
        if self.periods is not None:
            b = _round_to_wavenumbers(b, self.periods)
        self.frequencies = b

    @property
    def out_size(self) -> int:
        """2 m: the cosines, then the sines."""
        return 2 * self.num_features

    def wavenumbers(self) -> np.ndarray:
        """The integer wavenumbers k_ij = P_j B_ij of the periodic coordinates (NaN in the
        columns of non-periodic ones); an error without `periods`."""
        if self.periods is None:
            raise ValueError("`periods` is None: the frequencies are not wavenumbers of a box.")
        b = np.asarray(self.frequencies, np.float64)
        p = np.array([np.nan if q is None else q for q in self.periods])
        return np.round(b * p)

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " features2"]:
        x = as_float_array("x", x)
        check_example("x", x, (self.in_size,), f"(in_size,) = ({self.in_size},)")
        return fourier_map(self.frequencies.astype(x.dtype), x)


class FourierFeatureMLP(AbstractNetwork):
    r"""An `MLP` on random Fourier features: x -> MLP(gamma(x)) with gamma a
    `RandomFourierFeatures` embedding (Tancik et al. 2020), the spectral-bias-reduced
    coordinate network of Mojgani, Chattopadhyay & Hassanzadeh (2024, JAMES) for sparse
    increments of quasi-geostrophic turbulence (their code: 4 tanh layers of 1000 units on
    500 features, s = 10 on coordinates in [-pi, pi)).

    `MLP(fourier_features=m)` is the same network with Gaussian frequencies only; this class
    adds `periods` (integer wavenumbers of a periodic box, so the network is exactly
    periodic: see `RandomFourierFeatures`) and keeps the embedding a module of its own.
    The default activation is tanh, as in Mojgani et al. (smooth, so the network's
    derivatives are too).

    Parameter count, with w = width_size, D = depth, m = num_features, d = in_size:
    the MLP's formula with input 2 m (`MLP`), i.e. for D >= 1
    2 m w + w + (D - 1)(w^2 + w) + w out + out, plus the buffer B (m d entries, counted by
    `count_params`, never trained).

    Arguments:
        in_size, out_size: input (coordinates) and output sizes.
        width_size: hidden units per layer.
        depth: number of hidden layers.
        num_features: m, random frequencies (2 m features).
        scale: s, the standard deviation of the frequencies, cycles per unit of x.
        periods: None, or one period per coordinate (None for a non-periodic one).
        activation: hidden nonlinearity (default tanh).
        key: PRNG key.
    """

    features: RandomFourierFeatures
    mlp: MLP

    def __init__(
        self,
        in_size: int,
        out_size: int,
        width_size: int,
        depth: int,
        *,
        num_features: int,
        scale: float,
        periods: Sequence[float | None] | None = None,
        activation: Callable[[Array], Array] = jnp.tanh,
        key: Key,
    ):
        self.features = RandomFourierFeatures(
            in_size, num_features, scale=scale, periods=periods, key=subkey(key, 0)
        )
        self.mlp = MLP(
            self.features.out_size,
            out_size,
            width_size,
            depth,
            activation=activation,
            key=subkey(key, 1),
        )

    @property
    def in_size(self) -> int:
        return self.features.in_size

    @property
    def out_size(self) -> int:
        return self.mlp.out_size

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        return self.mlp(self.features(x))
