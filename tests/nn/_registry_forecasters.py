"""Conformance cases of the learned forecasters (`Stepper`, `LocalStochastic`,
`NoiseInjected`), in the format of `_registry.CASES` (merged there with
`CASES.update(FORECASTER_CASES)`)."""

import jax

import jaxsci.nn as nn

from ._registry import Case, fno_params, mlp_params, time_mlp_params, unet_params


def _normal(key, shape):
    return jax.random.normal(key, shape)


FORECASTER_CASES = {
    "Stepper": Case(  # residual FNO stepper on a (1, n) field
        make=lambda k: nn.Stepper(nn.FNO1d(1, 1, 4, 3, 1, key=k, grid=False, projection_width=4)),
        inputs=lambda k, r: (_normal(k, (1, (16, 24)[r])),),
        out_shape=lambda u: u.shape,
        params=fno_params(1, 4, [3], 4, 1, dims=1),
    ),
    "LocalStochastic": Case(  # one member per call; the key is an input
        make=lambda k: nn.LocalStochastic(2, 3, 8, 2, mean=0.5, scale=2.0, key=k),
        inputs=lambda k, r: (_normal(k, ((10, 17)[r],)), jax.random.fold_in(k, 1)),
        out_shape=lambda x, key: x.shape,
        params=mlp_params(2 * 2 + 1 + 3, 1, 8, 2) + 2,  # + the buffers mean and scale
        call=lambda m, x, key: m(x, key=key),
        buffers=("mean", "scale"),
    ),
    "NoiseInjected": Case(  # an FNO with 2 latent noise channels and MC dropout; key an input
        make=lambda k: nn.NoiseInjected(
            nn.FNO1d(3, 1, 4, 3, 1, key=k, projection_width=4, dropout=0.2), 2
        ),
        inputs=lambda k, r: (_normal(k, (1, (16, 24)[r])), jax.random.fold_in(k, 1)),
        out_shape=lambda x, key: x.shape,
        params=fno_params(4, 4, [3], 4, 1, dims=1),
        call=lambda m, x, key: m(x, key=key),
    ),
    "PDERefiner": Case(  # K = 1 refinement over a one-level ScoreUNet1d on [u_prev, u_noisy]
        make=lambda k: nn.PDERefiner(nn.ScoreUNet1d(2, 4, (1,), 4, key=k), 1, 1, 1e-3),
        inputs=lambda k, r: (_normal(k, (1, (16, 24)[r])), jax.random.fold_in(k, 1)),
        out_shape=lambda x, key: x.shape,
        # the U-Net (2 -> 2 channels, time embedding 4: e = 16) + its time MLP + sigma_min
        params=unet_params(1, 2, 2, 4, (1,), 1, emb=16) + time_mlp_params(4) + 1,
        call=lambda m, x, key: m(x, key=key),
        buffers=("min_noise_std",),
    ),
    "LocalMLP": Case(  # a local closure on a ring (one shared MLP per site)
        make=lambda k: nn.LocalMLP(1, 8, 2, mean=0.5, scale=2.0, output_scale=1.5, key=k),
        inputs=lambda k, r: (_normal(k, ((10, 17)[r],)),),
        out_shape=lambda x: x.shape,
        params=mlp_params(2 * 1 + 1, 1, 8, 2) + 3,  # + the buffers mean, scale, output_scale
        buffers=("mean", "scale", "output_scale"),
    ),
    "LocalPolynomial": Case(  # a cubic of each site's value (random coefficients)
        make=lambda k: nn.LocalPolynomial(jax.random.normal(k, (4,)), mean=0.5, scale=2.0),
        inputs=lambda k, r: (_normal(k, ((10, 17)[r],)),),
        out_shape=lambda x: x.shape,
        params=4 + 2,  # the coefficients + the buffers mean and scale
        buffers=("mean", "scale"),
    ),
}

# (index of the argument given a spurious leading batch axis, the name its error must use)
FORECASTER_BAD_INPUT = {
    "Stepper": (0, "x"),
    "LocalStochastic": (0, "x"),
    "LocalMLP": (0, "x"),
    "PDERefiner": (0, "u"),
    "LocalPolynomial": (0, "x"),
}
