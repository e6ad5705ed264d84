"""Spectral convolutions against references: analytic Fourier multipliers on sums of
sinusoids, direct circular convolutions computed with numpy, finite-difference gradients,
exact resolution consistency on band-limited inputs, and training with optax."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsci.nn as nn

TRANSFORMS = ["fft", "dft"]


def _set(layer, wr, wi):
    return eqx.tree_at(
        lambda m: (m.weight_real, m.weight_imag),
        layer,
        (jnp.asarray(wr, layer.weight_real.dtype), jnp.asarray(wi, layer.weight_imag.dtype)),
    )


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_1d_all_modes_reproduce_analytic_multipliers(transform):
    """All n/2 + 1 modes kept, diagonal ("identity-like") channel weights: channel 0 gets
    the derivative symbol i k, channel 1 the heat semigroup exp(-k^2 / 10). On a sum of
    sinusoids on [0, 2 pi) the outputs are the analytic derivative and the damped sum."""
    n = 32
    m = n // 2 + 1
    k = np.arange(m, dtype=np.float64)
    wr = np.zeros((2, 2, m))
    wi = np.zeros((2, 2, m))
    wi[0, 0] = k
    wi[0, 0, -1] = 0.0  # the Nyquist mode has no sign: no derivative there
    wr[1, 1] = np.exp(-(k**2) / 10)
    layer = _set(nn.SpectralConv1d(2, 2, m, key=jax.random.key(0), transform=transform), wr, wi)
    x = 2 * np.pi * np.arange(n) / n
    terms = [(1.0, 0.5, 1), (-0.7, 0.2, 3), (0.3, -1.1, 7), (0.25, 0.4, 15)]  # (a, b, k)
    u = sum(a * np.sin(q * x) + b * np.cos(q * x) for a, b, q in terms)
    du = sum(q * (a * np.cos(q * x) - b * np.sin(q * x)) for a, b, q in terms)
    heat = sum(np.exp(-(q**2) / 10) * (a * np.sin(q * x) + b * np.cos(q * x)) for a, b, q in terms)
    out = np.asarray(layer(jnp.asarray(np.stack([u, u]), jnp.float32)))
    np.testing.assert_allclose(out[0], du, atol=2e-5 * np.abs(du).max())
    np.testing.assert_allclose(out[1], heat, atol=2e-6)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_2d_all_modes_reproduce_the_laplacian(transform):
    """All modes kept on a 16 x 12 grid with the symbol -(kx^2 + ky^2): the Laplacian of a
    sum of plane waves (rows k_x >= 0 first, then k_x = -modes_x..-1)."""
    h, w = 16, 12
    mx, my = h // 2, w // 2 + 1
    kx = np.concatenate([np.arange(mx), np.arange(-mx, 0)])
    ky = np.arange(my)
    wr = -(kx[:, None] ** 2 + ky[None, :] ** 2)[None, None].astype(np.float64)
    layer = nn.SpectralConv2d(1, 1, (mx, my), key=jax.random.key(0), transform=transform)
    layer = _set(layer, wr, np.zeros_like(wr))
    x = 2 * np.pi * np.arange(h)[:, None] / h
    y = 2 * np.pi * np.arange(w)[None, :] / w
    waves = [(1.0, 2, 3, np.sin), (0.5, 1, -4, np.cos), (-0.8, -5, 1, np.sin), (0.3, 7, 5, np.cos)]
    u = sum(a * f(p * x + q * y) for a, p, q, f in waves)
    lap = sum(-(p**2 + q**2) * a * f(p * x + q * y) for a, p, q, f in waves)
    out = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(out, lap, atol=2e-5 * np.abs(lap).max())


def _direct_circular_conv_1d(kernel, u):
    """y_o[j] = sum_i sum_s kernel[i, o, s] u_i[(j - s) mod n], an explicit O(n^2) sum."""
    c_in, c_out, n = kernel.shape
    y = np.zeros((c_out, n))
    for o in range(c_out):
        for i in range(c_in):
            for s in range(n):
                y[o] += kernel[i, o, s] * np.roll(u[i], s)
    return y


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("n, modes", [(24, 5), (15, 8)])
def test_1d_equals_direct_circular_convolution(transform, n, modes):
    """Random weights R (modes kept): the layer is the circular convolution with the real
    kernel numpy.fft.irfft(R zero-padded, n), evaluated as a direct sum."""
    layer = nn.SpectralConv1d(2, 3, modes, key=jax.random.key(1), transform=transform)
    rng = np.random.default_rng(0)
    wr, wi = rng.normal(size=(2, 2, 3, modes))
    layer = _set(layer, wr, wi)
    spectrum = np.zeros((2, 3, n // 2 + 1), complex)
    spectrum[..., :modes] = wr + 1j * wi
    kernel = np.fft.irfft(spectrum, n=n, axis=-1)
    u = rng.normal(size=(2, n))
    out = np.asarray(layer(jnp.asarray(u, jnp.float32)))
    np.testing.assert_allclose(out, _direct_circular_conv_1d(kernel, u), atol=2e-5 * n)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_2d_equals_direct_circular_convolution(transform):
    """As in 1-D on a 10 x 8 grid: kernel = numpy.fft.irfft2 of the weights placed in the
    rows k_x = 0..mx-1 and -mx..-1 and columns k_y < my; direct sum over all shifts."""
    h, w, mx, my = 10, 8, 3, 2
    layer = nn.SpectralConv2d(2, 3, (mx, my), key=jax.random.key(1), transform=transform)
    rng = np.random.default_rng(1)
    wr, wi = rng.normal(size=(2, 2, 3, 2 * mx, my))
    layer = _set(layer, wr, wi)
    spectrum = np.zeros((2, 3, h, w // 2 + 1), complex)
    spectrum[:, :, :mx, :my] = (wr + 1j * wi)[:, :, :mx]
    spectrum[:, :, h - mx :, :my] = (wr + 1j * wi)[:, :, mx:]
    kernel = np.fft.irfft2(spectrum, s=(h, w), axes=(-2, -1))
    u = rng.normal(size=(2, h, w))
    expected = np.zeros((3, h, w))
    for o in range(3):
        for i in range(2):
            for sx in range(h):
                for sy in range(w):
                    expected[o] += kernel[i, o, sx, sy] * np.roll(u[i], (sx, sy), axis=(0, 1))
    out = np.asarray(layer(jnp.asarray(u, jnp.float32)))
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_3d_equals_the_numpy_fourier_multiplier(transform):
    """3-D, modes (2, 3, 2) on an 8 x 10 x 6 grid: the weights placed at k_1 in {0, 1, -2,
    -1}, k_2 in {0, 1, 2, -3, -2, -1}, k_3 in {0, 1} of numpy.fft.rfftn's layout, multiplied
    and summed over input channels, numpy.fft.irfftn back."""
    shape, modes = (8, 10, 6), (2, 3, 2)
    layer = nn.SpectralConv(3, 2, 3, modes, key=jax.random.key(1), transform=transform)
    rng = np.random.default_rng(2)
    wr, wi = rng.normal(size=(2, 2, 3, 4, 6, 2))
    layer = _set(layer, wr, wi)
    rows = [np.r_[0:m, n - m : n] for m, n in zip(modes[:2], shape[:2], strict=True)]
    spectrum = np.zeros((2, 3, 8, 10, 4), complex)
    spectrum[np.ix_(range(2), range(3), rows[0], rows[1], range(2))] = wr + 1j * wi
    u = rng.normal(size=(2, *shape))
    u_hat = np.fft.rfftn(u, axes=(1, 2, 3))
    expected = np.fft.irfftn(
        np.einsum("iabc,ioabc->oabc", u_hat, spectrum), s=shape, axes=(1, 2, 3)
    )
    out = np.asarray(layer(jnp.asarray(u, jnp.float32)))
    np.testing.assert_allclose(out, expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_band_limited_input_is_resolution_consistent(transform):
    """A field with wavenumbers < modes sampled on n and 2n points: the outputs agree at
    the shared points (the layer is one operator on functions, not a grid map)."""
    layer = nn.SpectralConv1d(1, 2, 6, key=jax.random.key(2), transform=transform)

    def field(n):
        x = 2 * np.pi * np.arange(n) / n
        return jnp.asarray(
            (np.sin(x) + 0.5 * np.cos(3 * x) - 0.2 * np.sin(5 * x))[None], jnp.float32
        )

    coarse, fine = layer(field(32)), layer(field(64))
    np.testing.assert_allclose(np.asarray(fine[:, ::2]), np.asarray(coarse), atol=1e-5)

    layer2 = nn.SpectralConv2d(1, 1, (4, 3), key=jax.random.key(2), transform=transform)
    u = lambda h, w: jnp.asarray(  # noqa: E731
        np.cos(2 * np.pi * (np.arange(h)[:, None] / h * 2 + np.arange(w)[None] / w))[None],
        jnp.float32,
    )
    np.testing.assert_allclose(
        np.asarray(layer2(u(32, 24))[:, ::2, ::2]), np.asarray(layer2(u(16, 12))), atol=1e-5
    )


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_weight_gradient_matches_finite_differences(x64, transform):
    """float64: d/dW of sum(layer(u) * r) + |layer(u)|^2 / 2 for one real and one imaginary
    weight entry against central differences (the loss is quadratic in W, so the central
    difference is exact up to rounding)."""
    layer = nn.SpectralConv1d(2, 2, 5, key=jax.random.key(3), transform=transform)
    assert layer.weight_real.dtype == jnp.float64
    u = jax.random.normal(jax.random.key(4), (2, 20), jnp.float64)
    r = jax.random.normal(jax.random.key(5), (2, 20), jnp.float64)
    loss = eqx.filter_jit(lambda m: jnp.sum(m(u) * r) + 0.5 * jnp.sum(m(u) ** 2))
    grads = eqx.filter_jit(eqx.filter_grad(loss))(layer)
    eps = 1e-6
    for name, idx in [("weight_real", (1, 0, 2)), ("weight_imag", (0, 1, 3))]:
        base = getattr(layer, name)

        def bumped(d, name=name, base=base, idx=idx):
            return eqx.tree_at(lambda m: getattr(m, name), layer, base.at[idx].add(d))

        fd = (loss(bumped(eps)) - loss(bumped(-eps))) / (2 * eps)
        np.testing.assert_allclose(float(getattr(grads, name)[idx]), float(fd), rtol=1e-7)


def test_optax_adam_recovers_a_fourier_multiplier():
    """Real-pair storage trains with any optax optimiser: Adam on the MSE against the
    derivative operator recovers the symbol i k on the kept modes (gradients of a real loss
    with respect to the real and imaginary parts, no complex-conjugation convention)."""
    n, modes = 32, 6
    layer = nn.SpectralConv1d(1, 1, modes, key=jax.random.key(6))
    x = 2 * np.pi * np.arange(n) / n
    rng = np.random.default_rng(7)
    coef = rng.normal(size=(64, 2, modes))
    k = np.arange(modes)
    u = np.einsum("bk,kx->bx", coef[:, 0], np.cos(np.outer(k, x))) + np.einsum(
        "bk,kx->bx", coef[:, 1], np.sin(np.outer(k, x))
    )
    du = np.einsum("bk,kx->bx", -coef[:, 0] * k, np.sin(np.outer(k, x))) + np.einsum(
        "bk,kx->bx", coef[:, 1] * k, np.cos(np.outer(k, x))
    )
    u, du = jnp.asarray(u[:, None], jnp.float32), jnp.asarray(du[:, None], jnp.float32)
    opt = optax.adam(0.05)
    state = opt.init(eqx.filter(layer, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(layer, state):
        loss, g = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(u) - du) ** 2))(layer)
        updates, state = opt.update(g, state, layer)
        return eqx.apply_updates(layer, updates), state, loss

    for _ in range(400):
        layer, state, loss = step(layer, state)
    assert float(loss) < 1e-5
    # the imaginary part of the k = 0 weight acts on the (discarded) imaginary part of the
    # mean, so it is not identifiable and keeps its initial value
    np.testing.assert_allclose(np.asarray(layer.weight_imag[0, 0, 1:]), k[1:], atol=2e-3)
    np.testing.assert_allclose(np.asarray(layer.weight_real[0, 0]), 0.0, atol=2e-3)


def test_bad_arguments_name_themselves(own_checks):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`modes`"):
        nn.SpectralConv1d(2, 2, 0, key=key)
    with pytest.raises(TypeError, match="`in_channels`"):
        nn.SpectralConv1d(2.5, 2, 3, key=key)
    with pytest.raises(ValueError, match="`modes`"):
        nn.SpectralConv2d(2, 2, (3, 4, 5), key=key)
    with pytest.raises(ValueError, match="`transform`"):
        nn.SpectralConv1d(2, 2, 3, key=key, transform="matmul")
    layer = nn.SpectralConv1d(2, 2, 3, key=key)
    with pytest.raises(ValueError, match=r"`x` has shape \(3, 16\)"):
        layer(jnp.ones((3, 16)))
    with pytest.raises(ValueError, match="`x` has shape"):
        nn.SpectralConv2d(2, 2, 3, key=key)(jnp.ones((2, 16)))
