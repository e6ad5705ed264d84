"""Spectral convolutions: the Fourier layers of the Fourier neural operator."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Key
from ._base import check_int, check_pair, check_shape
from ._init import subkey, uniform


def _init_weights(key, shape):
    """Li et al. (2021)'s initialisation: real and imaginary parts U[0, 1) / (in * out)."""
    scale = 1.0 / (shape[0] * shape[1])
    return uniform(subkey(key, 0), shape, 0.0, scale), uniform(subkey(key, 1), shape, 0.0, scale)


_TRANSFORMS = ("auto", "fft", "dft")
_HIGHEST = jax.lax.Precision.HIGHEST


def _check_transform(transform: str) -> str:
    if transform not in _TRANSFORMS:
        raise ValueError(f"`transform` must be one of {_TRANSFORMS}, got {transform!r}.")
    return transform


def _use_dft(transform: str, n: int, m: int) -> bool:
    """Truncated DFT as a matrix product (O(n m)) or FFT (O(n log n)) for m of n modes.

    "auto" picks the product when m <= 5 log2(n). In FNO training steps on CPU (width
    32-64, batch 20) the product was the faster one up to about that bound (e.g. m = 32 at
    n = 1024) and the slower one beyond (m = 64 at n = 1024); the "FFT spectral" ablation
    of benchmarks/bench_nn_fno_step.py measures the default sizes. Both compute the same
    map (tests/nn/test_spectral.py checks both against the same references).
    """
    if transform == "auto":
        return m <= 5 * math.log2(max(n, 2))
    return transform == "dft"


@functools.lru_cache(maxsize=64)
def _real_dft(n: int, m: int, dtype: str):
    """Matrices of the truncated real DFT on n points and its inverse, as numpy constants.

    `forward` (n, 2m): u @ forward = [Re u_hat_k, Im u_hat_k] for k < m, the first m
    coefficients of `numpy.fft.rfft(u)`. `inverse` (2m, n): [Re c, Im c] @ inverse =
    `numpy.fft.irfft(c, n)` for c zero beyond k = m - 1, i.e. (1/n) sum_k w_k (Re c_k
    cos(2 pi k j / n) - Im c_k sin(2 pi k j / n)) with w_0 = 1, w_k = 2, and w = 1 at the
    Nyquist mode k = n / 2 (whose imaginary part irfft ignores).
    """
    k = np.arange(m)
    ang = 2 * np.pi * np.outer(np.arange(n), k) / n
    forward = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1)
    w = np.full(m, 2.0)
    w[0] = 1.0
    nyquist = n % 2 == 0 and m == n // 2 + 1
    if nyquist:
        w[-1] = 1.0
    wsin = w.copy()
    if nyquist:
        wsin[-1] = 0.0
    inverse = np.concatenate([w[:, None] * np.cos(ang.T), -wsin[:, None] * np.sin(ang.T)]) / n
    return forward.astype(dtype), inverse.astype(dtype)


@functools.lru_cache(maxsize=64)
def _complex_dft_rows(n: int, m: int, dtype: str):
    """cos and -sin of 2 pi k j / n for the rows k = 0..m-1 and k = -m..-1 (shape (2m, n)):
    the real and imaginary parts of the kept rows of the full DFT matrix."""
    k = np.concatenate([np.arange(m), np.arange(-m, 0)])
    ang = 2 * np.pi * np.outer(k, np.arange(n)) / n
    return np.cos(ang).astype(dtype), (-np.sin(ang)).astype(dtype)


def _mix(xr, xi, wr, wi, spec: str):
    """(xr + i xi) times (wr + i wi) summed over input channels, in real arithmetic."""
    yr = jnp.einsum(spec, xr, wr) - jnp.einsum(spec, xi, wi)
    yi = jnp.einsum(spec, xr, wi) + jnp.einsum(spec, xi, wr)
    return yr, yi


