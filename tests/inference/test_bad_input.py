"""Bad input raises an error that names the argument, what it got and what was expected."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from jaxsci import dynamics, inference

KEY = jax.random.key(0)


def gaussian(params):
    return -0.5 * jnp.sum(params["x"] ** 2)


TARGET = inference.LogDensity(gaussian, {"x": "real"}, shapes={"x": (2,)})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_chains": 0}, ValueError, "num_chains.*>= 1.*got 0"),
        ({"num_chains": -3}, ValueError, "num_chains"),
        ({"num_chains": 2.0}, TypeError, "num_chains.*int"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_warmup": -1}, ValueError, "num_warmup"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"sampler": "gibbs"}, ValueError, "sampler.*nuts.*got .gibbs."),
        ({"init": "median"}, ValueError, "init.*prior_median.*got .median."),
        ({"init": {"y": [0.0, 0.0]}}, ValueError, r"init.*unknown parameter name.*\['y'\]"),
        ({"init": {"x": [0.0, 0.0, 0.0]}}, ValueError, r"init\['x'\].*shape \(3,\).*\(2,\)"),
        ({"init": 3.0}, TypeError, "init"),
    ],
)
def test_posterior_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        inference.posterior(TARGET, **{"key": KEY, "progress_bar": False, **kwargs})


def test_key_and_prior_init_need_what_they_need():
    with pytest.raises(TypeError, match="key"):
        inference.posterior(TARGET, key=0)
    with pytest.raises(ValueError, match="init='prior_median'.*needs a prior"):
        inference.posterior(TARGET, key=KEY, init="prior_median", progress_bar=False)


def test_logdensity_parameter_declarations():
    with pytest.raises(ValueError, match=r"constraints\['x'\].*unknown constraint 'postive'"):
        inference.LogDensity(gaussian, {"x": "postive"})
    with pytest.raises(ValueError, match="Interval.*lower.*upper.*lower=1.0, upper=0.0"):
        inference.LogDensity(gaussian, {"x": inference.Interval(1.0, 0.0)})
    # ours, or the jaxtyping import hook's type-check error when the test run enables it
    with pytest.raises(TypeError, match=r"constraints\['x'\]|parameter 'constraints'"):
        inference.LogDensity(gaussian, {"x": 3})
    with pytest.raises(ValueError, match=r"prior.*unknown parameter name.*\['y'\].*lacks \['x'\]"):
        inference.LogDensity(gaussian, {"x": "real"}, prior={"y": dist.Normal()})
    with pytest.raises(ValueError, match=r"shapes\['x'\]"):
        inference.LogDensity(gaussian, {"x": "real"}, shapes={"x": (0,)})
    with pytest.raises(TypeError, match="logdensity_fn"):
        inference.LogDensity(3.0, {"x": "real"})
    # a log-density with model_args, or a numpyro model with constraints, is a mix-up
    with pytest.raises(ValueError, match="model_args"):
        inference.posterior(gaussian, key=KEY, constraints={"x": "real"}, model_args=(1,))
    with pytest.raises(ValueError, match="constraints"):
        inference.posterior(TARGET, key=KEY, constraints={"x": "real"})


def test_init_outside_support():
    target = inference.LogDensity(
        lambda p: -p["s"], {"s": "positive"}, prior={"s": dist.Exponential(1.0)}
    )
    with pytest.raises(ValueError, match=r"init\['s'\].*outside the support"):
        inference.posterior(target, key=KEY, init={"s": -1.0}, progress_bar=False)


# Our ValueError, or the jaxtyping import hook's TypeError naming the same parameter when the
# test run checks annotations.
SHAPE_ERRORS = (ValueError, TypeError)


def _named(message: str, arg: str) -> str:
    return rf"{message}|parameter '{arg}'"


def test_wrong_data_shapes():
    data = inference.hudson_lynx_hare()
    with pytest.raises(
        SHAPE_ERRORS, match=_named(r"`y` must have shape \(N, 2\) = \(20, 2\), got \(19, 2\)", "y")
    ):
        inference.posterior(
            inference.lotka_volterra_model,
            key=KEY,
            model_args=(data["ts"], data["y_init"], data["y"][:19]),
            progress_bar=False,
        )
    with pytest.raises(SHAPE_ERRORS, match=_named(r"`y_init` must have shape \(2,\)", "y_init")):
        inference.lotka_volterra_model(data["ts"], data["y_init"][:1], data["y"])
    model = dynamics.LotkaVolterra()
    with pytest.raises(SHAPE_ERRORS, match=_named(r"`y0` has shape \(3,\).*\(2,\)", "y0")):
        inference.solve_ode(model, jnp.ones(3), jnp.arange(1.0, 4.0))
    with pytest.raises(SHAPE_ERRORS, match=_named("`ts` must be a 1-D", "ts")):
        inference.solve_ode(model, jnp.ones(2), jnp.ones((2, 2)))
    sol = inference.ODESolution(ys=jnp.ones((3, 2)), ok=jnp.asarray(True))  # 3 times, 2 states
    with pytest.raises(
        SHAPE_ERRORS, match=_named(r"`observations` has shape \(2, 2\).*\(3, 2\)", "observations")
    ):
        inference.log_likelihood(sol, lambda ys: dist.Normal(ys, 1.0), np.ones((2, 2)))
    with pytest.raises(
        SHAPE_ERRORS, match=_named(r"`y_obs` has shape \(5, 3\).*\(4, 2\)", "y_obs")
    ):
        inference.lorenz63_posterior(
            jnp.arange(1.0, 5.0), jnp.ones(3), jnp.ones((5, 3)), observed=(0, 2)
        )


def test_solve_ode_arguments():
    model = dynamics.LotkaVolterra()
    with pytest.raises(ValueError, match="sensitivity.*'backward'"):
        inference.solve_ode(model, jnp.ones(2), jnp.arange(1.0, 4.0), sensitivity="backward")
    with pytest.raises(TypeError, match="sensitivity"):
        inference.solve_ode(model, jnp.ones(2), jnp.arange(1.0, 4.0), sensitivity=diffrax.Dopri5())
    with pytest.raises(ValueError, match="max_steps"):
        inference.solve_ode(model, jnp.ones(2), jnp.arange(1.0, 4.0), max_steps=0)
    with pytest.raises(TypeError, match="dynamics"):
        inference.solve_ode(lambda t, y: y, jnp.ones(2), jnp.arange(1.0, 4.0))
    # (was diffrax's runtime error "saveat.ts must lie between t0 and t1")
    with pytest.raises(ValueError, match=r"`t0` = 2.0 is after the first save time"):
        inference.solve_ode(model, jnp.ones(2), jnp.arange(1.0, 4.0), t0=2.0)


def test_sampler_settings():
    with pytest.raises(ValueError, match="target_accept.*1.5"):
        inference.NUTS(target_accept=1.5)
    with pytest.raises(ValueError, match="max_tree_depth"):
        inference.NumpyroNUTS(max_tree_depth=0)
    with pytest.raises(ValueError, match="num_integration_steps"):
        inference.HMC(num_integration_steps=0)
    with pytest.raises(TypeError, match="dense_mass"):
        inference.NUTS(dense_mass="yes")


def test_posterior_predictive_returns_no_factor_sites():
    """`numpyro.factor` sites (observe's `<site>_solver_ok` guard) are log-density terms, not
    simulations: posterior_predictive used to return them beside the simulated sites."""
    import numpyro
    import numpyro.distributions as dist

    def model(y=None):
        a = numpyro.sample("a", dist.Normal())
        numpyro.factor("y_solver_ok", jnp.where(jnp.isfinite(a), 0.0, -jnp.inf))
        numpyro.sample("y", dist.Normal(a, 1.0).expand([3]), obs=y)

    result = inference.posterior(
        model,
        key=KEY,
        sampler="hmc",
        num_chains=1,
        num_warmup=10,
        num_samples=5,
        init={"a": 0.0},
        model_args=(jnp.zeros(3),),
        progress_bar=False,
    )
    pred = result.posterior_predictive(KEY, None, None)
    assert set(pred) == {"y"} and pred["y"].shape == (1, 5, 3)


@pytest.mark.slow
def test_result_accessors_name_unknown_variables():
    result = inference.posterior(
        TARGET, key=KEY, init={"x": [0.0, 0.0]}, num_warmup=20, num_samples=20, progress_bar=False
    )
    with pytest.raises(ValueError, match=r"var_names.*\['z'\].*\['x'\]"):
        result.summary(var_names=["z"])
    with pytest.raises(ValueError, match="`fn` is required"):
        result.posterior_predictive(KEY)
