"""The spectral convolution: the Fourier layer of the Fourier neural operator, on periodic
grids of any dimension."""

import functools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_int
from .._custom_types import Array, Float, Key
from ._base import check_example
from ._init import subkey, uniform


def _init_weights(key, shape):
    """Li et al. (2021)'s initialisation: real and imaginary parts U[0, 1) / (in * out)."""
    scale = 1.0 / (shape[0] * shape[1])
    return uniform(subkey(key, 0), shape, 0.0, scale), uniform(subkey(key, 1), shape, 0.0, scale)


_TRANSFORMS = ("auto", "fft", "dft")
_HIGHEST = jax.lax.Precision.HIGHEST
_SPATIAL = ("n",), ("h", "w"), ("d", "h", "w")  # axis names in shape errors, by dimension


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


def check_modes(name: str, modes, num_spatial_dims: int) -> tuple[int, ...]:
    """An int (every axis) or one int >= 1 per spatial axis, as a tuple."""
    if isinstance(modes, Sequence) and not isinstance(modes, str):
        if len(modes) != num_spatial_dims:
            raise ValueError(
                f"`{name}` must be an integer or {num_spatial_dims} integers (one per spatial "
                f"axis), got {modes!r}."
            )
        return tuple(check_int(f"{name}[{i}]", m) for i, m in enumerate(modes))
    return (check_int(name, modes),) * num_spatial_dims


def _mix(xr, xi, wr, wi, spec: str):
    """(xr + i xi) times (wr + i wi) summed over input channels, in real arithmetic."""
    yr = jnp.einsum(spec, xr, wr) - jnp.einsum(spec, xi, wi)
    yi = jnp.einsum(spec, xr, wi) + jnp.einsum(spec, xi, wr)
    return yr, yi


