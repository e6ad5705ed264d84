"""`DiscreteDDPM`, its timestep spacings and the samplers on it, against diffusers' own
schedulers, step by step.

The reference numbers in `tests/data/diffusers_ddpm.npz` were computed once with diffusers
0.42.1 (torch CPU; not in the test venv) by `tests/data/make_diffusers_ddpm.py`, whose
docstring says what each array is: `scheduler.timesteps` of DDIMScheduler ("ddim") and
DPMSolverMultistepScheduler ("dpm") for each `timestep_spacing` and many step counts, and
sampler trajectories (x after every `scheduler.step`) with the exact eps of a 2-D Gaussian
mixture evaluated at the integer timestep, for 7, 10, 30 and 333 steps (10 divides the
1000 training steps; 7, 30 and 333 do not). The same mixture's exact eps drives jaxsci
here (`_exact.Mixture`, written independently of the generator's torch version).

Conventions established (see `jaxsci.diffusion.ddpm_grid`):

* timesteps: `Trailing()` is both schedulers' "trailing" (minus diffusers' spurious last
  -1 at some n); `Leading()`/`Linspace()` are DDIMScheduler's, `Leading(include_zero=
  False)`/`Linspace(include_zero=False)` DPMSolverMultistepScheduler's.
* final step: `ddpm_grid` ends at training step 0 (DDIM `set_alpha_to_one=False`,
  DPM-Solver `final_sigmas_type="sigma_min"`); diffusers' "alpha = 1" ends (DDIM
  `set_alpha_to_one=True`, DPM-Solver `final_sigmas_type="zero"`) are the grid
  `ddpm_timesteps` with `denoise_final=True`.
* DDIMScheduler steps from timestep t to t - N // n, the next timestep only for "leading"
  (any n) and for "trailing" when n divides N; elsewhere its trajectory is not DDIM over
  its own timesteps, so there jaxsci's DDIM on `ddpm_grid` is compared with
  DPMSolverMultistepScheduler(solver_order=1), which is DDIM over its timesteps.
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd

from ._exact import Mixture

DATA = np.load(pathlib.Path(__file__).parents[1] / "data" / "diffusers_ddpm.npz")
N_TRAIN = 1000
TRAJ_NS = (7, 10, 30, 333)
# Each grid length compiles `sample`'s scan once per sampler (about a second, more on a
# loaded CI core): 7 steps (a non-divisor of 1000) run by default, the others as slow tests.
TRAJ_PARAMS = [7, *(pytest.param(n, marks=pytest.mark.slow) for n in (10, 30, 333))]
SPACINGS = ("trailing", "leading", "linspace")
# diffusers' scheduler -> its timestep_spacing -> the jaxsci spacing that reproduces it
JAXSCI_SPACING = {
    "ddim": {"trailing": jd.Trailing(), "leading": jd.Leading(), "linspace": jd.Linspace()},
    "dpm": {
        "trailing": jd.Trailing(),
        "leading": jd.Leading(include_zero=False),
        "linspace": jd.Linspace(include_zero=False),
    },
}


def diffusers_timesteps(sched: str, spacing: str) -> dict[int, np.ndarray]:
    """n -> diffusers' `scheduler.timesteps` after `set_timesteps(n)`."""
    flat = DATA[f"timesteps_{sched}_{spacing}"].astype(np.int64)
    ends = np.cumsum(DATA[f"timesteps_{sched}_{spacing}_len"])
    parts = np.split(flat, ends[:-1])
    return dict(zip(DATA["timestep_ns"].tolist(), parts, strict=True))


MIX = Mixture(DATA["mix_weights"], DATA["mix_means"], DATA["mix_variances"])
ABAR = np.cumprod(1.0 - jd.linear_betas())


def mixture_model(t, x):
    """The exact eps of the stored mixture, called at the integer step t (a float with an
    integer value) through abar_t, as a pretrained DDPM's network is. (One module-level
    function, so that `sample`'s compilations are shared between tests.)"""
    a2 = jnp.asarray(ABAR, dtype=x.dtype)[t.astype(jnp.int32)]
    return MIX.eps(x, jnp.sqrt(a2), jnp.sqrt(1.0 - a2))


def run(sampler, grid, **kwargs):
    return jd.sample(
        sampler,
        mixture_model,
        jd.DiscreteDDPM(),
        jnp.asarray(grid, dtype=jnp.float64),
        jnp.asarray(DATA["x_T"]),
        save_trajectory=True,
        **kwargs,
    )


# ------------------------------------------------------------------ integer timesteps


