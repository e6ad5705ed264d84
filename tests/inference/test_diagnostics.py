"""R-hat, ESS, MCSE and summary against ArviZ 0.23, scipy, AR(1) theory and posteriordb.

References: `arviz.rhat(method="rank")`, `arviz.ess(method="bulk"/"tail"/"mean")`,
`arviz.mcse(method="mean"/"sd"/"quantile")` and `arviz.summary` on the same draws (float64,
relative tolerance 1e-10); the exact
ESS S (1 - phi) / (1 + phi) and standard error of the mean of a stationary AR(1) chain (within
Monte-Carlo error over independent replicates); the posteriordb summary of its
hudson_lynx_hare-lotka_volterra reference draws (tests/inference/data, 10 chains x 1000 draws).

The diagnostics compute in float64 NumPy whatever JAX's x64 flag, so no test needs `x64`. The
synthetic cases are the elements of one (chains, draws, elements) batch, which also exercises
the per-element vectorisation.
"""

import json
import math
import warnings
import zipfile
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.inference import posteriordb_reference
from jaxsci.inference._diagnostics import (
    ebfmi,
    ess_bulk,
    ess_mean,
    ess_tail,
    format_summary,
    mcse_mean,
    mcse_quantile,
    mcse_sd,
    rhat,
    summary,
)

DATA = Path(__file__).parent / "data"
RTOL = 1e-10  # float64 agreement with ArviZ: only summation order differs
STATS = ("mean", "sd", "q5", "q50", "q95", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "rhat")

CHAINS, DRAWS = 4, 1001  # odd: the split drops the middle draw, as ArviZ does
HALF = DRAWS // 2
S_SPLIT = 2 * CHAINS * HALF  # draws after splitting: the S of the ESS bound S log10 S
N_AR = 200  # AR(1) replicates for the Monte-Carlo checks of ESS against theory
PHI = 0.5


def _ar1(rng: np.random.Generator, phi: float, n_series: int) -> np.ndarray:
    """Stationary AR(1) x_t = phi x_{t-1} + e_t, e_t ~ N(0, 1), shaped (CHAINS, DRAWS, n_series)."""
    x = np.empty((CHAINS, DRAWS, n_series))
    x[:, 0] = rng.normal(size=(CHAINS, n_series)) / math.sqrt(1 - phi**2)
    noise = rng.normal(size=(CHAINS, DRAWS, n_series))
    for t in range(1, DRAWS):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20210101)
    shape = (CHAINS, DRAWS)
    chain = np.arange(CHAINS)[:, None]
    return {
        "iid_normal": rng.normal(size=shape),
        "ar1_0.9": _ar1(rng, 0.9, 1)[..., 0],
        "ar1_-0.6": _ar1(rng, -0.6, 1)[..., 0],  # antithetic: ESS above S, capped at S log10 S
        "shifted_mean": rng.normal(size=shape) + (chain == 3),  # one chain 1 sd off
        "scaled_chain": rng.normal(size=shape) * np.where(chain == 3, 3.0, 1.0),
        "cauchy": rng.standard_cauchy(size=shape),
        "poisson_ties": rng.poisson(2.0, size=shape).astype(float),
        "binary_ties": rng.choice([-1.0, 1.0], size=shape),  # folded draws are all 1
        "student_t2_ties": np.round(rng.standard_t(2.0, size=shape), 1),
        "constant": np.full(shape, 2.5),
    }


CASES = _cases()
NAMES = list(CASES)


@pytest.fixture(scope="module")
def batch():
    """All cases plus N_AR AR(1) replicates as the elements of one (chains, draws, K) array,
    with every diagnostic of this module computed once."""
    cases = np.stack([CASES[name] for name in NAMES], axis=-1)
    replicates = _ar1(np.random.default_rng(7), PHI, N_AR)
    x = np.concatenate([cases, replicates], axis=-1)
    out = {
        "rhat": rhat(x),
        "ess_bulk": ess_bulk(x),
        "ess_tail": ess_tail(x),
        "ess_mean": ess_mean(x),
        "mcse_mean": mcse_mean(x),
        "mcse_sd": mcse_sd(x),
    }
    for value in out.values():
        assert value.shape == (x.shape[-1],) and value.dtype == np.float64
    out["x"] = x
    return out


