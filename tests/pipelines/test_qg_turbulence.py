"""`configs/qg_turbulence.yaml` (the `simulate` pipeline's `statistics` section on TwoLayerQG):
the run reaches a statistically steady state whose kinetic energy is pyqg-jax's, writes the
energy series, the spectrum and its plots; bad statistics keys are refused by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/qg_turbulence.yaml"
YEAR = 360 * 86400.0  # pyqg's model year, s

# pyqg-jax 0.8.1 on the same setup (QGModel defaults, 64^2, AB3Stepper dt = 7200 s, float64,
# its random start from key 0): the depth-weighted kinetic energy sum_i (H_i / H) KE_i
# (`diagnostics.total_ke`) averaged over model years 5-20, saved every 10 days, is
# 4.979e-4 m^2/s^2 (std 5.3% of the mean, standard error of the mean 1.0% with the series'
# integral correlation time of 20 saves). jaxsci's 20-year run of this config gives
# 4.954e-4 (float32; SE 1.8%): the same climate to 0.5%.
PYQG_JAX_KE = 4.979e-4


@pytest.mark.slow  # 7 model years at 64^2 (30240 AB3 steps): ~30 s on the 2-core VM
def test_the_run_reaches_a_steady_state_with_pyqg_jax_energy(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [
        f"integrate.t1={7 * YEAR!r}",
        f"statistics.start={3.5 * YEAR!r}",  # the plateau is reached by year 3
        "integrate.chunks=2",
    ]
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", out, "--quiet", *[a for s in sets for a in ("--set", s)]
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["finite"] and m["n_steps"] == 30240 and m["statistics_saves"] == 127
    stats = np.load(out / "statistics.npz")
    energy = stats["energy"]
    assert energy.shape == (253,) and stats["kinetic_energy"].shape == (253, 2)
    assert stats["spectrum_mean"].shape == (2, len(stats["kappa"]))
    # Steady: the window's last quarter within 20% of the quarter before, and its halves too.
    # 20% is three standard deviations of the difference of two quarter means of this series
    # (measured on this run: std 4.3% of the mean, integral correlation time 33 saves = 0.9
    # year, so sd(quarter mean) = 4.3% sqrt(33 / 31) and sd(difference) = 6.3%), while the
    # growth from pyqg's start multiplies the energy by ~100 within two years
    # (years 0-3 here).
    assert abs(m["energy_quarter_change"]) < 0.2, m
    assert abs(m["energy_halves_change"]) < 0.2, m
    assert m["energy_mean"] > 100 * energy[0]
    # The plateau's kinetic energy is pyqg-jax's (different chaotic trajectories, same
    # climate): within 12%, three standard errors of this 3.5-year window's mean (3.6%, from
    # 5.8% std and a 50-save correlation time) and pyqg-jax's (1.0%) combined.
    weights = np.array([0.2, 0.8])  # H_i / H for delta = H_1 / H_2 = 0.25
    ke = float(weights @ np.asarray(m["kinetic_energy_mean"]))
    assert ke == pytest.approx(PYQG_JAX_KE, rel=0.12)
    # Upper layer: the k^-3 of the enstrophy cascade between the deformation wavenumber and
    # the filter (|m| in [11, 20]; -2.8 measured over years 5-20), within 0.6; the lower
    # layer, where the drag acts, steeper (-4.7).
    upper, lower = m["spectral_slope"]
    assert -3.6 < upper < -2.4 and lower < upper, m["spectral_slope"]
    for png in ("energy.png", "spectrum.png", "layers.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_statistics_config_errors_name_the_key(tmp_path, capsys):
    cases = {
        "statistics.bogus=1": "statistics.bogus",
        "statistics.slope_max=5.0": "statistics.slope_max",  # below slope_min = 11
        "statistics.start=1.0e12": "statistics.start",  # after t1
    }
    for i, (setting, key) in enumerate(cases.items()):
        code, _, err = run_cli(
            capsys, "run", CONFIG, "--out", tmp_path / f"r{i}", "--dry-run", "--set", setting
        )
        assert code != 0 and key in err, (setting, err)
    # a model without a streamfunction and energies has no flow statistics
    code, _, err = run_cli(
        capsys,
        "run",
        ROOT / "configs/l63.yaml",
        "--out",
        tmp_path / "l63",
        "--dry-run",
        *("--set", "statistics={}"),
    )
    assert code != 0 and "statistics" in err and "streamfunction" in err, err
