"""The discrete DDPM schedule (`DiscreteDDPM`, betas, diffusers' timestep spacings).

Stored reference numbers were computed once with diffusers 0.42.1 (not in the test venv):
`DDIMScheduler(beta_schedule=B).alphas_cumprod[[0, 1, 499, 999]]` for B in "linear",
"scaled_linear", "squaredcos_cap_v2" (float32 in diffusers; the scheduler's default
beta_start=1e-4, beta_end=0.02), and
`DDIMScheduler(timestep_spacing=S).set_timesteps(n); scheduler.timesteps` for S in
"trailing", "leading", "linspace", 1000 training steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd

from ._exact import Mixture

DIFFUSERS_ABAR = {
    "linear": [0.9998999834060669, 0.9997800588607788, 0.07858723402023315, 4.035830352222547e-05],
    "scaled_linear": [
        0.9998999834060669,
        0.9997973442077637,
        0.3331878185272217,
        0.0007334119873121381,
    ],
    "squaredcos_cap_v2": [
        0.9999586939811707,
        0.9999125599861145,
        0.4938434660434723,
        2.4287349909002387e-09,
    ],
}
BETAS = {
    "linear": jd.linear_betas,
    # diffusers' DDIMScheduler defaults beta_start=1e-4, beta_end=0.02 for every kind
    "scaled_linear": lambda: jd.scaled_linear_betas(1000, 1e-4, 0.02),
    "squaredcos_cap_v2": jd.cosine_betas,
}
# (spacing, n_steps) -> first four and last three of diffusers' DDIMScheduler.timesteps
DIFFUSERS_TIMESTEPS = {
    ("trailing", 7): ([999, 856, 713, 570], [428, 285, 142]),
    ("trailing", 10): ([999, 899, 799, 699], [299, 199, 99]),
    ("trailing", 50): ([999, 979, 959, 939], [59, 39, 19]),
    ("leading", 7): ([852, 710, 568, 426], [284, 142, 0]),
    ("leading", 10): ([900, 800, 700, 600], [200, 100, 0]),
    ("leading", 50): ([980, 960, 940, 920], [40, 20, 0]),
    ("linspace", 7): ([999, 832, 666, 500], [333, 166, 0]),
    ("linspace", 10): ([999, 888, 777, 666], [222, 111, 0]),
    ("linspace", 50): ([999, 979, 958, 938], [41, 20, 0]),
}
SPACINGS = {"trailing": jd.Trailing(), "leading": jd.Leading(), "linspace": jd.Linspace()}


@pytest.mark.parametrize("kind", list(BETAS))
def test_alphas_cumprod_match_the_definition_and_diffusers(kind, x64):
    """alpha(n)^2 = abar_n = prod_{k <= n} (1 - beta_k) at integer n: against the product
    in NumPy float64 (to rounding) and diffusers' float32 values (to float32 accumulation)."""
    betas = BETAS[kind]()
    sch = jd.DiscreteDDPM(betas)
    abar = np.cumprod(1.0 - betas)
    n = np.arange(1000)
    np.testing.assert_allclose(np.asarray(sch.alpha(n.astype(float))) ** 2, abar, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(sch.alphas_cumprod()), abar, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(sch.alpha(n) ** 2 + sch.sigma(n) ** 2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(abar[[0, 1, 499, 999]], DIFFUSERS_ABAR[kind], rtol=3e-5)
    lam = sch.lambda_(jnp.asarray([0.0, 10.5, 999.0]))
    np.testing.assert_allclose(np.asarray(sch.t_from_lambda(lam)), [0.0, 10.5, 999.0], atol=1e-9)
    assert sch.t_min == 0.0 and sch.t_max == 999.0


@pytest.mark.parametrize("key", list(DIFFUSERS_TIMESTEPS))
def test_timesteps_match_diffusers(key):
    spacing, n = key
    steps = jd.ddpm_timesteps(jd.DiscreteDDPM(), n, SPACINGS[spacing])
    head, tail = DIFFUSERS_TIMESTEPS[key]
    assert len(steps) == n
    assert steps[:4].tolist() == head and steps[-3:].tolist() == tail
    grid = np.asarray(jd.ddpm_grid(jd.DiscreteDDPM(), n, SPACINGS[spacing]))
    assert grid[-1] == 0 and np.all(np.diff(grid) < 0)
    assert len(grid) == (n + 1 if spacing == "trailing" else n)


def test_ddim_on_integer_steps_is_the_ddim_update(x64):
    """DDIM(eta=0) on `ddpm_grid` with a model indexed by the integer step n (as a pretrained
    DDPM's eps network is) follows DDIM's update (Song et al. 2021, eq. 12) on abar:
    x0 = (x - sqrt(1 - abar_n) eps)/sqrt(abar_n), x' = sqrt(abar_m) x0 + sqrt(1 - abar_m) eps,
    from step n to the next grid step m, computed here in NumPy."""
    sch = jd.DiscreteDDPM()
    abar = np.cumprod(1.0 - jd.linear_betas())
    mix = Mixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]])

    def eps_n(x, n):  # the exact eps at training step n (an integer index)
        a = jnp.sqrt(jnp.asarray(abar)[n])
        return mix.eps(x, a, jnp.sqrt(1.0 - a**2))

    model = lambda t, x: eps_n(x, t.astype(jnp.int32))  # noqa: E731
    grid = np.asarray(jd.ddpm_grid(sch, 10))
    x_T = np.asarray(jax.random.normal(jax.random.key(0), (2,), dtype=jnp.float64))
    res = jd.sample(
        jd.DDIM(), model, sch, jnp.asarray(grid), jnp.asarray(x_T), save_trajectory=True
    )
    x = x_T
    for k in range(len(grid) - 1):
        n, m = int(grid[k]), int(grid[k + 1])
        assert grid[k] == n  # the model is called at integer steps
        e = np.asarray(eps_n(jnp.asarray(x), n))
        x0 = (x - np.sqrt(1 - abar[n]) * e) / np.sqrt(abar[n])
        x = np.sqrt(abar[m]) * x0 + np.sqrt(1 - abar[m]) * e
        np.testing.assert_allclose(np.asarray(res.trajectory[k + 1]), x, rtol=1e-9, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="`betas`"):
        jd.DiscreteDDPM(np.asarray([0.1, 1.5]))
    with pytest.raises((ValueError, TypeError), match="betas"):  # TypeError: import hook
        jd.DiscreteDDPM(np.asarray([[0.1, 0.2]]))
    with pytest.raises(ValueError, match="n_steps"):
        jd.ddpm_timesteps(jd.DiscreteDDPM(), 1001)
    with pytest.raises(TypeError, match="spacing"):
        jd.ddpm_timesteps(jd.DiscreteDDPM(), 10, "trailing")