def _arviz(x: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "rhat": az.rhat(x, method="rank"),
            "ess_bulk": az.ess(x, method="bulk"),
            "ess_tail": az.ess(x, method="tail"),
            "ess_mean": az.ess(x, method="mean"),
            "mcse_mean": az.mcse(x, method="mean"),
            "mcse_sd": az.mcse(x, method="sd"),
        }


@pytest.mark.parametrize("name", NAMES)
def test_matches_arviz(batch, name):
    i = NAMES.index(name)
    reference = _arviz(CASES[name])
    for stat, value in reference.items():
        np.testing.assert_allclose(
            batch[stat][i], value, rtol=RTOL, atol=0, equal_nan=True, err_msg=f"{name}: {stat}"
        )


def test_matches_arviz_on_ar1_replicates(batch):
    for j in range(3):
        reference = _arviz(batch["x"][..., len(NAMES) + j])
        for stat, value in reference.items():
            np.testing.assert_allclose(batch[stat][len(NAMES) + j], value, rtol=RTOL, atol=0)


def test_edge_cases_behave_as_documented(batch):
    const = NAMES.index("constant")
    assert np.isnan(batch["rhat"][const])  # no variance within chains: R-hat undefined
    for stat in ("ess_bulk", "ess_tail", "ess_mean"):
        assert batch[stat][const] == S_SPLIT  # ArviZ: a constant array has ESS = S
    # Binary draws: the folded draws are constant (tail R-hat NaN), so R-hat is the bulk value.
    binary = CASES["binary_ties"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bulk_only = az.rhat(binary, method="z_scale")
    np.testing.assert_allclose(batch["rhat"][NAMES.index("binary_ties")], bulk_only, rtol=RTOL)


def test_ess_bound_s_log10_s(batch):
    # phi = -0.6: the exact ESS S (1 - phi) / (1 + phi) = 4 S exceeds the cap S log10 S.
    i = NAMES.index("ar1_-0.6")
    assert S_SPLIT * 1.6 / 0.4 > S_SPLIT * math.log10(S_SPLIT)
    for stat in ("ess_mean", "ess_bulk"):
        np.testing.assert_allclose(batch[stat][i], S_SPLIT * math.log10(S_SPLIT), rtol=1e-12)
    assert np.all(batch["ess_mean"] <= S_SPLIT * math.log10(S_SPLIT) * (1 + 1e-12))


def test_ar1_ess_and_mcse_match_theory(batch):
    """Stationary AR(1): ESS = S (1 - phi) / (1 + phi) for the mean, and the standard error of
    the mean is sqrt(sigma^2 (1 + phi) / ((1 - phi) S)) with sigma^2 = 1 / (1 - phi^2). The
    estimators' average over N_AR independent replicates must be within 4 Monte-Carlo standard
    errors of these values."""
    sl = slice(len(NAMES), None)
    exact_ess = S_SPLIT * (1 - PHI) / (1 + PHI)
    for stat in ("ess_mean", "ess_bulk"):  # bulk ~ mean ESS for Gaussian draws
        est = batch[stat][sl]
        se = est.std(ddof=1) / math.sqrt(N_AR)
        assert abs(est.mean() - exact_ess) < 4 * se, (stat, est.mean(), exact_ess, se)
        assert se < 0.01 * exact_ess  # the check resolves a 4% error
    # MCSE of the mean uses all CHAINS * DRAWS draws (the ESS is estimated on the split S).
    total = CHAINS * DRAWS
    exact_se = math.sqrt((1 / (1 - PHI**2)) * (1 + PHI) / ((1 - PHI) * total))
    est = batch["mcse_mean"][sl]
    assert abs(est.mean() - exact_se) < 4 * est.std(ddof=1) / math.sqrt(N_AR)
    # ... and it predicts the spread of the replicates' means (chi-square error of an sd).
    means = batch["x"][..., sl].mean(axis=(0, 1))
    assert abs(means.std(ddof=1) / exact_se - 1) < 4 / math.sqrt(2 * (N_AR - 1))


def test_rhat_flags_nonconvergence(batch):
    r = dict(zip(NAMES, batch["rhat"], strict=False))
    for good in ("iid_normal", "cauchy", "poisson_ties", "student_t2_ties"):
        assert r[good] < 1.01, good
    assert r["shifted_mean"] > 1.01
    # Converged chains (AR(1) replicates, ESS ~ 1300) rarely exceed 1.01 (max here 1.0087).
    assert np.mean(batch["rhat"][len(NAMES) :] > 1.01) < 0.05
    # Equal means, one chain 3x wider: the bulk (rank) R-hat misses it, the folded one flags it.
    scaled = CASES["scaled_chain"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bulk, folded = az.rhat(scaled, method="z_scale"), az.rhat(scaled, method="folded")
    assert bulk < 1.01 < folded
    np.testing.assert_allclose(r["scaled_chain"], max(bulk, folded), rtol=RTOL)
    # Slow mixing lowers ESS: AR(1) phi = 0.9 keeps about (1 - 0.9) / (1 + 0.9) of the draws.
    i = NAMES.index("ar1_0.9")
    assert 0.5 * S_SPLIT * 0.1 / 1.9 < batch["ess_bulk"][i] < 1.5 * S_SPLIT * 0.1 / 1.9


def test_mcse_quantile_matches_arviz(batch):
    x = batch["x"][..., : len(NAMES)]
    for prob in (0.05, 0.5, 0.9):
        ours = np.asarray(mcse_quantile(x, prob))
        for i, name in enumerate(NAMES):
            ref = az.mcse(CASES[name], method="quantile", prob=prob)
            np.testing.assert_allclose(ours[i], ref, rtol=RTOL, atol=0, err_msg=f"{name} {prob}")


def test_summary_names_keys_and_values(batch):
    k = len(NAMES) + 3  # the named cases and three AR(1) replicates
    x = batch["x"][..., :k]
    draws = {
        "a": x[..., 0],
        "b": x[..., 1:3],
        "c": x[..., 3:9].reshape(CHAINS, DRAWS, 2, 3),
        "rest": x[..., 9:],
    }
    table = summary(draws)
    names = list(table)
    assert names[:9] == ["a", "b[1]", "b[2]"] + [f"c[{i},{j}]" for i in (1, 2) for j in (1, 2, 3)]
    assert names[9] == "rest[1]" and names[-1] == f"rest[{k - 9}]" and len(names) == k
    for row in table.values():
        assert tuple(row) == STATS and all(type(v) is float for v in row.values())
    flat = x.reshape(CHAINS * DRAWS, k)
    for j, name in enumerate(names):  # row-major element order: c[2,1] is element 3 + 3
        # Same per-element computation as the functions: bit-identical.
        row = table[name]
        for stat in ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"):
            np.testing.assert_allclose(row[stat], batch[stat][j], rtol=0, atol=0, equal_nan=True)
        np.testing.assert_allclose(row["mean"], flat[:, j].mean(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(row["sd"], flat[:, j].std(ddof=1), rtol=1e-12, atol=1e-15)
        q = np.quantile(flat[:, j], [0.05, 0.5, 0.95])  # type 7, numpy's default
        np.testing.assert_allclose([row["q5"], row["q50"], row["q95"]], q, rtol=1e-12)

    text = format_summary({n: table[n] for n in names[:9]})
    lines = text.splitlines()
    assert len(lines) == 10 and lines[0].split() == list(STATS)
    assert lines[7].split()[0] == "c[2,1]" and "nan" not in lines[1]
    assert format_summary({"x": dict.fromkeys(STATS, math.nan)}).split()[-1] == "nan"


def _posteriordb_draws() -> dict[str, np.ndarray]:
    """posteriordb reference draws as {name: (10, 1000, *event)}, event from 'name[i]' keys."""
    with zipfile.ZipFile(DATA / "hudson_lynx_hare-lotka_volterra.draws.json.zip") as archive:
        (member,) = archive.namelist()
        chains = json.loads(archive.read(member))
    out = {}
    for var in ("theta", "z_init", "sigma"):
        keys = sorted(
            (k for k in chains[0] if k.startswith(var + "[")),
            key=lambda k: int(k[len(var) + 1 : -1]),
        )
        out[var] = np.array([[c[k] for k in keys] for c in chains]).transpose(0, 2, 1)
    return out


def test_posteriordb_reference_draws():
    draws = _posteriordb_draws()
    assert draws["theta"].shape == (10, 1000, 4)
    table = summary(draws)
    with open(DATA / "summary_hudson_lynx_hare-lotka_volterra.json") as f:
        reference = json.load(f)
    shipped_reference = posteriordb_reference()
    assert list(table) == list(reference)  # posteriordb's names, in its order
    for name, ref in reference.items():
        row = table[name]
        for ours, theirs in (
            ("mean", "mean"),
            ("sd", "sd"),
            ("q5", "q05"),
            ("q50", "q50"),
            ("q95", "q95"),
        ):
            np.testing.assert_allclose(row[ours], ref[theirs], rtol=1e-12, err_msg=f"{name} {ours}")
        # Stan's run passes the convergence rule the issue applies to our samplers.
        assert row["rhat"] < 1.01 and row["ess_bulk"] > 400 and row["ess_tail"] > 400
        # the derived reference MCSE / ESS shipped with the package are these draws' own
        shipped = shipped_reference[name]
        for stat in ("mcse_mean", "ess_bulk", "ess_tail"):
            np.testing.assert_allclose(row[stat], shipped[stat], rtol=1e-9, err_msg=name)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        az_table = az.summary(
            az.from_dict(posterior=draws), kind="all", round_to="none", stat_focus="mean"
        )
    columns = {
        "mean": "mean",
        "sd": "sd",
        "mcse_mean": "mcse_mean",
        "mcse_sd": "mcse_sd",
        "ess_bulk": "ess_bulk",
        "ess_tail": "ess_tail",
        "rhat": "r_hat",
    }
    for name in reference:  # ArviZ labels elements 0-based: theta[1] is its theta[0]
        var, index = name[:-1].split("[")
        az_row = az_table.loc[f"{var}[{int(index) - 1}]"]
        for ours, theirs in columns.items():
            np.testing.assert_allclose(
                table[name][ours], az_row[theirs], rtol=RTOL, err_msg=f"{name} {ours}"
            )

    # The per-function API on one (10, 1000, 8) array agrees with ArviZ's ess/rhat/mcse too.
    x = np.concatenate([draws["theta"], draws["z_init"], draws["sigma"]], axis=-1)
    ours = {
        "rhat": rhat(x),
        "ess_bulk": ess_bulk(x),
        "ess_tail": ess_tail(x),
        "ess_mean": ess_mean(x),
        "mcse_mean": mcse_mean(x),
        "mcse_sd": mcse_sd(x),
    }
    for i in range(x.shape[-1]):
        for stat, value in _arviz(x[..., i]).items():
            np.testing.assert_allclose(ours[stat][i], value, rtol=RTOL, atol=0)


def test_single_chain():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 100, 2)).cumsum(axis=1) * 0.1 + rng.normal(size=(1, 100, 2))
    table = summary({"v": x})
    with pytest.raises(ValueError, match=r"x has shape \(1, 100, 2\): 1 chain"):
        rhat(x)
    for i in range(2):
        row = table[f"v[{i + 1}]"]
        assert math.isnan(row["rhat"])  # ArviZ also reports NaN for one chain
        ref = _arviz(x[..., i])
        for stat in ("ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"):
            np.testing.assert_allclose(row[stat], ref[stat], rtol=RTOL, err_msg=stat)


def test_jax_float32_input_is_computed_in_float64():
    """JAX device arrays are accepted (copied to the host) and the result is float64 whatever
    JAX's precision; under jit, where draws are not concrete, the error names `x`."""
    x32 = jnp.asarray(np.stack([CASES["iid_normal"], CASES["ar1_0.9"]], axis=-1)[:, :200])
    assert x32.dtype == jnp.float32
    values = ess_bulk(x32)
    assert values.dtype == np.float64
    x64 = np.asarray(x32).astype(np.float64)
    for i in range(2):
        np.testing.assert_allclose(values[i], az.ess(x64[..., i], method="bulk"), rtol=RTOL)
    with pytest.raises(TypeError, match="x must be a concrete numeric array"):
        jax.jit(rhat)(x32)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (
            np.zeros(10),
            ValueError,
            r"x must be shaped \(chains, draws, \*event\); got shape \(10,\)",
        ),
        (np.zeros((4, 3)), ValueError, r"x has shape \(4, 3\): 3 draws per chain, but at least 4"),
        (np.zeros((0, 10)), ValueError, r"x has shape \(0, 10\): 0 chain"),
        ("abc", TypeError, "x must be a numeric array"),
        (np.zeros((2, 10), complex), TypeError, "x must hold real draws; got dtype complex"),
        ({"a": np.zeros((2, 10))}, TypeError, "use `summary` for a dict"),
    ],
)
@pytest.mark.parametrize("fn", [rhat, ess_bulk, ess_tail, ess_mean, mcse_mean, mcse_sd])
def test_bad_input(fn, bad, error, match):
    # ours, or the jaxtyping import hook's TypeError naming `x` when the test run checks
    # annotations (a wrong shape, type or dtype of `x`)
    with pytest.raises((error, TypeError), match=rf"{match}|parameter 'x'"):
        fn(bad)


