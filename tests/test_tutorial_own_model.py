"""The docs' "Write your own model" tutorial (examples/tutorial_own_model.py) runs, and its
results agree with the truth of its twin experiments and with exact solutions."""

import runpy
from pathlib import Path

import jax
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "tutorial_own_model.py"

#: chi-squared quantile with 3 degrees of freedom at 0.99 (scipy.stats.chi2.ppf(0.99, 3)).
CHI2_3_99 = 11.345


@pytest.fixture(scope="module")
def tutorial():
    try:
        yield runpy.run_path(str(SCRIPT))
    finally:
        plt.close("all")


@pytest.mark.slow
def test_tutorial_own_model(tutorial):
    t = tutorial
    # the page shows its figures: SEIR curves, filter, posterior, Hovmoller, discovery
    assert len(plt.get_fignums()) == 5

    # SEIR posterior: 4 chains converged (R-hat < 1.05 on the rank-normalised split R-hat),
    # enough effective draws, and the truth is where a correct posterior puts it: within 3
    # marginal posterior sds of the mean (99.7% under a Gaussian posterior) and inside the
    # joint 99% credible ellipsoid (Mahalanobis distance^2 in the sampler's log space
    # below the chi-squared(3) 0.99 quantile). The rates correlate at |r| > 0.85, so the
    # joint check is the sharper one.
    assert t["rhat_max"] < 1.05
    assert t["ess_min"] > 100
    for name, true in t["seir_truth"].items():
        mean, sd = t["seir_posterior_mean"][name], t["seir_posterior_sd"][name]
        assert abs(mean - true) < 3 * sd, (name, mean, sd, true)
        assert sd < 0.2 * true, (name, sd)  # the data inform every rate
    assert t["seir_mahalanobis2"] < CHI2_3_99

    # the EnKF tracks the epidemic better than the observations themselves
    assert t["analysis_rmse"] < t["obs_std"]
    # the same experiment as a whole pipeline run on the tutorial's class (run_config)
    assert t["pipeline_rmse"] < t["obs_std"]

    # a small Fourier mode of the user's semilinear PDE follows the exact linear solution
    # eps Re(exp(L(k) t) e^{ikx}) (ETDRK4 is exact on the linear part; the quadratic term
    # changes the mode at order eps^3)
    assert t["mode_decay_error"] < 1e-3
    model, mode = t["kawahara"], t["mode"]
    k = 2 * np.pi * mode / model.grid.length
    expected = k**2 - k**4 + 1j * float(model.delta) * k**3  # the symbol written by hand
    np.testing.assert_allclose(complex(model.linear_operator()[mode]), expected, rtol=1e-5)

    # model-error discovery: the term the real system adds (-0.1 u) is found within 10%,
    # and the others contribute less than 5% of it on the observed states. The reference is
    # the least-squares fit of the vector-field difference (`true_coefficients`), not the
    # discovery itself.
    library, states = t["library"], t["states"]
    true = t["discovery"].true_coefficients(t["real_system"], model, library, states[::10])
    reference = dict(zip(library.names, np.asarray(true.coefficients), strict=True))
    assert reference["u"] == pytest.approx(-0.1, rel=1e-3)
    found = t["discovered_terms"]
    assert found.get("u", 0.0) == pytest.approx(-0.1, rel=0.1)
    design = np.asarray(jax.vmap(library)(states)).reshape(-1, library.num_terms)
    rms = dict(zip(library.names, np.sqrt(np.mean(design**2, axis=0)), strict=True))
    for name, value in found.items():
        if name != "u":
            assert abs(value) * rms[name] < 0.05 * 0.1 * rms["u"], (name, value)
