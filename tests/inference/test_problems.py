"""The posterior problems: the Lorenz-63 twin experiment's data from its key, its target at
the truth, a non-finite truth named; the posteriordb rule on the reference itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import inference
from jaxsci.dynamics import Lorenz63


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_lorenz63_problem_data_and_target():
    key = jax.random.key(3)
    problem = inference.lorenz63_problem(key, num_obs=6, observed=(0, 2), noise_std=0.5)
    assert problem.obs_values.shape == (6, 2) and problem.obs_times.shape == (6,)
    assert problem.labels == ("x", "z") and problem.truth == {
        "sigma": 10.0,
        "rho": 28.0,
        "beta": 8.0 / 3.0,
    }
    again = inference.lorenz63_problem(key, num_obs=6, observed=(0, 2), noise_std=0.5)
    np.testing.assert_array_equal(problem.obs_values, again.obs_values)
    clean = inference.solve_ode(
        Lorenz63(),
        Lorenz63().default_initial_state(),
        jnp.asarray(problem.obs_times),
        t0=0.0,
        rtol=1e-9,
        atol=1e-9,
    )
    noise = problem.obs_values - np.asarray(clean.ys)[:, [0, 2]]
    np.testing.assert_allclose(noise, 0.5 * np.asarray(jax.random.normal(key, (6, 2))), atol=1e-4)
    assert problem.target.dim == 3
    with pytest.raises(ValueError, match="true parameters"):
        inference.lorenz63_problem(key, rho=1e6, num_obs=3, max_steps=64)


def test_posteriordb_check_of_the_reference_itself():
    reference = inference.posteriordb_reference()
    summary = {k: {**v, "rhat": 1.0} for k, v in reference.items()}
    check = inference.posteriordb_check(summary, reference)
    assert check.passes and check.max_abs_z == 0.0
    assert all(r == 1.0 for r in check.sd_ratio.values())
    name = next(iter(reference))
    shifted = dict(summary)
    shifted[name] = {**summary[name], "mean": summary[name]["mean"] + 0.3 * summary[name]["sd"]}
    check = inference.posteriordb_check(shifted, reference)
    assert not check.passes and check.max_abs_z == pytest.approx(0.3)
