"""Every pipeline runs from Python on objects a user wrote: a model class defined inside the
test (an SEIR epidemic ODE, a damped Kuramoto-Sivashinsky PDE), a filter, a posterior
problem, a network and diffusion samplers, in place of their config sections
(`run_config(..., objects={key: object})`), with the run folder, metrics and plots of a
config run. Configs stay declarative: only Python puts objects in.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxsci import diffusion as jd, filters, inference
from jaxsci.dynamics import AbstractDynamics, AbstractSemilinear
from jaxsci.pipelines import ConfigError, is_complete, load_config, run_config
from jaxsci.spectral import PeriodicGrid


class SEIR(AbstractDynamics):
    """S' = -beta S I, E' = beta S I - sigma E, I' = sigma E - gamma I, R' = gamma I."""

    beta: jax.Array
    sigma: jax.Array
    gamma: jax.Array

    def __init__(self, beta=0.5, sigma=0.2, gamma=0.1):
        self.beta, self.sigma, self.gamma = (
            jnp.asarray(v, dtype=float) for v in (beta, sigma, gamma)
        )

    @property
    def state_shape(self):
        return (4,)

    def vector_field(self, t, y, args):
        s, e, i, _ = y
        infection = self.beta * s * i
        return jnp.stack(
            [
                -infection,
                infection - self.sigma * e,
                self.sigma * e - self.gamma * i,
                self.gamma * i,
            ]
        )

    def default_initial_state(self, key=None):
        return jnp.array([0.99, 0.0, 0.01, 0.0])


class DampedKS(AbstractSemilinear):
    """u_t = -u u_x - u_xx - u_xxxx - damping u on [0, 22), 64 points, 2/3 de-aliased."""

    damping: jax.Array
    grid: PeriodicGrid

    def __init__(self, damping=0.0):
        self.damping = jnp.asarray(damping, dtype=float)
        self.grid = PeriodicGrid(64, 22.0)

    def linear_operator(self):
        (k,) = self.grid.wavenumbers()
        return jnp.asarray(k**2 - k**4, dtype=complex) - self.damping

    def nonlinear(self, t, y_hat, args=None):
        u = self.grid.from_spectral(self.grid.dealiased(y_hat))
        return self.grid.dealiased(
            -0.5j * self.grid.odd_wavenumbers()[0] * self.grid.to_spectral(u * u)
        )

    def default_initial_state(self, key=None):
        x = jnp.asarray(self.grid.coordinates()[0])
        return jnp.cos(2 * jnp.pi * x / 22.0) * (1 + jnp.sin(2 * jnp.pi * x / 22.0))


def _saved(run_dir) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_simulate_runs_a_model_class_of_the_test(tmp_path):
    """The SEIR model of this test through the simulate pipeline: its trajectory conserves
    the population (S + E + I + R = 1, a property of the model, not of the pipeline), the
    epidemic peaks and dies out, and config.yaml names the class and its parameters."""
    cfg = {"pipeline": "simulate", "integrate": {"t1": 150.0, "dt": 0.1, "save_every": 1.0}}
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects={"model": SEIR()}, echo=False)
    assert is_complete(run_dir) and metrics["model"] == "SEIR" and metrics["finite"]
    ys = np.load(run_dir / "trajectory.npz")["ys"]
    assert ys.shape == (151, 4)
    np.testing.assert_allclose(ys.sum(axis=1), 1.0, atol=1e-5)
    infected = ys[:, 2]
    assert infected.max() > 0.1 and infected[-1] < 0.2 * infected.max()
    assert (run_dir / "timeseries.png").is_file() and (run_dir / "trajectory.nc").is_file()
    saved = _saved(run_dir)["model"]
    assert saved["object"].endswith("SEIR")
    assert saved["fields"] == {"beta": 0.5, "sigma": 0.2, "gamma": 0.1}


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_assimilate_runs_a_model_class_and_a_filter_object(tmp_path):
    """SEIR with an ETKF wrapped in inflation, both objects: observing I and R with noise
    std 0.005, the analysis error is below the observation noise and the metrics name the
    filter object."""
    cfg = {
        "pipeline": "assimilate",
        "flow": {"dt": 0.5},
        "observations": {"noise_std": 0.005, "indices": [2, 3]},
        "experiment": {"n_cycles": 80, "initial_spread": 0.005, "burn_in": 10.0},
        "filter": {"ensemble_size": 10},
    }
    objects = {"model": SEIR(), "filter.method": filters.Inflation(filters.ETKF(), 1.02)}
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects=objects, echo=False)
    assert is_complete(run_dir) and not metrics["diverged"]
    assert metrics["rmse_a"] < 0.005
    assert (run_dir / "assimilation.nc").is_file() and (run_dir / "rmse.png").is_file()
    assert (run_dir / "timeseries.png").is_file()  # four states: one series each
    saved = _saved(run_dir)
    assert saved["model"]["object"].endswith("SEIR")
    assert saved["filter"]["method"]["object"].endswith("Inflation")


def test_objects_are_checked_by_key():
    """An object of the wrong kind, a key that takes none, and filter settings that the
    object carries itself are ConfigErrors naming the key."""
    cfg = {"pipeline": "simulate"}
    with pytest.raises(ConfigError, match="model: expected an instance of .*AbstractDynamics"):
        run_config(cfg, objects={"model": filters.ETKF()})
    with pytest.raises(ConfigError, match="integrate.dt: takes no Python object"):
        run_config(cfg, objects={"model": SEIR(), "integrate.dt": SEIR()})
    with pytest.raises(ConfigError, match="filter.inflation: is not used with a filter object"):
        run_config(
            {"pipeline": "assimilate", "filter": {"inflation": 1.1}},
            objects={"model": SEIR(), "filter.method": filters.ETKF()},
        )
    with pytest.raises(ConfigError, match="model: expected a model with a vector state"):
        run_config({"pipeline": "assimilate"}, objects={"model": _Grid2D()})


class _Grid2D(AbstractDynamics):
    @property
    def state_shape(self):
        return (2, 2)

    def vector_field(self, t, y, args):
        return -y

    def default_initial_state(self, key=None):
        return jnp.ones((2, 2))


@pytest.mark.slow
def test_posterior_runs_a_twin_problem_on_a_model_class(tmp_path):
    """A twin experiment on the SEIR class (beta, gamma from noisy I and R): the 90%
    intervals cover the truth, R-hat and divergences are checked, the ArviZ file and the
    plots are written."""
    problem = inference.twin_problem(
        jax.random.key(0),
        SEIR(),
        ("beta", "gamma"),
        obs_times=np.arange(5.0, 61.0, 5.0),
        observed=(2, 3),
        noise_std=0.01,
        prior_loc=(0.4, 0.15),
        prior_scale=0.5,
        labels=("S", "E", "I", "R"),
    )
    cfg = {
        "pipeline": "posterior",
        "sampler": {"num_chains": 2, "num_warmup": 200, "num_samples": 200},
    }
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects={"problem": problem}, echo=False)
    assert is_complete(run_dir)
    assert metrics["truth_in_90"] == {"beta": True, "gamma": True}
    assert metrics["rhat_max"] < 1.05 and metrics["divergences"] == 0
    for name in ("posterior.nc", "trace.png", "pair.png", "posterior_predictive.png"):
        assert (run_dir / name).is_file(), name


@pytest.mark.slow
def test_discover_finds_the_term_a_user_model_lacks(tmp_path):
    """The damped KS class of this test as the imperfect model (no damping) and the truth
    (damping 0.05): noise-free discovery finds exactly -0.05 u."""
    cfg = {
        "pipeline": "discover",
        "observations": {"noise": 0.0, "count": 120},
        "integrate": {"spinup": 100.0},
        "forecast": {"count": 2, "horizon": 4, "lyapunov_intervals": 60},
        "plot": {"enabled": False},
    }
    objects = {"model": DampedKS(), "truth": DampedKS(damping=0.05)}
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects=objects, echo=False)
    assert is_complete(run_dir)
    assert set(metrics["coef_true"]) == {"u"}
    assert metrics["coef_true"]["u"] == pytest.approx(-0.05, rel=1e-3)
    assert set(metrics["coef_found"]) == {"u"} and metrics["spurious_terms"] == []
    assert metrics["coef_found"]["u"] == pytest.approx(-0.05, rel=0.02)
    assert _saved(run_dir)["truth"]["fields"] == {"damping": 0.05}


class SpectralMultiplier(eqx.Module):
    """u -> irfft(w_k rfft(u)) on the lowest `modes` modes, w learned: a linear operator that
    applies at any resolution (w = 0 at the start: the zero map)."""

    w_re: jax.Array
    w_im: jax.Array

    def __init__(self, modes: int = 16):
        self.w_re, self.w_im = jnp.zeros(modes), jnp.zeros(modes)

    def __call__(self, u):
        u_hat = jnp.fft.rfft(u, axis=-1)
        m = self.w_re.shape[0]
        w = jnp.zeros(u_hat.shape[-1], u_hat.dtype).at[:m].set(self.w_re + 1j * self.w_im)
        return jnp.fft.irfft(u_hat * w, n=u.shape[-1], axis=-1)


@pytest.mark.slow
def test_train_fits_a_network_class_of_the_test(tmp_path):
    """burgers_operator with the spectral multiplier of this test in place of the FNO: from
    the zero map (relative L2 error 1) it learns Burgers' viscous decay of the low modes to a
    test error below 0.1 (measured 0.066), the same at twice the training resolution."""
    run_dir, metrics = run_config(
        "configs/burgers_fno.yaml",
        tmp_path / "run",
        [
            "data.num_train=100",
            "data.num_test=50",
            "data.num_points=256",
            "data.train_points=128",
            "data.eval_points=[256]",
            "training.epochs=10",
            "training.batch_size=10",
            "training.learning_rate=1e-2",
            "evaluation.num_plot=2",
        ],
        objects={"model": SpectralMultiplier()},
        echo=False,
    )
    assert is_complete(run_dir) and metrics["params"] == 32
    assert metrics["test_rel_l2"] < 0.1
    assert metrics["test_rel_l2_at_256"] == pytest.approx(metrics["test_rel_l2"], rel=0.05)
    assert (run_dir / "predictions.png").is_file()


class MyDDIM(jd.AbstractSinglestepSampler):
    """DDIM (eta = 0) written from its update x' = (sigma'/sigma) x + (alpha' - alpha
    sigma'/sigma) x0_hat (Song et al. 2021), as a user would."""

    order: int = 1
    stochastic: bool = False
    nfe_per_step: int = 1

    def update(self, key, grid, i, x, denoiser):
        x0 = denoiser.x0(grid.t[i], x)
        ratio = grid.sigma[i + 1] / grid.sigma[i]
        return ratio * x + (grid.alpha[i + 1] - grid.alpha[i] * ratio) * x0, 1


@pytest.mark.slow
def test_gmm_samplers_runs_a_sampler_class_of_the_test(tmp_path):
    """The DDIM class of this test beside the library's DDIM: the same errors (to float64
    rounding) and first order."""
    cfg = {
        "pipeline": "gmm_samplers",
        "samplers": ["ddim"],
        "nfe": [10, 20],
        "num_samples": 16,
        "reference": {"rtol": 1e-9},
        "plot": {"enabled": False},
    }
    cfg["samplers"] = ["ddim", MyDDIM()]
    run_dir, metrics = run_config(cfg, tmp_path / "run", echo=False)
    assert set(metrics["error_rms"]) == {"ddim", "MyDDIM"}
    for nfe in ("10", "20"):
        assert metrics["error_rms"]["MyDDIM"][nfe] == pytest.approx(
            metrics["error_rms"]["ddim"][nfe], rel=1e-9
        )
    assert metrics["theory_order"]["MyDDIM"] == 1
    assert _saved(run_dir)["samplers"][1]["object"].endswith("MyDDIM")


class TinyScoreNet(eqx.Module):
    """f(t, x) = MLP([x, sin(2 pi t), cos(2 pi t)]): a noise predictor for 2-D data."""

    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(4, 2, 64, 2, activation=jax.nn.silu, key=key)

    def __call__(self, t, x):
        angle = 2 * jnp.pi * jnp.asarray(t, x.dtype)
        return self.mlp(jnp.concatenate([x, jnp.stack([jnp.sin(angle), jnp.cos(angle)])]))


@pytest.mark.slow
def test_train_diffusion_runs_a_network_and_a_sampler_object(tmp_path):
    """The score network class of this test, sampled by the DDIM class above: training
    lowers the loss and the samples are closer to the data (MMD^2) than the standard normal
    prior is."""
    cfg = {
        "pipeline": "train_diffusion",
        "data": {"num_train": 2048, "num_test": 500},
        "training": {"steps": 600, "learning_rate": 1e-2},
        "sampling": {"num_samples": 500, "steps": 20},
    }
    objects = {"network": TinyScoreNet(jax.random.key(0)), "sampling.sampler": MyDDIM()}
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects=objects, echo=False)
    assert is_complete(run_dir) and metrics["finite"]
    assert metrics["loss_last"] < 0.8 * metrics["loss_first"]
    prior = np.random.default_rng(0).standard_normal((500, 2))
    test = np.load(run_dir / "samples.npz")["test"]
    from jaxsci.metrics import mmd2

    bw = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    standardised = (test - test.mean(0)) / test.std(0)
    assert metrics["mmd2"] < float(mmd2(prior, standardised, bw))
    assert (run_dir / "samples.png").is_file()


