r"""Pipeline `burgers_uq`: uncertainty of a neural surrogate (an FNO) of viscous Burgers, by
five methods, calibrated against the exact simulator in and out of distribution.

1. Data: pairs (u(0), u(t1)) from `jaxsci.data.burgers_dataset` (the `jaxsci.dynamics.Burgers`
   solver, ETDRK4, which matches the exact Cole-Hopf solution to float32 rounding): training
   and in-distribution (ID) test pairs from the FNO paper's Gaussian random field
   N(0, sigma^2 (-Laplacian + tau^2 I)^{-alpha}) with sigma = 25, tau = 5, alpha = 2; the
   out-of-distribution (OOD) test pairs from the field of `ood` (by default sigma = 50:
   twice the amplitude, hence steeper fronts and a stronger nonlinearity at the same nu).
   Fields are simulated on `data.num_points` points and learnt at `data.train_points`.
2. Five uncertainty methods, each giving an ensemble of predicted fields u(t1) per test input:
   * `deep_ensemble`: `ensemble.members` FNOs, independently initialised and trained on the
     MSE (`jaxsci.train.fit_ensemble`; Lakshminarayanan et al. 2017);
   * `mc_dropout`: one FNO with dropout rate `dropout.rate`, trained on the MSE, dropout kept
     on at prediction (`num_samples` draws; Gal & Ghahramani 2016);
   * `laplace`: last-layer Laplace at the trained weights of the first deep-ensemble member
     (Daxberger et al. 2021): N(trained last-layer weights, (beta Phi^T Phi + alpha I)^{-1})
     (GGN = exact Hessian for a model linear in them), prior precision alpha and noise std
     by maximising the marginal likelihood of the linear model
     (`jaxsci.inference.last_layer_laplace`); predictive draws include the fitted noise;
   * `nuts`: the fully Bayesian last layer: NUTS (blackjax, through
     `jaxsci.inference.posterior`, dense mass matrix) over the weights w, the prior precision
     alpha and the noise precision 1/sigma^2 (alpha ~ Gamma(`nuts.hyperprior_shape`,
     `nuts.hyperprior_rate`), weak; 1/sigma^2 Jeffreys, log-uniform: a Gamma rate would not
     be weak against a fitted network's tiny sigma; either one fixed when `last_layer` fixes
     it), so it integrates over the hyperparameters the Laplace row fixes at the evidence
     optimum; the w
     block preconditioned by the Laplace covariance (`nuts.precondition`: the features' Gram
     matrix is too ill-conditioned for a short warmup to adapt to); R-hat, ESS, divergences,
     the largest gap to the Laplace mean in Laplace sds and the hyper-posterior quantiles in
     metrics.json; predictive draws include each draw's noise;
   * `crps_ensemble`: one FNO made generative by `crps.noise_channels` latent noise channels
     (`jaxsci.nn.NoiseInjected`), trained with the fair CRPS of `crps.members` members per
     example (`jaxsci.losses.CRPSLoss`; AIFS-CRPS, Lang et al. 2024).
3. Metrics per method and split (ID, OOD) against the simulator's u(t1): the mean relative L2
   error of the ensemble mean (`losses.relative_l2`), the fair CRPS averaged over points and
   examples and the spread-skill ratio ((M+1)/M-corrected spread over the RMSE of the mean)
   of `metrics.ensemble_scores`, and the rank-based coverage of the central 90% interval
   (`metrics.interval_coverage`: 0.9 in expectation for a calibrated ensemble of any size, so
   methods with different ensemble sizes compare on one scale).

`metrics.json` holds the table `{method: {split: {rel_l2, crps, coverage90, spread_skill}}}`
and the NUTS diagnostics; `diagnostics.json` the wall time of every stage (the last-layer
stages include their predictive draws, solved in float64); `uq.npz` the test
inputs (`{split}_input`, and `{split}_initial` on the simulation grid), truths and each
method's ensemble on the first `num_plot` test examples; two PNG plots.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data as jdata, inference, losses, metrics, nn, spectral, train
from . import _plots
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "uncertainty of an FNO surrogate of Burgers: deep ensemble, MC dropout, last-layer "
    "Laplace and NUTS, CRPS ensemble; ID and OOD calibration against the simulator"
)

logger = logging.getLogger("jaxsci.pipelines.burgers_uq")

#: The methods, in the order of the table.
METHODS = ("deep_ensemble", "mc_dropout", "laplace", "nuts", "crps_ensemble")
#: The metrics of each (method, split) cell.
METRIC_KEYS = ("rel_l2", "crps", "coverage90", "spread_skill")
SPLITS = ("id", "ood")


@dataclasses.dataclass(frozen=True)
class DataSection:
    num_train: int = option(500, ge=2, help="training pairs")
    num_test: int = option(100, ge=1, help="test pairs, in distribution and out of it each")
    num_points: int = option(
        256, ge=8, le=spectral.MAX_GRID_POINTS, help="simulation grid (points on [0, 1))"
    )
    train_points: int = option(64, ge=4, help="learning resolution, a divisor of num_points")
    nu: float = option(0.1, gt=0.0, help="viscosity")
    t1: float = option(1.0, gt=0.0, help="the surrogate maps u(0) to u(t1)")
    dt: float = option(0.01, gt=0.0, help="ETDRK4 step of the simulator")
    seed: int = option(0, ge=0, help="PRNG seed of the ID initial conditions")

    def __post_init__(self):
        if self.train_points > self.num_points or self.num_points % self.train_points:
            raise ConfigError(
                "train_points", f"expected a divisor of num_points = {self.num_points}"
            )


@dataclasses.dataclass(frozen=True)
class OODSection:
    sigma: float = option(50.0, gt=0.0, help="amplitude sigma of the OOD field (ID: 25)")
    tau: float = option(5.0, gt=0.0, help="inverse length scale tau (ID: 5)")
    alpha: float = option(2.0, gt=0.0, help="smoothness exponent alpha (ID: 2)")
    seed: int = option(1, ge=0, help="PRNG seed of the OOD initial conditions")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    width: int = option(32, ge=1, help="channels of the Fourier layers")
    modes: int = option(12, ge=1, help="Fourier modes kept per layer")
    depth: int = option(3, ge=1, help="Fourier layers")
    projection_width: int = option(64, ge=1, help="features of the last layer (Laplace, NUTS)")
    seed: int = option(
        1, ge=0, help="PRNG seed of the dropout and CRPS networks (deep ensemble: training.seed)"
    )


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    epochs: int = option(100, ge=1, help="epochs of every network")
    batch_size: int = option(25, ge=1)
    learning_rate: float = option(2e-3, gt=0.0, help="Adam, cosine decay to 0")
    seed: int = option(2, ge=0, help="PRNG seed of the data orders and loss noise")


@dataclasses.dataclass(frozen=True)
class EnsembleSection:
    members: int = option(10, ge=2, help="deep-ensemble members")


@dataclasses.dataclass(frozen=True)
class DropoutSection:
    rate: float = option(0.1, gt=0.0, lt=1.0, help="dropout rate of the MC-dropout FNO")


@dataclasses.dataclass(frozen=True)
class LastLayerSection:
    prior_precision: float | None = option(
        None, gt=0.0, help="alpha of the N(0, I/alpha) prior (null: maximise the evidence)"
    )
    noise_std: float | None = option(
        None, gt=0.0, help="sigma of the likelihood (null: maximise the evidence)"
    )
    predictive_noise: bool = option(
        True, help="add N(0, sigma^2) to the predictive draws (false: epistemic only)"
    )


@dataclasses.dataclass(frozen=True)
class NUTSSection:
    num_chains: int = option(2, ge=1)
    num_warmup: int = option(300, ge=1)
    num_samples: int = option(300, ge=2, help="draws per chain (thinned to num_samples)")
    target_accept: float = option(0.8, gt=0.0, lt=1.0)
    precondition: bool = option(
        True,
        help="sample z, w = Laplace mean + scale z (NUTS with the Laplace covariance as mass "
        "matrix, w block only); false: w directly (the warmup must learn the ill-conditioned "
        "covariance)",
    )
    hyperprior_shape: float = option(
        1e-3, ge=0.0, help="Gamma shape of the hyperprior on alpha (1/sigma^2: Jeffreys)"
    )
    hyperprior_rate: float = option(
        1e-3, gt=0.0, help="Gamma rate of the hyperprior on alpha (1/sigma^2: Jeffreys)"
    )


@dataclasses.dataclass(frozen=True)
class CRPSSection:
    members: int = option(4, ge=2, help="members per example in the fair-CRPS loss")
    noise_channels: int = option(4, ge=1, help="latent noise channels of the generator")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    dpi: int = option(110, ge=50, le=600)


@dataclasses.dataclass(frozen=True)
class BurgersUQConfig:
    """Schema of the `burgers_uq` pipeline."""

    data: DataSection = section(DataSection, help="Burgers pairs (training and ID test)")
    ood: OODSection = section(OODSection, help="the out-of-distribution initial field")
    model: ModelSection = section(ModelSection, help="the FNO of every method")
    training: TrainingSection = section(TrainingSection, help="shared by every network")
    ensemble: EnsembleSection = section(EnsembleSection, help="deep ensemble")
    dropout: DropoutSection = section(DropoutSection, help="MC dropout")
    last_layer: LastLayerSection = section(LastLayerSection, help="Laplace and NUTS")
    nuts: NUTSSection = section(NUTSSection, help="NUTS on the last layer")
    crps: CRPSSection = section(CRPSSection, help="fair-CRPS generative ensemble")
    num_samples: int = option(
        100, ge=2, help="predictive draws per test input (dropout, Laplace, NUTS, CRPS)"
    )
    num_plot: int = option(2, ge=1, le=8, help="test examples per split kept in uq.npz")
    seed: int = option(3, ge=0, help="PRNG seed of the samplers and predictive draws")
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        if self.training.batch_size > self.data.num_train:
            raise ConfigError(
                "training.batch_size",
                f"expected at most data.num_train = {self.data.num_train}",
            )
        if self.nuts.num_chains * self.nuts.num_samples < self.num_samples:
            raise ConfigError(
                "nuts.num_samples",
                f"expected nuts.num_chains * nuts.num_samples >= num_samples = "
                f"{self.num_samples} (fewer NUTS draws would be repeated)",
            )


def _fno(m: ModelSection, key, in_channels: int = 1, dropout: float = 0.0) -> nn.FNO:
    return nn.FNO1d(
        in_channels,
        1,
        m.width,
        m.modes,
        m.depth,
        key=key,
        projection_width=m.projection_width,
        dropout=dropout,
    )


def _design(model: nn.FNO, x) -> jax.Array:
    """Rows (example, point) of the last layer's inputs, a ones column for its bias."""
    f = jax.vmap(model.features)(jnp.asarray(x))  # (N, p, n)
    f = jnp.moveaxis(f, 1, -1).reshape(-1, f.shape[1])
    return jnp.concatenate([f, jnp.ones((f.shape[0], 1), f.dtype)], axis=1)


