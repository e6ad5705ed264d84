r"""Scores and error norms as plain functions of arrays (no model): the losses build on them.

Ensemble scores act on an ensemble with a leading member axis, `ensemble` of shape
(M, *shape), and an observation `obs` of shape `shape`; CRPS-type scores are elementwise
(one value per component, shape `shape`), the energy score is one scalar for the whole
vector. Lower is better for every score; all are (strictly) proper scoring rules
(Gneiting & Raftery 2007), the ensemble versions estimate the score of the distribution the
members are drawn from.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .._checks import check_int, check_probability
from .._custom_types import Array, ArrayLike, Float
from ..spectral import PeriodicGrid


def check_same_shape(a, b, name_a: str, name_b: str) -> None:
    """Raise a ValueError naming both arguments unless `a` and `b` have the same shape."""
    sa, sb = tuple(jnp.shape(a)), tuple(jnp.shape(b))
    if sa != sb:
        raise ValueError(
            f"`{name_a}` has shape {sa} but `{name_b}` has shape {sb}; they must match."
        )


def check_ensemble(ensemble, obs, min_members: int = 1) -> None:
    """Raise a ValueError unless `ensemble` is (M >= min_members, *obs.shape)."""
    se, so = tuple(jnp.shape(ensemble)), tuple(jnp.shape(obs))
    if len(se) != len(so) + 1 or se[1:] != so:
        raise ValueError(
            f"`ensemble` has shape {se} and `obs` has shape {so}; expected `ensemble` of shape "
            f"(members, *obs.shape) = (M, {', '.join(map(str, so))}{',' if len(so) == 1 else ''})."
        )
    if se[0] < min_members:
        raise ValueError(
            f"`ensemble` has {se[0]} member(s) (shape {se}); this score needs at least "
            f"{min_members}."
        )


def _abs_dev(ensemble, obs):
    """(1/M) sum_i |x_i - y|, elementwise."""
    return jnp.mean(jnp.abs(ensemble - obs), axis=0)


def _pair_sum(ensemble):
    r"""sum_{i,j} |x_i - x_j| over members, elementwise, in O(M log M).

    For sorted members x_(1) <= ... <= x_(M), sum_{i,j} |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i)
    (each x_(i) is larger than i - 1 members and smaller than M - i).
    """
    m = ensemble.shape[0]
    x = jnp.sort(ensemble, axis=0)
    coef = (2.0 * np.arange(1, m + 1) - m - 1).astype(x.dtype)
    coef = coef.reshape((m,) + (1,) * (x.ndim - 1))
    return 2.0 * jnp.sum(coef * x, axis=0)


def crps_ensemble(
    ensemble: Float[ArrayLike, "M ..."], obs: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    r"""CRPS of the empirical distribution of an ensemble, elementwise.

        CRPS(F_M, y) = (1/M) sum_i |x_i - y| - 1/(2 M^2) sum_{i,j} |x_i - x_j|,

    the exact CRPS of the empirical CDF of the members (the kernel form of Gneiting &
    Raftery 2007, eq. 21; the same value as `properscoring.crps_ensemble`). As an estimate
    of the CRPS of the distribution F the members are drawn from it is biased: with
    independent members its expectation is CRPS(F, y) + E|X - X'| / (2M). Use `crps_fair`
    for an unbiased estimate.
    """
    ensemble, obs = jnp.asarray(ensemble), jnp.asarray(obs)
    check_ensemble(ensemble, obs, 1)
    m = ensemble.shape[0]
    return _abs_dev(ensemble, obs) - _pair_sum(ensemble) / (2.0 * m * m)


def crps_fair(
    ensemble: Float[ArrayLike, "M ..."], obs: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    r"""Fair (unbiased) ensemble CRPS, elementwise (Ferro 2014; Zamo & Naveau 2018).

        fCRPS(x, y) = (1/M) sum_i |x_i - y| - 1/(2 M (M - 1)) sum_{i != j} |x_i - x_j|.

    For independent members drawn from F its expectation is exactly CRPS(F, y): the pair
    term is the U-statistic of E|X - X'|. Needs M >= 2.
    """
    ensemble, obs = jnp.asarray(ensemble), jnp.asarray(obs)
    check_ensemble(ensemble, obs, 2)
    m = ensemble.shape[0]
    return _abs_dev(ensemble, obs) - _pair_sum(ensemble) / (2.0 * m * (m - 1))


def crps_almost_fair(
    ensemble: Float[ArrayLike, "M ..."],
    obs: Float[ArrayLike, "..."],
    alpha: float | Float[ArrayLike, ""] = 0.95,
) -> Float[Array, "..."]:
    r"""Almost-fair CRPS of AIFS-CRPS (Lang et al. 2024, arXiv:2412.15832), elementwise.

        afCRPS_alpha = alpha fCRPS + (1 - alpha) CRPS
                     = (1/M) sum_i |x_i - y| - (1 - eps)/(2 M (M - 1)) sum_{i != j} |x_i - x_j|,
        eps = (1 - alpha) / M.

    The fair CRPS is blind to one member collapsing onto another (the pair term then loses
    only a vanishing weight); mixing in a little of the ordinary CRPS restores a penalty for
    degenerate members while keeping the bias O((1 - alpha)/M). Lang et al. train with
    alpha = 0.95. alpha = 1 gives `crps_fair`, alpha = 0 `crps_ensemble`.
    """
    check_probability("alpha", alpha)
    ensemble, obs = jnp.asarray(ensemble), jnp.asarray(obs)
    check_ensemble(ensemble, obs, 2)
    m = ensemble.shape[0]
    eps = (1.0 - jnp.asarray(alpha, ensemble.dtype)) / m  # alpha may be traced (a sweep)
    return _abs_dev(ensemble, obs) - (1.0 - eps) * _pair_sum(ensemble) / (2.0 * m * (m - 1))


def crps_gaussian(
    mean: Float[ArrayLike, "..."], std: Float[ArrayLike, "..."], obs: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    r"""Closed-form CRPS of a Gaussian N(mean, std^2) at `obs` (Gneiting et al. 2005, eq. 5):

    CRPS = std [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)],  z = (obs - mean) / std.
    """
    mean, std, obs = jnp.asarray(mean), jnp.asarray(std), jnp.asarray(obs)
    z = (obs - mean) / std
    pdf = jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return std * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def _safe_norm(diff):
    """Euclidean norm over the last axis with gradient 0 (a subgradient) at 0, where sqrt has
    an infinite derivative (the diagonal pairs i == j, and tied members)."""
    sq = jnp.sum(diff * diff, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def energy_score(
    ensemble: Float[ArrayLike, "M ..."], obs: Float[ArrayLike, "..."], *, fair: bool = False
) -> Float[Array, ""]:
    r"""Energy score of an ensemble for a vector observation (Gneiting & Raftery 2007, eq. 22).

        ES(x, y) = (1/M) sum_i ||x_i - y|| - c sum_{i,j} ||x_i - x_j||,

    Euclidean norms over all components of `obs`; c = 1/(2 M^2) for the empirical
    distribution of the members, c = 1/(2 M (M - 1)) with `fair=True` (unbiased for the
    energy score of the distribution the members come from). In one dimension it is the
    CRPS. Cost O(M^2 dim).
    """
    ensemble, obs = jnp.asarray(ensemble), jnp.asarray(obs)
    check_ensemble(ensemble, obs, 2 if fair else 1)
    m = ensemble.shape[0]
    flat = ensemble.reshape(m, -1)
    first = jnp.mean(_safe_norm(flat - obs.reshape(1, -1)))
    pair = jnp.sum(_safe_norm(flat[:, None, :] - flat[None, :, :]))
    denom = 2.0 * m * (m - 1) if fair else 2.0 * m * m
    return first - pair / denom


def gaussian_nll(
    mean: Float[ArrayLike, "..."],
    variance: Float[ArrayLike, "..."],
    obs: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    r"""Negative log-density of N(mean, variance) at `obs`, elementwise:

    0.5 [log(2 pi variance) + (obs - mean)^2 / variance].
    """
    mean, variance, obs = jnp.asarray(mean), jnp.asarray(variance), jnp.asarray(obs)
    check_same_shape(mean, obs, "mean", "obs")
    check_same_shape(variance, obs, "variance", "obs")
    return 0.5 * (jnp.log(2 * math.pi * variance) + (obs - mean) ** 2 / variance)


def relative_l2(pred: Float[ArrayLike, "..."], target: Float[ArrayLike, "..."]) -> Float[Array, ""]:
    r"""Relative L2 error ||pred - target||_2 / ||target||_2 of one example.

    The norms run over every grid point and channel of the example; on a uniform grid the
    quadrature weights cancel in the ratio, so this is the relative L2(Omega) error of the
    fields. This is the per-example error of the FNO paper (Li et al. 2021, ICLR; their
    `LpLoss` with p = 2), whose reported test error is its mean over the test examples.
    """
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    check_same_shape(pred, target, "pred", "target")
    return jnp.sqrt(jnp.sum((pred - target) ** 2)) / jnp.sqrt(jnp.sum(target**2))


def sobolev_weights(
    grid_shape: tuple[int, ...],
    s: float | Float[Array, ""],
    *,
    length: float = 1.0,
    seminorm: bool = False,
) -> Float[np.ndarray | Array, "*modes"]:
    r"""The Fourier weights w_s(k) of `sobolev_norm` on the `rfftn` grid of `grid_shape`.

    Angular wavenumbers kappa = 2 pi k / length (`jaxsci.spectral.PeriodicGrid`);
    w_s = (1 + |kappa|^2)^s, or |kappa|^{2 s} with the k = 0 weight set to 0 when `seminorm`.
    The last (half-spectrum) axis carries a factor 2 for the modes whose conjugate twin is
    not stored (0 < k < n/2), so that sum_k w |rfftn(u)|^2 equals the full-spectrum sum.

    A Python or NumPy number `s` gives a NumPy array (a constant under `jit`); a JAX array
    `s` (e.g. a traced `SobolevLoss.s`) gives a JAX array, so `s` can be swept with `vmap`.
    """
    grid = PeriodicGrid(grid_shape, length)
    xp = np if isinstance(s, int | float | np.number) else jnp
    kappa2 = grid.squared_wavenumber()
    if seminorm:
        safe = np.where(kappa2 > 0, kappa2, 1.0)
        w = xp.where(kappa2 > 0, safe**s, 0.0)
    else:
        w = (1.0 + kappa2) ** s
    last = grid.mode_numbers()[-1]
    twin = np.where((last > 0) & (2 * last != grid.shape[-1]), 2.0, 1.0)
    return w * twin


def sobolev_norm(
    u: Float[ArrayLike, "..."],
    s: float | Float[Array, ""],
    *,
    length: float = 1.0,
    spatial_dims: int = 1,
    seminorm: bool = False,
) -> Float[Array, ""]:
    r"""Sobolev H^s norm of a periodic field on a uniform grid, for any real s (via Parseval).

    The last `spatial_dims` axes of `u` are a uniform grid on the torus [0, length)^d with
    N = n_1 ... n_d points; leading axes are channels, whose squared norms add. With the
    discrete Fourier coefficients c_k = (1/N) sum_j u_j exp(-2 pi i k . x_j / length) and
    angular wavenumbers kappa = 2 pi k / length (k over the FFT index range, |k_i| <= n_i/2),
    the trigonometric interpolant of u has

        ||u||_{H^s}^2 = length^d sum_k (1 + |kappa|^2)^s |c_k|^2        (Bessel-potential norm)

    so s = 0 gives the L2(Omega) norm and negative s (e.g. the H^{-1} norm of Spectral-Refiner,
    Cao et al. 2024, arXiv:2405.17211) weights large scales more than small ones.

    k = 0: the inhomogeneous norm above weights the mean mode by 1 for every s. With
    `seminorm=True` the homogeneous weights |kappa|^{2s} are used and the mean mode is
    dropped (weight 0): for s < 0 this is the H^{-s}-dual norm of mean-zero fields (a
    constant offset is invisible to it), for s > 0 the usual seminorm |u|_{H^s}.

    `s` may be a JAX array (traced, or swept with `vmap`); see `sobolev_weights`.

    Returns the norm (not squared).
    """
    u = jnp.asarray(u)
    d = check_int("spatial_dims", spatial_dims, minimum=1, maximum=max(u.ndim, 1))
    if u.ndim < d:
        raise ValueError(
            f"`spatial_dims` must be between 1 and u.ndim = {u.ndim}, got {spatial_dims}."
        )
    grid = tuple(u.shape[u.ndim - d :])
    s = s if isinstance(s, jax.Array) else float(s)
    w = sobolev_weights(grid, s, length=float(length), seminorm=seminorm)
    n_total = math.prod(grid)
    uh = jnp.fft.rfftn(u, axes=tuple(range(u.ndim - d, u.ndim)))
    power = (uh.real**2 + uh.imag**2) / n_total**2
    return jnp.sqrt(float(length) ** d * jnp.sum(w.astype(power.dtype) * power))