class SpectralConv(eqx.Module):
    r"""Fourier layer of the FNO on a periodic grid of 1, 2 or 3 dimensions (Li et al. 2021,
    ICLR, eq. (4)).

        (K v)_o = IFFT( sum_i R_{i o k} FFT(v_i)_k  for kept k;  0 otherwise )

    The real FFT of each input channel (`jnp.fft.rfftn` over the spatial axes) is truncated
    to its lowest wavenumbers, mixed across channels by a complex weight per kept mode,
    zero-padded and transformed back: a circular convolution with a band-limited kernel
    learned in Fourier space. Kept wavenumbers: 0 <= k_d < modes_d on the last (real-FFT)
    axis and |k_i| < modes_i on the others (the rows k_i = 0..modes_i - 1 and
    -modes_i..-1 of the full FFT axis, the "lower" and "upper" blocks of Li et al.'s 2-D
    code), stored in that order: rows [0, modes_i) for k_i >= 0, then [modes_i, 2 modes_i)
    for k_i = -modes_i..-1.

    Resolution independent: the weights are indexed by wavenumber, so the layer applies to
    any grid; where an axis of n points carries fewer wavenumbers (n // 2 on a full axis,
    n // 2 + 1 on the last) only those are used.

    Weights: `weight_real`, `weight_imag` (R = weight_real + i weight_imag), real arrays of
    shape `(in_channels, out_channels, 2 modes_1, ..., 2 modes_{d-1}, modes_d)`, so gradients
    are ordinary real gradients and any optax optimiser treats them correctly. Parameter
    count: `2 * in * out * 2^(d-1) * modes_1 * ... * modes_d` (no bias, as in Li et al.).
    Initialisation: Li et al.'s, U[0, 1) / (in * out) for real and imaginary parts.

    The truncated transforms are computed with `jnp.fft` (O(n log n)) or as products with
    the kept rows of the DFT matrices (O(n m) per axis, faster on CPU for few modes):
    `transform` chooses ("auto": the products when modes <= 5 log2(n) on every axis; a real
    DFT along the last axis, complex DFT rows along the others). Same map either way.

    Arguments:
        num_spatial_dims: d, the number of spatial axes (1, 2 or 3).
        in_channels, out_channels: channel counts.
        modes: kept modes per axis, an int (every axis) or d ints.
        key: PRNG key.
        transform: "auto" (default), "fft" or "dft".
    """

    weight_real: Float[Array, " in_channels out_channels *modes"]
    weight_imag: Float[Array, " in_channels out_channels *modes"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: tuple[int, ...] = eqx.field(static=True)
    transform: str = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        key: Key,
        transform: str = "auto",
    ):
        d = check_int("num_spatial_dims", num_spatial_dims, maximum=3)
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.modes = check_modes("modes", modes, d)
        self.transform = check_choice("transform", transform, _TRANSFORMS)
        self.weight_real, self.weight_imag = _init_weights(
            key, (self.in_channels, self.out_channels) + self.stored_modes
        )

    def __check_init__(self):
        want = (self.in_channels, self.out_channels) + self.stored_modes
        for name, weight in (("weight_real", self.weight_real), ("weight_imag", self.weight_imag)):
            if tuple(weight.shape) != want:
                raise ValueError(f"`{name}` has shape {weight.shape}, expected {want}.")

    @property
    def num_spatial_dims(self) -> int:
        return len(self.modes)

    @property
    def stored_modes(self) -> tuple[int, ...]:
        """The weights' mode axes: 2 modes_i on the full-FFT axes, modes_d on the last."""
        return tuple(2 * m for m in self.modes[:-1]) + self.modes[-1:]

    def __call__(
        self, x: Float[Array, " in_channels *spatial"]
    ) -> Float[Array, " out_channels *spatial"]:
        d = self.num_spatial_dims
        names = _SPATIAL[d - 1]
        check_example(
            "x",
            x,
            (self.in_channels,) + (None,) * d,
            f"(in_channels, {', '.join(names)}) = ({self.in_channels}, {', '.join(names)})",
        )
        spatial = x.shape[1:]
        # the wavenumbers this grid carries: |k| < n // 2 on full axes, k <= n // 2 on the last
        kept = tuple(min(m, n // 2) for m, n in zip(self.modes[:-1], spatial[:-1], strict=True))
        kept += (min(self.modes[-1], spatial[-1] // 2 + 1),)
        wr = _kept_weights(self.weight_real, kept, self.modes).astype(x.dtype)
        wi = _kept_weights(self.weight_imag, kept, self.modes).astype(x.dtype)
        if all(_use_dft(self.transform, n, m) for n, m in zip(spatial, kept, strict=True)):
            return _dft_conv(x, wr, wi, kept)
        return _fft_conv(x, wr, wi, kept)


def _kept_weights(weight, kept: tuple[int, ...], modes: tuple[int, ...]):
    """The weight entries of the kept wavenumbers (all of them when nothing is cut)."""
    for axis, (m, m_all) in enumerate(zip(kept[:-1], modes[:-1], strict=True)):
        if m < m_all:
            a = 2 + axis
            lower = jax.lax.slice_in_dim(weight, 0, m, axis=a)
            upper = jax.lax.slice_in_dim(weight, 2 * m_all - m, 2 * m_all, axis=a)
            weight = jnp.concatenate([lower, upper], axis=a)
    return weight[..., : kept[-1]]


def _fft_conv(x, wr, wi, kept: tuple[int, ...]):
    """The layer with `jnp.fft`: gather the kept blocks of rfftn(x), mix, scatter back."""
    d = len(kept)
    spatial = x.shape[1:]
    axes = tuple(range(1, d + 1))
    x_hat = jnp.fft.rfftn(x, axes=axes)[..., : kept[-1]]
    for axis, (m, n) in enumerate(zip(kept[:-1], spatial[:-1], strict=True)):
        a = 1 + axis
        lower = jax.lax.slice_in_dim(x_hat, 0, m, axis=a)
        upper = jax.lax.slice_in_dim(x_hat, n - m, n, axis=a)
        x_hat = jnp.concatenate([lower, upper], axis=a)
    letters = "xyz"[:d]
    w = jax.lax.complex(wr, wi).astype(x_hat.dtype)
    y = jnp.einsum(f"i{letters},io{letters}->o{letters}", x_hat, w)
    for axis, (m, n) in enumerate(zip(kept[:-1], spatial[:-1], strict=True)):
        a = 1 + axis
        pad_shape = y.shape[:a] + (n - 2 * m,) + y.shape[a + 1 :]
        lower = jax.lax.slice_in_dim(y, 0, m, axis=a)
        upper = jax.lax.slice_in_dim(y, m, 2 * m, axis=a)
        y = jnp.concatenate([lower, jnp.zeros(pad_shape, y.dtype), upper], axis=a)
    return jnp.fft.irfftn(y, s=spatial, axes=axes).astype(x.dtype)


def _dft_conv(x, wr, wi, kept: tuple[int, ...]):
    """The layer with truncated DFT matrices: a real DFT along the last axis, then the
    2 m_i kept rows of the complex DFT along each other axis; the inverse in reverse."""
    d = len(kept)
    spatial = x.shape[1:]
    dtype = np.dtype(x.dtype).name
    forward, inverse = _real_dft(spatial[-1], kept[-1], dtype)
    rows = [_complex_dft_rows(n, m, dtype) for n, m in zip(spatial[:-1], kept[:-1], strict=True)]
    z = jnp.matmul(x, forward, precision=_HIGHEST)  # (c, n_1, ..., n_{d-1}, 2 m_d)
    zr, zi = z[..., : kept[-1]], z[..., kept[-1] :]
    grid = "pq"[: d - 1] + "y"  # the data axes; "k" is a contracted DFT row
    for axis, (cos, sin) in enumerate(rows):  # e^{-i k j 2 pi / n} = cos + i sin
        out = grid[:axis] + "k" + grid[axis + 1 :]
        zr, zi = _mix(zr, zi, cos, sin, f"c{grid},k{grid[axis]}->c{out}")
    yr, yi = _mix(zr, zi, wr, wi, f"i{grid},io{grid}->o{grid}")
    for axis in reversed(range(d - 1)):
        # inverse along this axis: (1/n) sum_k e^{+i k j 2 pi / n} y_k, conj of the forward rows
        cos, sin = rows[axis]
        n = spatial[axis]
        inp = grid[:axis] + "k" + grid[axis + 1 :]
        yr, yi = _mix(yr, yi, cos / n, -sin / n, f"o{inp},k{grid[axis]}->o{grid}")
    return jnp.matmul(jnp.concatenate([yr, yi], axis=-1), inverse, precision=_HIGHEST)


def SpectralConv1d(
    in_channels: int, out_channels: int, modes: int, *, key: Key, transform: str = "auto"
) -> SpectralConv:
    """`SpectralConv(1, in_channels, out_channels, modes, ...)` on `(in_channels, n)`."""
    return SpectralConv(1, in_channels, out_channels, modes, key=key, transform=transform)


def SpectralConv2d(
    in_channels: int,
    out_channels: int,
    modes: int | Sequence[int],
    *,
    key: Key,
    transform: str = "auto",
) -> SpectralConv:
    """`SpectralConv(2, in_channels, out_channels, modes, ...)` on `(in_channels, h, w)`;
    `modes` is `modes_x` and `modes_y`, an int (both) or a pair."""
    return SpectralConv(2, in_channels, out_channels, modes, key=key, transform=transform)