def _scores(ens: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The table's metrics of an ensemble (M, N, n) against the truth (N, n)."""
    mean = ens.mean(axis=0)
    rel = jax.vmap(losses.relative_l2)(jnp.asarray(mean), jnp.asarray(truth))
    cases = np.swapaxes(ens, 0, 1)  # (N examples, M members, n points)
    scores = metrics.ensemble_scores(cases, truth)
    return {
        "rel_l2": float(jnp.mean(rel)),
        "crps": float(scores.crps),
        "coverage90": float(metrics.interval_coverage(cases, truth, 0.9)),
        "spread_skill": float(scores.spread_skill),
    }


def _generative_members(model, x, num: int, key) -> np.ndarray:
    """`num` draws of a stochastic model (`model(x, key=k)`) per input: (num, N, n)."""
    keys = jax.random.split(key, x.shape[0])
    draw = eqx.filter_jit(
        jax.vmap(lambda xi, k: nn.sample_ensemble(model, xi, num, key=k))  # (N, num, 1, n)
    )
    return np.moveaxis(np.asarray(draw(jnp.asarray(x), keys))[:, :, 0], 1, 0)


def run(config: BurgersUQConfig, run_dir: Path) -> dict:
    """Simulate, train the five methods, evaluate ID and OOD, write the table and plots."""
    start = time.perf_counter()
    d, o, m, t = config.data, config.ood, config.model, config.training
    seconds: dict[str, float] = {}
    stride = d.num_points // d.train_points

    # 1. Data: the simulator's solutions are the truth of every metric.
    t0 = time.perf_counter()
    common: dict[str, Any] = dict(num_points=d.num_points, nu=d.nu, t1=d.t1, dt=d.dt)
    u0, u1 = jdata.burgers_dataset(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        grf=jdata.GaussianRandomField(d.num_points, zero_mean=True),
        **common,
    )
    v0, v1 = jdata.burgers_dataset(
        jax.random.key(o.seed),
        d.num_test,
        grf=jdata.GaussianRandomField(
            d.num_points, sigma=o.sigma, tau=o.tau, alpha=o.alpha, zero_mean=True
        ),
        **common,
    )
    x_train = np.asarray(u0[: d.num_train, None, ::stride])
    y_train = np.asarray(u1[: d.num_train, None, ::stride])
    tests = {
        "id": (u0[d.num_train :, None, ::stride], u1[d.num_train :, ::stride]),
        "ood": (v0[:, None, ::stride], v1[:, ::stride]),
    }
    initial = {"id": np.asarray(u0[d.num_train :]), "ood": np.asarray(v0)}  # full grid
    seconds["data"] = time.perf_counter() - t0
    logger.info(
        "data: %d training, %d ID and %d OOD test pairs (nu=%g, t1=%g) at %d points; %.1f s",
        d.num_train,
        d.num_test,
        d.num_test,
        d.nu,
        d.t1,
        d.train_points,
        seconds["data"],
    )

    steps_per_epoch = d.num_train // t.batch_size
    fit_kwargs: dict[str, Any] = dict(
        optimizer=optax.adam(
            optax.cosine_decay_schedule(t.learning_rate, t.epochs * steps_per_epoch)
        ),
        batch_size=t.batch_size,
        epochs=t.epochs,
        progress=False,
    )
    key_init = jax.random.key(m.seed)
    key_fit = jax.random.key(t.seed)
    key_eval = jax.random.key(config.seed)
    ensembles: dict[str, dict[str, np.ndarray]] = {method: {} for method in METHODS}
    extra: dict[str, Any] = {}
    train_loss: dict[str, float] = {}

    # 2a. Deep ensemble (MSE), and its first member as the base of the last-layer methods.
    t0 = time.perf_counter()
    deep, histories = train.fit_ensemble(
        lambda k: _fno(m, k),
        losses.MSELoss(),
        (x_train, y_train),
        num_members=config.ensemble.members,
        key=jax.random.fold_in(key_fit, 0),
        **fit_kwargs,
    )
    seconds["train_deep_ensemble"] = time.perf_counter() - t0
    train_loss["deep_ensemble"] = float(np.mean([h["train_loss"][-1] for h in histories]))
    predict = eqx.filter_jit(lambda ms, x: eqx.filter_vmap(lambda mm: jax.vmap(mm)(x))(ms)[:, :, 0])
    base = jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, deep)
    logger.info(
        "deep ensemble: %d members trained in %.1f s",
        config.ensemble.members,
        seconds["train_deep_ensemble"],
    )

    # 2b. MC dropout.
    t0 = time.perf_counter()
    dropout_net, h = train.fit(
        _fno(m, jax.random.fold_in(key_init, 1), dropout=config.dropout.rate),
        losses.StochasticRegressionLoss(losses.MSELoss()),
        (x_train, y_train),
        key=jax.random.fold_in(key_fit, 1),
        **fit_kwargs,
    )
    seconds["train_mc_dropout"] = time.perf_counter() - t0
    train_loss["mc_dropout"] = float(h["train_loss"][-1])

    # 2c, 2d. The last layer of the base network: Laplace (evidence-optimal prior and noise)
    # and NUTS over the weights and both hyperparameters, with their predictive draws.
    # Solved in float64: the Gram matrix of the features is too ill-conditioned for float32
    # (its small eigenvalues, which set the widest posterior directions, are round-off there).
    phi = np.asarray(_design(base, x_train), np.float64)
    phi_test = {split: np.asarray(_design(base, tests[split][0]), np.float64) for split in SPLITS}
    targets = np.asarray(y_train, np.float64).reshape(-1)
    ll, nc = config.last_layer, config.nuts
    with jax.enable_x64(True):
        t0 = time.perf_counter()
        # the evidence-optimal Bayesian linear regression of the last layer (its mode is a
        # refit), and the Laplace approximation at the trained weights: the same precision
        # beta Phi^T Phi + alpha I, centred at the network's own last layer
        refit = inference.last_layer_laplace(
            phi, targets, noise_std=ll.noise_std, prior_precision=ll.prior_precision
        )
        last = base.projection[1]
        trained = np.concatenate([np.asarray(last.weight[0]), np.asarray(last.bias)])
        laplace = inference.last_layer_laplace(
            phi,
            targets,
            noise_std=float(refit.noise_std),
            prior_precision=float(refit.prior_precision),
            mean=trained.astype(np.float64),
        )
        for i, split in enumerate(SPLITS):
            k = jax.random.fold_in(key_eval, 10 + i)
            ensembles["laplace"][split] = np.asarray(
                laplace.predictive(
                    phi_test[split],
                    key=k,
                    num_samples=config.num_samples,
                    noise=ll.predictive_noise,
                ),
                np.float32,
            ).reshape(-1, *tests[split][1].shape)
        seconds["laplace"] = time.perf_counter() - t0
        extra["laplace"] = {
            "prior_precision": float(laplace.prior_precision),
            "noise_std": float(laplace.noise_std),
            "log_evidence": float(refit.log_evidence),
            "evidence_iterations": int(refit.iterations),
            "evidence_relative_change": float(refit.relative_change),
            # max over weights of |trained - refit mode| / posterior sd
            "trained_vs_refit_z": float(
                np.max(
                    np.abs(trained - np.asarray(refit.mean))
                    / np.sqrt(np.diag(np.asarray(refit.cov)))
                )
            ),
        }
        logger.info(
            "last-layer Laplace (%d weights): alpha %.3g, sigma %.3g%s; %.1f s",
            phi.shape[1],
            laplace.prior_precision,
            laplace.noise_std,
            " (evidence-optimal)" if ll.prior_precision is None else "",
            seconds["laplace"],
        )

        t0 = time.perf_counter()
        # Fully Bayesian: alpha and beta = 1/sigma^2 sampled with w (unless configured fixed).
        logp = inference.last_layer_logdensity(
            phi,
            targets,
            noise_std=ll.noise_std,
            prior_precision=ll.prior_precision,
            precondition=refit if nc.precondition else None,
            hyperprior=(nc.hyperprior_shape, nc.hyperprior_rate),
        )
        constraints: dict[str, str] = {"w": "real"}
        shapes: dict[str, tuple[int, ...]] = {"w": (phi.shape[1],)}
        hyper_start = []  # unconstrained (log) starts at the evidence optimum
        if ll.prior_precision is None:
            constraints["prior_precision"], shapes["prior_precision"] = "positive", ()
            hyper_start.append(np.log(float(laplace.prior_precision)))
        if ll.noise_std is None:
            constraints["noise_precision"], shapes["noise_precision"] = "positive", ()
            hyper_start.append(-2.0 * np.log(float(laplace.noise_std)))
        k_nuts, k_init_nuts = jax.random.split(jax.random.fold_in(key_eval, 4))
        w_start = np.asarray(
            jax.random.normal(k_init_nuts, (nc.num_chains, phi.shape[1]), phi.dtype)
            if nc.precondition
            else refit.sample(k_init_nuts, nc.num_chains)
        )
        result = inference.posterior(
            logp,
            constraints=constraints,
            shapes=shapes,
            key=k_nuts,
            sampler=inference.NUTS(dense_mass=True, target_accept=nc.target_accept),
            num_chains=nc.num_chains,
            num_warmup=nc.num_warmup,
            num_samples=nc.num_samples,
            init=np.concatenate(
                [w_start, np.broadcast_to(hyper_start, (nc.num_chains, len(hyper_start)))], 1
            ),
            progress_bar=False,
            chunk_size=nc.num_warmup + nc.num_samples,
        )
        draws = result.draws["w"].reshape(-1, phi.shape[1])
        if nc.precondition:
            draws = np.asarray(refit.unwhiten(draws))
        alphas = (
            np.asarray(result.draws["prior_precision"]).reshape(-1)
            if ll.prior_precision is None
            else np.full(len(draws), ll.prior_precision)
        )
        sigmas = (
            np.asarray(result.draws["noise_precision"]).reshape(-1) ** -0.5
            if ll.noise_std is None
            else np.full(len(draws), ll.noise_std)
        )
        thin = np.linspace(0, len(draws) - 1, config.num_samples).round().astype(int)
        for i, split in enumerate(SPLITS):
            ensembles["nuts"][split] = np.asarray(
                inference.predictive_samples(
                    phi_test[split],
                    draws[thin],
                    sigmas[thin] if ll.predictive_noise else None,
                    key=jax.random.fold_in(key_eval, 20 + i),
                ),
                np.float32,
            ).reshape(-1, *tests[split][1].shape)
        seconds["nuts"] = time.perf_counter() - t0
    summary = result.summary()
    sd = np.sqrt(np.diag(np.asarray(refit.cov)))
    extra["nuts"] = {
        "rhat_max": float(max(r["rhat"] for r in summary.values())),
        "ess_bulk_min": float(min(r["ess_bulk"] for r in summary.values())),
        "divergences": int(result.divergences),
        "num_draws": int(len(draws)),
        # max over weights of |NUTS mean - refit mode| / its sd (the evidence-optimal BLR)
        "mean_vs_refit_z": float(np.max(np.abs(draws.mean(0) - np.asarray(refit.mean)) / sd)),
        "sd_ratio_vs_refit_max": float(np.max(np.abs(draws.std(0) / sd - 1.0))),
        # the hyper-posterior (5%, 50%, 95%) beside the evidence optimum of the Laplace row
        "prior_precision_q05_q50_q95": [float(v) for v in np.quantile(alphas, [0.05, 0.5, 0.95])],
        "noise_std_q05_q50_q95": [float(v) for v in np.quantile(sigmas, [0.05, 0.5, 0.95])],
    }
    logger.info(
        "last-layer NUTS: %d draws, R-hat max %.3f, bulk ESS min %.0f, %d divergences; %.1f s",
        len(draws),
        extra["nuts"]["rhat_max"],
        extra["nuts"]["ess_bulk_min"],
        extra["nuts"]["divergences"],
        seconds["nuts"],
    )

    # 2e. Fair-CRPS generative ensemble.
    t0 = time.perf_counter()
    cc = config.crps
    gen, h = train.fit(
        nn.NoiseInjected(
            _fno(m, jax.random.fold_in(key_init, 2), in_channels=1 + cc.noise_channels),
            cc.noise_channels,
        ),
        losses.CRPSLoss(cc.members, losses.crps_fair),
        (x_train, y_train),
        key=jax.random.fold_in(key_fit, 2),
        **fit_kwargs,
    )
    seconds["train_crps_ensemble"] = time.perf_counter() - t0
    train_loss["crps_ensemble"] = float(h["train_loss"][-1])

    # 3. Predictive ensembles and metrics on both splits.
    t0 = time.perf_counter()
    table: dict[str, dict[str, dict[str, float]]] = {method: {} for method in METHODS}
    for i, split in enumerate(SPLITS):
        x, truth = tests[split]
        k = jax.random.split(jax.random.fold_in(key_eval, i), 4)
        ensembles["deep_ensemble"][split] = np.asarray(predict(deep, jnp.asarray(x)))
        ensembles["mc_dropout"][split] = _generative_members(
            dropout_net, x, config.num_samples, k[0]
        )
        ensembles["crps_ensemble"][split] = _generative_members(gen, x, config.num_samples, k[3])
        for method in METHODS:
            table[method][split] = _scores(ensembles[method][split], truth)
    seconds["evaluate"] = time.perf_counter() - t0
    _log_table(table)

    # Arrays and plots.
    kp = min(config.num_plot, d.num_test)
    arrays: dict[str, Any] = {}
    for split in SPLITS:
        x, truth = tests[split]
        arrays[f"{split}_input"] = x[:kp, 0]
        arrays[f"{split}_initial"] = initial[split][:kp]
        arrays[f"{split}_truth"] = truth[:kp]
        for method in METHODS:
            arrays[f"{split}_{method}"] = ensembles[method][split][:, :kp]
    np.savez_compressed(run_dir / "uq.npz", **arrays)
    if config.plot.enabled:
        with _plots.guard():
            _plots._save(
                _bands_figure(arrays, config), run_dir / "predictions.png", config.plot.dpi
            )
            _plots._save(_calibration_figure(table), run_dir / "calibration.png", config.plot.dpi)
    seconds["total"] = time.perf_counter() - start
    diagnostics = {
        "seconds": seconds,
        "train_loss": train_loss,
        "members": {
            "deep_ensemble": config.ensemble.members,
            "mc_dropout": config.num_samples,
            "laplace": config.num_samples,
            "nuts": config.num_samples,
            "crps_ensemble": config.num_samples,
        },
        "last_layer_params": int(phi.shape[1]),
        "network_params": nn.count_params(base),
    }
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2) + "\n")
    return {"table": table, **extra, "seconds": seconds}