class SpectralConv1d(eqx.Module):
    r"""Fourier layer of the FNO on a periodic 1-D grid (Li et al. 2021, ICLR, eq. (4)).

        (K v)_o = IDFT( sum_i R_{i o k} DFT(v_i)_k  for k < modes;  0 for k >= modes )

    The real FFT of each input channel is truncated to its lowest `modes` wavenumbers,
    mixed across channels by a complex weight per kept mode, zero-padded and transformed
    back. Equivalently, a circular convolution with a band-limited kernel learned in
    Fourier space. Resolution independent: the weights are indexed by wavenumber, so the
    layer applies to any grid size n; where n // 2 + 1 < `modes` only the n // 2 + 1
    wavenumbers the grid carries are used.

    The complex weights are stored as two real arrays `weight_real`, `weight_imag` of shape
    `(in_channels, out_channels, modes)` (R = weight_real + i weight_imag), so gradients
    are ordinary real gradients and any optax optimiser (weight decay, clipping, Adam's
    moments) treats them correctly. Parameter count: `2 * in_channels * out_channels *
    modes` (no bias, as in Li et al.). Initialisation: Li et al.'s, U[0, 1) / (in * out)
    for real and imaginary parts.

    The truncated transforms are computed either with `jnp.fft` (O(n log n)) or as
    products with the m kept rows of the DFT matrix (O(n m), faster on CPU for few modes);
    `transform` chooses ("auto": the product when modes <= 5 log2(n)). Same map either way.

    Arguments:
        in_channels, out_channels: channel counts.
        modes: number of kept Fourier modes k = 0, ..., modes - 1.
        key: PRNG key.
        transform: "auto" (default), "fft" or "dft".
    """

    weight_real: Float[Array, "in_channels out_channels modes"]
    weight_imag: Float[Array, "in_channels out_channels modes"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: int = eqx.field(static=True)
    transform: str = eqx.field(static=True)

    def __init__(
        self, in_channels: int, out_channels: int, modes: int, *, key: Key, transform: str = "auto"
    ):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.modes = check_int("modes", modes)
        self.transform = _check_transform(transform)
        self.weight_real, self.weight_imag = _init_weights(
            key, (self.in_channels, self.out_channels, self.modes)
        )

    def __check_init__(self):
        want = (self.in_channels, self.out_channels, self.modes)
        for name in ("weight_real", "weight_imag"):
            if tuple(getattr(self, name).shape) != want:
                raise ValueError(
                    f"`{name}` has shape {getattr(self, name).shape}, expected {want}."
                )

    def __call__(self, x: Float[Array, "in_channels n"]) -> Float[Array, "out_channels n"]:
        check_shape("x", x, (self.in_channels, None), f"(in_channels, n) = ({self.in_channels}, n)")
        n = x.shape[-1]
        m = min(self.modes, n // 2 + 1)
        wr, wi = self.weight_real[..., :m], self.weight_imag[..., :m]
        if _use_dft(self.transform, n, m):
            forward, inverse = _real_dft(n, m, np.dtype(x.dtype).name)
            z = jnp.matmul(x, forward, precision=_HIGHEST)
            yr, yi = _mix(z[:, :m], z[:, m:], wr.astype(x.dtype), wi.astype(x.dtype), "im,iom->om")
            return jnp.matmul(jnp.concatenate([yr, yi], axis=1), inverse, precision=_HIGHEST)
        x_hat = jnp.fft.rfft(x, axis=-1)[:, :m]
        w = jax.lax.complex(wr, wi).astype(x_hat.dtype)
        y_hat = jnp.einsum("im,iom->om", x_hat, w)
        return jnp.fft.irfft(y_hat, n=n, axis=-1).astype(x.dtype)


class SpectralConv2d(eqx.Module):
    r"""Fourier layer of the FNO on a periodic 2-D grid (Li et al. 2021, ICLR, eq. (4)).

    As `SpectralConv1d` with a 2-D real FFT over `(h, w)`. The kept wavenumbers are
    |k_x| < modes_x (the rows k_x = 0, ..., modes_x - 1 and k_x = -modes_x, ..., -1 of the
    full FFT axis) and k_y = 0, ..., modes_y - 1 (the real-FFT axis): the "lower" and
    "upper" blocks of Li et al.'s reference code. The two blocks are stored as one array,
    rows `[0, modes_x)` for k_x >= 0 and rows `[modes_x, 2 modes_x)` for k_x = -modes_x..-1.

    Weights: `weight_real`, `weight_imag` of shape `(in_channels, out_channels,
    2 * modes_x, modes_y)`; parameter count `2 * in * out * 2 * modes_x * modes_y`.
    Resolution independent; on a grid with h // 2 < modes_x (or w // 2 + 1 < modes_y)
    only the wavenumbers the grid carries are used.

    `transform` as in `SpectralConv1d`; "dft" uses products with the kept rows of the DFT
    matrices along both axes (a real DFT along w, a complex one along h).

    Arguments:
        in_channels, out_channels: channel counts.
        modes: `modes_x` and `modes_y`, an int (both) or a pair.
        key: PRNG key.
        transform: "auto" (default), "fft" or "dft".
    """

    weight_real: Float[Array, "in_channels out_channels two_modes_x modes_y"]
    weight_imag: Float[Array, "in_channels out_channels two_modes_x modes_y"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, int] = eqx.field(static=True)
    transform: str = eqx.field(static=True)

    def __init__(
        self, in_channels: int, out_channels: int, modes, *, key: Key, transform: str = "auto"
    ):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.modes = check_pair("modes", modes)
        self.transform = _check_transform(transform)
        mx, my = self.modes
        self.weight_real, self.weight_imag = _init_weights(
            key, (self.in_channels, self.out_channels, 2 * mx, my)
        )

    def __check_init__(self):
        mx, my = self.modes
        want = (self.in_channels, self.out_channels, 2 * mx, my)
        for name in ("weight_real", "weight_imag"):
            if tuple(getattr(self, name).shape) != want:
                raise ValueError(
                    f"`{name}` has shape {getattr(self, name).shape}, expected {want}."
                )

    def __call__(self, x: Float[Array, "in_channels h w"]) -> Float[Array, "out_channels h w"]:
        check_shape(
            "x",
            x,
            (self.in_channels, None, None),
            f"(in_channels, h, w) = ({self.in_channels}, h, w)",
        )
        h, w = x.shape[-2:]
        mx_all, my_all = self.modes
        mx = min(mx_all, h // 2)
        my = min(my_all, w // 2 + 1)
        wr = _kept_rows(self.weight_real, mx, mx_all, my).astype(x.dtype)
        wi = _kept_rows(self.weight_imag, mx, mx_all, my).astype(x.dtype)
        if _use_dft(self.transform, w, my) and _use_dft(self.transform, h, mx):
            return self._call_dft(x, wr, wi, mx, my)
        x_hat = jnp.fft.rfft2(x, axes=(-2, -1))
        blocks = jnp.concatenate([x_hat[:, :mx, :my], x_hat[:, h - mx :, :my]], axis=1)
        y = jnp.einsum("ixy,ioxy->oxy", blocks, jax.lax.complex(wr, wi).astype(blocks.dtype))
        zeros = jnp.zeros((self.out_channels, h - 2 * mx, my), y.dtype)
        y_hat = jnp.concatenate([y[:, :mx], zeros, y[:, mx:]], axis=1)
        return jnp.fft.irfft2(y_hat, s=(h, w), axes=(-2, -1)).astype(x.dtype)

    def _call_dft(self, x, wr, wi, mx: int, my: int):
        """The same map with truncated DFT matrices: a real DFT along w, then the 2 mx kept
        rows of the complex DFT along h; the inverse in reverse order."""
        h, w = x.shape[-2:]
        dtype = np.dtype(x.dtype).name
        forward_w, inverse_w = _real_dft(w, my, dtype)
        cos_h, sin_h = _complex_dft_rows(h, mx, dtype)  # e^{-i k j 2 pi / h} = cos + i sin
        z = jnp.matmul(x, forward_w, precision=_HIGHEST)  # (c, h, 2 my)
        zr, zi = z[..., :my], z[..., my:]
        ar, ai = _mix(zr, zi, cos_h, sin_h, "chy,kh->cky")  # (c, 2 mx, my)
        yr, yi = _mix(ar, ai, wr, wi, "ixy,ioxy->oxy")
        # inverse along h: (1/h) sum_k e^{+i k j 2 pi / h} y_k, conj of the forward rows
        br, bi = _mix(yr, yi, cos_h / h, -sin_h / h, "oky,kh->ohy")
        return jnp.matmul(jnp.concatenate([br, bi], axis=-1), inverse_w, precision=_HIGHEST)


def _kept_rows(weight, mx: int, mx_all: int, my: int):
    """The weight rows of the wavenumbers |k_x| < mx (all of them when mx == mx_all)."""
    if mx == mx_all:
        return weight[..., :my]
    return jnp.concatenate([weight[:, :, :mx, :my], weight[:, :, 2 * mx_all - mx :, :my]], axis=2)
