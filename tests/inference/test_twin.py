"""twin_logdensity / twin_problem: the log-density of a model whose solution is known in
closed form, and the argument checks that keep a sampler from moving what it cannot."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import inference
from jaxsci.dynamics import AbstractDynamics


class Decay(AbstractDynamics):
    """y' = -k y (two independent components): y(t) = y0 exp(-k t)."""

    k: jax.Array
    steps: int = eqx.field(static=True, default=3)

    def __init__(self, k=0.5, steps=3):
        self.k = jnp.asarray(k, dtype=float)
        self.steps = steps

    @property
    def state_shape(self):
        return (2,)

    @property
    def half_life(self):
        return jnp.log(2.0) / self.k

    def vector_field(self, t, y, args):
        return -self.k * y

    def default_initial_state(self, key=None):
        return jnp.array([1.0, 2.0])


def test_twin_logdensity_is_the_closed_form_posterior():
    """log p(k | y) up to the constant: LogNormal(log 0.4, 0.5) prior at k plus the Gaussian
    log-likelihood of y_obs around y0 exp(-k t) on the observed component, computed by hand
    (float64 on both sides; the solve at rtol 1e-10)."""
    with jax.enable_x64(True):
        ts = jnp.array([0.5, 1.0, 2.0])
        y_obs = jnp.array([[1.3], [1.1], [0.8]])
        target = inference.twin_logdensity(
            Decay(),
            "k",
            ts,
            jnp.array([1.0, 2.0]),
            y_obs,
            observed=(1,),
            noise_std=0.2,
            prior_loc=(0.4,),
            prior_scale=(0.5,),
            rtol=1e-10,
            atol=1e-10,
        )
        for k in (0.3, 0.5, 0.9):
            mean = 2.0 * np.exp(-k * np.asarray(ts))
            loglik = np.sum(
                -0.5 * ((np.asarray(y_obs[:, 0]) - mean) / 0.2) ** 2
                - math.log(0.2 * math.sqrt(2 * math.pi))
            )
            z = (math.log(k) - math.log(0.4)) / 0.5
            logprior = -0.5 * z**2 - math.log(k * 0.5 * math.sqrt(2 * math.pi))
            value = float(target.logdensity_fn({"k": jnp.asarray(k)}))
            assert value == pytest.approx(loglik + logprior, rel=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"names": ("steps",)}, "'steps' is not a scalar floating-point array field"),
        ({"names": ("half_life",)}, "'half_life' is not a scalar floating-point array field"),
        ({"names": ("k", "k")}, "distinct field names"),
        ({"observed": (2,)}, r"`observed` must be distinct indices in \[0, 2\)"),
        ({"prior_loc": (0.4, 0.5)}, "`prior_loc` must hold 1 positive numbers"),
        ({"prior_scale": -1.0}, "`prior_scale` must hold 1 positive numbers"),
        ({"labels": ("a",)}, "`labels` must hold 2 labels"),
        ({"obs_times": np.array([0.0, 1.0])}, "`obs_times` must be increasing times > 0"),
    ],
)
def test_twin_problem_refuses_by_name(kwargs, message):
    args = {"names": "k", "obs_times": np.array([0.5, 1.0]), "prior_loc": (0.4,)} | kwargs
    names = args.pop("names")
    with pytest.raises(ValueError, match=message):
        inference.twin_problem(jax.random.key(0), Decay(), names, **args)


def test_twin_problem_data_and_truth():
    """The data are the exact solution at the observation times plus noise from `key`; the
    truth is the model's field; a single name may be given as a string."""
    key = jax.random.key(1)
    problem = inference.twin_problem(
        key,
        Decay(0.5),
        "k",
        obs_times=np.array([0.5, 1.0, 2.0]),
        observed=(0,),
        noise_std=0.1,
        prior_loc=(0.4,),
        prior_scale=np.float32(0.3),
    )
    exact = np.exp(-0.5 * np.array([0.5, 1.0, 2.0]))[:, None]
    noise = 0.1 * np.asarray(jax.random.normal(key, (3, 1)))
    np.testing.assert_allclose(problem.obs_values, exact + noise, atol=1e-5)
    assert problem.truth == {"k": 0.5} and problem.labels == ("x[0]",)
    assert problem.name == "Decay" and problem.target.dim == 1
