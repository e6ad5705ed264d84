"""The `assimilate` pipeline: every shipped config runs (short), metrics, arrays, bad keys."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from _params import stem_params
from cli_helpers import assert_files_logged_once, run_cli

from jaxsci.pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(
    p
    for p in (ROOT / "configs").glob("*.yaml")
    if yaml.safe_load(p.read_text()).get("pipeline") == "assimilate"
)
SHIPPED = {
    "l96_enkf",
    "l96_etkf",
    "l96_letkf",
    "l63_etkf",
    "l63_pf",
    "ks_letkf",
    "quickstart",
}


def test_shipped_assimilate_configs():
    assert {p.stem for p in CONFIGS} == SHIPPED
    assert "assimilate" in PIPELINES


# Short runs: a few hundred cycles after a short burn-in, two seeds where the config has a
# list (so the vmapped path and the seed metrics are exercised). l96_letkf runs long enough
# (600 cycles, 30 time units) for a coarse accuracy band; tests/filters holds the DAPPER-grade
# checks over thousands of cycles.
_FAST = {
    "l96_letkf": ["experiment.n_cycles=600", "experiment.burn_in=10"],
    "l96_enkf": ["experiment.n_cycles=200", "experiment.burn_in=5", "filter.ensemble_size=20"],
    "l96_etkf": ["experiment.n_cycles=200", "experiment.burn_in=5"],
    "l63_etkf": ["experiment.n_cycles=150", "experiment.burn_in=5"],
    "l63_pf": ["experiment.n_cycles=150", "experiment.burn_in=5", "filter.ensemble_size=200"],
    "ks_letkf": ["experiment.n_cycles=100", "experiment.burn_in=20", "experiment.spinup=50"],
    "quickstart": ["experiment.n_cycles=300", "experiment.burn_in=5"],
}


# Every config runs in CI; `make test` keeps the quickstart (the others are whole runs).
SLOW = {"ks_letkf", "l63_etkf", "l63_pf", "l96_enkf", "l96_etkf", "l96_letkf"}


@pytest.mark.parametrize("config", stem_params(CONFIGS, SLOW))
def test_config_runs(config, tmp_path, capsys):
    raw = yaml.safe_load(config.read_text())
    sets = list(_FAST[config.stem])
    if isinstance(raw.get("seed"), list):
        sets.append("seed=[0, 1]")
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys, "run", config, "--out", out, "--quiet", *[a for s in sets for a in ("--set", s)]
    )
    assert code == 0, err
    assert "rmse_a" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("rmse_a", "spread_a", "n_cycles", "diverged"):
        assert key in metrics, key
    n_cycles = int(sets[0].split("=")[1])
    assert metrics["n_cycles"] == n_cycles
    assert metrics["diverged"] is False
    assert np.isfinite(metrics["rmse_a"]) and np.isfinite(metrics["spread_a"])
    # diverged = rmse_a above half the climatological spread of the truth (reported)
    assert metrics["divergence_threshold"] == pytest.approx(0.5 * metrics["climatological_spread"])
    assert "climatological spread" in metrics["divergence_rule"]
    assert metrics["rmse_a"] < metrics["divergence_threshold"]
    assert 0 < metrics["rmse_a"] < raw["observations"]["noise_std"], metrics["rmse_a"]
    seeds = 2 if isinstance(raw.get("seed"), list) else 1
    if seeds > 1:
        assert metrics["n_seeds"] == 2 and metrics["n_diverged"] == 0
        assert len(metrics["rmse_a_seeds"]) == 2
        assert metrics["rmse_a"] == pytest.approx(np.median(metrics["rmse_a_seeds"]))
    if config.stem == "l96_letkf":
        assert metrics["rmse_a"] < 0.4  # DAPPER: 0.22 (smoke check, short run)

    data = np.load(out / "assimilation.npz")
    dim = data["truth"].shape[1]
    assert data["truth"].shape == data["mean_a"].shape == (n_cycles, dim)
    assert data["times"].shape == (n_cycles,)
    for key in ("rmse_a", "spread_a", "rmse_f", "spread_f"):
        assert data[key].shape == (seeds, n_cycles), key
    assert data["observations"].shape == (n_cycles, data["observed_indices"].size)
    # rmse_a is DAPPER's: the plain average of the per-cycle rmse after the burn-in
    after = (
        data["times"] > yaml.safe_load((out / "config.yaml").read_text())["experiment"]["burn_in"]
    )
    per_seed = data["rmse_a"][:, after].mean(axis=1)
    np.testing.assert_allclose(np.median(per_seed), metrics["rmse_a"], rtol=1e-5)

    # the netCDF twin (output.netcdf defaults to true): every seed, no ensemble by default
    with xr.open_dataset(out / "assimilation.nc") as nc:
        # a spectral PDE's state is on its grid axis `x`, an ODE's is `state`
        space = "x" if raw["model"]["name"] == "KuramotoSivashinsky" else "state"
        assert dict(nc.sizes) == {
            "seed": seeds,
            "time": n_cycles,
            space: dim,
            "obs": data["observed_indices"].size,
        }
        np.testing.assert_array_equal(nc["truth"][0], data["truth"])
        np.testing.assert_array_equal(nc["rmse_a"], data["rmse_a"])
        assert "ensemble" not in nc and nc.attrs["model"] == raw["model"]["name"]

    assert (out / "rmse.png").is_file()
    assert (out / ("timeseries.png" if dim <= 3 else "hovmoller.png")).is_file()
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["pipeline"] == "assimilate" and "rtps" in resolved["filter"]
    assert_files_logged_once(out)


def _dry(capsys, *sets, config="l96_letkf.yaml"):
    return run_cli(
        capsys,
        "run",
        ROOT / "configs" / config,
        "--dry-run",
        *[a for s in sets for a in ("--set", s)],
    )


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("filter.inflaton=1.1", "filter.inflaton", "did you mean 'filter.inflation'"),
        ("filter.loc_radius=3", "filter.loc_radius", "did you mean 'filter.loc_rad'"),
        ("filter.ensemble_size=1", "filter.ensemble_size", ">= 2"),
        ("filter.inflation=0", "filter.inflation", "> 0"),
        ("filter.rtps=1.5", "filter.rtps", "<= 1"),
        ("filter.batch_size=0", "filter.batch_size", ">= 1"),
        ("filter.batch_size=41", "filter.batch_size", "state dimension 40"),
        ("filter.jitter=1.0", "filter.jitter", "not used by method 'letkf'"),
        ("filter.jitter_rule=all", "filter.jitter_rule", "not used by method 'letkf'"),
        ("filter.loc_rad=null", "filter.loc_rad", "required by method 'letkf'"),
        ("filter.resampling=best", "filter.resampling", "systematic"),
        ("observations.noise_std=0", "observations.noise_std", "> 0"),
        ("observations.indices=[0, 40]", "observations.indices", "[0, 40)"),
        ("observations.offset=40", "observations.offset", "state dimension 40"),
        ("experiment.n_cycles=0", "experiment.n_cycles", ">= 1"),
        # l96_letkf: 5000 cycles of 0.05; a burn-in of the whole run leaves nothing to score
        (
            "experiment.burn_in=250",
            "experiment.burn_in",
            "n_cycles x observations.interval = 5000 x 0.05",
        ),
        ("experiment.burn_n=3", "experiment.burn_n", "did you mean 'experiment.burn_in'"),
        ("experiment.ensemble_centre=prior", "experiment.ensemble_centre", "independent"),
        ("seed=[1, 1]", "seed", "distinct"),
        ("flow.solver=ETDRK4", "flow.solver", "semilinear"),
        ("model.name=NavierStokes2D", "model.name", "Lorenz96"),
    ],
)
def test_bad_override_fails_naming_key(override, key, expected, capsys):
    code, _, err = _dry(capsys, override)
    assert code == 2
    assert f"{key}:" in err and expected in err, err


def test_letkf_rotate_and_batch_size_map_to_the_library(capsys):
    """`filter.rotate` and `filter.batch_size` reach the LETKF object (DAPPER's `rot` and
    `batch_shape`); `rotate` is refused for methods without a rotation, `batch_size` for
    every method but letkf."""
    from jaxsci import filters as F
    from jaxsci.pipelines._assimilate import FilterSection, make_filter

    code, out, err = _dry(capsys, "filter.rotate=false", "filter.batch_size=4")
    assert code == 0, err
    resolved = yaml.safe_load(out)["filter"]
    assert resolved["rotate"] is False and resolved["batch_size"] == 4
    code, out, err = _dry(capsys)  # l96_letkf.yaml: DAPPER's sakov2008 LETKF
    assert code == 0, err
    resolved = yaml.safe_load(out)["filter"]
    assert resolved["rotate"] is True and resolved["batch_size"] == 2
    section = FilterSection(method="letkf", loc_rad=4.0, rotate=True, batch_size=2)
    letkf = make_filter(section, F.IndexObservation(40))
    assert isinstance(letkf, F.LETKF) and letkf.rotate and letkf.batch_size == 2
    assert letkf.domain_points.shape == (20, 2)
    for sets, key in [
        (("filter.method=enkf", "filter.loc_rad=null", "filter.batch_size=1"), "filter.rotate"),
        (("filter.method=etkf", "filter.loc_rad=null", "filter.batch_size=2"), "filter.batch_size"),
    ]:
        code, _, err = _dry(capsys, *sets)
        assert code == 2 and f"{key}:" in err and "not used by method" in err, err


def test_output_ensemble_needs_netcdf(capsys):
    code, _, err = _dry(capsys, "output.ensemble=true", "output.netcdf=false")
    assert code == 2
    assert "output.ensemble: is written to assimilation.nc: needs netcdf: true" in err, err


def test_unknown_method_lists_choices(capsys):
    code, _, err = _dry(capsys, "filter.method=kalman")
    assert code == 2 and "filter.method:" in err
    for method in ("enkf", "etkf", "denkf", "ensrf", "letkf", "pf"):
        assert f"'{method}'" in err, err


def test_misspelt_key_in_filter_section_of_yaml(tmp_path, capsys):
    text = (ROOT / "configs/l96_enkf.yaml").read_text().replace("inflation:", "inflaton:")
    (tmp_path / "typo.yaml").write_text(text)
    code, _, err = run_cli(capsys, "run", tmp_path / "typo.yaml", "--out", tmp_path / "o")
    assert code == 2
    assert "filter.inflaton: unknown key (did you mean 'filter.inflation'?)" in err, err
    assert not (tmp_path / "o").exists()


def test_dry_run_resolves_method_defaults(capsys):
    sets = ("filter.method=pf", "filter.loc_rad=null", "filter.inflation=1", "seed=3")
    sets += ("filter.batch_size=1", "filter.rotate=false")  # l96_letkf's LETKF options
    code, out, err = _dry(capsys, *sets)
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["filter"]["method"] == "pf" and resolved["seed"] == 3
    assert resolved["filter"]["resampling"] == "systematic"
    assert resolved["observations"]["interval"] == 0.05


@pytest.mark.slow
def test_ensemble_centre_independent(tmp_path, capsys):
    """`experiment.ensemble_centre`: the same seeds give the same truth under both
    conventions; around the truth the first forecast mean misses it by about
    initial_spread / sqrt(N), drawn independently (DAPPER) by about initial_spread
    sqrt(1 + 1/N): a ratio of sqrt(N + 1) = 5 for N = 24 (40 components per seed)."""
    sets = [
        "filter.method=etkf",
        "filter.loc_rad=null",
        "filter.inflation=1.02",
        "filter.ensemble_size=24",
        "experiment.n_cycles=10",
        "experiment.burn_in=0.1",
        "experiment.initial_spread=1.0",
        "seed=[0, 1, 2]",
        "plot.enabled=false",
    ]
    data = {}
    for centre in ("truth", "independent"):
        out = tmp_path / centre
        extra = [*sets, f"experiment.ensemble_centre={centre}"]
        code, _, err = run_cli(
            capsys,
            "run",
            ROOT / "configs" / "quickstart.yaml",
            "--out",
            out,
            "--quiet",
            *[a for s in extra for a in ("--set", s)],
        )
        assert code == 0, err
        data[centre] = np.load(out / "assimilation.npz")
        assert (
            yaml.safe_load((out / "config.yaml").read_text())["experiment"]["ensemble_centre"]
            == centre
        )
    np.testing.assert_array_equal(data["truth"]["truth"], data["independent"]["truth"])
    first = {c: data[c]["rmse_f"][:, 0] for c in data}
    assert np.all(first["truth"] < 0.5), first
    assert np.all(first["independent"] > 2.5 * first["truth"]), first


def test_jitter_rule_names_map_to_the_library_rules(capsys):
    """`filter.jitter_rule` is the only place the rules have string names: nuj (DAPPER's
    name for its nuj=True rule), keep_first and all map to the jaxsci.smc rule objects; an
    unknown name lists the choices."""
    from jaxsci import smc
    from jaxsci.pipelines._assimilate import JITTER_RULES, FilterSection, make_filter

    assert JITTER_RULES == {
        "nuj": smc.NoUniqueJitter,
        "keep_first": smc.KeepFirstCopyJitter,
        "all": smc.JitterAll,
    }
    for name, rule in JITTER_RULES.items():
        cfg = FilterSection(method="pf", jitter=2.4, jitter_rule=name)
        assert isinstance(make_filter(cfg, None).jitter_rule, rule)
    code, _, err = _dry(capsys, "filter.jitter_rule=dapper", config="l63_pf.yaml")
    assert code == 2 and "filter.jitter_rule:" in err
    for name in JITTER_RULES:
        assert f"'{name}'" in err, err


@pytest.mark.slow  # two whole pipeline runs (30 s on the loaded 2-core VM)
def test_netcdf_output_matches_npz_and_stores_the_ensemble(tmp_path):
    """assimilation.nc holds what assimilation.npz holds (seed 0's truth, means and
    observations, every seed's scores) under named dims, and the analysis ensembles with
    `output.ensemble: true`; `output.netcdf: false` writes no netCDF."""
    from jaxsci.pipelines import run_config

    text = (
        "pipeline: assimilate\nseed: [2, 7]\nmodel: {name: Lorenz96, params: {n: 8}}\n"
        "flow: {dt: 0.05}\nobservations: {every_kth: 2, noise_std: 0.5}\n"
        "filter: {method: etkf, ensemble_size: 4}\nexperiment: {n_cycles: 12}\n"
        "plot: {enabled: false}\noutput: {ensemble: true}\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    out, _ = run_config(tmp_path / "c.yaml", tmp_path / "run", echo=False)
    npz = np.load(out / "assimilation.npz")
    with xr.open_dataset(out / "assimilation.nc") as nc:
        assert dict(nc.sizes) == {"seed": 2, "time": 12, "state": 8, "obs": 4, "member": 4}
        np.testing.assert_array_equal(nc["seed"], [2, 7])
        np.testing.assert_array_equal(nc["obs"], npz["observed_indices"])
        np.testing.assert_array_equal(nc["time"], npz["times"])
        for name in ("truth", "mean_a", "observations"):  # the npz keeps the first seed
            np.testing.assert_array_equal(nc[name][0], npz[name], err_msg=name)
        for name in ("rmse_a", "rmse_f", "spread_a", "spread_f", "ess", "diverged"):
            np.testing.assert_array_equal(nc[name], npz[name], err_msg=name)
        assert nc["ensemble"].dims == ("seed", "time", "member", "state")
        # the stored members average to the analysis mean (ETKF: equal weights)
        np.testing.assert_allclose(nc["ensemble"].mean("member"), nc["mean_a"], atol=1e-4)
        assert nc.attrs["filter"] == "ETKF N=4" and nc.attrs["dt"] == 0.05
        assert json.loads(nc.attrs["config"])["output"] == {"netcdf": True, "ensemble": True}
    out, _ = run_config(
        tmp_path / "c.yaml",
        tmp_path / "off",
        ["output.ensemble=false", "output.netcdf=false"],
        echo=False,
    )
    assert (out / "assimilation.npz").is_file() and not (out / "assimilation.nc").exists()


def test_an_interrupted_multi_seed_run_keeps_the_seeds_that_finished():
    """After a Ctrl-C in seed j of several, the metrics cover the seeds that finished (the
    cut-short seed's cycles used to truncate every seed's arrays: a Ctrl-C at the start of
    seed 1 gave rmse_a nan over 0 cycles although seed 0 had finished); only a cut-short
    first seed is kept, alone."""
    from types import SimpleNamespace

    from jaxsci.pipelines._assimilate import complete_seeds

    def run(done: int, total: int = 5):
        completed = np.arange(total) < done
        return SimpleNamespace(filter=SimpleNamespace(completed=completed), done=done)

    assert [r.done for r in complete_seeds([run(5), run(5), run(2)])] == [5, 5]
    assert [r.done for r in complete_seeds([run(5), run(0)])] == [5]
    assert [r.done for r in complete_seeds([run(3)])] == [3]
    assert [r.done for r in complete_seeds([run(5), run(5)])] == [5, 5]