class InflatedTwist(jd.AbstractTwist):
    """The plain twist with its covariance inflated by `factor`^2: chol = factor chol(R)."""

    factor: float = 1.5

    def chol(self, observation, alpha, sigma):
        return self.factor * observation.noise_chol


@pytest.mark.slow
def test_inverse_gmm_runs_a_twist_class_of_the_test(tmp_path):
    """TDS with the twist class of this test: the run completes with finite errors; the
    twist is recorded in config.yaml."""
    cfg = {
        "pipeline": "inverse_gmm",
        "smc": {"particles": [16, 64], "repeats": 2},
        "diffusion": {"steps": 8},
        "dps": {"zeta": [1.0], "num_samples": 64},
        "plot": {"enabled": False},
    }
    objects = {"smc.twist_variance": InflatedTwist()}
    run_dir, metrics = run_config(cfg, tmp_path / "run", objects=objects, echo=False)
    assert is_complete(run_dir)
    assert all(np.isfinite(v) for v in metrics["error_mean"].values())
    assert _saved(run_dir)["smc"]["twist_variance"]["fields"] == {"factor": 1.5}


def test_gmm_samplers_refuses_a_stochastic_sampler_object():
    """As it refuses stochastic sampler names: a stochastic object has no reference to meet."""
    with pytest.raises(ConfigError, match=r"samplers\[0\]: DDIM is stochastic"):
        run_config({"pipeline": "gmm_samplers"}, objects={"samplers": [jd.DDIM(eta=1.0)]})


def test_validating_a_zoo_model_config_allocates_no_state():
    """Only an object's default state is built at validation: a zoo model config may ask for
    a state too large to allocate (Lorenz-96 with 10**12 sites; building it crashed a test
    worker in the slow config fuzz), and validation must not try."""
    for pipeline in ("simulate", "assimilate"):
        _, config = load_config(
            {"pipeline": pipeline, "model": {"name": "Lorenz96", "params": {"n": 10**12}}}
        )
        assert config.model.params.n == 10**12