@pytest.mark.parametrize("sched", ["ddim", "dpm"])
@pytest.mark.parametrize("spacing", SPACINGS)
def test_timesteps_match_diffusers_at_every_stored_n(sched, spacing):
    """For n = 1 .. 64, 103, 122, 333, 500, 999, 1000: the jaxsci spacing's n timesteps are
    diffusers' (DDIMScheduler's `Leading()`/`Linspace()` differ from DPMSolverMultistep
    Scheduler's, `include_zero=False`). Where diffusers' "trailing" gives n + 1 timesteps
    (its float arange), the extra one is -1 and jaxsci keeps the first n."""
    sch = jd.DiscreteDDPM()
    spacing_obj = JAXSCI_SPACING[sched][spacing]
    for n, ref in diffusers_timesteps(sched, spacing).items():
        got = jd.ddpm_timesteps(sch, n, spacing_obj)
        if len(ref) == n + 1:
            assert spacing == "trailing" and ref[-1] == -1, (n, ref[-3:])
            ref = ref[:n]
        assert got.tolist() == ref.tolist(), (sched, spacing, n)
        if len(np.unique(ref)) < n:  # diffusers' own repeats (DPM-Solver at n = 1000)
            with pytest.raises(ValueError, match="repeated"):
                jd.ddpm_grid(sch, n, spacing_obj)
            continue
        grid = np.asarray(jd.ddpm_grid(sch, n, spacing_obj))
        assert grid[-1] == 0 and np.all(np.diff(grid) < 0)
        np.testing.assert_array_equal(grid[:n], ref)


def test_trailing_has_n_timesteps_where_numpy_arange_gives_one_more():
    """n = 61: diffusers' arange(1000, 0, -1000/61) has 62 points, the last rounding to a
    timestep of -1; `Trailing` gives 61 and `ddpm_grid` 61 steps ending at step 0."""
    ref = diffusers_timesteps("ddim", "trailing")[61]
    assert len(ref) == 62 and ref[-1] == -1
    sch = jd.DiscreteDDPM()
    steps = jd.ddpm_timesteps(sch, 61)
    assert steps.tolist() == ref[:61].tolist()
    grid = np.asarray(jd.ddpm_grid(sch, 61))
    assert grid.shape == (62,) and grid[-1] == 0 and grid[-2] == ref[-2]


def test_include_zero_and_offset_are_checked():
    with pytest.raises(TypeError, match="include_zero"):
        jd.Linspace(include_zero=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="include_zero"):
        jd.Leading(include_zero="no")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="offset"):
        jd.Leading(offset=-1)


# ------------------------------------------------------------------ trajectories