@pytest.mark.parametrize("fn", [rhat, ess_bulk, ess_tail, ess_mean, mcse_mean, mcse_sd])
def test_non_finite_draws_raise(fn):
    x = np.zeros((2, 10, 3))
    x[1, 4, 2] = np.inf
    x[0, 7, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"x has 2 non-finite draw\(s\) \(first at index \(0, 7, 1\), value nan\)"
    ):
        fn(x)


def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"at least 2 are needed for R-hat"):
        rhat(np.zeros((1, 10)))
    for prob in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="prob must be a number strictly between 0 and 1"):
            mcse_quantile(np.zeros((2, 10)), prob)
    # a string: ours, or the jaxtyping import hook's TypeError when annotations are checked
    with pytest.raises(
        (ValueError, TypeError),
        match="prob must be a number strictly between 0 and 1|parameter 'prob'",
    ):
        mcse_quantile(np.zeros((2, 10)), "0.5")
    with pytest.raises(TypeError, match="draws must be a dict|parameter 'draws'"):
        summary(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="draws is empty"):
        summary({})
    with pytest.raises(TypeError, match="draws keys must be variable names|parameter 'draws'"):
        summary({1: np.zeros((2, 10))})
    with pytest.raises(
        ValueError, match=r"draws\['b'\] has 3 chains x 10 draws but draws\['a'\] has 2 x 10"
    ):
        summary({"a": np.zeros((2, 10)), "b": np.zeros((3, 10))})
    bad = np.zeros((2, 10, 2))
    bad[0, 0, 1] = np.nan
    with pytest.raises(
        ValueError,
        match=r"draws\['theta'\] has 1 non-finite draw\(s\) \(first at index \(0, 0, 1\)",
    ):
        summary({"theta": bad})
    with pytest.raises(ValueError, match=r"summary\['x'\] lacks \['rhat'\]"):
        format_summary({"x": {s: 1.0 for s in STATS if s != "rhat"}})


def test_ebfmi_equals_arviz_and_flags_a_slow_energy():
    """E-BFMI (Betancourt 2016) per chain equals `arviz.bfmi`; energies that change by small
    steps (a random walk: E-BFMI ~ 1 / draws) fall below Stan's 0.3, independent ones (E-BFMI
    ~ 2) do not."""
    rng = np.random.default_rng(7)
    walk = rng.normal(size=(3, 500)).cumsum(axis=1)
    iid = rng.normal(size=(3, 500))
    for energy in (walk, iid):
        np.testing.assert_allclose(ebfmi(energy), az.bfmi(energy), rtol=RTOL)
    assert np.all(ebfmi(walk) < 0.3) and np.all(np.abs(ebfmi(iid) - 2.0) < 0.3)
    # ours, or the jaxtyping import hook's type-check error when the test run enables it
    with pytest.raises((ValueError, TypeError), match=r"energy must be shaped|parameter 'energy'"):
        ebfmi(np.zeros((2, 10, 3)))
