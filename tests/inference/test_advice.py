"""`PosteriorResult.diagnose`: each failed post-run check gives advice naming what to change.

On synthetic runs (draws and sampler statistics made by hand, no sampling), so every check is
exercised in isolation and fast: a clean run gives nothing; divergences suggest the next
target_accept (0.95, 0.99, 0.999) and a non-centred reparameterisation, and name where they
cluster; R-hat > 1.01, ESS < 100 per chain, NUTS tree depth at its cap and E-BFMI < 0.3 each
give their advice; a strongly correlated posterior sampled with a diagonal mass matrix adds
the dense-mass hint, only when something else failed. The statistical cases (a centred Neal's
funnel that diverges, the same funnel non-centred that passes) are in test_conjugate.py.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import inference

CHAINS, DRAWS, WARMUP = 4, 500, 100


def _run(
    x,
    *,
    sampler=None,
    diverging=None,
    tree_depth=None,
    energy=None,
) -> inference.PosteriorResult:
    """A `PosteriorResult` with draws `x` (chains, draws, dim) of one vector parameter `x`."""
    chains, draws, dim = x.shape
    rng = np.random.default_rng(0)
    zeros = np.zeros((chains, draws))
    stats = {
        "lp": zeros,
        "diverging": np.zeros((chains, draws), bool) if diverging is None else diverging,
        "tree_depth": np.full((chains, draws), 3) if tree_depth is None else tree_depth,
        "step_size": zeros + 0.5,
        "acceptance_rate": zeros + 0.8,
        "n_steps": np.full((chains, draws), 7),
        # independent energies: E-BFMI ~ 2
        "energy": rng.normal(size=(chains, draws)) if energy is None else energy,
    }
    target = inference.LogDensity(
        lambda p: -0.5 * jnp.sum(p["x"] ** 2), {"x": "real"}, shapes={"x": (dim,)}
    )
    return inference.PosteriorResult(
        draws={"x": x},
        unconstrained=x,
        sample_stats=stats,
        warmup_stats={k: np.zeros((chains, WARMUP), v.dtype) for k, v in stats.items()},
        step_size=np.full(chains, 0.5),
        inverse_mass_matrix=np.ones((chains, dim)),
        init=x[:, 0],
        compile_seconds=0.0,
        warmup_seconds=1.0,
        sampling_seconds=1.0,
        target=target,
        sampler=inference.NUTS() if sampler is None else sampler,
    )


def _iid(seed=0, dim=2):
    return np.random.default_rng(seed).normal(size=(CHAINS, DRAWS, dim))


def _correlated(rho=0.95):
    z = _iid(1)
    return np.stack([z[..., 0], rho * z[..., 0] + np.sqrt(1 - rho**2) * z[..., 1]], -1)


def _kinds(result):
    return [a.kind for a in result.diagnose()]


def test_clean_run_gives_no_advice():
    result = _run(_iid())
    assert result.diagnose() == ()
    assert result.diagnose(result.summary()) == ()
    # a correlated posterior alone is no problem (the dense-mass hint needs a failed check)
    assert _run(_correlated()).diagnose() == ()


@pytest.mark.parametrize(
    "accept, expected",
    [
        (0.8, "Raise target_accept from 0.8 to 0.95"),
        (0.95, "Raise target_accept from 0.95 to 0.99"),
        (0.99, "Raise target_accept from 0.99 to 0.999"),
        (0.999, "target_accept is already 0.999: reparameterise"),
    ],
)
def test_divergences_suggest_the_next_target_accept_and_non_centring(accept, expected):
    x = _iid()
    # divergent transitions in the lower tail of x[2] (a funnel's neck, say)
    result = _run(x, sampler=inference.NUTS(target_accept=accept), diverging=x[..., 1] < -1.5)
    (advice,) = result.diagnose()
    assert advice.kind == "divergences"
    n = int(np.sum(x[..., 1] < -1.5))
    assert advice.problem.startswith(f"{n} of {CHAINS * DRAWS} post-warmup transitions diverged")
    assert "They cluster where x[2] is low" in advice.problem
    assert expected in advice.suggestion and "non-centred" in advice.suggestion
    assert str(advice) == f"{advice.problem} {advice.suggestion}"


def test_divergences_spread_at_random_name_no_cluster():
    rng = np.random.default_rng(3)
    diverging = rng.random((CHAINS, DRAWS)) < 0.01
    (advice,) = _run(_iid(), diverging=diverging).diagnose()
    assert advice.kind == "divergences" and "cluster" not in advice.problem


def test_rhat_advice_names_the_worst_parameter():
    x = _iid()
    x[0, :, 1] += 1.0  # chain 1 disagrees about x[2]
    advice = {a.kind: a for a in _run(x).diagnose()}
    assert "rhat" in advice
    assert "(x[2])" in advice["rhat"].problem and "> 1.01" in advice["rhat"].problem
    assert f"num_samples {DRAWS} -> {2 * DRAWS}" in advice["rhat"].suggestion


def test_low_ess_suggests_how_many_draws():
    # AR(1) chains with phi = 0.95: ESS ~ S (1 - phi) / (1 + phi) ~ 51 of 2000 draws
    rng = np.random.default_rng(4)
    x = np.empty((CHAINS, DRAWS, 1))
    x[:, 0] = rng.normal(size=(CHAINS, 1)) / np.sqrt(1 - 0.95**2)
    for t in range(1, DRAWS):
        x[:, t] = 0.95 * x[:, t - 1] + rng.normal(size=(CHAINS, 1))
    advice = {a.kind: a for a in _run(x).diagnose()}
    assert "ess" in advice and "< 400 (100 per chain)" in advice["ess"].problem
    ess = min(inference.ess_bulk(x)[0], inference.ess_tail(x)[0])
    more = int(np.ceil(DRAWS * 400 / ess / 100) * 100)
    assert f"about num_samples {more} per chain" in advice["ess"].suggestion


def test_tree_depth_at_the_cap_is_reported_for_nuts_only():
    depth = np.full((CHAINS, DRAWS), 3)
    depth[0, :10] = 10  # NUTS' default max_tree_depth
    (advice,) = _run(_iid(), tree_depth=depth).diagnose()
    assert advice.kind == "tree_depth"
    assert advice.problem.startswith("10 of 2000 transitions hit max_tree_depth 10")
    assert "Raise max_tree_depth to 12" in advice.suggestion
    assert (
        _run(_iid(), tree_depth=depth, sampler=inference.NUTS(max_tree_depth=12)).diagnose() == ()
    )
    # static HMC has no tree
    assert _run(_iid(), tree_depth=depth, sampler=inference.HMC()).diagnose() == ()


def test_low_ebfmi_suggests_reparameterising():
    walk = np.random.default_rng(5).normal(size=(CHAINS, DRAWS)).cumsum(axis=1)
    (advice,) = _run(_iid(), energy=walk).diagnose()
    assert advice.kind == "ebfmi" and "E-BFMI < 0.3 in chain(s) 1: " in advice.problem
    assert "Reparameterise" in advice.suggestion


def test_infinite_energy_of_a_divergent_hmc_transition_is_no_error():
    """Static HMC reports the trajectory end's energy: infinite after a blow-up. E-BFMI is
    then undefined (skipped); the divergence is reported."""
    diverging = np.zeros((CHAINS, DRAWS), bool)
    diverging[2, 7] = True
    energy = np.random.default_rng(6).normal(size=(CHAINS, DRAWS))
    energy[2, 7] = np.inf
    result = _run(_iid(), diverging=diverging, energy=energy, sampler=inference.HMC())
    assert _kinds(result) == ["divergences"]


@pytest.mark.parametrize("name", list(inference.SAMPLERS))
def test_dense_mass_hint_for_a_correlated_posterior_with_a_diagonal_metric(name):
    x = _correlated()
    diverging = np.zeros((CHAINS, DRAWS), bool)
    diverging[1, ::50] = True
    cls = inference.SAMPLERS[name]
    advice = {a.kind: a for a in _run(x, diverging=diverging, sampler=cls()).diagnose()}
    assert list(advice) == ["divergences", "dense_mass"]
    rho = np.corrcoef(x.reshape(-1, 2).T)[0, 1]
    assert f"correlation of x[1] and x[2] is {rho:+.2f}" in advice["dense_mass"].problem
    assert "dense_mass=True" in advice["dense_mass"].suggestion
    dense = _run(x, diverging=diverging, sampler=cls(dense_mass=True))
    assert _kinds(dense) == ["divergences"]