def _log_table(table) -> None:
    logger.info("%-14s %-4s %9s %9s %9s %9s", "method", "", *METRIC_KEYS)
    for method, row in table.items():
        for split, cell in row.items():
            logger.info(
                "%-14s %-4s %9.4g %9.4g %9.3f %9.3f",
                method,
                split,
                *(cell[k] for k in METRIC_KEYS),
            )


_COLORS = {
    "deep_ensemble": "tab:blue",
    "mc_dropout": "tab:orange",
    "laplace": "tab:green",
    "nuts": "tab:purple",
    "crps_ensemble": "tab:red",
}


def _bands_figure(arrays, config) -> Figure:
    """Per method (rows) and split (columns), on the first test example: the error of the
    ensemble mean and the 5-95% band of the members, both relative to the simulator's
    u(t1) (the bands are far narrower than the field itself), and the field (grey, right
    axis) for orientation."""
    fig = Figure(figsize=(9.5, 2.0 * len(METHODS)), layout="constrained")
    axes = fig.subplots(len(METHODS), 2, sharex=True, squeeze=False)
    for j, split in enumerate(SPLITS):
        truth = arrays[f"{split}_truth"][0]
        x = np.arange(truth.size) / truth.size
        for i, method in enumerate(METHODS):
            err = arrays[f"{split}_{method}"][:, 0] - truth
            lo, hi = np.quantile(err, [0.05, 0.95], axis=0)
            ax = axes[i, j]
            ax.fill_between(x, lo, hi, color=_COLORS[method], alpha=0.3, label="5-95% band")
            ax.plot(x, err.mean(0), color=_COLORS[method], lw=1.2, label="ensemble mean")
            ax.axhline(0.0, color="k", lw=1.0, ls="--", label="simulator")
            twin = ax.twinx()
            twin.plot(x, truth, color="0.6", lw=0.8)
            twin.tick_params(labelsize=6, colors="0.5")
            ax.set_title(f"{method}, {split.upper()}: prediction - simulator", fontsize=9)
            ax.grid(alpha=0.3)
        axes[-1, j].set_xlabel("x")
    axes[0, 0].legend(fontsize=7, loc="best")
    o = config.ood
    fig.suptitle(
        f"Burgers u(t1={config.data.t1:g}), nu={config.data.nu:g}, first test example (grey: "
        f"u(t1), right axis); OOD field sigma={o.sigma:g}, tau={o.tau:g}, alpha={o.alpha:g} "
        "(ID 25, 5, 2)",
        fontsize=9,
    )
    return fig


def _calibration_figure(table) -> Figure:
    """Bars of the rank-based 90% coverage (ideal 0.9 at any ensemble size) and the
    spread-skill ratio per method, ID and OOD."""
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    xs = np.arange(len(METHODS))
    for ax, key, ref in ((axes[0], "coverage90", 0.9), (axes[1], "spread_skill", 1.0)):
        for s, split in enumerate(SPLITS):
            vals = [table[method][split][key] for method in METHODS]
            ax.bar(xs + (s - 0.5) * 0.38, vals, 0.38, label=split.upper(), alpha=0.8)
        ax.axhline(ref, color="k", lw=1, ls="--")
        ax.set_xticks(xs, METHODS, rotation=20, fontsize=8)
        ax.set_title(f"{key} (ideal {ref:g})", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    return fig
