"""Spectral convolutions: the Fourier layers of the Fourier neural operator."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key
from ._base import check_int, check_pair, check_shape


def _init_weights(key, shape):
    """Li et al. (2021)'s initialisation: real and imaginary parts U[0, 1) / (in * out)."""
    rkey, ikey = jax.random.split(key)
    scale = 1.0 / (shape[0] * shape[1])
    dtype = jnp.zeros(()).dtype
    return (
        scale * jax.random.uniform(rkey, shape, dtype),
        scale * jax.random.uniform(ikey, shape, dtype),
    )


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

    Arguments:
        in_channels, out_channels: channel counts.
        modes: number of kept Fourier modes k = 0, ..., modes - 1.
        key: PRNG key.
    """

    weight_real: Float[Array, "in_channels out_channels modes"]
    weight_imag: Float[Array, "in_channels out_channels modes"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, modes: int, *, key: Key):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.modes = check_int("modes", modes)
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
        x_hat = jnp.fft.rfft(x, axis=-1)[:, :m]
        w = jax.lax.complex(self.weight_real[..., :m], self.weight_imag[..., :m])
        y_hat = jnp.einsum("im,iom->om", x_hat, w.astype(x_hat.dtype))
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

    Arguments:
        in_channels, out_channels: channel counts.
        modes: `modes_x` and `modes_y`, an int (both) or a pair.
        key: PRNG key.
    """

    weight_real: Float[Array, "in_channels out_channels two_modes_x modes_y"]
    weight_imag: Float[Array, "in_channels out_channels two_modes_x modes_y"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, int] = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, modes, *, key: Key):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.modes = check_pair("modes", modes)
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
        x_hat = jnp.fft.rfft2(x, axes=(-2, -1))
        blocks = jnp.concatenate([x_hat[:, :mx, :my], x_hat[:, h - mx :, :my]], axis=1)
        weights = jax.lax.complex(
            _kept_rows(self.weight_real, mx, mx_all, my),
            _kept_rows(self.weight_imag, mx, mx_all, my),
        ).astype(blocks.dtype)
        y = jnp.einsum("ixy,ioxy->oxy", blocks, weights)
        zeros = jnp.zeros((self.out_channels, h - 2 * mx, my), y.dtype)
        y_hat = jnp.concatenate([y[:, :mx], zeros, y[:, mx:]], axis=1)
        return jnp.fft.irfft2(y_hat, s=(h, w), axes=(-2, -1)).astype(x.dtype)


def _kept_rows(weight, mx: int, mx_all: int, my: int):
    """The weight rows of the wavenumbers |k_x| < mx (all of them when mx == mx_all)."""
    if mx == mx_all:
        return weight[..., :my]
    return jnp.concatenate([weight[:, :, :mx, :my], weight[:, :, 2 * mx_all - mx :, :my]], axis=2)