def ddim_consistent(spacing: str, n: int) -> bool:
    """Whether DDIMScheduler's step from timestep t to t - N // n lands on the next one."""
    ts = diffusers_timesteps("ddim", spacing)[n]
    return bool(np.all(ts[:-1] - N_TRAIN // n == ts[1:]))


def test_ddim_scheduler_consistency_is_as_documented():
    """At every stored n: leading always, trailing only at n dividing 1000, linspace only at
    n = 1 and 1000 (as `ddpm_grid`'s docstring says)."""
    for n in DATA["timestep_ns"].tolist():
        assert ddim_consistent("leading", n)
        assert ddim_consistent("trailing", n) == (N_TRAIN % n == 0), n
        assert ddim_consistent("linspace", n) == (n in (1, N_TRAIN)), n


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n", TRAJ_PARAMS)
def test_ddim_matches_dpmsolver_order_1(spacing, n, x64):
    """jaxsci's DDIM on `ddpm_grid` with the multistep spacings = DPMSolverMultistep
    Scheduler(solver_order=1, final_sigmas_type="sigma_min") (first-order DPM-Solver++ is
    DDIM), state by state, to the float32 cast diffusers' DPM-Solver step applies to the
    sample."""
    ref = DATA[f"traj_dpm1_{spacing}_{n}"]
    grid = jd.ddpm_grid(jd.DiscreteDDPM(), n, JAXSCI_SPACING["dpm"][spacing])
    assert grid.shape == (n + 1,)
    res = run(jd.DDIM(), grid)
    np.testing.assert_allclose(np.asarray(res.trajectory), ref, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("n", TRAJ_PARAMS)
def test_ddim_matches_ddim_scheduler(spacing, n, x64):
    """jaxsci's DDIM on `ddpm_grid` = DDIMScheduler(eta=0, set_alpha_to_one=False,
    clip_sample=False) in float64 wherever the latter steps between its own timesteps.
    "leading": diffusers' last step (from 0 to abar_0) is the identity, which `ddpm_grid`
    leaves out."""
    if not ddim_consistent(spacing, n):
        pytest.skip("DDIMScheduler steps to t - N // n, not to its next timestep")
    ref = DATA[f"traj_ddim_{spacing}_{n}"]
    res = run(jd.DDIM(), jd.ddpm_grid(jd.DiscreteDDPM(), n, JAXSCI_SPACING["ddim"][spacing]))
    traj = np.asarray(res.trajectory)
    if spacing == "leading":
        np.testing.assert_allclose(ref[-1], ref[-2], rtol=1e-12)
        ref = ref[:-1]
    np.testing.assert_allclose(traj, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("spacing", "n"), [("trailing", 7), ("trailing", 30), ("linspace", 7)])
def test_ddim_scheduler_steps_to_t_minus_n_over_n_steps(spacing, n, x64):
    """Where it is inconsistent, DDIMScheduler's trajectory is DDIM from each timestep t to
    t - N // n (abar_0 below 0), the state then being taken as at the next timestep: jaxsci's
    DDIM over those two-point grids reproduces it (the documented reason `ddpm_grid`'s DDIM
    differs from DDIMScheduler there)."""
    ts = diffusers_timesteps("ddim", spacing)[n]
    ref = DATA[f"traj_ddim_{spacing}_{n}"]
    x = jnp.asarray(DATA["x_T"])
    model, sch = mixture_model, jd.DiscreteDDPM()
    for k, t in enumerate(ts):
        to = max(int(t) - N_TRAIN // n, 0)
        if to == t:  # from 0 to abar_0: the identity
            np.testing.assert_allclose(ref[k + 1], ref[k], rtol=1e-12)
            continue
        x = jd.sample(jd.DDIM(), model, sch, jnp.asarray([float(t), float(to)]), x).x
        np.testing.assert_allclose(np.asarray(x), ref[k + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n", TRAJ_PARAMS)
def test_dpmsolverpp_2m_matches_diffusers(spacing, n, x64):
    """DPM-Solver++(2M) on `ddpm_grid` with the multistep spacings = DPMSolverMultistep
    Scheduler(solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="sigma_min"),
    with diffusers' lower-order-final rule (fewer than 15 steps only:
    `lower_order_final_ratio=math.inf`), to diffusers' float32 cast of the sample."""
    ref = DATA[f"traj_dpm2_{spacing}_{n}"]
    grid = jd.ddpm_grid(jd.DiscreteDDPM(), n, JAXSCI_SPACING["dpm"][spacing])
    res = run(jd.DPMSolverPPMultistep(lower_order_final_ratio=math.inf), grid)
    np.testing.assert_allclose(np.asarray(res.trajectory), ref, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n", TRAJ_PARAMS)
def test_alpha_one_final_step_is_denoise_final(spacing, n, x64):
    """diffusers' "alpha = 1" ends, DPMSolverMultistepScheduler(final_sigmas_type="zero")
    and DDIMScheduler(set_alpha_to_one=True): the grid `ddpm_timesteps` (no step 0
    appended) with `denoise_final=True`. DPM-Solver's last step to sigma = 0 is its
    first-order x0 prediction, the steps before it keep order 2 (`lower_order_final=False`
    on the shorter grid)."""
    sch = jd.DiscreteDDPM()
    steps = jd.ddpm_timesteps(sch, n, JAXSCI_SPACING["dpm"][spacing])
    ref = DATA[f"traj_dpm2_zero_{spacing}_{n}"]
    res = run(jd.DPMSolverPPMultistep(lower_order_final=False), steps, denoise_final=True)
    np.testing.assert_allclose(np.asarray(res.trajectory), ref[:-1], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(np.asarray(res.x), ref[-1], rtol=2e-6, atol=2e-6)
    if ddim_consistent(spacing, n):
        steps = jd.ddpm_timesteps(sch, n, JAXSCI_SPACING["ddim"][spacing])
        ref = DATA[f"traj_ddim_one_{spacing}_{n}"]
        res = run(jd.DDIM(), steps, denoise_final=True)
        np.testing.assert_allclose(np.asarray(res.trajectory), ref[:-1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(res.x), ref[-1], rtol=1e-10, atol=1e-12)


def test_reference_data_is_float64_and_finite():
    for n in TRAJ_NS:
        for case in ("ddim", "ddim_one", "dpm1", "dpm2", "dpm2_zero"):
            for spacing in SPACINGS:
                traj = DATA[f"traj_{case}_{spacing}_{n}"]
                assert traj.dtype == np.float64 and np.all(np.isfinite(traj))
    assert jax.numpy.asarray(DATA["x_T"]).shape == (2,)
